//! The picture of a host that every command starts from: the configuration nginx reads, its server
//! blocks, their names classified and the verdict on whether each needs a certificate.
//!
//! Glue between [`crate::nginx`], [`crate::names`] and [`crate::assess`]; knows nothing of CAs.

use std::path::Path;

use crate::assess::{self, Assessment, Policy};
use crate::names::{self, Name};
use crate::nginx::sites::{self, Server};
use crate::nginx::tree::{Config, ParseError};

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
    let names = classify_names(&servers);
    let locations: Vec<String> = servers
        .iter()
        .map(|s| {
            let file = &config.files[s.place.file];
            let mut at = file.path.as_os_str().to_string_lossy().into_owned();
            at.push(':');
            at.push_str(&file.line_col(s.place.span.start).0.to_string());
            at
        })
        .collect();
    let policy = Policy {
        conf_dir: &config.conf_dir,
        now,
        renew_within_days,
    };
    let assessments = assess::assess_all(&servers, &names, &locations, &policy);
    Ok(Discovery {
        config,
        servers,
        names,
        assessments,
    })
}

/// The classified names of every server, in order: on two threads when there are many servers
/// (a 10,000-site host has some 50,000 names).
fn classify_names(servers: &[Server]) -> Vec<Vec<Name>> {
    let classify = |part: &[Server]| -> Vec<Vec<Name>> {
        part.iter()
            .map(|s| names::classify_all(s.server_names.iter().map(String::as_str)))
            .collect()
    };
    if servers.len() < 1000 {
        return classify(servers);
    }
    let (first, second) = servers.split_at(servers.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| classify(second));
        let mut names = classify(first);
        match other.join() {
            Ok(rest) => names.extend(rest),
            Err(_) => names.extend(classify(second)),
        }
        names
    })
}

impl Discovery {
    /// The file path and 1-based line of a server's `server` keyword.
    pub fn location(&self, index: usize) -> (&Path, u32) {
        let s = &self.servers[index];
        let file = &self.config.files[s.place.file];
        (&file.path, file.line_col(s.place.span.start).0)
    }
}
