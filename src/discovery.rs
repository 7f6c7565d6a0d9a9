//! The picture of a host that every command starts from: the configuration nginx reads, its server
//! blocks, their names classified and the verdict on whether each needs a certificate.
//!
//! Glue between [`crate::nginx`], [`crate::names`] and [`crate::assess`]; knows nothing of CAs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::assess::{self, Assessment, Policy};
use crate::names::{self, Name};
use crate::nginx::sites::{self, Server};
use crate::nginx::tree::{Config, ParseError};
use crate::tlsinfo::{CertReadError, CertSummary};

/// Everything known about the host's sites.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The whole configuration, every file with its bytes and tree.
    pub config: Config,
    /// Every `server` block in `http` context, in nginx's order.
    pub servers: Vec<Server>,
    /// The classified names of each server (same index).
    pub names: Vec<Vec<Name>>,
    /// Whether each server needs a certificate (same index).
    pub assessments: Vec<Assessment>,
    /// The 1-based line of each server's `server` keyword (same index).
    lines: Vec<u32>,
    /// Every certificate file the TLS blocks name, as read for the assessments, by path.
    certificates: HashMap<PathBuf, Result<CertSummary, CertReadError>>,
}

/// Reads the configuration at `main_conf` and assesses every server block. `now` is the current
/// time in Unix seconds; certificates expiring within `renew_within_days` need renewal.
pub fn discover(
    main_conf: &Path,
    now: i64,
    renew_within_days: i64,
) -> Result<Discovery, ParseError> {
    let config = Config::load(main_conf)?;
    let servers = sites::servers(&config)?;
    let (names, lines) = classify_names(&config, &servers);
    let policy = Policy {
        conf_dir: &config.conf_dir,
        now,
        renew_within_days,
    };
    let location = |i: usize| {
        let path = config.files[servers[i].place.file].path.as_os_str();
        format!("{}:{}", path.to_string_lossy(), lines[i])
    };
    let mut certificates = read_certificates(&servers, &config.conf_dir);
    let assessments = assess::assess_all(&servers, &names, location, &policy, &mut certificates);
    Ok(Discovery {
        config,
        servers,
        names,
        assessments,
        lines,
        certificates,
    })
}

/// Every certificate file the TLS blocks name (as the assessment reads them: not one chosen by
/// a variable, inline or by an engine), read and summarized by path — a run of them per thread
/// when there are many (a 10,000-site host has as many certificates), on more threads when the
/// reads wait on the disk ([`crate::bounded::reads`]).
fn read_certificates(
    servers: &[Server],
    conf_dir: &Path,
) -> HashMap<PathBuf, Result<CertSummary, CertReadError>> {
    let mut paths: Vec<PathBuf> = (servers.iter().filter(|s| s.tls))
        .flat_map(|s| &s.ssl_certificates)
        .filter(|f| !f.contains('$') && !f.starts_with("data:") && !f.starts_with("engine:"))
        .map(|f| conf_dir.join(f))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let read =
        |part: std::ops::Range<usize>| -> Vec<(PathBuf, Result<CertSummary, CertReadError>)> {
            (paths[part].iter())
                .map(|p| (p.clone(), crate::tlsinfo::read_certificate(p)))
                .collect()
        };
    (crate::bounded::reads(paths.len(), 64, read))
        .into_iter()
        .flatten()
        .collect()
}

/// The classified names of every server and the line of its `server` keyword, in order: on two
/// threads when there are many servers (a 10,000-site host has some 50,000 names).
fn classify_names(config: &Config, servers: &[Server]) -> (Vec<Vec<Name>>, Vec<u32>) {
    let classify = |part: std::ops::Range<usize>| -> Vec<(Vec<Name>, u32)> {
        servers[part]
            .iter()
            .map(|s| {
                let names = names::classify_all(s.server_names.iter().map(String::as_str));
                let line = config.files[s.place.file].line_col(s.place.span.start).0;
                (names, line)
            })
            .collect()
    };
    (crate::bounded::halves(servers.len(), 1000, classify))
        .into_iter()
        .flatten()
        .unzip()
}

impl Discovery {
    /// The file path and 1-based line of a server's `server` keyword.
    pub fn location(&self, index: usize) -> (&Path, u32) {
        let s = &self.servers[index];
        let file = &self.config.files[s.place.file];
        (&file.path, self.lines[index])
    }

    /// The certificate file at `path` as read while assessing the servers (a TLS block names
    /// it; `None` when none does): `Some(None)` when it could not be read or parsed. Saves
    /// reading it again in the same run.
    pub fn certificate(&self, path: &Path) -> Option<Option<&CertSummary>> {
        (self.certificates.get(path)).map(|read| read.as_ref().ok())
    }
}
