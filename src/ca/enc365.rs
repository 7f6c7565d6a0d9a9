//! The Encryption365 API client (providers.md §1): every endpoint of §1.5, over the shared HTTP transport.
//!
//! Calls are `POST` with a JSON body holding `client_id`/`access_token`, sent through the shared
//! transport [`super::http`] (timeouts, size cap, retries, transport errors); answers are read
//! through [`super::envelope`] (tolerant envelope, loose types). Every untrusted value is checked
//! before it is handed on: DCV file names must be safe file names, DCV entries must be for names we
//! ordered, certificates must parse as X.509.
//!
//! Retries: only read-only calls (`/account/products`, `/account/details`, `/cert/details`) are
//! retried, with doubling backoff, and only for transport failures (no connection, timeout, non-200
//! HTTP status). API errors are never retried, and calls that create or change something
//! (`/client/create`, `/cert/create`, `/cert/reissue`, `/cert/challenge`, revoke, change-DCV) are
//! sent exactly once: a lost answer may still have been carried out, and a second order costs money.
//!
//! Secrets: the access token and password travel only inside request bodies; they are never logged,
//! never put in an error, and [`Enc365`]'s `Debug` leaves them out.
//!
//! `/cert/revoke` and `/cert/change_dcv` are guessed paths (the docs pages are empty); they are only
//! called when [`ClientOptions::unconfirmed_endpoints`] is set.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::account::{self, AccountApi, AccountInfo, RegisterRequest};
use super::envelope::{self, Fields, loose_bool, loose_string};
use super::http::{Body, Expect, HttpOptions, Request, Transport};
use super::pem::{certificate_list, normalize_certificates, uncovered_names};
use super::{
    BoxFuture, CaError, Capabilities, CertificateAuthority, Challenge, IssuedCertificate,
    NameValidation, Order, OrderId, OrderRequest, OrderState, is_safe_file_name,
};
use crate::config::Credentials;
use crate::secret::Secret;

/// The largest DCV file content we accept from the CA.
const MAX_DCV_CONTENT: usize = 4096;

/// How the client behaves on the wire.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Limit for one whole request, connect to last byte.
    pub timeout: Duration,
    /// Limit for establishing the connection.
    pub connect_timeout: Duration,
    /// How many times a read-only call is retried after a transport failure.
    pub read_retries: u32,
    /// The first retry delay; it doubles each time.
    pub retry_backoff: Duration,
    /// The largest answer body read.
    pub body_limit: usize,
    /// Allow the guessed endpoints `/cert/revoke` and `/cert/change_dcv`.
    pub unconfirmed_endpoints: bool,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            read_retries: 3,
            retry_backoff: Duration::from_secs(2),
            body_limit: super::http::DEFAULT_BODY_LIMIT,
            unconfirmed_endpoints: false,
        }
    }
}

/// One product of `/account/products`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// The product id to put in `pid`.
    pub pid: u64,
    /// The product's title.
    pub title: String,
    /// `DV`, `OV`, `EV`.
    pub class: String,
    /// `dv`, `ov`, `ev`.
    pub level: String,
    /// The validity as text (`90天`).
    pub term: String,
    /// The billing period (`quarterly`, `annually`), sent back in `period` on create.
    pub period: String,
    /// The billing period in Chinese (`periodText`: `季度`, `年`), empty when not given.
    pub period_text: String,
    /// True for free products.
    pub is_free: bool,
    /// Price per FQDN or IP (CNY).
    pub price_fqdn: f64,
    /// Price per wildcard name (CNY).
    pub price_wildcard: f64,
}

/// The result of `/account/details`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountDetails {
    /// The account balance in CNY, if the CA said.
    pub credit: Option<f64>,
}

/// What `/cert/create` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The product id.
    pub pid: u64,
    /// The CSR, PEM.
    pub csr_pem: String,
    /// The names to cover, in order.
    pub domains: Vec<String>,
    /// The product's billing period, if known.
    pub period: Option<String>,
    /// The `trustocean_id` this order renews.
    pub renew_of: Option<u64>,
}

