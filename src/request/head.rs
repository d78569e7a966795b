//! The view of a request that `decide` reads: everything the pipeline needs, nothing it does
//! not (no body stream, no connection).
//!
//! `serve`, `explain` and `test` all build it with [`RequestHead::of`] from the request as HTTP
//! parsed it (method, request target, version, headers): which host a request is for, and
//! which request target the pipeline reads, are decided in one place, so an offline answer is
//! the answer the server gives.

use http::HeaderMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// As sent, e.g. `GET`.
    pub method: &'a str,
    /// Origin-form request target: `/path?query`.
    pub target: &'a str,
    /// Authority or Host header, possibly with a port.
    pub host: Option<&'a str>,
    /// Where `host` came from: it decides whether a Host header beside it may differ.
    pub host_from: HostFrom,
    pub headers: &'a HeaderMap,
    /// HTTP/1.0, 1.1 or 2: only an HTTP/1.1 request can switch protocols.
    pub version: http::Version,
    /// The TCP peer.
    pub peer: IpAddr,
    pub tls: bool,
    /// The TLS client presented a certificate that the gateway's client CA verified.
    pub client_cert: bool,
    /// The body, when it has been read (only routes with form parameters need it).
    pub body: Option<&'a [u8]>,
}

/// How a request named the host it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostFrom {
    /// An origin-form target (`GET /path`): the Host header names it.
    #[default]
    Header,
    /// An HTTP/1.1 absolute-form target (`GET http://host/path`): its authority names it, and
    /// a Host header is ignored (RFC 9112 §3.2.2).
    Target,
    /// HTTP/2's `:authority`: a Host header beside it must name the same (RFC 9113 §8.3.1).
    Pseudo,
}

/// The connection a request arrived on, as far as the pipeline reads it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The TCP peer.
    pub peer: IpAddr,
    pub tls: bool,
    /// A verified client certificate was presented (TLS only).
    pub client_cert: bool,
}

impl<'a> RequestHead<'a> {
    /// What `decide` sees of a request, from what HTTP parsed: the host from the target's
    /// authority (absolute-form, HTTP/2) or else the Host header, the target in origin form.
    /// No body yet: a route that needs it says so (`NeedBody`). Inlined: built in place in the
    /// caller's per-request state rather than returned and copied (issue 12).
    #[inline]
    pub fn of(
        method: &'a http::Method,
        uri: &'a http::Uri,
        version: http::Version,
        headers: &'a HeaderMap,
        arrival: Arrival,
    ) -> RequestHead<'a> {
        let (host, host_from) = host_of(uri, version, headers);
        RequestHead {
            method: method.as_str(),
            target: target_of(uri),
            host,
            host_from,
            headers,
            version,
            peer: arrival.peer,
            tls: arrival.tls,
            client_cert: arrival.client_cert,
            body: None,
        }
    }

    /// Why the Host headers make the request's host ambiguous, if they do: more than one
    /// (RFC 9112 §3.2), or one that disagrees with HTTP/2's `:authority`.
    pub fn host_conflict(&self) -> Option<String> {
        // A map whose names are all distinct (its counts say so, without a lookup) has one
        // Host at most: the common case costs no search.
        let repeats = self.headers.len() != self.headers.keys_len();
        if repeats {
            let n = self.headers.get_all(http::header::HOST).iter().count();
            if n > 1 {
                return Some(format!("{n} Host headers"));
            }
        }
        if self.host_from != HostFrom::Pseudo {
            return None;
        }
        let first = self.headers.get(http::header::HOST)?;
        let authority = self.host.unwrap_or("");
        let agrees = first.as_bytes().eq_ignore_ascii_case(authority.as_bytes());
        (!agrees).then(|| {
            format!(
                "Host {:?} disagrees with :authority {authority:?}",
                String::from_utf8_lossy(first.as_bytes())
            )
        })
    }

    /// The first value of a header as text; `None` when absent or not visible ASCII.
    /// A standard name is best given as its `http::header` constant: a `&str` is parsed
    /// (lower-cased, matched against the standard names) on every lookup.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn path(&self) -> &'a str {
        self.query_at().map_or(self.target, |at| &self.target[..at])
    }

    pub fn query(&self) -> Option<&'a str> {
        self.query_at().map(|at| &self.target[at + 1..])
    }

    /// Where the target's `?` is. A byte search: `split_once('?')` goes through the generic
    /// char searcher, which costs several times as much on a short target, on every request.
    fn query_at(&self) -> Option<usize> {
        self.target.bytes().position(|b| b == b'?')
    }
}

