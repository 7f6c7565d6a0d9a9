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
    let names: Vec<Vec<Name>> = servers
        .iter()
        .map(|s| names::classify_all(s.server_names.iter().map(String::as_str)))
        .collect();
    let locations: Vec<String> = servers
        .iter()
        .map(|s| {
            let file = &config.files[s.place.file];
            format!(
                "{}:{}",
                file.path.display(),
                file.line_col(s.place.span.start).0
            )
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

impl Discovery {
    /// The file path and 1-based line of a server's `server` keyword.
    pub fn location(&self, index: usize) -> (&Path, u32) {
        let s = &self.servers[index];
        let file = &self.config.files[s.place.file];
        (&file.path, file.line_col(s.place.span.start).0)
    }
}
