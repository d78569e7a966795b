//! Forwarding: what the backend receives, and what the client gets back.

use crate::common::*;
use std::io::Write;
use std::time::Duration;

pub fn forward_policy(main: &str) -> TempDir {
    let dir = TempDir::new();
    dir.write("shop.policy", &fixture("forward.policy", &[("MAIN", main)]));
    dir
}

#[test]
fn backend_gets_rewritten_path_query_forwarding_headers_and_no_hop_by_hop_headers() {
    let backend = Backend::start(|_, s| {
        respond(
            s,
            207,
            &[
                ("Content-Type", "text/plain"),
                ("X-Backend", "yes"),
                // hop-by-hop on the way back: never reaches the client
                ("Connection", "X-Backend-Hop"),
                ("X-Backend-Hop", "secret"),
                ("Keep-Alive", "timeout=5"),
            ],
            b"from the backend",
        )
    });
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let r = gw.send(&request(
        "GET",
        "/api/items/42?q=1&b=two%20words",
        "shop.test",
        &[
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("X-Request-Id", "spoofed-by-the-client"),
            ("X-Custom", "kept"),
        ],
        b"",
    ));

    // the client: the backend's status, headers and body, plus the route's response header
    expect_status(&r, 207);
    assert_eq!(r.body_str(), "from the backend");
    let id = r.header("x-request-id").expect("X-Request-Id").to_string();
    assert_generated_id(&id);
    expect_headers(
        &r,
        vec![
            ("content-type".into(), "text/plain".into()),
            ("x-backend".into(), "yes".into()),
            ("x-route".into(), "api".into()),
            ("x-request-id".into(), id.clone()),
        ],
    );

    // the backend
    let got = backend.wait_for(1);
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/v1/items/42?q=1&b=two%20words");
    assert_eq!(req.header("host"), Some(backend.addr.to_string().as_str()));
    assert_eq!(req.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(req.header("x-forwarded-proto"), Some("http"));
    assert_eq!(req.header("x-forwarded-host"), Some("shop.test"));
    assert_eq!(
        req.header("x-request-id"),
        Some(id.as_str()),
        "the backend sees the id the client sees, not the client's own"
    );
    assert_eq!(req.header("x-rulegate-hops"), Some("1"));
    assert_eq!(req.header("x-custom"), Some("kept"));
    for hop in ["x-secret-hop", "keep-alive", "proxy-authorization"] {
        assert!(!req.has(hop), "{hop} was forwarded: {:?}", req.headers);
    }
    if let Some(c) = req.header("connection") {
        assert!(
            !c.to_ascii_lowercase().contains("x-secret-hop"),
            "Connection forwarded as {c:?}"
        );
    }
    let ids: Vec<_> = req
        .headers
        .iter()
        .filter(|(k, _)| k == "x-request-id")
        .collect();
    assert_eq!(ids.len(), 1, "one X-Request-Id upstream: {ids:?}");
}

#[test]
fn backend_gets_the_method_and_body_in_either_framing() {
    let backend = Backend::start(|req, s| {
        let body = format!("{} {} bytes", req.method, req.body.len());
        respond(s, 200, &[("Content-Type", "text/plain")], body.as_bytes())
    });
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let r = gw.send(&request(
        "POST",
        "/api/echo",
        "shop.test",
        &[("Content-Type", "application/octet-stream")],
        b"hello, backend",
    ));
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "POST 14 bytes");

    let data: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = gw.send(&request(
        "POST",
        "/api/echo",
        "shop.test",
        &[("Transfer-Encoding", "chunked")],
        &chunked(&data, 777),
    ));
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "POST 5000 bytes");

    let got = backend.wait_for(2);
    assert_eq!(got[0].body, b"hello, backend");
    assert_eq!(
        got[0].header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(got[1].body, data);
}

