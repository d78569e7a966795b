//! A front door that holds: connections that never send a byte are closed on every protocol
//! (`--header-timeout` from accept), a body that does not arrive gets the dialect's row within
//! `--body-timeout` (and on a forward route is never blamed on the backend), a refusal sent
//! before the body arrived leaves a usable connection, a malformed chunked body is the
//! client's bad request, and hyper's read buffer and header count follow the policy's sizes.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const POLICY: &str = r#"
default dialect huawei

service shop {
    dialect huawei
    hosts "shop.test"
    app mobile {
        key "ak-mobile"
        secret file "mobile"
    }
    auth tokens oauth2 {
        signing key file "signing"
        access ttl 1h
        refresh ttl 1d
    }
    auth signed app-signature { clock skew 15m }
    backend main {
        targets "@MAIN@"
        timeout @BACKEND_TIMEOUT@
        connect timeout 1s
    }
    route POST "/form" {
        require form "name" string 1..32
        mock 200 text "form"
    }
    route POST "/signed" {
        auth signed
        mock 200 text "signed"
    }
    route POST "/mock-upload" {
        limits {
            body 1KiB
        }
        mock 201 text "stored"
    }
    route ANY "/oauth2/token" { issue tokens tokens }
    route GET POST "/api/{rest+}" { forward main path "/v1/{rest+}" }
    route GET "/mock" { mock 200 json {"ok": true} }
    route GET "/guarded" {
        auth signed
        mock 200 text "guarded"
    }
}

service tiny {
    dialect tencent
    hosts "tiny.test"
    limits {
        headers 200B
    }
    route POST "/form" {
        require form "name" string 1..32
        mock 200 text "form"
    }
    route GET "/mock" { mock 200 text "tiny" }
}

service users {
    dialect jdcloud
    hosts "jd.test"
    app sdk {
        key "ak-sdk"
        secret file "sdk"
    }
    auth jd jd-signature {}
    route POST "/v1/users" {
        auth jd
        mock 200 text "users"
    }
}
"#;

fn policy_dir(main: &str, backend_timeout: &str) -> TempDir {
    let dir = TempDir::new();
    let text = POLICY
        .replace("@MAIN@", main)
        .replace("@BACKEND_TIMEOUT@", backend_timeout);
    dir.write("shop.policy", &text);
    dir.write("mobile", "mobile-secret\n");
    dir.write("sdk", "sdk-secret\n");
    dir.write("signing", "serve-test-signing-key-0123456789\n");
    dir
}

/// Read until the peer closes; how long that took. Panics if it stays open `within`.
fn closed_within(stream: &mut impl Read, within: Duration) -> (Duration, Vec<u8>) {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (t.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (t.elapsed(), got),
            Err(e) => panic!("still open after {:?} ({e})", t.elapsed()),
        }
        assert!(t.elapsed() < within, "still open after {:?}", t.elapsed());
    }
}

