//! Routing: mocks answer; unknown host, no route and a method that is not routed get each
//! dialect's documented row; form parameters are checked on the body.

use crate::common::*;

/// The dialects fixture with `default dialect DEFAULT`; the Huawei form route forwards to
/// `form_backend`.
pub fn dialects(default: &str, form_backend: &str) -> TempDir {
    let dir = TempDir::new();
    dir.write(
        "gateway.policy",
        &fixture(
            "dialects.policy",
            &[("DEFAULT", default), ("FORM_BACKEND", form_backend)],
        ),
    );
    dir
}

#[test]
fn mock_routes_answer_in_each_dialect() {
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());

    let r = gw.get("shop.test", "/hello");
    let id1 = assert_mock(
        &r,
        200,
        "X-Request-Id",
        "application/json",
        &[("Cache-Control", "no-store")],
        r#"{"hello":"huawei"}"#,
    );
    let r = gw.get("shop.test", "/hello");
    let id2 = r.header("x-request-id").unwrap().to_string();
    assert_ne!(id1, id2, "every request gets its own id");

    let r = gw.get("partners.test", "/hello");
    assert_mock(
        &r,
        200,
        "X-Api-RequestId",
        "text/plain; charset=utf-8",
        &[],
        "hello from tencent",
    );

    let r = gw.get("weather.test", "/hello");
    assert_mock(
        &r,
        200,
        "x-jdcloud-request-id",
        "application/json",
        &[],
        r#"{"hello":"jdcloud"}"#,
    );
}

#[test]
fn no_route_gets_each_dialects_404_row() {
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());

    assert_huawei(
        &gw.get("shop.test", "/nowhere"),
        404,
        "APIG.0101",
        "The API does not exist or has not been published in the environment.",
    );
    assert_tencent(
        &gw.get("partners.test", "/no/where"),
        404,
        "There is no api match uri[/no/where].",
    );
    assert_jdcloud(
        &gw.get("weather.test", "/nowhere"),
        404,
        "NOT_FOUND",
        "resource cannot be found",
    );
}

#[test]
fn method_not_routed_gets_huawei_404_tencent_405_jdcloud_501() {
    let dir = dialects("huawei", &closed_url());
    let gw = Gateway::start(dir.path());
    let delete = |host: &str| gw.send(&request("DELETE", "/hello", host, &[], b""));

    assert_huawei(
        &delete("shop.test"),
        404,
        "APIG.0101",
        "The API does not exist.",
    );
    assert_tencent(&delete("partners.test"), 405, "Method Not Allowed.");
    assert_jdcloud(
        &delete("weather.test"),
        501,
        "NOT_IMPLEMENTED",
        "method is not supported now",
    );
}

#[test]
fn unknown_host_is_answered_in_the_default_dialect() {
    let huawei = dialects("huawei", &closed_url());
    let gw = Gateway::start(huawei.path());
    assert_huawei(
        &gw.get("nowhere.test", "/hello"),
        404,
        "APIG.0101",
        "The API does not exist or has not been published in the environment.",
    );
    drop(gw);

    let tencent = dialects("tencent", &closed_url());
    let gw = Gateway::start(tencent.path());
    assert_tencent(
        &gw.get("nowhere.test", "/hello"),
        404,
        "There is no api match host[nowhere.test].",
    );
    drop(gw);

    let jdcloud = dialects("jdcloud", &closed_url());
    let gw = Gateway::start(jdcloud.path());
    assert_jdcloud(
        &gw.get("nowhere.test", "/hello"),
        404,
        "NOT_FOUND",
        "resource cannot be found",
    );
}

fn post_form(gw: &Gateway, host: &str, content_type: &str, body: &[u8]) -> Resp {
    gw.send(&request(
        "POST",
        "/form",
        host,
        &[("Content-Type", content_type)],
        body,
    ))
}

const FORM: &str = "application/x-www-form-urlencoded";

#[test]
fn form_route_forwards_a_valid_urlencoded_body() {
    let backend = Backend::text("accepted");
    let dir = dialects("huawei", &backend.url());
    let gw = Gateway::start(dir.path());

    // Content-Length framing
    let r = post_form(&gw, "shop.test", FORM, b"x=42&note=a+b");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "accepted");
    // chunked framing: the gateway reads the body to check it, then forwards what it read
    let r = gw.send(&request(
        "POST",
        "/form",
        "shop.test",
        &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Transfer-Encoding", "chunked"),
        ],
        &chunked(b"note=chunked&x=7", 5),
    ));
    expect_status(&r, 200);

    let got = backend.wait_for(2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].target, "/accepted");
    assert_eq!(got[0].body, b"x=42&note=a+b");
    assert_eq!(got[0].header("content-type"), Some(FORM));
    assert_eq!(got[1].body, b"note=chunked&x=7");
    assert_eq!(got[1].header("content-length"), Some("16"));
    assert!(!got[1].has("transfer-encoding"));

    // Tencent and JD Cloud form routes are mocks
    let r = post_form(&gw, "partners.test", FORM, b"x=1");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "form ok");
    let r = post_form(&gw, "weather.test", FORM, b"x=1");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "form ok");
}

#[test]
fn form_route_with_a_missing_or_mistyped_field_gets_the_param_row() {
    let backend = Backend::text("accepted");
    let dir = dialects("huawei", &backend.url());
    let gw = Gateway::start(dir.path());

    assert_huawei(
        &post_form(&gw, "shop.test", FORM, b"y=1"),
        400,
        "APIG.0201",
        "API request error: form parameter x is required",
    );
    assert_huawei(
        &post_form(&gw, "shop.test", FORM, b"x=abc"),
        400,
        "APIG.0201",
        "API request error: form parameter x must be int",
    );
    assert_tencent(
        &post_form(&gw, "partners.test", FORM, b"y=1"),
        403,
        "body param x is required.",
    );
    assert_tencent(
        &post_form(&gw, "partners.test", FORM, b"x=abc"),
        403,
        "Get x params fail.",
    );
    assert_jdcloud(
        &post_form(&gw, "weather.test", FORM, b"y=1"),
        400,
        "ARGUMENT_NOT_FOUND",
        "The parameter x is required",
    );
    assert_jdcloud(
        &post_form(&gw, "weather.test", FORM, b"x=abc"),
        400,
        "ARGUMENT_WRONG_FORMAT",
        "Type of parameter x shall be of int",
    );
    assert_eq!(backend.count(), 0, "a refused form is not forwarded");
}

#[test]
fn form_route_with_a_non_form_content_type_gets_the_content_type_row() {
    let backend = Backend::text("accepted");
    let dir = dialects("huawei", &backend.url());
    let gw = Gateway::start(dir.path());
    let json = "application/json";

    assert_huawei(
        &post_form(&gw, "shop.test", json, br#"{"x": 1}"#),
        400,
        "APIG.0201",
        "API request error: content type must be application/x-www-form-urlencoded",
    );
    assert_tencent(
        &post_form(&gw, "partners.test", json, br#"{"x": 1}"#),
        403,
        "req content type need application/x-www-form-urlencoded.",
    );
    assert_jdcloud(
        &post_form(&gw, "weather.test", json, br#"{"x": 1}"#),
        400,
        "ARGUMENT_WRONG_FORMAT",
        "Type of parameter Content-Type shall be of application/x-www-form-urlencoded",
    );
    assert_eq!(backend.count(), 0, "a refused form is not forwarded");
}
