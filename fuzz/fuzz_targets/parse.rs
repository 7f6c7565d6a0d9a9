//! Fuzz target: the nginx configuration lexer and tree on arbitrary bytes.
//! Run with `cargo fuzz run parse fuzz/corpus/parse` from the repository root.

#![no_main]

mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
