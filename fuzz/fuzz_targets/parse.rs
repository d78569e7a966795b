//! Any text: the parser never panics, and a file it accepts formats, formats to a fixed point
//! and keeps its meaning.
//!
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse corpus/parse seeds -- -dict=policy.dict`

#![no_main]

use libfuzzer_sys::fuzz_target;
use rulegate::policy::{diag, fmt, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse::parse_file(0, text);
    if diag::has_errors(&parsed.diagnostics) {
        return;
    }
    let file = parsed.file.expect("no errors, so there is an AST");
    let once = match fmt::format_file(text) {
        Ok(s) => s,
        Err(d) => panic!("a file without errors does not format: {d:?}"),
    };
    let again = parse::parse_file(0, &once);
    assert!(
        !diag::has_errors(&again.diagnostics),
        "formatted text does not parse: {:?}\n{once}",
        again.diagnostics
    );
    assert_eq!(
        again.file.as_ref(),
        Some(&file),
        "formatting changed the meaning:\n{once}"
    );
    let twice = fmt::format_file(&once).expect("formatted text formats");
    assert_eq!(once, twice, "formatting is not idempotent");
});
