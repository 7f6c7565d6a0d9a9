//! `enc365-nginx discover`: list every server block, its names and TLS state, and whether it needs
//! a certificate. Reads only; changes nothing.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::cli::DiscoverArgs;
use crate::commands::Context;
use crate::discovery::{self, Discovery};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::names::Name;
use crate::nginx::tree::ParseError;

mod fast_json;

/// The `discover --json` document (design §3.2). It borrows from the [`Discovery`] it describes:
/// on a 10,000-site host, copying every name and path only to print them costs as much as
/// printing.
#[derive(Debug, Serialize)]
pub struct DiscoverJson<'a> {
    /// The main configuration file.
    pub nginx_conf: String,
    /// Every file read, in nginx's order.
    pub files: Vec<Cow<'a, str>>,
    /// Every server block in http context.
    pub servers: Vec<ServerJson<'a>>,
    /// Why the configuration could not be read (then `servers` is empty and the exit code 2).
    pub errors: Vec<ErrorJson>,
}

/// One server block in `discover --json`.
#[derive(Debug, Serialize)]
pub struct ServerJson<'a> {
    /// File holding the `server` keyword.
    pub file: Cow<'a, str>,
    /// 1-based line of the `server` keyword.
    pub line: u32,
    /// Each listen's arguments joined by a space.
    pub listen: Vec<&'a str>,
    /// Every server_name argument as nginx sees it.
    pub server_name: &'a [String],
    /// The first server-level root, as written.
    pub root: Option<&'a str>,
    /// The effective certificate file (server level, else inherited from http).
    pub ssl_certificate: Option<&'a str>,
    /// The effective certificate key file.
    pub ssl_certificate_key: Option<&'a str>,
    /// The names, classified.
    pub names: &'a [Name],
    /// Whether the block needs a certificate.
    pub needs_certificate: bool,
    /// Why (or why not).
    pub reason: &'a str,
}

/// A configuration error in `discover --json`.
#[derive(Debug, Serialize)]
pub struct ErrorJson {
    /// The file.
    pub file: String,
    /// 1-based line (0 when the file could not be read at all).
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What was expected.
    pub message: String,
}

/// Runs `discover`.
pub fn run(args: &DiscoverArgs, ctx: &Context) -> CommandResult {
    crate::heap::ready_for_one_large_tree();
    let conf = ctx.nginx_conf()?;
    let nginx_conf = conf.display().to_string();
    match discovery::discover(&conf, ctx.now(), i64::from(args.days)) {
        Ok(found) => {
            if ctx.global.json {
                let mut out = std::io::stdout().lock();
                write_json(&nginx_conf, &found, &mut out)
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
            } else {
                print_table(&found)?;
            }
            // The process ends right after this; freeing a tree of every file on a 10,000-site
            // host one allocation at a time would take longer than reading it did.
            std::mem::forget(found);
            Ok(ExitStatus::Success)
        }
        Err(error) => {
            if ctx.global.json {
                let doc = DiscoverJson {
                    nginx_conf,
                    files: Vec::new(),
                    servers: Vec::new(),
                    errors: vec![error_json(&error)],
                };
                print_json(&doc)?;
                // The document (with `errors`) is the output; main prints no second one.
                eprintln!(
                    "error: {error}\nNothing was changed. Fix the configuration, then check it \
                     with `nginx -t`."
                );
                return Ok(ExitStatus::Usage);
            }
            Err(Failure::usage(anyhow::anyhow!(
                "{error}\nNothing was changed. Fix the configuration, then check it with `nginx -t`."
            )))
        }
    }
}

/// Writes the `discover --json` document of a discovery (and a final newline) to `out`: the
/// same bytes serde_json's pretty printer makes of [`to_json`]'s document, written directly
/// (several times faster on a host with thousands of sites).
pub fn write_json(
    nginx_conf: &str,
    found: &Discovery,
    out: &mut impl Write,
) -> std::io::Result<()> {
    fast_json::write_document(nginx_conf, found, out)
}

/// Builds the JSON document for a discovery.
pub fn to_json(nginx_conf: String, found: &Discovery) -> DiscoverJson<'_> {
    let servers = found
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (file, line) = found.location(i);
            ServerJson {
                file: path_text(file),
                line,
                listen: s.listens.iter().map(|l| l.text.as_str()).collect(),
                server_name: &s.server_names,
                root: s.root.as_deref(),
                ssl_certificate: s.ssl_certificates.first().map(String::as_str),
                ssl_certificate_key: s.ssl_certificate_keys.first().map(String::as_str),
                names: &found.names[i],
                needs_certificate: found.assessments[i].needs_certificate,
                reason: &found.assessments[i].reason,
            }
        })
        .collect();
    DiscoverJson {
        nginx_conf,
        files: found.config.paths().map(path_text).collect(),
        servers,
        errors: Vec::new(),
    }
}