/// `cert_status`, mapped (§1.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    /// `enroll_caprocessing`, or any status we do not know (logged).
    Processing,
    /// `issued_active`.
    Issued,
    /// `cancelled`.
    Cancelled,
    /// `revoked`.
    Revoked,
    /// `rejected`.
    Rejected,
    /// `expired`.
    Expired,
}

impl CertStatus {
    /// Maps the API word; unknown words are "processing" and logged.
    pub fn from_api(word: &str) -> CertStatus {
        match word {
            "enroll_caprocessing" => CertStatus::Processing,
            "issued_active" => CertStatus::Issued,
            "cancelled" => CertStatus::Cancelled,
            "revoked" => CertStatus::Revoked,
            "rejected" => CertStatus::Rejected,
            "expired" => CertStatus::Expired,
            other => {
                tracing::warn!(
                    "the CA reported an unknown certificate status {other:?}; treating it as pending"
                );
                CertStatus::Processing
            }
        }
    }

    /// True for states that never change again.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, CertStatus::Processing)
    }
}

/// One `dcv_info` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DcvEntry {
    /// The name as ordered.
    pub domain: String,
    /// The current method (`http`, `https`, `dns` or an approver address).
    pub method: String,
    /// The per-name status (`needverification`, `verified`).
    pub status: String,
    /// True for IP addresses.
    pub is_ip: bool,
    /// The file name under `/.well-known/pki-validation/` (safe to create).
    pub http_filename: Option<String>,
    /// The exact file body.
    pub http_filecontent: Option<String>,
    /// The CNAME owner, relative to `topdomain`.
    pub dns_host: Option<String>,
    /// The record type (`CNAME`).
    pub dns_type: Option<String>,
    /// The CNAME target.
    pub dns_value: Option<String>,
    /// The registrable domain.
    pub topdomain: Option<String>,
}

impl DcvEntry {
    /// True once the CA counts this name as validated.
    pub fn is_verified(&self) -> bool {
        matches!(
            self.status.to_ascii_lowercase().as_str(),
            "verified" | "valid"
        )
    }
}

/// An order as `/cert/create`, `/cert/details` or `/cert/reissue` report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertOrder {
    /// The order id.
    pub trustocean_id: u64,
    /// The mapped status.
    pub status: CertStatus,
    /// The status word as sent.
    pub status_text: String,
    /// The names, as the CA lists them (may differ in order from the request).
    pub domains: Vec<String>,
    /// The CA's unique value for this order.
    pub unique_id: Option<String>,
    /// Creation time as the CA wrote it.
    pub created_at: Option<String>,
    /// Expiry time as the CA wrote it.
    pub expire_at: Option<String>,
    /// What to publish per name.
    pub dcv: Vec<DcvEntry>,
    /// The certificate, once issued.
    pub certificate: Option<IssuedCertificate>,
    /// The fees charged, if said.
    pub total_fees: Option<f64>,
}

/// The Encryption365 client.
pub struct Enc365 {
    http: Transport,
    credentials: Option<Credentials>,
    options: ClientOptions,
}

impl fmt::Debug for Enc365 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enc365")
            .field("base", &self.http.base().as_str())
            .field(
                "client_id",
                &self.credentials.as_ref().map(|c| c.client_id.as_str()),
            )
            .field("access_token", &"[redacted]")
            .field("options", &self.options)
            .finish()
    }
}

/// Whether a call may be repeated after a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only reads: retried on transport failures.
    ReadOnly,
    /// Creates or changes something: sent once.
    Mutating,
}

