//! The README is documentation users copy from: its example policy must compile and its
//! `explain` transcript must be what rulegate prints.

use std::path::{Path, PathBuf};
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The text between `start` (inclusive) and the next code fence.
fn block_from(text: &str, start: &str) -> String {
    let a = text
        .find(start)
        .unwrap_or_else(|| panic!("README lacks {start:?}"));
    let b = a + text[a..].find("```").expect("unclosed code block");
    text[a..b].to_string()
}

#[test]
fn the_readme_example_policy_compiles_cleanly() {
    let policy = block_from(&readme(), "# policies/shop.policy");
    let dir = std::env::temp_dir().join(format!("rulegate-readme-{}", std::process::id()));
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for sub in ["secrets", "keys"] {
        for entry in std::fs::read_dir(policies.join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(sub).join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(dir.join("readme.policy"), policy).unwrap();
    let loaded = rulegate::policy::load(&[PathBuf::from(&dir)]).unwrap();
    let compiled = rulegate::compile::compile(&loaded, &rulegate::compile::ProcessSecrets);
    let rendered =
        rulegate::policy::diag::render_human(&loaded.sources, &compiled.diagnostics, false);
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        compiled.diagnostics.is_empty(),
        "README example has diagnostics:\n{rendered}"
    );
    assert!(compiled.snapshot.is_some());
}

#[test]
fn the_readme_explain_transcript_is_what_rulegate_prints() {
    let block = block_from(
        &readme(),
        "$ rulegate explain policies GET http://localhost/nowhere",
    );
    let (command, expected) = block.split_once('\n').unwrap();
    let args: Vec<&str> = command
        .trim_start_matches("$ rulegate ")
        .split_whitespace()
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap()
}

#[test]
fn the_readme_test_transcript_is_what_rulegate_prints() {
    let block = block_from(&readme(), "$ rulegate test policies --filter");
    let (command, expected) = block.split_once('\n').unwrap();
    let filter = command
        .split_once("--filter ")
        .map(|(_, f)| f.trim_matches('"'))
        .unwrap();
    let out = run(&["test", "policies", "--filter", filter]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

/// The CI example's commands pass on the shipped policies (the JUnit report goes to a
/// temporary file, not into the checkout).
#[test]
fn the_readme_ci_example_passes() {
    let block = block_from(&readme(), "# ci: policy tests");
    let commands: Vec<&str> = block
        .lines()
        .filter_map(|l| l.strip_prefix("rulegate "))
        .collect();
    assert_eq!(commands.len(), 3, "{block}");
    for c in commands {
        let (c, redirect) = c.split_once(" > ").unwrap_or((c, ""));
        let args: Vec<&str> = c.split_whitespace().collect();
        let out = run(&args);
        assert!(
            out.status.success(),
            "rulegate {c}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        if !redirect.is_empty() {
            assert!(out.stdout.starts_with(b"<?xml"), "{redirect}");
        }
    }
}

/// The README's `.tests` excerpt is the shipped file's, statement for statement (the token is
/// shortened in the README).
#[test]
fn the_readme_tests_excerpt_is_in_the_shipped_file() {
    let block = block_from(&readme(), "# policies/shop.tests (excerpt)");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/shop.tests"))
            .unwrap();
    let statements = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split("  #").next().unwrap().trim().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    };
    let shipped = statements(&shipped);
    for line in statements(&block) {
        let found = match line.strip_suffix("…\"") {
            Some(prefix) => shipped.iter().any(|s| s.starts_with(prefix)),
            None => shipped.contains(&line),
        };
        assert!(found, "README line {line:?} is not in policies/shop.tests");
    }
}
