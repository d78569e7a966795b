//! Huawei's custom gateway responses over real sockets (issue 15.3): a refusal decided by the
//! pipeline and one found by `serve` after the decision (the backend refused the connection)
//! both answer the service's template, byte for byte, with Huawei's code inside; a type the
//! service does not answer keeps Huawei's row.

use crate::common::*;

fn start() -> (TempDir, Gateway) {
    let dir = TempDir::new();
    let policy = format!(
        r#"default dialect huawei
service shop {{
    dialect huawei
    hosts "shop.test"
    gateway response NOT_FOUND {{
        mock 404 json {{"code": "$context.error.code", "uri": "$context.reqUri", "method": "$context.reqMethod"}}
    }}
    gateway response BACKEND_UNAVAILABLE {{
        mock 503 json {{"down": "$context.apiName", "id": "$context.requestId"}}
        response header "Retry-After" "5"
    }}
    backend gone {{
        targets "{closed}"
    }}
    route GET "/down" {{
        forward gone
    }}
    route GET "/private" {{
        deny ips 0.0.0.0/0 ::/0
        mock 200 text "never"
    }}
}}
"#,
        closed = closed_url()
    );
    dir.write("shop.policy", &policy);
    let gw = Gateway::start(dir.path());
    (dir, gw)
}

#[test]
fn a_routing_refusal_answers_the_services_not_found_template() {
    let (_dir, gw) = start();
    let r = gw.get("shop.test", "/nowhere?x=1");
    expect_status(&r, 404);
    let id = r.header("x-request-id").expect("request id").to_string();
    assert_generated_id(&id);
    assert_eq!(
        r.body_str(),
        r#"{"code":"APIG.0101","uri":"/nowhere?x=1","method":"GET"}"#
    );
    expect_headers(
        &r,
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-request-id".into(), id),
            ("server".into(), "api-gateway".into()),
        ],
    );
}

#[test]
fn a_backend_refusal_found_after_the_decision_answers_its_template_too() {
    let (_dir, gw) = start();
    let r = gw.get("shop.test", "/down");
    expect_status(&r, 503);
    let id = r.header("x-request-id").expect("request id").to_string();
    assert_eq!(
        r.body_str(),
        format!(r#"{{"down":"GET /down","id":"{id}"}}"#)
    );
    expect_headers(
        &r,
        vec![
            ("content-type".into(), "application/json".into()),
            ("retry-after".into(), "5".into()),
            ("x-request-id".into(), id),
            ("server".into(), "api-gateway".into()),
        ],
    );
}

#[test]
fn a_type_the_service_does_not_answer_keeps_huaweis_row() {
    let (_dir, gw) = start();
    assert_huawei(
        &gw.get("shop.test", "/private"),
        403,
        "APIG.0402",
        "The IP address is not authorized to access the API.",
    );
}
