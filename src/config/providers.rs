//! The per-provider tables of the config file — `[encryption365]`, `[howssl]`, `[huawei_scm]`,
//! `[acme]` — and [`Provider`], the `provider = "…"` key that chooses among them.
//!
//! Each table holds one provider's credentials and settings, so switching `provider` never mixes
//! one CA's token with another's URL. Encryption365 and HowSSL are built so far; the other tables are
//! accepted (unknown keys inside them are errors) so a config can be prepared ahead of time.
//! [`ProviderSettings`] is what the CA factory (`crate::ca::factory`) is built from: the chosen
//! provider with its table.
//!
//! Not here: reading the file, the flat keys of the first release and their migration (the parent
//! module), or talking to any CA.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConfigError, Credentials};
use crate::secret::Secret;

/// The Encryption365 API base URL used when the config names none.
pub const DEFAULT_BASE_URL: &str = "https://encryption365.trustocean.com";

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
    /// An ACME CA (RFC 8555).
    #[serde(rename = "acme")]
    Acme,
}

impl Provider {
    /// Every provider, in the order the documentation lists them.
    pub const ALL: [Provider; 4] = [
        Provider::Encryption365,
        Provider::HowSsl,
        Provider::HuaweiScm,
        Provider::Acme,
    ];

    /// The name used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Encryption365 => "encryption365",
            Provider::HowSsl => "howssl",
            Provider::HuaweiScm => "huawei-scm",
            Provider::Acme => "acme",
        }
    }

    /// The name of the provider's table in the config file (`huawei_scm` for `huawei-scm`).
    pub fn table(self) -> &'static str {
        match self {
            Provider::HuaweiScm => "huawei_scm",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(text: &str) -> Result<Provider, String> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown provider {text:?}; use one of {}", names.join(", "))
            })
    }
}

/// `[encryption365]`: the TrustOcean Encryption365 API (providers.md §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption365Settings {
    /// The API base URL (https, or http for loopback hosts only); `ENC365_BASE_URL` overrides it.
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
    /// Also use the endpoints whose paths are guessed, not documented (`/cert/revoke`,
    /// `/cert/change_dcv`). Off unless set.
    #[serde(default)]
    pub enable_unconfirmed_endpoints: bool,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

fn default_pid() -> u64 {
    100
}

impl Default for Encryption365Settings {
    fn default() -> Encryption365Settings {
        Encryption365Settings {
            base_url: default_base_url(),
            client_id: None,
            access_token: None,
            pid: default_pid(),
            enable_unconfirmed_endpoints: false,
        }
    }
}

impl Encryption365Settings {
    /// True when the table holds an access token.
    pub fn holds_credentials(&self) -> bool {
        self.access_token.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// The device credentials, or a message saying to run `register` (`path`: the config file).
    pub fn credentials(&self, path: &Path) -> Result<Credentials, ConfigError> {
        match (&self.client_id, &self.access_token) {
            (Some(id), Some(token)) if !id.is_empty() && !token.is_empty() => Ok(Credentials {
                client_id: id.clone(),
                access_token: token.clone(),
            }),
            _ => Err(ConfigError::NoCredentials(path.to_path_buf())),
        }
    }
}

/// `[howssl]`: the HowSSL API (providers.md §2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HowSslSettings {
    /// The API base URL (default `https://api.howssl.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The API token the HowSSL administrator issued. Never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The product to order (`product_code` of `Product_info/lists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    /// The validity to order, in months (12, 24, 36, 48 or 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_period: Option<u32>,
}

impl HowSslSettings {
    /// The API base URL: `base_url`, or `https://api.howssl.com`.
    pub fn base_url(&self) -> &str {
        (self.base_url.as_deref())
            .filter(|u| !u.is_empty())
            .unwrap_or(crate::ca::howssl::DEFAULT_BASE_URL)
    }

    /// True when the table holds a token.
    pub fn holds_credentials(&self) -> bool {
        self.token.as_ref().is_some_and(|t| !t.is_empty())
    }
}

/// `[huawei_scm]`: Huawei Cloud SSL Certificate Manager (providers.md §3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuaweiScmSettings {
    /// The SCM endpoint (default: from `region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The access key (AK) requests are signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// The secret key (SK). Never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
    /// The region (`cn-north-4`, `ap-southeast-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The project id (for the v2 paths: revoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The already-bought certificate (`scs…`) to apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// What to buy when no certificate is chosen; without this table nothing is ever bought.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy: Option<HuaweiBuy>,
    /// The applicant's name sent with every application (required by SCM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicant_name: Option<String>,
    /// The applicant's phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicant_phone: Option<String>,
    /// The applicant's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applicant_email: Option<String>,
    /// OV/EV only: the company's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// OV/EV only: the company's department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_unit: Option<String>,
    /// OV/EV only: the company's province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_province: Option<String>,
    /// OV/EV only: the company's city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_city: Option<String>,
    /// OV/EV only: the company's country, two letters (`CN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Ask SCM to push the DNS validation records to Huawei Cloud DNS itself (`auto_dns_auth`):
    /// `true` always (for DNS applications), `false` never (our own `[dns]` publisher does it);
    /// unset: when `[dns]` publishes every name of the application through `huaweicloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_dns_auth: Option<bool>,
    /// Not a key of the table: `[dns]`, copied here by `Config::provider_settings` so the client
    /// can tell whether the names' DNS is at Huawei Cloud DNS.
    #[serde(skip)]
    pub dns: Option<super::DnsSettings>,
}

