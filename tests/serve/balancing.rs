//! Balancing over real backends (issue 14): 90/10 weights give 90/10 (exactly, per hundred
//! consecutive requests: smooth weighted round robin), a hash on a header keeps each key on
//! one target, least requests avoids a target holding a request, a weight-0 reload drains a
//! target without losing the request in flight on it, and a refused connection is retried on
//! another target (a POST with a body too: nothing was sent) until every target is out, where
//! the no-backend row answers; a connection lost before the answer is retried for a GET only,
//! and a timeout never.
//!
//! Also the shared helpers of `breaker.rs` and `health.rs`: a backend's and a target's state on
//! `/config`, a series on `/metrics`, and the wait for a reload.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};

/// The balancing fixture; a target not given refuses connections, a weight not given is 1.
fn balancing_policy(vars: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new();
    dir.write("shop.policy", &balancing_text(vars));
    dir
}

fn balancing_text(vars: &[(&str, &str)]) -> String {
    let mut all: Vec<(String, String)> = ["A", "B", "DEAD", "DEAD_B", "SLOW"]
        .iter()
        .map(|k| (k.to_string(), closed_url()))
        .chain(["WEIGHT_A", "WEIGHT_B"].map(|k| (k.to_string(), "1".to_string())))
        .collect();
    for (k, v) in vars {
        all.iter_mut().find(|(n, _)| n == k).expect("known var").1 = v.to_string();
    }
    let vars: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fixture("balancing.policy", &vars)
}

