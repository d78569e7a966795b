//! Rate limits in memory: exact under concurrency, and every answer carries the dialect's
//! limit headers (wire-formats.md) — refusals byte for byte, with Retry-After.

use crate::common::*;
use crate::limits_support::*;
use std::time::Duration;

const POLICY: &str = r#"
default dialect huawei
service weather {
    dialect jdcloud
    hosts "weather.test"
    route GET "/burst" {
        rate 100 per minute burst 9
        mock 200 text "ok"
    }
}

service partners {
    dialect tencent
    hosts "partners.test"
    route GET "/two" {
        rate 2 per minute per ip burst 1
        mock 200 text "ok"
    }
}

service shop {
    dialect huawei
    hosts "shop.test"
    route GET "/two" {
        rate 2 per minute per ip burst 1
        rate 1000 per second per header "X-Tenant" burst 100
        mock 200 text "ok"
    }
}
"#;

fn gateway() -> (TempDir, Gateway) {
    let dir = TempDir::new();
    dir.write("limits.policy", POLICY);
    let gw = Gateway::start(dir.path());
    (dir, gw)
}

#[test]
fn concurrent_clients_never_pass_more_than_the_limit_plus_burst() {
    let (_dir, gw) = gateway();
    let (answers, elapsed) = hammer(&[&gw], 8, 400, || {
        request("GET", "/burst", "weather.test", &[], b"")
    });
    let passed: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    let bound = gcra_bound(100, Duration::from_secs(60), 9, elapsed);
    assert!(
        passed.len() >= 10 && passed.len() <= bound.min(109),
        "{} passed in {elapsed:?}; GCRA admits 10 at once and at most {bound}",
        passed.len()
    );
    let remaining: Vec<u64> = passed
        .iter()
        .map(|r| {
            assert_eq!(r.header("x-jdcloud-limit-minute"), Some("100"));
            r.header("x-jdcloud-remaining-minute")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    // Each pass takes one from the count and time only adds whole requests back: from the
    // full burst (9 left after the first) down to the refusals (0 left), every value shows.
    assert!(remaining.iter().all(|r| *r <= 9), "{remaining:?}");
    for k in 0..=9 {
        assert!(remaining.contains(&k), "no pass left {k}: {remaining:?}");
    }
    assert!(answers.len() > passed.len(), "nothing was refused");
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_jd_throttled(r, "minute", "100", "1");
    }
}

/// `rate 2 per minute per ip burst 1`: two pass at once, the third waits the 30 s the next
/// emission is due in.
#[test]
fn tencent_counts_down_in_x_api_ratelimit_and_refuses_with_retry_after() {
    let (_dir, gw) = gateway();
    let get = || gw.get("partners.test", "/two");
    for left in ["1/2", "0/2"] {
        let r = get();
        expect_status(&r, 200);
        assert_eq!(r.header("x-api-ratelimit"), Some(left));
    }
    assert_tencent_row(
        &get(),
        429,
        "API rate limit exceeded.",
        &[("x-api-ratelimit", "0/2"), ("retry-after", "30")],
    );
}

/// Huawei sends its `X-Apig-RateLimit-*` headers only to a request in debug mode, and none
/// for a header-keyed rate (it has no such dimension); debug mode adds the gateway's latency
/// in `X-Apig-Latency` (a mock has no upstream latency), to answers and refusals alike.
#[test]
fn huawei_shows_limit_headers_only_in_debug_mode() {
    let (_dir, gw) = gateway();
    let debug = [("X-Apig-Mode", "debug"), ("X-Tenant", "t1")];
    let r = gw.send(&request("GET", "/two", "shop.test", &debug, b""));
    let latency = whole_ms(&r, "x-apig-latency");
    assert_mock(
        &r,
        200,
        "X-Request-Id",
        "text/plain; charset=utf-8",
        &[
            ("X-Apig-RateLimit-ip", "remain:1,limit:2,time:1 minute"),
            ("X-Apig-Latency", &latency),
        ],
        "ok",
    );
    let plain = [("X-Tenant", "t1")];
    let r = gw.send(&request("GET", "/two", "shop.test", &plain, b""));
    assert!(r.header("x-apig-ratelimit-ip").is_none());
    assert!(r.header("x-apig-latency").is_none());
    expect_status(&r, 200);
    let r = gw.send(&request("GET", "/two", "shop.test", &debug, b""));
    let latency = whole_ms(&r, "x-apig-latency");
    assert_huawei_row(
        &r,
        429,
        "APIG.0308",
        "The throttling threshold has been reached: policy ip over ratelimit,limit:2,time:1 minute",
        &[
            ("x-apig-ratelimit-ip", "remain:0,limit:2,time:1 minute"),
            ("retry-after", "30"),
            ("x-apig-latency", &latency),
        ],
    );
}

/// A header's value, which must be a whole number of milliseconds (under a minute).
fn whole_ms(r: &Resp, name: &str) -> String {
    let v = r
        .header(name)
        .unwrap_or_else(|| panic!("no {name} in debug mode: {:?}", r.headers_but_date()));
    let ms: u64 = v
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {v:?} is not whole ms"));
    assert!(ms < 60_000, "{name}: {ms}");
    v.to_string()
}