impl Enc365 {
    /// A client for `base_url` (validated: https, or http on loopback), with device credentials
    /// (`None` is enough for [`Enc365::register`]).
    pub fn new(
        base_url: &str,
        credentials: Option<Credentials>,
        options: ClientOptions,
    ) -> Result<Enc365, CaError> {
        let http = Transport::new(
            base_url,
            HttpOptions {
                timeout: options.timeout,
                connect_timeout: options.connect_timeout,
                retries: options.read_retries,
                retry_backoff: options.retry_backoff,
                body_limit: options.body_limit,
            },
        )?;
        Ok(Enc365 {
            http,
            credentials,
            options,
        })
    }

    /// `/client/create`: registers this server as a device of the account; sent once.
    pub async fn register(
        &self,
        username: &str,
        password: &Secret,
        servername: &str,
    ) -> Result<account::Registration, CaError> {
        let body = json!({
            "username": username,
            "password": password.expose(),
            "servername": servername,
        });
        let f = self.call("/client/create", body, Kind::Mutating).await?;
        Ok(account::Registration {
            account_id: f.string("client_id")?,
            secret: Secret::new(f.string("access_token")?),
            ip_address: f.opt_string("ip_address")?,
            status: f.opt_string("status")?,
            created_at: f.opt_string("created_at")?,
        })
    }

    /// `/account/products`: the products this account may order, sorted by pid.
    pub async fn products(&self) -> Result<Vec<Product>, CaError> {
        let body = self.authed(Map::new())?;
        let f = self.call("/account/products", body, Kind::ReadOnly).await?;
        let products = f.object("products")?;
        let mut out = Vec::with_capacity(products.len());
        for (key, value) in products {
            let pid = key.trim().parse::<u64>().map_err(|_| CaError::Malformed {
                endpoint: f.endpoint().to_string(),
                detail: format!("product key {key:?} is not a numeric pid"),
            })?;
            let Value::Object(p) = value else {
                return Err(f.wrong(&format!("products.{key}"), "an object", value));
            };
            let text = |k: &str| p.get(k).and_then(loose_string).unwrap_or_default();
            let price = |k: &str| {
                p.get("price")
                    .and_then(|pr| pr.get(k))
                    .and_then(envelope::loose_f64)
                    .unwrap_or(0.0)
            };
            out.push(Product {
                pid,
                title: text("title"),
                class: text("class"),
                level: text("level"),
                term: text("term"),
                period: text("period"),
                period_text: text("periodText"),
                is_free: p.get("isFree").and_then(loose_bool).unwrap_or(false),
                price_fqdn: price("fqdn"),
                price_wildcard: price("wildcard"),
            });
        }
        out.sort_by_key(|p| p.pid);
        Ok(out)
    }

    /// `/account/details`: the account balance.
    pub async fn account_details(&self) -> Result<AccountDetails, CaError> {
        let body = self.authed(Map::new())?;
        let f = self.call("/account/details", body, Kind::ReadOnly).await?;
        Ok(AccountDetails {
            credit: f.opt_f64("credit")?,
        })
    }

    /// `/cert/create` (a renewal when `renew_of` is set); sent once, never retried.
    pub async fn create(&self, request: &CreateRequest) -> Result<CertOrder, CaError> {
        check_request(&request.domains, &request.csr_pem)?;
        let mut body = Map::new();
        body.insert("pid".into(), json!(request.pid));
        body.insert("csr_code".into(), json!(request.csr_pem));
        body.insert("domains".into(), json!(request.domains.join(",")));
        if let Some(period) = &request.period {
            body.insert("period".into(), json!(period));
        }
        body.insert("renew".into(), json!(request.renew_of.is_some()));
        body.insert(
            "old_vendor_id".into(),
            json!(
                request
                    .renew_of
                    .map_or(-1, |id| i64::try_from(id).unwrap_or(-1))
            ),
        );
        let body = self.authed(body)?;
        let f = self.call("/cert/create", body, Kind::Mutating).await?;
        parse_order(&f, None, Some(&request.domains), true)
    }

