//! Writes the `discover --json` document straight into bytes, byte for byte what serde_json's
//! pretty printer makes of [`super::DiscoverJson`] (two-space indent, `[]` for an empty list,
//! escapes as serde_json writes them), without building the document first.
//!
//! On a 10,000-site host the document is over 10 MB; going through serde's data model cost as
//! much as reading the configuration. Only the success document is written here; the error
//! document (small) still goes through serde. The test `fast_json_matches_serde` (and every
//! fixture in the integration tests) holds the two to the same bytes.

use std::io::{self, Write};
use std::path::Path;

use crate::discovery::Discovery;
use crate::names::Name;

/// Bytes buffered before they go to the writer: large writes, bounded memory.
const CHUNK: usize = 1 << 18;

/// Writes the document for `found` (and a final newline) to `sink`.
pub(super) fn write_document(
    nginx_conf: &str,
    found: &Discovery,
    sink: &mut impl Write,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(CHUNK + (CHUNK >> 2));
    out.extend_from_slice(b"{\n  \"nginx_conf\": ");
    string(&mut out, nginx_conf);
    out.extend_from_slice(b",\n  \"files\": ");
    if found.config.files.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        out.push(b'[');
        for (i, path) in found.config.paths().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            path_string(&mut out, path);
            flush_when_full(&mut out, sink)?;
        }
        out.extend_from_slice(b"\n  ]");
    }
    out.extend_from_slice(b",\n  \"servers\": ");
    if found.servers.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        out.push(b'[');
        servers(&mut out, found, sink)?;
        out.extend_from_slice(b"\n  ]");
    }
    out.extend_from_slice(b",\n  \"errors\": []\n}\n");
    sink.write_all(&out)
}

/// Every server object, in order: a second thread renders every other run of servers while
/// this one renders the rest and writes them all out in order (memory stays a few runs).
fn servers(out: &mut Vec<u8>, found: &Discovery, sink: &mut impl Write) -> io::Result<()> {
    const RUN: usize = 128;
    let runs = found.servers.len().div_ceil(RUN);
    let render = |run: usize, out: &mut Vec<u8>| {
        for i in run * RUN..((run + 1) * RUN).min(found.servers.len()) {
            out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            server(out, found, i);
        }
    };
    if runs < 4 {
        for run in 0..runs {
            render(run, out);
            flush_when_full(out, sink)?;
        }
        return Ok(());
    }
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for run in (1..runs).step_by(2) {
                let mut rendered = Vec::with_capacity(RUN * 1024);
                render(run, &mut rendered);
                if sender.send(rendered).is_err() {
                    break;
                }
            }
        });
        let receiver = receiver;
        for run in 0..runs {
            match (run % 2 == 1).then(|| receiver.recv().ok()).flatten() {
                Some(rendered) => out.extend_from_slice(&rendered),
                None => render(run, out),
            }
            flush_when_full(out, sink)?;
        }
        Ok(())
    })
}

fn flush_when_full(out: &mut Vec<u8>, sink: &mut impl Write) -> io::Result<()> {
    if out.len() >= CHUNK {
        sink.write_all(out)?;
        out.clear();
    }
    Ok(())
}

/// One server object, at the indent of an item of `servers`.
fn server(out: &mut Vec<u8>, found: &Discovery, i: usize) {
    let s = &found.servers[i];
    let (file, line) = found.location(i);
    out.extend_from_slice(b"{\n      \"file\": ");
    path_string(out, file);
    out.extend_from_slice(b",\n      \"line\": ");
    number(out, line);
    out.extend_from_slice(b",\n      \"listen\": ");
    list(out, s.listens.iter().map(|l| l.text.as_str()));
    out.extend_from_slice(b",\n      \"server_name\": ");
    list(out, s.server_names.iter().map(String::as_str));
    out.extend_from_slice(b",\n      \"root\": ");
    optional(out, s.root.as_deref());
    out.extend_from_slice(b",\n      \"ssl_certificate\": ");
    optional(out, s.ssl_certificates.first().map(String::as_str));
    out.extend_from_slice(b",\n      \"ssl_certificate_key\": ");
    optional(out, s.ssl_certificate_keys.first().map(String::as_str));
    out.extend_from_slice(b",\n      \"names\": ");
    names(out, &found.names[i]);
    let a = &found.assessments[i];
    out.extend_from_slice(b",\n      \"needs_certificate\": ");
    out.extend_from_slice(if a.needs_certificate {
        b"true"
    } else {
        b"false"
    });
    out.extend_from_slice(b",\n      \"reason\": ");
    string(out, &a.reason);
    out.extend_from_slice(b"\n    }");
}

