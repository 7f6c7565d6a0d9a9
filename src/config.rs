//! The configuration file (design §3.4, §3.5): credentials and settings in TOML.
//!
//! [`Config::load`] reads it and refuses a file that holds credentials while group or others may read
//! it, or that group or others may change (it names commands we run); the fix is `chmod 600 FILE`.
//! [`Config::save`] writes it atomically with mode 0600. Environment
//! overrides (`ENC365_BASE_URL`) are applied by [`Config::apply_env`]; the file's path comes from
//! `--config` / `ENC365_CONFIG` (see [`config_path`]). [`validate_base_url`] enforces https, allowing
//! plain http only for loopback hosts (tests and `enc365-sim`).
//!
//! Not here: talking to the CA. Saving rewrites the whole file, so comments in it are not kept.

use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::GlobalOpts;
use crate::keys::KeyType;
use crate::secret::Secret;

/// Where the config file lives unless `--config` or `ENC365_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/enc365-nginx/config.toml";

/// The Encryption365 API base URL used when the config names none.
pub const DEFAULT_BASE_URL: &str = "https://encryption365.trustocean.com";

/// The environment variable that overrides `base_url`.
pub const BASE_URL_ENV: &str = "ENC365_BASE_URL";

/// Which certificate authority API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Provider {
    /// TrustOcean Encryption365 (the default).
    #[default]
    #[serde(rename = "encryption365")]
    Encryption365,
    /// HowSSL.
    #[serde(rename = "howssl")]
    HowSsl,
    /// Huawei Cloud SSL Certificate Manager.
    #[serde(rename = "huawei-scm")]
    HuaweiScm,
}

impl Provider {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Encryption365 => "encryption365",
            Provider::HowSsl => "howssl",
            Provider::HuaweiScm => "huawei-scm",
        }
    }
}

/// Contact details sent with orders that need them (OV/EV) and shown to the CA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Contact e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Contact person's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Contact phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Contact person's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Organisation name (OV/EV products only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Two-letter country code (OV/EV products only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Contact {
    /// True when no contact field is set.
    pub fn is_empty(&self) -> bool {
        *self == Contact::default()
    }
}

/// The settings in the config file. Unknown keys are an error, so typos do not pass silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which CA API to use.
    #[serde(default)]
    pub provider: Provider,
    /// The CA API base URL (https, or http for loopback hosts only).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The device account id, written by `register`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The device access token, written by `register`. Never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    /// The product id to order (see `enc365-nginx products`).
    #[serde(default = "default_pid")]
    pub pid: u64,
    /// The key type for new certificates.
    #[serde(default)]
    pub key_type: KeyType,
    /// The port `auto` adds as `listen N ssl`.
    #[serde(default = "default_https_port")]
    pub https_port: u16,
    /// How to reload nginx; empty means detect systemd, else `nginx -s reload`.
    #[serde(default)]
    pub reload_command: String,
    /// Also use the CA endpoints whose paths are guessed, not documented (`/cert/revoke`,
    /// `/cert/change_dcv`). Off unless set.
    #[serde(default)]
    pub enable_unconfirmed_endpoints: bool,
    /// Contact details.
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    pub contact: Contact,
    /// Command run once before a run installs anything (`--pre-hook` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_hook: Option<String>,
    /// Command run once after a run's install step (`--post-hook` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_hook: Option<String>,
    /// Command run once per certificate installed (`--deploy-hook` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_hook: Option<String>,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

fn default_pid() -> u64 {
    100
}

fn default_https_port() -> u16 {
    443
}

impl Default for Config {
    fn default() -> Config {
        Config {
            provider: Provider::default(),
            base_url: default_base_url(),
            client_id: None,
            access_token: None,
            pid: default_pid(),
            key_type: KeyType::default(),
            https_port: default_https_port(),
            reload_command: String::new(),
            enable_unconfirmed_endpoints: false,
            contact: Contact::default(),
            pre_hook: None,
            post_hook: None,
            deploy_hook: None,
        }
    }
}

/// The device credentials every CA call after `register` needs.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The device account id.
    pub client_id: String,
    /// The device access token (redacted in Debug).
    pub access_token: Secret,
}

