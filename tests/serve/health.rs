//! Target health over real backends (issue 14): active probes (`GET /healthz` with
//! `User-Agent: rulegate-health-check`) take a hung target out before any client request
//! waits on it, and bring it back once it answers; an answer outside the status range is a
//! failed probe; with every target out, the dialect's no-backend row answers (JD Cloud here).
//! Passive checks eject a target after `unhealthy N` failed answers in a row.

use crate::balancing::{available, metric, reload, target_view, wait_available};
use crate::common::*;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The backend's mode: every request (probes too) waits for the gate, which the test opens
/// at its end.
const HANG: u16 = 0;

/// A target whose `/healthz` answer the test switches: `mode` is the status `/healthz`
/// answers with, or [`HANG`]. Any other path is answered 200 `text/plain` with the name.
struct Target {
    backend: Backend,
    mode: Arc<AtomicU16>,
    gate: Gate,
}

impl Target {
    fn start(name: &'static str, mode: u16) -> Target {
        let mode = Arc::new(AtomicU16::new(mode));
        let gate = Gate::new();
        let (m, g) = (mode.clone(), gate.clone());
        let backend = Backend::start(move |req, s| {
            let mode = m.load(Ordering::SeqCst);
            if mode == HANG {
                g.wait(Duration::from_secs(30));
                return false;
            }
            match req.target.as_str() {
                "/healthz" => respond(s, mode, &[("Content-Type", "text/plain")], b"health"),
                _ => respond(s, 200, &[("Content-Type", "text/plain")], name.as_bytes()),
            }
        });
        Target {
            backend,
            mode,
            gate,
        }
    }

    fn url(&self) -> String {
        self.backend.url()
    }

    /// The requests that were not health probes.
    fn traffic(&self) -> usize {
        self.backend
            .received()
            .iter()
            .filter(|r| r.target != "/healthz")
            .count()
    }

    /// Every request received was a health probe, and there was at least one.
    fn assert_only_probed(&self, who: &str) {
        let got = self.backend.received();
        assert!(!got.is_empty(), "{who} was probed");
        for r in &got {
            assert_eq!(
                (r.method.as_str(), r.target.as_str(), r.header("user-agent")),
                ("GET", "/healthz", Some("rulegate-health-check")),
                "{who} received {r:?}"
            );
        }
    }