/// Answers 200 `text/plain` with `name`; a request carrying `X-Hold` first waits for `gate`.
fn holding(name: &'static str, gate: &Gate) -> Backend {
    let gate = gate.clone();
    Backend::start(move |req, s| {
        if req.has("x-hold") {
            gate.wait(WAIT);
        }
        respond(s, 200, &[("Content-Type", "text/plain")], name.as_bytes())
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers shared with breaker.rs and health.rs
// ---------------------------------------------------------------------------------------------

/// The backend `key` (`service/backend`) on `/config`, once the gateway has sent to or probed
/// it.
pub fn backend_view(gw: &Gateway, key: &str) -> Option<serde_json::Value> {
    gw.config()["backends"]
        .as_array()
        .expect("/config backends is a list")
        .iter()
        .find(|b| b["backend"] == key)
        .cloned()
}

/// The target `url` of backend `key` on `/config`.
pub fn target_view(gw: &Gateway, key: &str, url: &str) -> Option<serde_json::Value> {
    backend_view(gw, key)?["targets"]
        .as_array()?
        .iter()
        .find(|t| t["url"] == url)
        .cloned()
}

/// Whether `/config` shows the target `url` of backend `key` taking requests.
pub fn available(gw: &Gateway, key: &str, url: &str) -> Option<bool> {
    target_view(gw, key, url)?["available"].as_bool()
}

/// Poll `/config` until the target `url` of backend `key` is (or is not) available.
pub fn wait_available(gw: &Gateway, key: &str, url: &str, want: bool) {
    let what = format!("target {url} of {key} to be available: {want}");
    poll(WAIT, &what, || {
        (available(gw, key, url) == Some(want)).then_some(())
    });
}

/// The value of one series on `/metrics` (`name{labels}`), if it is there.
pub fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("an integer sample"))
}

/// Write `text` to `rel` in `dir` and wait until the gateway serves it (the `/config` version
/// grows, with no reload error).
pub fn reload(gw: &Gateway, dir: &TempDir, rel: &str, text: &str) {
    let before = gw.config()["version"].as_u64().expect("/config version");
    dir.write(rel, text);
    let config = poll(WAIT, "the reload", || {
        let c = gw.config();
        (c["version"].as_u64() > Some(before)).then_some(c)
    });
    assert!(config["last_reload_error"].is_null(), "{config}");
    assert_eq!(config["reloads_failed"], 0, "{config}");
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn weights_ninety_ten_give_ninety_ten_over_ten_thousand_requests() {
    let a = Backend::text("a");
    let b = Backend::text("b");
    let dir = balancing_policy(&[("A", &a.url()), ("B", &b.url())]);
    let gw = Gateway::start(dir.path());

    // one keep-alive connection, one request after the other: the answers come in the order
    // the gateway picked the targets
    let mut conn = gw.conn();
    let get = request("GET", "/weighted", "shop.test", &[], b"");
    let mut seq = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let r = conn.round_trip(&get).expect("a response");
        assert_eq!(r.status, 200, "request {i}: {}", r.status_line);
        seq.push(r.body_str().to_string());
    }
    let (to_a, to_b) = (a.count(), b.count());
    eprintln!("90/10 over 10,000 requests: a {to_a}, b {to_b}");
    assert_eq!(to_a + to_b, 10_000);
    // the bound: within 1 % of 9,000 and 1,000
    assert!((8_900..=9_100).contains(&to_a), "a got {to_a}");
    assert!((900..=1_100).contains(&to_b), "b got {to_b}");
    // what smooth weighted round robin promises: exactly 10 in every 100 consecutive picks
    assert_eq!((to_a, to_b), (9_000, 1_000));
    for (k, window) in seq.chunks(100).enumerate() {
        let bs = window.iter().filter(|s| *s == "b").count();
        assert_eq!(bs, 10, "requests {}..{}", k * 100, k * 100 + 100);
    }
    // and spread rather than bunched: never two b's in a row
    assert!(
        seq.windows(2).all(|w| w != ["b", "b"]),
        "two requests in a row went to the weight-10 target"
    );
}

#[test]
fn a_hash_on_a_header_keeps_each_key_on_one_target_and_balances_requests_without_it() {
    let a = Backend::start(|req, s| {
        let user = req.header("x-user").unwrap_or("-").to_string();
        respond(s, 200, &[], format!("a {user}").as_bytes())
    });
    let b = Backend::start(|req, s| {
        let user = req.header("x-user").unwrap_or("-").to_string();
        respond(s, 200, &[], format!("b {user}").as_bytes())
    });
    let dir = balancing_policy(&[("A", &a.url()), ("B", &b.url())]);
    let gw = Gateway::start(dir.path());

    let mut conn = gw.conn();
    // 30 keys, 5 requests each, interleaved so the round robin would have spread them
    let mut homes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..5 {
        for k in 0..30 {
            let user = format!("user-{k}");
            let get = request("GET", "/sticky", "shop.test", &[("X-User", &user)], b"");
            let r = conn.round_trip(&get).expect("a response");
            assert_eq!(r.status, 200, "{user}, round {round}: {}", r.status_line);
            let (target, echoed) = r.body_str().split_once(' ').expect("`target user`");
            assert_eq!(echoed, user, "the backend got the key");
            homes.entry(user).or_default().insert(target.to_string());
        }
    }
    for (user, targets) in &homes {
        assert_eq!(targets.len(), 1, "{user} reached {targets:?}");
    }
    let on_a = homes.values().filter(|t| t.contains("a")).count();
    eprintln!("30 keys: {on_a} on a, {} on b", 30 - on_a);
    assert!(
        on_a > 0 && on_a < 30,
        "both targets own keys ({on_a} of 30 on a)"
    );
    assert_eq!(a.count() + b.count(), 150);
    assert_eq!(a.count(), on_a * 5);

    // without the header, the round robin: the two targets in turn
    let before = (a.count(), b.count());
    let get = request("GET", "/sticky", "shop.test", &[], b"");
    let turns: String = (0..6)
        .map(|_| {
            let r = conn.round_trip(&get).expect("a response");
            assert_eq!(r.status, 200);
            r.body_str().chars().next().unwrap()
        })
        .collect();
    assert!(turns == "ababab" || turns == "bababa", "{turns}");
    assert_eq!((a.count(), b.count()), (before.0 + 3, before.1 + 3));
}

#[test]
fn least_requests_sends_new_requests_past_a_target_holding_one() {
    let gate = Gate::new();
    let a = holding("a", &gate);
    let b = holding("b", &gate);
    let dir = balancing_policy(&[("A", &a.url()), ("B", &b.url())]);
    let gw = Gateway::start(dir.path());

    // a request that one target holds until the gate opens
    let mut held = gw.conn();
    held.send(&request(
        "GET",
        "/least",
        "shop.test",
        &[("X-Hold", "1")],
        b"",
    ))
    .unwrap();
    poll(WAIT, "the held request at a backend", || {
        (a.count() + b.count() == 1).then_some(())
    });
    let (busy, idle, busy_name, idle_name) = match a.count() {
        1 => (&a, &b, "a", "b"),
        _ => (&b, &a, "b", "a"),
    };
    let busy_view = target_view(&gw, "shop/least", &busy.url()).expect("the busy target");
    assert_eq!(busy_view["in_flight"], 1, "{busy_view}");
    let series = format!(
        "rulegate_target_requests_in_flight{{backend=\"shop/least\",target=\"{}\"}}",
        busy.url()
    );
    assert_eq!(metric(&gw.metrics(), &series), Some(1));

    // while it holds it, every new request goes to the other target
    for i in 0..6 {
        let r = gw.get("shop.test", "/least");
        expect_status(&r, 200);
        assert_eq!(r.body_str(), idle_name, "request {i}");
    }
    assert_eq!((busy.count(), idle.count()), (1, 6));

    // released: the held request gets its answer, and both targets share requests again
    gate.open();
    let r = held.read_response().expect("the held answer");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), busy_name);
    poll(WAIT, "the busy target's count to drop", || {
        let v = target_view(&gw, "shop/least", &busy.url())?;
        (v["in_flight"] == 0).then_some(())
    });
    assert_eq!(metric(&gw.metrics(), &series), Some(0));
    let names: BTreeSet<String> = (0..4)
        .map(|_| gw.get("shop.test", "/least").body_str().to_string())
        .collect();
    assert_eq!(names, BTreeSet::from(["a".to_string(), "b".to_string()]));
}