fn raw_tcp(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The frame types of an HTTP/2 byte stream from a server.
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
const GOAWAY: u8 = 7;

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout_on_plain_http_and_http2() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start_with(dir.path(), &["--header-timeout", "300ms"]);

    // not a byte
    let (waited, _) = closed_within(&mut raw_tcp(gw.addr), Duration::from_secs(3));
    assert!(waited >= Duration::from_millis(250), "{waited:?}");

    // half an HTTP/2 preface: the protocol is not known yet
    let mut half = raw_tcp(gw.addr);
    half.write_all(&H2_PREFACE[..10]).unwrap();
    closed_within(&mut half, Duration::from_secs(3));

    // the HTTP/2 preface and SETTINGS, then nothing: a GOAWAY, then the close
    let mut h2 = raw_tcp(gw.addr);
    h2.write_all(&[H2_PREFACE, H2_SETTINGS].concat()).unwrap();
    let (_, frames) = closed_within(&mut h2, Duration::from_secs(3));
    assert!(
        h2_frame_types(&frames).contains(&GOAWAY),
        "frames {:?}",
        h2_frame_types(&frames)
    );

    // the admin port shares the process's descriptors: the same rule
    closed_within(&mut raw_tcp(gw.admin), Duration::from_secs(3));

    // a connection that keeps asking stays open past the timeout
    let mut busy = gw.conn();
    for _ in 0..4 {
        let r = busy
            .round_trip(&request("GET", "/mock", "shop.test", &[], b""))
            .unwrap();
        expect_status(&r, 200);
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn an_http2_connection_idle_after_its_last_stream_gets_a_goaway() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start_with(dir.path(), &["--header-timeout", "300ms"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
                TokioExecutor::new(),
                TokioIo::new(stream),
            )
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let request = http::Request::builder()
            .uri("http://shop.test/mock")
            .body(Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
        // the server says goodbye (GOAWAY, answered by the client's ping ack): the
        // connection ends cleanly
        let ended = tokio::time::timeout(Duration::from_secs(3), conn)
            .await
            .expect("the idle HTTP/2 connection is closed");
        assert!(ended.unwrap().is_ok(), "a graceful close, not an error");
    });
}

#[test]
fn a_silent_tls_connection_is_closed_after_the_handshake_and_the_header_timeout() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let dir = policy_dir(&closed_url(), "5s");
    crate::tls::pki(dir.path());
    let tls = free_addr();
    let p = |f: &str| dir.path().join(f).display().to_string();
    let gw = Gateway::start_with(
        dir.path(),
        &[
            "--header-timeout",
            "300ms",
            "--tls-listen",
            &tls.to_string(),
            "--cert",
            &p("server.crt"),
            "--key",
            &p("server.key"),
        ],
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.path().join("ca.crt")).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tcp = raw_tcp(tls);
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        assert!(t.elapsed() < Duration::from_secs(3), "still open");
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        t.elapsed()
    );
    drop(gw);
}