    /// Every request received was a probe or a client's GET /checked.
    fn assert_only_probed_or_checked(&self) {
        for r in self.backend.received() {
            match r.target.as_str() {
                "/healthz" => assert_eq!(r.header("user-agent"), Some("rulegate-health-check")),
                "/checked" => assert_ne!(r.header("user-agent"), Some("rulegate-health-check")),
                other => panic!("unexpected request for {other}"),
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // let hung handlers go
        self.gate.open();
    }
}

fn health_policy(dialect: &str, unhealthy: &str, a: &Target, b: &Target) -> TempDir {
    let dir = TempDir::new();
    let vars = [
        ("DIALECT", dialect),
        ("UNHEALTHY", unhealthy),
        ("A", &a.url()),
        ("B", &b.url()),
    ];
    dir.write("shop.policy", &fixture("health.policy", &vars));
    dir
}

/// A hung `a` and a healthy `b`, and the gateway once the probes have taken `a` out.
fn hung_a() -> (Target, Target, Gateway, TempDir) {
    let a = Target::start("a", HANG);
    let b = Target::start("b", 200);
    let dir = health_policy("huawei", "1", &a, &b);
    let gw = Gateway::start(dir.path());
    wait_available(&gw, "shop/checked", &a.url(), false);
    (a, b, gw, dir)
}

/// GET /checked, answered within a second.
fn quick_get(gw: &Gateway) -> Resp {
    let started = Instant::now();
    let r = gw.get("shop.test", "/checked");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    r
}

#[test]
fn an_active_check_takes_a_hung_target_out_before_any_client_request_waits_on_it() {
    let (a, b, gw, _dir) = hung_a();

    let v = target_view(&gw, "shop/checked", &a.url()).unwrap();
    assert_eq!(v["healthy"], false, "{v}");
    assert_eq!(
        v["ejected_until_ms"],
        serde_json::Value::Null,
        "not a passive ejection: {v}"
    );
    assert_eq!(available(&gw, "shop/checked", &b.url()), Some(true));
    let series = format!(
        "rulegate_target_available{{backend=\"shop/checked\",target=\"{}\"}}",
        a.url()
    );
    assert_eq!(metric(&gw.metrics(), &series), Some(0));

    for i in 0..10 {
        let r = quick_get(&gw);
        expect_status(&r, 200);
        assert_eq!(r.body_str(), "b", "request {i}");
    }
    assert_eq!(b.traffic(), 10);
    a.assert_only_probed("the hung target");
    b.assert_only_probed_or_checked();
}

#[test]
fn a_target_that_answers_its_checks_again_comes_back_and_takes_requests() {
    let (a, b, gw, _dir) = hung_a();
    assert_eq!(quick_get(&gw).body_str(), "b");

    // `a` answers again: one good probe (`healthy 1`) brings it back
    a.mode.store(200, Ordering::SeqCst);
    a.gate.open();
    wait_available(&gw, "shop/checked", &a.url(), true);
    let v = target_view(&gw, "shop/checked", &a.url()).unwrap();
    assert_eq!(v["healthy"], true, "{v}");

    let mut seen = String::new();
    for _ in 0..10 {
        let r = quick_get(&gw);
        expect_status(&r, 200);
        seen.push_str(r.body_str());
    }
    eprintln!("after the recovery: {seen}");
    // the round robin over two targets alternates (unless a slow probe took one out again)
    assert!(a.traffic() > 0, "`a` takes requests again: {seen}");
    assert_eq!(a.traffic() + b.traffic(), 11);
    assert_eq!(seen.matches('a').count(), a.traffic());
}

#[test]
fn with_every_target_unhealthy_jd_answers_its_no_backend_row() {
    let a = Target::start("a", 503);
    let b = Target::start("b", 503);
    let dir = health_policy("jdcloud", "1", &a, &b);
    let gw = Gateway::start(dir.path());
    for t in [&a, &b] {
        wait_available(&gw, "shop/checked", &t.url(), false);
    }

    for _ in 0..3 {
        let r = quick_get(&gw);
        assert_jdcloud(&r, 503, "UNAVAILABLE", "Service Unavailable");
    }
    a.assert_only_probed("a");
    b.assert_only_probed("b");
}

#[test]
fn a_check_answered_outside_the_status_range_takes_the_target_out() {
    // 500 is outside `status 200..299`; 299, its last status, is inside
    let a = Target::start("a", 500);
    let b = Target::start("b", 299);
    let dir = health_policy("huawei", "2", &a, &b);
    let gw = Gateway::start(dir.path());
    wait_available(&gw, "shop/checked", &a.url(), false);

    // `b` stays in through several rounds of probes
    let probes_before = b.backend.count();
    poll(WAIT, "three more probes of b", || {
        (b.backend.count() >= probes_before + 3).then_some(())
    });
    let v = target_view(&gw, "shop/checked", &b.url()).unwrap();
    assert_eq!(
        (&v["healthy"], &v["available"]),
        (&true.into(), &true.into()),
        "{v}"
    );
    for i in 0..6 {
        let r = quick_get(&gw);
        expect_status(&r, 200);
        assert_eq!(r.body_str(), "b", "request {i}");
    }
    a.assert_only_probed("the target answering 500");
}

#[test]
fn passive_checks_eject_a_target_after_three_failed_answers_in_a_row() {
    let a = Backend::start(|_, s| respond(s, 503, &[("Content-Type", "text/plain")], b"a down"));
    let b = Backend::text("b");
    let dir = TempDir::new();
    let vars = [("A", a.url()), ("B", b.url())];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    dir.write("shop.policy", &fixture("health_passive.policy", &vars));
    let gw = Gateway::start(dir.path());

    // the round robin alternates, from `a` (listed first); `a`'s 503s reach the client until
    // its third in a row ejects it
    let seen: Vec<String> = (0..10)
        .map(|_| {
            let r = gw.get("shop.test", "/watched");
            format!("{} {}", r.status, r.body_str())
        })
        .collect();
    let (down, up) = ("503 a down", "200 b");
    assert_eq!(seen, [down, up, down, up, down, up, up, up, up, up]);
    assert_eq!((a.count(), b.count()), (3, 7));
    let v = target_view(&gw, "shop/watched", &a.url()).unwrap();
    assert_eq!(
        (&v["available"], &v["healthy"]),
        (&false.into(), &true.into()),
        "{v}"
    );
    let until = v["ejected_until_ms"].as_i64().expect("ejected until");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (8_000..=10_000).contains(&(until - now)),
        "ejected for 10s: {}ms left",
        until - now
    );
}

#[test]
fn a_reload_that_removes_the_health_check_puts_a_target_it_took_out_back_in() {
    let (a, b, gw, dir) = hung_a();

    // the health check goes while `a` is still out (and still hung): nothing probes it any
    // more, so nothing active can keep it out
    let vars = [
        ("DIALECT", "huawei"),
        ("UNHEALTHY", "1"),
        ("A", &a.url()),
        ("B", &b.url()),
    ];
    let text: String = fixture("health.policy", &vars)
        .lines()
        .filter(|l| !l.trim_start().starts_with("health http"))
        .map(|l| format!("{l}\n"))
        .collect();
    reload(&gw, &dir, "shop.policy", &text);
    let probes = a.backend.count();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(a.backend.count(), probes, "no probes after the reload");
    // (polled for 10 s: this fails on the verdict, not on timing)
    wait_available(&gw, "shop/checked", &a.url(), true);
    let v = target_view(&gw, "shop/checked", &a.url()).unwrap();
    assert_eq!(
        v["healthy"], true,
        "no active verdict without an active check: {v}"
    );

    // `a` answers client requests again
    a.mode.store(200, Ordering::SeqCst);
    a.gate.open();
    let seen: String = (0..4)
        .map(|_| quick_get(&gw).body_str().to_string())
        .collect();
    assert!(a.traffic() > 0, "`a` takes requests again: {seen}");
}
