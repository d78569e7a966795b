//! Snapshots of the shipped example policies (`policies/`): the compiled decision tree, and
//! `explain` of requests in each dialect — the full pipeline trace and the exact response.
//!
//! Every request runs on a `VirtualEnv` with a fixed clock, so request ids and rate-limit
//! counters are the same on every run. File paths are relative to the crate.

use http::{HeaderMap, HeaderName, HeaderValue};
use rulegate::compile::{compile, ProcessSecrets, Snapshot};
use rulegate::decide::{decide, render_response, Decision, Outcome, RequestHead, VirtualEnv};
use rulegate::dialect::Reason;
use rulegate::policy::{self, diag};
use std::net::IpAddr;
use std::path::Path;

/// 2026-11-22T10:00:00Z
const NOW_MS: i64 = 1_795_341_600_000;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compile a policy set given as (relative name, text); secrets resolve under `dir`.
fn compile_texts(texts: Vec<(String, String)>, dir: &Path) -> Snapshot {
    let loaded = policy::parse_texts(
        texts
            .into_iter()
            .map(|(name, text)| (name, text, dir.to_path_buf()))
            .collect(),
    );
    let compiled = compile(&loaded, &ProcessSecrets);
    assert!(
        compiled.diagnostics.is_empty(),
        "the policy should compile cleanly:\n{}",
        diag::render_human(&loaded.sources, &compiled.diagnostics, false)
    );
    compiled.snapshot.expect("a snapshot")
}

/// The shipped examples, named `policies/….policy`.
fn shipped() -> Snapshot {
    let root = manifest_dir();
    let files = policy::policy_files(&[root.join("policies")]).expect("policies/");
    let texts = files
        .iter()
        .map(|f| {
            let name = f.strip_prefix(root).expect("under the crate").display();
            (
                name.to_string(),
                std::fs::read_to_string(f).expect("readable"),
            )
        })
        .collect();
    compile_texts(texts, &root.join("policies"))
}

/// One request as a test writes it.
struct Request {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    peer: IpAddr,
    body: Option<Vec<u8>>,
}

fn request(method: &'static str, url: &str) -> Request {
    Request {
        method,
        url: url.to_string(),
        headers: Vec::new(),
        peer: "198.51.100.20".parse().unwrap(),
        body: None,
    }
}

impl Request {
    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn from(mut self, ip: &str) -> Self {
        self.peer = ip.parse().unwrap();
        self
    }

    fn body(mut self, body: &str) -> Self {
        self.body = Some(body.as_bytes().to_vec());
        self
    }

    /// Decide on `env` and return the decision and what `explain` prints for it.
    fn run(&self, snap: &Snapshot, env: &VirtualEnv) -> (Decision, String) {
        let (tls, rest) = match self.url.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, self.url.strip_prefix("http://").expect("a full URL")),
        };
        let (host, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_str(host).unwrap());
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let head = RequestHead {
            version: http::Version::HTTP_11,
            method: self.method,
            target,
            host: Some(host),
            host_from: Default::default(),
            headers: &headers,
            peer: self.peer,
            tls,
            client_cert: false,
            body: self.body.as_deref(),
        };
        let decision = decide(snap, &head, env);
        let text = rulegate::explain::explain(snap, &head, &decision);
        (decision, text)
    }

    /// `explain` on a fresh virtual environment.
    fn explain(&self, snap: &Snapshot) -> String {
        self.run(snap, &VirtualEnv::new(NOW_MS)).1
    }
}

fn status(d: &Decision) -> Option<u16> {
    render_response(d).map(|r| r.status)
}

// ---------------------------------------------------------------------------------------------
// The compiled tree

#[test]
fn compiled_tree_of_the_shipped_policies() {
    insta::assert_snapshot!("compiled_tree", shipped().render());
}

// ---------------------------------------------------------------------------------------------
// Routing: host, stage, route, method

#[test]
fn unknown_host_answers_in_the_default_dialect() {
    let snap = shipped();
    let out = request("GET", "http://unknown.example.com/health").explain(&snap);
    insta::assert_snapshot!("huawei_unknown_host", out);
}

#[test]
fn unknown_stage_from_header_huawei() {
    let snap = shipped();
    let out = request("GET", "http://shop.example.com/health")
        .header("X-Stage", "PROD")
        .explain(&snap);
    insta::assert_snapshot!("huawei_unknown_stage_header", out);
}