/// A request whose head announces `body`, then sends it one byte every 200 ms; the answer.
fn slow_body(gw: &Gateway, head: &[u8], body: &[u8]) -> (Resp, Duration) {
    let mut c = gw.conn();
    c.send(head).unwrap();
    let t = Instant::now();
    let sender = c.try_clone_stream();
    let body = body.to_vec();
    let trickle = std::thread::spawn(move || {
        let mut sender = sender;
        for b in body {
            if sender.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let r = c.read_response().expect("an answer to a slow body");
    let waited = t.elapsed();
    c.shutdown();
    let _ = trickle.join();
    (r, waited)
}

fn head(path: &str, host: &str, headers: &[(&str, &str)], length: usize) -> Vec<u8> {
    let len = length.to_string();
    let mut all = headers.to_vec();
    all.push(("Content-Length", &len));
    request("POST", path, host, &all, b"")
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[test]
fn a_slow_body_gets_the_dialects_bad_request_row_within_the_body_timeout() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start_with(dir.path(), &["--body-timeout", "600ms"]);
    let body = b"name=somebody&more=padding";
    let within = |waited: Duration| {
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
            "answered after {waited:?}"
        );
    };
    for (path, headers) in [
        ("/form", vec![FORM]),
        ("/signed", vec![("Content-Type", "text/plain")]),
        ("/mock-upload", vec![("Content-Type", "text/plain")]),
        ("/oauth2/token", vec![FORM]),
    ] {
        let (r, waited) = slow_body(&gw, &head(path, "shop.test", &headers, body.len()), body);
        assert_huawei(&r, 400, "APIG.0602", "Bad request.");
        assert_eq!(r.header("connection"), Some("close"), "{path}");
        within(waited);
    }
    let (r, waited) = slow_body(&gw, &head("/form", "tiny.test", &[FORM], body.len()), body);
    assert_tencent(&r, 400, "Bad Request.");
    within(waited);
    let (r, waited) = slow_body(
        &gw,
        &head(
            "/v1/users",
            "jd.test",
            &[("Content-Type", "text/plain")],
            body.len(),
        ),
        body,
    );
    assert_jdcloud(&r, 400, "INVALID_ARGUMENT", "Parameter Argument Error");
    within(waited);
    // the access log has the row's code
    let line = gw.access_line(r.header("x-jdcloud-request-id").unwrap());
    assert_eq!(line["status"], 400);
    assert_eq!(line["code"], "INVALID_ARGUMENT");
}

/// `rulegate_upstream_errors_total` lines of the metrics.
fn upstream_errors(gw: &Gateway) -> Vec<String> {
    gw.metrics()
        .lines()
        .filter(|l| l.starts_with("rulegate_upstream_errors_total{"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_slow_body_on_a_forward_route_is_the_clients_fault_not_a_backend_timeout() {
    let backend = Backend::text("stored");
    let body = b"0123456789abcdef";
    let path = "/api/items";
    // the body timeout strikes first ...
    let dir = policy_dir(&backend.url(), "5s");
    let gw = Gateway::start_with(dir.path(), &["--body-timeout", "600ms"]);
    let (r, waited) = slow_body(&gw, &head(path, "shop.test", &[], body.len()), body);
    assert_huawei(&r, 400, "APIG.0602", "Bad request.");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // ... or the backend's timeout passes while the client is still sending
    let dir = policy_dir(&backend.url(), "500ms");
    let gw2 = Gateway::start_with(dir.path(), &["--body-timeout", "30s"]);
    let (r, waited) = slow_body(&gw2, &head(path, "shop.test", &[], body.len()), body);
    assert_huawei(&r, 400, "APIG.0602", "Bad request.");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    for gw in [&gw, &gw2] {
        assert_eq!(upstream_errors(gw), Vec::<String>::new());
        let logs = gw.log_lines();
        assert!(
            !logs.iter().any(|l| l.contains("backend")),
            "a slow client is not logged as a backend failure: {logs:#?}"
        );
    }
    // and a whole body is forwarded as ever
    let r = gw.send(&request("POST", path, "shop.test", &[], body));
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "stored");
}

#[test]
fn a_malformed_chunked_body_on_a_forward_route_is_the_clients_bad_request() {
    let backend = Backend::text("stored");
    let dir = policy_dir(&backend.url(), "5s");
    let gw = Gateway::start(dir.path());
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhelloXX0\r\n\r\n",
        // a bad size after a good chunk: part of the body is already on its way
        b"5\r\nhello\r\nzz\r\n\r\n",
    ] {
        let r = gw.send(&request(
            "POST",
            "/api/items",
            "shop.test",
            &[("Transfer-Encoding", "chunked")],
            body,
        ));
        assert_huawei(&r, 400, "APIG.0602", "Bad request.");
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(upstream_errors(&gw), Vec::<String>::new());
    let logs = gw.log_lines();
    assert!(
        !logs.iter().any(|l| l.contains("backend failed")),
        "{logs:#?}"
    );
    // a form route reading the same body answers the same
    let r = gw.send(&request(
        "POST",
        "/form",
        "shop.test",
        &[FORM, ("Transfer-Encoding", "chunked")],
        b"zz\r\nname=x\r\n0\r\n\r\n",
    ));
    assert_huawei(&r, 400, "APIG.0602", "Bad request.");
}

#[test]
fn a_refusal_before_the_body_arrived_leaves_a_connection_a_pooled_client_can_reuse() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start(dir.path());
    let body = b"name=pooled-client-body";
    // refused on its head alone (no signature), before a byte of the body is sent
    let mut c = gw.conn();
    for _ in 0..3 {
        c.send(&head(
            "/signed",
            "shop.test",
            &[
                ("Content-Type", "application/json"),
                ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
            ],
            body.len(),
        ))
        .unwrap();
        let r = c.read_response().expect("the refusal");
        assert_huawei(
            &r,
            401,
            "APIG.0303",
            "Incorrect app authentication information: authorization header not found",
        );
        assert_eq!(r.header("connection"), None, "the connection is kept");
        // the client sends its body, then its next request, on the same connection
        std::thread::sleep(Duration::from_millis(50));
        c.send(body).unwrap();
        let r = c
            .round_trip(&request("GET", "/mock", "shop.test", &[], b""))
            .expect("the next request on the same connection is answered");
        expect_status(&r, 200);
    }
    // a client waiting for `100 Continue` may or may not send its body after a refusal:
    // the refusal says the connection closes
    let mut c = gw.conn();
    let r = c
        .round_trip(&head(
            "/signed",
            "shop.test",
            &[
                ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
                ("Expect", "100-continue"),
            ],
            body.len(),
        ))
        .unwrap();
    assert_huawei(
        &r,
        401,
        "APIG.0303",
        "Incorrect app authentication information: authorization header not found",
    );
    assert_eq!(r.header("connection"), Some("close"));
    // a body too large to throw away: the refusal says the connection closes
    let mut c = gw.conn();
    let r = c
        .round_trip(&head(
            "/signed",
            "shop.test",
            &[("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD")],
            1 << 20,
        ))
        .unwrap();
    assert_huawei(
        &r,
        401,
        "APIG.0303",
        "Incorrect app authentication information: authorization header not found",
    );
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn a_head_of_150_tiny_headers_is_accepted_and_the_size_limits_still_answer_in_the_dialect() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start(dir.path());
    let tiny: Vec<(String, String)> = (0..150).map(|i| (format!("x{i:x}"), "1".into())).collect();
    let headers: Vec<(&str, &str)> = tiny.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let raw = request("GET", "/mock", "shop.test", &headers, b"");
    assert!(raw.len() < 1300, "{}", raw.len());
    expect_status(&gw.send(&raw), 200);
    // the same head on a service whose headers may total 200 bytes: its dialect's row
    let raw = request("GET", "/mock", "tiny.test", &headers, b"");
    assert_tencent(&gw.send(&raw), 431, "Request Header Fields Too Large.");
    // a head beyond every service's limits, larger than hyper's buffer: the default dialect's
    let huge = "h".repeat(400 * 1024);
    let r = gw.send(&request(
        "GET",
        "/mock",
        "shop.test",
        &[("X-Huge", &huge)],
        b"",
    ));
    assert_huawei(&r, 494, "APIG.0201", "Request headers too large.");
    // more header lines than the count hyper is given (256): the header-size row too, never a
    // bare hyper answer
    let many: Vec<(String, String)> = (0..300).map(|i| (format!("x{i:x}"), "1".into())).collect();
    let headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = gw.send(&request("GET", "/mock", "shop.test", &headers, b""));
    assert_huawei(&r, 494, "APIG.0201", "Request headers too large.");
}

/// `n` header lines of a few bytes each.
fn tiny_headers(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("x{i:x}"), "1".into())).collect()
}

fn pairs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn heads_of_150_lines_among_pipelined_requests_on_one_keep_alive_connection_are_all_answered() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start(dir.path());
    let long = tiny_headers(150);
    let long = request("GET", "/mock", "shop.test", &pairs(&long), b"");
    let short = request("GET", "/mock", "shop.test", &[], b"");
    let mut conn = gw.conn();
    // a short head first, then a long one, a short one and a long one in one write
    expect_status(&conn.round_trip(&short).unwrap(), 200);
    conn.send(&[long.clone(), short.clone(), long.clone()].concat())
        .unwrap();
    for _ in 0..3 {
        expect_status(&conn.read_response().unwrap(), 200);
    }
    // a long head whose lines arrive in two parts, the first already over 100 lines
    let split = find(&long, b"x7f:").unwrap();
    conn.send(&long[..split]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    conn.send(&long[split..]).unwrap();
    expect_status(&conn.read_response().unwrap(), 200);
    expect_status(&conn.round_trip(&short).unwrap(), 200);
    // still the header-size row for a head of more than 256 lines, on the same connection
    let many = tiny_headers(300);
    let r = conn
        .round_trip(&request("GET", "/mock", "shop.test", &pairs(&many), b""))
        .unwrap();
    assert_huawei(&r, 494, "APIG.0201", "Request headers too large.");
}

#[test]
fn a_response_body_ending_like_hypers_431_is_delivered_whole_on_keep_alive_and_close() {
    // the exact bytes hyper answers a head of too many lines with, as a backend's body
    const LOOKALIKE: &str = "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
        content-length: 0\r\ndate: Fri, 04 Dec 2026 09:59:00 GMT\r\n\r\n";
    let backend = Backend::text(LOOKALIKE);
    let dir = policy_dir(&backend.url(), "5s");
    let gw = Gateway::start(dir.path());
    let mut conn = gw.conn();
    let get = request("GET", "/api/page", "shop.test", &[], b"");
    for _ in 0..2 {
        let r = conn.round_trip(&get).unwrap();
        expect_status(&r, 200);
        assert_eq!(r.body_str(), LOOKALIKE);
    }
    let close = request(
        "GET",
        "/api/page",
        "shop.test",
        &[("Connection", "close")],
        b"",
    );
    let r = conn.round_trip(&close).unwrap();
    expect_status(&r, 200);
    assert_eq!(r.body_str(), LOOKALIKE);
}

/// The gateway's resident memory, from /proc.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn slow_clients_with_large_heads_do_not_hold_megabytes_each() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start_with(dir.path(), &["--header-timeout", "30s"]);
    let before = rss_kib(gw.pid());
    // 64 clients each send 1 MiB of a request head and wait: within the old 2 MiB buffer,
    // beyond the policy's 128 KiB of headers
    let line = format!("X-Pad: {}\r\n", "p".repeat(1000));
    let chunk = line.repeat(1024);
    let mut clients = Vec::new();
    for _ in 0..64 {
        let mut s = raw_tcp(gw.addr);
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /mock HTTP/1.1\r\nHost: shop.test\r\n");
        let _ = s.write_all(chunk.as_bytes());
        clients.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib(gw.pid()).saturating_sub(before);
    assert!(
        grown < 24 * 1024,
        "64 slow clients grew the gateway by {grown} KiB"
    );
    drop(clients);
}

#[test]
fn a_head_within_a_raised_header_limit_is_served_also_after_a_reload_raises_it() {
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start(dir.path());
    let big = "b".repeat(600 * 1024);
    let raw = request("GET", "/mock", "shop.test", &[("X-Big", &big)], b"");
    // over the default limits: the dialect's row
    assert_huawei(
        &gw.send(&raw),
        494,
        "APIG.0201",
        "Request headers too large.",
    );
    // a service that allows 1 MiB of headers: hyper's buffer grows with it
    let raised = POLICY.replace(
        "    hosts \"shop.test\"\n",
        "    hosts \"shop.test\"\n    limits {\n        header 1MiB\n        headers 1MiB\n    }\n",
    );
    dir.write(
        "shop.policy",
        &raised
            .replace("@MAIN@", &closed_url())
            .replace("@BACKEND_TIMEOUT@", "5s"),
    );
    gw.signal(SIGHUP);
    poll(WAIT, "the raised limit", || {
        (gw.send(&raw).status == 200).then_some(())
    });
    let r = gw.send(&raw);
    expect_status(&r, 200);
    assert_eq!(r.body_str(), r#"{"ok":true}"#);
}

/// A request body that never sends a byte.
struct Silent;

impl hyper::body::Body for Silent {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[test]
fn a_silent_http2_body_gets_the_row_within_the_body_timeout() {
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let dir = policy_dir(&closed_url(), "5s");
    let gw = Gateway::start_with(dir.path(), &["--body-timeout", "600ms"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method("POST")
            .uri("http://shop.test/form")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Silent)
            .unwrap();
        let t = Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
            .await
            .expect("an answer within the body timeout")
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(response.status(), 400);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_generated_id(&id);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, huawei_body("APIG.0602", "Bad request.", &id));
    });
}
