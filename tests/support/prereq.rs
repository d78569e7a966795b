//! What a test needs from outside Rust — a Debian program, a Python package — and what it does
//! without it: skip with a notice, or, where CI says the prerequisite is required
//! (`RULEGATE_<…>=required`, set by `.ci/run`), fail. One place for the rule, so no suite can
//! pass in CI by skipping itself.

#![allow(dead_code)] // each test crate uses a part

use std::process::{Command, Stdio};

/// `found`, and when it is not: a failure if `var` is `required`, else a skip notice naming
/// what is missing and how to get it.
pub fn present(found: bool, var: &str, what: &str, how: &str) -> bool {
    if !found {
        assert!(
            std::env::var(var).as_deref() != Ok("required"),
            "{var}=required but {what} is missing"
        );
        eprintln!("skipping: {what} is missing ({how})");
    }
    found
}

/// Whether `program --version` runs.
pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether python3 imports `modules` (`"jwt, pytest"`).
pub fn python_imports(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
