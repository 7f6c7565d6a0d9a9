//! Editing nginx configuration files as bytes: splices at byte spans, the text of the lines we add,
//! and the unified diff `plan` shows.
//!
//! A [`Splice`] replaces the bytes `start..end` of a file with new bytes (an empty range inserts, an
//! empty replacement removes). [`apply`] applies a whole list at once, in memory: every byte outside
//! the spliced ranges is kept exactly — non-UTF-8 bytes, CRLF line ends, tabs, trailing spaces, a
//! missing final newline — because the file is never decoded. Spans come from the lexer/tree, which
//! record byte offsets; this module does not parse nginx syntax and does not decide *where* to edit.
//!
//! Every line we add carries [`MANAGED_MARK`]; [`managed_line`] builds such a line with the
//! indentation and line ending of a reference line, so our edits look like the file around them.
//!
//! Writing the result to disk (atomically, after a backup) is the caller's job (enc365-nginx's `store` module).

use std::ops::Range;

/// The comment every line we add to nginx configuration ends with.
pub const MANAGED_MARK: &str = "# managed by enc365-nginx";

/// Replace the bytes `start..end` of a file with `replacement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// First byte replaced (inclusive).
    pub start: usize,
    /// End of the replaced bytes (exclusive); equal to `start` for an insertion.
    pub end: usize,
    /// The bytes put in their place; empty for a removal.
    pub replacement: Vec<u8>,
}

impl Splice {
    /// Inserts `bytes` before the byte at offset `at` (`at` may be the file's length: append).
    pub fn insert(at: usize, bytes: impl Into<Vec<u8>>) -> Splice {
        Splice {
            start: at,
            end: at,
            replacement: bytes.into(),
        }
    }

    /// Removes the bytes in `range`.
    pub fn remove(range: Range<usize>) -> Splice {
        Splice {
            start: range.start,
            end: range.end,
            replacement: Vec::new(),
        }
    }

    /// Replaces the bytes in `range` with `bytes`.
    pub fn replace(range: Range<usize>, bytes: impl Into<Vec<u8>>) -> Splice {
        Splice {
            start: range.start,
            end: range.end,
            replacement: bytes.into(),
        }
    }

    /// Inserts `directive` as a managed line (see [`managed_line`]) right after the line holding
    /// byte `offset`, indented and ended like that line. This is the safe way to add a directive:
    /// the mark comments out the rest of its line, so a managed directive must end its line —
    /// never insert one in the middle of `server { listen 80; }`. When that line is the file's
    /// last and has no line ending, one is added before the new line.
    pub fn after_line(bytes: &[u8], offset: usize, directive: &str) -> Result<Splice, EditError> {
        if offset > bytes.len() {
            return Err(EditError::OutOfBounds {
                start: offset,
                end: offset,
                len: bytes.len(),
            });
        }
        let line = line_at(bytes, offset);
        let reference = &bytes[line.clone()];
        let mut text = Vec::new();
        if !reference.ends_with(b"\n") {
            text.extend_from_slice(line_ending(reference));
        }
        text.extend(managed_line(reference, directive)?);
        Ok(Splice::insert(line.end, text))
    }

    /// Whether this splice inserts without replacing anything.
    pub fn is_insertion(&self) -> bool {
        self.start == self.end
    }
}

