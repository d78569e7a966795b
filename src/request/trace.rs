//! W3C Trace Context (Level 1): the request's `traceparent` and `tracestate`, read from its
//! head, and the context the gateway passes on to its backend as the parent span.
//!
//! Pure: [`TraceContext::of`] reads the head and the bits of an id the gateway made, so
//! `decide` computes the context once and `serve`, `explain` and `rulegate test` all send or
//! show the same `traceparent` (see `server::planned_upstream`).
//!
//! What is kept and what is not:
//! - `traceparent` is `VV-TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT-PPPPPPPPPPPPPPPP-FF`, lower-case hex
//!   only. Version `ff` is invalid, so are an all-zero trace id or parent id. Version `00` has
//!   exactly these four fields (55 bytes); a higher version may carry more after the flags
//!   (`-…`) and is read as `00` (the specification's forward compatibility). An invalid
//!   value, or more than one `traceparent` header, is treated as absent: a new trace, and the
//!   `tracestate` is dropped with it.
//! - `tracestate` is kept only with a valid `traceparent`. Its header lines are combined with
//!   `,`; empty members are dropped. It is dropped whole when any member is malformed, a key
//!   repeats, it has more than 32 members, or it is longer than 512 bytes once combined: the
//!   specification lets a vendor that cannot parse it drop it, and 512 bytes is what it asks
//!   every vendor to propagate, so a client cannot make every backend request kilobytes longer.
//! - Only the `sampled` flag is kept: Level 1 defines no other, and asks for the unknown ones
//!   to be zero.

use arrayvec::ArrayString;
use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// At most this many `tracestate` members (W3C's limit).
const MAX_MEMBERS: usize = 32;
/// A combined `tracestate` longer than this is dropped.
const MAX_STATE: usize = 512;

/// The trace a request belongs to and the gateway's span in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// 16 bytes, big-endian: the client's trace, or the gateway's new one.
    pub trace_id: u128,
    /// The gateway's span: the backend's parent.
    pub span_id: u64,
    /// The client's span (its `traceparent`'s parent id) when the trace was continued.
    pub parent: Option<u64>,
    pub sampled: bool,
}

/// A valid `traceparent`'s fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

impl TraceContext {
    /// The context of a request with these headers. `bits` are 128 random bits the gateway
    /// made for it (its request id's, see `decide`): a new trace's id is `bits`, and the
    /// gateway's span id is their low 64 bits (the request id's last 16 hex digits), or the
    /// high ones when those are zero. A continued trace keeps the client's trace id and
    /// sampled flag and has the client's span as the gateway span's parent.
    pub fn of(headers: &HeaderMap, bits: u128) -> TraceContext {
        let span_id = match bits as u64 {
            0 => ((bits >> 64) as u64).max(1),
            low => low,
        };
        match incoming(headers) {
            Some(p) => TraceContext {
                trace_id: p.trace_id,
                span_id,
                parent: Some(p.parent_id),
                sampled: p.flags & 1 == 1,
            },
            None => TraceContext {
                trace_id: bits.max(1),
                span_id,
                parent: None,
                sampled: true,
            },
        }
    }

    /// Whether the client's trace was continued (its `tracestate` is then passed on).
    pub fn continued(&self) -> bool {
        self.parent.is_some()
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_hex(&self) -> ArrayString<32> {
        let mut out = [0u8; 32];
        crate::vocab::hex::hex_into(&mut out, &self.trace_id.to_be_bytes());
        ArrayString::from_byte_string(&out).unwrap_or_default()
    }

    /// The backend's `traceparent`: version 00, this trace, the gateway's span as parent.
    /// Written into a buffer byte by byte: it goes on every forward.
    pub fn traceparent(&self) -> HeaderValue {
        let out = self.traceparent_bytes();
        // SAFETY: every byte of `out` is visible ASCII (see `traceparent_bytes`), which is what
        // a header value may hold, so `HeaderValue::from_bytes`'s check could not fail.
        // (Debug builds check anyway.)
        unsafe { HeaderValue::from_maybe_shared_unchecked(bytes::Bytes::copy_from_slice(&out)) }
    }

    /// [`TraceContext::traceparent`]'s bytes: each either a constant (`0`, `-`, `1`) or a
    /// digit from `hex_into`'s `0-9a-f` table.
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        crate::vocab::hex::hex_into(&mut out[3..35], &self.trace_id.to_be_bytes());
        out[35] = b'-';
        crate::vocab::hex::hex_into(&mut out[36..52], &self.span_id.to_be_bytes());
        out[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        out
    }
}

/// The request's `traceparent`, if it carries exactly one valid one.
pub fn incoming(headers: &HeaderMap) -> Option<Parent> {
    if !super::head::may_carry(headers, &TRACEPARENT) {
        return None;
    }
    let mut lines = headers.get_all(TRACEPARENT).iter();
    let value = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_traceparent(value.as_bytes())
}

/// One `traceparent` value's fields, or `None` when it is invalid.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < 55 {
        return None;
    }
    let version = hex(&v[0..2])? as u8;
    if version == 0xff || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    // 00 is exactly 55 bytes; a later version may go on, after a dash
    if (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = hex(&v[3..35])?;
    let parent_id = hex(&v[36..52])? as u64;
    let flags = hex(&v[53..55])? as u8;
    (trace_id != 0 && parent_id != 0).then_some(Parent {
        trace_id,
        parent_id,
        flags,
    })
}

