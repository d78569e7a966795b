//! WebSocket routes: the handshake headers are checked in the dialect, and an upgrade that
//! passes is tunnelled both ways to a real backend that echoes what it gets.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// A backend that answers one websocket handshake with 101 and then echoes every byte.
/// Returns its URL and the request head it received.
fn echo_backend() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
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
    });
    (url, rx)
}

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
