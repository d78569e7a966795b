//! `rulegate diff`, proven on generated policy pairs: every request the two policies answer
//! differently falls in a reported change (sound), and every reported change's witness,
//! replayed, shows a difference (no change is reported that no request shows). Plus the
//! issue's realistic edit of the shipped policies, through the CLI.

use proptest::prelude::*;
use rulegate::compile::{compile, ProcessSecrets, Snapshot};
use rulegate::diff::{self, Witness};
use std::net::IpAddr;
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// Generated policies

const PATHS: [&str; 4] = ["/a", "/a/{id}", "/b", "/c/{x}/d"];
const DIALECTS: [&str; 3] = ["huawei", "tencent", "jdcloud"];

#[derive(Debug, Clone, PartialEq)]
struct Route {
    path: usize,
    post: bool,
    rate: Option<u32>,
    /// `require query "n" int MIN..MAX`
    range: Option<(i64, i64)>,
    /// `allow ips 10.0.0.0/PREFIX`
    allow: Option<u8>,
    action: Act,
}

#[derive(Debug, Clone, PartialEq)]
enum Act {
    Mock(u16),
    Forward { backend: bool, rewrite: bool },
}

#[derive(Debug, Clone, PartialEq)]
struct Model {
    dialect: usize,
    routes: Vec<Route>,
}

impl Model {
    fn text(&self) -> String {
        let mut out = format!(
            "service s {{\n    dialect {}\n    hosts \"h.test\"\n    backend one {{\n        targets \"http://127.0.0.1:9\"\n    }}\n    backend two {{\n        targets \"http://127.0.0.1:10\"\n    }}\n",
            DIALECTS[self.dialect]
        );
        let mut seen = Vec::new();
        for r in &self.routes {
            let method = if r.post { "POST" } else { "GET" };
            if seen.contains(&(r.path, r.post)) {
                continue;
            }
            seen.push((r.path, r.post));
            out.push_str(&format!("    route {method} \"{}\" {{\n", PATHS[r.path]));
            if let Some(n) = r.rate {
                out.push_str(&format!("        rate {n} per minute\n"));
            }
            if let Some((lo, hi)) = r.range {
                out.push_str(&format!("        require query \"n\" int {lo}..{hi}\n"));
            }
            if let Some(p) = r.allow {
                out.push_str(&format!("        allow ips 10.0.0.0/{p}\n"));
            }
            match r.action {
                Act::Mock(status) => out.push_str(&format!("        mock {status} text \"m\"\n")),
                Act::Forward { backend, rewrite } => {
                    let name = if backend { "two" } else { "one" };
                    let path = if rewrite { " path \"/x\"" } else { "" };
                    out.push_str(&format!("        forward {name}{path}\n"));
                }
            }
            out.push_str("    }\n");
        }
        out.push_str("}\n");
        out
    }
}

fn route() -> impl Strategy<Value = Route> {
    (
        0..PATHS.len(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![1u32, 2, 5, 100])),
        prop::option::of((0i64..3, 3i64..6)),
        prop::option::of(prop::sample::select(vec![8u8, 16, 24])),
        prop_oneof![
            prop::sample::select(vec![200u16, 201, 404]).prop_map(Act::Mock),
            (any::<bool>(), any::<bool>())
                .prop_map(|(backend, rewrite)| Act::Forward { backend, rewrite }),
        ],
    )
        .prop_map(|(path, post, rate, range, allow, action)| Route {
            path,
            post,
            rate,
            range,
            allow,
            action,
        })
}

fn model() -> impl Strategy<Value = Model> {
    (0..DIALECTS.len(), prop::collection::vec(route(), 1..5))
        .prop_map(|(dialect, routes)| Model { dialect, routes })
}

/// The old model and an edit of it: a few routes changed, removed or added, or the dialect.
fn pair() -> impl Strategy<Value = (Model, Model)> {
    model().prop_flat_map(|old| {
        let n = old.routes.len();
        let edits = prop::collection::vec((0..n.max(1), 0u8..8, route()), 1..4);
        (Just(old.clone()), edits, 0..DIALECTS.len()).prop_map(|(old, edits, dialect)| {
            let mut new = old.clone();
            for (i, what, fresh) in edits {
                let i = i.min(new.routes.len().saturating_sub(1));
                match what {
                    0 if new.routes.len() > 1 => {
                        new.routes.remove(i);
                    }
                    1 => new.routes.push(fresh),
                    2 => new.routes[i].rate = fresh.rate,
                    3 => new.routes[i].range = fresh.range,
                    4 => new.routes[i].allow = fresh.allow,
                    5 => new.routes[i].action = fresh.action,
                    6 => new.routes[i].path = fresh.path,
                    _ => new.dialect = dialect,
                }
            }
            (old, new)
        })
    })
}

fn compiled(m: &Model) -> Snapshot {
    let loaded = rulegate::policy::parse_texts(vec![("s.policy".into(), m.text(), ".".into())]);
    compile(&loaded, &ProcessSecrets)
        .snapshot
        .unwrap_or_else(|| panic!("the generated policy compiles:\n{}", m.text()))
}