#[test]
fn unknown_stage_from_header_jdcloud() {
    let snap = shipped();
    let out = request("GET", "https://weather.example.com/v1/forecast?lat=1&lon=2")
        .header("X-Env", "beta")
        .explain(&snap);
    insta::assert_snapshot!("jdcloud_unknown_stage_header", out);
}

#[test]
fn unknown_stage_from_path_tencent() {
    let snap = shipped();
    let out = request("GET", "http://partners.example.com/staging/ping").explain(&snap);
    insta::assert_snapshot!("tencent_unknown_stage_path", out);
}

#[test]
fn no_route_huawei() {
    let out = request("GET", "http://shop.example.com/nothing/here").explain(&shipped());
    insta::assert_snapshot!("huawei_no_route", out);
}

#[test]
fn no_route_tencent() {
    let out = request("GET", "http://partners.example.com/release/nothing").explain(&shipped());
    insta::assert_snapshot!("tencent_no_route", out);
}

#[test]
fn no_route_jdcloud() {
    let out = request("GET", "https://weather.example.com/v1/nothing").explain(&shipped());
    insta::assert_snapshot!("jdcloud_no_route", out);
}

#[test]
fn method_not_allowed_huawei() {
    let out = request("DELETE", "http://shop.example.com/products").explain(&shipped());
    insta::assert_snapshot!("huawei_method_not_allowed", out);
}

#[test]
fn method_not_allowed_tencent() {
    let out = request("POST", "http://partners.example.com/release/ping").explain(&shipped());
    insta::assert_snapshot!("tencent_method_not_allowed", out);
}

#[test]
fn method_not_allowed_jdcloud() {
    let out = request(
        "POST",
        "https://weather.example.com/v1/forecast?lat=1&lon=2",
    )
    .explain(&shipped());
    insta::assert_snapshot!("jdcloud_method_not_allowed", out);
}

// ---------------------------------------------------------------------------------------------
// Actions: mocks and forwards

#[test]
fn mock_hit_huawei() {
    let out = request("GET", "http://localhost/health").explain(&shipped());
    insta::assert_snapshot!("huawei_mock", out);
}

#[test]
fn mock_hit_in_a_test_stage_huawei() {
    let out = request("GET", "http://shop.example.com/v2/orders/17")
        .header("X-Stage", "TEST")
        .explain(&shipped());
    insta::assert_snapshot!("huawei_mock_test_stage", out);
}

#[test]
fn mock_hit_with_response_header_tencent() {
    let out = request("GET", "http://partners.example.com/release/ping").explain(&shipped());
    assert!(
        out.contains("\nCache-Control: no-store\n"),
        "the route's response header"
    );
    insta::assert_snapshot!("tencent_mock", out);
}

#[test]
fn mock_hit_in_the_sandbox_jdcloud() {
    let out = request(
        "GET",
        "https://weather.example.com/v1/sandbox/forecast?lat=52.52&lon=13.4",
    )
    .header("X-Env", "sandbox")
    .explain(&shipped());
    insta::assert_snapshot!("jdcloud_mock_sandbox", out);
}

#[test]
fn forward_with_rewrite_and_query_huawei() {
    let out = request(
        "GET",
        "http://shop.example.com/products/SKU-1234?ref=newsletter&x=1",
    )
    .explain(&shipped());
    insta::assert_snapshot!("huawei_forward", out);
}

/// The shipped policy forwards `{page+}` as `path "/static/docs/{page}"`: a rest variable
/// expands to all its segments, slashes kept, each segment re-encoded (an encoded `%2F`
/// inside one segment stays encoded).
#[test]
fn forward_rest_of_path_tencent() {
    let out = request(
        "GET",
        "http://partners.example.com/release/docs/guides/signing.html?lang=en",
    )
    .explain(&shipped());
    assert!(
        out.contains("forward  GET /static/docs/guides/signing.html?lang=en to backend ledger\n")
    );
    insta::assert_snapshot!("tencent_forward", out);
    let out = request(
        "GET",
        "http://partners.example.com/release/docs/a%2Fb/c%20d.html",
    )
    .explain(&shipped());
    assert!(
        out.contains("forward  GET /static/docs/a%2Fb/c%20d.html to backend ledger\n"),
        "{out}"
    );
}

#[test]
fn forward_with_rewrite_and_query_jdcloud() {
    let out = request(
        "GET",
        "https://weather.example.com/v1/forecast?lat=52.52&lon=13.4&days=3&units=metric",
    )
    .explain(&shipped());
    insta::assert_snapshot!("jdcloud_forward", out);
}

// ---------------------------------------------------------------------------------------------
// Parameters

