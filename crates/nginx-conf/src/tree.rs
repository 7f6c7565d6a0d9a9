//! The directive tree of a whole nginx configuration: every file nginx reads, parsed into directives
//! and blocks with byte spans, and every `include` resolved exactly as nginx resolves it.
//!
//! - Relative include paths resolve against the directory of the main config file (nginx's
//!   `conf_prefix`), never against the including file or the working directory.
//! - A path with `*`, `?` or `[` is a glob (the C library's `glob(3)`, as nginx uses it): matches are
//!   sorted, and no match is fine. A path without them must exist.
//! - Symlinks are followed when reading, but a file is named by the path nginx opened (so
//!   `sites-enabled/shop.conf`, not its `sites-available/` target).
//! - An include loop is an error (nginx would recurse until it runs out of file descriptors).
//! - Blocks must close in the file that opened them, as in nginx.
//!
//! The tree keeps every file's original bytes; directives refer to them by span, so an untouched
//! file re-renders byte for byte and edits splice only the bytes that change. What directives
//! *mean* (servers, names, TLS) is left to [`crate::sites`].

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, mpsc};

use crate::fast_hash::FastMap;
use crate::lexer::{LexError, Lexer, Span, Terminator, Word};
use crate::reader::glob::{self, Expansion};
use crate::reader::{ReadError, read_config_file};

/// Index of a file in [`Config::files`].
pub type FileId = usize;

/// Deepest block nesting we accept; far beyond any real configuration, it keeps hostile input from
/// exhausting the stack of the walks over the tree.
const MAX_NESTING: usize = 256;

/// A configuration error at a place in a file: `file:line:column: message` (just `file: message`
/// when the file could not be read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file, as nginx names it.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters; a non-UTF-8 byte counts as one).
    pub column: u32,
    /// What was expected there.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// One directive: its name, arguments and, for a block directive, its body.
///
/// Plain data: its arguments, children and included files are runs of the lists its
/// [`ConfigFile`] holds (a file's tree lives in a few flat vectors, not one allocation per
/// directive), read with [`ConfigFile::args`], [`ConfigFile::children`] and
/// [`ConfigFile::included`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive {
    /// The directive name (first word).
    pub name: Word,
    /// The arguments: a run of [`ConfigFile::words`].
    pub args: Run,
    /// From the first byte of the name to the terminating `;`, or to the `}` closing the block.
    pub span: Span,
    /// The block, if the directive has one.
    pub body: Body,
    /// For `include`: the files it pulled in, in nginx's order (a run of
    /// [`ConfigFile::includes`]).
    pub included: Run,
}

/// A run `start..start + len` of one of a [`ConfigFile`]'s flat lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Run {
    /// Index of the first item.
    pub start: u32,
    /// Number of items.
    pub len: u32,
}

impl Run {
    fn of<T>(self, list: &[T]) -> &[T] {
        &list[self.start as usize..(self.start + self.len) as usize]
    }
}

/// The body of a directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A simple directive ending in `;`.
    None,
    /// A block: `{` at `open`, `}` at `close`, the directives in between.
    Block {
        /// Offset of `{`.
        open: u32,
        /// Offset of `}`.
        close: u32,
        /// The directives inside: a run of [`ConfigFile::nodes`].
        children: Run,
    },
    /// A `*_by_lua_block`: Lua source between `open` and `close`, kept as raw bytes.
    Raw {
        /// Offset of `{`.
        open: u32,
        /// Offset of `}`.
        close: u32,
    },
}

impl Directive {
    /// Whether the directive's name is `name` (compared on the raw bytes, as nginx does).
    pub fn is(&self, name: &str, src: &[u8]) -> bool {
        self.name.quote.is_none() && self.name.span.slice(src) == name.as_bytes()
    }
}

/// One configuration file as read from disk.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The path nginx opened (absolute; symlinks not resolved).
    pub path: PathBuf,
    /// The file's bytes, exactly as read.
    pub bytes: Vec<u8>,
    /// Every directive of the file; the children of each block are one contiguous run.
    pub nodes: Vec<Directive>,
    /// The top-level directives: a run of `nodes`.
    pub top: Run,
    /// The arguments of every directive of the file (directives refer to runs of it).
    pub words: Vec<Word>,
    /// The files every `include` of the file pulled in (directives refer to runs of it).
    pub includes: Vec<FileId>,
    /// The `#` comments, in order.
    pub comments: Vec<Span>,
    /// Where lines start, found the first time a position is asked for (most files never are).
    line_starts: OnceLock<Vec<u32>>,
    /// The `include` directives (indices into `nodes`) in document order, found while parsing
    /// and taken when the includes are resolved (so that does not walk every directive again).
    include_nodes: Vec<u32>,
}