    /// `/cert/details`: status, DCV data, and the certificate once issued. DCV entries are checked
    /// against the names the answer itself lists; prefer [`Enc365::details_for`] with the names we
    /// ordered, which does not trust the CA's list.
    pub async fn details(&self, trustocean_id: u64) -> Result<CertOrder, CaError> {
        self.details_checked(trustocean_id, None).await
    }

    /// `/cert/details`, refusing DCV data for any name not in `ordered`.
    pub async fn details_for(
        &self,
        trustocean_id: u64,
        ordered: &[String],
    ) -> Result<CertOrder, CaError> {
        self.details_checked(trustocean_id, Some(ordered)).await
    }

    async fn details_checked(
        &self,
        trustocean_id: u64,
        ordered: Option<&[String]>,
    ) -> Result<CertOrder, CaError> {
        let mut body = Map::new();
        body.insert("trustocean_id".into(), json!(trustocean_id));
        let body = self.authed(body)?;
        let f = self.call("/cert/details", body, Kind::ReadOnly).await?;
        parse_order(&f, Some(trustocean_id), ordered, false)
    }

    /// `/cert/challenge`: asks the CA to re-check validation now; returns the CA's message.
    pub async fn challenge(&self, trustocean_id: u64) -> Result<String, CaError> {
        let mut body = Map::new();
        body.insert("trustocean_id".into(), json!(trustocean_id));
        let body = self.authed(body)?;
        let f = self.call("/cert/challenge", body, Kind::Mutating).await?;
        Ok(f.opt_string("message")?.unwrap_or_default())
    }

    /// `/cert/reissue`: a new CSR and name list for an existing order; sent once.
    pub async fn reissue(
        &self,
        trustocean_id: u64,
        csr_pem: &str,
        domains: &[String],
    ) -> Result<CertOrder, CaError> {
        check_request(domains, csr_pem)?;
        let mut body = Map::new();
        body.insert("trustocean_id".into(), json!(trustocean_id));
        body.insert("csr_code".into(), json!(csr_pem));
        body.insert("domains".into(), json!(domains.join(",")));
        let body = self.authed(body)?;
        let f = self.call("/cert/reissue", body, Kind::Mutating).await?;
        parse_order(&f, Some(trustocean_id), Some(domains), true)
    }

    /// `/cert/revoke` (unconfirmed path; needs [`ClientOptions::unconfirmed_endpoints`]).
    pub async fn revoke(&self, trustocean_id: u64) -> Result<(), CaError> {
        self.require_unconfirmed("revoke")?;
        let mut body = Map::new();
        body.insert("trustocean_id".into(), json!(trustocean_id));
        let body = self.authed(body)?;
        self.call("/cert/revoke", body, Kind::Mutating)
            .await
            .map(drop)
    }

    /// `/cert/change_dcv` (unconfirmed path; needs [`ClientOptions::unconfirmed_endpoints`]).
    pub async fn change_dcv(
        &self,
        trustocean_id: u64,
        domain: &str,
        method: &str,
    ) -> Result<(), CaError> {
        self.require_unconfirmed("change_dcv")?;
        let mut body = Map::new();
        body.insert("trustocean_id".into(), json!(trustocean_id));
        body.insert("domain".into(), json!(domain));
        body.insert("method".into(), json!(method));
        let body = self.authed(body)?;
        self.call("/cert/change_dcv", body, Kind::Mutating)
            .await
            .map(drop)
    }

    fn require_unconfirmed(&self, what: &str) -> Result<(), CaError> {
        if self.options.unconfirmed_endpoints {
            Ok(())
        } else {
            Err(CaError::Unsupported(format!(
                "Encryption365 does not document a {what} endpoint; set \
                 enable_unconfirmed_endpoints = true under [encryption365] in the config to try \
                 /cert/{what}"
            )))
        }
    }

