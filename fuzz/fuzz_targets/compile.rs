//! Any policy text through everything `check`, a reload and `explain` run on it: parse, the
//! three compile passes, the diagnostics' rendering, the tree's rendering, and `decide` with
//! its explain trace on a few requests. A careless operator's file gets diagnostics, never a
//! panic; and besides that, each run asserts:
//!
//! * a snapshot comes out exactly when no diagnostic is an error (the gate between validate
//!   and build), so a reload either swaps in a whole policy or keeps the old one;
//! * every diagnostic's span, and each of its related spans, lies inside the file and on
//!   character boundaries (what `check` prints as file:line:col);
//! * every refusal `decide` gives is a row of its dialect's catalogue and of its route's
//!   error contract (`rulegate::contract`), whatever the policy.
//!
//! Secrets: every environment variable holds one value; no secret file exists (so a policy
//! naming one is refused, as it would be on a machine without it).
//!
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run compile corpus/compile seeds -- -dict=policy.dict`

#![no_main]

use libfuzzer_sys::fuzz_target;
use rulegate::decide::{decide, Arrival, RequestHead, VirtualEnv};
use rulegate::policy::ast::Span;
use rulegate::policy::diag::{self, Severity};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

struct FixedSecrets;

impl rulegate::compile::SecretStore for FixedSecrets {
    fn env(&self, _: &str) -> Option<String> {
        Some("fuzz-secret-value".into())
    }
    fn file(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.display().to_string(),
        ))
    }
}

/// Requests every policy is asked: the root, a nested path, one with a query and a header
/// that a check might read, an OPTIONS preflight.
const REQUESTS: [(&str, &str, &[(&str, &str)]); 4] = [
    ("GET", "/", &[]),
    (
        "POST",
        "/a/b/7?tenant=acme&x=1",
        &[("content-type", "application/json")],
    ),
    (
        "GET",
        "/v1/users/1",
        &[
            ("authorization", "Bearer x.y.z"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    ),
    (
        "OPTIONS",
        "/a",
        &[
            ("origin", "https://a.example"),
            ("access-control-request-method", "GET"),
        ],
    ),
];

fn inside(text: &str, span: Span) -> bool {
    let (start, end) = (span.start as usize, span.end as usize);
    span.file == 0
        && start <= end
        && end <= text.len()
        && text.is_char_boundary(start)
        && text.is_char_boundary(end)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = rulegate::policy::parse_texts(vec![(
        "fuzz.policy".into(),
        text.into(),
        PathBuf::from("/nonexistent"),
    )]);
    let compiled = rulegate::compile::compile(&loaded, &FixedSecrets);
    let errors = compiled
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error);
    assert_eq!(
        compiled.snapshot.is_some(),
        !errors,
        "a snapshot must come out exactly when there is no error: {:?}",
        compiled.diagnostics
    );
    for d in &compiled.diagnostics {
        assert!(inside(text, d.span), "{d:?} points outside the file");
        for (span, _) in &d.related {
            assert!(
                inside(text, *span),
                "{d:?} relates a place outside the file"
            );
        }
    }
    let _ = diag::render_human(&loaded.sources, &compiled.diagnostics, false);
    let _ = diag::to_json(&loaded.sources, &compiled.diagnostics);

    let Some(snap) = compiled.snapshot else {
        return;
    };
    let _ = snap.render();
    let env = VirtualEnv::new(1_700_000_000_000);
    for (method, target, headers) in REQUESTS {
        let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
        let uri: http::Uri = target.parse().expect("a target");
        let mut map = http::HeaderMap::new();
        map.insert(
            http::header::HOST,
            http::HeaderValue::from_static("a.example"),
        );
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        let arrival = Arrival {
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            tls: true,
            client_cert: false,
        };
        let mut head = RequestHead::of(&method, &uri, http::Version::HTTP_11, &map, arrival);
        head.body = Some(b"{}");
        let d = decide(&snap, &head, &env);
        let _ = rulegate::explain::explain(&snap, &head, &d);
        if let Err(broken) = rulegate::contract::check(&snap, &d) {
            panic!("{broken}");
        }
    }
});