/// `[huawei_scm.buy]`: the purchase parameters of `POST /v3/scm/certificates/buy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuaweiBuy {
    /// `cert_brand` (e.g. `GEOTRUST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_brand: Option<String>,
    /// `cert_type` (e.g. `DV_SSL_CERT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_type: Option<String>,
    /// `domain_type` (`SINGLE_DOMAIN`, `MULTI_DOMAIN`, `WILDCARD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<String>,
    /// `effective_time` in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_time: Option<u32>,
    /// `domain_numbers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_numbers: Option<u32>,
}

/// `[acme]`: an ACME CA (RFC 8555): Let's Encrypt, ZeroSSL, Pebble, an internal CA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSettings {
    /// The directory URL, or a preset name (`letsencrypt`, `letsencrypt-staging`, `zerossl`);
    /// `--server` overrides it. Default: `letsencrypt-staging`, so a first try costs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Where the account key is kept (JSON with the PKCS#8 key, 0600); default
    /// `<config dir>/acme/<directory host>.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<PathBuf>,
    /// Contact URLs for the account (`mailto:admin@example.com`), written by `register`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// External account binding, for CAs that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab: Option<AcmeEab>,
    /// Extra trusted roots (PEM) for the directory's TLS certificate (a private ACME server);
    /// `ENC365_CA_BUNDLE` overrides it. Verification is never switched off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// The chain to install when the CA offers several: the one whose topmost certificate was
    /// issued by this common name (`ISRG Root X1`); the CA's default chain when none matches.
    /// `--preferred-chain` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_chain: Option<String>,
}

/// The ACME directory presets `directory = "…"` accepts, with their URLs.
pub const ACME_PRESETS: [(&str, &str); 3] = [
    (
        "letsencrypt",
        "https://acme-v02.api.letsencrypt.org/directory",
    ),
    (
        "letsencrypt-staging",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ),
    ("zerossl", "https://acme.zerossl.com/v2/DV90"),
];

impl AcmeSettings {
    /// The directory URL: a preset's URL, the URL as written, or Let's Encrypt's staging
    /// directory when none is set.
    pub fn directory_url(&self) -> String {
        let name = self.directory.as_deref().unwrap_or("letsencrypt-staging");
        ACME_PRESETS
            .iter()
            .find(|(preset, _)| *preset == name)
            .map_or_else(|| name.to_string(), |(_, url)| url.to_string())
    }
}

/// `[acme.eab]`: the external account binding a CA issued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeEab {
    /// The key id.
    pub kid: String,
    /// The HMAC key (base64url). Never printed.
    pub hmac_key: Secret,
}

/// The chosen provider with its table: what the CA factory is built from.
#[derive(Debug, Clone, PartialEq)]
// Built once per command from the config: the size of the `[huawei_scm]` table does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ProviderSettings {
    /// `provider = "encryption365"` and `[encryption365]` (with `ENC365_BASE_URL` applied).
    Encryption365(Encryption365Settings),
    /// `provider = "howssl"` and `[howssl]`.
    HowSsl(HowSslSettings),
    /// `provider = "huawei-scm"` and `[huawei_scm]`.
    HuaweiScm(HuaweiScmSettings),
    /// `provider = "acme"` and `[acme]`.
    Acme(AcmeSettings),
}

impl ProviderSettings {
    /// Which provider these settings are for.
    pub fn provider(&self) -> Provider {
        match self {
            ProviderSettings::Encryption365(_) => Provider::Encryption365,
            ProviderSettings::HowSsl(_) => Provider::HowSsl,
            ProviderSettings::HuaweiScm(_) => Provider::HuaweiScm,
            ProviderSettings::Acme(_) => Provider::Acme,
        }
    }

    /// The product setting of this provider, as (key in its table, value): Encryption365
    /// `pid`, HowSSL `product_code`, Huawei `certificate_id`; `None` when it has none.
    pub fn product_setting(&self) -> Option<(&'static str, Value)> {
        match self {
            ProviderSettings::Encryption365(s) => Some(("pid", Value::from(s.pid))),
            ProviderSettings::HowSsl(s) => s
                .product_code
                .clone()
                .map(|c| ("product_code", Value::from(c))),
            ProviderSettings::HuaweiScm(s) => s
                .certificate_id
                .clone()
                .map(|c| ("certificate_id", Value::from(c))),
            ProviderSettings::Acme(_) => None,
        }
    }

    /// The product to order as text (`""` when the provider has no product setting).
    pub fn product(&self) -> String {
        match self.product_setting() {
            Some((_, Value::String(text))) => text,
            Some((_, other)) => other.to_string(),
            None => String::new(),
        }
    }

    /// What `account` shows about these settings, as (label, JSON key, value); never a secret.
    pub fn summary(&self) -> Vec<(&'static str, &'static str, Value)> {
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
        let mut items = match self {
            ProviderSettings::Encryption365(s) => vec![
                (
                    "Device",
                    "client_id",
                    Value::from(s.client_id.clone().unwrap_or_default()),
                ),
                ("API", "base_url", Value::from(s.base_url.clone())),
            ],
            ProviderSettings::HowSsl(s) => vec![("API", "base_url", text(&s.base_url))],
            ProviderSettings::HuaweiScm(s) => vec![
                ("Access key", "access_key", text(&s.access_key)),
                ("Region", "region", text(&s.region)),
            ],
            ProviderSettings::Acme(s) => {
                vec![("Directory", "directory", Value::from(s.directory_url()))]
            }
        };
        if let Some((key, value)) = self.product_setting() {
            items.push(("Product", key, value));
        }
        items
    }
}
