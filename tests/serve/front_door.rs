//! What a hostile client cannot make a forward do (issue 11, items 2–5): climb out of a
//! rewritten backend path, pass as another client address, or hand the backend headers only
//! the gateway may write.

use crate::common::*;
use std::path::Path;

fn front_door(backend: &Backend) -> TempDir {
    let dir = TempDir::new();
    dir.write(
        "front.policy",
        &fixture("front_door.policy", &[("BACKEND", &backend.url())]),
    );
    dir
}

/// The shipped `policies/` directory with every backend target pointed at `backend`.
fn shipped_policies(backend: &Backend) -> TempDir {
    let dir = TempDir::new();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    copy_tree(&from, dir.path(), &backend.url());
    dir
}

fn copy_tree(from: &Path, to: &Path, url: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target, url);
        } else if entry.path().extension().is_some_and(|e| e == "policy") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let mut out = String::new();
            for (i, part) in text.split("\"http://127.0.0.1:").enumerate() {
                match i {
                    0 => out.push_str(part),
                    _ => {
                        let port_end = part.find('"').unwrap();
                        out.push_str(&format!("\"{url}{}", &part[port_end..]));
                    }
                }
            }
            std::fs::write(&target, out).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn get(gw: &Gateway, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    gw.send(&request("GET", target, host, headers, b""))
}

// ---------------------------------------------------------------------------------------------
// Item 2: a rewritten path keeps its prefix
// ---------------------------------------------------------------------------------------------

#[test]
fn an_encoded_dot_dot_slash_cannot_leave_the_shipped_rewrites_and_reaches_no_backend() {
    let backend = Backend::text("backend");
    let dir = shipped_policies(&backend);
    let gw = Gateway::start(dir.path());

    // partners (Tencent): /docs/{page+} → /static/docs/{page}
    let r = get(
        &gw,
        "partners.localhost",
        "/release/docs/..%2F..%2Finternal%2Fsecret.txt",
        &[],
    );
    assert_tencent(&r, 403, "Get page params fail.");
    // shop (Huawei): /products/{sku} → /v2/products/{sku}
    let r = get(&gw, "localhost", "/products/..%2F..%2Fadmin", &[]);
    assert_huawei(
        &r,
        400,
        "APIG.0201",
        "API request error: path parameter sku must be a single path segment",
    );

    // what is not an escape still goes through, re-encoded as before
    expect_status(
        &get(
            &gw,
            "partners.localhost",
            "/release/docs/a%2Fb/.well/x..y",
            &[],
        ),
        200,
    );
    // the shipped catalog's health probes reach this backend too; they are not requests
    let forwarded = || -> Vec<Recorded> {
        let probe = |r: &Recorded| r.header("user-agent") == Some("rulegate-health-check");
        backend
            .received()
            .into_iter()
            .filter(|r| !probe(r))
            .collect()
    };
    let got = poll(WAIT, "the forwarded request", || {
        Some(forwarded()).filter(|g| !g.is_empty())
    });
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].target, "/static/docs/a%2Fb/.well/x..y");
}

#[test]
fn a_dot_segment_or_separator_in_any_encoding_is_refused_before_the_backend() {
    let backend = Backend::text("backend");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());

    let one_segment = "API request error: path parameter id must be a single path segment";
    for id in [
        "..%2Fadmin",
        "%2e%2e%2fadmin",
        "%252e%252e",
        "%2E%2E%252F",
        "..%5Cadmin",
        "a%5C..",
        "..;jsessionid=1",
        "%2e%2e;x",
        "...",
        "a%00b",
        "a%2Fb",
        "%25252e%25252e",
    ] {
        let r = get(&gw, "edge.test", &format!("/items/{id}"), &[]);
        assert_huawei(&r, 400, "APIG.0201", one_segment);
    }
    let a_path = "API request error: path parameter path must be a path without dot segments";
    for tail in [
        "a/..%2F..%2Fsecret",
        "%252e%252e/x",
        "a/..%5C..%5Cx",
        "x/..;/y",
        "a%2F..",
    ] {
        let r = get(&gw, "edge.test", &format!("/files/{tail}"), &[]);
        assert_huawei(&r, 400, "APIG.0201", a_path);
        // forwarded as sent, the same captures would reach the backend
        let r = get(&gw, "edge.test", &format!("/raw/{tail}"), &[]);
        assert_huawei(
            &r,
            400,
            "APIG.0201",
            a_path.replace(" path must", " rest must").as_str(),
        );
    }
    // a raw or once-encoded dot segment never routes at all
    for target in ["/files/a/../x", "/files/%2e%2e/x", "/items/./x"] {
        let r = get(&gw, "edge.test", target, &[]);
        assert_huawei(&r, 400, "APIG.0602", "Bad request.");
    }
    // the other dialects' parameter rows
    let r = get(&gw, "tencent.test", "/items/%252e%252e", &[]);
    assert_tencent(&r, 403, "Get id params fail.");
    let r = get(&gw, "jd.test", "/items/..%2F..", &[]);
    assert_jdcloud(
        &r,
        400,
        "ARGUMENT_WRONG_FORMAT",
        "Type of parameter id shall be of a single path segment",
    );
    assert_eq!(backend.count(), 0, "{:?}", backend.received());

    // ordinary values still pass
    expect_status(&get(&gw, "edge.test", "/items/a.b%20c", &[]), 200);
    expect_status(&get(&gw, "edge.test", "/files/css/site..css", &[]), 200);
    let got = backend.wait_for(2);
    assert_eq!(got[0].target, "/v1/items/a.b%20c/detail");
    assert_eq!(got[1].target, "/static/files/css/site..css");
}

