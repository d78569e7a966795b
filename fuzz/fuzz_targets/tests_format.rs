//! Any text as a `.tests` file: the hand-written test-file parser never panics.
//!
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run tests_format`

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = rulegate::testing::format::parse(0, text);
});
