//! Backend parameters (issue 13, items 1 and 2): the backend receives exactly the mapped,
//! constant and system values, never what a client sent under a mapped name, and the answer
//! comes back with the route's response header edits.

use crate::common::*;

struct Two {
    main: Backend,
    v2: Backend,
    gw: Gateway,
    _dir: TempDir,
}

fn start() -> Two {
    let answer = |_: &Recorded, s: &mut std::net::TcpStream| {
        respond(
            s,
            200,
            &[
                ("Content-Type", "text/plain"),
                ("Server", "backend/1.0"),
                ("Cache-Control", "max-age=60"),
            ],
            b"ok",
        )
    };
    let main = Backend::start(answer);
    let v2 = Backend::text("v2");
    let dir = TempDir::new();
    let policy = fixture(
        "backend_params.policy",
        &[("MAIN", &main.url()), ("V2", &v2.url())],
    );
    dir.write("orders.policy", &policy);
    let gw = Gateway::start(dir.path());
    Two {
        main,
        v2,
        gw,
        _dir: dir,
    }
}

#[test]
fn the_backend_receives_the_mapped_constant_and_system_values_and_not_the_removed_ones() {
    let t = start();
    let headers = [
        ("Cookie", "session=1"),
        ("X-Tenant", "forged"),
        ("Accept", "text/plain"),
    ];
    let r = t.gw.send(&request(
        "GET",
        "/orders/42?tenant=acme&debug=1&keep=yes",
        "orders.test",
        &headers,
        b"",
    ));
    expect_status(&r, 200);
    let got = t.main.wait_for(1);
    let g = &got[0];
    assert_eq!(g.target, "/internal/orders/42?keep=yes&uid=42");
    assert_eq!(g.header("x-tenant"), Some("acme"));
    assert_eq!(g.header("x-invoke-user"), Some("apigateway"));
    assert_eq!(g.header("x-client"), Some("127.0.0.1"));
    assert_eq!(g.header("x-route"), Some("GET /orders/{id}"));
    assert_eq!(g.header("accept"), Some("text/plain"));
    assert!(!g.has("cookie"), "{:?}", g.headers);
    // what the client sent under a mapped name never arrives, even when the source is absent
    let r = t.gw.send(&request(
        "GET",
        "/orders/43",
        "orders.test",
        &[("X-Tenant", "forged")],
        b"",
    ));
    expect_status(&r, 200);
    let got = t.main.wait_for(2);
    assert!(!got[1].has("x-tenant"), "{:?}", got[1].headers);
    assert_eq!(got[1].target, "/internal/orders/43?uid=43");
}

#[test]
fn a_forwarded_answer_gets_the_routes_response_header_edits() {
    let t = start();
    let r =
        t.gw.send(&request("GET", "/orders/42", "orders.test", &[], b""));
    expect_status(&r, 200);
    assert_eq!(r.header("server"), None, "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-served-by"), Some("rulegate"));
}

#[test]
fn a_policys_forward_applies_the_routes_mapping_then_its_own() {
    let t = start();
    let r = t.gw.send(&request(
        "GET",
        "/orders/7?tenant=t1",
        "orders.test",
        &[("X-Canary", "1")],
        b"",
    ));
    assert_eq!(r.body_str(), "v2");
    let g = &t.v2.wait_for(1)[0];
    assert_eq!(g.target, "/v2/orders/7?uid=7");
    assert_eq!(g.header("x-tenant"), Some("t1"));
    assert_eq!(g.header("x-canary-route"), Some("v2"));
    assert_eq!(t.main.count(), 0);
}

#[test]
fn a_line_break_mapped_into_a_header_is_refused_with_the_invalid_parameter_row() {
    let t = start();
    let r = t.gw.send(&request(
        "GET",
        "/orders/42?tenant=a%0d%0aX-Admin:%201",
        "orders.test",
        &[],
        b"",
    ));
    expect_status(&r, 400);
    let id = r.header("x-request-id").expect("request id").to_string();
    assert_eq!(
        r.body_str(),
        format!(
            "{{\"error_code\": \"APIG.0201\", \"error_msg\": \"API request error: query parameter \
             tenant must be a value without control characters\", \"request_id\": \"{id}\"}}"
        )
    );
    assert_eq!(t.main.count(), 0);
}

#[test]
fn parameters_only_sends_the_mapped_query_and_path_alone() {
    let t = start();
    let headers = [
        ("Cookie", "c=1"),
        ("Content-Type", "text/plain"),
        ("X-Other", "1"),
    ];
    let r = t.gw.send(&request(
        "GET",
        "/lookup/9?region=cn-north&extra=1",
        "orders.test",
        &headers,
        b"",
    ));
    expect_status(&r, 200);
    let g = &t.main.wait_for(1)[0];
    assert_eq!(g.target, "/cn-north/items?q=9");
    assert!(!g.has("x-other") && !g.has("cookie"), "{:?}", g.headers);
    assert_eq!(g.header("content-type"), Some("text/plain"));
    // a mapped path value may not add a segment
    let r = t.gw.send(&request(
        "GET",
        "/lookup/9?region=..%2Fadmin",
        "orders.test",
        &[],
        b"",
    ));
    expect_status(&r, 400);
    assert_eq!(t.main.count(), 1);
}

#[test]
fn a_form_value_is_mapped_and_the_body_still_reaches_the_backend() {
    let t = start();
    let body = b"sku=AB%2D12&qty=2";
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let r =
        t.gw.send(&request("POST", "/carts", "orders.test", &headers, body));
    expect_status(&r, 200);
    let g = &t.main.wait_for(1)[0];
    assert_eq!(g.header("x-sku"), Some("AB-12"));
    assert_eq!(g.body, body);
}
