//! The circuit breaker over real backends (issue 14): a backend that starts failing trips it
//! within its window (`count 3 in 10s`: the third failure), then the downgrade answers while
//! the backend gets nothing; after `open` one probe goes through, and the breaker closes when
//! it succeeds or opens again when it fails. Each downgrade: a mock (byte for byte), the
//! dialect's no-backend row (Tencent), another backend. `/metrics` and `/config` show the
//! phase and the transitions, and a reload that leaves the breaker alone keeps it open.

use crate::balancing::{backend_view, metric, reload};
use crate::common::*;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The backend's mode: hold each request until the gate opens, then answer 200.
const HOLD: u16 = 0;

/// A backend whose answer the test switches: `mode` is the status it answers with (body
/// `NAME STATUS`, `text/plain`), or [`HOLD`].
struct Switched {
    backend: Backend,
    mode: Arc<AtomicU16>,
    gate: Gate,
}

impl Switched {
    fn start(name: &'static str, status: u16) -> Switched {
        let mode = Arc::new(AtomicU16::new(status));
        let gate = Gate::new();
        let (m, g) = (mode.clone(), gate.clone());
        let backend = Backend::start(move |_, s| {
            let status = match m.load(Ordering::SeqCst) {
                HOLD => {
                    g.wait(WAIT);
                    200
                }
                status => status,
            };
            let body = format!("{name} {status}");
            respond(
                s,
                status,
                &[("Content-Type", "text/plain")],
                body.as_bytes(),
            )
        });
        Switched {
            backend,
            mode,
            gate,
        }
    }