/// Why a list of splices cannot be applied. Each one is a bug in the caller's edit plan, not in
/// the user's file; the message names the offsets so the plan can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// A splice reaches past the end of the file.
    #[error(
        "an edit covers bytes {start}..{end} but the file has only {len} bytes \
         (was the file changed since it was read? read it again and re-plan)"
    )]
    OutOfBounds {
        /// Start of the splice.
        start: usize,
        /// End of the splice.
        end: usize,
        /// The file's length.
        len: usize,
    },
    /// A splice ends before it starts.
    #[error("an edit covers bytes {start}..{end}, which ends before it starts")]
    Inverted {
        /// Start of the splice.
        start: usize,
        /// End of the splice.
        end: usize,
    },
    /// Two splices touch the same bytes, or one inserts inside bytes the other replaces.
    #[error(
        "two edits overlap: bytes {first:?} and bytes {second:?}; each byte may be changed by \
         one edit only — merge them into one"
    )]
    Overlap {
        /// The earlier splice's range.
        first: Range<usize>,
        /// The later splice's range.
        second: Range<usize>,
    },
    /// A line to add holds a line break, which would leave lines without our mark.
    #[error("a directive to add spans more than one line ({text:?}); add each line on its own")]
    MultiLine {
        /// The offending text.
        text: String,
    },
}

/// Applies every splice to `original` at once and returns the new bytes.
///
/// Offsets are all relative to `original` (not to the result of earlier splices), so the order of
/// the list does not matter — except for several insertions at the same offset, which land in the
/// order given. An insertion at the very start or end of a replaced range is allowed (it goes
/// before or after the replacement); two splices sharing a byte, or an insertion strictly inside a
/// replaced range, are rejected with [`EditError::Overlap`]. Nothing is applied unless everything
/// can be.
pub fn apply(original: &[u8], splices: &[Splice]) -> Result<Vec<u8>, EditError> {
    for s in splices {
        if s.start > s.end {
            return Err(EditError::Inverted {
                start: s.start,
                end: s.end,
            });
        }
        if s.end > original.len() {
            return Err(EditError::OutOfBounds {
                start: s.start,
                end: s.end,
                len: original.len(),
            });
        }
    }
    let mut order: Vec<&Splice> = splices.iter().collect();
    // Stable: insertions at one offset keep the caller's order, and come before a range that
    // starts there (their `end` is smaller).
    order.sort_by_key(|s| (s.start, s.end));
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let shares_bytes = b.start < a.end;
        if shares_bytes {
            return Err(EditError::Overlap {
                first: a.start..a.end,
                second: b.start..b.end,
            });
        }
    }
    let grow: usize = splices.iter().map(|s| s.replacement.len()).sum();
    let mut out = Vec::with_capacity(original.len() + grow);
    let mut pos = 0;
    for s in order {
        out.extend_from_slice(&original[pos..s.start]);
        out.extend_from_slice(&s.replacement);
        pos = s.end;
    }
    out.extend_from_slice(&original[pos..]);
    Ok(out)
}

/// The line holding byte `offset`: from just after the previous `\n` to just after the next `\n`
/// (or the end of the file). An offset at the file's end gives the last (possibly empty) line.
pub fn line_at(bytes: &[u8], offset: usize) -> Range<usize> {
    let offset = offset.min(bytes.len());
    let start = bytes[..offset]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[offset..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |i| offset + i + 1);
    start..end
}

/// The leading spaces and tabs of `line`.
pub fn indentation(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    &line[..n]
}

/// The line ending of `line`: `\r\n`, `\n`, or `\n` when it has none (the last line of a file
/// without a final newline).
pub fn line_ending(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// `text` as one nginx argument: bare when it has nothing nginx reads specially, else
/// double-quoted with `"` and `\\` escaped and line breaks and tabs written as `\\n`, `\\r`, `\\t`
/// (which nginx's tokenizer turns back into those bytes), so the argument stays on one line and
/// can never end the directive or open a block.
pub fn quote_arg(text: &str) -> String {
    let plain = !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'"' | b'\'' | b'\\' | b';' | b'{' | b'}' | b'#' | b'$')
        });
    if plain {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A whole line to insert: `directive` indented like `reference_line`, followed by one space and
/// [`MANAGED_MARK`], ended like `reference_line` (CRLF files get CRLF).
///
/// `directive` is the text as nginx should read it, e.g. `listen 443 ssl;`.
pub fn managed_line(reference_line: &[u8], directive: &str) -> Result<Vec<u8>, EditError> {
    let directive = directive.trim();
    if directive.contains(['\n', '\r']) {
        return Err(EditError::MultiLine {
            text: directive.to_string(),
        });
    }
    let mut line = indentation(reference_line).to_vec();
    line.extend_from_slice(directive.as_bytes());
    line.push(b' ');
    line.extend_from_slice(MANAGED_MARK.as_bytes());
    line.extend_from_slice(line_ending(reference_line));
    Ok(line)
}

/// Whether `line` is one we added (it ends with [`MANAGED_MARK`], before its line ending).
pub fn is_managed_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.trim_ascii_end().ends_with(MANAGED_MARK.as_bytes())
}

