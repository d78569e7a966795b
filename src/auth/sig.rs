//! Pieces the signature schemes share (hex is `vocab::hex`): the `Authorization` value's
//! fields, RFC 3986 percent-coding, the `yyyymmddThhmmssZ` dates of the Huawei and JD
//! schemes, and how they refuse.

use super::Refusal;
use crate::dialect::{AuthFailure, Reason};
use crate::request::head::{split_bytes, trim};
use crate::request::RequestHead;

/// The values of `keys` in an `Authorization` value `SCHEME k=v, k=v, …` (Huawei's
/// `SDK-HMAC-SHA256 Access=…`, JD's `JDCLOUD2-HMAC-SHA256 Credential=…`), a key given twice
/// taken at its last; `None` unless the value starts with the scheme and a space, every field
/// has an `=` and every key is given. The grammar of `trim`, `split(',')` and
/// `split_once('=')` (`fields_by_chars` in the tests), read by bytes: `,` and `=` are ASCII,
/// so a byte search finds what a char search finds, and the char searches cost about 1,100
/// instructions a signed request.
pub fn authorization_fields<'v, const N: usize>(
    value: &'v str,
    scheme: &str,
    keys: [&str; N],
) -> Option<[&'v str; N]> {
    let rest = trim(value).strip_prefix(scheme)?.strip_prefix(' ')?;
    let mut found = [None; N];
    for field in split_bytes(rest, b',') {
        // the first `=` of the trimmed field is the field's first: trimming takes none
        let at = memchr::memchr(b'=', field.as_bytes())?;
        let key = trim(&field[..at]);
        if let Some(i) = keys.iter().position(|k| *k == key) {
            found[i] = Some(trim(&field[at + 1..]));
        }
    }
    let mut values = [""; N];
    for (value, found) in values.iter_mut().zip(found) {
        *value = found?;
    }
    Some(values)
}

/// The `k=v` pairs of a query as written (a pair without `=` has an empty value).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// `k=v&k=v`, in the order given.
pub fn join_pairs<K: std::fmt::Display, V: std::fmt::Display>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        use std::fmt::Write as _;
        let _ = write!(out, "{k}={v}");
    }
    out
}

/// A refusal of a scheme whose failures carry a detail (Huawei appends it to APIG.0303).
pub fn signature_refusal(detail: impl Into<String>) -> Refusal {
    let detail = detail.into();
    Refusal {
        reason: Reason::Auth(AuthFailure::Signature {
            detail: detail.clone(),
        }),
        detail,
    }
}

/// Whether the request has a body to hash: chunked, or a non-zero Content-Length.
pub fn carries_body(head: &RequestHead<'_>) -> bool {
    head.headers.contains_key(http::header::TRANSFER_ENCODING)
        || head
            .header(http::header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// `%XX`-decode (a `+` stays a `+`); malformed escapes are kept literally.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = crate::vocab::hex::pair(&b[i + 1..i + 3]) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// [`percent_decode`], borrowing what has no `%` to decode.
pub fn percent_decode_cow(s: &str) -> std::borrow::Cow<'_, [u8]> {
    match s.as_bytes().contains(&b'%') {
        true => std::borrow::Cow::Owned(percent_decode(s)),
        false => std::borrow::Cow::Borrowed(s.as_bytes()),
    }
}

/// RFC 3986 encoding: unreserved characters as they are, every other byte `%XX` (upper case).
/// By table rather than `format!`: signing and verifying encode every path segment and query
/// pair of every signed request.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    encode_into(&mut out, bytes);
    out
}

/// [`encode`], appended to `out`.
pub fn encode_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        encode_byte(out, b);
    }
}

/// RFC 3986's unreserved characters: letters, digits, `-_.~`. By table: every byte of every
/// signed request's path and query is asked, and `b"-_.~".contains` is a call each time.
#[inline]
pub fn is_unreserved(b: u8) -> bool {
    UNRESERVED[usize::from(b)]
}

static UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~');
        b += 1;
    }
    table
};

/// One byte of [`encode`].
#[inline]
pub fn encode_byte(out: &mut String, b: u8) {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(b) {
        out.push(b as char);
    } else {
        out.push('%');
        out.push(UPPER[usize::from(b >> 4)] as char);
        out.push(UPPER[usize::from(b & 15)] as char);
    }
}

