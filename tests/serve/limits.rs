//! Size limits: URI, headers, and bodies in both framings.

use crate::common::*;
use crate::forward::forward_policy;

#[test]
fn uri_over_32kib_gives_414() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());

    let target = format!("/mock?q={}", "a".repeat(40 * 1024));
    assert_huawei(
        &gw.get("shop.test", &target),
        414,
        "APIG.0201",
        "Request URI too large.",
    );
    // just under the limit is fine
    let target = format!("/mock?q={}", "a".repeat(32 * 1024 - 16));
    expect_status(&gw.get("shop.test", &target), 200);
}

#[test]
fn header_over_32kib_gives_494() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());

    let big = "b".repeat(200 * 1024);
    let r = gw.send(&request(
        "GET",
        "/mock",
        "shop.test",
        &[("X-Big", &big)],
        b"",
    ));
    assert_huawei(&r, 494, "APIG.0201", "Request headers too large.");
}

/// Send a request head that announces `length` body bytes, send none, and read the answer:
/// a limit on Content-Length is decided before any of the body is read.
fn announce_body(gw: &Gateway, path: &str, length: usize) -> Resp {
    let mut c = gw.conn();
    let len = length.to_string();
    let head = request(
        "POST",
        path,
        "shop.test",
        &[("Content-Length", &len), ("Content-Type", "text/plain")],
        b"",
    );
    c.send(&head).unwrap();
    c.read_response().expect("an answer before the body")
}

#[test]
fn content_length_over_the_route_limit_gives_413_before_the_body_is_sent() {
    let backend = Backend::text("stored");
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    for path in ["/upload", "/mock-upload"] {
        assert_huawei(
            &announce_body(&gw, path, 1025),
            413,
            "APIG.0201",
            "Request entity too large.",
        );
    }
    assert_eq!(backend.connections(), 0);

    // exactly the limit passes
    let r = gw.send(&request("POST", "/upload", "shop.test", &[], &[b'x'; 1024]));
    expect_status(&r, 200);
    assert_eq!(backend.wait_for(1)[0].body.len(), 1024);
}

/// A chunked POST of `size` bytes; write errors are ignored (the gateway may answer and stop
/// reading before the whole body is sent), then the answer is read.
fn post_chunked(gw: &Gateway, path: &str, data: &[u8]) -> Resp {
    let mut c = gw.conn();
    let raw = request(
        "POST",
        path,
        "shop.test",
        &[
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "text/plain"),
        ],
        &chunked(data, 512),
    );
    let _ = c.send(&raw);
    c.read_response().expect("an answer")
}

#[test]
fn chunked_body_over_the_limit_on_a_forward_route_gives_413() {
    let backend = Backend::text("stored");
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let r = post_chunked(&gw, "/upload", &[b'x'; 8 * 1024]);
    assert_huawei(&r, 413, "APIG.0201", "Request entity too large.");
    assert_eq!(
        backend.count(),
        0,
        "the backend never gets a complete request with a cut body"
    );
}

#[test]
fn chunked_body_within_the_limit_on_a_forward_route_is_forwarded_whole() {
    let backend = Backend::text("stored");
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let data: Vec<u8> = (0..1024u32).map(|i| b'0' + (i % 10) as u8).collect();
    let r = post_chunked(&gw, "/upload", &data);
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "stored");
    assert_eq!(backend.wait_for(1)[0].body, data);
}

/// The same body with Content-Length gets 413 on this mock route (decided from the header);
/// chunked, the mock answers without ever reading the body, so the limit is never applied.
/// The limit belongs to the route, whatever its action: a forward route cuts a chunked body at
/// the limit (413, test above), and a mock route must refuse it too rather than let the
/// framing decide the answer.
#[test]
fn chunked_body_over_the_limit_on_a_mock_route_gives_413() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());

    let r = post_chunked(&gw, "/mock-upload", &[b'x'; 8 * 1024]);
    assert_huawei(&r, 413, "APIG.0201", "Request entity too large.");
}

