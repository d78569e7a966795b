//! The external authorizer over real sockets: a loopback authorizer that allows, denies,
//! answers 403, is slow, is down, answers garbage; the decision cache (calls counted at the
//! authorizer); every rejection byte for byte; credentials never in the log.

use crate::common::*;
use std::time::{Duration, Instant};

const TOKEN: &str = "Bearer tok-7f3a-secret";
const M: &str = "Incorrect third-party authentication";

/// A Huawei service on `auth.test` whose `GET /r/{id}` is guarded by the authorizer at
/// `auth_url` and forwards to `backend`; `cache` as the provider's cache time.
fn policy(auth_url: &str, backend: &str, cache: &str) -> TempDir {
    let dir = TempDir::new();
    dir.write(
        "auth.policy",
        &format!(
            r#"service guarded {{
    dialect huawei
    hosts "auth.test"
    auth ext authorizer {{
        url "{auth_url}/check?v=1"
        timeout 300ms
        cache {cache}
        identity header "Authorization"
    }}
    backend b {{
        targets "{backend}"
    }}
    route GET "/r/{{id}}" {{
        auth ext
        forward b path "/inner/{{id}}"
    }}
}}
"#
        ),
    );
    dir
}

/// An authorizer that answers every call with `status` and the JSON `body`.
fn authorizer(status: u16, body: &'static str) -> Backend {
    Backend::start(move |_, s| {
        respond(
            s,
            status,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    })
}

fn get(gw: &Gateway, token: Option<&str>, extra: &[(&str, &str)]) -> Resp {
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    gw.send(&request("GET", "/r/42?x=y", "auth.test", &headers, b""))
}

fn no_secret_in_the_log(gw: &Gateway) {
    for line in gw.log_lines() {
        assert!(
            !line.contains("tok-7f3a"),
            "the credential is in the log: {line}"
        );
    }
}

#[test]
fn allow_forwards_with_the_context_and_the_authorizer_gets_the_call() {
    let auth = authorizer(
        200,
        r#"{"status":"allow","context":{"user":"ann","level":3}}"#,
    );
    let backend = Backend::text("inner");
    let dir = policy(&auth.url(), &backend.url(), "0s");
    let gw = Gateway::start(dir.path());

    let r = get(
        &gw,
        Some(TOKEN),
        &[
            ("X-Authorizer-User", "forged"),
            ("X-Authorizer-Admin", "true"),
        ],
    );
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "inner");
    let id = r.header("x-request-id").unwrap().to_string();

    let calls = auth.wait_for(1);
    let call = &calls[0];
    assert_eq!(
        (call.method.as_str(), call.target.as_str()),
        ("POST", "/check?v=1")
    );
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.header("x-request-id"), Some(id.as_str()));
    assert_eq!(call.header("host"), Some(auth.addr.to_string().as_str()));
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "identities": {"Authorization": TOKEN},
            "method": "GET",
            "path": "/r/42",
            "query": "x=y",
            "host": "auth.test",
            "client_ip": "127.0.0.1",
            "request_id": id,
        })
    );

    let got = &backend.wait_for(1)[0];
    assert_eq!(got.target, "/inner/42?x=y");
    assert_eq!(got.header("authorization"), Some(TOKEN));
    let context: Vec<_> = got
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-authorizer-"))
        .cloned()
        .collect();
    assert_eq!(
        context,
        vec![
            ("x-authorizer-user".to_string(), "ann".to_string()),
            ("x-authorizer-level".to_string(), "3".to_string()),
        ],
        "the authorizer's context, and none of the client's forgeries"
    );
    no_secret_in_the_log(&gw);
}