    /// Adds the credentials to a request body.
    fn authed(&self, mut body: Map<String, Value>) -> Result<Value, CaError> {
        let creds = self.credentials.as_ref().ok_or_else(|| {
            CaError::Invalid(
                "no client_id/access_token: run `enc365-nginx register` first".to_string(),
            )
        })?;
        body.insert("client_id".into(), json!(creds.client_id));
        body.insert("access_token".into(), json!(creds.access_token.expose()));
        Ok(Value::Object(body))
    }

    /// Sends one call through the transport (`POST`, JSON, only HTTP 200 is an answer; read-only
    /// calls are retried after transport failures) and reads the envelope.
    async fn call(&self, path: &str, body: Value, kind: Kind) -> Result<Fields, CaError> {
        let request = Request::post(path, Body::Json(body))
            .idempotent(kind == Kind::ReadOnly)
            .expect(Expect::Only(200));
        let response = self.http.send(&request).await?;
        envelope::parse(path, &response.body)
    }
}

/// Refuses requests that cannot be right before anything is sent.
fn check_request(domains: &[String], csr_pem: &str) -> Result<(), CaError> {
    if domains.is_empty() {
        return Err(CaError::Invalid(
            "an order needs at least one name".to_string(),
        ));
    }
    if let Some(bad) = domains
        .iter()
        .find(|d| d.is_empty() || d.contains([',', ' ']))
    {
        return Err(CaError::Invalid(format!(
            "{bad:?} is not a name that can be ordered"
        )));
    }
    if !csr_pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err(CaError::Invalid(
            "the CSR is not PEM (BEGIN CERTIFICATE REQUEST)".into(),
        ));
    }
    Ok(())
}

/// Reads an order from create/details/reissue fields, validating everything that may reach the
/// disk. `ordered` is the request's name list, when we sent one; DCV entries must be for those names
/// (or, failing that, for the names the answer lists).
fn parse_order(
    f: &Fields,
    known_id: Option<u64>,
    ordered: Option<&[String]>,
    dcv_required: bool,
) -> Result<CertOrder, CaError> {
    let trustocean_id = match (f.opt_u64("trustocean_id")?, known_id) {
        (Some(id), Some(known)) if id != known => {
            return Err(CaError::Malformed {
                endpoint: f.endpoint().to_string(),
                detail: format!("asked about order {known}, the answer is for order {id}"),
            });
        }
        (Some(id), _) => id,
        (None, Some(known)) => known,
        (None, None) => return Err(f.missing("trustocean_id", "an integer")),
    };
    let status_text = f.string("cert_status")?;
    let status = CertStatus::from_api(&status_text);
    let listed = f.opt_string_list("domains")?.unwrap_or_default();
    let allowed: Vec<String> = match ordered {
        Some(names) => names.to_vec(),
        None => listed.clone(),
    };
    let dcv = match f.get("dcv_info") {
        Some(Value::Object(entries)) => parse_dcv(f, entries, &allowed)?,
        // PHP encodes an empty map as [].
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(other) => return Err(f.wrong("dcv_info", "an object keyed by name", other)),
        None if dcv_required => return Err(f.missing("dcv_info", "an object keyed by name")),
        None => Vec::new(),
    };
    let certificate = if status == CertStatus::Issued {
        let malformed = |detail: String| CaError::Malformed {
            endpoint: f.endpoint().to_string(),
            detail,
        };
        let cert = f.string("cert_code")?;
        let ca = f.opt_string("ca_code")?.unwrap_or_default();
        let mut leaf = certificate_list(&cert, false)
            .map_err(|e| malformed(format!("cert_code: {e}")))?
            .into_iter();
        let leaf_pem = leaf.next().unwrap_or_default();
        // A cert_code that also holds intermediates: they belong to the chain.
        let mut chain_pem: String = leaf.collect();
        chain_pem.push_str(
            &normalize_certificates(&ca, true).map_err(|e| malformed(format!("ca_code: {e}")))?,
        );
        if chain_pem.trim().is_empty() {
            // Served without its intermediates, a leaf fails in most clients.
            return Err(malformed(
                "the issued certificate comes without its chain (ca_code is missing or empty); \
                 it is not installed"
                    .to_string(),
            ));
        }
        let chain_pem = crate::ca::pem::order_chain(&leaf_pem, &chain_pem)
            .map_err(|e| malformed(format!("ca_code: {e}")))?;
        if let Some(names) = ordered {
            let missing = uncovered_names(&leaf_pem, names)
                .map_err(|e| malformed(format!("cert_code: {e}")))?;
            if !missing.is_empty() {
                return Err(malformed(format!(
                    "the issued certificate does not cover {}",
                    missing.join(", ")
                )));
            }
        }
        Some(IssuedCertificate {
            leaf_pem,
            chain_pem,
        })
    } else {
        None
    };
    Ok(CertOrder {
        trustocean_id,
        status,
        status_text,
        domains: if listed.is_empty() { allowed } else { listed },
        unique_id: f.opt_string("unique_id")?,
        created_at: f.opt_string("created_at")?,
        expire_at: f.opt_string("expire_at")?,
        dcv,
        certificate,
        total_fees: f.opt_f64("total_fees")?,
    })
}

