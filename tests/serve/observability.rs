//! The access log (`--log-format json`) and `/metrics`.

use crate::common::*;
use crate::forward::forward_policy;
use crate::routing::dialects;
use std::time::{Duration, Instant};

/// One request of the access-log test and the line it must produce.
struct Case {
    method: &'static str,
    target: &'static str,
    host: &'static str,
    body: &'static [u8],
    route: &'static str,
    status: u16,
    code: &'static str,
}

impl Case {
    fn new(
        method: &'static str,
        target: &'static str,
        host: &'static str,
        body: &'static [u8],
        route: &'static str,
        status: u16,
        code: &'static str,
    ) -> Case {
        Case {
            method,
            target,
            host,
            body,
            route,
            status,
            code,
        }
    }
}

#[test]
fn access_log_has_one_json_line_per_request_with_route_status_and_code() {
    let backend = Backend::text("accepted");
    let dir = dialects("huawei", &backend.url());
    let gw = Gateway::start(dir.path());
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    let cases = [
        Case::new("GET", "/hello", "shop.test", b"", "GET /hello", 200, "-"),
        Case::new("POST", "/form", "shop.test", b"x=1", "POST /form", 200, "-"),
        Case::new(
            "GET",
            "/nowhere?secret=1",
            "shop.test",
            b"",
            "-",
            404,
            "APIG.0101",
        ),
        Case::new(
            "POST",
            "/form",
            "shop.test",
            b"y=1",
            "POST /form",
            400,
            "APIG.0201",
        ),
        Case::new("DELETE", "/hello", "partners.test", b"", "-", 405, "405"),
        Case::new(
            "GET",
            "/nowhere",
            "weather.test",
            b"",
            "-",
            404,
            "NOT_FOUND",
        ),
        Case::new("GET", "/hello", "nowhere.test", b"", "-", 404, "APIG.0101"),
    ];
    let mut ids = Vec::new();
    for case in &cases {
        let headers: &[(&str, &str)] = if case.body.is_empty() { &[] } else { &form };
        let r = gw.send(&request(
            case.method,
            case.target,
            case.host,
            headers,
            case.body,
        ));
        expect_status(&r, case.status);
        let id_header = match case.host {
            "partners.test" => "x-api-requestid",
            "weather.test" => "x-jdcloud-request-id",
            _ => "x-request-id",
        };
        let id = r.header(id_header).expect("request id").to_string();
        let line = gw.access_line(&id);
        let path = case.target.split('?').next().unwrap();
        assert_eq!(line["method"], case.method, "{line}");
        assert_eq!(line["path"], path, "the path, without the query: {line}");
        assert_eq!(line["route"], case.route, "{line}");
        assert_eq!(line["status"], case.status, "{line}");
        assert_eq!(line["code"], case.code, "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert!(
            line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
        assert!(line["upstream_ms"].as_f64().is_some(), "{line}");
        ids.push(id);
    }
    // the forwarded request has an upstream time, the mock none
    let forwarded = gw.access_line(&ids[1]);
    assert!(
        forwarded["upstream_ms"].as_f64().unwrap() > 0.0,
        "{forwarded}"
    );
    assert_eq!(gw.access_line(&ids[0])["upstream_ms"], 0.0);

    // exactly one line per request, and none for anything else
    let log = gw.access_log();
    assert_eq!(log.len(), cases.len(), "{log:#?}");
    for id in &ids {
        assert_eq!(
            log.iter()
                .filter(|l| l["request_id"] == id.as_str())
                .count(),
            1,
            "one line for {id}"
        );
    }
}

/// nginx, from which Huawei's and Tencent's gateways descend, logs a client that closed the
/// connection before the answer as 499, and rulegate has a row for it in every dialect
/// (Reason::ClientClosed). Today the request's handler is dropped with the connection, so
/// nothing at all is logged or counted for it.
#[test]
fn client_that_disconnects_before_a_slow_backend_answers_is_logged_as_499() {
    let gate = Gate::new();
    let held = gate.clone();
    let backend = Backend::start(move |_, s| {
        held.wait(Duration::from_secs(10));
        respond(s, 200, &[], b"nobody is listening")
    });
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let mut c = gw.conn();
    c.send(&request("GET", "/plain/gone", "shop.test", &[], b""))
        .unwrap();
    backend.wait_for(1);
    c.shutdown();
    drop(c);
    // The gateway may log as soon as it sees the client go; after 2 s the backend answers
    // too, for a gateway that logs only once the upstream exchange is over.
    let gone = Instant::now();
    let line = poll(
        Duration::from_secs(5),
        "an access line for /plain/gone",
        || {
            if gone.elapsed() > Duration::from_secs(2) {
                gate.open();
            }
            gw.access_log()
                .into_iter()
                .find(|l| l["path"] == "/plain/gone")
        },
    );
    gate.open();
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["code"], "APIG.0201", "{line}");
    assert_eq!(line["route"], "GET /plain/{rest+}", "{line}");
    assert!(gw
        .metrics()
        .contains("rulegate_requests_total{service=\"shop\",route=\"GET /plain/{rest+}\",status=\"499\",code=\"APIG.0201\"} 1"));
}

#[test]
fn metrics_count_requests_by_service_route_status_and_code() {
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());

    for _ in 0..3 {
        expect_status(&gw.get("shop.test", "/hello"), 200);
    }
    for _ in 0..2 {
        expect_status(&gw.get("shop.test", "/nowhere"), 404);
    }
    expect_status(
        &gw.send(&request("DELETE", "/hello", "partners.test", &[], b"")),
        405,
    );
    expect_status(&gw.get("nowhere.test", "/hello"), 404);
    // a forward to a backend that refuses: 502, and an upstream error by reason
    expect_status(
        &gw.send(&request(
            "POST",
            "/form",
            "shop.test",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"x=1",
        )),
        502,
    );

    let metrics = gw.metrics();
    let mut requests: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("rulegate_requests_total{"))
        .collect();
    requests.sort();
    let mut want = vec![
        r#"rulegate_requests_total{service="shop",route="GET /hello",status="200",code="-"} 3"#,
        r#"rulegate_requests_total{service="shop",route="-",status="404",code="APIG.0101"} 2"#,
        r#"rulegate_requests_total{service="partners",route="-",status="405",code="405"} 1"#,
        r#"rulegate_requests_total{service="-",route="-",status="404",code="APIG.0101"} 1"#,
        r#"rulegate_requests_total{service="shop",route="POST /form",status="502",code="APIG.0202"} 1"#,
    ];
    want.sort();
    assert_eq!(requests, want, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "rulegate_request_duration_seconds_count 8"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"rulegate_upstream_errors_total{reason="backend_unavailable"} 1"#),
        "{metrics}"
    );
}
