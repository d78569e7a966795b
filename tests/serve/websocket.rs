//! WebSocket routes: the handshake headers are checked in the dialect, and an upgrade that
//! passes is tunnelled both ways to a real backend that echoes what it gets. No other switch
//! gets through: an `h2c` upgrade (HTTP/2 to the backend past every route's policy) never
//! reaches a hostile backend that would accept it, a `101` nobody asked for is a bad gateway
//! on a closed connection, and a handshake on a route without `websocket` is a plain request.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// A backend that answers one websocket handshake with 101 and then echoes every byte.
/// Returns its URL and the request head it received.
fn echo_backend() -> (String, std::sync::mpsc::Receiver<String>) {
    one_connection(Duration::from_secs(10), |mut s, head, tx| {
        let _ = tx.send(head);
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        .unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// A backend on loopback that takes one connection, reads its request head and hands both to
/// `serve` with a channel for what it records. Returns its URL and that channel.
fn one_connection<T: Send + 'static>(
    read_timeout: Duration,
    serve: impl FnOnce(std::net::TcpStream, String, std::sync::mpsc::Sender<T>) + Send + 'static,
) -> (String, std::sync::mpsc::Receiver<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(read_timeout)).unwrap();
        if let Some(head) = read_head(&mut s) {
            serve(s, head, tx);
        }
    });
    (url, rx)
}

/// A request head, byte by byte (nothing after it is taken); `None` if the connection ends
/// or stalls first.
fn read_head(s: &mut std::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A websocket route and an ordinary one, both to `backend`.
fn policy(backend: &str) -> String {
    format!(
        r#"
service live {{
    dialect huawei
    hosts "live.test"
    backend feed {{ targets "{backend}" }}
    route GET "/events" {{
        websocket
        forward feed path "/internal/events"
    }}
    route GET "/orders" {{
        forward feed
    }}
}}
"#
    )
}

/// A client text frame "hello" (masked, as clients must send it).
const HELLO_FRAME: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

#[test]
fn an_upgrade_is_tunnelled_both_ways_and_a_bad_handshake_gets_the_dialect_row() {
    let (backend, heads) = echo_backend();
    let dir = TempDir::new();
    dir.write("live.policy", &policy(&backend));
    let gw = Gateway::start(dir.path());

    // without Sec-WebSocket-Key: Huawei's row, before anything reaches the backend
    let r = gw.send(&request(
        "GET",
        "/events",
        "live.test",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    ));
    assert_huawei(
        &r,
        400,
        "APIG.0201",
        "API request error: need header Sec-WebSocket-Key",
    );

    let mut conn = gw.conn();
    conn.send(
        b"GET /events HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    conn.read_until(|b| find(b, b"\r\n\r\n").is_some()).unwrap();
    let head = String::from_utf8_lossy(conn.buffered()).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        lower.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );

    // the backend saw the rewritten path and the handshake headers
    let upstream = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        upstream.starts_with("GET /internal/events HTTP/1.1\r\n"),
        "{upstream}"
    );
    let upstream = upstream.to_ascii_lowercase();
    assert!(
        upstream.contains("\r\nupgrade: websocket\r\n"),
        "{upstream}"
    );
    assert!(
        upstream.contains("\r\nconnection: upgrade\r\n"),
        "{upstream}"
    );
    assert!(
        upstream.contains("\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n"),
        "{upstream}"
    );

    // bytes go through the tunnel and come back, twice
    let consumed = find(conn.buffered(), b"\r\n\r\n").unwrap() + 4;
    let before = conn.buffered().len() - consumed;
    assert_eq!(before, 0, "nothing follows the 101 head yet");
    for round in 1..=2 {
        conn.send(&HELLO_FRAME).unwrap();
        let want = consumed + round * HELLO_FRAME.len();
        conn.read_until(|b| b.len() >= want).unwrap();
        assert_eq!(
            &conn.buffered()[want - HELLO_FRAME.len()..want],
            &HELLO_FRAME
        );
    }
}

#[test]
fn a_websocket_handshake_of_150_header_lines_is_tunnelled() {
    let (backend, heads) = echo_backend();
    let dir = TempDir::new();
    dir.write("live.policy", &policy(&backend));
    let gw = Gateway::start(dir.path());
    let extra: String = (0..150).map(|i| format!("x{i:x}: 1\r\n")).collect();
    let mut conn = gw.conn();
    let head = format!(
        "GET /events HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    conn.send(head.as_bytes()).unwrap();
    conn.read_until(|b| find(b, b"\r\n\r\n").is_some()).unwrap();
    let answer = String::from_utf8_lossy(conn.buffered()).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{answer}"
    );
    let upstream = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        upstream.starts_with("GET /internal/events HTTP/1.1\r\n"),
        "{upstream}"
    );
    let consumed = find(conn.buffered(), b"\r\n\r\n").unwrap() + 4;
    conn.send(&HELLO_FRAME).unwrap();
    let want = consumed + HELLO_FRAME.len();
    conn.read_until(|b| b.len() >= want).unwrap();
    assert_eq!(&conn.buffered()[consumed..want], &HELLO_FRAME);
}

