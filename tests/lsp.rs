//! `rulegate lsp` end to end: `tests/lsp/test_lsp.py` drives the built binary with a real LSP
//! client (pytest-lsp, speaking as Neovim does) over stdio: diagnostics as a file is typed,
//! hover with the dialect's rows, definitions, references, rename, completion, formatting, and
//! a `.tests` file's errors.
//!
//! CI (`.ci/run`) installs pytest-lsp and sets `RULEGATE_LSP=required`; without that, a
//! machine lacking it skips this test with a notice rather than failing.

#[path = "support/prereq.rs"]
mod prereq;

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn a_real_lsp_client_gets_diagnostics_hover_definitions_completion_and_formatting() {
    let found = prereq::python_imports("pytest_lsp, pytest");
    let how = "pip install pytest-lsp==0.4.3 pygls==1.3.1 lsprotocol==2023.0.1";
    if !prereq::present(found, "RULEGATE_LSP", "python3's pytest-lsp", how) {
        return;
    }
    // The server only reads the workspace; the test writes nothing there either.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lsp/workspace");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lsp/test_lsp.py");
    let status = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args([
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
        ])
        .args(["-W", "error::pytest_lsp.LspSpecificationWarning"])
        .arg(&script)
        .env("RULEGATE_BIN", env!("CARGO_BIN_EXE_rulegate"))
        .env("RULEGATE_LSP_WORKSPACE", &dir)
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "tests/lsp/test_lsp.py failed (its output is above)"
    );
}

/// Neovim's own client, configured by `editors/neovim/rulegate.lua` as a user loads it
/// (`tests/lsp/neovim.lua`): run when `nvim` is installed (0.7 or later), skipped otherwise.
#[test]
fn neovim_with_the_shipped_config_gets_diagnostics_hover_definition_and_formatting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has_nvim = Command::new("nvim")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_nvim {
        eprintln!("skipping the Neovim test: apt-get install neovim to run it");
        return;
    }
    let cmd = format!(
        "let g:rulegate_cmd=['{}','lsp']",
        env!("CARGO_BIN_EXE_rulegate")
    );
    let out = Command::new("timeout")
        .args([
            "120",
            "nvim",
            "--headless",
            "--clean",
            "--cmd",
            &cmd,
            "--cmd",
        ])
        .arg(format!(
            "luafile {}",
            root.join("editors/neovim/rulegate.lua").display()
        ))
        .arg(root.join("tests/lsp/workspace/shop.policy"))
        .arg("-c")
        .arg(format!(
            "luafile {}",
            root.join("tests/lsp/neovim.lua").display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("nvim runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("all held"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The TextMate grammar's keywords are the grammar's: every `kw_` rule of
/// `grammar/policy.pest`, no more (regenerate the alternation when a keyword is added).
#[test]
fn the_textmate_grammar_highlights_exactly_the_grammars_keywords() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pest = std::fs::read_to_string(root.join("grammar/policy.pest")).unwrap();
    let mut grammar: Vec<String> = pest
        .lines()
        .filter(|l| l.starts_with("kw_"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect();
    grammar.sort();
    grammar.dedup();
    let tm: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("editors/vscode/syntaxes/policy.tmLanguage.json"))
            .unwrap(),
    )
    .unwrap();
    let pattern = tm["repository"]["keyword"]["match"].as_str().unwrap();
    let alternation = pattern
        .split_once("(?:")
        .and_then(|(_, rest)| rest.split_once(')'))
        .unwrap()
        .0;
    let mut highlighted: Vec<String> = alternation
        .split('|')
        .map(|k| k.replace('\\', ""))
        .collect();
    highlighted.sort();
    assert_eq!(highlighted, grammar);
}