/// Requests near every route of either model: its path, the parameter at and around its
/// bounds, clients inside and outside the address lists, both methods, another host.
fn requests() -> Vec<Witness> {
    let peers: [IpAddr; 4] = [
        "203.0.113.10".parse().unwrap(),
        "10.0.0.0".parse().unwrap(),
        "10.0.255.255".parse().unwrap(),
        "10.255.255.255".parse().unwrap(),
    ];
    let paths = ["/a", "/a/7", "/b", "/c/7/d", "/c/7", "/zzz"];
    let queries = ["", "?n=0", "?n=2", "?n=4", "?n=9", "?n=x"];
    let mut out = Vec::new();
    for host in ["h.test", "other.test"] {
        for path in paths {
            for q in queries {
                for peer in peers {
                    for method in ["GET", "POST"] {
                        out.push(Witness {
                            method: method.into(),
                            url: format!("http://{host}{path}{q}"),
                            headers: vec![("Host".into(), host.into())],
                            body: String::new(),
                            client_ip: peer,
                            signed_as: None,
                            unsigned: None,
                        });
                    }
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_request_answered_differently_is_in_a_reported_change((old, new) in pair()) {
        let (a, b) = (compiled(&old), compiled(&new));
        let changes = diff::changes(&a, &b, true);
        for w in requests() {
            let (x, from) = diff::witness_answer(&a, &w);
            let (y, to) = diff::witness_answer(&b, &w);
            if x == y {
                continue;
            }
            let host = w.url.split('/').nth(2).unwrap_or("");
            prop_assert!(
                changes.iter().any(|c| c.covers(host, &from, &to)),
                "{} {} from {} answered\n{}\nthen\n{}\nbut no change covers it; reported:\n{}\nold:\n{}\nnew:\n{}",
                w.method, w.url, w.client_ip, x.summary, y.summary,
                diff::human(&changes), old.text(), new.text()
            );
        }
    }

    #[test]
    fn every_reported_witness_shows_its_change((old, new) in pair()) {
        let (a, b) = (compiled(&old), compiled(&new));
        for c in diff::changes(&a, &b, true) {
            let w = c.witness.clone().expect("a witness");
            let (x, _) = diff::witness_answer(&a, &w);
            let (y, _) = diff::witness_answer(&b, &w);
            prop_assert_ne!(
                &x, &y,
                "no difference for {:?} {} {:?}\nold:\n{}\nnew:\n{}",
                c.kind, c.route, c.what, old.text(), new.text()
            );
            prop_assert_eq!(Some(&x), c.old.as_ref());
            prop_assert_eq!(Some(&y), c.new.as_ref());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shipped policies and a realistic edit

/// A rate lowered, a route removed, a backend renamed: exactly those, each with a witness
/// that shows it where rulegate can authenticate, exit 1; `--fail-on added` passes.
#[test]
fn a_realistic_edit_of_the_shipped_policies_reports_exactly_its_changes() {
    let dir = std::env::temp_dir().join(format!("rulegate-diff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir("policies").unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    copy_dir("policies/keys", &dir.join("keys"));
    copy_dir("policies/secrets", &dir.join("secrets"));
    let edit = |file: &str, from: &str, to: &str| {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    };
    edit(
        "public.policy",
        "rate 10 per second per ip burst 5",
        "rate 5 per second per ip burst 5",
    );
    edit("shop.policy", "backend orders {", "backend order-service {");
    edit("shop.policy", "forward orders ", "forward order-service ");
    edit(
        "shop.policy",
        "    route GET \"/health\" {\n        mock 200 json {\"status\": \"ok\"}\n    }\n",
        "",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(["diff", "policies"])
        .arg(&dir)
        .output()
        .expect("run rulegate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect();
    assert_eq!(
        heads,
        [
            "removed   shop GET /health",
            "changed   shop GET /me",
            "changed   shop GET /orders/{id}",
            "changed   shop GET /orders/{id}/status",
            "changed   shop POST /orders",
            "tightened weather GET /v1/forecast",
            "behaviour: 1 removed, 1 tightened, 4 changed",
        ],
        "{text}"
    );
    assert!(
        text.contains(
            "    - rate 10 per second per ip burst 5\n    + rate 5 per second per ip burst 5\n"
        ),
        "{text}"
    );
    assert!(text.contains("    x-jdcloud-limit-second: 10\n"), "{text}");
    assert!(
        text.contains("    forward to order-service: /v1/orders/1/status\n"),
        "{text}"
    );
    assert!(
        text.contains("as rulegate cannot authenticate as a jwt caller"),
        "{text}"
    );
    let passes = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(["diff", "policies"])
        .arg(&dir)
        .args(["--fail-on", "added,moved", "--format", "json"])
        .output()
        .expect("run rulegate");
    assert_eq!(passes.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&passes.stdout).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(6));
    std::fs::remove_dir_all(&dir).ok();
}

fn copy_dir(from: &str, to: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    std::fs::create_dir_all(to).unwrap();
    for e in entries {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A careless operator: a policy set that does not exist, or does not compile, is exit 2 with
/// the reason — never a report of changes.
#[test]
fn a_missing_or_broken_policy_set_is_exit_2() {
    let missing = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(["diff", "policies", "/nonexistent/rulegate-policies"])
        .output()
        .expect("run rulegate");
    assert_eq!(missing.status.code(), Some(2));
    assert!(missing.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.starts_with("rulegate: "), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/rulegate-policies"),
        "{stderr}"
    );

    let dir = std::env::temp_dir().join(format!("rulegate-diff-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.policy"), "service s {\n    dialect huawei\n").unwrap();
    let broken = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(["diff", "policies"])
        .arg(&dir)
        .output()
        .expect("run rulegate");
    assert_eq!(broken.status.code(), Some(2));
    assert!(broken.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.ends_with("rulegate: the policy does not compile (NEW)\n"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