/// A unified diff of `old` against `new`, like `diff -u`: `--- old_name` / `+++ new_name` headers,
/// `@@` hunks with 3 lines of context, and `\ No newline at end of file` where that applies.
/// Bytes are copied as they are (a non-UTF-8 line shows as its raw bytes). Empty when the two are
/// equal.
pub fn unified_diff(old: &[u8], new: &[u8], old_name: &str, new_name: &str) -> Vec<u8> {
    if old == new {
        return Vec::new();
    }
    let diff = similar::TextDiff::from_lines(old, new);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n").into_bytes();
    let mut unified = diff.unified_diff();
    unified.context_radius(3);
    for hunk in unified.iter_hunks() {
        // The hunk's own writer copies line bytes as they are (the whole diff's writer would go
        // through `Display`, which replaces non-UTF-8 bytes).
        hunk.to_writer(&mut out)
            .expect("writing into a Vec cannot fail");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_with_nginx_syntax_are_quoted_onto_one_line() {
        assert_eq!(quote_arg("/var/lib/x/dcv/"), "/var/lib/x/dcv/");
        assert_eq!(quote_arg("/a b;{c}#/"), "\"/a b;{c}#/\"");
        assert_eq!(quote_arg("/a\"b\\c"), "\"/a\\\"b\\\\c\"");
        assert_eq!(quote_arg("/a\nb\tc"), "\"/a\\nb\\tc\"");
        assert!(managed_line(b"    x\n", &format!("alias {};", quote_arg("/a\r\nb"))).is_ok());
    }

    #[test]
    fn insert_remove_and_replace_in_one_pass() {
        let text = b"server {\n    listen 80;\n    server_name a;\n}\n";
        assert_eq!(&text[13..23], b"listen 80;");
        assert_eq!(&text[24..43], b"    server_name a;\n");
        let splices = [
            Splice::replace(20..22, "8080"),
            Splice::insert(24, "    listen 443 ssl;\n"),
            Splice::remove(24..43),
        ];
        let out = apply(text, &splices).unwrap();
        assert_eq!(out, b"server {\n    listen 8080;\n    listen 443 ssl;\n}\n");
    }

    #[test]
    fn order_of_the_list_does_not_matter() {
        let text = b"abcdef";
        let a = [Splice::replace(0..1, "A"), Splice::replace(4..6, "EF")];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(apply(text, &a).unwrap(), b"AbcdEF");
        assert_eq!(apply(text, &b).unwrap(), b"AbcdEF");
    }

    #[test]
    fn insertions_at_one_offset_keep_their_order_and_sit_around_ranges() {
        let text = b"0123";
        let splices = [
            Splice::insert(1, "x"),
            Splice::replace(1..3, "R"),
            Splice::insert(1, "y"),
            Splice::insert(3, "z"),
            Splice::insert(4, "!"),
        ];
        assert_eq!(apply(text, &splices).unwrap(), b"0xyRz3!");
    }

    #[test]
    fn overlapping_splices_are_rejected_and_nothing_applied() {
        let text = b"0123456789";
        let err = apply(text, &[Splice::replace(2..5, "a"), Splice::remove(4..6)]).unwrap_err();
        assert_eq!(
            err,
            EditError::Overlap {
                first: 2..5,
                second: 4..6
            }
        );
        assert!(err.to_string().contains("merge them"));
        let err = apply(text, &[Splice::replace(2..5, "a"), Splice::insert(3, "b")]).unwrap_err();
        assert_eq!(
            err,
            EditError::Overlap {
                first: 2..5,
                second: 3..3
            }
        );
        let err = apply(text, &[Splice::remove(2..5), Splice::remove(2..5)]).unwrap_err();
        assert!(matches!(err, EditError::Overlap { .. }));
    }

    #[test]
    fn out_of_bounds_and_inverted_splices_are_rejected() {
        let text = b"abc";
        assert_eq!(
            apply(text, &[Splice::insert(4, "x")]).unwrap_err(),
            EditError::OutOfBounds {
                start: 4,
                end: 4,
                len: 3
            }
        );
        let inverted = Splice {
            start: 2,
            end: 1,
            replacement: Vec::new(),
        };
        assert_eq!(
            apply(text, &[inverted]).unwrap_err(),
            EditError::Inverted { start: 2, end: 1 }
        );
        assert_eq!(apply(text, &[Splice::insert(3, "d")]).unwrap(), b"abcd");
        assert_eq!(apply(text, &[]).unwrap(), b"abc");
    }

    #[test]
    fn bytes_outside_the_splice_stay_identical_in_non_utf8_crlf_files() {
        // Latin-1 comment, CRLF endings, a tab, trailing spaces, no final newline.
        let mut text = b"# caf\xe9 \xff\xfe\r\nserver {\r\n\tlisten 80;   \r\n".to_vec();
        text.extend_from_slice(b"\tserver_name \xc3\xa9.test;\r\n}");
        let at = text.windows(4).position(|w| w == b"\tser").unwrap();
        let reference = &text[line_at(&text, at)];
        let line = managed_line(reference, "listen 443 ssl;").unwrap();
        assert_eq!(line, b"\tlisten 443 ssl; # managed by enc365-nginx\r\n");
        let out = apply(&text, &[Splice::insert(at, line.clone())]).unwrap();
        assert_eq!(&out[..at], &text[..at]);
        assert_eq!(&out[at..at + line.len()], &line[..]);
        assert_eq!(&out[at + line.len()..], &text[at..]);
    }

    #[test]
    fn managed_line_takes_indentation_and_ending_of_reference() {
        assert_eq!(
            managed_line(
                b"        root /var/www;\n",
                "ssl_certificate /x/fullchain.pem;"
            )
            .unwrap(),
            b"        ssl_certificate /x/fullchain.pem; # managed by enc365-nginx\n"
        );
        assert_eq!(
            managed_line(b"}", "  include snippet.conf;  ").unwrap(),
            b"include snippet.conf; # managed by enc365-nginx\n"
        );
        assert!(matches!(
            managed_line(b"  x;\n", "a;\nb;"),
            Err(EditError::MultiLine { .. })
        ));
    }

    #[test]
    fn managed_lines_are_recognised() {
        assert!(is_managed_line(
            b"    listen 443 ssl; # managed by enc365-nginx\r\n"
        ));
        assert!(is_managed_line(
            &managed_line(b"\t\n", "http2 on;").unwrap()
        ));
        assert!(!is_managed_line(b"    listen 443 ssl;\n"));
        assert!(!is_managed_line(
            b"# managed by enc365-nginx: no, edited by hand\n"
        ));
    }

    #[test]
    fn line_at_finds_the_surrounding_line() {
        let text = b"a\nbcd\r\nlast";
        assert_eq!(line_at(text, 0), 0..2);
        assert_eq!(line_at(text, 3), 2..7);
        assert_eq!(line_at(text, 6), 2..7);
        assert_eq!(line_at(text, 8), 7..11);
        assert_eq!(line_at(text, 11), 7..11);
        assert_eq!(line_at(b"x\n", 2), 2..2);
    }

    #[test]
    fn unified_diff_has_headers_hunks_and_three_lines_of_context() {
        let old: Vec<u8> = (1..=12)
            .map(|i| format!("line {i}\n"))
            .collect::<String>()
            .into();
        let new = String::from_utf8(old.clone())
            .unwrap()
            .replace("line 6\n", "line 6\nadded\n");
        let diff = unified_diff(&old, new.as_bytes(), "a/site.conf", "b/site.conf");
        let expected = "--- a/site.conf\n+++ b/site.conf\n@@ -4,6 +4,7 @@\n \
                        line 4\n line 5\n line 6\n+added\n line 7\n line 8\n line 9\n";
        assert_eq!(String::from_utf8(diff).unwrap(), expected);
        assert!(unified_diff(&old, &old, "a", "b").is_empty());
    }

    #[test]
    fn unified_diff_keeps_raw_bytes_and_marks_missing_newline() {
        let old = b"# \xe9t\xe9\r\nlisten 80;";
        let new = b"# \xe9t\xe9\r\nlisten 80;\nlisten 443 ssl;\n";
        let diff = unified_diff(old, new, "old", "new");
        let expected: &[u8] = b"--- old\n+++ new\n@@ -1,2 +1,3 @@\n # \xe9t\xe9\r\n-listen 80;\n\
              \\ No newline at end of file\n+listen 80;\n+listen 443 ssl;\n";
        assert_eq!(diff, expected, "{}", String::from_utf8_lossy(&diff));
    }

    #[test]
    fn unified_diff_matches_diff_u() {
        let dir = tempfile::tempdir().unwrap();
        let old: String = (1..=30)
            .map(|i| format!("    directive_{i} value;\n"))
            .collect();
        let new = old
            .replace(
                "directive_3 value;\n",
                "directive_3 value;\n    listen 443 ssl;\n",
            )
            .replace("    directive_20 value;\n", "")
            .replace("directive_28 value", "directive_28 other");
        std::fs::write(dir.path().join("old"), &old).unwrap();
        std::fs::write(dir.path().join("new"), &new).unwrap();
        let out = std::process::Command::new("diff")
            .arg("-u")
            .args([dir.path().join("old"), dir.path().join("new")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "diff found differences");
        let ours = unified_diff(old.as_bytes(), new.as_bytes(), "old", "new");
        // diff -u puts timestamps in its headers; compare the hunks.
        let theirs: Vec<&[u8]> = out
            .stdout
            .split_inclusive(|b| *b == b'\n')
            .skip(2)
            .collect();
        let ours_hunks: Vec<&[u8]> = ours.split_inclusive(|b| *b == b'\n').skip(2).collect();
        assert_eq!(
            ours_hunks,
            theirs,
            "ours:\n{}\ndiff -u:\n{}",
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(ours.starts_with(b"--- old\n+++ new\n@@ "));
    }

    #[test]
    fn after_line_adds_a_whole_managed_line_below_the_reference() {
        let text = b"server {\r\n\tserver_name a.test;\r\n}\r\n";
        let at = text.windows(11).position(|w| w == b"server_name").unwrap();
        let splice = Splice::after_line(text, at, "listen 443 ssl;").unwrap();
        let out = apply(text, &[splice]).unwrap();
        assert_eq!(
            out,
            b"server {\r\n\tserver_name a.test;\r\n\tlisten 443 ssl; # managed by enc365-nginx\r\n}\r\n"
        );
        // The last line of a file without a final newline gets one first.
        let text = b"    include a.conf;";
        let out = apply(
            text,
            &[Splice::after_line(text, 0, "include b.conf;").unwrap()],
        )
        .unwrap();
        assert_eq!(
            out,
            b"    include a.conf;\n    include b.conf; # managed by enc365-nginx\n"
        );
        assert!(matches!(
            Splice::after_line(text, 99, "x;"),
            Err(EditError::OutOfBounds { .. })
        ));
    }
}
