//! What both generators need: where a whole HTTP/1.1 response ends in the bytes read so far
//! (the servers measured answer with a `Content-Length`), durations on the command line,
//! percentiles of the recorded latencies, and how a run that fails ends.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// What the bytes read so far on a connection hold.
pub enum Response {
    /// Not a whole response yet.
    Partial,
    /// A whole response: its length in bytes, its status, and whether the server closes after it.
    Done {
        len: usize,
        status: u16,
        close: bool,
    },
    /// One this generator does not read (chunked, no length, malformed).
    Bad,
}

pub fn response_end(buf: &[u8]) -> Response {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Response::Partial;
    };
    let head_end = head_end + 4;
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Response::Bad;
    };
    let status = head.get(9..12).and_then(|s| s.parse().ok());
    let (mut length, mut close) = (None, false);
    for l in head.lines().skip(1) {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.trim().eq_ignore_ascii_case("close");
        }
    }
    match (status, length) {
        (Some(status), Some(n)) if buf.len() >= head_end + n => Response::Done {
            len: head_end + n,
            status,
            close,
        },
        (Some(_), Some(_)) => Response::Partial,
        _ => Response::Bad,
    }
}

pub fn seconds(v: &str) -> Result<Duration, String> {
    let (n, unit) = match v.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (v.strip_suffix('s').unwrap_or(v), 1.0),
    };
    n.parse::<f64>()
        .map(|n| Duration::from_secs_f64(n * unit))
        .map_err(|_| format!("not a duration: {v:?} (10s, 500ms)"))
}

/// The `p`th percentile of latencies in µs, sorted, in ms (0 when there are none).
pub fn percentile(sorted_micros: &[u32], p: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted_micros.len() as f64).ceil() as usize;
    sorted_micros[i.clamp(1, sorted_micros.len()) - 1] as f64 / 1000.0
}

/// The value, or the error on stderr after the tool's name and exit status 1.
pub fn or_exit<T>(tool: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("{tool}: {e}");
        std::process::exit(1)
    })
}

/// `scheme://authority/path` → the address to connect to, the authority and the path.
pub fn split_url<'u>(url: &'u str, scheme: &str) -> Result<(SocketAddr, &'u str, &'u str), String> {
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or(format!("only {scheme}:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or(format!("{authority}: no address"))?;
    Ok((addr, authority, path))
}