#[test]
fn missing_query_jdcloud() {
    let out =
        request("GET", "https://weather.example.com/v1/forecast?lon=13.4").explain(&shipped());
    insta::assert_snapshot!("jdcloud_missing_query", out);
}

#[test]
fn int_out_of_range_huawei() {
    let out = request("GET", "http://shop.example.com/products?page=0").explain(&shipped());
    insta::assert_snapshot!("huawei_int_out_of_range", out);
}

#[test]
fn int_out_of_range_jdcloud() {
    let out = request(
        "GET",
        "https://weather.example.com/v1/forecast?lat=52.52&lon=13.4&days=15",
    )
    .explain(&shipped());
    insta::assert_snapshot!("jdcloud_int_out_of_range", out);
}

#[test]
fn wrong_type_huawei() {
    let out = request("GET", "http://shop.example.com/products?page=two").explain(&shipped());
    insta::assert_snapshot!("huawei_wrong_type", out);
}

#[test]
fn wrong_type_jdcloud() {
    let out = request(
        "GET",
        "https://weather.example.com/v1/forecast?lat=north&lon=13.4",
    )
    .explain(&shipped());
    insta::assert_snapshot!("jdcloud_wrong_type", out);
}

#[test]
fn enum_miss_huawei() {
    let out = request("GET", "http://shop.example.com/products?sort=popular").explain(&shipped());
    insta::assert_snapshot!("huawei_enum_miss", out);
}

#[test]
fn enum_miss_jdcloud() {
    let out = request(
        "GET",
        "https://weather.example.com/v1/forecast?lat=52.52&lon=13.4&units=kelvin",
    )
    .explain(&shipped());
    insta::assert_snapshot!("jdcloud_enum_miss", out);
}

#[test]
fn path_parameter_too_short_huawei() {
    let out = request("GET", "http://shop.example.com/products/AB").explain(&shipped());
    insta::assert_snapshot!("huawei_path_param_too_short", out);
}

// ---------------------------------------------------------------------------------------------
// Protocol, CORS, client IP, websocket

#[test]
fn http_to_https_only_route_tencent() {
    let out = request(
        "POST",
        "http://partners.example.com/release/invoices/INV-7/settle",
    )
    .explain(&shipped());
    insta::assert_snapshot!("tencent_protocol_not_allowed", out);
}

#[test]
fn cors_preflight_answered_huawei() {
    let out = request("OPTIONS", "http://shop.example.com/products")
        .header("Origin", "https://shop.example.com")
        .header("Access-Control-Request-Method", "GET")
        .explain(&shipped());
    insta::assert_snapshot!("huawei_cors_preflight", out);
}

#[test]
fn cors_preflight_answered_jdcloud() {
    let out = request("OPTIONS", "https://weather.example.com/v1/forecast")
        .header("Origin", "https://maps.example.org")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "X-Env")
        .explain(&shipped());
    insta::assert_snapshot!("jdcloud_cors_preflight", out);
}

#[test]
fn cross_origin_without_cors_tencent() {
    let out = request("GET", "http://partners.example.com/release/ping")
        .header("Origin", "https://evil.example.net")
        .explain(&shipped());
    // The route's `response header "Cache-Control" …` belongs to its own answers, never to
    // the vendor's rejection row.
    assert!(!out.contains("Cache-Control"), "{out}");
    insta::assert_snapshot!("tencent_cross_origin_without_cors", out);
}

#[test]
fn client_ip_denied_by_the_service_jdcloud() {
    let out = request("GET", "https://weather.example.com/v1/stations/BER01")
        .from("192.0.2.44")
        .explain(&shipped());
    insta::assert_snapshot!("jdcloud_client_ip_denied_service", out);
}

#[test]
fn client_ip_denied_by_the_route_tencent() {
    let out = request(
        "DELETE",
        "http://partners.example.com/release/admin/users/7",
    )
    .explain(&shipped());
    insta::assert_snapshot!("tencent_client_ip_denied_route", out);
}

#[test]
fn websocket_without_key_tencent() {
    let out = request("GET", "http://partners.example.com/release/events")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .explain(&shipped());
    insta::assert_snapshot!("tencent_websocket_without_key", out);
}

// ---------------------------------------------------------------------------------------------
// Sizes

#[test]
fn body_too_large_by_content_length_huawei() {
    let out = request("GET", "http://shop.example.com/products")
        .header("Content-Length", (12 * 1024 * 1024 + 1).to_string())
        .explain(&shipped());
    insta::assert_snapshot!("huawei_body_too_large", out);
}

