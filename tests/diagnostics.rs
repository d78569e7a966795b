//! The diagnostics corpus: every file (or directory) under `tests/diagnostics/` is a broken
//! policy set an operator could plausibly write. Each is loaded and compiled, and the human
//! rendering of everything `check` reports is pinned by an insta snapshot named after the case.
//!
//! Secrets come from a store that knows a single environment variable (`DEMO_SECRET=demo`),
//! so a case never depends on the environment of the machine running the tests. Files are
//! read from disk relative to the crate, as `ProcessSecrets` reads them relative to the
//! working directory.

use rulegate::compile::{compile, Compiled, ProcessSecrets, SecretStore};
use rulegate::policy::diag::{self, Severity};
use rulegate::policy::{self, Loaded};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const CORPUS: &str = "tests/diagnostics";
const ACCEPTANCE: &str = "01-acceptance.policy";

struct TestSecrets;

impl SecretStore for TestSecrets {
    fn env(&self, name: &str) -> Option<String> {
        (name == "DEMO_SECRET").then(|| "demo".to_string())
    }

    fn file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        ProcessSecrets.file(&manifest_dir().join(path))
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every case, by name: a `.policy` file or a directory of them, in name order.
fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(manifest_dir().join(CORPUS))
        .expect("the corpus directory")
        .map(|e| e.expect("a corpus entry"))
        .filter(|e| e.path().is_dir() || e.path().extension().is_some_and(|x| x == "policy"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Load a case with paths relative to the crate (`tests/diagnostics/07-x.policy`), so the
/// rendering is the same on every machine.
fn load(case: &str) -> Loaded {
    let root = manifest_dir();
    let files = policy::policy_files(&[root.join(CORPUS).join(case)]).expect("the case exists");
    assert!(!files.is_empty(), "{case}: no .policy files");
    let texts = files
        .iter()
        .map(|f| {
            let relative = f.strip_prefix(root).expect("under the crate").to_path_buf();
            let text = std::fs::read_to_string(f).expect("readable");
            let dir = relative.parent().map(Path::to_path_buf).unwrap_or_default();
            (relative.display().to_string(), text, dir)
        })
        .collect::<Vec<(String, String, PathBuf)>>();
    policy::parse_texts(texts)
}

fn check(case: &str) -> (Loaded, Compiled) {
    let loaded = load(case);
    let compiled = compile(&loaded, &TestSecrets);
    (loaded, compiled)
}

/// What `check` prints for a case, without colour, and a last line counting what it found.
fn render(loaded: &Loaded, compiled: &Compiled) -> String {
    let diags = &compiled.diagnostics;
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let mut out = diag::render_human(&loaded.sources, diags, false);
    out.push_str(&format!(
        "{errors} error(s), {} warning(s)\n",
        diags.len() - errors
    ));
    out
}

fn snapshot_name(case: &str) -> String {
    case.trim_end_matches(".policy").to_string()
}

#[test]
fn corpus_has_at_least_thirty_cases() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
}

#[test]
fn every_case_is_reported_as_pinned() {
    for case in cases() {
        let (loaded, compiled) = check(&case);
        insta::assert_snapshot!(snapshot_name(&case), render(&loaded, &compiled));
    }
}

#[test]
fn every_case_is_really_broken_and_every_diagnostic_explains_itself() {
    for case in cases() {
        let (_, compiled) = check(&case);
        assert!(
            diag::has_errors(&compiled.diagnostics),
            "{case}: no error reported"
        );
        assert!(
            compiled.snapshot.is_none(),
            "{case}: a snapshot was produced despite errors"
        );
        for d in &compiled.diagnostics {
            let help = d.help.as_deref().unwrap_or("");
            assert!(
                !help.trim().is_empty() || !d.label.trim().is_empty(),
                "{case}: {} `{}` has neither help nor label",
                d.code.id,
                d.message
            );
        }
    }
}

/// Together the cases produce every code `check` can report.
#[test]
fn corpus_covers_every_code() {
    let mut seen = BTreeSet::new();
    for case in cases() {
        let (_, compiled) = check(&case);
        seen.extend(compiled.diagnostics.iter().map(|d| d.code.id));
    }
    let missing: Vec<&str> = diag::ALL_CODES
        .iter()
        .map(|c| c.id)
        .filter(|id| !seen.contains(id))
        .collect();
    assert!(missing.is_empty(), "codes no case produces: {missing:?}");
}

/// The acceptance case: an undefined backend, a misspelled keyword and a duplicate
/// route are all reported by one check, each at its own place.
#[test]
fn acceptance_case_reports_all_three_problems() {
    let (loaded, compiled) = check(ACCEPTANCE);
    let found: Vec<(&str, String)> = compiled
        .diagnostics
        .iter()
        .map(|d| (d.code.id, loaded.sources.location(d.span)))
        .collect();
    let file = "tests/diagnostics/01-acceptance.policy";
    assert_eq!(
        found,
        vec![
            (diag::UNDEFINED.id, format!("{file}:17:17")),
            (diag::UNKNOWN_KEYWORD.id, format!("{file}:20:5")),
            (diag::DUPLICATE_ROUTE.id, format!("{file}:24:15")),
        ]
    );
}

#[test]
fn acceptance_case_as_json() {
    let (loaded, compiled) = check(ACCEPTANCE);
    insta::assert_json_snapshot!(
        "acceptance_json",
        diag::to_json(&loaded.sources, &compiled.diagnostics)
    );
}