/// Whatever a mock route answers to an unread chunked body, the bytes left unread must never
/// be taken as the next request on the connection (request smuggling).
#[test]
fn unread_chunked_body_on_a_mock_route_is_never_parsed_as_a_request() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());

    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: shop.test\r\n\r\n";
    let mut data = smuggled.repeat(4);
    data.resize(4 * 1024, b' ');
    let mut raw = request(
        "POST",
        "/mock-upload",
        "shop.test",
        &[("Transfer-Encoding", "chunked")],
        &chunked(&data, 1024),
    );
    raw.extend(request("GET", "/mock", "shop.test", &[], b""));

    let mut c = gw.conn();
    let _ = c.send(&raw);
    let first = c.read_response().expect("the mock route answers");
    assert!(
        first.status == 201 || first.status == 413,
        "mock answer or 413, got {:?}",
        first.status_line
    );
    // then either the follow-up GET /mock is answered, or the connection is closed
    let answered = match c.read_response() {
        Ok(next) => {
            expect_status(&next, 200);
            assert_eq!(next.body_str(), r#"{"ok":true}"#);
            2
        }
        Err(_) => {
            assert!(
                find(c.buffered(), b"HTTP/1.1").is_none(),
                "a partial response: {:?}",
                String::from_utf8_lossy(c.buffered())
            );
            1
        }
    };
    let paths: Vec<String> = poll(WAIT, "the access lines", || {
        let log = gw.access_log();
        (log.len() >= answered).then_some(log)
    })
    .iter()
    .map(|l| l["path"].as_str().unwrap_or("").to_string())
    .collect();
    assert!(
        !paths.iter().any(|p| p == "/smuggled"),
        "a body byte was read as a request: {paths:?}"
    );
}

/// README: "what `explain` prints is what the gateway does", and `explain` shows
/// `HTTP/1.1 494 Request Header Or Cookie Too Large` (rulegate's own reason phrase for 494).
/// hyper knows no phrase for 494 and writes its placeholder instead.
#[test]
fn status_line_of_494_carries_the_reason_phrase_explain_prints() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());

    let big = "b".repeat(200 * 1024);
    let r = gw.send(&request(
        "GET",
        "/mock",
        "shop.test",
        &[("X-Big", &big)],
        b"",
    ));
    assert_eq!(
        r.status_line,
        format!("HTTP/1.1 494 {}", rulegate::dialect::reason_phrase(494))
    );
}

/// `--header-timeout`: a client that does not finish its request head in time, and a
/// keep-alive connection left idle as long, are closed; one that keeps asking stays open.
#[test]
fn slow_and_idle_clients_are_closed_after_the_header_timeout() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start_with(dir.path(), &["--header-timeout", "1s"]);
    let closed_within = |conn: &mut Conn, within: std::time::Duration| {
        let t = std::time::Instant::now();
        let err = conn
            .read_until(|_| false)
            .expect_err("the gateway closes the connection");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
        assert!(t.elapsed() < within, "closed after {:?}", t.elapsed());
        t.elapsed()
    };

    // half a request head, then nothing
    let mut slow = gw.conn();
    slow.send(b"GET /mock HTTP/1.1\r\nHost: shop.te").unwrap();
    let waited = closed_within(&mut slow, std::time::Duration::from_secs(5));
    assert!(
        waited >= std::time::Duration::from_millis(800),
        "{waited:?}"
    );

    // requests 400 ms apart keep a connection open past the timeout ...
    let mut busy = gw.conn();
    for _ in 0..4 {
        let r = busy
            .round_trip(&request("GET", "/mock", "shop.test", &[], b""))
            .unwrap();
        expect_status(&r, 200);
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    // ... and once it sits idle, it is closed
    closed_within(&mut busy, std::time::Duration::from_secs(5));
}

/// Requests hyper cannot parse never reach the policy, but they still get the default
/// dialect's row, not hyper's bare status line.
#[test]
fn unparseable_requests_get_the_dialect_rows() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());
    let bad_request = "Bad request.";
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /mock HTTP/1.1\r\nHost: shop.test\r\nNo colon here\r\n\r\n",
        b"GET /mock HTTP/1.1\r\nHost: shop.test\r\nContent-Length: lots\r\n\r\n",
    ] {
        let r = gw.send(raw);
        assert_huawei(&r, 400, "APIG.0602", bad_request);
        assert_eq!(r.header("connection"), Some("close"));
    }
    // past hyper's own URI limit (64 KiB), before the policy's 32 KiB one could answer
    let long = format!(
        "GET /mock?q={} HTTP/1.1\r\nHost: shop.test\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    assert_huawei(
        &gw.send(long.as_bytes()),
        414,
        "APIG.0201",
        "Request URI too large.",
    );
    // a request head larger than the read buffer (sized from the limits: about 200 KiB here)
    let huge = format!(
        "GET /mock HTTP/1.1\r\nHost: shop.test\r\n{}\r\n",
        (0..80)
            .map(|i| format!("X-Filler-{i}: {}\r\n", "f".repeat(30 * 1024)))
            .collect::<String>()
    );
    assert_huawei(
        &gw.send(huge.as_bytes()),
        494,
        "APIG.0201",
        "Request headers too large.",
    );
    // the gateway still serves
    expect_status(&gw.get("shop.test", "/mock"), 200);
}
