//! Taking our lines back out of a configuration file: every line that ends with
//! [`MANAGED_MARK`](crate::edit::MANAGED_MARK) inside given byte ranges (a site's server blocks)
//! is removed, and the certificate lines our edit replaced are put back from the file as it was
//! before (a three-way merge of lines), so where nothing else changed the result is byte for byte
//! the file before our first edit.
//!
//! Not here: finding the ranges or the earlier copy (the tool's `delete` does), or writing files.

use std::ops::Range;

use similar::{Algorithm, ChangeTag};

use crate::edit::is_managed_line;

/// What [`strip_managed`] made of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    /// The bytes without our lines.
    pub bytes: Vec<u8>,
    /// How many lines went.
    pub removed: usize,
    /// The ranges given, as offsets into [`Stripped::bytes`].
    pub ranges: Vec<Range<usize>>,
}

/// `bytes` without the managed lines that start inside one of `ranges`.
pub fn strip_managed(bytes: &[u8], ranges: &[Range<usize>]) -> Stripped {
    let mut out = Vec::with_capacity(bytes.len());
    let mut removed = 0;
    // (offset in `bytes`, bytes removed before it), at each removal.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let inside = ranges.iter().any(|r| r.contains(&start));
        if inside && is_managed_line(line) {
            removed += 1;
            let before = cuts.last().map_or(0, |c| c.1);
            cuts.push((start, before + line.len()));
        } else {
            out.extend_from_slice(line);
        }
        start += line.len();
    }
    let shift = |at: usize| {
        cuts.iter()
            .rev()
            .find(|c| c.0 < at)
            .map_or(at, |c| at - c.1)
    };
    let ranges = ranges
        .iter()
        .map(|r| shift(r.start)..shift(r.end))
        .collect();
    Stripped {
        bytes: out,
        removed,
        ranges,
    }
}

/// Whether a line is an `ssl_certificate` or `ssl_certificate_key` directive: the lines our edit
/// replaces in a block that already had TLS.
fn is_certificate_line(line: &[u8]) -> bool {
    let Some(rest) = line.trim_ascii_start().strip_prefix(b"ssl_certificate") else {
        return false;
    };
    let rest = rest.strip_prefix(b"_key").unwrap_or(rest);
    rest.first().is_some_and(|b| b.is_ascii_whitespace())
}

/// `stripped` (a file with our lines taken out) with the certificate lines of `before` (the file
/// before our first edit) that are missing from it put back where they were, inside `ranges` (of
/// `stripped`) only. Other differences (the user's own edits since, other sites' blocks) are
/// kept as they are in `stripped`.
pub fn restore_replaced(before: &[u8], stripped: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let diff = similar::TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .diff_lines(before, stripped);
    let mut out = Vec::with_capacity(stripped.len() + 256);
    let mut at = 0;
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            let line: &[u8] = change.value();
            match change.tag() {
                ChangeTag::Equal | ChangeTag::Insert => {
                    out.extend_from_slice(line);
                    at += line.len();
                }
                ChangeTag::Delete => {
                    let inside = ranges.iter().any(|r| r.start < at && at < r.end);
                    if inside && is_certificate_line(line) {
                        out.extend_from_slice(line);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one block's range is the common case
mod tests {
    use super::*;

    #[test]
    fn managed_lines_inside_the_ranges_go_and_others_stay() {
        let text = b"server {\n    listen 80;\n    listen 443 ssl; # managed by enc365-nginx\n}\nserver {\n    listen 443 ssl; # managed by enc365-nginx\n}\n";
        let second = text.windows(8).rposition(|w| w == b"server {").unwrap();
        let got = strip_managed(text, &[0..second]);
        assert_eq!(got.removed, 1);
        assert_eq!(got.ranges, vec![0..second - 46]);
        assert_eq!(
            got.bytes,
            b"server {\n    listen 80;\n}\nserver {\n    listen 443 ssl; # managed by enc365-nginx\n}\n"
        );
    }

    #[test]
    fn replaced_certificate_lines_come_back_and_other_edits_stay() {
        let before = b"server {\n    listen 443 ssl;\n    ssl_certificate /old/c.pem; # managed by Certbot\n    ssl_certificate_key /old/k.pem;\n    root /a;\n}\n";
        // Our edit replaced the two lines (now stripped again); the user changed the root.
        let stripped = b"server {\n    listen 443 ssl;\n    root /b;\n}\n";
        assert_eq!(
            restore_replaced(before, stripped, &[0..stripped.len()]),
            b"server {\n    listen 443 ssl;\n    ssl_certificate /old/c.pem; # managed by Certbot\n    ssl_certificate_key /old/k.pem;\n    root /b;\n}\n"
        );
    }
}
