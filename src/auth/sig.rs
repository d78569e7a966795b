//! Pieces the signature schemes share: hex, RFC 3986 percent-coding, the `yyyymmddThhmmssZ`
//! dates of the Huawei and JD schemes, and how they refuse.

use super::Refusal;
use crate::dialect::{AuthFailure, Reason};
use crate::request::RequestHead;

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
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
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

/// RFC 3986 encoding: unreserved characters as they are, every other byte `%XX` (upper case).
/// By table rather than `format!`: signing and verifying encode every path segment and query
/// pair of every signed request.
pub fn encode(bytes: &[u8]) -> String {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(UPPER[usize::from(b >> 4)] as char);
            out.push(UPPER[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Lower-case hex, by table (see [`encode`]).
pub fn hex(bytes: &[u8]) -> String {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(LOWER[usize::from(b >> 4)] as char);
        out.push(LOWER[usize::from(b & 15)] as char);
    }
    out
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// `20191115T033655Z` → milliseconds since the epoch.
pub fn parse_sdk_date(s: &str) -> Option<i64> {
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
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

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
        assert_eq!(hex(&[0x00, 0x9f, 0xff]), "009fff");
        assert_eq!(format_sdk_date(1_796_385_600_000), "20261204T120000Z");
        assert_eq!(format_sdk_date(1_573_788_615_999), "20191115T033015Z");
        for ms in [0, 951_782_400_000, 4_102_444_799_000] {
            assert_eq!(parse_sdk_date(&format_sdk_date(ms)), Some(ms));
        }
    }
}
