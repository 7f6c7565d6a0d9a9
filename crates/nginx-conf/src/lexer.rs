//! The byte-exact tokenizer of nginx configuration, mirroring nginx's `ngx_conf_read_token` rule for
//! rule, so that "does nginx accept this?" has one answer.
//!
//! It works on bytes, not `str`: a configuration file may hold any byte (Latin-1 comments, GBK
//! text), and nginx reads them all. It splits a file into *statements* — the words of one directive
//! and what ended it (`;`, `{`, `}` or the end of the file) — exactly where nginx does:
//!
//! - a word ends at a space, tab, CR, LF, `;` or `{`; a `}` or `#` inside a word is part of it;
//! - `"…"` and `'…'` quote a word only at its start; after the closing quote nginx demands a space,
//!   `;`, `{` or `)` (which then starts a word of its own);
//! - a backslash makes the next byte literal; `${var}` keeps its braces inside the word;
//! - `#` starts a comment only where a word could start, and runs to the end of the line;
//! - a word or comment of 4096 bytes or more is "too long" for nginx and so an error here;
//! - the body of a `*_by_lua_block { … }` is Lua, read as one raw block with Lua's rules (strings,
//!   long brackets, `--` comments), as the Lua module reads it.
//!
//! Every word keeps its byte span, so the tree above can splice the original bytes. What the words
//! *mean* (blocks, includes, contexts) is left to [`crate::tree`].

use std::borrow::Cow;

/// nginx's configuration read buffer (`NGX_CONF_BUFFER`): no word or comment may fill it.
const NGX_CONF_BUFFER: usize = 4096;

/// A byte range `start..end` in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The bytes of this span in `src`.
    pub fn slice<'a>(&self, src: &'a [u8]) -> &'a [u8] {
        &src[self.start as usize..self.end as usize]
    }
}

/// One word (directive name or argument) as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// The raw bytes in the file, quotes included.
    pub span: Span,
    /// The quote character (`"` or `'`) when the word was quoted.
    pub quote: Option<u8>,
    /// Whether the raw bytes contain a backslash (so the value differs from the raw text).
    pub escaped: bool,
}

impl Word {
    /// The word's value as nginx sees it: quotes removed, `\"` `\'` `\\` unescaped, `\t` `\r` `\n`
    /// turned into control bytes, any other backslash kept.
    pub fn value<'a>(&self, src: &'a [u8]) -> Cow<'a, [u8]> {
        let raw = self.span.slice(src);
        let inner = if self.quote.is_some() {
            &raw[1..raw.len() - 1]
        } else {
            raw
        };
        if !self.escaped {
            return Cow::Borrowed(inner);
        }
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'\\' && i + 1 < inner.len() {
                match inner[i + 1] {
                    b'"' | b'\'' | b'\\' => {
                        out.push(inner[i + 1]);
                        i += 2;
                        continue;
                    }
                    b't' => {
                        out.push(b'\t');
                        i += 2;
                        continue;
                    }
                    b'r' => {
                        out.push(b'\r');
                        i += 2;
                        continue;
                    }
                    b'n' => {
                        out.push(b'\n');
                        i += 2;
                        continue;
                    }
                    _ => {}
                }
            }
            out.push(inner[i]);
            i += 1;
        }
        Cow::Owned(out)
    }

    /// The value as text, with any non-UTF-8 byte replaced (for messages and JSON).
    pub fn text(&self, src: &[u8]) -> String {
        match self.value(src) {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(b).into_owned(),
            },
            Cow::Owned(v) => String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

/// What ended a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    /// `;` at this offset: a simple directive.
    Semicolon(u32),
    /// `{` at this offset: a block directive whose children follow.
    BlockOpen(u32),
    /// A `*_by_lua_block`: `{` at `open`, its matching `}` at `close`, the Lua in between.
    RawBlock {
        /// Offset of the opening brace.
        open: u32,
        /// Offset of the closing brace.
        close: u32,
    },
    /// `}` at this offset, closing the innermost open block (the statement has no words).
    BlockClose(u32),
    /// The end of the file (the statement has no words).
    EndOfFile,
}

