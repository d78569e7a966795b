//! `rulegate export openapi`: each shipped service's document validates as OpenAPI 3 with a
//! real validator (`openapi-spec-validator`), imports back with `rulegate import openapi` into
//! the same routes and parameters, and lists every refusal of each route's error contract.
//!
//! The validator is a Python package: CI (`.ci/run`) installs it and sets
//! `RULEGATE_INTEROP=required`; elsewhere a machine without it skips that test with a notice.

#[path = "support/prereq.rs"]
mod prereq;

use rulegate::check::Check;
use rulegate::compile::{compile, ProcessSecrets, Snapshot};
use rulegate::export::openapi;
use rulegate::policy;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const SERVICES: [&str; 3] = ["shop", "partners", "weather"];

fn shipped() -> Snapshot {
    let loaded = policy::load(&[PathBuf::from("policies")]).expect("policies/");
    compile(&loaded, &ProcessSecrets)
        .snapshot
        .expect("compiles")
}

fn document(snap: &Snapshot, name: &str) -> Value {
    let service = rulegate::export::pick_service(snap, Some(name)).expect("the service");
    openapi::document(snap, service)
}

fn validator_installed() -> bool {
    let found = prereq::python_imports("openapi_spec_validator");
    let how = "pip install openapi-spec-validator";
    prereq::present(
        found,
        "RULEGATE_INTEROP",
        "python3's openapi-spec-validator",
        how,
    )
}

#[test]
fn every_shipped_service_validates_as_openapi_3() {
    if !validator_installed() {
        return;
    }
    let snap = shipped();
    let dir = std::env::temp_dir().join(format!("rulegate-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in SERVICES {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, document(&snap, name).to_string()).unwrap();
        let out = Command::new("python3")
            .args(["-c", "import json,sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))"])
            .arg(&file)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// (method, path, its declared parameters as `check` prints them) for every route.
fn routes_of(snap: &Snapshot, service: &str) -> Vec<(String, String, Vec<String>)> {
    let s = snap.services.iter().find(|s| &*s.name == service).unwrap();
    let mut out: Vec<(String, String, Vec<String>)> = s
        .routes
        .iter()
        .flat_map(|r| {
            let params: Vec<String> = r
                .program
                .iter()
                .filter_map(|c| match c {
                    Check::Param(p) => Some(p.to_string()),
                    _ => None,
                })
                .collect();
            let path = r.template.to_string().replace('+', "");
            let methods: Vec<String> = match r.methods.contains(&rulegate::vocab::Method::Any) {
                true => ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH"]
                    .map(String::from)
                    .to_vec(),
                false => r.methods.iter().map(|m| m.name().to_string()).collect(),
            };
            methods
                .into_iter()
                .map(move |m| (m, path.clone(), params.clone()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What `import openapi` makes of the exported document has the same operations and the same
/// declared parameters (with their types and ranges) as the service itself.
#[test]
fn every_shipped_service_imports_back_with_its_routes_and_parameters() {
    let snap = shipped();
    for name in SERVICES {
        let text = document(&snap, name).to_string();
        let imported = rulegate::import::openapi::import(0, "exported.json", &text)
            .unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let loaded = policy::parse_texts(vec![(
            "imported.policy".into(),
            imported.policy.clone(),
            PathBuf::from("."),
        )]);
        let back = compile(&loaded, &ProcessSecrets)
            .snapshot
            .unwrap_or_else(|| panic!("{name}: the import does not compile:\n{}", imported.policy));
        // the importer declares every path variable, typed or not: compare the typed ones
        let typed = |routes: Vec<(String, String, Vec<String>)>| {
            let untyped = |p: &String| p.starts_with("require path") && p.ends_with("string");
            routes
                .into_iter()
                .map(|(m, p, mut params)| {
                    params.retain(|x| !untyped(x));
                    params.sort();
                    (m, p, params)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            typed(routes_of(&back, name)),
            typed(routes_of(&snap, name)),
            "{name}"
        );
    }
}

/// Each operation answers with its contract's refusals, by status, with the dialect's body.
#[test]
fn an_operation_lists_its_refusals_with_the_dialects_bodies() {
    let snap = shipped();
    let doc = document(&snap, "weather");
    let op = &doc["paths"]["/v1/forecast"]["get"];
    let throttled = &op["responses"]["429"];
    assert_eq!(
        throttled["description"],
        "Refused by the gateway: `RATE_LIMIT_EXCEEDED` Your requests are too frequent"
    );
    let example =
        &throttled["content"]["application/json"]["examples"]["0-RATE_LIMIT_EXCEEDED"]["value"];
    assert_eq!(
        example.to_string(),
        r#"{"requestId":"00000000000000000000000000000000","error":{"code":429,"status":"RATE_LIMIT_EXCEEDED","message":"Your requests are too frequent"}}"#
    );
    let lat = &op["parameters"][0];
    assert_eq!(
        lat.to_string(),
        r#"{"name":"lat","in":"query","required":true,"schema":{"type":"number","minimum":-90.0,"maximum":90.0}}"#
    );
    let doc = document(&snap, "shop");
    let schemes = &doc["components"]["securitySchemes"];
    let shop = snap.services.iter().find(|s| &*s.name == "shop").unwrap();
    assert_eq!(
        schemes.as_object().map(|o| o.len()),
        Some(shop.providers.len())
    );
    assert_eq!(
        schemes["signed"].to_string(),
        r#"{"type":"apiKey","in":"header","name":"Authorization","description":"Huawei app authentication (SDK-HMAC-SHA256): the request is signed; see the vendor's signing documentation."}"#
    );
}

#[test]
fn a_policy_of_several_services_needs_service() {
    let out = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(["export", "openapi", "policies"])
        .output()
        .expect("run rulegate");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rulegate: the policy has 3 services; choose one with --service (partners, shop, weather)\n"
    );
}