// ---------------------------------------------------------------------------------------------
// Item 3: the client address behind trusted proxies
// ---------------------------------------------------------------------------------------------

fn ip_denied(r: &Resp) -> String {
    assert_huawei(
        r,
        403,
        "APIG.0402",
        "The IP address is not authorized to access the API.",
    )
}

/// Huawei's row for a client whose address is unknown (a trusted proxy did not name one).
fn ip_unknown(r: &Resp) -> String {
    assert_huawei(r, 403, "APIG.0401", "Unknown client IP address.")
}

#[test]
fn a_right_most_forwarded_entry_with_a_port_is_the_client_not_skipped() {
    let backend = Backend::text("admitted");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());

    // the request: the proxy wrote `ip:port`; the client wrote 10.1.2.3
    let r = get(
        &gw,
        "edge.test",
        "/only-10-1-2-3",
        &[("X-Forwarded-For", "10.1.2.3, 203.0.113.9:5555")],
    );
    let id = ip_denied(&r);
    assert_eq!(gw.access_line(&id)["client"], "203.0.113.9");
    for refused in [
        vec![("X-Forwarded-For", "10.1.2.3, [2001:db8::9]:443")],
        vec![("X-Forwarded-For", "10.1.2.3, [2001:db8::9]")],
        vec![
            ("X-Forwarded-For", "10.1.2.3"),
            ("X-Forwarded-For", "203.0.113.9:80"),
        ],
        vec![(
            "Forwarded",
            "for=10.1.2.3, for=\"[2001:db8::9]:4711\";proto=http",
        )],
    ] {
        ip_denied(&get(&gw, "edge.test", "/only-10-1-2-3", &refused));
    }
    assert_eq!(backend.count(), 0, "{:?}", backend.received());

    // the real client, however its proxy wrote it, behind more trusted proxies
    for admitted in [
        vec![("X-Forwarded-For", "203.0.113.9, 10.1.2.3:61000")],
        vec![("X-Forwarded-For", "10.1.2.3, 127.0.0.7")],
        vec![
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-For", "10.1.2.3"),
        ],
        vec![(
            "Forwarded",
            "for=198.51.100.1;proto=https, For=\"10.1.2.3:80\"",
        )],
    ] {
        expect_status(&get(&gw, "edge.test", "/only-10-1-2-3", &admitted), 200);
    }
    backend.wait_for(4);
}

#[test]
fn an_unparseable_forwarded_entry_is_an_unknown_client_that_every_ip_list_refuses_as_unknown() {
    let backend = Backend::text("admitted");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());

    for headers in [
        vec![("X-Forwarded-For", "10.1.2.3, unknown")],
        vec![("X-Forwarded-For", "10.1.2.3, _hidden, 127.0.0.3")],
        vec![("X-Forwarded-For", "10.1.2.3, 10.1.2.3:")],
        vec![("X-Forwarded-For", "10.1.2.3,")],
        vec![("Forwarded", "for=10.1.2.3, for=unknown")],
        vec![("Forwarded", "for=10.1.2.3, by=127.0.0.1")],
        // both headers: one of them is the client's, and which cannot be told
        vec![
            ("X-Forwarded-For", "10.1.2.3"),
            ("Forwarded", "for=10.1.2.3"),
        ],
    ] {
        for route in ["/only-10-1-2-3", "/not-192-0-2"] {
            let id = ip_unknown(&get(&gw, "edge.test", route, &headers));
            assert_eq!(gw.access_line(&id)["client"], "unknown", "{headers:?}");
        }
    }
    assert_eq!(backend.count(), 0, "{:?}", backend.received());
}

// ---------------------------------------------------------------------------------------------
// Items 4 and 5: the headers the backend receives
// ---------------------------------------------------------------------------------------------