#[test]
fn a_weight_zero_reload_drains_a_target_without_losing_its_request_in_flight() {
    let gate = Gate::new();
    let a = holding("a", &gate);
    let b = holding("b", &gate);
    let dir = balancing_policy(&[("A", &a.url()), ("B", &b.url())]);
    let gw = Gateway::start(dir.path());

    let mut held = gw.conn();
    held.send(&request(
        "GET",
        "/canary",
        "shop.test",
        &[("X-Hold", "1")],
        b"",
    ))
    .unwrap();
    poll(WAIT, "the held request at a backend", || {
        (a.count() + b.count() == 1).then_some(())
    });
    let a_holds = a.count() == 1;
    let (holder, other, holder_name, other_name) = match a_holds {
        true => (&a, &b, "a", "b"),
        false => (&b, &a, "b", "a"),
    };

    // the canary step: the holder's weight goes to 0 while its request is in flight
    let (wa, wb) = if a_holds { ("0", "1") } else { ("1", "0") };
    let text = balancing_text(&[
        ("A", &a.url()),
        ("B", &b.url()),
        ("WEIGHT_A", wa),
        ("WEIGHT_B", wb),
    ]);
    reload(&gw, &dir, "shop.policy", &text);
    let v = target_view(&gw, "shop/canary", &holder.url()).expect("the holder");
    assert_eq!(v["in_flight"], 1, "still in flight after the reload: {v}");

    // new requests go to the other target while the held one is still in flight
    for i in 0..5 {
        let r = gw.get("shop.test", "/canary");
        expect_status(&r, 200);
        assert_eq!(r.body_str(), other_name, "request {i} during the drain");
    }

    // the request in flight on the drained target completes with its answer
    gate.open();
    let r = held.read_response().expect("the held answer");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), holder_name);

    for i in 0..10 {
        let r = gw.get("shop.test", "/canary");
        expect_status(&r, 200);
        assert_eq!(r.body_str(), other_name, "request {i} after the drain");
    }
    assert_eq!(holder.count(), 1, "the drained target got nothing new");
    assert_eq!(other.count(), 15);
    let v = target_view(&gw, "shop/canary", &holder.url()).expect("the holder");
    assert_eq!(v["in_flight"], 0, "{v}");
    assert_eq!(v["available"], true, "drained is not down: {v}");
}

#[test]
fn a_refused_connection_is_retried_on_another_target_even_for_a_post_with_a_body() {
    let a = Backend::text("a");
    let dead = closed_url();
    let dir = balancing_policy(&[("A", &a.url()), ("DEAD", &dead)]);
    let gw = Gateway::start(dir.path());

    // the round robin's first pick is the refusing target, listed first: the POST is sent to
    // `a` instead, whole
    let body = b"{\"order\": 42}";
    let headers = [("Content-Type", "application/json")];
    let r = gw.send(&request("POST", "/pair", "shop.test", &headers, body));
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "a");
    let got = a.wait_for(1);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].target.as_str()),
        ("POST", "/pair")
    );
    assert_eq!(got[0].body, body);
    // the refusing target was tried: it is out for 10 s (no `passive` statement)
    let v = target_view(&gw, "shop/pair", &dead).expect("the refusing target");
    assert_eq!(v["available"], false, "{v}");
    assert!(v["ejected_until_ms"].as_u64().is_some(), "{v}");
    assert_eq!(available(&gw, "shop/pair", &a.url()), Some(true));
    let series = format!("rulegate_target_available{{backend=\"shop/pair\",target=\"{dead}\"}}");
    assert_eq!(metric(&gw.metrics(), &series), Some(0));

    // later requests go straight to `a`
    for i in 0..4 {
        let r = gw.send(&request("POST", "/pair", "shop.test", &headers, body));
        expect_status(&r, 200);
        assert_eq!(r.body_str(), "a", "request {i}");
    }
    assert_eq!(a.count(), 5);
}