/// Why the bytes are not valid nginx configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A byte nginx does not accept here (e.g. right after a closing quote, or `;` with no directive).
    Unexpected(u8),
    /// The file ended in the middle of a directive.
    UnexpectedEof,
    /// A quoted string was never closed; the error points at its opening quote.
    UnterminatedQuote(u8),
    /// A `*_by_lua_block` was never closed; the error points at its `{`.
    UnterminatedLuaBlock,
    /// A word or comment of 4096 bytes or more; the error points at its start.
    TooLong,
}

/// A lexing error at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// Offset of the offending byte.
    pub offset: u32,
    /// What is wrong.
    pub kind: LexErrorKind,
}

impl LexError {
    /// What nginx expected, in words, for `file:line:column: …` messages.
    pub fn message(&self) -> String {
        match self.kind {
            LexErrorKind::Unexpected(b'}') => {
                "unexpected \"}\": expected \";\" to end the directive before it".to_string()
            }
            LexErrorKind::Unexpected(ch @ (b';' | b'{')) => {
                format!(
                    "unexpected \"{}\": expected a directive name before it",
                    ch as char
                )
            }
            LexErrorKind::Unexpected(ch) => format!(
                "unexpected {} after a quoted string: expected a space, \";\" or \"{{\"",
                describe_byte(ch)
            ),
            LexErrorKind::UnexpectedEof => {
                "unexpected end of file: expected \";\" or \"}\"".to_string()
            }
            LexErrorKind::UnterminatedQuote(q) => format!(
                "unterminated quoted string: expected a closing {} before the end of the file",
                if q == b'"' { "'\"'" } else { "\"'\"" }
            ),
            LexErrorKind::UnterminatedLuaBlock => {
                "unterminated Lua block: expected \"}\" before the end of the file".to_string()
            }
            LexErrorKind::TooLong => format!(
                "too long parameter (nginx's limit is {} bytes): expected a shorter word or comment, \
                 or a missing closing quote",
                NGX_CONF_BUFFER - 1
            ),
        }
    }
}

