//! Parameter orchestration (issue 13, item 4): the backend receives the parameter the first
//! matching rule gives, `pre` rules feed the rules after them, `empty` and `default` fill in,
//! and a value that no rule maps is refused with each dialect's row, byte for byte, before the
//! backend sees anything.

use crate::common::*;

struct Setup {
    main: Backend,
    gw: Gateway,
    _dir: TempDir,
}

fn start() -> Setup {
    let main = Backend::text("ok");
    let dir = TempDir::new();
    dir.write(
        "shards.policy",
        &fixture("orchestration.policy", &[("MAIN", &main.url())]),
    );
    let gw = Gateway::start(dir.path());
    Setup {
        main,
        gw,
        _dir: dir,
    }
}

fn get(s: &Setup, target: &str, host: &str, headers: &[(&str, &str)]) -> Resp {
    s.gw.send(&request("GET", target, host, headers, b""))
}

#[test]
fn each_rule_kind_gives_the_backend_its_parameter() {
    let s = start();
    let headers = [("X-Device", "abc"), ("X-Session-Hash", "forged")];
    let r = get(
        &s,
        "/users/00014242?plan=gold&session=xyz-abcdef",
        "huawei.test",
        &headers,
    );
    expect_status(&r, 200);
    let g = &s.main.wait_for(1)[0];
    // `pre head 4` gives "0001", which the list maps
    assert_eq!(g.header("x-shard"), Some("shard-a"));
    assert_eq!(
        g.target,
        "/users/00014242?plan=gold&session=xyz-abcdef&tier=premium"
    );
    // SHA-256("abc") read as an integer is 74 modulo 100
    assert_eq!(g.header("x-device-bucket"), Some("high"));
    // tail 6 is "abcdef"; SHA-256("abcdef") = bef57ec7f53a6d40…
    assert_eq!(g.header("x-session-hash"), Some("bef57ec7f53a6d40"));
}

#[test]
fn empty_and_default_fill_in_and_an_absent_source_omits_the_parameter() {
    let s = start();
    let r = get(&s, "/users/3000?plan=bronze", "huawei.test", &[]);
    expect_status(&r, 200);
    let r = get(
        &s,
        "/users/3000?plan=",
        "huawei.test",
        &[("X-Device-Bucket", "forged")],
    );
    expect_status(&r, 200);
    let got = s.main.wait_for(2);
    assert_eq!(got[0].header("x-shard"), Some("shard-b"));
    assert_eq!(got[0].target, "/users/3000?plan=bronze&tier=standard");
    assert_eq!(got[1].target, "/users/3000?plan=&tier=free");
    // no X-Device, no session: their parameters are omitted, and a forged one never passes
    for name in ["x-device-bucket", "x-session-hash"] {
        assert!(!got[1].has(name), "{name}: {:?}", got[1].headers);
    }
}

#[test]
fn a_value_no_rule_maps_is_refused_with_each_dialects_row() {
    let s = start();
    // head 4 of "9999" is 9999: neither the list nor 2..4999
    let r = get(&s, "/users/99991", "huawei.test", &[]);
    expect_status(&r, 400);
    let id = r.header("x-request-id").expect("a request id").to_string();
    assert_eq!(
        r.body_str(),
        format!(
            "{{\"error_code\": \"APIG.0106\", \"error_msg\": \"Orchestration error.\", \"request_id\": \"{id}\"}}"
        )
    );
    let r = get(&s, "/users/1", "tencent.test", &[("X-Region", "us-east")]);
    expect_status(&r, 403);
    assert_eq!(r.body_str(), r#"{"message":"Get X-Region params fail."}"#);
    assert!(r.header("x-api-requestid").is_some(), "{:?}", r.headers);
    let r = get(&s, "/users/1?uid=101", "jd.test", &[]);
    expect_status(&r, 400);
    let id = r
        .header("x-jdcloud-request-id")
        .expect("a request id")
        .to_string();
    assert_eq!(
        r.body_str(),
        format!(
            "{{\"requestId\":\"{id}\",\"error\":{{\"code\":400,\"status\":\"OUT_OF_RANGE\",\"message\":\"The parameter value is illegal or exceeds the range\"}}}}"
        )
    );
    assert_eq!(s.main.count(), 0);
}
