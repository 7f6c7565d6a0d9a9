//! Replays the checked-in fuzz corpus (fuzz/corpus/parse) through the same property the fuzz
//! target checks, so every input the fuzzer ever kept stays a regression test.

use crate::fuzz_check as check;

use std::path::Path;

#[test]
fn every_corpus_input_parses_or_fails_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        check::check(&bytes);
        count += 1;
    }
    assert!(count >= 50, "the corpus has only {count} inputs");
}
