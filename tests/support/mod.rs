//! What the authentication tests share: the vendors' vectors (checked against `../shared`),
//! a secret store that knows only what a test gives it, and compiling a policy from text.

#![allow(dead_code)] // each test crate uses a part

use rulegate::compile::{compile, SecretStore, Snapshot};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `tests/vectors/NAME`, which must equal `../shared/spec/vectors/NAME` where that exists.
pub fn vector_file(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vendored = std::fs::read_to_string(dir.join("tests/vectors").join(name)).unwrap();
    if let Ok(shared) = std::fs::read_to_string(dir.join("../shared/spec/vectors").join(name)) {
        assert_eq!(
            vendored, shared,
            "tests/vectors/{name} differs from ../shared"
        );
    }
    vendored
}

/// Environment secrets given by the test; files read from disk.
pub struct Secrets(pub HashMap<String, String>);

impl SecretStore for Secrets {
    fn env(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Compile one policy text; panics with the rendered diagnostics if it does not compile.
pub fn compile_text(policy: String, secrets: HashMap<String, String>) -> Snapshot {
    let loaded = rulegate::policy::parse_texts(vec![("t.policy".into(), policy, PathBuf::new())]);
    let compiled = compile(&loaded, &Secrets(secrets));
    let rendered =
        rulegate::policy::diag::render_human(&loaded.sources, &compiled.diagnostics, false);
    compiled.snapshot.unwrap_or_else(|| panic!("{rendered}"))
}

/// `app aN { key "K" secret env "SN" }` for each (key, secret), and the secrets to go with them.
pub fn apps(keys: &[(&str, &str)]) -> (String, HashMap<String, String>) {
    let mut text = String::new();
    let mut secrets = HashMap::new();
    for (i, (key, secret)) in keys.iter().enumerate() {
        text.push_str(&format!(
            "    app a{i} {{\n        key {key:?}\n        secret env \"S{i}\"\n    }}\n"
        ));
        secrets.insert(format!("S{i}"), secret.to_string());
    }
    (text, secrets)
}

/// What rulegate answers itself to a request for `api.example.com` from 127.0.0.1 at
/// `now_ms` (panics on a forward): the signature suites' one way of sending.
pub fn answered(
    snap: &Snapshot,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    now_ms: i64,
) -> rulegate::decide::Response {
    let d = decided(snap, method, target, headers, body, now_ms);
    rulegate::decide::render_response(&d).expect("answered directly")
}

/// The decision on a request for `api.example.com` from 127.0.0.1 at `now_ms`.
pub fn decided(
    snap: &Snapshot,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    now_ms: i64,
) -> rulegate::decide::Decision {
    use http::{HeaderMap, HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let head = rulegate::decide::RequestHead {
        version: http::Version::HTTP_11,
        method,
        target,
        host: Some("api.example.com"),
        host_from: Default::default(),
        headers: &map,
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        tls: false,
        client_cert: false,
        body,
    };
    rulegate::decide::decide(snap, &head, &rulegate::decide::VirtualEnv::new(now_ms))
}