#[test]
fn a_clients_own_authorizer_headers_never_reach_the_backend() {
    let backend = Backend::text("ok");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());

    let r = get(
        &gw,
        "edge.test",
        "/items/7",
        &[
            ("X-Authorizer-User", "admin"),
            ("x-authorizer-role", "root"),
            ("X-AUTHORIZER-TENANT", "other"),
            ("X-Authorizer-", "empty suffix"),
            ("X-Authorizer-User", "twice"),
            ("X-Authorized", "kept: not the prefix"),
        ],
    );
    expect_status(&r, 200);
    let got = backend.wait_for(1);
    let leaked: Vec<_> = got[0]
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-authorizer-"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert_eq!(got[0].header("x-authorized"), Some("kept: not the prefix"));
}

#[test]
fn the_backend_gets_every_forwarded_for_line_in_order_then_the_tcp_peer() {
    let backend = Backend::text("ok");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());

    // a route that computes the client (10.1.2.3) through the trusted proxy 127.0.0.1
    let r = get(
        &gw,
        "edge.test",
        "/only-10-1-2-3",
        &[
            ("X-Forwarded-For", "198.51.100.1, 198.51.100.2"),
            ("X-Forwarded-For", "10.1.2.3"),
            ("X-Forwarded-For", "127.0.0.9"),
        ],
    );
    expect_status(&r, 200);
    // a route that never looks at the client
    expect_status(
        &get(
            &gw,
            "edge.test",
            "/items/1",
            &[
                ("X-Forwarded-For", "unknown"),
                ("X-Forwarded-For", "[2001:db8::1]:80"),
            ],
        ),
        200,
    );
    expect_status(&get(&gw, "edge.test", "/items/2", &[]), 200);
    let got = backend.wait_for(3);
    let chains: Vec<_> = got
        .iter()
        .map(|r| {
            let lines: Vec<_> = r
                .headers
                .iter()
                .filter(|(k, _)| k == "x-forwarded-for")
                .map(|(_, v)| v.as_str())
                .collect();
            lines.join(" | ")
        })
        .collect();
    assert_eq!(
        chains,
        [
            "198.51.100.1, 198.51.100.2, 10.1.2.3, 127.0.0.9, 127.0.0.1",
            "unknown, [2001:db8::1]:80, 127.0.0.1",
            "127.0.0.1",
        ]
    );
}

/// A client's own `Forwarded` cannot be the element a backend believes: rulegate appends its
/// hop (the TCP peer and the protocol) after every element the request carried, so the
/// right-most is always what rulegate saw. A request without one gets none, and neither does
/// one whose `Forwarded` is empty (there is no chain to continue).
#[test]
fn a_clients_own_forwarded_header_is_followed_by_the_hop_rulegate_saw() {
    let backend = Backend::text("ok");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());
    let spoof = [
        ("Forwarded", "for=10.1.2.3;proto=https"),
        ("Forwarded", "for=\"[2001:db8::1]:80\", for=unknown"),
    ];
    expect_status(&get(&gw, "edge.test", "/items/1", &spoof), 200);
    expect_status(&get(&gw, "edge.test", "/items/2", &[]), 200);
    expect_status(
        &get(&gw, "edge.test", "/items/3", &[("Forwarded", " ")]),
        200,
    );
    let got = backend.wait_for(3);
    let forwarded: Vec<Vec<&str>> = got
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .filter(|(k, _)| k == "forwarded")
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        forwarded,
        [
            vec![
                "for=10.1.2.3;proto=https, for=\"[2001:db8::1]:80\", for=unknown, for=127.0.0.1;proto=http"
            ],
            vec![],
            vec![],
        ]
    );
}

/// Unknown clients are one client for per-ip rates: an address a proxy would not name cannot
/// buy a fresh bucket per request.
#[test]
fn unknown_clients_share_one_per_ip_rate_bucket() {
    let backend = Backend::text("admitted");
    let dir = front_door(&backend);
    let gw = Gateway::start(dir.path());

    let first = get(
        &gw,
        "edge.test",
        "/per-ip",
        &[("X-Forwarded-For", "10.0.0.1, unknown")],
    );
    expect_status(&first, 200);
    let second = get(
        &gw,
        "edge.test",
        "/per-ip",
        &[("X-Forwarded-For", "10.0.0.2, _other")],
    );
    crate::limits_support::assert_huawei_row(
        &second,
        429,
        "APIG.0308",
        "The throttling threshold has been reached: policy ip over ratelimit,limit:1,time:1 minute",
        &[("retry-after", "60")],
    );
    let id = second.header("x-request-id").unwrap();
    assert_eq!(gw.access_line(id)["client"], "unknown");
    // a named client has its own bucket
    let known = get(
        &gw,
        "edge.test",
        "/per-ip",
        &[("X-Forwarded-For", "10.0.0.3")],
    );
    expect_status(&known, 200);
    assert_eq!(backend.wait_for(2).len(), 2);
}