/// A hostile backend: answers every request on its first connection with `answer` (a `101`
/// switching to whatever it likes), then records every byte that reaches it afterwards until
/// the gateway closes the connection (a connection left open says so in those bytes).
/// Returns its URL and (head, bytes after the head).
fn switching_backend(
    answer: &'static [u8],
) -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    one_connection(Duration::from_secs(3), move |mut s, head, tx| {
        let _ = s.write_all(answer);
        let mut after = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => after.extend_from_slice(&buf[..n]),
                Err(e) => {
                    after.extend_from_slice(format!("(still open: {e})").as_bytes());
                    break;
                }
            }
        }
        let _ = tx.send((head, after));
    })
}

const H2C_SWITCH: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The client preface of HTTP/2 and a SETTINGS frame: what a client sends once h2c is on.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Start a gateway before a backend that answers `switch`, send `head` on a fresh connection,
/// then the HTTP/2 preface as if the switch had happened. The client must get Huawei's
/// bad-gateway row, and the backend nothing after the head, its connection closed. Returns the
/// head the backend received, lower-cased.
fn refused_switch(switch: &'static [u8], head: &str) -> String {
    let (backend, seen) = switching_backend(switch);
    let dir = TempDir::new();
    dir.write("live.policy", &policy(&backend));
    let gw = Gateway::start(dir.path());
    let mut conn = gw.conn();
    conn.send(head.as_bytes()).unwrap();
    let mut answer = conn.read_response().unwrap();
    // an HTTP/1.0 request is answered in HTTP/1.0; the rest must be the same row
    if head.contains(" HTTP/1.0\r\n") {
        assert!(
            answer.status_line.starts_with("HTTP/1.0 "),
            "{}",
            answer.status_line
        );
        answer.status_line.replace_range(..8, "HTTP/1.1");
    }
    let _ = conn.send(H2_PREFACE);
    let (upstream, after) = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_huawei(&answer, 502, "APIG.0202", "Backend unavailable");
    assert_eq!(
        String::from_utf8_lossy(&after),
        "",
        "nothing reaches the backend after the refused switch, and its connection is closed"
    );
    upstream.to_ascii_lowercase()
}

#[test]
fn an_h2c_upgrade_never_reaches_a_backend_and_a_switch_it_was_not_asked_for_is_refused() {
    let upstream = refused_switch(
        H2C_SWITCH,
        "GET /orders HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    assert!(
        upstream.starts_with("get /orders http/1.1\r\n"),
        "{upstream}"
    );
    for asked in [
        "\r\nupgrade:",
        "h2c",
        "http2-settings",
        "connection: upgrade",
    ] {
        assert!(
            !upstream.contains(asked),
            "{asked} reached the backend: {upstream}"
        );
    }
}

#[test]
fn a_websocket_route_asks_its_backend_for_a_websocket_only() {
    // the client asks for h2c on a websocket route, with the handshake's headers present
    let upstream = refused_switch(
        H2C_SWITCH,
        "GET /events HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(!upstream.contains("\r\nupgrade:"), "{upstream}");
    assert!(!upstream.contains("h2c"), "{upstream}");
}

#[test]
fn a_backend_that_answers_a_websocket_handshake_with_another_protocol_is_refused() {
    let upstream = refused_switch(
        H2C_SWITCH,
        "GET /events HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(
        upstream.contains("\r\nupgrade: websocket\r\n"),
        "{upstream}"
    );
}

#[test]
fn a_websocket_handshake_on_a_route_without_websocket_is_forwarded_as_a_plain_request() {
    let backend = Backend::text("plain");
    let dir = TempDir::new();
    dir.write("live.policy", &policy(&backend.url()));
    let gw = Gateway::start(dir.path());
    let r = gw.send(
        b"GET /orders HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "plain");
    let got = backend.wait_for(1);
    assert!(!got[0].has("upgrade"), "{:?}", got[0]);
    assert!(!got[0].has("connection"), "{:?}", got[0]);
}

#[test]
fn a_repeated_upgrade_header_is_no_websocket_handshake() {
    let upstream = refused_switch(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /events HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Upgrade: h2c\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(!upstream.contains("\r\nupgrade:"), "{upstream}");
}

#[test]
fn an_http_1_0_handshake_is_no_protocol_switch() {
    // HTTP/1.0 has no protocol switch: the backend is not asked for one, and the 101 it sends
    // anyway is refused
    let upstream = refused_switch(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /events HTTP/1.0\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(
        upstream.starts_with("get /internal/events http/1.1\r\n"),
        "{upstream}"
    );
    assert!(!upstream.contains("\r\nupgrade:"), "{upstream}");
}

#[test]
fn a_101_nobody_asked_for_is_an_answer_never_retried_on_another_target() {
    let (switching, seen) = switching_backend(H2C_SWITCH);
    let other = Backend::text("other");
    let dir = TempDir::new();
    let text = policy(&switching).replace(
        &format!("targets \"{switching}\""),
        &format!(
            "targets \"{switching}\" \"{}\"\n        retries 1",
            other.url()
        ),
    );
    dir.write("live.policy", &text);
    let gw = Gateway::start(dir.path());
    let r = gw.send(
        b"GET /orders HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    );
    assert_huawei(&r, 502, "APIG.0202", "Backend unavailable");
    let (head, _) = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(head.starts_with("GET /orders HTTP/1.1\r\n"), "{head}");
    assert_eq!(other.count(), 0, "the other target got a retry");
}