fn parse_dcv(
    f: &Fields,
    entries: &Map<String, Value>,
    allowed: &[String],
) -> Result<Vec<DcvEntry>, CaError> {
    let bad = |detail: String| CaError::Malformed {
        endpoint: f.endpoint().to_string(),
        detail,
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        let Value::Object(e) = entry else {
            return Err(f.wrong(&format!("dcv_info.{key}"), "an object", entry));
        };
        let text = |k: &str| e.get(k).filter(|v| !v.is_null()).and_then(loose_string);
        let domain = text("domain").unwrap_or_else(|| key.clone());
        if !domain.eq_ignore_ascii_case(key) {
            return Err(bad(format!(
                "dcv_info entry {key:?} is for another name, {domain:?}"
            )));
        }
        if allowed.is_empty() {
            return Err(bad(format!(
                "dcv_info names {domain:?} but the answer lists no domains to check it against"
            )));
        }
        if !allowed.iter().any(|n| n.eq_ignore_ascii_case(&domain)) {
            return Err(bad(format!(
                "dcv_info names {domain:?}, which is not among the names ordered ({})",
                allowed.join(", ")
            )));
        }
        let http_filename = text("http_filename").filter(|s| !s.is_empty());
        if let Some(name) = &http_filename
            && !is_safe_file_name(name)
        {
            return Err(bad(format!(
                "dcv_info.{key}.http_filename {name:?} is not a safe file name (only \
                 [A-Za-z0-9._-], no \"..\"); refusing to write it"
            )));
        }
        let http_filecontent = text("http_filecontent");
        if let Some(content) = &http_filecontent
            && (content.len() > MAX_DCV_CONTENT || content.contains('\0'))
        {
            return Err(bad(format!(
                "dcv_info.{key}.http_filecontent is not a plausible validation value ({} bytes)",
                content.len()
            )));
        }
        if http_filename.is_some() != http_filecontent.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(bad(format!(
                "dcv_info.{key} has only one of http_filename and http_filecontent"
            )));
        }
        let dns = |k: &str| -> Result<Option<String>, CaError> {
            match text(k).filter(|s| !s.is_empty()) {
                Some(v) if !is_dns_text(&v) => {
                    Err(bad(format!("dcv_info.{key}.{k} {v:?} is not a DNS name")))
                }
                other => Ok(other),
            }
        };
        out.push(DcvEntry {
            domain,
            method: text("method").unwrap_or_default(),
            status: text("status").unwrap_or_default(),
            is_ip: e.get("isip").and_then(loose_bool).unwrap_or(false),
            http_filename,
            http_filecontent,
            dns_host: dns("dns_host")?,
            dns_type: text("dns_type").filter(|s| !s.is_empty()),
            dns_value: dns("dns_value")?,
            topdomain: dns("topdomain")?,
        });
    }
    out.sort_by(|a, b| a.domain.cmp(&b.domain));
    Ok(out)
}

