//! Snapshots: a test's whole answer (the `explain` text: request, pipeline trace, forward plan
//! or exact response) kept as a text file beside the policy, reviewed like code.
//!
//! `NAME.tests` keeps its snapshots in `snapshots/NAME/<test slug>.snap` next to it: one file
//! per test, so a change to one route shows up as a change to the files of the tests that
//! reach it, and a merge conflict stays within one test.

use std::path::{Path, PathBuf};

/// The directory holding the snapshots of one tests file.
pub fn dir_of(tests_file: &Path) -> PathBuf {
    let stem = tests_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    tests_file
        .parent()
        .unwrap_or(Path::new(""))
        .join("snapshots")
        .join(stem)
}

pub fn path_of(tests_file: &Path, slug: &str) -> PathBuf {
    dir_of(tests_file).join(format!("{slug}.snap"))
}

/// The snapshot document of a test: a header naming it, then each snapshotted request's
/// `explain` text.
pub fn document(tests_file: &Path, test: &str, parts: &[String]) -> String {
    // The file's name only: the same snapshot whichever directory the tests run from.
    let name = tests_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = format!(
        "# rulegate test snapshot: {name} › {test}\n# `rulegate test --update` rewrites this file; review the change like code.\n"
    );
    for (i, part) in parts.iter().enumerate() {
        if parts.len() > 1 {
            out.push_str(&format!("\n## request {} of {}\n", i + 1, parts.len()));
        }
        out.push('\n');
        out.push_str(part);
    }
    out
}

/// What comparing a test's snapshot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Same,
    /// No file yet.
    New,
    /// The file says something else: its text.
    Changed(String),
}

pub fn compare(path: &Path, actual: &str) -> Verdict {
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => Verdict::Same,
        Ok(expected) => Verdict::Changed(expected),
        Err(_) => Verdict::New,
    }
}

/// Snapshot files in `dir` that no test wrote or compared.
pub fn stale(dir: &Path, used: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "snap") && !used.contains(p))
        .collect();
    out.sort();
    out
}