/// A path as text (borrowed when it is UTF-8, as nearly every path is).
fn path_text(path: &Path) -> Cow<'_, str> {
    path.as_os_str().to_string_lossy()
}

fn error_json(e: &ParseError) -> ErrorJson {
    ErrorJson {
        file: e.file.display().to_string(),
        line: e.line,
        column: e.column,
        message: e.message.clone(),
    }
}

fn print_json(doc: &DiscoverJson) -> Result<(), Failure> {
    // Large writes: a 10,000-site document is over 10 MB.
    let mut out = std::io::BufWriter::with_capacity(1 << 18, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, doc).map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    writeln!(out)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))
}

/// One line per server block: where, listens, names, and the verdict.
fn print_table(found: &Discovery) -> Result<(), Failure> {
    let conf_dir = &found.config.conf_dir;
    let mut rows: Vec<[String; 4]> = Vec::with_capacity(found.servers.len());
    for (i, s) in found.servers.iter().enumerate() {
        let (file, line) = found.location(i);
        let shown = file.strip_prefix(conf_dir).unwrap_or(file);
        let listen = if s.listens.is_empty() {
            "80 (implicit)".to_string()
        } else {
            s.listens
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let names: Vec<&str> = found.names[i].iter().map(|n| n.name.as_str()).collect();
        let a = &found.assessments[i];
        let verdict = format!(
            "{}: {}",
            if a.needs_certificate {
                "NEEDS CERT"
            } else {
                "ok"
            },
            a.reason
        );
        rows.push([
            format!("{}:{line}", shown.display()),
            listen,
            names.join(" "),
            verdict,
        ]);
    }
    let headers = ["SERVER", "LISTEN", "NAMES", "CERTIFICATE"];
    let rows: Vec<[String; 4]> = rows.into_iter().flat_map(wrap_names).collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(3) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 18, std::io::stdout().lock());
    // Each cell padded with spaces to its column's width in characters (as `{:w$}` pads), the
    // line's trailing blanks trimmed; built by hand, one buffer for every line.
    let mut text = String::new();
    let mut line = |cells: [&str; 4]| {
        text.clear();
        for (cell, width) in cells.iter().zip(widths).take(3) {
            text.push_str(cell);
            let shown = cell.chars().count();
            text.extend(std::iter::repeat_n(' ', width.saturating_sub(shown)));
            text.push_str("  ");
        }
        text.push_str(cells[3]);
        out.write_all(text.trim_end().as_bytes())?;
        out.write_all(b"\n")
    };
    let io = |e: std::io::Error| Failure::failed(anyhow::anyhow!(e));
    line(headers).map_err(io)?;
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]).map_err(io)?;
    }
    let needing = found
        .assessments
        .iter()
        .filter(|a| a.needs_certificate)
        .count();
    let files = found.config.files.len();
    let servers = found.servers.len();
    writeln!(
        out,
        "\n{files} {} read from {}; {servers} server {}, {needing} {} a certificate.",
        if files == 1 { "file" } else { "files" },
        found.config.main().path.display(),
        if servers == 1 { "block" } else { "blocks" },
        if needing == 1 { "needs" } else { "need" },
    )
    .map_err(io)?;
    out.flush().map_err(io)
}

/// The widest the NAMES column gets; a longer list goes on continuation lines.
const NAMES_WIDTH: usize = 48;

/// A row whose names are wider than [`NAMES_WIDTH`], as that row plus continuation rows holding
/// the rest of the names (other cells empty), so every column stays aligned. A single name
/// longer than the width keeps a line of its own.
fn wrap_names(row: [String; 4]) -> Vec<[String; 4]> {
    // Names that fit stay as they are (packing them would give back the same line).
    if row[2].chars().count() <= NAMES_WIDTH {
        return vec![row];
    }
    let [server, listen, names, verdict] = row;
    let mut lines: Vec<String> = Vec::new();
    for name in names.split(' ') {
        match lines.last_mut() {
            Some(last) if last.chars().count() + 1 + name.chars().count() <= NAMES_WIDTH => {
                last.push(' ');
                last.push_str(name);
            }
            _ => lines.push(name.to_string()),
        }
    }
    let mut rows = Vec::new();
    for (i, chunk) in lines.into_iter().enumerate() {
        rows.push(if i == 0 {
            [server.clone(), listen.clone(), chunk, verdict.clone()]
        } else {
            [String::new(), String::new(), chunk, String::new()]
        });
    }
    rows
}