/// `20191115T033655Z` → milliseconds since the epoch.
///
/// The form every client sends (sixteen bytes, a valid time) is read digit by digit; anything
/// else goes through `strptime`, whose answer it is (`strptime` parses its format on every
/// call: 1.6k instructions a signed request).
pub fn parse_sdk_date(s: &str) -> Option<i64> {
    if let Some(ms) = sdk_date_digits(s.as_bytes()) {
        return Some(ms);
    }
    sdk_date_strptime(s)
}

/// `yyyymmddThhmmssZ` exactly, with a second below 60 and a date and time that exist.
fn sdk_date_digits(b: &[u8]) -> Option<i64> {
    let [y0, y1, y2, y3, mo0, mo1, d0, d1, b'T', h0, h1, mi0, mi1, s0, s1, b'Z'] = *b else {
        return None;
    };
    let digits = [y0, y1, y2, y3, mo0, mo1, d0, d1, h0, h1, mi0, mi1, s0, s1];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |pair: &[u8]| pair.iter().fold(0i16, |n, d| n * 10 + i16::from(d - b'0'));
    let dt = jiff::civil::DateTime::new(
        n(&digits[0..4]),
        n(&digits[4..6]) as i8,
        n(&digits[6..8]) as i8,
        n(&digits[8..10]) as i8,
        n(&digits[10..12]) as i8,
        n(&digits[12..14]) as i8,
        0,
    )
    .ok()?;
    let t = jiff::tz::Offset::UTC.to_timestamp(dt).ok()?;
    Some(t.as_millisecond())
}

fn sdk_date_strptime(s: &str) -> Option<i64> {
    let dt = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", s).ok()?;
    Some(
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_millisecond(),
    )
}

/// Milliseconds since the epoch → `20191115T033655Z` (UTC). Written digit by digit rather
/// than through `strftime`, which parses its format on every call: backend signing stamps
/// every request.
pub fn format_sdk_date(ms: i64) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    let d = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let mut out = String::with_capacity(16);
    push_digits(&mut out, i64::from(d.year()), 4);
    push_digits(&mut out, i64::from(d.month()), 2);
    push_digits(&mut out, i64::from(d.day()), 2);
    out.push('T');
    push_digits(&mut out, i64::from(d.hour()), 2);
    push_digits(&mut out, i64::from(d.minute()), 2);
    push_digits(&mut out, i64::from(d.second()), 2);
    out.push('Z');
    out
}

fn push_digits(out: &mut String, n: i64, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10i64.pow(i) % 10) as u8));
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = keyed_hmac(key);
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// An HMAC-SHA256 keyed with `key`, ready for the message.
///
/// Keying HMAC hashes two blocks (the key padded and masked for the inner and the outer hash)
/// whatever the message: two of the nine SHA-256 blocks of a signed Huawei request. The keys
/// are few and fixed (an app's secret, a backend's signing key) and live in the compiled
/// policy, so the keyed state is kept per thread and cloned: [`KEYED_SLOTS`] slots, chosen by
/// the key's address (where the policy keeps it), each holding the key's bytes, which must
/// equal the key asked for (compared in constant time) for its state to be used — so a key
/// at an address that a reloaded policy freed and another key now occupies is never taken
/// for the old one. A rotated key's copy stays in its slot until another key takes the slot:
/// no longer than the freed policy's own copy stays in the heap, which is never zeroed either.
pub fn keyed_hmac(key: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use std::cell::RefCell;
    struct Keyed {
        addr: usize,
        key: Box<[u8]>,
        mac: hmac::Hmac<sha2::Sha256>,
    }
    thread_local! {
        static KEYED: RefCell<[Option<Keyed>; KEYED_SLOTS]> =
            const { RefCell::new([const { None }; KEYED_SLOTS]) };
    }
    let new = || {
        <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC takes any key length")
    };
    let addr = key.as_ptr() as usize;
    // Fibonacci hashing of the address: allocations are 16-byte aligned
    let slot = ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % KEYED_SLOTS;
    KEYED
        .try_with(|slots| {
            let Ok(mut slots) = slots.try_borrow_mut() else {
                return new();
            };
            match &slots[slot] {
                Some(k) if k.addr == addr && same(&k.key, key) => k.mac.clone(),
                _ => {
                    let mac = new();
                    slots[slot] = Some(Keyed {
                        addr,
                        key: key.into(),
                        mac: mac.clone(),
                    });
                    mac
                }
            }
        })
        .unwrap_or_else(|_| new())
}

