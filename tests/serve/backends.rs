//! Target choice and the rows for upstream failures.

use crate::common::*;
use crate::forward::forward_policy;
use std::time::{Duration, Instant};

/// The backends fixture; any target not given points at a closed port.
fn backends_policy(vars: &[(&str, &str)]) -> TempDir {
    let mut all: Vec<(String, String)> = ["A", "B", "DEAD_A", "DEAD_B", "SLOW"]
        .iter()
        .map(|k| (k.to_string(), closed_url()))
        .collect();
    for (k, v) in vars {
        all.iter_mut().find(|(n, _)| n == k).expect("known var").1 = v.to_string();
    }
    let vars: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = TempDir::new();
    dir.write("shop.policy", &fixture("backends.policy", &vars));
    dir
}

#[test]
fn two_targets_share_requests_round_robin() {
    let a = Backend::text("a");
    let b = Backend::text("b");
    let dir = backends_policy(&[("A", &a.url()), ("B", &b.url())]);
    let gw = Gateway::start(dir.path());

    let mut bodies = String::new();
    for _ in 0..6 {
        let r = gw.get("shop.test", "/pair");
        expect_status(&r, 200);
        bodies.push_str(r.body_str());
    }
    assert!(
        bodies == "ababab" || bodies == "bababa",
        "targets taken in turn: {bodies}"
    );
    assert_eq!((a.count(), b.count()), (3, 3));
    assert!(a.received().iter().all(|r| r.target == "/who"));
}

#[test]
fn a_target_that_refuses_connections_is_skipped() {
    let a = Backend::text("a");
    let dir = backends_policy(&[("A", &a.url()), ("B", &closed_url())]);
    let gw = Gateway::start(dir.path());

    for i in 0..6 {
        let r = gw.get("shop.test", "/pair");
        expect_status(&r, 200);
        assert_eq!(r.body_str(), "a", "request {i}");
    }
    assert_eq!(a.count(), 6);
}

#[test]
fn all_targets_down_gives_0202_then_0610_once_marked_down() {
    let dir = backends_policy(&[]);
    let gw = Gateway::start(dir.path());

    // the first request tries both targets (retries 1) and finds both refusing
    assert_huawei(
        &gw.get("shop.test", "/dead"),
        502,
        "APIG.0202",
        "Backend unavailable",
    );
    // both are now marked down: nothing left to try
    for _ in 0..2 {
        assert_huawei(
            &gw.get("shop.test", "/dead"),
            502,
            "APIG.0610",
            "No backend available.",
        );
    }
}

#[test]
fn backend_slower_than_its_timeout_gives_504_0203() {
    let gate = Gate::new();
    let held = gate.clone();
    let slow = Backend::start(move |_, s| {
        held.wait(Duration::from_secs(10));
        respond(s, 200, &[], b"too late")
    });
    let dir = backends_policy(&[("SLOW", &slow.url())]);
    let gw = Gateway::start(dir.path());

    let started = Instant::now();
    let r = gw.get("shop.test", "/slow");
    let took = started.elapsed();
    gate.open();
    assert_huawei(&r, 504, "APIG.0203", "Backend timeout");
    assert_eq!(slow.count(), 1, "the backend did get the request");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "answered after {took:?}; the backend timeout is 300ms"
    );
}

#[test]
fn backend_address_on_the_deny_list_gives_403_0404_and_is_never_contacted() {
    let backend = Backend::text("should not be reached");
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    assert_huawei(
        &gw.get("shop.test", "/guarded"),
        403,
        "APIG.0404",
        "Access to the backend IP address has been denied.",
    );
    assert_eq!(
        backend.connections(),
        0,
        "no connection to a denied address"
    );
    assert_eq!(backend.count(), 0);
}

#[test]
fn request_that_passed_ten_hops_gives_500_0612() {
    let backend = Backend::text("reached");
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    let looped = gw.send(&request(
        "GET",
        "/plain/x",
        "shop.test",
        &[("x-rulegate-hops", "10")],
        b"",
    ));
    assert_huawei(&looped, 500, "APIG.0612", "An API cannot call itself.");
    assert_eq!(backend.connections(), 0);

    // nine hops is still allowed, and the backend sees the tenth
    let r = gw.send(&request(
        "GET",
        "/plain/x",
        "shop.test",
        &[("x-rulegate-hops", "9")],
        b"",
    ));
    expect_status(&r, 200);
    assert_eq!(backend.wait_for(1)[0].header("x-rulegate-hops"), Some("10"));
}

#[test]
fn backend_that_closes_without_answering_gives_502_0202_and_stays_in_rotation() {
    // reads the request, then closes the connection without a response
    let backend = Backend::start(|_, _| false);
    let dir = forward_policy(&backend.url());
    let gw = Gateway::start(dir.path());

    for _ in 0..2 {
        assert_huawei(
            &gw.get("shop.test", "/plain/x"),
            502,
            "APIG.0202",
            "Backend unavailable",
        );
    }
    // a target that accepted the connection is not marked down: both requests reached it
    assert_eq!(backend.count(), 2);
}

#[test]
fn a_backend_timeout_as_long_as_a_duration_can_be_still_forwards() {
    let backend = Backend::text("in time");
    let dir = TempDir::new();
    let policy = r#"
service shop {
    dialect huawei
    hosts "shop.test"
    backend main {
        targets "@MAIN@"
        timeout 18446744073709551615ms
    }
    route GET "/in-time" { forward main }
}
"#;
    dir.write("shop.policy", &policy.replace("@MAIN@", &backend.url()));
    let gw = Gateway::start(dir.path());

    for _ in 0..2 {
        let r = gw.get("shop.test", "/in-time");
        expect_status(&r, 200);
        assert_eq!(r.body_str(), "in time");
    }
    assert_eq!(backend.count(), 2);
}
