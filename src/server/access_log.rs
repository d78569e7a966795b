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
    buffer: Mutex<String>,
}

/// One request, as logged.
pub struct Line<'a> {
    pub request_id: &'a str,
    pub client: std::net::IpAddr,
    pub peer: std::net::SocketAddr,
    pub method: &'a str,
    pub path: &'a str,
    /// `…` when the path was cut.
    pub cut: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub code: &'a str,
    pub latency_ms: f64,
    pub upstream_ms: f64,
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
            buffer: Mutex::new(String::with_capacity(FLUSH_AT * 2)),
        }
    }

    pub fn write(&self, l: &Line<'_>) {
        if !self.enabled {
            return;
        }
        let now = jiff::Timestamp::now();
        let mut buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = if self.json {
            write!(
                buf,
                r#"{{"timestamp":"{now:.6}","level":"INFO","request_id":"{}","client":"{}","peer":"{}","method":"{}","path":"{}{}","route":"{}","status":{},"code":"{}","latency_ms":{},"upstream_ms":{},"target":"access"}}"#,
                Json(l.request_id),
                l.client,
                l.peer,
                Json(l.method),
                Json(l.path),
                l.cut,
                Json(l.route),
                l.status,
                Json(l.code),
                l.latency_ms,
                l.upstream_ms,
            )
        } else {
            write!(
                buf,
                "{now:.6}  INFO access: request_id={} client={} peer={} method={} path={}{} route={:?} status={} code={} latency_ms={:.3} upstream_ms={:.3}",
                l.request_id, l.client, l.peer, l.method, l.path, l.cut, l.route, l.status, l.code, l.latency_ms, l.upstream_ms,
            )
        };
        buf.push('\n');
        if buf.len() >= FLUSH_AT {
            flush(&mut buf);
        }
    }

    pub fn flush(&self) {
        flush(&mut self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

fn flush(buf: &mut String) {
    if !buf.is_empty() {
        let _ = std::io::stderr().lock().write_all(buf.as_bytes());
        buf.clear();
    }
}

/// A string as the inside of a JSON string literal.
struct Json<'a>(&'a str);

impl std::fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(Json(r#"a"b\c"#).to_string(), r#"a\"b\\c"#);
        assert_eq!(Json("x\ny").to_string(), "x\\u000ay");
    }
}
