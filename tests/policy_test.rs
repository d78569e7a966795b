//! `rulegate test` as a user's CI runs it: the real binary on the shipped policies and on
//! copies of them, with exact outputs. Copies live in a fresh directory and the binary runs
//! there with relative paths, so the output is the same on every machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rulegate");

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rulegate_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("the binary runs")
}

fn rulegate(args: &[&str]) -> Output {
    rulegate_in(manifest(), args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

/// A scratch directory holding a copy of `policies/` (as `policies`), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "rulegate-policy-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&manifest().join("policies"), &dir.join("policies"));
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let path = self.path(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{rel} lacks {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every file under `dir` with its contents: what a run may not change.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// The part of a human report from `failures:` to the coverage summary.
fn failures_section(out: &str) -> &str {
    let start = out.find("failures:").expect("a failures section");
    let end = out.find("coverage: ").expect("a coverage line");
    &out[start..end]
}

#[test]
fn the_shipped_policies_pass_their_tests() {
    let o = rulegate(&["test", "policies"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.ends_with("\ntest result: ok\n83 passed, 0 failed\n"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
    insta::assert_snapshot!("shipped_policies", out);
}

#[test]
fn every_shipped_policy_has_tests_with_snapshots_and_sequences() {
    for policy in ["shop", "partners", "public"] {
        let tests = std::fs::read_to_string(manifest().join(format!("policies/{policy}.tests")))
            .unwrap_or_else(|e| panic!("policies/{policy}.tests: {e}"));
        assert!(
            tests.contains("\n    snapshot\n"),
            "{policy}.tests snapshots nothing"
        );
        assert!(tests.contains(" times "), "{policy}.tests has no sequence");
        let snaps = manifest().join(format!("policies/snapshots/{policy}"));
        assert!(
            std::fs::read_dir(&snaps).is_ok_and(|mut d| d.next().is_some()),
            "{} is empty",
            snaps.display()
        );
    }
}

/// The issue's acceptance: a changed required header fails with a diff naming the test, the
/// deciding step and both answers; `--update` accepts it; nothing is written without it.
#[test]
fn a_changed_required_header_fails_with_a_diff_until_update() {
    let s = Scratch::new("header");
    s.edit(
        "policies/shop.policy",
        "require path \"id\" int 1..\n        require header \"X-Tenant\"",
        "require path \"id\" int 1..\n        require header \"X-Shop-Tenant\"",
    );
    let before = tree(&s.0);
    let o = rulegate_in(&s.0, &["test", "policies"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(tree(&s.0), before, "a run without --update writes nothing");
    let out = stdout(&o);
    assert!(
        out.ends_with("\ntest result: FAILED\n81 passed, 2 failed\n"),
        "{out}"
    );
    let failures = failures_section(&out);
    for needle in [
        "FAIL \"an order without a tenant is refused\" (policies/shop.tests:136:1)",
        "decided by: 8 param      FAIL  header parameter \"X-Shop-Tenant\" is missing",
        "-   8 param      FAIL  header parameter \"X-Tenant\" is missing",
        "+   8 param      FAIL  header parameter \"X-Shop-Tenant\" is missing",
        "-{\"error_code\": \"APIG.0201\", \"error_msg\": \"API request error: header parameter X-Tenant is required\"",
        "+{\"error_code\": \"APIG.0201\", \"error_msg\": \"API request error: header parameter X-Shop-Tenant is required\"",
        "-forward  GET /v1/orders/42 to backend orders",
    ] {
        assert!(failures.contains(needle), "{needle:?} missing:\n{failures}");
    }
    insta::assert_snapshot!("changed_header_failures", failures);

    let o = rulegate_in(&s.0, &["test", "policies", "--update"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains(
        "snapshot written: policies/snapshots/shop/an-order-without-a-tenant-is-refused.snap\n"
    ));
    assert!(out.contains(
        "snapshot written: policies/snapshots/shop/an-order-with-a-token-and-a-tenant-is-forwarded.snap\n"
    ));
    let o = rulegate_in(&s.0, &["test", "policies"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("83 passed, 0 failed\n"));
}

#[test]
fn a_failed_expectation_shows_both_values_the_step_and_the_answer() {
    let s = Scratch::new("expect");
    s.edit(
        "policies/public.tests",
        "expect header Retry-After 1\n    wait 100ms",
        "expect header Retry-After 2\n    wait 100ms",
    );
    let o = rulegate_in(&s.0, &["test", "policies", "--filter", "7th forecast"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    insta::assert_snapshot!("failed_expectation", out);
}

#[test]
fn colour_on_request_and_never_with_no_color() {
    let s = Scratch::new("colour");
    s.edit(
        "policies/shop.tests",
        "expect status 413",
        "expect status 414",
    );
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(BIN);
        c.args(["test", "policies", "--filter", "body over"])
            .current_dir(&s.0)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            c.env(k, v);
        }
        stdout(&c.output().unwrap())
    };
    let coloured = run(&[("CLICOLOR_FORCE", "1")]);
    assert!(
        coloured.contains("\u{1b}[31m- expected: 414\u{1b}[0m"),
        "{coloured}"
    );
    assert!(
        coloured.contains("\u{1b}[32m+ actual:   413\u{1b}[0m"),
        "{coloured}"
    );
    let plain = run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!plain.contains('\u{1b}'), "{plain}");
    assert!(
        plain.contains("  - expected: 414\n  + actual:   413\n"),
        "{plain}"
    );
}

#[test]
fn junit_output_parses_as_junit_xml() {
    let s = Scratch::new("junit");
    s.edit(
        "policies/shop.policy",
        "require header \"X-Tenant\"\n        forward orders path \"/v1/orders/{id}\"",
        "require header \"X-Org\"\n        forward orders path \"/v1/orders/{id}\"",
    );
    let o = rulegate_in(&s.0, &["test", "policies", "--format", "junit"]);
    assert_eq!(o.status.code(), Some(1));
    let xml = s.path("report.xml");
    std::fs::write(&xml, &o.stdout).unwrap();
    // Parsed by a real XML parser, and read the way CI systems read JUnit reports.
    let check = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
cases = root.findall("testsuite/testcase")
failed = [c for c in cases if c.find("failure") is not None]
assert int(root.get("tests")) == len(cases), (root.get("tests"), len(cases))
assert int(root.get("failures")) == len(failed)
for s in suites:
    assert int(s.get("tests")) == len(s.findall("testcase"))
print(len(suites), len(cases), len(failed))
for c in failed:
    f = c.find("failure")
    print(c.get("classname"), "|", c.get("name"), "|", c.get("line"), "|", f.get("type"), "|", f.get("message"))
    assert "decided by: 8 param" in f.text, f.text
"#;
    let py = Command::new("python3")
        .args(["-c", check])
        .arg(&xml)
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    insta::assert_snapshot!("junit_parsed", String::from_utf8(py.stdout).unwrap());
}

#[test]
fn json_output_has_results_snapshots_and_coverage() {
    let o = rulegate(&["test", "policies", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], true);
    assert_eq!(v["passed"], 83);
    assert_eq!(v["failed"], 0);
    let tests = v["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 83);
    assert_eq!(tests[0]["file"], "policies/partners.tests");
    assert_eq!(tests[0]["name"], "ping is answered by the gateway");
    assert_eq!(tests[0]["location"], "policies/partners.tests:9:1");
    assert_eq!(v["snapshots"]["stale"], serde_json::json!([]));
    let cov = &v["coverage"];
    assert!(cov["branches"].as_u64().unwrap() > 0);
    assert!(cov["covered"].as_u64().unwrap() <= cov["branches"].as_u64().unwrap());
    assert_eq!(
        cov["missed"][0],
        serde_json::json!({
            "service": "partners",
            "route": "POST /invoices/{id}/settle",
            "location": "partners.policy:58:16",
            "branch": "step 2 never refuses: cross-origin requests refused (no cors)",
        })
    );
}

#[test]
fn coverage_below_the_threshold_fails() {
    let o = rulegate(&["test", "policies", "--fail-under", "99.5"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("coverage ") && l.ends_with(" is under the required 99.5%"))
        .unwrap_or_else(|| panic!("no threshold line:\n{out}"));
    let pct: f64 = line["coverage ".len()..line.find('%').unwrap()]
        .parse()
        .unwrap();
    assert!(pct > 50.0 && pct < 99.5, "{line}");
    assert!(
        out.ends_with("test result: FAILED\n83 passed, 0 failed\n"),
        "{out}"
    );
    let o = rulegate(&["test", "policies", "--fail-under", "50"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn stale_snapshots_are_reported_and_update_removes_them() {
    let s = Scratch::new("stale");
    let stale = s.path("policies/snapshots/shop/a-test-that-was-renamed.snap");
    std::fs::write(&stale, "old\n").unwrap();
    let o = rulegate_in(&s.0, &["test", "policies"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(
        "stale snapshot: policies/snapshots/shop/a-test-that-was-renamed.snap (no test writes it; `--update` removes it)\n"
    ));
    assert!(stale.exists());
    let o = rulegate_in(&s.0, &["test", "policies", "--update"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(
        "stale snapshot removed: policies/snapshots/shop/a-test-that-was-renamed.snap\n"
    ));
    assert!(!stale.exists());
}

#[test]
fn a_new_snapshot_fails_until_update_writes_it() {
    let s = Scratch::new("new");
    std::fs::remove_file(
        s.path("policies/snapshots/public/the-sandbox-answers-from-a-canned-forecast.snap"),
    )
    .unwrap();
    let o = rulegate_in(&s.0, &["test", "policies/public.tests"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no snapshot yet at policies/snapshots/public/the-sandbox-answers-from-a-canned-forecast.snap (`rulegate test --update` writes it); the answer:\n"));
    let o = rulegate_in(&s.0, &["test", "policies/public.tests", "--update"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read(
            s.path("policies/snapshots/public/the-sandbox-answers-from-a-canned-forecast.snap")
        )
        .unwrap(),
        std::fs::read(
            manifest()
                .join("policies/snapshots/public/the-sandbox-answers-from-a-canned-forecast.snap")
        )
        .unwrap(),
    );
}

#[test]
fn sequences_run_on_the_virtual_clock() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/limits"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    insta::assert_snapshot!("limits", stdout(&o));
}

#[test]
fn a_broken_test_file_is_reported_whole_with_places() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/broken"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    insta::assert_snapshot!("broken_file", stderr(&o));
}

#[test]
fn signing_as_an_app_the_service_lacks_is_an_error_of_the_test() {
    let s = Scratch::new("sign");
    s.edit(
        "policies/shop.tests",
        "sign app-signature app mobile\n    expect forward /v1/orders to orders",
        "sign app-signature app tablet\n    expect forward /v1/orders to orders",
    );
    let o = rulegate_in(&s.0, &["test", "policies", "--filter", "signed order"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(
            "  error: cannot sign: service shop has no app \"tablet\" (its apps: mobile)\n"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn nothing_tested_is_an_error() {
    let o = rulegate(&["test", "tests/fixtures/keys"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "rulegate: nothing was tested: no .tests files under tests/fixtures/keys\n"
    );
    let o = rulegate(&["test", "policies", "--filter", "no such test"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "rulegate: nothing was tested: no test matches \"no such test\"\n"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn a_policy_that_does_not_compile_runs_no_test() {
    let s = Scratch::new("broken-policy");
    s.edit(
        "policies/shop.policy",
        "forward catalog path \"/v2/products\"",
        "forward catalogue path \"/v2/products\"",
    );
    let o = rulegate_in(&s.0, &["test", "policies"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error[APIGATEWAY_NOT_FOUND]: undefined backend `catalogue`"),
        "{err}"
    );
    assert!(err.contains("policies/shop.policy:109:17"), "{err}");
    assert!(
        err.ends_with("rulegate: the policy does not compile; no test was run\n"),
        "{err}"
    );
}

#[test]
fn a_tests_file_declares_the_authorizer_answer() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/authorizer"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("4 passed, 0 failed"), "{out}");
    assert!(!out.contains("tok-secret"), "{out}");
    let snap = std::fs::read_to_string(manifest().join(
        "tests/fixtures/policy-test/authorizer/snapshots/guarded/without-a-stub-the-authorizer-is-not-called.snap",
    ))
    .unwrap();
    assert!(!snap.contains("tok-secret"), "{snap}");
    assert!(
        snap.contains("7 auth       FAIL  provider ext: not called: explain and test never call http://127.0.0.1:9400/check"),
        "{snap}"
    );
    assert!(snap.contains(r#"{"error_code": "APIG.0616", "#), "{snap}");
}

/// `sign jd-signature app NAME`: the JDCLOUD2 signature rulegate's verifier checks (proven
/// against JD's SDK vectors), with a fresh nonce per request, so `times 3` is three requests.
#[test]
fn a_tests_file_signs_as_a_jd_app() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/jd"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    assert!(!out.contains("station-secret"), "{out}");
}

/// Policy backends: `expect forward … to BACKEND` names the backend a policy chose, and the
/// action step says which policy and why.
#[test]
fn a_tests_file_checks_which_policy_backend_a_request_takes() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/policy-backends"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("6 passed, 0 failed"), "{out}");
    // each policy is a branch of coverage of its own, apart from the route's own action
    assert!(!out.contains("never chosen"), "{out}");
    assert!(
        out.contains("GET /carts/{id} (orders.policy:46:15): the action is never reached"),
        "{out}"
    );
}

/// Backend parameters: `expect upstream …` checks the request the backend receives, and the
/// snapshot shows it as `explain` prints it.
#[test]
fn a_tests_file_checks_the_request_the_backend_receives() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/backend-params"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
}

/// A failed `expect upstream` says what the backend would have received.
#[test]
fn a_failed_upstream_expectation_shows_what_the_backend_receives() {
    let dir = std::env::temp_dir().join(format!("rulegate-upstream-expect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("orders.policy"),
        "service orders {\n  dialect huawei\n  hosts \"localhost\"\n  backend b { targets \"http://127.0.0.1:9\" }\n  route GET \"/o\" {\n    backend header \"X-Tenant\" constant \"acme\"\n    forward b\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("orders.tests"),
        "test \"t\" {\n  GET http://localhost/o\n  expect upstream header X-Tenant other\n}\n",
    )
    .unwrap();
    let o = rulegate(&["test", dir.to_str().unwrap()]);
    let out = stdout(&o);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("- expected: upstream X-Tenant: other"),
        "{out}"
    );
    assert!(out.contains("+ actual:   upstream X-Tenant: acme"), "{out}");
}

/// Scripted backends (`backend NAME answers|times out|target N down|up`) drive breakers,
/// downgrades, health checks and retries on the virtual clock, in all three dialects.
#[test]
fn scripted_backends_trip_breakers_and_health_on_the_virtual_clock() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/backends"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    insta::assert_snapshot!("backends", stdout(&o));
}

/// A whole incident (trip, downgrade, half-open, recovery) plays out the same way every time:
/// the virtual clock and the scripted backends leave nothing to chance.
#[test]
fn a_scripted_incident_gives_the_same_report_a_hundred_times() {
    let first = rulegate(&["test", "tests/fixtures/policy-test/backends"]);
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    for run in 1..100 {
        let again = rulegate(&["test", "tests/fixtures/policy-test/backends"]);
        assert_eq!(
            (again.status.code(), stdout(&again)),
            (first.status.code(), stdout(&first)),
            "run {run} differs"
        );
    }
}

/// Huawei's custom gateway responses in policy tests: the status, body and headers are the
/// service's, `expect code` still matches Huawei's code.
#[test]
fn custom_gateway_responses_answer_and_expect_code_still_matches_the_vendor_code() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/gateway-responses"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("4 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );
}

/// API keys and Basic credentials in policy tests: keys by their SHA-256, passwords by their
/// argon2 hash, hidden from the backend; each dialect's rows.
#[test]
fn api_keys_and_basic_credentials_pass_hide_and_refuse() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/keys"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("6 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );
}

/// Tencent's application authentication in policy tests: `sign apiapp app NAME` signs as the
/// app (a form's fields, a JSON body's MD5); an unbound app gets `Found no validate apiapp.`.
#[test]
fn tencent_app_authentication_signs_passes_and_refuses_an_unbound_app() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/apiapp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("5 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );
}

/// Throttling policies in policy tests: a shared budget across routes and services, excepted
/// apps and clients, a per-API throttle keyed by a query parameter, Huawei's 429 details.
#[test]
fn throttles_share_except_and_detail_which_limit_was_hit() {
    let o = rulegate(&["test", "tests/fixtures/policy-test/throttles"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("7 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );
}
