//! Quotas in the state file (`serve --state DIR`): counts survive `kill -9`, and usage plans
//! give their apps a rate and a quota; each dialect's row and headers exactly.

use crate::common::*;
use crate::limits_support::*;

const POLICY: &str = r#"
default dialect huawei
service partners {
    dialect tencent
    hosts "partners.test"
    auth keys keypair {
        algorithms hmac-sha1
    }
    app partner {
        key "ak-partner"
        secret file "partner.secret"
        quota 50 per day
    }
    plan gold {
        apps partner
        rate 100 per day burst 99
    }
    route GET "/q" {
        auth keys
        mock 200 text "ok"
    }
}

service shop {
    dialect huawei
    hosts "shop.test"
    auth keys keypair {
        algorithms hmac-sha1
    }
    app buyer {
        key "ak-buyer"
        secret file "partner.secret"
        quota 1 per month in "Asia/Shanghai"
    }
    route GET "/q" {
        auth keys
        mock 200 text "ok"
    }
}
"#;

const SECRET: &str = "s3cret-partner";

fn policy_dir() -> TempDir {
    let dir = TempDir::new();
    dir.write("quotas.policy", POLICY);
    dir.write("partner.secret", SECRET);
    dir
}

fn start(dir: &TempDir, state: &TempDir) -> Gateway {
    let state = state.path().to_str().unwrap().to_string();
    Gateway::start_with(dir.path(), &["--state", &state])
}

fn get_q(gw: &Gateway) -> Resp {
    gw.send(&signed_get("/q", "partners.test", "ak-partner", SECRET))
}

fn expect_passed(r: &Resp, quota_left: u64, rate_left: u64) {
    assert_mock(
        r,
        200,
        "X-Api-RequestId",
        "text/plain; charset=utf-8",
        &[
            ("X-UsagePlan-RateLimit", &format!("{rate_left}/100")),
            ("X-UsagePlan-Quota", &format!("{quota_left}/50")),
        ],
        "ok",
    );
}

/// The issue's acceptance case: a quota of 50 per day; 30 requests, `kill -9`, restart, 25
/// more: exactly 20 admitted. The plan's rate is in memory and starts afresh after the
/// restart; the quota goes on from 30.
#[test]
fn quota_counts_survive_kill_9() {
    let dir = policy_dir();
    let state = TempDir::new();
    let mut gw = start(&dir, &state);
    for i in 1..=30 {
        expect_passed(&get_q(&gw), 50 - i, 100 - i);
    }
    gw.signal(SIGKILL);
    gw.wait_exit(WAIT);
    drop(gw);

    let gw = start(&dir, &state);
    let answers: Vec<Resp> = (0..25).map(|_| get_q(&gw)).collect();
    let admitted = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 20, "admitted after the restart");
    for (j, r) in answers.iter().enumerate().take(20) {
        let j = j as u64 + 1;
        expect_passed(r, 20 - j, 100 - j);
    }
    for r in &answers[20..] {
        // a refused request spends nothing: the plan's rate still has 80 of its 100
        assert_tencent_row(
            r,
            429,
            "API quota exceeded.",
            &[
                ("x-usageplan-ratelimit", "80/100"),
                ("x-usageplan-quota", "0/50"),
            ],
        );
    }
}

/// Without `--state` quotas live in memory: a restart starts them from zero. (The contrast
/// that shows the test above is about the file store.)
#[test]
fn without_a_state_directory_a_restart_forgets_quotas() {
    let dir = policy_dir();
    let gw = Gateway::start(dir.path());
    for i in 1..=3 {
        expect_passed(&get_q(&gw), 50 - i, 100 - i);
    }
    drop(gw);
    let gw = Gateway::start(dir.path());
    expect_passed(&get_q(&gw), 49, 99);
}

/// Huawei answers a spent quota with 405 APIG.0501 (not 429) and has no quota header.
#[test]
fn huawei_quota_used_up_is_405_apig_0501() {
    let dir = policy_dir();
    let state = TempDir::new();
    let gw = start(&dir, &state);
    let get = || gw.send(&signed_get("/q", "shop.test", "ak-buyer", SECRET));
    let r = get();
    assert_mock(
        &r,
        200,
        "X-Request-Id",
        "text/plain; charset=utf-8",
        &[],
        "ok",
    );
    assert_huawei_row(
        &get(),
        405,
        "APIG.0501",
        "The app quota has been used up.",
        &[],
    );
}

/// Two gateways cannot share one state directory: the second refuses to start and says why.
#[test]
fn a_state_directory_serves_one_gateway() {
    let dir = policy_dir();
    let state = TempDir::new();
    let _gw = start(&dir, &state);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .arg("serve")
        .arg(dir.path())
        .args(["--listen", &free_addr().to_string()])
        .arg("--state")
        .arg(state.path())
        .output()
        .expect("run rulegate");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by another process"),
        "stderr: {stderr}"
    );
}
