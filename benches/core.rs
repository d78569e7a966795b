//! The two costs that matter: turning policy text into a snapshot, and deciding one request.
//!
//! Policies have one service with stages from a header and N routes in groups of four per
//! resource: a list (`GET /api/rK` with query params), a read (`GET /api/rK/{id}`), a deep
//! read with path, header and query params (`GET /api/rK/{id}/items/{item}`), and a file tree
//! (`GET PUT /api/rK/{id}/files/{path+}`) — every so often a mock instead of a forward, and a
//! route published in one stage only. `decide` is measured for a hit (the deep route of the
//! middle resource, passing every check to a forward) and a miss (a path that walks deep into
//! the tree before dead-ending), on a snapshot built once.
//!
//! Acceptance: decide at 10,000 routes costs at most 2× what it costs at 10 routes, and parse +
//! compile of 10,000 routes stays under 1 s.

use divan::{black_box, Bencher};
use http::HeaderMap;
use rulegate::compile::{compile, ProcessSecrets, Snapshot};
use rulegate::decide::{decide, Outcome, RequestHead, VirtualEnv};
use rulegate::policy::parse_texts;
use std::path::PathBuf;

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// A policy with `routes` routes (one service, stages from a header).
fn policy(routes: usize) -> String {
    let mut out = String::from(
        r#"service shop {
    dialect huawei
    hosts "api.example.com" "*.shop.example.com"
    protocols http https
    stages RELEASE TEST from header "X-Stage" default RELEASE
    limits { body 1MiB }
    allow ips 10.0.0.0/8 192.168.0.0/16
    deny ips 10.66.0.0/16

    backend catalog { targets "http://127.0.0.1:9101"; timeout 10s }
    backend files { targets "http://127.0.0.1:9102" }
"#,
    );
    for i in 0..routes {
        let res = i / 4;
        let text = match i % 4 {
            0 => format!(
                r#"
    route GET "/api/r{res}" {{
        optional query "page" int 1..1000
        optional query "sort" enum "price" "name" "newest"
        forward catalog path "/v2/r{res}"
    }}
"#
            ),
            1 if res % 5 == 4 => format!(
                r#"
    route GET "/api/r{res}/{{id}}" {{
        stages TEST
        require path "id" int 1..
        mock 200 json {{"id": 1, "name": "test fixture"}}
    }}
"#
            ),
            1 => format!(
                r#"
    route GET "/api/r{res}/{{id}}" {{
        require path "id" int 1..
        forward catalog path "/v2/r{res}/{{id}}"
    }}
"#
            ),
            2 => format!(
                r#"
    route GET HEAD "/api/r{res}/{{id}}/items/{{item}}" {{
        require path "id" int 1..
        require path "item" string 1..64
        require header "X-Tenant" string 1..32
        optional query "fields" enum "all" "summary"
        optional query "limit" int 1..100
        forward catalog path "/v2/r{res}/{{id}}/items/{{item}}"
    }}
"#
            ),
            _ => format!(
                r#"
    route GET PUT "/api/r{res}/{{id}}/files/{{path+}}" {{
        require path "id" int 1..
        limits {{ body 64KiB }}
        forward files path "/store/r{res}/{{id}}/{{path+}}"
    }}
"#
            ),
        };
        out.push_str(&text);
    }
    out.push_str("}\n");
    out
}

fn load(text: &str) -> Snapshot {
    let loaded = parse_texts(vec![(
        "bench.policy".to_string(),
        text.to_string(),
        PathBuf::new(),
    )]);
    let compiled = compile(&loaded, &ProcessSecrets);
    compiled.snapshot.unwrap_or_else(|| {
        panic!(
            "the bench policy does not compile: {:?}",
            compiled
                .diagnostics
                .iter()
                .map(|d| &d.message)
                .collect::<Vec<_>>()
        )
    })
}

#[divan::bench(args = SIZES, sample_count = 20)]
fn parse_compile(bencher: Bencher, routes: usize) {
    let text = policy(routes);
    bencher.bench(|| load(black_box(&text)));
}

/// The middle resource's deep route: three path segments after the resource.
fn hit_target(routes: usize) -> String {
    let res = (routes / 4) / 2;
    format!("/api/r{res}/12345/items/sku-42?fields=summary&limit=20")
}

/// Walks `/api/rK/{id}` and then finds nothing.
fn miss_target(routes: usize) -> String {
    let res = (routes / 4) / 2;
    format!("/api/r{res}/12345/reviews/7")
}

fn bench_decide(bencher: Bencher, routes: usize, target: String, expect_forward: bool) {
    let snap = load(&policy(routes));
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", "acme".parse().unwrap());
    headers.insert("user-agent", "bench/1.0".parse().unwrap());
    headers.insert("accept", "application/json".parse().unwrap());
    let env = VirtualEnv::new(1_700_000_000_000);
    let head = RequestHead {
        version: http::Version::HTTP_11,
        method: "GET",
        target: &target,
        host: Some("api.example.com"),
        host_from: Default::default(),
        headers: &headers,
        peer: "10.1.2.3".parse().unwrap(),
        tls: true,
        client_cert: false,
        body: None,
    };
    let d = decide(&snap, &head, &env);
    assert_eq!(
        matches!(d.outcome, Outcome::Forward(_)),
        expect_forward,
        "{target}: {:?}",
        d.outcome
    );
    bencher.bench_local(|| decide(black_box(&snap), black_box(&head), &env));
}

#[divan::bench(args = SIZES)]
fn decide_hit(bencher: Bencher, routes: usize) {
    bench_decide(bencher, routes, hit_target(routes), true);
}

#[divan::bench(args = SIZES)]
fn decide_miss(bencher: Bencher, routes: usize) {
    bench_decide(bencher, routes, miss_target(routes), false);
}