fn is_dns_text(s: &str) -> bool {
    s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
}

impl CertOrder {
    /// The provider-neutral view of this order.
    pub fn to_order(&self) -> Order {
        let state = match (&self.status, &self.certificate) {
            (CertStatus::Issued, Some(cert)) => OrderState::Issued(cert.clone()),
            (CertStatus::Processing, _) => OrderState::Pending {
                detail: self.status_text.clone(),
            },
            (_, _) => OrderState::Failed {
                reason: self.status_text.clone(),
            },
        };
        let validations = self
            .dcv
            .iter()
            .map(|d| {
                let mut challenges = Vec::new();
                if let (Some(file_name), Some(content)) = (&d.http_filename, &d.http_filecontent) {
                    challenges.push(Challenge::HttpFile {
                        path: format!("{}{file_name}", super::PKI_VALIDATION),
                        content: content.clone(),
                    });
                }
                if let (false, Some(host), Some(value)) = (d.is_ip, &d.dns_host, &d.dns_value) {
                    let full = match &d.topdomain {
                        Some(top) => format!("{host}.{top}"),
                        None => host.clone(),
                    };
                    challenges.push(Challenge::DnsRecord {
                        host: full,
                        record_type: d.dns_type.clone().unwrap_or_else(|| "CNAME".into()),
                        value: value.clone(),
                    });
                }
                if d.domain.starts_with("*.") {
                    // Wildcards cannot be validated by file under CA/B Forum rules.
                    challenges.reverse();
                }
                NameValidation {
                    name: d.domain.clone(),
                    validated: d.is_verified(),
                    challenges,
                }
            })
            .collect();
        Order {
            id: OrderId(self.trustocean_id.to_string()),
            names: self.domains.clone(),
            state,
            validations,
        }
    }
}

fn parse_id(id: &OrderId) -> Result<u64, CaError> {
    id.0.trim().parse().map_err(|_| {
        CaError::Invalid(format!(
            "{id:?} is not an Encryption365 order id (a number)"
        ))
    })
}

impl CertificateAuthority for Enc365 {
    fn name(&self) -> &'static str {
        "encryption365"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            explicit_recheck: true,
            reissue: true,
            cancel: false,
            revoke: self.options.unconfirmed_endpoints,
        }
    }

    fn create<'a>(
        &'a self,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<super::Created, CaError>> {
        Box::pin(async move {
            let pid = request.product.trim().parse::<u64>().map_err(|_| {
                CaError::Invalid(format!(
                    "{:?} is not an Encryption365 product id: see `enc365-nginx products`",
                    request.product
                ))
            })?;
            let renew_of = request.renews.as_ref().map(parse_id).transpose()?;
            let order = Enc365::create(
                self,
                &CreateRequest {
                    pid,
                    csr_pem: request.csr_pem.clone(),
                    domains: request.names.clone(),
                    period: request.period.clone(),
                    renew_of,
                },
            )
            .await?;
            // One call places the order: there is no commit step.
            Ok(super::Created::Placed(order.to_order()))
        })
    }

    fn order_status<'a>(
        &'a self,
        id: &'a OrderId,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move { Ok(self.details_for(parse_id(id)?, names).await?.to_order()) })
    }

    /// providers.md §1.9: at most one `/cert/details` per 30 s per order (backing off to 2 min),
    /// one `/cert/challenge` per run; dnomd343 gives up after 30 minutes.
    fn poll_policy(&self) -> super::PollPolicy {
        super::PollPolicy {
            interval: std::time::Duration::from_secs(30),
            backoff: 1.5,
            max_backoff: 4.0,
            timeout: std::time::Duration::from_secs(1800),
            rechecks_per_run: 1,
        }
    }

    fn request_validation<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.challenge(parse_id(id)?).await.map(drop) })
    }

    fn reissue<'a>(
        &'a self,
        id: &'a OrderId,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move {
            let order =
                Enc365::reissue(self, parse_id(id)?, &request.csr_pem, &request.names).await?;
            Ok(order.to_order())
        })
    }

    fn cancel<'a>(&'a self, _id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move {
            Err(CaError::Unsupported(
                "Encryption365 has no cancel endpoint; cancel the order in the TrustOcean console"
                    .to_string(),
            ))
        })
    }

    fn revoke<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { Enc365::revoke(self, parse_id(id)?).await })
    }
}