#[test]
fn uri_too_large_huawei() {
    let padding = "a".repeat(40 * 1024);
    let url = format!("http://shop.example.com/products?q={padding}");
    let out = request("GET", &url).explain(&shipped());
    // The request line echoes the URI: keep the snapshot readable.
    let out = out.replace(&padding, "<40 KiB of `a`>");
    insta::assert_snapshot!("huawei_uri_too_large", out);
}

#[test]
fn one_header_too_large_tencent() {
    let out = request("GET", "http://partners.example.com/release/ping")
        .header("X-Padding", "p".repeat(200 * 1024))
        .explain(&shipped());
    insta::assert_snapshot!("tencent_header_too_large", out);
}

#[test]
fn one_header_too_large_jdcloud() {
    let out = request("GET", "https://weather.example.com/v1/stations/BER01")
        .header("Cookie", "c".repeat(200 * 1024))
        .explain(&shipped());
    insta::assert_snapshot!("jdcloud_header_too_large", out);
}

// ---------------------------------------------------------------------------------------------
// Rate limits: several requests on one environment

/// Send `req` until it is refused; returns how many passed and the refusal's explanation.
fn until_refused(snap: &Snapshot, env: &VirtualEnv, req: &Request) -> (usize, String) {
    for passed in 0..100 {
        let (d, out) = req.run(snap, env);
        if matches!(d.outcome, Outcome::Reject(Reason::RateLimited { .. })) {
            return (passed, out);
        }
        assert!(
            matches!(d.outcome, Outcome::Forward(_)),
            "request {passed} neither passed nor was rate limited:\n{out}"
        );
    }
    panic!("never rate limited");
}

#[test]
fn rate_limited_with_burst_tencent() {
    // rate 50 per second per ip burst 20: 21 requests at one instant pass, the 22nd waits.
    let snap = shipped();
    let env = VirtualEnv::new(NOW_MS);
    let req = request("GET", "http://partners.example.com/release/docs/index.html");
    let (passed, out) = until_refused(&snap, &env, &req);
    assert_eq!(passed, 21);
    insta::assert_snapshot!("tencent_rate_limited", out);
    // Another client address has its own counter.
    let (d, _) = req.from("198.51.100.21").run(&snap, &env);
    assert!(matches!(d.outcome, Outcome::Forward(_)));
}