#[test]
fn every_target_refusing_gives_0202_then_the_no_backend_row_once_all_are_ejected() {
    let (dead_a, dead_b) = (closed_url(), closed_url());
    let dir = balancing_policy(&[("DEAD", &dead_a), ("DEAD_B", &dead_b)]);
    let gw = Gateway::start(dir.path());

    // a POST with a body tries both targets (nothing was sent) and finds both refusing
    let body = b"qty=2";
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = gw.send(&request("POST", "/dead", "shop.test", &headers, body));
    assert_huawei(&r, 502, "APIG.0202", "Backend unavailable");
    for url in [&dead_a, &dead_b] {
        assert_eq!(available(&gw, "shop/dead", url), Some(false), "{url}");
    }
    // both are ejected: no target is left, for a POST or a GET
    let r = gw.send(&request("POST", "/dead", "shop.test", &headers, body));
    assert_huawei(&r, 502, "APIG.0610", "No backend available.");
    let r = gw.get("shop.test", "/dead");
    assert_huawei(&r, 502, "APIG.0610", "No backend available.");
}

#[test]
fn a_connection_lost_before_the_answer_is_retried_for_a_get() {
    // reads the request, then closes the connection without an answer
    let closer = Backend::start(|_, _| false);
    let a = Backend::text("a");
    let dir = balancing_policy(&[("A", &a.url()), ("DEAD", &closer.url())]);
    let gw = Gateway::start(dir.path());

    let r = gw.get("shop.test", "/pair");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "a");
    assert_eq!((closer.count(), a.count()), (1, 1));
    // a lost connection is not a refusal: without a `passive` statement the target stays in
    assert_eq!(available(&gw, "shop/pair", &closer.url()), Some(true));
}

#[test]
fn a_connection_lost_before_the_answer_is_not_retried_for_a_post_with_a_body() {
    let closer = Backend::start(|_, _| false);
    let a = Backend::text("a");
    let dir = balancing_policy(&[("A", &a.url()), ("DEAD", &closer.url())]);
    let gw = Gateway::start(dir.path());

    // the body was sent: the backend may have acted on it
    let r = gw.send(&request("POST", "/pair", "shop.test", &[], b"pay=1"));
    assert_huawei(&r, 502, "APIG.0202", "Backend unavailable");
    assert_eq!(closer.wait_for(1)[0].body, b"pay=1");
    assert_eq!((closer.count(), a.count()), (1, 0));
}

/// A request body whose length nobody knows in advance: one chunk, then the end. Over
/// HTTP/2 it goes without `Content-Length`, the end of the stream in a later frame.
struct Unsized(Option<bytes::Bytes>);

impl hyper::body::Body for Unsized {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[test]
fn an_http2_put_whose_body_has_no_length_is_not_replayed_without_it() {
    let closer = Backend::start(|_, _| false);
    let a = Backend::text("a");
    let dir = balancing_policy(&[("A", &a.url()), ("DEAD", &closer.url())]);
    let gw = Gateway::start(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, headers, body) = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let request = http::Request::put("http://shop.test/pair")
            .body(Unsized(Some(bytes::Bytes::from_static(b"balance=0"))))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
        (
            status,
            headers,
            String::from_utf8(body.to_bytes().to_vec()).unwrap(),
        )
    });
    // the body went to the closing target: a PUT is idempotent, but not once its body is gone
    let lost = closer.wait_for(1);
    assert_eq!(
        (lost[0].method.as_str(), lost[0].body.as_slice()),
        ("PUT", &b"balance=0"[..])
    );
    assert_eq!((status, a.count()), (502, 0), "{body}");
    let id = headers["x-request-id"].to_str().unwrap();
    assert_generated_id(id);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, huawei_body("APIG.0202", "Backend unavailable", id));
}

#[test]
fn a_timeout_is_never_retried() {
    let gate = Gate::new();
    let held = gate.clone();
    let slow = Backend::start(move |_, s| {
        held.wait(WAIT);
        respond(s, 200, &[], b"too late")
    });
    let a = Backend::text("a");
    let dir = balancing_policy(&[("A", &a.url()), ("SLOW", &slow.url())]);
    let gw = Gateway::start(dir.path());

    // the slow target, listed first, is picked first; the backend may still be working on it
    let r = gw.get("shop.test", "/hasty");
    gate.open();
    assert_huawei(&r, 504, "APIG.0203", "Backend timeout");
    assert_eq!((slow.count(), a.count()), (1, 0));
}
