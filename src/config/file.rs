//! The config file's on-disk shape: [`ConfigFile`] is what is parsed and written; [`Config`] is
//! what the rest of the tool uses.
//!
//! Reading accepts the flat Encryption365 keys of the first release (`base_url`, `client_id`,
//! `access_token`, `pid`, `enable_unconfirmed_endpoints` at the top level) and moves them into the
//! `[encryption365]` table; one key set both flat and in the table is an error, since either could
//! be the one meant. Writing never emits flat keys, so the first save (`register`) migrates a file.
//!
//! Not here: checking file modes or the base URL (the parent module).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cluster::ClusterSettings;
use super::dns::DnsSettings;
use super::providers::{
    AcmeSettings, Encryption365Settings, HowSslSettings, HuaweiScmSettings, Provider,
};
use super::{Config, Contact, default_https_port};
use crate::keys::KeyType;
use crate::secret::Secret;

/// The Encryption365 keys of the first release that may still stand at the top level.
pub const FLAT_KEYS: [&str; 5] = [
    "base_url",
    "client_id",
    "access_token",
    "pid",
    "enable_unconfirmed_endpoints",
];

/// The Encryption365 settings as written, every key optional (flat or in the table).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption365Keys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enable_unconfirmed_endpoints: Option<bool>,
}

/// The file as written: shared keys, the flat first-release keys (read, never written), and one
/// table per provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    provider: Provider,
    #[serde(default)]
    key_type: KeyType,
    #[serde(default = "default_https_port")]
    https_port: u16,
    #[serde(default)]
    reload_command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pre_hook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    post_hook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deploy_hook: Option<String>,
    #[serde(default, skip_serializing)]
    base_url: Option<String>,
    #[serde(default, skip_serializing)]
    client_id: Option<String>,
    #[serde(default, skip_serializing)]
    access_token: Option<Secret>,
    #[serde(default, skip_serializing)]
    pid: Option<u64>,
    #[serde(default, skip_serializing)]
    enable_unconfirmed_endpoints: Option<bool>,
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    contact: Contact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption365: Option<Encryption365Keys>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    howssl: Option<HowSslSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    huawei_scm: Option<HuaweiScmSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acme: Option<AcmeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns: Option<DnsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterSettings>,
}

/// One key from the flat form or the table, refusing both.
fn one_of<T>(key: &str, flat: Option<T>, table: Option<T>) -> Result<Option<T>, String> {
    match (flat, table) {
        (Some(_), Some(_)) => Err(format!(
            "`{key}` is set twice, at the top level and under [encryption365]; keep the one \
             under [encryption365] and delete the top-level line"
        )),
        (flat, table) => Ok(table.or(flat)),
    }
}

impl TryFrom<ConfigFile> for Config {
    type Error = String;

    fn try_from(file: ConfigFile) -> Result<Config, String> {
        let flat = Encryption365Keys {
            base_url: file.base_url,
            client_id: file.client_id,
            access_token: file.access_token,
            pid: file.pid,
            enable_unconfirmed_endpoints: file.enable_unconfirmed_endpoints,
        };
        let table = file.encryption365.unwrap_or_default();
        let defaults = Encryption365Settings::default();
        let encryption365 = Encryption365Settings {
            base_url: one_of("base_url", flat.base_url, table.base_url)?
                .unwrap_or(defaults.base_url),
            client_id: one_of("client_id", flat.client_id, table.client_id)?,
            access_token: one_of("access_token", flat.access_token, table.access_token)?,
            pid: one_of("pid", flat.pid, table.pid)?.unwrap_or(defaults.pid),
            enable_unconfirmed_endpoints: one_of(
                "enable_unconfirmed_endpoints",
                flat.enable_unconfirmed_endpoints,
                table.enable_unconfirmed_endpoints,
            )?
            .unwrap_or(defaults.enable_unconfirmed_endpoints),
        };
        Ok(Config {
            provider: file.provider,
            encryption365,
            howssl: file.howssl,
            huawei_scm: file.huawei_scm,
            acme: file.acme,
            key_type: file.key_type,
            https_port: file.https_port,
            reload_command: file.reload_command,
            contact: file.contact,
            pre_hook: file.pre_hook,
            post_hook: file.post_hook,
            deploy_hook: file.deploy_hook,
            dns: file.dns,
            cluster: file.cluster,
        })
    }
}

impl From<Config> for ConfigFile {
    fn from(config: Config) -> ConfigFile {
        let e = config.encryption365;
        ConfigFile {
            provider: config.provider,
            key_type: config.key_type,
            https_port: config.https_port,
            reload_command: config.reload_command,
            pre_hook: config.pre_hook,
            post_hook: config.post_hook,
            deploy_hook: config.deploy_hook,
            base_url: None,
            client_id: None,
            access_token: None,
            pid: None,
            enable_unconfirmed_endpoints: None,
            contact: config.contact,
            encryption365: Some(Encryption365Keys {
                base_url: Some(e.base_url),
                client_id: e.client_id,
                access_token: e.access_token,
                pid: Some(e.pid),
                enable_unconfirmed_endpoints: Some(e.enable_unconfirmed_endpoints),
            }),
            howssl: config.howssl,
            huawei_scm: config.huawei_scm,
            acme: config.acme,
            dns: config.dns,
            cluster: config.cluster,
        }
    }
}

/// The flat first-release keys the config file at `path` still has at its top level (empty when
/// the file is absent or unreadable: loading it reports that).
pub fn flat_keys(path: &Path) -> Vec<&'static str> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    FLAT_KEYS
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect()
}

/// The `provider` the config file at `path` names, read leniently: `None` when the file is absent,
/// unreadable or invalid (loading it later reports that) or names no provider.
pub fn provider_in(path: &Path) -> Option<Provider> {
    let text = std::fs::read_to_string(path).ok()?;
    let table = text.parse::<toml::Table>().ok()?;
    table.get("provider")?.as_str()?.parse().ok()
}
