//! The access log: one line per request, formatted by hand into a shared buffer and written to
//! stderr at most every 100 ms or every 32 KiB.
//!
//! It is the one log line every request pays for, so it stays off `tracing`'s generic
//! formatting (measured at about 2.4 µs a line, plus one `write(2)` each; see bench/README.md).
//! The fields and, in JSON, the keys are the ones `tracing`'s JSON layer would have written.
//! `RULEGATE_LOG=warn` (or `error`, `off`) turns it off, as it silences other info lines.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

const FLUSH_AT: usize = 32 * 1024;
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

pub struct AccessLog {
    json: bool,
    enabled: bool,
    buffer: Mutex<Buffer>,
}

struct Buffer {
    text: String,
    clock: Clock,
}

/// RFC 3339 timestamps with microseconds, as `tracing` writes them. The part up to the
/// second is formatted once a second; a line adds only its microseconds.
struct Clock {
    second: i64,
    /// `2026-11-22T15:08:20.`
    prefix: String,
}

impl Clock {
    fn write(&mut self, out: &mut String, now_us: i64) {
        let second = now_us.div_euclid(1_000_000);
        if second != self.second || self.prefix.is_empty() {
            let ts = jiff::Timestamp::from_second(second).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            self.prefix.clear();
            let _ = write!(self.prefix, "{ts}");
            // `2026-11-22T15:08:20Z` → `2026-11-22T15:08:20.`
            self.prefix.pop();
            self.prefix.push('.');
            self.second = second;
        }
        out.push_str(&self.prefix);
        let micros = now_us.rem_euclid(1_000_000) as u32;
        pad(out, micros, 6);
        out.push('Z');
    }
}

/// One request, as logged.
pub struct Line<'a> {
    pub request_id: &'a str,
    /// The W3C trace id (32 hex digits): the client's, or the gateway's new trace.
    pub trace: &'a str,
    /// The client's address as text; the peer's `address:port`.
    pub client: &'a str,
    pub peer: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// `…` when the path was cut.
    pub cut: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub code: &'a str,
    /// When the answer was ready, in microseconds since the Unix epoch: the line's timestamp.
    pub at_us: i64,
    pub latency_us: u64,
    pub upstream_us: u64,
}

impl AccessLog {
    pub fn new(json: bool) -> AccessLog {
        let level = std::env::var("RULEGATE_LOG")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let enabled = !matches!(level.trim(), "warn" | "error" | "off");
        AccessLog {
            json,
            enabled,
            buffer: Mutex::new(Buffer {
                text: String::with_capacity(FLUSH_AT * 2),
                clock: Clock {
                    second: 0,
                    prefix: String::new(),
                },
            }),
        }
    }

    pub fn write(&self, l: &Line<'_>) {
        if !self.enabled {
            return;
        }
        let now_us = l.at_us;
        let mut guard = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let Buffer { text, clock } = &mut *guard;
        let b = text;
        if self.json {
            b.push_str(r#"{"timestamp":""#);
            clock.write(b, now_us);
            b.push_str(r#"","level":"INFO","request_id":""#);
            json(b, l.request_id);
            b.push_str(r#"","trace":""#);
            b.push_str(l.trace);
            b.push_str(r#"","client":""#);
            json(b, l.client);
            b.push_str(r#"","peer":""#);
            json(b, l.peer);
            b.push_str(r#"","method":""#);
            json(b, l.method);
            b.push_str(r#"","path":""#);
            json(b, l.path);
            b.push_str(l.cut);
            b.push_str(r#"","route":""#);
            json(b, l.route);
            b.push_str(r#"","status":"#);
            b.push_str(itoa::Buffer::new().format(l.status));
            b.push_str(r#","code":""#);
            json(b, l.code);
            b.push_str(r#"","latency_ms":"#);
            millis(b, l.latency_us);
            b.push_str(r#","upstream_ms":"#);
            millis(b, l.upstream_us);
            b.push_str(r#","target":"access"}"#);
        } else {
            clock.write(b, now_us);
            b.push_str("  INFO access: request_id=");
            b.push_str(l.request_id);
            b.push_str(" trace=");
            b.push_str(l.trace);
            b.push_str(" client=");
            b.push_str(l.client);
            b.push_str(" peer=");
            b.push_str(l.peer);
            b.push_str(" method=");
            b.push_str(l.method);
            b.push_str(" path=");
            b.push_str(l.path);
            b.push_str(l.cut);
            b.push_str(" route=");
            quoted(b, l.route);
            b.push_str(" status=");
            b.push_str(itoa::Buffer::new().format(l.status));
            b.push_str(" code=");
            b.push_str(l.code);
            b.push_str(" latency_ms=");
            millis(b, l.latency_us);
            b.push_str(" upstream_ms=");
            millis(b, l.upstream_us);
        }
        b.push('\n');
        if b.len() >= FLUSH_AT {
            flush(b);
        }
    }

    pub fn flush(&self) {
        flush(&mut self.buffer.lock().unwrap_or_else(|e| e.into_inner()).text);
    }
}

fn flush(buf: &mut String) {
    if !buf.is_empty() {
        let _ = std::io::stderr().lock().write_all(buf.as_bytes());
        buf.clear();
    }
}

/// The last `width` decimal digits of `n`, zero-padded.
fn pad(out: &mut String, mut n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let width = width.min(digits.len());
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // a char at a time: a few ASCII digits, cheaper than validating them as a `str` and
    // copying them with a call to `memcpy`
    for &d in &digits[..width] {
        out.push(char::from(d));
    }
}

/// Microseconds as milliseconds with three decimals.
fn millis(out: &mut String, us: u64) {
    out.push_str(itoa::Buffer::new().format(us / 1000));
    out.push('.');
    pad(out, (us % 1000) as u32, 3);
}

/// `s` quoted as `{:?}` writes it; plain route labels are copied as they are.
fn quoted(out: &mut String, s: &str) {
    if s.bytes()
        .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// A string as the inside of a JSON string literal. Nearly every value (an id, an address, a
/// path, a route label) needs no escape: that is found over whole vectors (no early exit) and
/// the value copied at once.
fn json(out: &mut String, s: &str) {
    let plain = (s.bytes()).fold(true, |ok, b| ok & (b >= 0x20 && b != b'"' && b != b'\\'));
    if plain {
        return out.push_str(s);
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let escaped = |s: &str| {
            let mut out = String::new();
            json(&mut out, s);
            out
        };
        assert_eq!(escaped(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escaped("x\ny"), "x\\u000ay");
    }

    #[test]
    fn quoting_is_what_debug_writes() {
        for s in ["GET /health", "a\"b", "tab\there", "é", "back\\slash", ""] {
            let mut out = String::new();
            quoted(&mut out, s);
            assert_eq!(out, format!("{s:?}"));
        }
    }

    #[test]
    fn hand_formatting_matches_the_standard_library() {
        let mut out = String::new();
        millis(&mut out, 1_234_567);
        out.push(' ');
        millis(&mut out, 5);
        out.push(' ');
        Clock {
            second: 0,
            prefix: String::new(),
        }
        .write(&mut out, 1_763_823_600_000_042);
        assert_eq!(out, "1234.567 0.005 2025-11-22T15:00:00.000042Z");
        out.clear();
        pad(&mut out, 7, 1);
        pad(&mut out, 0, 2);
        pad(&mut out, 999_999, 6);
        assert_eq!(out, "700999999");
    }
}