/// The host a request is for, and where it was named: the target's authority (absolute-form,
/// HTTP/2's `:authority`) or else the Host header.
#[inline]
pub fn host_of<'a>(
    uri: &'a http::Uri,
    version: http::Version,
    headers: &'a HeaderMap,
) -> (Option<&'a str>, HostFrom) {
    match uri.authority() {
        Some(a) if version >= http::Version::HTTP_2 => (Some(a.as_str()), HostFrom::Pseudo),
        Some(a) => (Some(a.as_str()), HostFrom::Target),
        None => (
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
            HostFrom::Header,
        ),
    }
}

/// The request is a websocket handshake: one `Upgrade: websocket` and `upgrade` among its
/// `Connection` options. The only protocol switch rulegate forwards, and only on a route that
/// declares `websocket` (see [`crate::decide::ForwardPlan::tunnel`]).
///
/// Why only websocket: after a `101` the connection carries whatever the two ends agreed,
/// unseen by the gateway. A websocket speaks frames to the one endpoint the route chose; an
/// `Upgrade: h2c` a backend accepted would carry HTTP/2 requests for any path of that backend
/// past every route's policy (h2c smuggling). Any other `Upgrade`, and a repeated one, is
/// dropped as hop-by-hop and the request forwarded as an ordinary one, as nginx does.
pub fn asks_websocket(headers: &HeaderMap) -> bool {
    upgrade_is_websocket(headers)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether `headers` may carry `name`, a header most requests do not carry: among a few
/// names it is looked for name by name (comparing a few costs less than hashing this one,
/// which every request would pay); a larger map is asked directly. `false` is certain.
pub fn may_carry(headers: &HeaderMap, name: &http::HeaderName) -> bool {
    headers.keys_len() > 8 || headers.keys().any(|k| k == name)
}

/// One `Upgrade` header, and it names `websocket`: a handshake's, or a `101` answering one.
pub fn upgrade_is_websocket(headers: &HeaderMap) -> bool {
    let mut upgrade = headers.get_all(http::header::UPGRADE).iter();
    match (upgrade.next(), upgrade.next()) {
        (Some(only), None) => only.as_bytes().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    }
}

/// The request target as the pipeline reads it: path and query (an absolute-form target's
/// scheme and authority left out).
pub fn target_of(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// `str::trim`: ASCII whitespace (with `char::is_whitespace`'s vertical tab) by byte, and
/// `str::trim` itself only where a non-ASCII byte is left at an end (it may be Unicode
/// whitespace, such as U+00A0). Header values and the fields of an `Authorization` are
/// trimmed on every signed request; `str::trim` decodes each char it looks at.
pub fn trim(s: &str) -> &str {
    // most values have nothing to trim: a visible ASCII byte at each end says so at once
    if let (Some(a), Some(z)) = (s.as_bytes().first(), s.as_bytes().last()) {
        if a.is_ascii_graphic() && z.is_ascii_graphic() {
            return s;
        }
    }
    let white = |b: &u8| matches!(b, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ');
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|b| !white(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !white(b))
        .map_or(start, |e| e + 1);
    let t = &s[start..end];
    match (t.as_bytes().first(), t.as_bytes().last()) {
        (Some(a), Some(z)) if !a.is_ascii() || !z.is_ascii() => t.trim(),
        _ => t,
    }
}

/// Percent-decode one path segment. `None` for malformed escapes or non-UTF-8 results.
pub fn decode_segment(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    // a byte search: `contains('%')` costs several times as much on a short segment
    if !s.bytes().any(|b| b == b'%') {
        return Some(s.into());
    }
    percent_decode(s.as_bytes(), false).map(Into::into)
}

/// Percent-decode a query or form component (`+` is a space there). One without `%` or `+`
/// is its own decoding: copied, not decoded byte by byte and checked as UTF-8 again.
pub fn decode_component(s: &str) -> Option<String> {
    match s.bytes().any(|b| b == b'%' || b == b'+') {
        false => Some(s.to_string()),
        true => percent_decode(s.as_bytes(), true),
    }
}

fn percent_decode(bytes: &[u8], plus_is_space: bool) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(crate::vocab::hex::pair(bytes.get(i + 1..i + 3)?)?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode a decoded path segment for forwarding (RFC 3986 unreserved kept as is).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of the first `name` pair of an `a=b&c=d` string; `Some(None)` when present
/// but undecodable. A key without `%` or `+` is its own decoding (it is already UTF-8), so
/// it is compared as it stands; only the others are decoded, into a string of their own
/// (every key was: the gateway request's one query parameter cost 860 instructions, now
/// 430). Searched by bytes (`&` and `=` are ASCII), not by `split`'s char searcher.
pub fn form_value(data: &str, name: &str) -> Option<Option<String>> {
    split_bytes(data, b'&')
        .filter(|p| !p.is_empty())
        .find_map(|pair| {
            let (k, v) = match memchr::memchr(b'=', pair.as_bytes()) {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, ""),
            };
            let plain = !k.bytes().any(|b| b == b'%' || b == b'+');
            let found = match plain {
                true => k == name,
                false => decode_component(k)? == name,
            };
            found.then(|| decode_component(v))
        })
}

/// The pieces of `s` between `sep`s, as `s.split(sep as char)` gives them: `sep` is ASCII,
/// so a byte search finds what the char search does, and each piece is whole UTF-8. The
/// char searcher costs several times as much on the short strings of a request.
pub fn split_bytes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(sep.is_ascii());
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        match memchr::memchr(sep, s.as_bytes()) {
            Some(at) => {
                rest = Some(&s[at + 1..]);
                Some(&s[..at])
            }
            None => rest.take(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An escape is `%` and two hex digits: `%+1` is malformed, not the byte 1 that
    /// `from_str_radix` made of it (a backend reads it as it stands or refuses it).
    #[test]
    fn an_escape_with_a_sign_is_malformed() {
        assert_eq!(decode_component("%+1"), None);
        assert_eq!(form_value("a=%+1&b=2", "a"), Some(None));
        assert_eq!(decode_component("%2B%41"), Some("+A".to_string()));
    }

    #[test]
    fn may_carry_is_never_false_for_a_header_the_request_carries() {
        let name = http::HeaderName::from_static("x-rulegate-hops");
        for others in [0, 3, 8, 9, 20] {
            let mut headers = HeaderMap::new();
            for i in 0..others {
                let other = http::HeaderName::try_from(format!("x-other-{i}")).unwrap();
                headers.insert(other, http::HeaderValue::from_static("1"));
            }
            // a few names are looked through and the answer is exact; many are not looked at
            assert_eq!(may_carry(&headers, &name), others > 8, "{others} others");
            headers.insert(name.clone(), http::HeaderValue::from_static("2"));
            assert!(
                may_carry(&headers, &name),
                "{others} others, and the header"
            );
        }
    }

    fn head_of<'a>(uri: &'a http::Uri, v: http::Version, h: &'a HeaderMap) -> RequestHead<'a> {
        let arrival = Arrival {
            peer: IpAddr::from([127, 0, 0, 1]),
            tls: false,
            client_cert: false,
        };
        RequestHead::of(&http::Method::GET, uri, v, h, arrival)
    }

    #[test]
    fn the_host_comes_from_the_authority_else_the_host_header() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "b.test".parse().unwrap());
        let absolute: http::Uri = "http://a.test/x?y".parse().unwrap();
        let origin: http::Uri = "/x?y".parse().unwrap();
        let v1 = http::Version::HTTP_11;
        let head = head_of(&absolute, v1, &h);
        assert_eq!(
            (head.host, head.host_from, head.target),
            (Some("a.test"), HostFrom::Target, "/x?y")
        );
        assert_eq!(
            head.host_conflict(),
            None,
            "absolute-form ignores the Host header"
        );
        let head = head_of(&origin, v1, &h);
        assert_eq!(
            (head.host, head.host_from),
            (Some("b.test"), HostFrom::Header)
        );
        let head = head_of(&absolute, http::Version::HTTP_2, &h);
        assert_eq!(head.host_from, HostFrom::Pseudo);
        assert_eq!(
            head.host_conflict().as_deref(),
            Some(r#"Host "b.test" disagrees with :authority "a.test""#)
        );
        h.insert(http::header::HOST, "A.TEST".parse().unwrap());
        assert_eq!(
            head_of(&absolute, http::Version::HTTP_2, &h).host_conflict(),
            None
        );
        h.append(http::header::HOST, "a.test".parse().unwrap());
        h.append(http::header::HOST, "a.test".parse().unwrap());
        for v in [v1, http::Version::HTTP_2] {
            for uri in [&absolute, &origin] {
                let conflict = head_of(uri, v, &h).host_conflict();
                assert_eq!(conflict.as_deref(), Some("3 Host headers"));
            }
        }
    }

    /// [`form_value`] as it was first written, every key decoded: the oracle.
    fn form_value_decoding_every_key(data: &str, name: &str) -> Option<Option<String>> {
        data.split('&').filter(|p| !p.is_empty()).find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode_component(k)?;
            (k == name).then(|| decode_component(v))
        })
    }

    proptest::proptest! {
        /// Trimming by bytes is `str::trim`, Unicode whitespace at the ends included.
        #[test]
        fn trimming_is_str_trim(s in "[ \t\n\u{b}\u{c}\r\u{85}\u{a0}\u{3000}a=é]{0,6}") {
            proptest::prop_assert_eq!(trim(&s), s.trim());
        }

        /// A component copied is what decoding it writes.
        #[test]
        fn a_plain_component_is_its_decoding(s in "[a+%2Bé =]{0,6}") {
            proptest::prop_assert_eq!(decode_component(&s), percent_decode(s.as_bytes(), true));
        }

        /// Comparing a plain key as it stands finds what decoding every key found; the
        /// pieces split by bytes are those `split` gives.
        #[test]
        fn a_form_value_is_found_as_decoding_every_key_found_it(
            pairs in proptest::collection::vec(
                ("([a+é]|%20|%2[bB]|%61|%zz|%C3%A9|%){0,2}", "(=[a+%2é=]{0,3})?"),
                0..5,
            ),
            noise in "[&=a+%é]{0,3}",
            name in "[a +é]{0,2}",
        ) {
            let written: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}{v}")).collect();
            let data = format!("{}&{noise}", written.join("&"));
            proptest::prop_assert_eq!(
                form_value(&data, &name),
                form_value_decoding_every_key(&data, &name)
            );
            let by_bytes: Vec<&str> = split_bytes(&data, b'&').collect();
            proptest::prop_assert_eq!(by_bytes, data.split('&').collect::<Vec<_>>());
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(decode_segment("a%20b").as_deref(), Some("a b"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%ff"), None);
        assert_eq!(
            form_value("a=1&page=2+3&page=9", "page"),
            Some(Some("2 3".into()))
        );
        assert_eq!(form_value("a=1", "page"), None);
        assert_eq!(form_value("page=%zz", "page"), Some(None));
        assert_eq!(form_value("flag", "flag"), Some(Some(String::new())));
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
