//! The one place a CA client is built: from the config's [`ProviderSettings`] to a
//! `Box<dyn CertificateAuthority>` (orders) or a `Box<dyn AccountApi>` (register, products,
//! account). Commands never name a provider type; they ask here.
//!
//! It also says which providers this version can use ([`check_available`]): selecting one that is
//! not built yet is refused with one message, whatever the command. The context calls that check
//! before any command runs; the builders repeat it, so nothing can reach a CA it does not know.
//!
//! Not here: reading the config file (the context hands the settings in) or nginx.

use std::path::{Path, PathBuf};

use super::account::AccountApi;
use super::acme::Acme;
use super::enc365::{ClientOptions, Enc365};
use super::howssl::{HowSsl, HowSslOptions};
use super::huawei_scm::{HuaweiScm, ScmOptions, TEST_CLOCK_OFFSET_ENV};
use super::{CaError, CertificateAuthority};
use crate::config::{
    AcmeSettings, BASE_URL_ENV, ConfigError, Encryption365Settings, HowSslSettings,
    HuaweiScmSettings, Provider, ProviderSettings,
};

/// The providers this version can talk to.
pub const AVAILABLE: [Provider; 4] = [
    Provider::Encryption365,
    Provider::HowSsl,
    Provider::HuaweiScm,
    Provider::Acme,
];

/// Why no client could be built. Every variant is a configuration error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider is known but not built yet.
    #[error(
        "provider \"{0}\" is not available in this version of enc365-nginx, which can only use \
         \"encryption365\", \"howssl\", \"huawei-scm\" or \"acme\"; nothing was sent to any CA"
    )]
    NotAvailable(Provider),
    /// The provider's table lacks credentials, or is otherwise not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `[howssl]` base URL is not acceptable.
    #[error(transparent)]
    HowSslUrl(#[from] BadHowSslUrl),
    /// The ACME settings are not usable (directory URL, CA bundle), or no account is registered.
    #[error("{error}; fix [acme] in {path}")]
    Acme {
        /// What the client said.
        error: CaError,
        /// The config file.
        path: PathBuf,
    },
    /// The `[huawei_scm]` settings are not usable (endpoint, region, credentials).
    #[error("{error}; fix [huawei_scm] in {path}")]
    HuaweiScm {
        /// What the client said.
        error: CaError,
        /// The config file.
        path: PathBuf,
    },
    /// The base URL is not acceptable.
    #[error(
        "{error}; fix `base_url` under [encryption365] in {path} (or the {BASE_URL_ENV} \
         environment variable)"
    )]
    BadBaseUrl {
        /// What the client said.
        error: CaError,
        /// The config file.
        path: PathBuf,
    },
}

/// The `[howssl]` base URL is not acceptable (kept apart from [`ProviderError::BadBaseUrl`],
/// which names the Encryption365 table and variable).
#[derive(Debug, thiserror::Error)]
#[error("{error}; fix `base_url` under [howssl] in {path}")]
pub struct BadHowSslUrl {
    /// What the client said.
    pub error: CaError,
    /// The config file.
    pub path: PathBuf,
}

/// Refuses a provider this version cannot use yet.
pub fn check_available(provider: Provider) -> Result<(), ProviderError> {
    if AVAILABLE.contains(&provider) {
        Ok(())
    } else {
        Err(ProviderError::NotAvailable(provider))
    }
}

/// The chosen CA for orders, with its credentials (`config_path` names the file in errors).
pub fn certificate_authority(
    settings: &ProviderSettings,
    config_path: &Path,
) -> Result<Box<dyn CertificateAuthority>, ProviderError> {
    check_available(settings.provider())?;
    match settings {
        ProviderSettings::Encryption365(s) => Ok(Box::new(encryption365(s, config_path, true)?)),
        ProviderSettings::HowSsl(s) => Ok(Box::new(howssl(s, config_path, true)?)),
        ProviderSettings::HuaweiScm(s) => Ok(Box::new(huawei_scm(s, config_path, true)?)),
        ProviderSettings::Acme(s) => Ok(Box::new(acme(s, config_path, true)?)),
    }
}