impl ConfigFile {
    /// Parses `bytes` (a file named `path`) into directives. Includes are not resolved here.
    pub fn parse(path: PathBuf, bytes: Vec<u8>) -> Result<ConfigFile, ParseError> {
        let mut file = ConfigFile {
            path,
            bytes,
            nodes: Vec::new(),
            top: Run::default(),
            words: Vec::new(),
            includes: Vec::new(),
            comments: Vec::new(),
            line_starts: OnceLock::new(),
            include_nodes: Vec::new(),
        };
        match parse_directives(&file.bytes) {
            Ok(parsed) => {
                file.nodes = parsed.nodes;
                file.top = parsed.top;
                file.words = parsed.words;
                file.comments = parsed.comments;
                file.include_nodes = parsed.include_nodes;
                Ok(file)
            }
            Err((offset, message)) => Err(file.error_at(offset, message)),
        }
    }

    /// The top-level directives.
    ///
    /// Panics when they were released ([`Config::release_directives`]).
    pub fn directives(&self) -> &[Directive] {
        assert!(
            self.top.len == 0 || !self.nodes.is_empty(),
            "the directives of {} were released",
            self.path.display()
        );
        self.top.of(&self.nodes)
    }

    /// Frees the parsed directives, words and comments; the path and bytes stay.
    fn release_directives(&mut self) {
        self.nodes = Vec::new();
        self.words = Vec::new();
        self.includes = Vec::new();
        self.comments = Vec::new();
        self.include_nodes = Vec::new();
    }

    /// The arguments of a directive of this file.
    pub fn args(&self, d: &Directive) -> &[Word] {
        d.args.of(&self.words)
    }

    /// The directives inside a block directive of this file (empty for other directives).
    pub fn children(&self, d: &Directive) -> &[Directive] {
        match d.body {
            Body::Block { children, .. } => children.of(&self.nodes),
            _ => &[],
        }
    }

    /// The files an `include` directive of this file pulled in (empty for other directives).
    pub fn included(&self, d: &Directive) -> &[FileId] {
        d.included.of(&self.includes)
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let end = (offset as usize).min(self.bytes.len());
        let (line, start) = match self.line_starts.get() {
            // Near the start of a file (where most `server` keywords are), counting is cheaper
            // than indexing every line of it.
            None if end < 4096 => {
                let before = &self.bytes[..end];
                let lines = before.iter().filter(|&&b| b == b'\n').count();
                let start = before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                (lines + 1, start)
            }
            _ => {
                let starts = self.line_starts.get_or_init(|| line_starts(&self.bytes));
                let line = starts.partition_point(|&s| s <= offset);
                (line, starts[line - 1] as usize)
            }
        };
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let column = self.bytes[start..end]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        (line as u32, column as u32 + 1)
    }

