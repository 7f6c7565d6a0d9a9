//! [`AccountApi`]: what a provider offers besides ordering — registering this server, listing the
//! products the account may order, and showing the account (balance) — with the plain data those
//! calls return.
//!
//! It is a trait of its own because providers differ most here: Encryption365 registers a device
//! with a user name and password; HowSSL's token comes from its administrator and Huawei's AK/SK
//! from the console (no register call); Huawei and ACME have no product list. A provider without
//! one of these calls answers [`CaError::Unsupported`] saying what to use instead.
//!
//! Not here: orders ([`super::CertificateAuthority`]) or how a registration is saved (the config).

use serde::Serialize;
use serde_json::{Map, Value};

use super::{BoxFuture, CaError};
use crate::secret::Secret;

/// What `register` sends.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// The account's user name (Encryption365: the TrustOcean e-mail).
    pub username: String,
    /// The account password; sent once, never stored (redacted in Debug).
    pub password: Secret,
    /// A label for this server at the provider.
    pub servername: String,
}

/// The credentials a registration returned, to be saved in the config file.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The new account or device id (Encryption365 `client_id`).
    pub account_id: String,
    /// The new secret (Encryption365 `access_token`; redacted in Debug).
    pub secret: Secret,
    /// The source address the provider saw, if it said.
    pub ip_address: Option<String>,
    /// The account status (`active`), if it said.
    pub status: Option<String>,
    /// When it was created, as the provider wrote it.
    pub created_at: Option<String>,
}

/// One product the account may order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// What to put in the provider's product setting (Encryption365 `pid`, HowSSL
    /// `product_code`), as text.
    pub id: String,
    /// The product's title.
    pub title: String,
    /// `DV`, `OV`, `EV`.
    pub class: String,
    /// `dv`, `ov`, `ev`.
    pub level: String,
    /// The validity as the provider words it (`90天`, `12 months`).
    pub term: String,
    /// The billing period as the provider names it (`quarterly`, `12`).
    pub period: String,
    /// True for free products.
    pub is_free: bool,
    /// Price per FQDN or IP.
    pub price_fqdn: f64,
    /// Price per wildcard name.
    pub price_wildcard: f64,
    /// The currency of the prices (`CNY`).
    pub currency: String,
    /// The provider's own keys for the product (Encryption365: `pid` as a number).
    #[serde(flatten)]
    pub provider_fields: Map<String, Value>,
}

/// The account as the provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountInfo {
    /// The balance, if the provider said.
    pub balance: Option<f64>,
    /// The balance's currency.
    pub currency: Option<String>,
    /// The account's user name or e-mail, if the provider said.
    pub user: Option<String>,
}

/// One provider's account operations.
pub trait AccountApi: Send + Sync {
    /// The provider's name (`encryption365`).
    fn name(&self) -> &'static str;

    /// Registers this server with the account; sent once, never retried.
    fn register<'a>(
        &'a self,
        request: &'a RegisterRequest,
    ) -> BoxFuture<'a, Result<Registration, CaError>>;

    /// The products the account may order, in the provider's order.
    fn products(&self) -> BoxFuture<'_, Result<Vec<Product>, CaError>>;

    /// The account: balance and user.
    fn account(&self) -> BoxFuture<'_, Result<AccountInfo, CaError>>;
}