/// The chosen provider's account operations. `with_credentials` false gives a client for
/// registering (no credentials needed yet).
pub fn account_api(
    settings: &ProviderSettings,
    config_path: &Path,
    with_credentials: bool,
) -> Result<Box<dyn AccountApi>, ProviderError> {
    check_available(settings.provider())?;
    match settings {
        ProviderSettings::Encryption365(s) => {
            Ok(Box::new(encryption365(s, config_path, with_credentials)?))
        }
        ProviderSettings::HowSsl(s) => Ok(Box::new(howssl(s, config_path, with_credentials)?)),
        ProviderSettings::HuaweiScm(s) => {
            Ok(Box::new(huawei_scm(s, config_path, with_credentials)?))
        }
        ProviderSettings::Acme(s) => Ok(Box::new(acme(s, config_path, with_credentials)?)),
    }
}

/// The Huawei Cloud SCM client; `with_credentials` requires the access key pair (a missing one
/// says to register). The clock offset of [`TEST_CLOCK_OFFSET_ENV`] (tests only) is applied.
pub fn huawei_scm(
    settings: &HuaweiScmSettings,
    config_path: &Path,
    with_credentials: bool,
) -> Result<HuaweiScm, ProviderError> {
    let wrap = |error| ProviderError::HuaweiScm {
        error,
        path: config_path.to_path_buf(),
    };
    let has = settings.access_key.as_ref().is_some_and(|a| !a.is_empty())
        && settings.secret_key.as_ref().is_some_and(|s| !s.is_empty());
    if with_credentials && !has {
        return Err(wrap(CaError::Invalid(
            "no Huawei Cloud access key: run `enc365-nginx register --provider huawei-scm \
             --access-key AK` (the secret key is read from standard input or a prompt)"
                .into(),
        )));
    }
    let clock_offset = std::env::var(TEST_CLOCK_OFFSET_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    HuaweiScm::new(ScmOptions {
        settings: settings.clone(),
        clock_offset,
    })
    .map_err(wrap)
}

fn encryption365(
    settings: &Encryption365Settings,
    config_path: &Path,
    with_credentials: bool,
) -> Result<Enc365, ProviderError> {
    let credentials = if with_credentials {
        Some(settings.credentials(config_path)?)
    } else {
        None
    };
    let mut options = ClientOptions {
        unconfirmed_endpoints: settings.enable_unconfirmed_endpoints,
        ..ClientOptions::default()
    };
    if let Some(timeout) = http_timeout_override() {
        options.timeout = timeout;
        options.connect_timeout = options.connect_timeout.min(timeout);
        options.retry_backoff = timeout / 10;
    }
    Enc365::new(&settings.base_url, credentials, options).map_err(|error| {
        ProviderError::BadBaseUrl {
            error,
            path: config_path.to_path_buf(),
        }
    })
}

/// The HowSSL client; `with_credentials` requires the token (a missing one says to register).
fn howssl(
    settings: &HowSslSettings,
    config_path: &Path,
    with_credentials: bool,
) -> Result<HowSsl, ProviderError> {
    let token = settings.token.clone().filter(|t| !t.is_empty());
    if with_credentials && token.is_none() {
        return Err(ProviderError::Config(ConfigError::NoHowSslToken(
            config_path.to_path_buf(),
        )));
    }
    let options = HowSslOptions {
        token,
        product_code: settings.product_code.clone(),
        validity_months: settings.validity_period,
    };
    HowSsl::new(settings.base_url(), options).map_err(|error| {
        ProviderError::HowSslUrl(BadHowSslUrl {
            error,
            path: config_path.to_path_buf(),
        })
    })
}

/// The ACME client for `settings`; `with_credentials` refuses when no account is registered yet.
pub fn acme(
    settings: &AcmeSettings,
    config_path: &Path,
    with_credentials: bool,
) -> Result<Acme, ProviderError> {
    let config_dir = config_path.parent().unwrap_or(Path::new("."));
    let wrap = |error| ProviderError::Acme {
        error,
        path: config_path.to_path_buf(),
    };
    let client = Acme::new(settings, config_dir).map_err(wrap)?;
    if with_credentials && !client.has_account() {
        return Err(wrap(CaError::Invalid(format!(
            "no ACME account for {} (expected {}): run `enc365-nginx register --provider acme \
             --email ADDR --agree-tos` first",
            client.directory_url(),
            client.account_file().display()
        ))));
    }
    Ok(client)
}

/// `ENC365_HTTP_TIMEOUT` (seconds): the limit of one CA request instead of 60 s, with the first
/// retry of a read after a tenth of it — for tests and slow links.
fn http_timeout_override() -> Option<std::time::Duration> {
    std::env::var(HTTP_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(std::time::Duration::from_secs_f64)
}

/// The variable [`http_timeout_override`] reads.
pub const HTTP_TIMEOUT_ENV: &str = "ENC365_HTTP_TIMEOUT";
