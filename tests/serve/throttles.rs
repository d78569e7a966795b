//! Throttling policies over real sockets: a shared throttle is one budget across services (and
//! across gateways sharing Redis), a per-API throttle counts each route apart, excepted clients
//! keep their own limits, windows of several units, parameter keys that a hostile client cannot
//! split by encoding — on every store, each refusal byte for byte in its service's dialect.

use crate::common::*;
use crate::limits_support::*;

const POLICY: &str = r#"
default dialect huawei

throttle partners {
    rate 3 per minute
    per ip 2
    except ip 127.0.0.1 3
    shared
}

throttle tenants {
    rate 100 per 10s
    per query "tenant" 1
}

service shop {
    dialect huawei
    hosts "shop.test"
    throttle partners
    route GET "/orders" {
        mock 200 text "orders"
    }
    route GET "/reports" {
        throttle tenants
        mock 200 text "reports"
    }
    route GET "/exports" {
        throttle tenants
        mock 200 text "exports"
    }
}

service maps {
    dialect jdcloud
    hosts "maps.test"
    route GET "/tiles" {
        throttle partners
        mock 200 text "tiles"
    }
}
"#;

fn policy_dir() -> TempDir {
    let dir = TempDir::new();
    dir.write("throttles.policy", POLICY);
    dir
}

fn get(gw: &Gateway, host: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    gw.send(&request("GET", path, host, headers, b""))
}

/// Three calls a minute across both services (127.0.0.1 is excepted up to 3, so the total is
/// what refuses): the fourth is Huawei's row with the API dimension's detail, or JD's.
fn spend_the_shared_budget(shop: &Gateway, maps: &Gateway) {
    expect_status(&get(shop, "shop.test", "/orders", &[]), 200);
    expect_status(&get(maps, "maps.test", "/tiles", &[]), 200);
    expect_status(&get(shop, "shop.test", "/orders", &[]), 200);
    let r = get(shop, "shop.test", "/orders", &[]);
    let retry = r.header("retry-after").unwrap_or("?").to_string();
    assert!(
        ["20", "19"].contains(&retry.as_str()),
        "Retry-After {retry}"
    );
    assert_huawei_row(
        &r,
        429,
        "APIG.0308",
        "The throttling threshold has been reached: policy api over ratelimit,limit:3,time:1 minute",
        &[("retry-after", &retry)],
    );
    let r = get(maps, "maps.test", "/tiles", &[]);
    assert_jd_throttled(&r, "minute", "3", r.header("retry-after").unwrap_or("?"));
}

#[test]
fn a_shared_throttle_is_one_budget_across_services_in_memory() {
    let dir = policy_dir();
    let gw = Gateway::start(dir.path());
    spend_the_shared_budget(&gw, &gw);
}

#[test]
fn a_shared_throttle_is_one_budget_across_services_with_a_state_directory() {
    let dir = policy_dir();
    let state = TempDir::new();
    let gw = Gateway::start_with(dir.path(), &["--state", &state.path().to_string_lossy()]);
    spend_the_shared_budget(&gw, &gw);
}

/// Two gateways on one Redis: the budget is shared across them too.
#[test]
fn a_shared_throttle_is_one_budget_across_gateways_sharing_redis() {
    let Some(redis) = Redis::start() else { return };
    let (d1, d2) = (policy_dir(), policy_dir());
    let a = Gateway::start_with(d1.path(), &["--redis", &redis.url()]);
    let b = Gateway::start_with(d2.path(), &["--redis", &redis.url()]);
    spend_the_shared_budget(&a, &b);
}

/// A per-API throttle: `/reports` and `/exports` each give tenant acme one call in 10 s; the
/// second at the same route is refused without a detail (Huawei has no dimension for a query
/// parameter), and the debug headers show the API dimension over a 10-second window.
#[test]
fn a_per_api_throttle_counts_each_route_and_each_tenant_apart() {
    let dir = policy_dir();
    let gw = Gateway::start(dir.path());
    let debug = [("X-Apig-Mode", "debug")];
    let r = get(&gw, "shop.test", "/reports?tenant=acme", &debug);
    expect_status(&r, 200);
    assert_eq!(
        r.header("x-apig-ratelimit-api"),
        Some("remain:99,limit:100,time:10 second")
    );
    expect_status(&get(&gw, "shop.test", "/exports?tenant=acme", &[]), 200);
    expect_status(&get(&gw, "shop.test", "/reports?tenant=globex", &[]), 200);
    let r = get(&gw, "shop.test", "/reports?tenant=acme", &[]);
    assert_huawei_row(
        &r,
        429,
        "APIG.0308",
        "The throttling threshold has been reached.",
        &[("retry-after", "10")],
    );
}

/// A hostile client cannot make its tenant someone else's bucket or a new one by encoding:
/// the value is decoded, and a repeated parameter counts as its first value.
#[test]
fn an_encoded_or_repeated_tenant_is_the_same_tenant() {
    let dir = policy_dir();
    let gw = Gateway::start(dir.path());
    expect_status(&get(&gw, "shop.test", "/reports?tenant=acme", &[]), 200);
    for path in [
        "/reports?tenant=%61cme",
        "/reports?tenant=acme&tenant=fresh",
        "/reports?%74enant=acme",
    ] {
        let r = get(&gw, "shop.test", path, &[]);
        assert_eq!(r.status, 429, "{path}");
    }
}

/// The excepted address has its own per-client limit (3); a forged `X-Forwarded-For` from a
/// peer that is no trusted proxy changes nothing: the client is still 127.0.0.1.
#[test]
fn a_forged_forwarded_for_does_not_escape_the_per_client_limit() {
    let dir = policy_dir();
    let gw = Gateway::start(dir.path());
    let forged = [("X-Forwarded-For", "203.0.113.9")];
    let debug = [("X-Forwarded-For", "203.0.113.9"), ("X-Apig-Mode", "debug")];
    let r = get(&gw, "shop.test", "/orders", &debug);
    expect_status(&r, 200);
    assert_eq!(
        r.header("x-apig-ratelimit-ip"),
        Some("remain:2,limit:3,time:1 minute")
    );
    expect_status(&get(&gw, "shop.test", "/orders", &forged), 200);
    expect_status(&get(&gw, "shop.test", "/orders", &forged), 200);
    let r = get(&gw, "shop.test", "/orders", &forged);
    assert_eq!(r.status, 429);
}

/// A reload that binds the shared throttle to one more route keeps what was counted: the
/// budget's ids do not depend on which routes are bound, so the new route draws on it too.
#[test]
fn a_reload_that_binds_one_more_route_keeps_the_shared_count() {
    let dir = policy_dir();
    let gw = Gateway::start(dir.path());
    expect_status(&get(&gw, "shop.test", "/orders", &[]), 200);
    expect_status(&get(&gw, "maps.test", "/tiles", &[]), 200);
    let more = POLICY.replace(
        "    route GET \"/reports\" {",
        "    route GET \"/new\" {\n        mock 200 text \"new\"\n    }\n    route GET \"/reports\" {",
    );
    dir.write("throttles.policy", &more);
    poll(std::time::Duration::from_secs(10), "the reload", || {
        (gw.get("shop.test", "/new").status != 404).then_some(())
    });
    // the poll's request took the third call; the fourth is refused
    let r = get(&gw, "shop.test", "/new", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(
        r.body_str(),
        huawei_body(
            "APIG.0308",
            "The throttling threshold has been reached: policy api over ratelimit,limit:3,time:1 minute",
            r.header("x-request-id").unwrap()
        )
    );
}