/// A list of strings, as a value of a server's field.
fn list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a str>) {
    let mut any = false;
    for item in items {
        out.extend_from_slice(if any { b",\n        " } else { b"[\n        " });
        string(out, item);
        any = true;
    }
    out.extend_from_slice(if any { b"\n      ]" } else { b"[]" });
}

/// The classified names, as a value of a server's field.
fn names(out: &mut Vec<u8>, names: &[Name]) {
    if names.is_empty() {
        out.extend_from_slice(b"[]");
        return;
    }
    for (i, n) in names.iter().enumerate() {
        out.extend_from_slice(if i == 0 {
            b"[\n        {\n          \"name\": "
        } else {
            b",\n        {\n          \"name\": "
        });
        string(out, &n.name);
        out.extend_from_slice(if n.certifiable {
            b",\n          \"certifiable\": true"
        } else {
            b",\n          \"certifiable\": false"
        });
        if n.wildcard {
            out.extend_from_slice(b",\n          \"wildcard\": true");
        }
        if let Some(reason) = &n.reason {
            out.extend_from_slice(b",\n          \"reason\": ");
            string(out, reason);
        }
        out.extend_from_slice(b"\n        }");
    }
    out.extend_from_slice(b"\n      ]");
}

fn optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A path as a JSON string (non-UTF-8 bytes replaced, as `to_string_lossy` does).
fn path_string(out: &mut Vec<u8>, path: &Path) {
    match path.to_str() {
        Some(text) => string(out, text),
        None => string(out, &path.to_string_lossy()),
    }
}

fn number(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON string: `"` and `\` escaped, control bytes as serde_json writes them (`\n`, `\t`,
/// `\u001b`, …); everything else (UTF-8 included) as is.
fn string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut from = 0;
    // Eight bytes at a time past the (nearly always clean) stretches.
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        let i = i - 1;
        out.extend_from_slice(&bytes[from..i]);
        from = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `word` is a control byte (below 0x20), `"` or `\`.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    // A byte below 0x20 borrows when 0x20 is taken from it (and had its high bit clear).
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    control
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written document is serde_json's, byte for byte, on a configuration with every
    /// kind of field: empty lists, nulls, wildcards, reasons, escapes and non-ASCII.
    #[test]
    fn fast_json_matches_serde() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            "events {}\nhttp {\n  server { }\n  server {\n    listen 80;\n    listen [::]:443 ssl;\n    \
             server_name .wild.test \"q\\\"uote.test\" 'tab\\there' 例子.test _ ~^re$ $host;\n    \
             root \"/srv/a\\\\b\";\n    ssl_certificate /nonexistent/c\u{1b}.pem;\n    \
             ssl_certificate_key /nonexistent/k.pem;\n  }\n  server { server_name a.test; }\n}\n",
        )
        .unwrap();
        let found = crate::discovery::discover(&conf, 1_700_000_000, 30).unwrap();
        let nginx_conf = conf.display().to_string();
        let mut fast = Vec::new();
        write_document(&nginx_conf, &found, &mut fast).unwrap();
        let mut slow =
            serde_json::to_vec_pretty(&super::super::to_json(nginx_conf, &found)).unwrap();
        slow.push(b'\n');
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(slow).unwrap()
        );
    }

    #[test]
    fn numbers_and_escapes() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 4_294_967_295] {
            number(&mut out, n);
            out.push(b' ');
        }
        string(&mut out, "a\u{1}\u{8}\u{c}\u{7f}é\"\\");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 7 10 4294967295 \"a\\u0001\\b\\f\u{7f}é\\\"\\\\\""
        );
        // Every byte at every position of an eight-byte word, against the plain rule.
        for b in 0u8..=0x7f {
            for at in 0..12 {
                let mut text = vec![b'x'; 12];
                text[at] = b;
                let text = String::from_utf8(text).unwrap();
                let mut fast = Vec::new();
                string(&mut fast, &text);
                let slow = serde_json::to_vec(&text).unwrap();
                assert_eq!(fast, slow, "byte {b:#x} at {at}");
            }
        }
    }
}
