//! `rulegate import openapi` as a user runs it: the real binary on OpenAPI documents, the
//! policy and tests it writes (which must pass `check` and `test`), and the JD console codes
//! of a document it cannot import.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rulegate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("UTF-8")
}

/// A fresh directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("rulegate-import-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Import `fixture` into a scratch directory, then `check` and `test` what was written.
/// Returns (policy, tests, test report).
fn import_and_test(fixture: &str) -> (String, String, String) {
    let s = Scratch::new(fixture);
    let spec = manifest().join("tests/fixtures/openapi").join(fixture);
    let spec = spec.to_str().unwrap();
    let o = rulegate(
        &s.0,
        &["import", "openapi", spec, "-o", "api/imported.policy"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        "wrote api/imported.policy\nwrote api/imported.tests\n"
    );
    let policy = std::fs::read_to_string(s.0.join("api/imported.policy")).unwrap();
    let tests = std::fs::read_to_string(s.0.join("api/imported.tests")).unwrap();

    let o = rulegate(&s.0, &["check", "api"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert_eq!(text(&o.stdout), "valid: 1 file, 0 errors, 0 warnings\n");
    let o = rulegate(&s.0, &["fmt", "--check", "api"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the import is formatted: {}",
        text(&o.stdout)
    );
    let o = rulegate(&s.0, &["test", "api"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    // Without -o the policy goes to stdout, the same text.
    let o = rulegate(&s.0, &["import", "openapi", spec]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), policy);
    (policy, tests, text(&o.stdout))
}

#[test]
fn the_petstore_imports_checks_and_passes_its_tests() {
    let (policy, tests, _) = import_and_test("petstore-v3.yaml");
    insta::assert_snapshot!("petstore_v3_policy", policy);
    insta::assert_snapshot!("petstore_v3_tests", tests);
    assert!(policy.contains("route GET \"/v1/pets/{petId}\" {\n        require path \"petId\"\n"));
    assert!(policy.contains("optional query \"limit\" int ..100\n"));
}

#[test]
fn the_swagger_2_petstore_imports_too() {
    let (policy, _, _) = import_and_test("petstore-v2.yaml");
    insta::assert_snapshot!("petstore_v2_policy", policy);
}

#[test]
fn a_json_document_with_examples_refs_and_ranges() {
    let (policy, tests, _) = import_and_test("orders.json");
    insta::assert_snapshot!("orders_policy", policy);
    insta::assert_snapshot!("orders_tests", tests);
    let s = Scratch::new("orders-report");
    let spec = manifest().join("tests/fixtures/openapi/orders.json");
    rulegate(
        &s.0,
        &[
            "import",
            "openapi",
            spec.to_str().unwrap(),
            "-o",
            "o.policy",
        ],
    );
    let o = rulegate(&s.0, &["test", "o.policy", "--fail-under", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("coverage: 100.0% of the decision tree"));
}

/// Each broken document, and the diagnostic it gets.
#[test]
fn documents_that_cannot_be_imported_get_jd_console_codes() {
    let s = Scratch::new("errors");
    let cases = [
        (
            "duplicate.yaml",
            "openapi: 3.0.3\ninfo: {title: Dupes, version: \"1\"}\npaths:\n  /pets/{id}:\n    get:\n      responses: {\"200\": {description: ok}}\n  /pets/{petId}:\n    get:\n      responses: {\"200\": {description: ok}}\n",
        ),
        ("broken.yaml", "openapi: 3.0.0\npaths:\n  /a: [unclosed\n"),
        ("empty.yaml", ""),
        ("no-paths.yaml", "openapi: 3.0.0\ninfo: {title: x}\npaths: {}\n"),
        ("asyncapi.json", "{\"asyncapi\": \"2.0.0\", \"channels\": {}}\n"),
        (
            "partial-segment.yaml",
            "swagger: \"2.0\"\ninfo: {title: x, version: \"1\"}\npaths:\n  /files/{name}.json:\n    get:\n      responses: {\"200\": {description: ok}}\n",
        ),
        (
            "dangling-ref.yaml",
            "openapi: 3.0.0\ninfo: {title: x, version: \"1\"}\npaths:\n  /a:\n    get:\n      parameters: [{$ref: \"#/components/parameters/Nope\"}]\n      responses: {\"200\": {description: ok}}\n",
        ),
    ];
    let mut report = String::new();
    for (name, doc) in cases {
        std::fs::write(s.0.join(name), doc).unwrap();
        let o = rulegate(&s.0, &["import", "openapi", name, "-o", "out.policy"]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(o.stdout.is_empty());
        assert!(!s.0.join("out.policy").exists(), "{name}: nothing written");
        report.push_str(&format!("=== {name}\n{}", text(&o.stderr)));
    }
    for code in [
        "error[APIGATEWAY_API_PATH_ISREPEAT]: API Path Repeated",
        "error[APIGATEWAY_SWAGGER_PARSE_ERROR]: yaml File Resolution Exception",
        "error[APIGATEWAY_SWAGGER_NULL_ERRO]: yaml file cannot be null",
    ] {
        assert!(report.contains(code), "{code} missing:\n{report}");
    }
    insta::assert_snapshot!("errors", report);
}

#[test]
fn a_missing_document_is_a_usage_error() {
    let o = rulegate(
        manifest(),
        &["import", "openapi", "tests/fixtures/openapi/nope.yaml"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).starts_with("rulegate: tests/fixtures/openapi/nope.yaml: "));
}