#[test]
fn rate_limited_then_admitted_again_jdcloud() {
    // rate 10 per second per ip, no burst: one request every 100 ms.
    let snap = shipped();
    let env = VirtualEnv::new(NOW_MS);
    let req = request("GET", "https://weather.example.com/v1/stations/BER01");
    let (passed, out) = until_refused(&snap, &env, &req);
    assert_eq!(passed, 1);
    insta::assert_snapshot!("jdcloud_rate_limited", out);
    env.advance_ms(100);
    let (d, _) = req.run(&snap, &env);
    assert!(
        matches!(d.outcome, Outcome::Forward(_)),
        "admitted after 100 ms"
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[test]
fn signed_route_without_credentials_huawei() {
    let out = request("POST", "http://shop.example.com/orders")
        .header("X-Tenant", "t-1")
        .explain(&shipped());
    assert!(out.contains(r#""error_code": "APIG.0303""#), "{out}");
    insta::assert_snapshot!("huawei_signed_route_without_credentials", out);
}

#[test]
fn jwt_route_without_a_token_huawei() {
    let out = request("GET", "http://shop.example.com/orders/12")
        .header("X-Tenant", "t-1")
        .explain(&shipped());
    assert!(out.contains(r#""error_code": "APIG.0301""#), "{out}");
    insta::assert_snapshot!("huawei_jwt_without_token", out);
}

// ---------------------------------------------------------------------------------------------
// Form bodies and required headers. Every shipped route with a required header or a form
// parameter sits behind authentication, so these run against a small policy of their own.

const INTAKE: &str = r#"
service intake {
    dialect huawei
    hosts "intake.example.com"

    route POST "/feedback" {
        require header "X-Tenant" string 1..32
        require form "rating" int 1..5
        optional form "comment" string ..200
        limits {
            body 4KiB
        }
        mock 202 json {"accepted": true}
    }
}
"#;

fn intake() -> Snapshot {
    compile_texts(
        vec![("intake.policy".to_string(), INTAKE.to_string())],
        manifest_dir(),
    )
}

#[test]
fn missing_required_header_huawei() {
    let out = request("POST", "http://intake.example.com/feedback").explain(&intake());
    insta::assert_snapshot!("huawei_missing_header", out);
}

#[test]
fn form_route_needs_the_body_then_decides_with_it() {
    let snap = intake();
    let env = VirtualEnv::new(NOW_MS);
    let without = request("POST", "http://intake.example.com/feedback")
        .header("X-Tenant", "acme")
        .header("Content-Type", "application/x-www-form-urlencoded");
    let (d, out) = without.run(&snap, &env);
    assert_eq!(d.outcome, Outcome::NeedBody { limit: 4096 });
    insta::assert_snapshot!("huawei_form_needs_body", out);

    let with = without.body("rating=5&comment=fast+delivery");
    let (d, out) = with.run(&snap, &env);
    assert_eq!(status(&d), Some(202));
    insta::assert_snapshot!("huawei_form_with_body", out);
}

#[test]
fn form_value_out_of_range_huawei() {
    let out = request("POST", "http://intake.example.com/feedback")
        .header("X-Tenant", "acme")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("rating=9")
        .explain(&intake());
    insta::assert_snapshot!("huawei_form_out_of_range", out);
}

// ---------------------------------------------------------------------------------------------
// The 404 of each dialect, byte for byte against the documented row

/// The documented rows of a dialect: `../shared/errors/NAME.tsv` when the shared reference is
/// checked out next to the crate, else the copy embedded in the crate.
fn documented_rows(dialect: &str) -> Vec<(String, u16, String)> {
    let shared = manifest_dir().join(format!("../shared/errors/{dialect}.tsv"));
    let path = if shared.exists() {
        shared
    } else {
        manifest_dir().join(format!("src/dialect/tsv/{dialect}.tsv"))
    };
    let text = std::fs::read_to_string(&path).expect("a TSV of documented rows");
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (
                cols[0].to_string(),
                cols[1].parse().expect("a status"),
                cols[2].to_string(),
            )
        })
        .collect()
}

/// The message of the one documented row with this code and status whose text satisfies `pick`.
fn documented_message(dialect: &str, code: &str, status: u16, pick: fn(&str) -> bool) -> String {
    let mut messages: Vec<String> = documented_rows(dialect)
        .into_iter()
        .filter(|(c, s, m)| c == code && *s == status && pick(m))
        .map(|(_, _, m)| m)
        .collect();
    messages.dedup();
    assert_eq!(messages.len(), 1, "{dialect} {code}: {messages:?}");
    messages.remove(0)
}

fn no_route(url: &str) -> (Decision, Vec<u8>) {
    let (d, _) = request("GET", url).run(&shipped(), &VirtualEnv::new(NOW_MS));
    let response = render_response(&d).expect("a response");
    assert_eq!(response.status, 404);
    (d, response.body.to_vec())
}

#[test]
fn no_route_bodies_are_the_documented_rows_byte_for_byte() {
    // tencent: `{"message":"…"}`, lua-cjson escaping `/` as `\/`; `$uri` is the request path.
    let template = documented_message("tencent", "404", 404, |m| m.contains("uri[$uri]"));
    let message = template.replace("$uri", "/release/nothing");
    let (_, body) = no_route("http://partners.example.com/release/nothing");
    let expected = format!("{{\"message\":\"{}\"}}", message.replace('/', "\\/"));
    assert_eq!(String::from_utf8(body).unwrap(), expected);
    assert_eq!(
        expected,
        r#"{"message":"There is no api match uri[\/release\/nothing]."}"#
    );

    // huawei: the gateway-response template, `": "` after keys and `", "` between members.
    let message = documented_message("huawei", "APIG.0101", 404, |m| m.contains("published"));
    let (d, body) = no_route("http://shop.example.com/nothing");
    let expected = format!(
        "{{\"error_code\": \"APIG.0101\", \"error_msg\": \"{message}\", \"request_id\": \"{}\"}}",
        d.request_id
    );
    assert_eq!(String::from_utf8(body).unwrap(), expected);

    // jdcloud: `{"requestId":"…","error":{"code":N,"status":"ENUM","message":"…"}}`, compact.
    let message = documented_message("jdcloud", "NOT_FOUND", 404, |_| true);
    let (d, body) = no_route("https://weather.example.com/v1/nothing");
    let expected = format!(
        "{{\"requestId\":\"{}\",\"error\":{{\"code\":404,\"status\":\"NOT_FOUND\",\"message\":\"{message}\"}}}}",
        d.request_id
    );
    assert_eq!(String::from_utf8(body).unwrap(), expected);
}