/// A byte for a message: printable ASCII quoted, anything else as hex.
fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("\"{}\"", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Splits one file's bytes into statements. Comments are collected on the side.
#[derive(Debug)]
pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    /// Spans of the `#` comments seen so far (without the line end).
    pub comments: Vec<Span>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The bytes an unquoted word must look at: blanks, `;`, `{`, `\\` and `$`.
const WORD_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let special = *b" \t\r\n;{\\$";
    let mut i = 0;
    while i < special.len() {
        table[special[i] as usize] = true;
        i += 1;
    }
    table
};

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub fn new(src: &'a [u8]) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            comments: Vec::new(),
        }
    }

    /// Reads the next statement, as `ngx_conf_read_token` reads the next directive: its words
    /// (directive name and arguments) are appended to `words`, which the caller passes in empty,
    /// and what ended it is returned.
    pub fn next_statement(&mut self, words: &mut Vec<Word>) -> Result<Terminator, LexError> {
        let src = self.src;
        loop {
            // Between words: skip blanks, take comments, find the start of the next word.
            let Some(&ch) = src.get(self.pos) else {
                if words.is_empty() {
                    return Ok(Terminator::EndOfFile);
                }
                return Err(LexError {
                    offset: src.len() as u32,
                    kind: LexErrorKind::UnexpectedEof,
                });
            };
            let at = self.pos;
            match ch {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    // A run of blanks (indentation) in one tight loop.
                    let mut end = at + 1;
                    while end < src.len() && is_space(src[end]) {
                        end += 1;
                    }
                    self.pos = end;
                }
                b';' | b'{' => {
                    self.pos += 1;
                    if words.is_empty() {
                        return Err(LexError {
                            offset: at as u32,
                            kind: LexErrorKind::Unexpected(ch),
                        });
                    }
                    if ch == b';' {
                        return Ok(Terminator::Semicolon(at as u32));
                    }
                    return self.block_open(words[0], at);
                }
                b'}' => {
                    self.pos += 1;
                    if !words.is_empty() {
                        return Err(LexError {
                            offset: at as u32,
                            kind: LexErrorKind::Unexpected(ch),
                        });
                    }
                    return Ok(Terminator::BlockClose(at as u32));
                }
                b'#' => {
                    let end = memchr_nl(src, at);
                    self.check_length(at, end)?;
                    self.comments.push(Span::new(at, end));
                    self.pos = end;
                }
                b'"' | b'\'' => {
                    let word = self.quoted_word(at, ch)?;
                    words.push(word);
                    // nginx's need_space: only a blank, ";", "{" or ")" may follow.
                    match src.get(self.pos) {
                        None => {
                            return Err(LexError {
                                offset: src.len() as u32,
                                kind: LexErrorKind::UnexpectedEof,
                            });
                        }
                        Some(&next) if is_space(next) || matches!(next, b';' | b'{' | b')') => {}
                        Some(&next) => {
                            return Err(LexError {
                                offset: self.pos as u32,
                                kind: LexErrorKind::Unexpected(next),
                            });
                        }
                    }
                }
                _ => {
                    let word = self.bare_word(at)?;
                    words.push(word);
                }
            }
        }
    }

    /// A `{` ended a statement: an ordinary block, or the raw body of a `*_by_lua_block`.
    fn block_open(&mut self, name: Word, at: usize) -> Result<Terminator, LexError> {
        let is_lua = name.quote.is_none()
            && !name.escaped
            && name.span.slice(self.src).ends_with(b"_by_lua_block");
        if !is_lua {
            return Ok(Terminator::BlockOpen(at as u32));
        }
        let close = lua_block_end(self.src, at + 1).ok_or(LexError {
            offset: at as u32,
            kind: LexErrorKind::UnterminatedLuaBlock,
        })?;
        self.pos = close + 1;
        Ok(Terminator::RawBlock {
            open: at as u32,
            close: close as u32,
        })
    }

    /// An unquoted word starting at `start`: runs to a blank, `;` or `{` (a `{` right after `$`
    /// belongs to the word, as in `${var}`); a backslash makes the next byte literal.
    fn bare_word(&mut self, start: usize) -> Result<Word, LexError> {
        let src = self.src;
        let mut i = start;
        let mut escaped = false;
        let mut variable = false;
        while i < src.len() {
            let ch = src[i];
            // Most bytes of a word are none of the five that matter here.
            if !WORD_SPECIAL[usize::from(ch)] {
                variable = false;
                i += 1;
                continue;
            }
            if ch == b'\\' {
                escaped = true;
                variable = false;
                i += 2;
                continue;
            }
            if ch == b'{' && variable {
                i += 1;
                continue;
            }
            variable = ch == b'$';
            if is_space(ch) || ch == b';' || ch == b'{' {
                break;
            }
            i += 1;
        }
        let end = i.min(src.len());
        if end == src.len() {
            self.check_length(start, end)?;
            return Err(LexError {
                offset: src.len() as u32,
                kind: LexErrorKind::UnexpectedEof,
            });
        }
        self.check_length(start, end)?;
        self.pos = end;
        Ok(Word {
            span: Span::new(start, end),
            quote: None,
            escaped,
        })
    }

    /// A quoted word whose opening quote is at `start`.
    fn quoted_word(&mut self, start: usize, quote: u8) -> Result<Word, LexError> {
        let src = self.src;
        let mut i = start + 1;
        let mut escaped = false;
        while i < src.len() {
            let ch = src[i];
            if ch == b'\\' {
                escaped = true;
                i += 2;
                continue;
            }
            if ch == quote {
                // nginx counts a quoted word from after its opening quote.
                self.check_length(start + 1, i)?;
                self.pos = i + 1;
                return Ok(Word {
                    span: Span::new(start, i + 1),
                    quote: Some(quote),
                    escaped,
                });
            }
            i += 1;
        }
        self.check_length(start + 1, src.len())?;
        Err(LexError {
            offset: start as u32,
            kind: LexErrorKind::UnterminatedQuote(quote),
        })
    }

    /// nginx fails when one word or comment fills its whole 4096-byte read buffer before the file
    /// ends. `start` is where nginx's token starts and `end` where it stopped.
    fn check_length(&self, start: usize, end: usize) -> Result<(), LexError> {
        if end - start >= NGX_CONF_BUFFER && start + NGX_CONF_BUFFER < self.src.len() {
            return Err(LexError {
                offset: start as u32,
                kind: LexErrorKind::TooLong,
            });
        }
        Ok(())
    }
}