    fn set(&self, mode: u16) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// The Huawei breaker fixture; a backend not given refuses connections.
fn breaker_text(vars: &[(&str, &str)]) -> String {
    let mut all: Vec<(String, String)> = ["FLAKY", "PRIMARY", "SPARE", "RATIO"]
        .iter()
        .map(|k| (k.to_string(), closed_url()))
        .chain([("OPEN", "1s"), ("NOTE", "one")].map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    for (k, v) in vars {
        all.iter_mut().find(|(n, _)| n == k).expect("known var").1 = v.to_string();
    }
    let vars: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fixture("breaker.policy", &vars)
}

fn breaker_policy(vars: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new();
    dir.write("shop.policy", &breaker_text(vars));
    dir
}

/// The downgrade of backend flaky: `mock 503 json {"message": "resting"}`.
fn assert_resting(r: &Resp) {
    assert_mock(
        r,
        503,
        "X-Request-Id",
        "application/json",
        &[],
        "{\"message\":\"resting\"}",
    );
}

/// The backend's own answer, passed through.
fn assert_backend(r: &Resp, name: &str, status: u16) {
    expect_status(r, status);
    assert_eq!(r.body_str(), format!("{name} {status}"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

/// The breaker of backend `key` on `/config`: `state`, and `until_ms` when open.
fn breaker(gw: &Gateway, key: &str) -> serde_json::Value {
    backend_view(gw, key).expect("the backend on /config")["breaker"].clone()
}

/// The phase `/metrics` gives 1 for backend `key`, the other two being 0.
fn metrics_phase(gw: &Gateway, key: &str) -> String {
    let text = gw.metrics();
    let ones: Vec<&str> = ["closed", "open", "half-open"]
        .into_iter()
        .filter(|state| {
            let series = format!("rulegate_breaker_state{{backend=\"{key}\",state=\"{state}\"}}");
            match metric(&text, &series) {
                Some(v) => v == 1,
                None => panic!("no {series} on /metrics:\n{text}"),
            }
        })
        .collect();
    assert_eq!(ones.len(), 1, "one phase at a time:\n{text}");
    ones[0].to_string()
}

fn transitions(gw: &Gateway, key: &str, to: &str) -> u64 {
    let series = format!("rulegate_breaker_transitions_total{{backend=\"{key}\",to=\"{to}\"}}");
    metric(&gw.metrics(), &series).unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Sleep until the open breaker of `key` lets probes through (its `until_ms` plus a margin).
fn sleep_until_half_open(gw: &Gateway, key: &str) {
    let b = breaker(gw, key);
    assert_eq!(b["state"], "open", "{b}");
    let until = b["until_ms"].as_i64().expect("until_ms");
    let left = until - now_ms();
    assert!(left <= 1_000, "open for 1s, {left}ms left");
    std::thread::sleep(Duration::from_millis((left.max(0) + 50) as u64));
}

/// Trip flaky's breaker: three failed requests (its `count 3`), each answered by the backend.
fn trip_flaky(gw: &Gateway, flaky: &Switched) {
    let before = flaky.backend.count();
    flaky.set(503);
    for (i, after) in ["closed", "closed", "open"].into_iter().enumerate() {
        assert_backend(&gw.get("shop.test", "/flaky"), "flaky", 503);
        assert_eq!(
            breaker(gw, "shop/flaky")["state"],
            after,
            "after failure {}",
            i + 1
        );
    }
    assert_eq!(flaky.backend.count(), before + 3);
}

#[test]
fn a_failing_backend_trips_the_breaker_then_one_probe_closes_it_when_it_recovered() {
    let flaky = Switched::start("flaky", 200);
    let dir = breaker_policy(&[("FLAKY", &flaky.backend.url())]);
    let gw = Gateway::start(dir.path());

    // healthy: traffic flows
    for _ in 0..3 {
        assert_backend(&gw.get("shop.test", "/flaky"), "flaky", 200);
    }
    assert_eq!(
        breaker(&gw, "shop/flaky"),
        serde_json::json!({"state": "closed"})
    );
    assert_eq!(metrics_phase(&gw, "shop/flaky"), "closed");

    // the backend fails: its first three 503s reach the client, the third trips the breaker
    trip_flaky(&gw, &flaky);
    assert_eq!(metrics_phase(&gw, "shop/flaky"), "open");
    assert_eq!(transitions(&gw, "shop/flaky", "open"), 1);

    // open: the downgrade answers and the backend gets nothing
    let mut conn = gw.conn();
    let get = request("GET", "/flaky", "shop.test", &[], b"");
    for _ in 0..5 {
        assert_resting(&conn.round_trip(&get).unwrap());
    }
    assert_eq!(flaky.backend.count(), 6);

    // the backend recovered; after `open 1s` one probe goes through (held here by the
    // backend) and, while it is out, everything else still gets the downgrade
    flaky.set(HOLD);
    sleep_until_half_open(&gw, "shop/flaky");
    let mut probe = gw.conn();
    probe.send(&get).unwrap();
    flaky.backend.wait_for(7);
    for _ in 0..3 {
        assert_resting(&conn.round_trip(&get).unwrap());
    }
    assert_eq!(flaky.backend.count(), 7, "one probe only");
    let b = breaker(&gw, "shop/flaky");
    assert_eq!(b["state"], "half-open", "{b}");
    assert_eq!(
        (b["probes_sent"].as_u64(), b["probes_passed"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(metrics_phase(&gw, "shop/flaky"), "half-open");

    // the probe succeeds: closed, and traffic flows again
    flaky.set(200);
    flaky.gate.open();
    assert_backend(&probe.read_response().unwrap(), "flaky", 200);
    assert_eq!(
        breaker(&gw, "shop/flaky"),
        serde_json::json!({"state": "closed"})
    );
    for _ in 0..5 {
        assert_backend(&conn.round_trip(&get).unwrap(), "flaky", 200);
    }
    assert_eq!(flaky.backend.count(), 12);
    assert_eq!(metrics_phase(&gw, "shop/flaky"), "closed");
    assert_eq!(transitions(&gw, "shop/flaky", "open"), 1);
    assert_eq!(transitions(&gw, "shop/flaky", "closed"), 1);
}

#[test]
fn the_transitions_counter_counts_the_breaker_entering_half_open() {
    let flaky = Switched::start("flaky", 503);
    let dir = breaker_policy(&[("FLAKY", &flaky.backend.url())]);
    let gw = Gateway::start(dir.path());

    trip_flaky(&gw, &flaky);
    flaky.set(200);
    sleep_until_half_open(&gw, "shop/flaky");
    assert_backend(&gw.get("shop.test", "/flaky"), "flaky", 200);
    assert_eq!(breaker(&gw, "shop/flaky")["state"], "closed");
    // closed → open → half-open → closed: one transition into each phase
    assert_eq!(transitions(&gw, "shop/flaky", "open"), 1);
    assert_eq!(transitions(&gw, "shop/flaky", "closed"), 1);
    assert_eq!(transitions(&gw, "shop/flaky", "half-open"), 1);
}

#[test]
fn a_failed_probe_opens_the_breaker_again() {
    let flaky = Switched::start("flaky", 503);
    let dir = breaker_policy(&[("FLAKY", &flaky.backend.url())]);
    let gw = Gateway::start(dir.path());

    trip_flaky(&gw, &flaky);
    let first_until = breaker(&gw, "shop/flaky")["until_ms"].as_i64().unwrap();
    assert_resting(&gw.get("shop.test", "/flaky"));

    // still failing after `open`: the probe reaches the backend, its 503 goes to the client,
    // and the breaker opens again for another second
    sleep_until_half_open(&gw, "shop/flaky");
    assert_backend(&gw.get("shop.test", "/flaky"), "flaky", 503);
    assert_eq!(flaky.backend.count(), 4);
    let b = breaker(&gw, "shop/flaky");
    assert_eq!(b["state"], "open", "{b}");
    assert!(b["until_ms"].as_i64().unwrap() > first_until, "{b}");
    for _ in 0..3 {
        assert_resting(&gw.get("shop.test", "/flaky"));
    }
    assert_eq!(
        flaky.backend.count(),
        4,
        "nothing reaches the backend after the failed probe"
    );
    assert_eq!(metrics_phase(&gw, "shop/flaky"), "open");
    assert_eq!(transitions(&gw, "shop/flaky", "open"), 2);
    assert_eq!(transitions(&gw, "shop/flaky", "closed"), 0);
}

#[test]
fn downgrade_unavailable_answers_the_tencent_no_backend_row() {
    let gone = Switched::start("gone", 500);
    let dir = TempDir::new();
    let policy = fixture(
        "breaker_unavailable.policy",
        &[("GONE", &gone.backend.url())],
    );
    dir.write("partners.policy", &policy);
    let gw = Gateway::start(dir.path());

    // the default trip conditions count a 500; `count 2` trips at the second
    for _ in 0..2 {
        assert_backend(&gw.get("partners.test", "/gone"), "gone", 500);
    }
    for _ in 0..3 {
        let r = gw.get("partners.test", "/gone");
        assert_tencent(&r, 503, "Apigw balancer error");
    }
    assert_eq!(gone.backend.count(), 2);
    assert_eq!(breaker(&gw, "partners/gone")["state"], "open");
    assert_eq!(metrics_phase(&gw, "partners/gone"), "open");
}

#[test]
fn downgrade_backend_sends_requests_to_the_other_backend_while_open() {
    let primary = Switched::start("primary", 503);
    let spare = Switched::start("spare", 200);
    let dir = breaker_policy(&[
        ("PRIMARY", &primary.backend.url()),
        ("SPARE", &spare.backend.url()),
    ]);
    let gw = Gateway::start(dir.path());

    for _ in 0..2 {
        assert_backend(&gw.get("shop.test", "/primary"), "primary", 503);
    }
    assert_eq!(breaker(&gw, "shop/primary")["state"], "open");
    for _ in 0..4 {
        assert_backend(&gw.get("shop.test", "/primary?n=1"), "spare", 200);
    }
    assert_eq!(primary.backend.count(), 2);
    let got = spare.backend.received();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter()
            .all(|r| r.method == "GET" && r.target == "/primary?n=1"),
        "the spare gets the request as the primary would: {:?}",
        got.iter().map(|r| &r.target).collect::<Vec<_>>()
    );
    // the spare has no breaker
    assert_eq!(breaker(&gw, "shop/spare"), serde_json::Value::Null);
}

#[test]
fn a_reload_that_leaves_the_breaker_alone_keeps_it_open_and_one_that_changes_it_closes_it() {
    let flaky = Switched::start("flaky", 503);
    let url = flaky.backend.url();
    let dir = breaker_policy(&[("FLAKY", &url), ("OPEN", "10s")]);
    let gw = Gateway::start(dir.path());

    trip_flaky(&gw, &flaky);
    let opened = breaker(&gw, "shop/flaky");
    assert_resting(&gw.get("shop.test", "/flaky"));

    // an unrelated route changes
    let text = breaker_text(&[("FLAKY", &url), ("OPEN", "10s"), ("NOTE", "two")]);
    reload(&gw, &dir, "shop.policy", &text);
    assert_eq!(
        gw.get("shop.test", "/note").body_str(),
        "two",
        "the reload is served"
    );
    assert_resting(&gw.get("shop.test", "/flaky"));
    assert_eq!(flaky.backend.count(), 3);
    assert_eq!(
        breaker(&gw, "shop/flaky"),
        opened,
        "the same phase, the same until"
    );
    assert_eq!(metrics_phase(&gw, "shop/flaky"), "open");

    // the breaker itself changes: it starts closed, and the backend is reached again
    flaky.set(200);
    let text = breaker_text(&[("FLAKY", &url), ("OPEN", "9s"), ("NOTE", "two")]);
    reload(&gw, &dir, "shop.policy", &text);
    assert_backend(&gw.get("shop.test", "/flaky"), "flaky", 200);
    assert_eq!(flaky.backend.count(), 4);
    assert_eq!(
        breaker(&gw, "shop/flaky"),
        serde_json::json!({"state": "closed"})
    );
}

#[test]
fn a_percent_rule_waits_for_its_minimum_of_results_then_trips_at_half_failed() {
    let ratio = Switched::start("ratio", 503);
    let dir = breaker_policy(&[("RATIO", &ratio.backend.url())]);
    let gw = Gateway::start(dir.path());

    // 503, 503, 200: two of three failed, but fewer than `min 4` results
    assert_backend(&gw.get("shop.test", "/ratio"), "ratio", 503);
    assert_backend(&gw.get("shop.test", "/ratio"), "ratio", 503);
    ratio.set(200);
    assert_backend(&gw.get("shop.test", "/ratio"), "ratio", 200);
    assert_eq!(breaker(&gw, "shop/ratio")["state"], "closed");
    // the fourth result, a success, makes 2 of 4: 50 %, and the breaker trips
    assert_backend(&gw.get("shop.test", "/ratio"), "ratio", 200);
    assert_eq!(breaker(&gw, "shop/ratio")["state"], "open");
    // without a `downgrade` statement, the no-backend row answers
    let r = gw.get("shop.test", "/ratio");
    assert_huawei(&r, 502, "APIG.0610", "No backend available.");
    assert_eq!(ratio.backend.count(), 4);
}
