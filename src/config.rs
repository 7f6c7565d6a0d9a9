//! The configuration file (design §3.4, §3.5): credentials and settings in TOML.
//!
//! [`Config::load`] reads it and refuses a file that holds credentials while group or others may read
//! it, or that group or others may change (it names commands we run); the fix is `chmod 600 FILE`.
//! [`Config::save`] writes it atomically with mode 0600. Environment
//! overrides (`ENC365_BASE_URL`) are applied by [`Config::apply_env`]; the file's path comes from
//! `--config` / `ENC365_CONFIG` (see [`config_path`]). [`validate_base_url`] enforces https, allowing
//! plain http only for loopback hosts (tests and `enc365-sim`).
//!
//! Each provider has its own table (`[encryption365]`, `[howssl]`, `[huawei_scm]`, `[acme]`, see
//! [`providers`]) and `provider = "…"` chooses the one every command uses. The flat Encryption365
//! keys of the first release (`base_url`, `client_id`, … at the top level) are still read into
//! `[encryption365]` (see [`file`]); saving always writes the table, so `register` migrates them.
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

mod cluster;
mod dns;
mod file;
mod providers;

pub use cluster::{ClusterBackend, ClusterSettings, EtcdCluster};
pub use dns::{DnsBackend, DnsProvider, DnsSettings, ValidationChoice};
pub use file::{flat_keys, provider_in};
pub use providers::{
    AcmeEab, AcmeSettings, DEFAULT_BASE_URL, Encryption365Settings, HowSslSettings, HuaweiBuy,
    HuaweiScmSettings, Provider, ProviderSettings,
};

/// Where the config file lives unless `--config` or `ENC365_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/enc365-nginx/config.toml";

/// The environment variable that overrides the Encryption365 `base_url`.
pub const BASE_URL_ENV: &str = "ENC365_BASE_URL";

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
/// Read through [`file::ConfigFile`] (which also accepts the flat Encryption365 keys of the first
/// release) and always written with one table per provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "file::ConfigFile", into = "file::ConfigFile")]
pub struct Config {
    /// Which CA API every command uses.
    pub provider: Provider,
    /// `[encryption365]`.
    pub encryption365: Encryption365Settings,
    /// `[howssl]`, if present.
    pub howssl: Option<HowSslSettings>,
    /// `[huawei_scm]`, if present.
    pub huawei_scm: Option<HuaweiScmSettings>,
    /// `[acme]`, if present.
    pub acme: Option<AcmeSettings>,
    /// The key type for new certificates.
    pub key_type: KeyType,
    /// The port `auto` adds as `listen N ssl`.
    pub https_port: u16,
    /// How to reload nginx; empty means detect systemd, else `nginx -s reload`.
    pub reload_command: String,
    /// Contact details.
    pub contact: Contact,
    /// Command run once before a run installs anything (`--pre-hook` wins).
    pub pre_hook: Option<String>,
    /// Command run once after a run's install step (`--post-hook` wins).
    pub post_hook: Option<String>,
    /// Command run once per certificate installed (`--deploy-hook` wins).
    pub deploy_hook: Option<String>,
    /// `[dns]`: DNS validation, if configured.
    pub dns: Option<DnsSettings>,
    /// `[cluster]`: shared state in etcd for a fleet of nodes, if configured.
    pub cluster: Option<ClusterSettings>,
}

fn default_https_port() -> u16 {
    443
}