/// Offset of the next LF at or after `from`, or the end of `src`.
fn memchr_nl(src: &[u8], from: usize) -> usize {
    src[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(src.len(), |p| from + p)
}

/// Finds the `}` that closes a Lua block whose body starts at `from`, reading Lua as the Lua module
/// does: braces nest; strings (`'…'`, `"…"` with backslash escapes), long brackets (`[[…]]`,
/// `[==[…]==]`) and comments (`-- …`, `--[[…]]`) hide braces.
fn lua_block_end(src: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = from;
    while i < src.len() {
        match src[i] {
            b'{' => depth += 1,
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < src.len() && src[i] != q {
                    if src[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'[' => {
                if let Some(level) = long_bracket_level(src, i) {
                    i = long_bracket_end(src, i + level + 2, level)?;
                }
            }
            b'-' if src.get(i + 1) == Some(&b'-') => {
                i += 2;
                if src.get(i) == Some(&b'[')
                    && let Some(level) = long_bracket_level(src, i)
                {
                    i = long_bracket_end(src, i + level + 2, level)?;
                } else {
                    i = memchr_nl(src, i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// If `src[at..]` opens a Lua long bracket (`[`, any number of `=`, `[`), its level.
fn long_bracket_level(src: &[u8], at: usize) -> Option<usize> {
    let mut level = 0;
    while src.get(at + 1 + level) == Some(&b'=') {
        level += 1;
    }
    (src.get(at + 1 + level) == Some(&b'[')).then_some(level)
}

/// Offset of the last byte of the long bracket of `level` closing after `from`.
fn long_bracket_end(src: &[u8], from: usize, level: usize) -> Option<usize> {
    let mut i = from;
    while i < src.len() {
        if src[i] == b']' {
            let mut j = i + 1;
            let mut l = 0;
            while src.get(j) == Some(&b'=') {
                j += 1;
                l += 1;
            }
            if l == level && src.get(j) == Some(&b']') {
                return Some(j);
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(src: &[u8]) -> Result<Vec<(Vec<String>, Terminator)>, LexError> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let mut words = Vec::new();
            let end = lx.next_statement(&mut words)?;
            out.push((words.iter().map(|w| w.text(src)).collect(), end));
            if end == Terminator::EndOfFile {
                return Ok(out);
            }
        }
    }

    fn words(src: &str) -> Vec<Vec<String>> {
        statements(src.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(w, _)| w)
            .collect()
    }

    #[test]
    fn splits_directives_and_blocks() {
        let src = b"user www;\nhttp {\n  server { listen 80; }\n}\n";
        let st = statements(src).unwrap();
        assert_eq!(st[0].0, ["user", "www"]);
        assert_eq!(st[0].1, Terminator::Semicolon(8));
        assert_eq!(st[1].0, ["http"]);
        assert!(matches!(st[1].1, Terminator::BlockOpen(15)));
        assert_eq!(st[3].0, ["listen", "80"]);
        assert!(matches!(st[4].1, Terminator::BlockClose(_)));
        assert!(matches!(st[5].1, Terminator::BlockClose(_)));
        assert_eq!(st[6].1, Terminator::EndOfFile);
    }

    #[test]
    fn quotes_and_escapes_follow_nginx() {
        assert_eq!(
            words(r#"a "b c" 'd;e' f\"g "h\"i" "\t" x\y;"#)[0],
            ["a", "b c", "d;e", "f\"g", "h\"i", "\t", "x\\y"]
        );
    }

    #[test]
    fn hash_and_brace_inside_words_are_not_special() {
        assert_eq!(words("a b#c d}e;")[0], ["a", "b#c", "d}e"]);
        assert_eq!(words("set $a ${b}c;")[0], ["set", "$a", "${b}c"]);
    }

    #[test]
    fn comments_only_where_a_word_can_start() {
        let src = b"# top { ; }\na b; # trailing } {\n";
        let mut lx = Lexer::new(src);
        let mut words = Vec::new();
        lx.next_statement(&mut words).unwrap();
        assert_eq!(words.len(), 2);
        assert_eq!(
            lx.next_statement(&mut Vec::new()).unwrap(),
            Terminator::EndOfFile
        );
        assert_eq!(lx.comments.len(), 2);
        assert_eq!(lx.comments[0].slice(src), b"# top { ; }");
    }

    #[test]
    fn closing_paren_may_follow_a_quote() {
        assert_eq!(
            words(r#"if ($a = "b") { }"#)[0],
            ["if", "($a", "=", "b", ")"]
        );
    }

    #[test]
    fn non_utf8_bytes_are_fine() {
        let src = b"# caf\xe9\nserver_name a\xffb;\n";
        let st = statements(src).unwrap();
        assert_eq!(st[0].0.len(), 2);
    }

    #[test]
    fn lua_block_is_one_raw_block() {
        let src = b"content_by_lua_block { local t = {a = '}'} -- }\n ngx.say([[}]]) }\nx y;";
        let mut lx = Lexer::new(src);
        let end = lx.next_statement(&mut Vec::new()).unwrap();
        let Terminator::RawBlock { open, close } = end else {
            panic!("{end:?}")
        };
        assert_eq!(src[open as usize], b'{');
        assert_eq!(
            close as usize,
            src.iter().position(|&b| b == b'\n').unwrap() + 17
        );
        let mut words = Vec::new();
        lx.next_statement(&mut words).unwrap();
        assert_eq!(words.len(), 2);
    }

    #[test]
    fn errors_point_at_the_offending_byte() {
        let err = |s: &str| statements(s.as_bytes()).unwrap_err();
        assert_eq!(
            err("a \"b\"c;"),
            LexError {
                offset: 5,
                kind: LexErrorKind::Unexpected(b'c')
            }
        );
        assert_eq!(
            err("a \"bc;"),
            LexError {
                offset: 2,
                kind: LexErrorKind::UnterminatedQuote(b'"')
            }
        );
        assert_eq!(
            err("a b"),
            LexError {
                offset: 3,
                kind: LexErrorKind::UnexpectedEof
            }
        );
        assert_eq!(
            err("a b }"),
            LexError {
                offset: 4,
                kind: LexErrorKind::Unexpected(b'}')
            }
        );
        assert_eq!(
            err(" ;"),
            LexError {
                offset: 1,
                kind: LexErrorKind::Unexpected(b';')
            }
        );
        assert_eq!(
            err("content_by_lua_block { x"),
            LexError {
                offset: 21,
                kind: LexErrorKind::UnterminatedLuaBlock
            }
        );
    }

    #[test]
    fn overlong_words_and_comments_are_rejected_like_nginx() {
        let long = "x".repeat(4096);
        let src = format!("a {long};\nb c;\n");
        assert_eq!(
            statements(src.as_bytes()).unwrap_err().kind,
            LexErrorKind::TooLong
        );
        let ok = format!("a {};\nb c;\n", "x".repeat(4095));
        assert!(statements(ok.as_bytes()).is_ok());
        let comment = format!("#{}\nb c;\n", "x".repeat(4095));
        assert_eq!(
            statements(comment.as_bytes()).unwrap_err().kind,
            LexErrorKind::TooLong
        );
    }
}
