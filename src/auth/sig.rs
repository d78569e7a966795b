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

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

pub fn format_sdk_date(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default()
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
