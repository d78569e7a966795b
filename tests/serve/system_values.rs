//! System values over real sockets (issue 13, item 1): the backend receives the request id the
//! client was answered with, the stage, service, route and time, the signing app's key and
//! name, a claim of the verified JWT and a field of the authorizer's context — and a value that
//! is absent at runtime (no app on an open route, a claim the token lacks, a context field the
//! authorizer did not give) omits its parameter, whatever the client sent under that name.

use crate::common::*;
use crate::limits_support::keypair_headers;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

struct Values {
    backend: Backend,
    gw: Gateway,
    _authz: Backend,
    _dir: TempDir,
}

const SECRET: &str = "s3cret-partner";

fn start() -> Values {
    let backend = Backend::text("ok");
    let authz = Backend::start(|_, s| {
        respond(
            s,
            200,
            &[("Content-Type", "application/json")],
            br#"{"status":"allow","context":{"user":"ann"}}"#,
        )
    });
    let dir = TempDir::new();
    let policy = fixture(
        "system_values.policy",
        &[("BACKEND", &backend.url()), ("AUTHZ", &authz.url())],
    );
    dir.write("values.policy", &policy);
    dir.write("partner.secret", SECRET);
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let public = std::fs::read_to_string(keys.join("users.es256.pub.pem")).unwrap();
    dir.write("users.es256.pub.pem", &public);
    let gw = Gateway::start(dir.path());
    Values {
        backend,
        gw,
        _authz: authz,
        _dir: dir,
    }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(claims: serde_json::Value) -> String {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let pem = std::fs::read(keys.join("users.es256.key.pem")).unwrap();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as seconds since the epoch, or a panic naming the text.
fn rfc3339_seconds(text: &str) -> i64 {
    let ts: jiff::Timestamp = text
        .parse()
        .unwrap_or_else(|e| panic!("request-time {text:?} is not RFC 3339: {e}"));
    assert!(text.ends_with('Z'), "request-time {text:?} is not UTC");
    ts.as_second()
}

#[test]
fn an_open_route_gets_the_request_id_stage_service_route_and_time_and_no_app() {
    let v = start();
    let before = now_s();
    let r = v.gw.send(&request(
        "GET",
        "/open",
        "values.test",
        &[
            ("X-Stage", "TEST"),
            ("X-App-Key", "forged"),
            ("X-Request-Id-Copy", "forged"),
        ],
        b"",
    ));
    expect_status(&r, 200);
    let id = r.header("x-request-id").expect("request id").to_string();
    let g = &v.backend.wait_for(1)[0];
    assert_eq!(g.target, "/open?client=127.0.0.1");
    assert_eq!(g.header("x-request-id-copy"), Some(id.as_str()));
    assert_eq!(g.header("x-request-id"), Some(id.as_str()));
    assert_eq!(g.header("x-stage-name"), Some("TEST"));
    assert_eq!(g.header("x-service"), Some("values"));
    assert_eq!(g.header("x-route"), Some("GET /open"));
    let at = rfc3339_seconds(g.header("x-time").expect("request-time"));
    assert!(
        (before - 1..=now_s() + 1).contains(&at),
        "request-time {at} is not the gateway's clock ({before})"
    );
    // no app signed this request: the parameter is omitted, and the forgery dropped
    assert!(!g.has("x-app-key"), "{:?}", g.headers);
    // the default stage when the client names none
    let r = v.gw.get("values.test", "/open");
    expect_status(&r, 200);
    assert_eq!(
        v.backend.wait_for(2)[1].header("x-stage-name"),
        Some("RELEASE")
    );
}

#[test]
fn a_key_pair_route_gets_the_signing_apps_key_and_name() {
    let v = start();
    let h = keypair_headers("ak-partner", SECRET);
    let mut h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.push(("X-App-Name", "forged"));
    let r = v.gw.send(&request("GET", "/app", "values.test", &h, b""));
    expect_status(&r, 200);
    let g = &v.backend.wait_for(1)[0];
    assert_eq!(g.target, "/app");
    assert_eq!(g.header("x-app-key"), Some("ak-partner"));
    assert_eq!(g.header("x-app-name"), Some("partner"));
}

#[test]
fn a_jwt_route_gets_the_tokens_claim_and_omits_a_claim_it_lacks() {
    let v = start();
    let now = now_s();
    let jwt = token(serde_json::json!({
        "iss": "https://id.values.test",
        "aud": "values",
        "sub": "customer-7",
        "exp": now + 300,
        "nbf": now - 10,
    }));
    let auth = format!("Bearer {jwt}");
    let r = v.gw.send(&request(
        "GET",
        "/claims?tier=gold",
        "values.test",
        &[("Authorization", &auth), ("X-Sub", "forged")],
        b"",
    ));
    expect_status(&r, 200);
    let g = &v.backend.wait_for(1)[0];
    assert_eq!(g.header("x-sub"), Some("customer-7"));
    // the token has no "tier": the client's own ?tier= does not stand in for it
    assert_eq!(g.target, "/claims");
}

#[test]
fn an_authorized_route_gets_the_context_field_and_omits_one_the_authorizer_did_not_give() {
    let v = start();
    let r = v.gw.send(&request(
        "GET",
        "/ctx",
        "values.test",
        &[
            ("X-Token", "t-1"),
            ("X-Missing", "forged"),
            ("X-User", "mallory"),
        ],
        b"",
    ));
    expect_status(&r, 200);
    let g = &v.backend.wait_for(1)[0];
    assert_eq!(g.target, "/ctx");
    assert_eq!(g.header("x-user"), Some("ann"));
    assert!(!g.has("x-missing"), "{:?}", g.headers);
}