/// What can go wrong with the config file. Every variant is a configuration error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("no config file at {0}: run `enc365-nginx register` first, or pass --config FILE")]
    Missing(PathBuf),
    /// The file could not be read.
    #[error("could not read {path}: {source}")]
    Unreadable {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for our keys.
    #[error("{path} is not a valid config file: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        message: String,
    },
    /// The file holds credentials but group or others can read it.
    #[error(
        "{path} holds credentials but group or others can access it (mode {mode:03o}); \
         fix it with: chmod 600 {path}"
    )]
    TooOpen {
        /// The config file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Group or others may change the file (and so the commands it makes us run).
    #[error(
        "{path} can be changed by group or others (mode {mode:03o}), and it names the commands \
         this tool runs (hooks, reload_command); fix it with: chmod 600 {path}"
    )]
    Writable {
        /// The config file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `base_url` is not acceptable.
    #[error("base URL {url:?} {reason}")]
    BadBaseUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `client_id` / `access_token` are missing.
    #[error(
        "{0} has no client_id/access_token: run `enc365-nginx register --username EMAIL` first"
    )]
    NoCredentials(PathBuf),
    /// The file could not be written.
    #[error("could not write {path}: {message}")]
    Unwritable {
        /// The config file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The config file path: `--config` / `ENC365_CONFIG` (clap reads both), else [`DEFAULT_CONFIG_PATH`].
pub fn config_path(global: &GlobalOpts) -> PathBuf {
    global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            Err(source) => {
                return Err(ConfigError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: parse_error_message(&text, &e),
        })?;
        if config.https_port == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "key `https_port`: 0 is not a port; set 1-65535 (default 443)".into(),
            });
        }
        let mode = fs::metadata(path)
            .map_err(|source| ConfigError::Unreadable {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode()
            & 0o777;
        if config.holds_credentials() && mode & 0o077 != 0 {
            return Err(ConfigError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
        // The file names commands we run (hooks, reload_command): nobody else may change it.
        if mode & 0o022 != 0 {
            return Err(ConfigError::Writable {
                path: path.to_path_buf(),
                mode,
            });
        }
        Ok(config)
    }

    /// Like [`Config::load`], but a missing file gives the defaults (for `register`).
    pub fn load_or_default(path: &Path) -> Result<Config, ConfigError> {
        match Config::load(path) {
            Err(ConfigError::Missing(_)) => Ok(Config::default()),
            other => other,
        }
    }

    /// Applies environment overrides (`ENC365_BASE_URL`) read through `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(url) = lookup(BASE_URL_ENV).filter(|u| !u.is_empty()) {
            self.base_url = url;
        }
    }

    /// True when the file holds a secret (an access token).
    pub fn holds_credentials(&self) -> bool {
        self.access_token.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// The device credentials, or a message saying to run `register`.
    pub fn credentials(&self, path: &Path) -> Result<Credentials, ConfigError> {
        match (&self.client_id, &self.access_token) {
            (Some(id), Some(token)) if !id.is_empty() && !token.is_empty() => Ok(Credentials {
                client_id: id.clone(),
                access_token: token.clone(),
            }),
            _ => Err(ConfigError::NoCredentials(path.to_path_buf())),
        }
    }

    /// Writes the config to `path` atomically with mode 0600, creating its directory (0755) if
    /// needed.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let unwritable = |message: String| ConfigError::Unwritable {
            path: path.to_path_buf(),
            message,
        };
        let text = toml::to_string(self).map_err(|e| unwritable(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            crate::store::ensure_dir(dir, 0o755).map_err(|e| unwritable(format!("{e:#}")))?;
        }
        crate::store::write_atomic(path, text.as_bytes(), 0o600)
            .map_err(|e| unwritable(format!("{e:#}")))
    }
}

/// The parser's explanation with its line and column, without the excerpt of the file the TOML
/// parser shows: that line may hold the access token.
fn parse_error_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // A wrong value does not name its key in the parser's message: name it (keys are not
    // secret; values may be).
    let line_text = text[before.len() - before.rsplit('\n').next().map_or(0, str::len)..]
        .lines()
        .next()
        .unwrap_or("");
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    match key {
        Some(key) if !message.contains(&format!("`{key}`")) => {
            format!("line {line}, column {column}: key `{key}`: {message}")
        }
        _ => format!("line {line}, column {column}: {message}"),
    }
}

/// Checks a CA base URL: it must be https, or http to a loopback host (127.0.0.0/8, ::1,
/// localhost). Returns the parsed URL.
pub fn validate_base_url(url: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |reason: &str| ConfigError::BadBaseUrl {
        url: url.to_string(),
        reason: reason.into(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not contain a user name or password"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("has no host"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback_host(host) => Ok(parsed),
        "http" => Err(bad(
            "uses plain http, which is allowed only for loopback hosts (127.0.0.1, ::1, \
             localhost); use https",
        )),
        _ => Err(bad("must start with https://")),
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1 (brackets allowed).
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        assert!(validate_base_url("https://encryption365.trustocean.com").is_ok());
        assert!(validate_base_url("http://127.0.0.1:8080").is_ok());
        assert!(validate_base_url("http://127.1.2.3:8080/").is_ok());
        assert!(validate_base_url("http://[::1]:8080").is_ok());
        assert!(validate_base_url("http://localhost:9").is_ok());
        assert!(validate_base_url("http://encrypt365.trustocean.com").is_err());
        assert!(validate_base_url("http://10.0.0.1").is_err());
        assert!(validate_base_url("ftp://127.0.0.1").is_err());
        assert!(validate_base_url("https://u:p@example.com").is_err());
        assert!(validate_base_url("not a url").is_err());
    }
}
