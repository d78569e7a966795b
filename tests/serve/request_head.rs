//! What a request is, as `decide` sees it: the host a request names (RFC 9112's Host rules,
//! HTTP/2's `:authority`), and the same request giving the same answer from `serve` and from
//! `explain` — one function builds the head for both, one writes the status line. A
//! differential property test sends generated requests to both.

use crate::common::*;
use crate::routing::dialects;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::process::Command;

/// `rulegate explain DIR METHOD URL -H …`: its standard output.
fn explain(dir: &TempDir, method: &str, url: &str, headers: &[&str], data: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rulegate"));
    cmd.arg("explain").arg(dir.path()).args([method, url]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(d) = data {
        cmd.args(["--data", d]);
    }
    let out = cmd.output().expect("run rulegate explain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The status line `explain` prints for the answer.
fn explained_status_line(text: &str) -> &str {
    let after = text
        .split("response\n")
        .nth(1)
        .expect("explain shows a response");
    after.lines().next().unwrap_or("")
}

#[test]
fn two_host_headers_get_the_default_dialects_bad_request_row() {
    // default dialect huawei; partners.test is a Tencent service, and is not trusted to choose
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());
    for (first, second) in [
        ("partners.test", "shop.test"),
        ("partners.test", "partners.test"),
        ("partners.test", "PARTNERS.test"),
    ] {
        let raw = format!("GET /hello HTTP/1.1\r\nHost: {first}\r\nHost: {second}\r\n\r\n");
        let r = gw.send(raw.as_bytes());
        assert_huawei(&r, 400, "APIG.0602", "Bad request.");
    }
    // the same answer from explain
    let text = explain(
        &dir,
        "GET",
        "/hello",
        &["Host: partners.test", "Host: partners.test"],
        None,
    );
    assert!(
        text.contains(" 1 sanity     FAIL  2 Host headers\n"),
        "{text}"
    );
    assert!(text.contains("\"error_code\": \"APIG.0602\""), "{text}");
}

#[test]
fn an_http2_host_header_that_disagrees_with_authority_is_refused() {
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (status, headers, body) = h2_get(gw.addr, "shop.test", Some("partners.test")).await;
        let id = headers["x-request-id"].to_str().unwrap();
        assert_generated_id(id);
        assert_eq!(status, 400);
        assert_eq!(body, huawei_body("APIG.0602", "Bad request.", id));
        assert_eq!(headers["content-type"], "application/json");

        // one that agrees (case aside) is the same request
        let (status, _, body) = h2_get(gw.addr, "shop.test", Some("SHOP.test")).await;
        assert_eq!((status, body.as_str()), (200, r#"{"hello":"huawei"}"#));
        let (status, _, body) = h2_get(gw.addr, "shop.test", None).await;
        assert_eq!((status, body.as_str()), (200, r#"{"hello":"huawei"}"#));
    });
}

/// (status, headers, body) of one HTTP/2 GET of `/hello` at `authority`, with a Host header.
async fn h2_get(
    addr: std::net::SocketAddr,
    authority: &str,
    host: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder().uri(format!("http://{authority}/hello"));
    if let Some(h) = host {
        request = request.header("host", h);
    }
    let response = sender
        .send_request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn an_absolute_form_request_is_routed_by_its_authority_in_serve_and_explain() {
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());
    let r = gw.send(b"GET http://shop.test/hello HTTP/1.1\r\nHost: partners.test\r\n\r\n");
    let no_store = [("Cache-Control", "no-store")];
    assert_mock(
        &r,
        200,
        "X-Request-Id",
        "application/json",
        &no_store,
        r#"{"hello":"huawei"}"#,
    );

    let text = explain(
        &dir,
        "GET",
        "http://shop.test/hello",
        &["Host: partners.test"],
        None,
    );
    assert!(text.contains("shop.test → service shop"), "{text}");
    assert!(text.contains("\n{\"hello\":\"huawei\"}"), "{text}");
}

#[test]
fn an_announced_body_over_the_limit_is_413_content_too_large_in_serve_and_explain() {
    let dir = dialects("huawei", &closed_url());
    dir.write(
        "upload.policy",
        r#"
service uploads {
    dialect huawei
    hosts "uploads.test"
    route POST "/small" {
        limits {
            body 100B
        }
        mock 201 text "stored"
    }
}
"#,
    );
    let gw = Gateway::start(dir.path());
    let mut c = gw.conn();
    // the head alone: the answer comes before any of the body
    c.send(b"POST /small HTTP/1.1\r\nHost: uploads.test\r\nContent-Length: 500\r\n\r\n")
        .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status_line, "HTTP/1.1 413 Content Too Large");
    assert_huawei(&r, 413, "APIG.0201", "Request entity too large.");

    let text = explain(
        &dir,
        "POST",
        "http://uploads.test/small",
        &["Content-Length: 500"],
        None,
    );
    assert!(
        text.contains(" 9 body-size  FAIL  body is 500 bytes, limit 100\n"),
        "{text}"
    );
    assert_eq!(
        explained_status_line(&text),
        "HTTP/1.1 413 Content Too Large"
    );
}

// ---------------------------------------------------------------------------------------------
// serve and explain, request by generated request
// ---------------------------------------------------------------------------------------------

/// What the differential test's backend answers (a phrase of its own: rulegate passes it on).
const BACKEND_STATUS_LINE: &str = "HTTP/1.1 200 Whatever";

const DIFFERENTIAL: &str = r#"
default dialect huawei

service shop {
    dialect huawei
    hosts "shop.test"
    backend main {
        targets "@MAIN@"
        timeout 5s
    }
    route GET "/hello" {
        mock 200 json {"hello": "huawei"}
    }
    route POST "/form" {
        require form "x" int
        limits {
            body 1KiB
        }
        forward main path "/accepted"
    }
    route POST PUT "/upload" {
        limits {
            body 100B
        }
        mock 201 text "stored"
    }
    route GET "/search" {
        require query "q" int
        cors origins "http://page.test"
        mock 200 json {"found": 0}
    }
    route ANY "/items/{id}" {
        require path "id" int 1..
        forward main
    }
}

service partners {
    dialect tencent
    hosts "partners.test"
    route GET "/hello" {
        mock 200 text "hello from tencent"
    }
    route POST "/upload" {
        limits {
            body 100B
        }
        mock 201 text "stored"
    }
}

service weather {
    dialect jdcloud
    hosts "weather.test"
    route GET "/hello" {
        mock 200 json {"hello": "jdcloud"}
    }
    route POST "/form" {
        require form "x" int
        mock 200 text "form ok"
    }
}
"#;

/// How the request names its host.
#[derive(Debug, Clone)]
enum Naming {
    /// `GET /path` with `Host: H`.
    Origin(&'static str),
    /// `GET http://H/path` with `Host: H2`.
    Absolute(&'static str, &'static str),
    /// `GET /path` with two Host headers.
    Twice(&'static str, &'static str),
}

#[derive(Debug, Clone)]
struct Generated {
    method: &'static str,
    naming: Naming,
    target: &'static str,
    body: &'static str,
    form: bool,
    origin: Option<&'static str>,
}

impl Generated {
    /// The request line's target and the header lines, as a client writes them.
    fn target_and_headers(&self) -> (String, Vec<String>) {
        let mut headers = Vec::new();
        let target = match self.naming {
            Naming::Origin(h) => {
                headers.push(format!("Host: {h}"));
                self.target.to_string()
            }
            Naming::Absolute(a, h) => {
                headers.push(format!("Host: {h}"));
                format!("http://{a}{}", self.target)
            }
            Naming::Twice(h1, h2) => {
                headers.push(format!("Host: {h1}"));
                headers.push(format!("Host: {h2}"));
                self.target.to_string()
            }
        };
        if self.form {
            headers.push("Content-Type: application/x-www-form-urlencoded".into());
        }
        if let Some(o) = self.origin {
            headers.push(format!("Origin: {o}"));
        }
        if !self.body.is_empty() {
            headers.push(format!("Content-Length: {}", self.body.len()));
        }
        (target, headers)
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    let host = || {
        prop::sample::select(vec![
            "shop.test",
            "partners.test",
            "weather.test",
            "nobody.test",
            "SHOP.test:8080",
        ])
    };
    let naming = prop_oneof![
        2 => host().prop_map(Naming::Origin),
        1 => (host(), host()).prop_map(|(a, h)| Naming::Absolute(a, h)),
        1 => (host(), host()).prop_map(|(a, b)| Naming::Twice(a, b)),
    ];
    let big: &'static str = Box::leak("a".repeat(500).into_boxed_str());
    // Mostly requests a route could take (so checks past routing run), some at random.
    let routed = prop::sample::select(vec![
        ("GET", "/hello"),
        ("POST", "/form"),
        ("POST", "/upload"),
        ("PUT", "/upload"),
        ("GET", "/search?q=1"),
        ("GET", "/search?q=x"),
        ("PUT", "/items/7"),
        ("DELETE", "/items/0"),
        ("OPTIONS", "/items/7"),
    ]);
    let any_pair = (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
        prop::sample::select(vec![
            "/hello",
            "/form",
            "/upload",
            "/search?q=1",
            "/items/7",
            "/nowhere",
            "/%2e%2e/hello",
            "/a%zz",
        ]),
    );
    (
        prop_oneof![3 => routed, 1 => any_pair],
        naming,
        prop::sample::select(vec!["", "x=1", "x=abc", big]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            "http://page.test",
            "http://evil.test",
        ])),
    )
        .prop_map(|((method, target), naming, body, form, origin)| Generated {
            method,
            naming,
            target,
            body,
            form,
            origin,
        })
}

/// (status line, row code or `-`, route label or `-`) as `serve` answered and logged it.
fn served(gw: &Gateway, g: &Generated) -> (String, String, String) {
    let (target, headers) = g.target_and_headers();
    let mut raw = format!("{} {target} HTTP/1.1\r\n", g.method);
    for h in &headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(g.body);
    let r = gw.send(raw.as_bytes());
    let id = ["x-request-id", "x-api-requestid", "x-jdcloud-request-id"]
        .iter()
        .find_map(|h| r.header(h))
        .unwrap_or_else(|| panic!("no request id in {r:?}"))
        .to_string();
    let line = gw.access_line(&id);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    (r.status_line, text(&line["code"]), text(&line["route"]))
}

/// The same, as the `explain` engine decides it (a forward: the backend's status line).
fn explained(snap: &rulegate::compile::Snapshot, g: &Generated) -> (String, String, String) {
    let (target, headers) = g.target_and_headers();
    let asked = rulegate::explain::Asked::new(g.method, &target, &headers, g.body.into())
        .expect("a request explain takes");
    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    let (d, _) = asked.run(snap, peer, false, 0);
    let status_line = match rulegate::decide::render_response(&d) {
        Some(r) => rulegate::dialect::status_line(r.status),
        None => BACKEND_STATUS_LINE.to_string(),
    };
    let code = match &d.outcome {
        rulegate::decide::Outcome::Reject(reason) => rulegate::dialect::row(d.dialect, reason).code,
        _ => "-",
    };
    let route = match (d.service, d.route) {
        (Some(s), Some(r)) => snap.services[s].routes[r].label.to_string(),
        _ => "-".to_string(),
    };
    (status_line, code.to_string(), route)
}

#[test]
fn generated_requests_get_the_same_status_code_and_route_from_serve_and_explain() {
    let backend = Backend::text("from the backend");
    let dir = TempDir::new();
    dir.write(
        "differential.policy",
        &DIFFERENTIAL.replace("@MAIN@", &backend.url()),
    );
    let gw = Gateway::start(dir.path());
    let loaded = rulegate::policy::load(&[dir.path().to_path_buf()]).expect("load");
    let compiled = rulegate::compile::compile(&loaded, &rulegate::compile::ProcessSecrets);
    let snap = compiled.snapshot.expect("the policy compiles");

    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&generated(), |g| {
            let (served, explained) = (served(&gw, &g), explained(&snap, &g));
            prop_assert_eq!(served, explained, "{:?}", g);
            Ok(())
        })
        .unwrap();
}
