//! The `rulegate` binary as an operator runs it: exit codes, what it prints, and the formats
//! other tools parse. Run from the crate directory with relative paths, as a CI job would.

use std::path::Path;
use std::process::{Command, Output};

const ACCEPTANCE: &str = "tests/diagnostics/01-acceptance.policy";

fn rulegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

#[test]
fn check_of_the_shipped_policies_is_valid() {
    let o = rulegate(&["check", "policies"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "valid: 3 files, 0 errors, 0 warnings\n",
        "nothing but the summary"
    );
}

#[test]
fn check_of_the_acceptance_case_reports_all_three_problems() {
    let o = rulegate(&["check", ACCEPTANCE]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for (code, location, message) in [
        (
            "APIGATEWAY_NOT_FOUND",
            "17:17",
            "undefined backend `catalogue`",
        ),
        ("E0003", "20:5", "unknown keyword `routee`"),
        (
            "APIGATEWAY_API_PATH_ISREPEAT",
            "24:15",
            "GET /products is already routed by GET /products",
        ),
    ] {
        assert!(
            out.contains(&format!("error[{code}]: {message}")),
            "{code} missing:\n{out}"
        );
        assert!(
            out.contains(&format!("{ACCEPTANCE}:{location}")),
            "{ACCEPTANCE}:{location} missing:\n{out}"
        );
    }
    assert!(out.contains("help: did you mean `catalog`?"), "{out}");
    assert!(out.contains("help: did you mean `route`?"), "{out}");
    assert!(
        out.ends_with("invalid: 1 file, 3 errors, 0 warnings\n"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn check_without_paths_is_a_usage_error() {
    let o = rulegate(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<PATHS>"), "{}", stderr(&o));
}

#[test]
fn check_of_a_missing_path_is_a_usage_error() {
    let o = rulegate(&["check", "tests/diagnostics/no-such-case.policy"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).starts_with("rulegate: tests/diagnostics/no-such-case.policy: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_as_json() {
    let o = rulegate(&["check", "--format", "json", ACCEPTANCE]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    assert_eq!(v["files"], 1);
    assert_eq!(v["errors"], 3);
    assert_eq!(v["warnings"], 0);
    let diags = v["diagnostics"].as_array().expect("a list of diagnostics");
    let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "APIGATEWAY_NOT_FOUND",
            "E0003",
            "APIGATEWAY_API_PATH_ISREPEAT"
        ]
    );
    let first = &diags[0];
    assert_eq!(first["file"], ACCEPTANCE);
    assert_eq!(first["line"], 17);
    assert_eq!(first["column"], 17);
    assert_eq!(first["end_line"], 17);
    assert_eq!(first["end_column"], 26);
    assert_eq!(first["severity"], "error");
    assert_eq!(first["message"], "undefined backend `catalogue`");
    assert_eq!(first["help"], "did you mean `catalog`?");

    let o = rulegate(&["check", "--format", "json", "policies"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], true);
    assert_eq!(v["diagnostics"], serde_json::json!([]));
}

#[test]
fn explain_of_an_unmatched_request_prints_the_documented_404() {
    let o = rulegate(&[
        "explain",
        "policies",
        "GET",
        "http://shop.example.com/nothing?page=1",
        "--at",
        "2026-11-22T10:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    // The body is the documented Huawei row (errors/huawei.tsv, APIG.0101) in the default
    // gateway-response template, byte for byte.
    let body = "{\"error_code\": \"APIG.0101\", \"error_msg\": \"The API does not exist or has not been published in the environment.\", \"request_id\": \"00000000000000000000000000000001\"}";
    assert!(out.contains(&format!("\n\n{body}\n")), "{out}");
    let tsv = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dialect/tsv/huawei.tsv");
    let documented = std::fs::read_to_string(tsv).unwrap();
    assert!(documented.contains(
        "APIG.0101\t404\tThe API does not exist or has not been published in the environment.\t"
    ));
    insta::assert_snapshot!("explain_no_route", out);
}

#[test]
fn explain_of_a_broken_policy_exits_1() {
    let o = rulegate(&["explain", ACCEPTANCE, "GET", "http://shop.example.com/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).ends_with("rulegate: the policy does not compile; nothing to explain\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn errors_marks_the_rows_rulegate_emits() {
    let o = rulegate(&["errors", "--dialect", "huawei"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.starts_with("# huawei: "), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("APIG.0101") && l.contains("has not been published"))
        .expect("the APIG.0101 row is listed");
    assert!(line.starts_with("✓ APIG.0101 "), "{line}");
    assert!(line.contains(" 404  "), "{line}");
    assert!(!out.contains("# tencent"), "only the dialect asked for");
    // the bad-request row also answers a body that did not arrive in time, and says so
    let marked: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("[stands in for body_timeout]"))
        .collect();
    assert_eq!(
        marked,
        vec![
            "✓ APIG.0602                              400  Bad request.  [stands in for body_timeout]";
            2
        ],
        "{out}"
    );
    assert!(out.contains("# huawei: stand-ins"), "{out}");
}

/// A secret's value written into a policy by mistake (`secret "…"`) is masked in what `check`
/// prints, in both formats.
#[test]
fn check_never_prints_a_secret_written_inline() {
    let case = "tests/diagnostics/42-inline-secret.policy";
    let o = rulegate(&["check", case]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o) + &stderr(&o);
    assert!(
        out.contains("10 │         secret \"******************************\"  * **** *******\n"),
        "{out}"
    );
    let o = rulegate(&["check", "--format", "json", case]);
    let out = out + &stdout(&o) + &stderr(&o);
    for secret in ["s3cr3t", "hunter2"] {
        assert!(!out.contains(secret), "`check` shows a secret: {out}");
    }
}

/// `cmd` with its standard output a pipe whose reader has already gone: (exit status, stderr).
fn with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    (child.wait().expect("wait"), err)
}

#[test]
fn every_command_exits_quietly_when_its_reader_has_gone() {
    for args in [
        &["errors"][..],
        &["check", "policies", "--print-tree"],
        &["check", "policies", "--format", "json"],
        &["explain", "policies", "GET", "http://localhost/health"],
        &["test", "policies"],
        &[
            "import",
            "openapi",
            "tests/fixtures/openapi/petstore-v3.yaml",
        ],
        &["--help"],
    ] {
        let (status, err) = with_closed_stdout(args);
        assert_eq!(err, "", "rulegate {}", args.join(" "));
        assert!(status.success(), "rulegate {}: {status}", args.join(" "));
    }
}

/// `rulegate errors --policy DIR` marks the rows a service answers with its own gateway
/// response, and only those.
#[test]
fn errors_with_a_policy_marks_the_rows_its_gateway_responses_answer() {
    let o = rulegate(&[
        "errors",
        "--dialect",
        "huawei",
        "--policy",
        "tests/fixtures/policy-test/gateway-responses",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let marked: Vec<&str> = out.lines().filter(|l| l.contains("[answered by")).collect();
    assert_eq!(marked.len(), 4, "{out}");
    assert!(marked.iter().any(|l| l.starts_with("✓ APIG.0308")
        && l.ends_with("[answered by service shop's THROTTLED response]")));
    // a type the fixture's service does not answer stays unmarked
    assert!(out.lines().any(|l| l.starts_with("✓ APIG.0402")));
    assert!(!marked.iter().any(|l| l.starts_with("✓ APIG.0402")));
}