impl AccountApi for Enc365 {
    fn name(&self) -> &'static str {
        "encryption365"
    }

    fn register<'a>(
        &'a self,
        request: &'a RegisterRequest,
    ) -> BoxFuture<'a, Result<account::Registration, CaError>> {
        Box::pin(Enc365::register(
            self,
            &request.username,
            &request.password,
            &request.servername,
        ))
    }

    fn products(&self) -> BoxFuture<'_, Result<Vec<account::Product>, CaError>> {
        Box::pin(async move {
            let products = Enc365::products(self).await?;
            Ok(products
                .into_iter()
                .map(|p| {
                    let mut provider_fields = Map::new();
                    provider_fields.insert("pid".into(), json!(p.pid));
                    if !p.period_text.is_empty() {
                        // The CA gives the period in both languages: both raw fields are kept.
                        provider_fields.insert("periodText".into(), json!(p.period_text));
                    }
                    account::Product {
                        id: p.pid.to_string(),
                        title: p.title,
                        class: p.class,
                        level: p.level,
                        term: p.term,
                        period: p.period,
                        is_free: p.is_free,
                        price_fqdn: p.price_fqdn,
                        price_wildcard: p.price_wildcard,
                        currency: "CNY".into(),
                        provider_fields,
                    }
                })
                .collect())
        })
    }

    fn account(&self) -> BoxFuture<'_, Result<AccountInfo, CaError>> {
        Box::pin(async move {
            let details = self.account_details().await?;
            Ok(AccountInfo {
                balance: details.credit,
                currency: Some("CNY".into()),
                user: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_is_pending_and_terminal_ones_are_terminal() {
        assert_eq!(CertStatus::from_api("enroll_dcv"), CertStatus::Processing);
        assert!(!CertStatus::from_api("enroll_dcv").is_terminal());
        for t in [
            "issued_active",
            "cancelled",
            "revoked",
            "rejected",
            "expired",
        ] {
            assert!(CertStatus::from_api(t).is_terminal(), "{t}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Enc365::new(
            "http://127.0.0.1:9",
            Some(Credentials {
                client_id: "cid".into(),
                access_token: Secret::new("tok-very-secret"),
            }),
            ClientOptions::default(),
        )
        .expect("client");
        let s = format!("{c:?}");
        assert!(!s.contains("tok-very-secret"), "{s}");
        assert!(s.contains("cid"));
    }

    #[test]
    fn endpoints_are_joined_below_a_base_path() {
        for (base, expected) in [
            ("https://ca.example", "https://ca.example/cert/create"),
            ("https://ca.example/", "https://ca.example/cert/create"),
            (
                "https://proxy.example/enc365",
                "https://proxy.example/enc365/cert/create",
            ),
        ] {
            let c = Enc365::new(base, None, ClientOptions::default()).expect("client");
            let url = c.http.url("/cert/create").expect("join");
            assert_eq!(url.as_str(), expected);
        }
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        let e = Enc365::new(
            "http://encrypt365.trustocean.com",
            None,
            ClientOptions::default(),
        )
        .expect_err("refused");
        assert!(e.to_string().contains("https"), "{e}");
    }
}
