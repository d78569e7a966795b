//! CORS on the wire: every answer of a route with `cors` to an origin it allows carries the
//! CORS headers, refusals included (a page must be able to read why it was refused), and a
//! preflight names only methods a browser knows. `tests/browser.rs` runs the same policy in
//! headless Chromium.

use crate::common::*;
use crate::limits_support::*;

pub const SECRET: &str = "s3cret-buyer";

/// The policy for pages served from `origin`, in a fresh directory.
pub fn cors_dir(origin: &str) -> TempDir {
    let dir = TempDir::new();
    dir.write(
        "cors.policy",
        &fixture("cors.policy", &[("ORIGIN", origin)]),
    );
    dir.write("buyer.secret", SECRET);
    dir
}

const ORIGIN: &str = "http://127.0.0.1:8000";

/// The headers an allowed origin gets on every answer of these routes.
const ALLOWED: [(&str, &str); 3] = [
    ("access-control-allow-origin", ORIGIN),
    ("access-control-allow-credentials", "true"),
    ("vary", "Origin"),
];

fn get(gw: &Gateway, path: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("Origin", ORIGIN)];
    headers.extend_from_slice(extra);
    gw.send(&request("GET", path, "shop.test", &headers, b""))
}

#[test]
fn every_refusal_on_a_cors_route_carries_its_cors_headers() {
    let dir = cors_dir(ORIGIN);
    let gw = Gateway::start(dir.path());

    // parameters
    let r = get(&gw, "/search?q=abc", &[]);
    assert_huawei_row(
        &r,
        400,
        "APIG.0201",
        "API request error: query parameter q must be int",
        &ALLOWED,
    );

    // authentication
    let r = get(&gw, "/signed", &[]);
    assert_huawei_row(
        &r,
        401,
        "APIG.0303",
        "Incorrect app authentication information.",
        &ALLOWED,
    );

    // the client address
    let r = get(&gw, "/lan", &[]);
    assert_huawei_row(
        &r,
        403,
        "APIG.0402",
        "The IP address is not authorized to access the API.",
        &ALLOWED,
    );

    // a rate
    assert_eq!(get(&gw, "/rate", &[]).status, 200);
    let r = get(&gw, "/rate", &[]);
    let mut want = ALLOWED.to_vec();
    want.push(("retry-after", r.header("retry-after").unwrap_or("?")));
    assert_huawei_row(
        &r,
        429,
        "APIG.0308",
        "The throttling threshold has been reached: policy ip over ratelimit,limit:1,time:1 minute",
        &want,
    );

    // a quota
    let signed = |gw: &Gateway| {
        let h = keypair_headers("ak-buyer", SECRET);
        let mut h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        h.push(("Origin", ORIGIN));
        gw.send(&request("GET", "/signed", "shop.test", &h, b""))
    };
    assert_eq!(signed(&gw).status, 200);
    let r = signed(&gw);
    assert_huawei_row(
        &r,
        405,
        "APIG.0501",
        "The app quota has been used up.",
        &ALLOWED,
    );

    // a body over the limit: announced, then sent chunked (read by the server, not `decide`)
    let post = |framing: (&str, &str), body: &[u8]| {
        let headers = [("Origin", ORIGIN), framing];
        gw.send(&request("POST", "/upload", "shop.test", &headers, body))
    };
    let r = post(("Content-Length", "11"), b"hello world");
    assert_huawei_row(&r, 413, "APIG.0201", "Request entity too large.", &ALLOWED);
    let r = post(
        ("Transfer-Encoding", "chunked"),
        &chunked(b"hello world", 4),
    );
    assert_huawei_row(&r, 413, "APIG.0201", "Request entity too large.", &ALLOWED);
}

#[test]
fn a_refusal_to_an_origin_the_route_does_not_allow_carries_no_allow_origin() {
    let dir = cors_dir(ORIGIN);
    let gw = Gateway::start(dir.path());
    let r = gw.send(&request(
        "GET",
        "/search?q=abc",
        "shop.test",
        &[("Origin", "http://evil.test")],
        b"",
    ));
    assert_huawei_row(
        &r,
        400,
        "APIG.0201",
        "API request error: query parameter q must be int",
        &[("vary", "Origin")],
    );
}

#[test]
fn a_preflight_to_an_any_route_names_real_methods_not_any() {
    let dir = cors_dir(ORIGIN);
    let gw = Gateway::start(dir.path());
    let r = gw.send(&request(
        "OPTIONS",
        "/items/7",
        "shop.test",
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    ));
    expect_status(&r, 200);
    let id = r.header("x-request-id").expect("request id").to_string();
    assert_generated_id(&id);
    assert_eq!(r.body, b"");
    expect_headers(
        &r,
        owned(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-credentials", "true"),
            (
                "access-control-allow-methods",
                "GET,HEAD,POST,PUT,DELETE,PATCH,OPTIONS",
            ),
            ("access-control-allow-headers", "content-type"),
            ("vary", "Origin"),
            ("x-request-id", &id),
        ]),
    );
}