/// How many keyed HMAC states [`keyed_hmac`] keeps per thread.
const KEYED_SLOTS: usize = 64;

/// Constant-time equality of two byte strings.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Constant-time comparison of a presented secret with a known one: both are hashed first, so
/// neither the content nor the length of the known secret shows in the timing.
pub fn same_secret(known: &[u8], presented: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    same(&Sha256::digest(known), &Sha256::digest(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_hex_and_dates_write_what_the_vendors_sdks_write() {
        assert_eq!(encode("a b/é~".as_bytes()), "a%20b%2F%C3%A9~");
        assert_eq!(crate::vocab::hex::hex(&[0x00, 0x9f, 0xff]), "009fff");
        assert_eq!(format_sdk_date(1_796_385_600_000), "20261204T120000Z");
        assert_eq!(format_sdk_date(1_573_788_615_999), "20191115T033015Z");
        for ms in [0, 951_782_400_000, 4_102_444_799_000] {
            assert_eq!(parse_sdk_date(&format_sdk_date(ms)), Some(ms));
        }
    }

    /// [`authorization_fields`] as each scheme first wrote it, by `str`'s char searches: the
    /// oracle.
    fn fields_by_chars<'v, const N: usize>(
        value: &'v str,
        scheme: &str,
        keys: [&str; N],
    ) -> Option<[&'v str; N]> {
        let rest = value.trim().strip_prefix(scheme)?.strip_prefix(' ')?;
        let mut found = [None; N];
        for field in rest.split(',') {
            let (k, v) = field.trim().split_once('=')?;
            if let Some(i) = keys.iter().position(|key| *key == k.trim()) {
                found[i] = Some(v.trim());
            }
        }
        let mut values = [""; N];
        for (value, found) in values.iter_mut().zip(found) {
            *value = found?;
        }
        Some(values)
    }

    const HUAWEI: (&str, [&str; 3]) = ("SDK-HMAC-SHA256", ["Access", "SignedHeaders", "Signature"]);
    const JD: (&str, [&str; 3]) = (
        "JDCLOUD2-HMAC-SHA256",
        ["Credential", "SignedHeaders", "Signature"],
    );

    #[test]
    fn an_authorization_value_parses_as_the_char_searches_parsed_it() {
        for value in [
            "SDK-HMAC-SHA256 Access=a, SignedHeaders=host;x-sdk-date, Signature=00",
            " SDK-HMAC-SHA256 Access = a ,SignedHeaders= h ,Signature =s\t",
            "SDK-HMAC-SHA256 Access=a,SignedHeaders=h,Signature=s,",
            "SDK-HMAC-SHA256 Access=a=b, SignedHeaders=h, Signature=s, Other=x",
            "SDK-HMAC-SHA256 Access=a, Access=b, SignedHeaders=h, Signature=s",
            "SDK-HMAC-SHA256 \u{a0}Access=\u{3000}a\u{a0}, SignedHeaders=h, Signature=s\u{b}",
            "SDK-HMAC-SHA256  Access=é, SignedHeaders=h, Signature=s",
            "SDK-HMAC-SHA256 Access=a, SignedHeaders=h",
            "SDK-HMAC-SHA256", "SDK-HMAC-SHA256 ", "SDK-HMAC-SHA256\tAccess=a", "",
            "JDCLOUD2-HMAC-SHA256 Credential=ak/20240315/cn-north-1/svc/jdcloud2_request, SignedHeaders=host, Signature=ab",
        ] {
            for (scheme, keys) in [HUAWEI, JD] {
                let by_bytes = authorization_fields(value, scheme, keys);
                assert_eq!(by_bytes, fields_by_chars(value, scheme, keys), "{value:?}");
            }
        }
    }

    proptest::proptest! {
        /// Any value drawn from what the grammar turns on (the separators, ASCII and Unicode
        /// whitespace, both schemes' keys, other letters, non-ASCII) parses as the char
        /// searches parsed it.
        #[test]
        fn parsing_by_bytes_is_parsing_by_chars(
            value in "[ \t]?(SDK-HMAC-SHA256 |SDK-HMAC-SHA256|JDCLOUD2-HMAC-SHA256 |SDK-)?\
                      (Access|Credential|SignedHeaders|Signature|[,=; \t\n\u{b}\u{c}\u{a0}\u{3000}aZé;]){0,16}",
        ) {
            for (scheme, keys) in [HUAWEI, JD] {
                proptest::prop_assert_eq!(
                    authorization_fields(&value, scheme, keys),
                    fields_by_chars(&value, scheme, keys)
                );
            }
        }

        /// A value with the three fields (in any order, among others, with whitespace and
        /// `=`, `;`, `,` in and around them) parses as the char searches parsed it.
        #[test]
        fn three_fields_parse_by_bytes_as_by_chars(
            lead in "[ \t]?",
            fields in proptest::collection::vec(
                ("[ \t\u{a0}]{0,2}", "[ \t\u{3000}]{0,2}", "[=a-z é\t\u{a0}\u{b};,]{0,5}"),
                3..6,
            ),
            first in 0..3usize,
            trailing in "(,| ,|)",
            jd in proptest::bool::ANY,
        ) {
            let (scheme, keys) = if jd { JD } else { HUAWEI };
            let others = ["Other", "access"];
            let written: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, (before, after, v))| {
                    let key = if i < 3 { keys[(i + first) % 3] } else { others[i % 2] };
                    format!("{before}{key}{after}={v}")
                })
                .collect();
            let value = format!("{lead}{scheme} {}{trailing}", written.join(","));
            proptest::prop_assert_eq!(
                authorization_fields(&value, scheme, keys),
                fields_by_chars(&value, scheme, keys)
            );
        }
    }

    #[test]
    fn the_unreserved_table_is_the_predicate_it_was() {
        for b in 0..=255u8 {
            let was = b.is_ascii_alphanumeric() || b"-_.~".contains(&b);
            assert_eq!(is_unreserved(b), was, "{b:#04x}");
        }
    }

    #[test]
    fn sdk_dates_read_digit_by_digit_are_what_strptime_reads() {
        let mut rng = fastrand::Rng::with_seed(17);
        let mut cases: Vec<String> = vec![
            "20191115T033655Z".into(),
            "00000101T000000Z".into(),
            "99991231T235959Z".into(),
            "20240229T120000Z".into(),
            "20230229T120000Z".into(),
            "20191115T033660Z".into(),
            "20191115T240000Z".into(),
            "20191300T000000Z".into(),
            "20191115t033655Z".into(),
            "2019111ST033655Z".into(),
            "+2019115T033655Z".into(),
        ];
        for _ in 0..20_000 {
            let digit =
                |rng: &mut fastrand::Rng, max: u32| char::from_digit(rng.u32(0..=max), 10).unwrap();
            let mut c = String::new();
            for max in [9, 9, 9, 9, 1, 9, 3, 9] {
                c.push(digit(&mut rng, max));
            }
            c.push('T');
            for max in [2, 9, 6, 9, 6, 9] {
                c.push(digit(&mut rng, max));
            }
            c.push('Z');
            cases.push(c);
        }
        for c in &cases {
            assert_eq!(parse_sdk_date(c), sdk_date_strptime(c), "{c}");
        }
    }

    #[test]
    fn a_keyed_hmac_is_the_hmac_of_its_key_whichever_keys_came_before() {
        use hmac::Mac;
        let fresh = |key: &[u8], m: &[u8]| {
            let mut mac =
                <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
            mac.update(m);
            mac.finalize().into_bytes().to_vec()
        };
        // the same buffer rewritten in place: same address, other key
        let mut key = b"first-secret".to_vec();
        assert_eq!(hmac_sha256(&key, b"m"), fresh(b"first-secret", b"m"));
        key.copy_from_slice(b"other-secret");
        assert_eq!(hmac_sha256(&key, b"m"), fresh(b"other-secret", b"m"));
        assert_eq!(hmac_sha256(&key[..5], b"m"), fresh(b"other", b"m"));
        // many keys, more than the slots, asked again
        let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("k{i}").into_bytes()).collect();
        for _ in 0..2 {
            for k in &keys {
                assert_eq!(hmac_sha256(k, b"msg"), fresh(k, b"msg"));
            }
        }
        let long = vec![7u8; 200];
        assert_eq!(hmac_sha256(&long, b"m"), fresh(&long, b"m"));
        assert_eq!(hmac_sha256(b"", b"m"), fresh(b"", b"m"));
    }
}
