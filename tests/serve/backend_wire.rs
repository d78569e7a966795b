//! The exchange with a backend on the wire (`server/h1.rs`): how the request is framed, how
//! the backend's answer is read, when its connection is reused — against backends that write
//! their bytes by hand, hostile ones included.

use crate::common::*;
use crate::forward::forward_policy;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A backend that answers every request with `raw`, byte for byte; `keep` says whether it
/// keeps the connection afterwards.
fn raw_backend(raw: &'static [u8], keep: bool) -> Backend {
    Backend::start(move |_, s| s.write_all(raw).and_then(|_| s.flush()).is_ok() && keep)
}

/// `times` GETs of `/plain/x`, one after another (`pause` between them), through a gateway
/// forwarding to `backend`: each is answered 200 with `body`. Their answers.
fn each_answered(backend: &Backend, times: usize, body: &str, pause: Duration) -> Vec<Resp> {
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    (0..times)
        .map(|i| {
            std::thread::sleep(pause);
            let r = gw.get("shop.test", "/plain/x");
            expect_status(&r, 200);
            assert_eq!(r.body_str(), body, "request {i}");
            r
        })
        .collect()
}

#[test]
fn a_chunked_answer_with_extensions_and_trailers_arrives_whole_and_its_connection_is_reused() {
    let backend = raw_backend(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        true,
    );
    each_answered(&backend, 3, "hello world", Duration::ZERO);
    assert_eq!(
        backend.connections(),
        1,
        "one backend connection for three requests"
    );
}

#[test]
fn transfer_encoding_beside_content_length_is_read_as_chunked_and_the_connection_dropped() {
    // the Content-Length a response-splitting backend would add to desynchronise a proxy
    let backend = raw_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          b\r\nhello world\r\n0\r\n\r\n",
        true,
    );
    for r in each_answered(&backend, 2, "hello world", Duration::ZERO) {
        assert_ne!(r.header("content-length"), Some("3"));
    }
    assert_eq!(backend.connections(), 2, "the connection is never reused");
}

/// The client's answer when the backend sends `raw`: the unavailable row, byte for byte.
fn answered_0202(raw: Vec<u8>) {
    let backend = Backend::start(move |_, s| s.write_all(&raw).is_ok());
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let r = gw.get("shop.test", "/plain/x");
    assert_huawei(&r, 502, "APIG.0202", "Backend unavailable");
}

#[test]
fn differing_content_lengths_give_502_0202() {
    answered_0202(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
    );
}

#[test]
fn a_content_length_that_is_not_a_plain_number_gives_502_0202() {
    for length in ["+5", "0x5", "5 5", "99999999999999999999"] {
        answered_0202(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nhello").into_bytes(),
        );
    }
}

#[test]
fn a_response_head_over_64_kib_gives_502_0202() {
    let big = "a".repeat(70 << 10);
    answered_0202(
        format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 2\r\n\r\nok").into_bytes(),
    );
}

#[test]
fn a_bare_lf_in_a_chunk_line_ends_the_answer_and_its_connection() {
    // `5;x\n` would be read by a lenient parser as a chunk size line and by a strict one as
    // part of an extension: the two then disagree on where the body ends
    let backend = raw_backend(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\nhello\r\n0\r\n\r\n",
        true,
    );
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let mut conn = gw.conn();
    conn.set_read_timeout(Duration::from_secs(5));
    let answer = conn.round_trip(&request("GET", "/plain/x", "shop.test", &[], b""));
    assert!(
        answer.is_err(),
        "the client sees the answer cut short, not a body: {answer:?}"
    );
    let again = gw
        .conn()
        .round_trip(&request("GET", "/plain/x", "shop.test", &[], b""));
    assert!(again.is_err(), "{again:?}");
    assert_eq!(
        backend.connections(),
        2,
        "the broken connection is not reused"
    );
}

#[test]
fn bytes_after_an_answers_content_length_are_never_read_as_the_next_answer() {
    // a backend that smuggles a second answer behind the first: it must not become the
    // answer to the next client's request on the same connection
    let backend = raw_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
          HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
        true,
    );
    each_answered(&backend, 3, "ok", Duration::from_millis(50));
    assert_eq!(
        backend.connections(),
        3,
        "a connection with bytes left over is dropped"
    );
}

#[test]
fn an_interim_100_continue_is_skipped() {
    let backend = raw_backend(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        true,
    );
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let r = gw.get("shop.test", "/plain/x");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "ok");
}

#[test]
fn a_close_delimited_http_1_0_answer_is_read_to_the_close() {
    let backend = raw_backend(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it",
        false,
    );
    for r in each_answered(&backend, 2, "all of it", Duration::ZERO) {
        assert_eq!(
            r.status_line, "HTTP/1.1 200 OK",
            "the client is answered in its version"
        );
    }
    assert_eq!(backend.connections(), 2);
}

#[test]
fn a_connection_the_backend_closed_while_idle_is_not_used() {
    // answers with keep-alive, then closes: the next request must not be sent on it
    let backend = Backend::start(|_, s| {
        respond(s, 200, &[], b"ok");
        false
    });
    each_answered(&backend, 3, "ok", Duration::from_millis(50));
    assert_eq!(backend.connections(), 3);
}

#[test]
fn the_request_is_framed_as_its_body_is() {
    let backend = Backend::start(|_, s| respond(s, 200, &[], b"ok"));
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let mut conn = gw.conn();
    let get = conn
        .round_trip(&request("GET", "/api/a", "shop.test", &[], b""))
        .unwrap();
    expect_status(&get, 200);
    let sized = request("POST", "/api/b", "shop.test", &[], b"0123456789");
    expect_status(&conn.round_trip(&sized).unwrap(), 200);
    let streamed = request(
        "POST",
        "/api/c",
        "shop.test",
        &[("Transfer-Encoding", "chunked")],
        &chunked(b"abcdefghij", 3),
    );
    expect_status(&conn.round_trip(&streamed).unwrap(), 200);

    let seen = backend.wait_for(3);
    assert!(!seen[0].has("content-length") && !seen[0].has("transfer-encoding"));
    assert_eq!(seen[1].header("content-length"), Some("10"));
    assert!(!seen[1].has("transfer-encoding"));
    assert_eq!(seen[1].body, b"0123456789");
    assert_eq!(seen[2].header("transfer-encoding"), Some("chunked"));
    assert!(!seen[2].has("content-length"));
    assert_eq!(seen[2].body, b"abcdefghij");
    assert_eq!(backend.connections(), 1);
}

/// A backend that reads only the request head, answers 413 and closes: it will not take the
/// body the client is still sending.
fn early_refusal_backend() -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let refusal = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo much";
        let _ = s.write_all(refusal);
        let _ = s.shutdown(std::net::Shutdown::Write);
        std::thread::sleep(Duration::from_millis(500));
    });
    (addr, handle)
}

#[test]
fn a_backend_that_refuses_before_reading_the_body_has_its_answer_delivered() {
    let (addr, backend) = early_refusal_backend();
    let dir = forward_policy(&format!("http://{addr}"));
    let gw = Gateway::start(dir.path());
    let mut client = TcpStream::connect(gw.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // a body announced but held back: only the backend's early answer can end this exchange
    let head = "POST /api/up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 100000\r\n\r\n0123";
    client.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"too much") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 413 Payload Too Large\r\n") && text.ends_with("too much"),
        "{text}"
    );
    backend.join().unwrap();
}