impl Default for Config {
    fn default() -> Config {
        Config {
            provider: Provider::default(),
            encryption365: Encryption365Settings::default(),
            howssl: None,
            huawei_scm: None,
            acme: None,
            key_type: KeyType::default(),
            https_port: default_https_port(),
            reload_command: String::new(),
            contact: Contact::default(),
            pre_hook: None,
            post_hook: None,
            deploy_hook: None,
            dns: None,
            cluster: None,
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
    /// The file, its directory or what we keep beside it could be changed by another user.
    #[error("{reason}")]
    Untrusted {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the path and the fix.
        reason: String,
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
    /// `provider = "howssl"` but `[howssl]` holds no token.
    #[error(
        "{0} has no HowSSL token under [howssl]: run `enc365-nginx register --provider howssl \
         --token-stdin` with the token from the HowSSL site"
    )]
    NoHowSslToken(PathBuf),
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
        let meta = fs::metadata(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
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
        check_trusted(path, &meta)?;
        Ok(config)
    }

    /// Like [`Config::load`], but a missing file gives the defaults (for `register`).
    pub fn load_or_default(path: &Path) -> Result<Config, ConfigError> {
        match Config::load(path) {
            Err(ConfigError::Missing(_)) => Ok(Config::default()),
            other => other,
        }
    }

    /// Applies environment overrides (`ENC365_BASE_URL`, the Encryption365 base URL) read
    /// through `lookup`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(url) = lookup(BASE_URL_ENV).filter(|u| !u.is_empty()) {
            self.encryption365.base_url = url;
        }
        if let Some(bundle) = lookup(crate::ca::acme_http::CA_BUNDLE_ENV).filter(|b| !b.is_empty())
        {
            self.acme
                .get_or_insert_with(AcmeSettings::default)
                .ca_bundle = Some(bundle.into());
        }
    }

    /// Applies `--server URL`: the selected provider's base URL (Encryption365) or directory
    /// (ACME).
    pub fn apply_server(&mut self, server: Option<&str>) {
        let Some(url) = server.filter(|u| !u.is_empty()) else {
            return;
        };
        match self.provider {
            Provider::Acme => {
                self.acme
                    .get_or_insert_with(AcmeSettings::default)
                    .directory = Some(url.into());
            }
            Provider::Encryption365 => self.encryption365.base_url = url.to_string(),
            Provider::HowSsl => {
                self.howssl
                    .get_or_insert_with(HowSslSettings::default)
                    .base_url = Some(url.into());
            }
            Provider::HuaweiScm => {
                (self
                    .huawei_scm
                    .get_or_insert_with(HuaweiScmSettings::default))
                .base_url = Some(url.into());
            }
        }
    }

    /// True when the file holds a secret (an access token, API token, secret key or EAB key) of
    /// any provider.
    pub fn holds_credentials(&self) -> bool {
        let set = |s: Option<&Secret>| s.is_some_and(|s| !s.is_empty());
        self.encryption365.holds_credentials()
            || set(self.howssl.as_ref().and_then(|h| h.token.as_ref()))
            || set(self.huawei_scm.as_ref().and_then(|h| h.secret_key.as_ref()))
            || set(self
                .acme
                .as_ref()
                .and_then(|a| a.eab.as_ref())
                .map(|e| &e.hmac_key))
    }

    /// The product the chosen provider orders (Encryption365 `pid`), as text.
    pub fn product(&self) -> String {
        self.provider_settings().product()
    }

    /// The account id saved for `provider` with its secret (Encryption365 `client_id`), if any.
    pub fn saved_account(&self, provider: Provider) -> Option<String> {
        match provider {
            Provider::Encryption365 if self.encryption365.holds_credentials() => {
                self.encryption365.client_id.clone()
            }
            _ => None,
        }
    }

    /// Saves the credentials `register` got from `provider` into its table, with the base URL
    /// they were issued at (`registered_at`: the settings the registration was sent with).
    /// `None` when the provider has no registration to save.
    pub fn store_registration(
        &mut self,
        registered_at: &ProviderSettings,
        account_id: String,
        secret: Secret,
    ) -> Option<()> {
        match registered_at {
            ProviderSettings::Encryption365(at) => {
                // The token is only valid at the service that issued it: keep that URL with it.
                self.encryption365.base_url = at.base_url.clone();
                self.encryption365.client_id = Some(account_id);
                self.encryption365.access_token = Some(secret);
                Some(())
            }
            _ => None,
        }
    }

    /// The chosen provider with its table (an absent table gives that provider's defaults).
    pub fn provider_settings(&self) -> ProviderSettings {
        match self.provider {
            Provider::Encryption365 => ProviderSettings::Encryption365(self.encryption365.clone()),
            Provider::HowSsl => ProviderSettings::HowSsl(self.howssl.clone().unwrap_or_default()),
            Provider::HuaweiScm => {
                let mut scm = self.huawei_scm.clone().unwrap_or_default();
                scm.dns = self.dns.clone();
                ProviderSettings::HuaweiScm(scm)
            }
            Provider::Acme => ProviderSettings::Acme(self.acme.clone().unwrap_or_default()),
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

/// Refuses a config file another user could change or replace: owned by someone else than root
/// or the running user, in a directory group or others can write (or owned by someone else), or
/// with a link where our own files go beside it (`live/`, `nginx/`, `acme/`, `live/<site>/`).
fn check_trusted(path: &Path, meta: &fs::Metadata) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let untrusted = |reason: String| ConfigError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let me = nix::unistd::Uid::effective().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        let who = if me == 0 {
            "root".to_string()
        } else {
            me.to_string()
        };
        return Err(untrusted(format!(
            "{} is owned by uid {}, not by root or the user running enc365-nginx, and it names \
             the commands this tool runs (hooks, reload_command); fix it with: chown {who} {}",
            path.display(),
            meta.uid(),
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let beside = ["live", "nginx", "acme"].map(|d| dir.join(d));
    let problem = crate::fs_safe::untrusted(dir, true)
        .or_else(|| {
            beside
                .iter()
                .find_map(|d| crate::fs_safe::untrusted(d, false))
        })
        .or_else(|| crate::fs_safe::link_inside(&beside[0]));
    match problem {
        Some(why) => Err(untrusted(format!(
            "{why} (it holds {}, which names the commands this tool runs)",
            path.display()
        ))),
        None => Ok(()),
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

    fn parse(text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn flat_first_release_keys_are_read_into_the_encryption365_table() {
        let config = parse(
            "base_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\naccess_token = \"t\"\n\
             pid = 108\nenable_unconfirmed_endpoints = true\nkey_type = \"ecdsa-p256\"\n",
        )
        .expect("flat keys");
        let e = &config.encryption365;
        assert_eq!(e.base_url, "http://127.0.0.1:9");
        assert_eq!(e.client_id.as_deref(), Some("c"));
        assert_eq!(e.access_token.as_ref().map(Secret::expose), Some("t"));
        assert_eq!(e.pid, 108);
        assert!(e.enable_unconfirmed_endpoints);
        assert_eq!(config.key_type, KeyType::EcdsaP256);
        let table = parse(
            "key_type = \"ecdsa-p256\"\n[encryption365]\nbase_url = \"http://127.0.0.1:9\"\n\
             client_id = \"c\"\naccess_token = \"t\"\npid = 108\n\
             enable_unconfirmed_endpoints = true\n",
        )
        .expect("table");
        assert_eq!(table, config, "flat and table mean the same");
    }

    #[test]
    fn a_key_both_flat_and_in_the_table_is_an_error_naming_it() {
        for key in [
            "pid = 1",
            "base_url = \"https://a.example\"",
            "client_id = \"c\"",
        ] {
            let e = parse(&format!("{key}\n[encryption365]\n{key}\n")).expect_err(key);
            let name = key.split(' ').next().unwrap();
            assert!(e.contains(&format!("`{name}` is set twice")), "{e}");
            assert!(e.contains("[encryption365]"), "{e}");
        }
        // Different keys in the two places are fine.
        let config = parse("pid = 108\n[encryption365]\nclient_id = \"c\"\n").expect("mixed");
        assert_eq!(config.encryption365.pid, 108);
        assert_eq!(config.encryption365.client_id.as_deref(), Some("c"));
    }

    #[test]
    fn saving_writes_the_table_and_never_the_flat_keys() {
        let config = parse("client_id = \"c\"\naccess_token = \"t\"\npid = 108\n").expect("flat");
        let text = toml::to_string(&config).expect("serialize");
        let table: toml::Table = text.parse().expect("toml");
        for key in file::FLAT_KEYS {
            assert!(!table.contains_key(key), "{key} written flat:\n{text}");
        }
        let e365 = table["encryption365"].as_table().expect("[encryption365]");
        assert_eq!(e365["client_id"].as_str(), Some("c"));
        assert_eq!(e365["pid"].as_integer(), Some(108));
        assert_eq!(parse(&text).expect("reads back"), config);
    }

    #[test]
    fn every_provider_has_a_table_and_unknown_keys_inside_are_errors() {
        let config = parse(
            "provider = \"acme\"\n[howssl]\ntoken = \"h\"\nproduct_code = \"p\"\n\
             validity_period = 12\n[huawei_scm]\naccess_key = \"ak\"\nsecret_key = \"sk\"\n\
             region = \"cn-north-4\"\n[huawei_scm.buy]\ncert_type = \"DV_SSL_CERT\"\n\
             [acme]\ndirectory = \"letsencrypt\"\n[acme.eab]\nkid = \"k\"\nhmac_key = \"m\"\n",
        )
        .expect("all tables");
        assert_eq!(config.provider, Provider::Acme);
        assert!(config.holds_credentials());
        assert_eq!(config.provider_settings().provider(), Provider::Acme);
        assert_eq!(config.howssl.as_ref().unwrap().validity_period, Some(12));
        let debug = format!("{config:?}");
        for secret in ["\"h\"", "\"sk\"", "\"m\""] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        for (text, key) in [
            ("[howssl]\ntokn = \"x\"\n", "tokn"),
            ("[huawei_scm]\nsecret = \"x\"\n", "secret"),
            ("[huawei_scm.buy]\nbrand = \"x\"\n", "brand"),
            ("[acme]\ndirectory_url = \"x\"\n", "directory_url"),
            ("[encryption365]\nbase = \"x\"\n", "base"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn provider_names_round_trip_and_unknown_ones_list_the_choices() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
            let config = parse(&format!("provider = \"{p}\"\n")).expect("provider");
            assert_eq!(config.provider_settings().provider(), p);
        }
        let e = "letsencrypt".parse::<Provider>().expect_err("unknown");
        assert!(e.contains("encryption365, howssl, huawei-scm, acme"), "{e}");
        assert_eq!(Provider::HuaweiScm.table(), "huawei_scm");
    }

    #[test]
    fn the_environment_overrides_only_the_encryption365_base_url() {
        let mut config = parse("[howssl]\nbase_url = \"https://h.example\"\n").expect("howssl");
        config.apply_env(|k| (k == BASE_URL_ENV).then(|| "http://127.0.0.1:7".to_string()));
        assert_eq!(config.encryption365.base_url, "http://127.0.0.1:7");
        assert_eq!(
            config.howssl.unwrap().base_url.as_deref(),
            Some("https://h.example")
        );
    }
}