    /// A [`ParseError`] at a byte offset of this file.
    pub fn error_at(&self, offset: u32, message: impl Into<String>) -> ParseError {
        let (line, column) = self.line_col(offset);
        ParseError {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Rebuilds the file from its directive tree and the bytes between directives (comments and
    /// blanks). For a file nobody edited this is byte-identical to [`ConfigFile::bytes`]; the test of
    /// that proves the tree accounts for every byte.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        let mut at = 0usize;
        render_list(self, self.directives(), &mut at, &mut out);
        out.extend_from_slice(&self.bytes[at..]);
        out
    }
}

fn render_list(file: &ConfigFile, list: &[Directive], at: &mut usize, out: &mut Vec<u8>) {
    let src = &file.bytes;
    for d in list {
        out.extend_from_slice(&src[*at..d.span.start as usize]);
        *at = d.span.start as usize;
        let words = std::iter::once(&d.name).chain(file.args(d));
        for w in words {
            out.extend_from_slice(&src[*at..w.span.start as usize]);
            out.extend_from_slice(w.span.slice(src));
            *at = w.span.end as usize;
        }
        match &d.body {
            Body::Block { close, .. } => {
                render_list(file, file.children(d), at, out);
                out.extend_from_slice(&src[*at..*close as usize + 1]);
            }
            Body::None | Body::Raw { .. } => {
                out.extend_from_slice(&src[*at..d.span.end as usize]);
            }
        }
        *at = d.span.end as usize;
    }
}

/// Offsets where lines start (the first is 0).
fn line_starts(bytes: &[u8]) -> Vec<u32> {
    let mut starts = Vec::with_capacity(bytes.len() / 32 + 1);
    starts.push(0);
    let mut from = 0;
    while let Some(p) = bytes[from..].iter().position(|&b| b == b'\n') {
        from += p + 1;
        starts.push(from as u32);
    }
    starts
}

/// An unfinished block while parsing: the directive that opened it and its children so far.
struct OpenBlock {
    directive: Directive,
    open: u32,
    children: Vec<Directive>,
}

/// Directives that open a block (nginx's own, and the `*_block` ones of the Lua module).
const BLOCK_DIRECTIVES: &[&str] = &[
    "http",
    "events",
    "server",
    "location",
    "upstream",
    "if",
    "limit_except",
    "types",
    "map",
    "geo",
    "split_clients",
    "stream",
    "mail",
    "match",
    "charset_map",
    "geoip2",
    "rtmp",
    "application",
];

/// Directives that never open a block; one followed by `{` lost its `;`.
const SIMPLE_DIRECTIVES: &[&str] = &[
    "index",
    "root",
    "alias",
    "listen",
    "server_name",
    "return",
    "rewrite",
    "try_files",
    "proxy_pass",
    "fastcgi_pass",
    "uwsgi_pass",
    "include",
    "add_header",
    "error_page",
    "access_log",
    "error_log",
    "expires",
    "deny",
    "allow",
    "set",
    "ssl_certificate",
    "ssl_certificate_key",
    "client_max_body_size",
    "default_type",
    "autoindex",
    "charset",
    "gzip",
    "proxy_set_header",
    "fastcgi_param",
    "sendfile",
    "keepalive_timeout",
    "worker_processes",
    "worker_connections",
    "user",
    "pid",
];

/// The error nginx gives (`directive "index" is not terminated by ";"`) for a statement that
/// opens a block but is really a directive that lost its `;` before the next one: its name
/// never takes a block, or a later word is a block directive (`index a b location / {`).
/// Unknown directives of other modules that take a block pass.
fn unterminated_before_block(src: &[u8], words: &[Word]) -> Option<(u32, String)> {
    let is_in = |list: &[&str], w: &Word| list.iter().any(|d| d.as_bytes() == w.span.slice(src));
    let first = words.first()?;
    if is_in(BLOCK_DIRECTIVES, first) || first.span.slice(src).ends_with(b"_block") {
        return None;
    }
    let opener = words[1..]
        .iter()
        .find(|w| w.quote.is_none() && is_in(BLOCK_DIRECTIVES, w));
    if opener.is_none() && !is_in(SIMPLE_DIRECTIVES, first) {
        return None;
    }
    let name = String::from_utf8_lossy(first.span.slice(src));
    let at = opener.map_or(words[0].span.start, |w| w.span.start);
    Some((
        at,
        format!("directive \"{name}\" is not terminated by \";\" (add the \";\" it lost)"),
    ))
}

/// The parser's working lists, kept per thread between files (a reader thread parses
/// thousands): only the lists a file keeps are allocated for it.
#[derive(Default)]
struct Scratch {
    top: Vec<Directive>,
    stack: Vec<OpenBlock>,
    spare: Vec<Vec<Directive>>,
    words: Vec<Word>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

/// What parsing one file yields.
struct Parsed {
    /// Indices of the `include` directives in `nodes`, in document order.
    include_nodes: Vec<u32>,
    nodes: Vec<Directive>,
    top: Run,
    words: Vec<Word>,
    comments: Vec<Span>,
}

/// Parses one file's bytes into its directives; errors carry a byte offset.
///
/// Each block's children are collected in a scratch vector (recycled through `spare`) and moved
/// into `nodes` as one run when the block closes, so the whole tree costs a few flat vectors.
fn parse_directives(src: &[u8]) -> Result<Parsed, (u32, String)> {
    let mut lexer = Lexer::new(src);
    let mut nodes: Vec<Directive> = Vec::with_capacity(src.len() / 40);
    let Scratch {
        mut top,
        mut stack,
        mut spare,
        mut words,
    } = SCRATCH.with(Cell::take);
    let mut all_words: Vec<Word> = Vec::with_capacity(src.len() / 24);
    let mut include_nodes: Vec<u32> = Vec::new();
    loop {
        words.clear();
        let end = lexer
            .next_statement(&mut words)
            .map_err(|e: LexError| (e.offset, e.message()))?;
        let mut leaf = |end: u32, body: Body| {
            let name = words[0];
            let args = Run {
                start: all_words.len() as u32,
                len: words.len() as u32 - 1,
            };
            all_words.extend_from_slice(&words[1..]);
            Directive {
                name,
                args,
                span: Span {
                    start: name.span.start,
                    end,
                },
                body,
                included: Run::default(),
            }
        };
        let finished = match end {
            Terminator::Semicolon(at) => leaf(at + 1, Body::None),
            Terminator::RawBlock { open, close } => leaf(close + 1, Body::Raw { open, close }),
            Terminator::BlockOpen(open) => {
                if stack.len() >= MAX_NESTING {
                    return Err((open, format!("blocks nested more than {MAX_NESTING} deep")));
                }
                if let Some(error) = unterminated_before_block(src, &words) {
                    return Err(error);
                }
                let directive = leaf(open + 1, Body::None);
                let children = spare.pop().unwrap_or_default();
                stack.push(OpenBlock {
                    directive,
                    open,
                    children,
                });
                continue;
            }
            Terminator::BlockClose(at) => {
                let Some(mut block) = stack.pop() else {
                    return Err((
                        at,
                        "unexpected \"}\": expected a directive (no block is open here; blocks \
                         must close in the file that opened them)"
                            .to_string(),
                    ));
                };
                let children = Run {
                    start: nodes.len() as u32,
                    len: block.children.len() as u32,
                };
                note_includes(src, &block.children, children.start, &mut include_nodes);
                nodes.append(&mut block.children);
                spare.push(block.children);
                let mut d = block.directive;
                d.span.end = at + 1;
                d.body = Body::Block {
                    open: block.open,
                    close: at,
                    children,
                };
                d
            }
            Terminator::EndOfFile => {
                if let Some(block) = stack.last() {
                    let name = String::from_utf8_lossy(block.directive.name.span.slice(src));
                    return Err((
                        src.len() as u32,
                        format!(
                            "unexpected end of file: expected \"}}\" to close the \"{name}\" block \
                             opened at {}",
                            position_text(src, block.open)
                        ),
                    ));
                }
                let top_run = Run {
                    start: nodes.len() as u32,
                    len: top.len() as u32,
                };
                note_includes(src, &top, top_run.start, &mut include_nodes);
                nodes.append(&mut top);
                // Blocks close inner first: back to document order (includes never overlap).
                include_nodes.sort_unstable_by_key(|&i| nodes[i as usize].span.start);
                // Only what the file holds stays allocated (a tree of thousands of files).
                nodes.shrink_to_fit();
                all_words.shrink_to_fit();
                let mut comments = lexer.comments;
                comments.shrink_to_fit();
                words.clear();
                SCRATCH.with(|s| {
                    s.set(Scratch {
                        top,
                        stack,
                        spare,
                        words,
                    })
                });
                return Ok(Parsed {
                    include_nodes,
                    nodes,
                    top: top_run,
                    words: all_words,
                    comments,
                });
            }
        };
        match stack.last_mut() {
            Some(block) => block.children.push(finished),
            None => top.push(finished),
        }
    }
}

/// Notes which of `list` (about to be stored in `nodes` from index `start`) are `include`s.
fn note_includes(src: &[u8], list: &[Directive], start: u32, out: &mut Vec<u32>) {
    for (k, d) in list.iter().enumerate() {
        if matches!(d.body, Body::None) && d.is("include", src) {
            out.push(start + k as u32);
        }
    }
}

/// `line N, column M` of an offset, for messages that point at a second place.
fn position_text(src: &[u8], offset: u32) -> String {
    let before = &src[..offset as usize];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count()
        + 1;
    format!("line {line}, column {column}")
}

/// A whole configuration: the main file and everything it includes.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every file read, indexed by [`FileId`]; the main file is `files[0]`.
    pub files: Vec<ConfigFile>,
    /// nginx's `conf_prefix`: the directory of the main file, against which includes resolve.
    pub conf_dir: PathBuf,
}

impl Config {
    /// Reads the main file at `main` (absolute) and everything it includes, as nginx would.
    pub fn load(main: &Path) -> Result<Config, ParseError> {
        let conf_dir = main
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut loader = Loader {
            conf_dir: conf_dir.clone(),
            files: Vec::new(),
            by_path: HashMap::default(),
            stack: Vec::new(),
            plain_includes: HashMap::default(),
        };
        let bytes = read_config_file(main).map_err(|e| ParseError {
            file: main.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("could not read the main configuration file: {e}"),
        })?;
        loader.load_file(main.to_path_buf(), bytes)?;
        let files = loader
            .files
            .into_iter()
            .map(|f| f.expect("every loaded file is filled in"))
            .collect();
        Ok(Config { files, conf_dir })
    }

    /// The main configuration file.
    pub fn main(&self) -> &ConfigFile {
        &self.files[0]
    }

    /// The paths of every file read, in the order nginx reads them (each once, as `nginx -T`).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// Frees every file's parsed directives (and words and comments), keeping each file's path
    /// and bytes: for a caller that from now on only splices bytes at spans it already holds
    /// (the [`crate::sites::Server`]s read from this configuration). On a host with thousands
    /// of sites the directives are about a quarter of the configuration's memory. Walking a
    /// file's directives afterwards panics ([`ConfigFile::directives`]).
    pub fn release_directives(&mut self) {
        for file in &mut self.files {
            file.release_directives();
        }
    }
}

/// A file read and parsed ahead of its turn: the read error, or the parse result.
type Prefetched = Result<Result<ConfigFile, ParseError>, ReadError>;

/// Reads files and resolves includes depth-first, in nginx's order.
struct Loader {
    conf_dir: PathBuf,
    /// Slots in read order; a slot is `None` while its file's includes are being read.
    files: Vec<Option<ConfigFile>>,
    by_path: FastMap<PathBuf, FileId>,
    /// Files being read right now, outermost first (for loop detection).
    stack: Vec<FileId>,
    /// The argument of every plain (not glob) `include` resolved so far and the file it named
    /// (the argument always names the same file: includes resolve against `conf_dir`).
    plain_includes: FastMap<Vec<u8>, FileId>,
}

impl Loader {
    fn load_file(&mut self, path: PathBuf, bytes: Vec<u8>) -> Result<FileId, ParseError> {
        let file = ConfigFile::parse(path, bytes)?;
        self.load_parsed(file)
    }

    /// Registers a parsed file and resolves its includes.
    fn load_parsed(&mut self, mut file: ConfigFile) -> Result<FileId, ParseError> {
        let id = self.files.len();
        self.files.push(None);
        self.by_path.insert(file.path.clone(), id);
        self.stack.push(id);
        self.resolve_includes(&mut file)?;
        self.stack.pop();
        self.files[id] = Some(file);
        Ok(id)
    }

    /// Resolves every `include` of `file` (at any depth), in document order.
    fn resolve_includes(&mut self, file: &mut ConfigFile) -> Result<(), ParseError> {
        for index in std::mem::take(&mut file.include_nodes) {
            let index = index as usize;
            let d = file.nodes[index];
            let args = file.args(&d);
            if args.len() != 1 {
                return Err(file.error_at(
                    d.name.span.start,
                    format!(
                        "\"include\" takes exactly one file name or pattern, found {}",
                        args.len()
                    ),
                ));
            }
            if let Some(id) = self.recent_include(file, &args[0]) {
                file.nodes[index].included = Run {
                    start: file.includes.len() as u32,
                    len: 1,
                };
                file.includes.push(id);
                continue;
            }
            let arg = args[0].value(&file.bytes).into_owned();
            let pattern = self.conf_dir.join(OsStr::from_bytes(&arg));
            let at = args[0].span.start;
            let found = if arg.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
                glob::expand(&pattern).map_err(|e| file.error_at(at, e))?
            } else {
                Expansion::single(pattern)
            };
            let ids = self.include_all(file, at, &found)?;
            if let [id] = ids[..]
                && !arg.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'$'))
            {
                self.plain_includes.insert(arg, id);
            }
            file.nodes[index].included = Run {
                start: file.includes.len() as u32,
                len: ids.len() as u32,
            };
            file.includes.extend(ids);
        }
        Ok(())
    }

    /// The file of an `include` whose argument is the same as a plain `include` resolved before
    /// (every site of a panel includes the same few snippets), when that file is fully read (not
    /// an include loop): no path to join or look up again.
    fn recent_include(&self, file: &ConfigFile, arg: &Word) -> Option<FileId> {
        let id = *self.plain_includes.get(arg.value(&file.bytes).as_ref())?;
        (self.files[id].is_some() && !self.stack.contains(&id)).then_some(id)
    }

    /// Reads the files of one `include` (in nginx's order) and returns their ids.
    ///
    /// Many files (a glob over `sites-enabled/*`) are read and parsed ahead, a chunk at a time,
    /// by helper threads and by this thread whenever the next chunk in order is not ready yet;
    /// this thread takes each finished chunk in order and resolves the includes inside its
    /// files: reading, lexing and linking overlap on every core. When the files are not cached
    /// (a timer's run, hours after the last one), a chunk that had to be read from the disk
    /// starts one more helper, up to [`MOST_READERS`] threads, so the reads overlap too.
    fn include_all(
        &mut self,
        from: &ConfigFile,
        at: u32,
        found: &Expansion,
    ) -> Result<Vec<FileId>, ParseError> {
        const MIN_BATCH: usize = 64;
        const CHUNK: usize = 64;
        let paths = &found.paths;
        let mut ids = Vec::with_capacity(paths.len());
        let known: Vec<bool> = paths.iter().map(|p| self.by_path.contains_key(p)).collect();
        let todo = known.iter().filter(|&&k| !k).count();
        if todo < MIN_BATCH {
            for (i, path) in paths.iter().enumerate() {
                let ready = (!self.by_path.contains_key(path)).then(|| prefetch_one(found, i));
                ids.push(self.include(from, at, path, ready)?);
            }
            return Ok(ids);
        }
        self.by_path.reserve(todo);
        self.files.reserve(todo);
        let helpers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(2, 8)
            - 1;
        let chunks = paths.len().div_ceil(CHUNK);
        let next = AtomicUsize::new(0);
        // Chunks that had to be read from the disk (an eighth of their files' worth of pages
        // or more): each lets one more helper start.
        let from_disk = AtomicUsize::new(0);
        let read_chunk = |c: usize| -> Vec<Option<Prefetched>> {
            let before = disk_reads();
            let read = (c * CHUNK..((c + 1) * CHUNK).min(paths.len()))
                .map(|i| (!known[i]).then(|| prefetch_one(found, i)))
                .collect();
            if disk_reads().saturating_sub(before) >= (CHUNK / 8) as u64 * PAGE_BLOCKS {
                from_disk.fetch_add(1, Ordering::Relaxed);
            }
            read
        };
        let (sender, receiver) = mpsc::channel::<(usize, Vec<Option<Prefetched>>)>();
        std::thread::scope(|scope| {
            let spawn_helper = |sender: mpsc::Sender<_>| {
                let (next, read_chunk) = (&next, &read_chunk);
                scope.spawn(move || {
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= chunks || sender.send((c, read_chunk(c))).is_err() {
                            break;
                        }
                    }
                });
            };
            for _ in 0..helpers {
                spawn_helper(sender.clone());
            }
            // Kept while helpers may still be added; dropped once every chunk is taken, so a
            // helper that died shows as a closed channel.
            let mut sender = Some(sender);
            let mut started = helpers;
            let mut arrived: Vec<Option<Vec<Option<Prefetched>>>> =
                (0..chunks).map(|_| None).collect();
            for c in 0..chunks {
                if next.load(Ordering::Relaxed) >= chunks {
                    sender = None;
                }
                // Reads that wait on the disk (a cold cache) leave the cores idle: more
                // helpers keep more reads in flight.
                while let Some(s) = &sender
                    && started < MOST_READERS - 1
                    && started - helpers < from_disk.load(Ordering::Relaxed)
                {
                    spawn_helper(s.clone());
                    started += 1;
                }
                while arrived[c].is_none() {
                    match receiver.try_recv() {
                        Ok((k, read)) => arrived[k] = Some(read),
                        // Nothing to link yet: read the next unclaimed chunk here.
                        Err(mpsc::TryRecvError::Empty) => {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            if k < chunks {
                                arrived[k] = Some(read_chunk(k));
                            } else {
                                sender = None;
                                match receiver.recv() {
                                    Ok((k, read)) => arrived[k] = Some(read),
                                    Err(_) => break,
                                }
                            }
                        }
                        // A helper died: this thread reads what is missing itself.
                        Err(mpsc::TryRecvError::Disconnected) => break,
                    }
                }
                let mut read = arrived[c].take().unwrap_or_default().into_iter();
                for path in &paths[c * CHUNK..((c + 1) * CHUNK).min(paths.len())] {
                    ids.push(self.include(from, at, path, read.next().flatten())?);
                }
            }
            #[cfg(test)]
            HELPERS_STARTED.set(started);
            Ok(ids)
        })
    }

    /// Reads one included file (or reuses it when already read), refusing include loops.
    /// `ready` is the file already read and parsed ahead by [`Loader::include_all`], if it was.
    fn include(
        &mut self,
        from: &ConfigFile,
        at: u32,
        path: &Path,
        ready: Option<Prefetched>,
    ) -> Result<FileId, ParseError> {
        if let Some(&id) = self.by_path.get(path) {
            if self.stack.contains(&id) {
                let mut chain: Vec<String> = self.stack
                    [self.stack.iter().position(|&s| s == id).unwrap_or(0)..]
                    .iter()
                    .map(|&s| self.path_of(s).display().to_string())
                    .collect();
                chain.push(path.display().to_string());
                return Err(from.error_at(
                    at,
                    format!(
                        "include loop: {}; remove one of these includes",
                        chain.join(" includes ")
                    ),
                ));
            }
            return Ok(id);
        }
        let read = match ready {
            Some(Ok(parsed)) => return self.load_parsed(parsed?),
            Some(Err(e)) => Err(e),
            None => read_config_file(path),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) => {
                let what = if e.is_not_found() {
                    "no such file (nginx fails on a missing include without wildcards); create it \
                     or fix the path"
                        .to_string()
                } else {
                    e.to_string()
                };
                return Err(from.error_at(
                    at,
                    format!("could not read included file {}: {what}", path.display()),
                ));
            }
        };
        self.load_file(path.to_path_buf(), bytes)
    }

    fn path_of(&self, id: FileId) -> PathBuf {
        self.by_path
            .iter()
            .find(|&(_, &v)| v == id)
            .map(|(k, _)| k.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
thread_local! {
    /// How many helpers the last many-file `include` resolved on this thread started.
    static HELPERS_STARTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The most threads that read the files of one `include` at once (the one resolving it among
/// them): enough reads in flight to keep a disk busy when the files are not cached.
const MOST_READERS: usize = 16;

/// 512-byte blocks in a page: what one small file's read from the disk costs at least.
const PAGE_BLOCKS: u64 = 8;

/// How many 512-byte blocks the calling thread has had read from the disk (what the page cache
/// did not hold, file contents and the inodes and directories leading to them).
fn disk_reads() -> u64 {
    // SAFETY: getrusage only fills the struct it is given, which lives across the call.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            return 0;
        }
        u64::try_from(usage.ru_inblock).unwrap_or(0)
    }
}

/// Reads and parses the `i`th file of an expansion ahead of its turn.
fn prefetch_one(found: &Expansion, i: usize) -> Prefetched {
    found
        .read(i)
        .map(|bytes| ConfigFile::parse(found.paths[i].clone(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn parse(src: &str) -> Result<ConfigFile, ParseError> {
        ConfigFile::parse(
            PathBuf::from("/etc/nginx/test.conf"),
            src.as_bytes().to_vec(),
        )
    }

    #[test]
    fn blocks_nest_and_keep_spans() {
        let f = parse("http {\n  server {\n    listen 80;\n  }\n}\n").unwrap();
        let http = &f.directives()[0];
        assert!(http.is("http", &f.bytes));
        let server = &f.children(http)[0];
        assert_eq!(
            server.span.slice(&f.bytes),
            b"server {\n    listen 80;\n  }"
        );
        assert_eq!(f.line_col(server.span.start), (2, 3));
        assert_eq!(f.render(), f.bytes);
    }

    #[test]
    fn released_directives_keep_paths_and_bytes_and_a_walk_fails_loudly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("site.conf"), "server { listen 80; }\n").unwrap();
        let main = main_including(dir.path(), "site.conf");
        let mut config = Config::load(&main).unwrap();
        let before: Vec<(PathBuf, Vec<u8>)> = (config.files.iter())
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect();
        config.release_directives();
        let after: Vec<(PathBuf, Vec<u8>)> = (config.files.iter())
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect();
        assert_eq!(before, after);
        assert!(
            config
                .files
                .iter()
                .all(|f| f.nodes.is_empty() && f.words.is_empty())
        );
        let walk = std::panic::catch_unwind(|| config.main().directives().len());
        let message = walk.unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("were released"), "{message}");
    }

    #[test]
    fn unbalanced_braces_are_errors_with_positions() {
        let e = parse("http {\n  server {\n}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/nginx/test.conf:4:1: unexpected end of file: expected \"}\" to close the \"http\" block opened at line 1, column 6"
        );
        let e = parse("a b;\n}\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
    }

    /// A main file whose `http` block includes `target` on line 3 (the path at column 11).
    fn main_including(dir: &Path, target: &str) -> PathBuf {
        let main = dir.join("nginx.conf");
        std::fs::write(
            &main,
            format!("events {{}}\nhttp {{\n  include {target};\n}}\n"),
        )
        .unwrap();
        main
    }

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn an_included_fifo_is_an_error_at_the_include_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.conf");
        mkfifo(&fifo);
        let main = main_including(dir.path(), "pipe.conf");
        let e = Config::load(&main).unwrap_err();
        assert_eq!((&e.file, e.line, e.column), (&main, 3, 11));
        assert!(
            e.message
                .contains("pipe.conf: it is a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        // Through a glob of many files (read ahead in parallel), the same error, same place.
        let sites = dir.path().join("sites");
        std::fs::create_dir(&sites).unwrap();
        for i in 0..100 {
            std::fs::write(
                sites.join(format!("s{i:03}.conf")),
                "server { listen 80; }\n",
            )
            .unwrap();
        }
        mkfifo(&sites.join("s050.fifo.conf"));
        let main = main_including(dir.path(), "sites/*.conf");
        let e = Config::load(&main).unwrap_err();
        assert_eq!((&e.file, e.line, e.column), (&main, 3, 11));
        assert!(e.message.contains("s050.fifo.conf: it is a FIFO"), "{e}");
    }

    #[test]
    fn a_symlink_to_a_fifo_among_many_sites_is_an_error_at_the_include_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let (available, enabled) = (dir.path().join("available"), dir.path().join("enabled"));
        std::fs::create_dir(&available).unwrap();
        std::fs::create_dir(&enabled).unwrap();
        for i in 0..150 {
            let name = format!("s{i:03}.conf");
            std::fs::write(available.join(&name), "server { listen 80; }\n").unwrap();
            std::os::unix::fs::symlink(available.join(&name), enabled.join(&name)).unwrap();
        }
        mkfifo(&available.join("pipe"));
        std::os::unix::fs::symlink(available.join("pipe"), enabled.join("s120.pipe")).unwrap();
        let main = main_including(dir.path(), "enabled/*");
        let e = Config::load(&main).unwrap_err();
        assert_eq!((&e.file, e.line, e.column), (&main, 3, 11));
        assert!(e.message.contains("s120.pipe: it is a FIFO"), "{e}");
        // Without it, every file is read, in glob(3)'s order, named by its path in `enabled`.
        std::fs::remove_file(enabled.join("s120.pipe")).unwrap();
        let config = Config::load(&main).unwrap();
        let names: Vec<PathBuf> = config.paths().skip(1).map(Path::to_path_buf).collect();
        let pattern = dir.path().join("enabled/*");
        assert_eq!(names, crate::reader::glob::glob3(&pattern).unwrap());
        assert_eq!(names.len(), 150);
        assert!(
            config.files[1..]
                .iter()
                .all(|f| f.bytes == b"server { listen 80; }\n")
        );
    }

    /// Files not in the page cache (dropped from it with `POSIX_FADV_DONTNEED`) start more
    /// helpers than there are cores; cached, they start none beyond them. Either way every
    /// file is read, in glob(3)'s order. Where the files are not on a disk (a tmpfs: nothing
    /// is ever read from a disk), no helper is added either way.
    #[test]
    fn files_read_from_the_disk_start_more_helpers_and_stay_in_nginx_order() {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let dir = tempfile::tempdir().unwrap();
        let sites = dir.path().join("sites");
        std::fs::create_dir(&sites).unwrap();
        let files: Vec<PathBuf> = (0..640)
            .map(|i| {
                let path = sites.join(format!("s{i:03}.conf"));
                let mut file = std::fs::File::create(&path).unwrap();
                writeln!(file, "server {{ listen 80; server_name s{i}.test; }}").unwrap();
                file.sync_all().unwrap();
                path
            })
            .collect();
        // SAFETY: the descriptor is open across the call.
        let drop_from_cache = |path: &Path| unsafe {
            let file = std::fs::File::open(path).unwrap();
            assert_eq!(
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED),
                0
            );
        };
        // SAFETY: getrusage only fills the struct it is given, which lives across the call.
        let process_disk_reads = || unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
            usage.ru_inblock
        };
        files.iter().for_each(|f| drop_from_cache(f));
        let main = main_including(dir.path(), "sites/*.conf");
        let before = process_disk_reads();
        let cold = Config::load(&main).unwrap();
        let from_disk = process_disk_reads() - before;
        let cold_helpers = HELPERS_STARTED.get();
        let warm = Config::load(&main).unwrap();
        let warm_helpers = HELPERS_STARTED.get();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let initial = cores.clamp(2, 8) - 1;
        assert_eq!(warm_helpers, initial, "cached files");
        if from_disk >= 640 * 8 / 2 {
            assert!(
                cold_helpers > initial,
                "{cold_helpers} helpers for {from_disk} blocks read from the disk"
            );
        } else {
            assert_eq!(cold_helpers, initial, "{from_disk} blocks from the disk");
        }
        for config in [&cold, &warm] {
            let read: Vec<&Path> = config.paths().skip(1).collect();
            assert_eq!(read, files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
            for (i, file) in config.files[1..].iter().enumerate() {
                let text = format!("server {{ listen 80; server_name s{i}.test; }}\n");
                assert_eq!(file.bytes, text.as_bytes());
            }
        }
    }

    #[test]
    fn an_included_device_is_an_error_at_the_include_not_endless_reading() {
        let dir = tempfile::tempdir().unwrap();
        let main = main_including(dir.path(), "/dev/zero");
        let e = Config::load(&main).unwrap_err();
        assert_eq!((&e.file, e.line, e.column), (&main, 3, 11));
        assert!(
            e.message
                .contains("/dev/zero: it is a character device, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn an_included_file_over_the_size_cap_is_an_error_at_the_include() {
        let dir = tempfile::tempdir().unwrap();
        let huge = std::fs::File::create(dir.path().join("huge.conf")).unwrap();
        huge.set_len(crate::reader::MAX_CONFIG_FILE + 1).unwrap();
        let main = main_including(dir.path(), "huge.conf");
        let e = Config::load(&main).unwrap_err();
        assert_eq!((&e.file, e.line, e.column), (&main, 3, 11));
        assert!(
            e.message.contains("huge.conf: it is larger than 64 MiB"),
            "{e}"
        );
    }

    #[test]
    fn columns_count_characters() {
        let f = parse("# é\nserver_name 例子.test ;\n").unwrap();
        let d = &f.directives()[0];
        assert_eq!(f.line_col(d.span.end - 1), (2, 21));
    }
}