/// Lower-case hex digits (at most 32) as a number; `None` for anything else.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(d))
    })
}

/// The `tracestate` to pass on with a continued trace: the request's lines combined, or
/// `None` when it has none or it is dropped (see the module's rules).
pub fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut out: Vec<u8> = Vec::new();
    let mut keys: arrayvec::ArrayVec<&[u8], MAX_MEMBERS> = arrayvec::ArrayVec::new();
    for line in headers.get_all(TRACESTATE) {
        for member in line.as_bytes().split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            let key = member_key(member)?;
            if keys.contains(&key) {
                return None;
            }
            keys.try_push(key).ok()?;
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(member);
            if out.len() > MAX_STATE {
                return None;
            }
        }
    }
    match out.is_empty() {
        true => None,
        false => HeaderValue::from_bytes(&out).ok(),
    }
}

/// A `key=value` list member's key, if the member is well formed.
fn member_key(member: &[u8]) -> Option<&[u8]> {
    let eq = member.iter().position(|&b| b == b'=')?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    let key_char = |c: &u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    let well_formed_key = match key.iter().position(|&b| b == b'@') {
        None => key.len() <= 256 && key.first()?.is_ascii_lowercase() && key.iter().all(key_char),
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(key_char)
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system.iter().all(key_char)
        }
    };
    // a value: up to 256 printable characters but `,` and `=`, not ending in a space
    let value_char = |c: &u8| matches!(c, 0x20..=0x7e) && *c != b',' && *c != b'=';
    let well_formed_value = (1..=256).contains(&value.len())
        && value.iter().all(value_char)
        && value.last() != Some(&b' ');
    (well_formed_key && well_formed_value).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn parsed(v: &str) -> Option<Parent> {
        parse_traceparent(v.as_bytes())
    }

    #[test]
    fn a_valid_traceparent_gives_its_trace_parent_and_flags() {
        let p = parsed(VALID).unwrap();
        assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p.parent_id, 0x00f067aa0ba902b7);
        assert_eq!(p.flags, 1);
    }

    #[test]
    fn uppercase_hex_is_invalid() {
        assert_eq!(parsed(&VALID.to_uppercase()), None);
        assert_eq!(
            parsed("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn version_ff_and_all_zero_ids_are_invalid() {
        assert_eq!(parsed(&VALID.replacen("00", "ff", 1)), None);
        assert_eq!(
            parsed("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            parsed("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            None
        );
    }

    #[test]
    fn version_00_has_exactly_four_fields() {
        assert_eq!(parsed(&format!("{VALID}-extra")), None);
        assert_eq!(parsed(&VALID[..54]), None);
        assert_eq!(parsed(&format!("{VALID} ")), None);
    }

    #[test]
    fn a_later_version_may_carry_more_fields_and_is_read_as_00() {
        let later = VALID.replacen("00", "cc", 1);
        assert_eq!(parsed(&later), parsed(VALID));
        assert_eq!(parsed(&format!("{later}-what-comes-next")), parsed(VALID));
        // but what follows the flags must start with a dash
        assert_eq!(parsed(&format!("{later}x")), None);
    }

    #[test]
    fn embedded_spaces_and_wrong_separators_are_invalid() {
        assert_eq!(parsed(&VALID.replacen('-', " ", 1)), None);
        assert_eq!(
            parsed("00-4bf92f3577b34da6a3ce929d0e0e47 6-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(parsed(&format!(" {}", &VALID[..54])), None);
        assert_eq!(parsed(""), None);
        assert_eq!(parsed(&"a".repeat(10_000)), None);
        assert_eq!(parsed(&format!("cc{}", &"-a".repeat(5_000))), None);
    }

    #[test]
    fn two_traceparent_headers_are_treated_as_none() {
        let h = headers(&[("traceparent", VALID), ("traceparent", VALID)]);
        assert_eq!(incoming(&h), None);
        let ctx = TraceContext::of(&h, 0xabc);
        assert_eq!(ctx.trace_id, 0xabc);
        assert!(!ctx.continued());
    }

    #[test]
    fn a_new_trace_is_the_request_id_s_bits_and_the_span_its_low_half() {
        let bits = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        let ctx = TraceContext::of(&HeaderMap::new(), bits);
        assert_eq!(ctx.trace_hex().as_str(), format!("{bits:032x}"));
        assert_eq!(ctx.span_id, 0xfedc_ba98_7654_3210);
        assert_eq!(
            ctx.traceparent(),
            "00-0123456789abcdeffedcba9876543210-fedcba9876543210-01"
        );
        // never an all-zero id
        let zero = TraceContext::of(&HeaderMap::new(), 0);
        assert_ne!(zero.trace_id, 0);
        assert_ne!(zero.span_id, 0);
        assert_eq!(TraceContext::of(&HeaderMap::new(), 5 << 64).span_id, 5);
    }

    #[test]
    fn a_continued_trace_keeps_its_id_and_sampled_flag_with_the_gateway_as_parent() {
        let h = headers(&[("traceparent", VALID)]);
        let ctx = TraceContext::of(&h, 0x77);
        assert_eq!(ctx.parent, Some(0x00f067aa0ba902b7));
        assert_eq!(
            ctx.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000077-01"
        );
        let unsampled = headers(&[("traceparent", &VALID.replace("-01", "-fe"))]);
        assert_eq!(
            TraceContext::of(&unsampled, 0x77).traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000077-00"
        );
    }

    #[test]
    fn tracestate_lines_are_combined_and_empty_members_dropped() {
        let h = headers(&[
            ("tracestate", "rojo=00f067aa0ba902b7, ,"),
            ("tracestate", " congo=t61rcWkgMzE,tenant@vendor=x y"),
        ]);
        assert_eq!(
            tracestate(&h).unwrap(),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@vendor=x y"
        );
        assert_eq!(tracestate(&HeaderMap::new()), None);
        assert_eq!(tracestate(&headers(&[("tracestate", " , ")])), None);
    }

    #[test]
    fn a_malformed_tracestate_is_dropped_whole() {
        for bad in [
            "Rojo=1",
            "rojo",
            "rojo=",
            "rojo=1,rojo=2",
            "rojo=a=b",
            "rojo=a\tb",
            "@vendor=1",
            "tenant@Vendor=1",
            "tenant@vendorvendorvendor=1",
            "ro jo=1",
        ] {
            let h = headers(&[("tracestate", "congo=1"), ("tracestate", bad)]);
            assert_eq!(tracestate(&h), None, "{bad}");
        }
    }

    #[test]
    fn a_tracestate_over_32_members_or_512_bytes_is_dropped() {
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(tracestate(&headers(&[("tracestate", &members(32))])).is_some());
        assert_eq!(tracestate(&headers(&[("tracestate", &members(33))])), None);
        let long = format!("a={}", "v".repeat(250));
        let three = format!(
            "{long},{},{}",
            long.replace("a=", "b="),
            long.replace("a=", "c=")
        );
        assert_eq!(tracestate(&headers(&[("tracestate", &three)])), None);
        let huge = format!("a={}", "v".repeat(10_000));
        assert_eq!(tracestate(&headers(&[("tracestate", &huge)])), None);
    }

    #[test]
    fn non_ascii_values_are_invalid() {
        let mut h = HeaderMap::new();
        let mut bytes = VALID.as_bytes().to_vec();
        bytes[10] = 0xe9;
        h.insert(TRACEPARENT, HeaderValue::from_bytes(&bytes).unwrap());
        h.insert(TRACESTATE, HeaderValue::from_bytes(b"a=\xe9").unwrap());
        assert_eq!(incoming(&h), None);
        assert_eq!(tracestate(&h), None);
    }
}
