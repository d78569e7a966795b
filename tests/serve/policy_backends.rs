//! Policy backends (issue 13, item 3): which backend a request reaches, by its conditions.

use crate::common::*;

struct Two {
    main: Backend,
    v2: Backend,
    gw: Gateway,
    _dir: TempDir,
}

fn start() -> Two {
    let main = Backend::text("main");
    let v2 = Backend::text("v2");
    let dir = TempDir::new();
    let policy = fixture(
        "policy_backends.policy",
        &[("MAIN", &main.url()), ("V2", &v2.url())],
    );
    dir.write("orders.policy", &policy);
    let gw = Gateway::start(dir.path());
    Two {
        main,
        v2,
        gw,
        _dir: dir,
    }
}

fn get(t: &Two, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    t.gw.send(&request("GET", target, host, headers, b""))
}

#[test]
fn a_canary_header_reaches_the_second_backend_and_other_requests_the_default() {
    let t = start();
    let r = get(&t, "orders.test", "/orders/7?x=1", &[("X-Canary", "1")]);
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "v2");
    let got = t.v2.wait_for(1);
    assert_eq!(got[0].target, "/v2/orders/7?x=1");
    assert_eq!(t.main.count(), 0);

    for canary in [&[("X-Canary", "2")][..], &[]] {
        let r = get(&t, "orders.test", "/orders/7", canary);
        assert_eq!(r.body_str(), "main");
    }
    let got = t.main.wait_for(2);
    assert!(got.iter().all(|g| g.target == "/orders/7"), "{got:?}");
    assert_eq!(t.v2.count(), 1);
}

#[test]
fn a_source_condition_reads_a_trusted_proxys_forwarded_for_and_not_a_forged_one() {
    let t = start();
    let via_proxy = [("X-Forwarded-For", "203.0.113.9")];
    let r = get(&t, "orders.test", "/orders/7", &via_proxy);
    assert_eq!(
        r.body_str(),
        "v2",
        "the trusted proxy names the office client"
    );
    let r = get(
        &t,
        "orders.test",
        "/orders/7",
        &[("X-Forwarded-For", "198.51.100.1")],
    );
    assert_eq!(r.body_str(), "main");
    // no proxy is trusted here: the header is the client's own claim, not its address
    let r = get(&t, "direct.test", "/orders/7", &via_proxy);
    assert_eq!(
        r.body_str(),
        "main",
        "a forged X-Forwarded-For must not match"
    );
    assert_eq!(t.v2.count(), 1);
}

#[test]
fn a_mock_policy_answers_without_a_backend() {
    let t = start();
    let r = get(&t, "orders.test", "/orders/7?mode=maintenance", &[]);
    expect_status(&r, 503);
    assert_eq!(r.body_str(), "maintenance");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(t.main.count() + t.v2.count(), 0);
}

#[test]
fn overlapping_policies_the_first_that_holds_wins() {
    let t = start();
    let r = get(&t, "orders.test", "/overlap", &[("X-A", "1"), ("X-B", "1")]);
    assert_eq!(r.body_str(), "v2");
    assert_eq!(t.v2.wait_for(1)[0].target, "/both");
    let r = get(&t, "orders.test", "/overlap", &[("X-B", "1")]);
    assert_eq!(r.body_str(), "either");
    let r = get(&t, "orders.test", "/overlap", &[]);
    assert_eq!(r.body_str(), "main");
    assert_eq!(t.v2.count(), 1);
    assert_eq!(t.main.count(), 1);
}
