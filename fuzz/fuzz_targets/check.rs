//! The property the parser fuzz target checks, shared with the corpus replay test
//! (tests/it/fuzz_corpus.rs): on any bytes, parsing returns (never panics or hangs); a parsed file
//! re-renders byte for byte; directive spans lie inside the file, in order; and an error points
//! inside the file.

use std::path::PathBuf;

use nginx_conf::tree::{Body, ConfigFile, Directive};

/// Parses `bytes` as one configuration file and checks the invariants; panics when one fails.
pub fn check(bytes: &[u8]) {
    match ConfigFile::parse(PathBuf::from("/fuzz/nginx.conf"), bytes.to_vec()) {
        Ok(file) => {
            assert_eq!(file.render(), bytes, "re-rendering must be byte-identical");
            check_spans(&file, file.directives(), 0, bytes.len() as u32);
        }
        Err(e) => {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
            assert!(
                e.line >= 1 && e.line <= lines,
                "error line {} outside 1..={lines}",
                e.line
            );
            assert!(e.column >= 1, "columns are 1-based");
            assert!(!e.message.is_empty());
        }
    }
}

fn check_spans(file: &ConfigFile, list: &[Directive], lo: u32, hi: u32) {
    let mut at = lo;
    for d in list {
        assert!(d.span.start >= at && d.span.end <= hi && d.span.start < d.span.end);
        for w in file.args(d) {
            assert!(w.span.start >= d.name.span.end && w.span.end <= d.span.end);
        }
        if let Body::Block { open, close, .. } = d.body {
            assert_eq!(file.bytes[open as usize], b'{');
            assert_eq!(file.bytes[close as usize], b'}');
            check_spans(file, file.children(d), open + 1, close);
        }
        at = d.span.end;
    }
}