#[test]
fn verdicts_and_failures_are_the_documented_rows() {
    let backend = Backend::text("inner");
    let deny = authorizer(200, r#"{"status":"deny"}"#);
    let unauthorized = authorizer(401, r#"{"whatever":1}"#);
    let forbidden = authorizer(403, "");
    let garbage = authorizer(200, "allow, I suppose");
    let broken = authorizer(500, r#"{"status":"allow"}"#);
    let bad_context = authorizer(200, r#"{"status":"allow","context":{"a b":"c"}}"#);
    let slow = Backend::start(|_, s| {
        std::thread::sleep(Duration::from_millis(1000));
        respond(s, 200, &[], br#"{"status":"allow"}"#)
    });
    let cases: Vec<(&str, String, u16, &str, String)> = vec![
        (
            "deny",
            deny.url(),
            401,
            "APIG.0312",
            format!("{M} information,auth fail"),
        ),
        (
            "401",
            unauthorized.url(),
            401,
            "APIG.0312",
            format!("{M} information,auth fail"),
        ),
        (
            "403",
            forbidden.url(),
            403,
            "APIG.0314",
            format!("{M} information,access deny"),
        ),
        (
            "garbage",
            garbage.url(),
            500,
            "APIG.0617",
            format!("{M} response information"),
        ),
        (
            "500",
            broken.url(),
            500,
            "APIG.0617",
            format!("{M} response information"),
        ),
        (
            "bad context",
            bad_context.url(),
            500,
            "APIG.0617",
            format!("{M} response information"),
        ),
        (
            "slow",
            slow.url(),
            500,
            "APIG.0617",
            format!("{M} response information"),
        ),
        (
            "down",
            closed_url(),
            500,
            "APIG.0616",
            format!("{M} request information"),
        ),
        (
            "unresolvable",
            "http://authorizer.invalid:9400".to_string(),
            500,
            "APIG.0615",
            format!("{M} VPC information"),
        ),
    ];
    for (what, url, status, code, msg) in cases {
        let dir = policy(&url, &backend.url(), "0s");
        let gw = Gateway::start(dir.path());
        let t = Instant::now();
        let r = get(&gw, Some(TOKEN), &[]);
        let took = t.elapsed();
        println!("{what}: {:?} in {took:?}", r.status_line);
        assert_huawei(&r, status, code, &msg);
        assert!(took < Duration::from_millis(900), "{what} took {took:?}");
        no_secret_in_the_log(&gw);
    }
    assert_eq!(backend.count(), 0, "nothing refused reached the backend");
    assert_eq!(slow.wait_for(1).len(), 1);
}

#[test]
fn a_missing_identity_is_refused_without_a_call() {
    let auth = authorizer(200, r#"{"status":"allow"}"#);
    let backend = Backend::text("inner");
    let dir = policy(&auth.url(), &backend.url(), "30s");
    let gw = Gateway::start(dir.path());
    let r = get(&gw, None, &[]);
    assert_huawei(
        &r,
        401,
        "APIG.0313",
        &format!("{M} information,identities error"),
    );
    let r = get(&gw, Some(""), &[]);
    assert_huawei(
        &r,
        401,
        "APIG.0313",
        &format!("{M} information,identities error"),
    );
    assert_eq!(auth.count(), 0);
    assert_eq!(backend.count(), 0);
}

#[test]
fn answers_are_cached_per_identity_until_the_cache_time_passes() {
    let auth = Backend::start(|req, s| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let answer: &[u8] = if body["identities"]["Authorization"] == "Bearer bad" {
            br#"{"status":"deny"}"#
        } else {
            br#"{"status":"allow"}"#
        };
        respond(s, 200, &[("Content-Type", "application/json")], answer)
    });
    let backend = Backend::text("inner");
    let dir = policy(&auth.url(), &backend.url(), "1s");
    let gw = Gateway::start(dir.path());

    expect_status(&get(&gw, Some(TOKEN), &[]), 200);
    expect_status(&get(&gw, Some(TOKEN), &[]), 200);
    assert_eq!(
        auth.count(),
        1,
        "the second request within the cache time makes no call"
    );

    let deny = |gw: &Gateway| {
        assert_huawei(
            &get(gw, Some("Bearer bad"), &[]),
            401,
            "APIG.0312",
            &format!("{M} information,auth fail"),
        )
    };
    deny(&gw);
    deny(&gw);
    assert_eq!(
        auth.count(),
        2,
        "another identity is another call; its denial is cached too"
    );

    std::thread::sleep(Duration::from_millis(1100));
    expect_status(&get(&gw, Some(TOKEN), &[]), 200);
    assert_eq!(
        auth.count(),
        3,
        "after the cache time the authorizer is asked again"
    );
    assert_eq!(backend.count(), 3);
}

#[test]
fn failures_are_not_cached() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = calls.clone();
    let auth = Backend::start(move |_, s| {
        let first = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let (status, body): (u16, &[u8]) = match first {
            true => (502, b"upstream trouble"),
            false => (200, br#"{"status":"allow"}"#),
        };
        respond(s, status, &[], body)
    });
    let backend = Backend::text("inner");
    let dir = policy(&auth.url(), &backend.url(), "30s");
    let gw = Gateway::start(dir.path());
    assert_huawei(
        &get(&gw, Some(TOKEN), &[]),
        500,
        "APIG.0617",
        &format!("{M} response information"),
    );
    expect_status(&get(&gw, Some(TOKEN), &[]), 200);
    assert_eq!(auth.count(), 2);
}
