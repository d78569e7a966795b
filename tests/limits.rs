//! Quotas on the virtual clock: calendar windows in the policy's time zone, usage plans, and
//! the `quota … in "ZONE" … on store error` syntax (`check`'s answer to a zone it cannot find).

mod support;

use base64::Engine;
use hmac::Mac;
use http::{HeaderMap, HeaderValue};
use rulegate::compile::Snapshot;
use rulegate::decide::{decide, Outcome, RequestHead, VirtualEnv};
use rulegate::dialect::Reason;
use std::collections::HashMap;
use std::net::IpAddr;

fn snapshot(quota: &str) -> Snapshot {
    let policy = format!(
        r#"service partners {{
    dialect tencent
    hosts "*"
    auth keys keypair {{
        algorithms hmac-sha1
    }}
    app a {{
        key "ak"
        secret env "S"
        {quota}
    }}
    route GET "/q" {{
        auth keys
        mock 200 text "ok"
    }}
}}
"#
    );
    support::compile_text(policy, HashMap::from([("S".to_string(), "sk".to_string())]))
}

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// A signed GET at the env's time: the outcome and the `X-UsagePlan-Quota` header.
fn call(snap: &Snapshot, env: &VirtualEnv, now_ms: i64) -> (Outcome, Option<String>) {
    env.set_now_ms(now_ms);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms as u64);
    let date = httpdate::fmt_http_date(t);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"sk").unwrap();
    mac.update(format!("x-date: {date}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut headers = HeaderMap::new();
    headers.insert("x-date", HeaderValue::from_str(&date).unwrap());
    let auth =
        format!(r#"hmac id="ak", algorithm="hmac-sha1", headers="x-date", signature="{sig}""#);
    headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let d = decide(snap, &get(&headers, "/q"), env);
    let quota = d
        .headers
        .iter()
        .find(|(k, _)| k == "X-UsagePlan-Quota")
        .map(|(_, v)| v.clone());
    (d.outcome, quota)
}

/// A plain-HTTP GET of `target` from 127.0.0.1.
fn get<'a>(headers: &'a HeaderMap, target: &'a str) -> RequestHead<'a> {
    RequestHead {
        version: http::Version::HTTP_11,
        method: "GET",
        target,
        host: Some("api.example.com"),
        host_from: Default::default(),
        headers,
        peer: IpAddr::from([127, 0, 0, 1]),
        tls: false,
        client_cert: false,
        body: None,
    }
}

fn passed(o: &Outcome) -> bool {
    matches!(o, Outcome::Respond(r) if r.status == 200)
}

#[test]
fn a_shanghai_day_resets_at_16_00_utc() {
    let snap = snapshot(r#"quota 2 per day in "Asia/Shanghai""#);
    let env = VirtualEnv::new(0);
    let (o, q) = call(&snap, &env, ms("2026-03-05T15:58:00Z"));
    assert!(passed(&o));
    assert_eq!(q.as_deref(), Some("1/2"));
    let (o, _) = call(&snap, &env, ms("2026-03-05T15:59:00Z"));
    assert!(passed(&o));
    let (o, q) = call(&snap, &env, ms("2026-03-05T15:59:59Z"));
    assert_eq!(o, Outcome::Reject(Reason::QuotaExceeded));
    assert_eq!(q.as_deref(), Some("0/2"));
    // midnight in Shanghai: a new day
    let (o, q) = call(&snap, &env, ms("2026-03-05T16:00:00Z"));
    assert!(passed(&o));
    assert_eq!(q.as_deref(), Some("1/2"));
}

#[test]
fn a_utc_day_does_not_reset_at_shanghai_midnight() {
    let snap = snapshot("quota 1 per day");
    let env = VirtualEnv::new(0);
    assert!(passed(&call(&snap, &env, ms("2026-03-05T15:59:00Z")).0));
    let (o, _) = call(&snap, &env, ms("2026-03-05T16:00:00Z"));
    assert_eq!(o, Outcome::Reject(Reason::QuotaExceeded));
    assert!(passed(&call(&snap, &env, ms("2026-03-06T00:00:00Z")).0));
}

#[test]
fn a_month_in_a_fixed_offset() {
    let snap = snapshot(r#"quota 1 per month in "+08:00" on store error deny"#);
    let env = VirtualEnv::new(0);
    assert!(passed(&call(&snap, &env, ms("2026-02-28T15:00:00Z")).0));
    let (o, _) = call(&snap, &env, ms("2026-02-28T15:59:59Z"));
    assert_eq!(o, Outcome::Reject(Reason::QuotaExceeded));
    // 2026-03-01 00:00 at +08:00
    assert!(passed(&call(&snap, &env, ms("2026-02-28T16:00:00Z")).0));
}

#[test]
fn an_unknown_time_zone_is_a_diagnostic() {
    let loaded = rulegate::policy::parse_texts(vec![(
        "t.policy".into(),
        "service s {\n    dialect huawei\n    hosts \"*\"\n    app a {\n        key \"k\"\n        quota 5 per day in \"Mars/Olympus\"\n    }\n}\n".into(),
        std::path::PathBuf::new(),
    )]);
    let compiled = rulegate::compile::compile(&loaded, &support::Secrets(HashMap::new()));
    let text = rulegate::policy::diag::render_human(&loaded.sources, &compiled.diagnostics, false);
    assert!(compiled.snapshot.is_none(), "{text}");
    assert!(
        text.contains(r#"unknown time zone "Mars/Olympus""#) && text.contains("t.policy:6:28"),
        "{text}"
    );
}

/// A route rate's counters survive a reload that adds routes before it: they are keyed by the
/// route's label, not its position.
#[test]
fn a_route_rate_keeps_its_count_when_a_reload_adds_routes_before_it() {
    let policy = |before: &str| {
        format!(
            r#"service api {{
    dialect huawei
    hosts "*"
    {before}
    route GET "/limited" {{
        rate 1 per minute
        mock 200 text "ok"
    }}
}}
"#
        )
    };
    let old = support::compile_text(policy(""), HashMap::new());
    let new = support::compile_text(
        policy(r#"route GET "/added" { mock 200 text "new" }"#),
        HashMap::new(),
    );
    let env = VirtualEnv::new(ms("2026-11-22T12:00:00Z"));
    let headers = HeaderMap::new();
    let limited = |snap: &Snapshot| decide(snap, &get(&headers, "/limited"), &env).outcome;
    assert!(passed(&limited(&old)));
    // reloaded: the second request in the minute is still the second
    assert!(matches!(
        limited(&new),
        Outcome::Reject(Reason::RateLimited { .. })
    ));
}