#[test]
fn response_body_streams_back_as_the_backend_writes_it() {
    let gate = Gate::new();
    let backend_gate = gate.clone();
    let backend = Backend::start(move |_, s| {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(b"6\r\nfirst;\r\n");
        let _ = s.flush();
        // the rest only once the client has seen the first part
        backend_gate.wait(Duration::from_secs(10));
        let _ = s.write_all(b"6\r\nsecond\r\n0\r\n\r\n");
        let _ = s.flush();
        true
    });
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let mut c = gw.conn();
    // A gateway that buffered the body would send nothing until the backend finished, which
    // happens only after the gate opens: the first part must arrive well before that.
    c.set_read_timeout(Duration::from_secs(5));
    c.send(&request("GET", "/api/stream", "shop.test", &[], b""))
        .unwrap();
    c.read_until(|buf| find(buf, b"first;").is_some())
        .expect("the first part arrives while the backend is still writing");
    gate.open();
    let r = c.read_response().expect("the whole response");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "first;second");
    assert_eq!(r.header("x-route"), Some("api"));
    assert_eq!(
        r.header("x-request-id"),
        backend.received()[0].header("x-request-id")
    );
}

/// README: `route GET "/files/{path+}" { forward orders path "/static/{path}" }`, and the
/// shipped partners.policy does the same (`/docs/{page+}` → `/static/docs/{page}`). Named
/// without `+` in the forward path, the rest variable is encoded as one segment, so
/// `GET /files/css/site.css` reaches the backend as `/static/css%2Fsite.css`.
#[test]
fn rest_variable_in_a_forward_path_keeps_its_slashes() {
    let backend = Backend::text("static");
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    expect_status(&gw.get("shop.test", "/files/css/site.css?v=3"), 200);
    assert_eq!(backend.wait_for(1)[0].target, "/static/css/site.css?v=3");
}

/// README: `response header "H" "V"` is "added to the route's mock and forwarded responses
/// (never to vendor error rows)". The route's headers go into the pipeline's `headers`, which
/// every answer gets, so a rejection on such a route (here 502 APIG.0202 from a backend that
/// refuses, and 413 from the body limit) carries them too.
#[test]
fn route_response_headers_stay_off_rejection_rows() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());

    assert_huawei(
        &gw.get("shop.test", "/api/anything"),
        502,
        "APIG.0202",
        "Backend unavailable",
    );
    let mut c = gw.conn();
    c.send(&request(
        "POST",
        "/api/upload",
        "shop.test",
        &[("Content-Length", "99999999")],
        b"",
    ))
    .unwrap();
    assert_huawei(
        &c.read_response().unwrap(),
        413,
        "APIG.0201",
        "Request entity too large.",
    );
}

/// Huawei's debug mode on a forward: `X-Apig-Latency` and `X-Apig-Upstream-Latency` (whole
/// milliseconds; the backend takes 150 ms here, so both are at least that), and neither
/// without `X-Apig-Mode: debug`; the header is the client's question, never sent upstream as
/// an answer.
#[test]
fn huawei_debug_mode_adds_the_gateways_and_the_backends_latency() {
    let backend = Backend::start(|_, s| {
        std::thread::sleep(std::time::Duration::from_millis(150));
        respond(s, 200, &[("Content-Type", "text/plain")], b"slow")
    });
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let debug = [("X-Apig-Mode", "debug")];
    let r = gw.send(&request("GET", "/plain/x", "shop.test", &debug, b""));
    expect_status(&r, 200);
    let ms = |name: &str| -> u64 {
        let v = r.header(name).unwrap_or_else(|| panic!("no {name}"));
        v.parse().unwrap_or_else(|_| panic!("{name}: {v:?}"))
    };
    let (total, upstream) = (ms("x-apig-latency"), ms("x-apig-upstream-latency"));
    assert!(upstream >= 150, "upstream {upstream} ms");
    assert!(
        total >= upstream && total < 10_000,
        "total {total}, upstream {upstream}"
    );
    let r = gw.get("shop.test", "/plain/x");
    expect_status(&r, 200);
    assert!(r.header("x-apig-latency").is_none());
    assert!(r.header("x-apig-upstream-latency").is_none());
    // a refusal in debug mode carries the gateway's latency, and no backend's
    let r = gw.send(&request("GET", "/nowhere", "shop.test", &debug, b""));
    expect_status(&r, 404);
    assert!(r.header("x-apig-latency").is_some());
    assert!(r.header("x-apig-upstream-latency").is_none());
}
