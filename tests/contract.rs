//! Error contracts (`rulegate errors --route`): what each route of the shipped policies can
//! refuse with, pinned per dialect; the contract says no to a refusal the route cannot give;
//! and the CLI prints it as text and as JSON.
//!
//! Soundness — every refusal a request meets is in its route's contract — is checked on every
//! request of every `.tests` file (`testing::run`), and by the `decide` and `compile` fuzz
//! targets (`contract::check`).

use rulegate::compile::{compile, ProcessSecrets, Snapshot};
use rulegate::contract;
use rulegate::decide::Outcome;
use rulegate::dialect::Reason;
use rulegate::policy;
use std::path::Path;
use std::process::Command;

mod support;

/// Loaded by a relative path (tests run in the crate's directory), so locations read
/// `policies/…` on every machine.
fn shipped() -> Snapshot {
    assert_eq!(
        std::env::current_dir().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
    );
    let loaded = policy::load(&[std::path::PathBuf::from("policies")]).expect("policies/");
    compile(&loaded, &ProcessSecrets)
        .snapshot
        .expect("the shipped policies compile")
}

fn human(snap: &Snapshot, service: &str, route: &str) -> String {
    let routes = contract::select(snap, Some(service), Some(route)).expect("the route");
    contract::human(snap, &routes)
}

#[test]
fn a_huawei_route_with_a_token_parameters_and_a_signed_backend() {
    insta::assert_snapshot!(human(&shipped(), "shop", "GET /orders/{id}"));
}

#[test]
fn a_tencent_route_with_key_pairs_and_usage_plans() {
    insta::assert_snapshot!(human(&shipped(), "partners", "GET /invoices"));
}

#[test]
fn a_jd_route_with_a_rate_and_parameters() {
    insta::assert_snapshot!(human(&shipped(), "weather", "GET /v1/forecast"));
}

/// The contract can say no: a mock route without auth, limits or parameters never answers
/// with an authentication, quota or rate row.
#[test]
fn a_refusal_a_route_cannot_give_is_outside_its_contract() {
    let snap = shipped();
    let routes = contract::select(&snap, Some("shop"), Some("GET /health")).unwrap();
    let (s, r) = routes[0];
    assert!(contract::holds(&snap, s, r, &Reason::UriTooLarge));
    assert!(!contract::holds(&snap, s, r, &Reason::QuotaExceeded));
    assert!(!contract::holds(
        &snap,
        s,
        r,
        &Reason::RateLimited { hit: None }
    ));
    assert!(!contract::holds(&snap, s, r, &Reason::BackendTimeout));
}

#[test]
fn an_unknown_route_or_service_is_named_with_what_there_is() {
    let snap = shipped();
    let e = contract::select(&snap, Some("shop"), Some("GET /nowhere")).unwrap_err();
    assert!(
        e.starts_with("no route \"GET /nowhere\"; the routes: "),
        "{e}"
    );
    assert!(e.contains("GET /orders/{id}"), "{e}");
    let e = contract::select(&snap, Some("shopp"), None).unwrap_err();
    assert!(
        e.starts_with("no service \"shopp\"; the policy's services: "),
        "{e}"
    );
}

#[test]
fn the_cli_prints_a_services_contracts_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(["errors", "--policy", "policies", "--service", "weather"])
        .args(["--format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run rulegate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let routes = json.as_array().expect("one entry a route");
    assert_eq!(routes.len(), 4);
    let forecast = routes
        .iter()
        .find(|r| r["route"] == "GET /v1/forecast")
        .expect("the forecast route");
    assert_eq!(forecast["dialect"], "jdcloud");
    let throttled = forecast["answers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["status"] == 429 && a["code"] == "RATE_LIMIT_EXCEEDED");
    assert!(throttled, "{forecast}");
}

/// A path forwarded as sent exposes every capture to the backend, so a capture that would
/// climb out of it is refused (`decide::path_safety`) — and the contract has that row, as it
/// has for a rewrite's variables (found by the `decide` fuzz target: the contract listed it
/// only for rewrites).
#[test]
fn a_capture_forwarded_as_sent_may_be_refused_and_the_contract_says_so() {
    let text = r#"
service files {
    dialect huawei
    hosts "*"
    backend main { targets "http://127.0.0.1:9" }
    route GET "/raw/{rest+}" { forward main }
    route GET "/plain" { forward main }
}
"#;
    let snap = support::compile_text(text.into(), Default::default());
    let d = support::decided(&snap, "GET", "/raw/a/..%2Fsecret", &[], None, 0);
    let Outcome::Reject(reason) = &d.outcome else {
        panic!("forwarded: {:?}", d.outcome)
    };
    assert!(
        matches!(reason, Reason::ParamInvalid { name, .. } if name == "rest"),
        "{reason:?}"
    );
    let (s, r) = (d.service.unwrap(), d.route.unwrap());
    assert!(contract::holds(&snap, s, r, reason));
    // a route without captures cannot give it
    let routes = contract::select(&snap, Some("files"), Some("GET /plain")).unwrap();
    let (s, r) = routes[0];
    assert!(!contract::holds(&snap, s, r, reason));
}
