//! Certificate authorities behind one trait, [`CertificateAuthority`], and the plain data they
//! exchange with the rest of the tool.
//!
//! The trait fits all three providers of providers.md: Encryption365 creates an order in one call and
//! has an explicit re-check ([`CertificateAuthority::request_validation`]); HowSSL creates a draft
//! then commits it ([`CertificateAuthority::create`] answers [`Created::Draft`], then
//! [`CertificateAuthority::commit`]; the caller saves each step's id before the next) and can cancel; Huawei SCM *applies* to a
//! certificate the user already bought ([`OrderRequest::existing_id`]), has no re-check call (poll
//! only, [`Capabilities::explicit_recheck`] false) and often validates by DNS. What the CA wants
//! published for each name is a list of [`Challenge`]s; where an order stands is an [`OrderState`].
//! Every value here has been validated by the provider module before it is handed out: file names are
//! safe to join to a directory, names are among those ordered, chains parse as X.509.
//!
//! Account operations (register, products, balance) are a second, smaller trait,
//! [`account::AccountApi`]. Both are built in one place, [`factory`], from the config's provider
//! settings; no command names a provider type.
//!
//! This module never sees nginx: it must not import `crate::nginx`. Encryption365 ([`enc365`]),
//! HowSSL ([`howssl`]), Huawei Cloud SCM ([`huawei_scm`]) and ACME ([`acme`]) are implemented.

pub mod account;
pub mod acme;
pub mod acme_http;
pub mod enc365;
pub mod envelope;
pub mod factory;
pub mod howssl;
pub mod http;
pub mod huawei_scm;
pub mod huawei_scm_answer;
pub mod huawei_scm_pick;
pub mod pem;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A boxed future, so the trait can be used as `dyn CertificateAuthority`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The CA's identifier for an order (Encryption365 `trustocean_id`, HowSSL `order_id`, Huawei
/// `certificate_id`), kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderId(pub String);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The provider's product (Encryption365 `pid`, HowSSL `product_code`).
    pub product: String,
    /// The names to cover, in order (A-labels, `*.` wildcards, IP addresses).
    pub names: Vec<String>,
    /// The CSR in PEM, made locally with the key that stays here.
    pub csr_pem: String,
    /// The product's term as the provider names it (Encryption365 `period` such as `quarterly`,
    /// HowSSL months), when known.
    pub period: Option<String>,
    /// The order this one renews, if any (Encryption365 `old_vendor_id`).
    pub renews: Option<OrderId>,
    /// The already-bought certificate to apply to (Huawei SCM), if the provider needs one.
    pub existing_id: Option<OrderId>,
    /// How each name will be proven; a name not listed is proven by HTTP file.
    pub methods: BTreeMap<String, ValidationMethod>,
}

impl OrderRequest {
    /// How `name` will be proven.
    pub fn method(&self, name: &str) -> ValidationMethod {
        self.methods.get(name).copied().unwrap_or_default()
    }
}

/// How a name is proven to the CA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationMethod {
    /// A file served over plain HTTP ([`Challenge::HttpFile`]).
    #[default]
    HttpFile,
    /// A DNS record ([`Challenge::DnsRecord`]).
    Dns,
}

/// One way to prove control of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Challenge {
    /// Serve `content` at `http://<name><path>`.
    HttpFile {
        /// The URL path, as the provider says: `/.well-known/pki-validation/<file>`
        /// (Encryption365, HowSSL, Huawei SCM) or `/.well-known/acme-challenge/<token>` (ACME).
        /// Its last segment is a safe file name ([`is_safe_file_name`]).
        path: String,
        /// The exact bytes to serve (no trailing newline added).
        content: String,
    },
    /// Publish a DNS record.
    DnsRecord {
        /// The full owner name (e.g. `_abc.www.example.com`).
        host: String,
        /// The record type (`CNAME`, `TXT`).
        record_type: String,
        /// The record value.
        value: String,
    },
}

impl fmt::Display for ValidationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValidationMethod::HttpFile => "HTTP file",
            ValidationMethod::Dns => "DNS",
        })
    }
}

/// The URL directory of the CA/B Forum "agreed-upon change to website" method, where
/// Encryption365, HowSSL and Huawei SCM want their files.
pub const PKI_VALIDATION: &str = "/.well-known/pki-validation/";

impl Challenge {
    /// The URL path of an HTTP file challenge, else `None`.
    pub fn http_path(&self) -> Option<String> {
        match self {
            Challenge::HttpFile { path, .. } => Some(path.clone()),
            Challenge::DnsRecord { .. } => None,
        }
    }

    /// How this challenge proves a name.
    pub fn method(&self) -> ValidationMethod {
        match self {
            Challenge::HttpFile { .. } => ValidationMethod::HttpFile,
            Challenge::DnsRecord { .. } => ValidationMethod::Dns,
        }
    }
}

/// How often to ask a provider where an order stands, and how often to ask it to re-check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    /// The first wait between status polls (`--poll-interval` overrides it).
    pub interval: Duration,
    /// Each wait is the last one times this, …
    pub backoff: f64,
    /// … up to `interval` times this.
    pub max_backoff: f64,
    /// How long a run waits for issuance before it leaves the order for the next run
    /// (`--timeout` overrides it).
    pub timeout: Duration,
    /// How many times a run asks the CA to re-check an order's validation (0 for a CA that only
    /// polls, such as Huawei SCM).
    pub rechecks_per_run: u32,
}

/// What the CA wants for one name, and whether it already counts the name as validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameValidation {
    /// The name as ordered.
    pub name: String,
    /// True once the CA reports the name validated.
    pub validated: bool,
    /// Every way the CA accepts, most useful first (HTTP file before DNS).
    pub challenges: Vec<Challenge>,
}

/// An issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCertificate {
    /// The leaf certificate, PEM, LF line endings, ending in a newline.
    pub leaf_pem: String,
    /// The intermediate chain, PEM, LF, ending in a newline (may be empty).
    pub chain_pem: String,
}

impl IssuedCertificate {
    /// Leaf then chain: what nginx's `ssl_certificate` wants.
    pub fn fullchain_pem(&self) -> String {
        format!("{}{}", self.leaf_pem, self.chain_pem)
    }
}

/// Where an order stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting for validation or issuance.
    Pending {
        /// The provider's own status word, for logs and `status` output.
        detail: String,
    },
    /// Issued: the certificate is here.
    Issued(IssuedCertificate),
    /// Ended without a certificate (rejected, cancelled, revoked, expired). Never changes again.
    Failed {
        /// The provider's status word or message.
        reason: String,
    },
}

/// An order as the CA reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    /// The CA's id for it.
    pub id: OrderId,
    /// The names it covers, as the CA reports them.
    pub names: Vec<String>,
    /// Where it stands.
    pub state: OrderState,
    /// What to publish, per name (empty when the CA did not say, e.g. once issued).
    pub validations: Vec<NameValidation>,
}

/// What [`CertificateAuthority::create`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The order exists: there is no commit step (Encryption365).
    Placed(Order),
    /// The CA holds a draft under this id; [`CertificateAuthority::commit`] places it (HowSSL
    /// `check_id`).
    Draft(OrderId),
}

/// What a provider can do beyond ordering and polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// It has a call that asks the CA to re-check validation now.
    pub explicit_recheck: bool,
    /// It can reissue an order with a new CSR.
    pub reissue: bool,
    /// It can cancel a pending order.
    pub cancel: bool,
    /// It can revoke an issued certificate.
    pub revoke: bool,
}

/// Why a CA call failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The API answered with an error; `message` is its own text.
    #[error("{endpoint}: the CA refused: {message}")]
    Api {
        /// The endpoint called.
        endpoint: String,
        /// The API's `message`.
        message: String,
    },
    /// No usable HTTP answer (connection, timeout, non-200 status).
    #[error("{endpoint}: {detail}")]
    Transport {
        /// The endpoint called.
        endpoint: String,
        /// What happened, and what to do.
        detail: String,
    },
    /// The CA could not be reached (no connection was made), so the request was not sent:
    /// nothing happened at the CA.
    #[error("{endpoint}: {detail}")]
    Unreachable {
        /// The endpoint called.
        endpoint: String,
        /// What happened, and what to do.
        detail: String,
    },
    /// An answer came but is not what the API documents.
    #[error("{endpoint}: unexpected answer from the CA: {detail}")]
    Malformed {
        /// The endpoint called.
        endpoint: String,
        /// What was expected and what came.
        detail: String,
    },
    /// The provider has no such operation (or it is switched off).
    #[error("{0}")]
    Unsupported(String),
    /// Our own input cannot be sent (bad URL, bad request).
    #[error("{0}")]
    Invalid(String),
}

/// One certificate authority's API.
pub trait CertificateAuthority: Send + Sync {
    /// The provider's name (`encryption365`).
    fn name(&self) -> &'static str;

    /// What this provider supports.
    fn capabilities(&self) -> Capabilities;

    /// The first step of an order: asks the CA to create it (never retried: a lost answer may
    /// still have created it). Either the order exists now ([`Created::Placed`], Encryption365)
    /// or the CA holds a draft that [`CertificateAuthority::commit`] places ([`Created::Draft`],
    /// HowSSL `createOrder` → `check_id`). The caller saves the answer before the next step.
    fn create<'a>(&'a self, request: &'a OrderRequest) -> BoxFuture<'a, Result<Created, CaError>>;

    /// The second step, for providers whose [`CertificateAuthority::create`] answers a draft:
    /// places it (HowSSL `commitOrder` → `order_id`, which debits the balance; never retried).
    /// Providers without a commit step keep this default, which refuses.
    fn commit<'a>(
        &'a self,
        draft: &'a OrderId,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move {
            Err(CaError::Unsupported(format!(
                "{} has no commit step (draft {draft}); move the order record away and order \
                 again",
                self.name()
            )))
        })
    }

    /// Checks made before [`CertificateAuthority::commit`] that change nothing at the CA (HowSSL:
    /// the balance against what the names cost). The caller runs it before recording that a
    /// commit is under way, so a crash here leaves the draft to commit, and an error here means
    /// nothing was committed. The default checks nothing.
    fn before_commit<'a>(
        &'a self,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async { Ok(()) })
    }
    /// Makes the CA prove each not-yet-validated name of order `id` the way `request.methods`
    /// says, for providers where the method is a setting of the order (HowSSL: `updateDCV`, or
    /// `batchUpdateDCV` when every name changes to one method), switching only the names whose
    /// method at the CA differs. Called before what the CA asks for is published. Providers that
    /// take whichever challenge is published keep this default, which does nothing.
    fn use_methods<'a>(
        &'a self,
        _id: &'a OrderId,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the CA itself publishes the DNS validation records of `request` (Huawei SCM's
    /// `auto_dns_auth` push to Huawei Cloud DNS), so the pipeline must neither create nor remove
    /// them. The default: never.
    fn publishes_dns_records(&self, _request: &OrderRequest) -> bool {
        false
    }

    /// Hands the provider the CSR of an order placed earlier (from the order record), for
    /// providers that send it only once validation is done (ACME finalizes then). Providers
    /// that sent it with [`CertificateAuthority::create`] keep this default, which does nothing.
    fn attach_csr(&self, _id: &OrderId, _csr_pem: &str) {}

    /// Hands the provider the names of an order placed earlier that are proven by DNS (from the
    /// order record), for providers where the client picks each name's challenge when it asks
    /// for validation (ACME). The default does nothing.
    fn attach_dns_names(&self, _id: &OrderId, _dns_names: &[String]) {}

    /// Reads where an order stands, with the certificate once issued. `names` are the names we
    /// ordered (from our stored order): validation data for any other name is refused, whatever
    /// the CA lists.
    fn order_status<'a>(
        &'a self,
        id: &'a OrderId,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Order, CaError>>;

    /// How to poll this provider (interval, back-off, re-checks), from its documented limits.
    fn poll_policy(&self) -> PollPolicy;

    /// Asks the CA to check the published validation now (a no-op success for poll-only CAs).
    fn request_validation<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>>;

    /// Replaces the CSR and names of an order (never retried).
    fn reissue<'a>(
        &'a self,
        id: &'a OrderId,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>>;

    /// Cancels a pending order.
    fn cancel<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>>;

    /// Revokes an issued certificate.
    fn revoke<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>>;

    /// Revokes an issued certificate giving an RFC 5280 reason code, for CAs that take one
    /// (ACME); the others keep this default, which revokes without a reason.
    fn revoke_with_reason<'a>(
        &'a self,
        id: &'a OrderId,
        _reason: u8,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        self.revoke(id)
    }
}

/// True when `file_name` is safe to create under a validation directory: 1 to 255 characters from
/// `[A-Za-z0-9._-]`, and not `.`/`..` or anything containing `..`.
pub fn is_safe_file_name(file_name: &str) -> bool {
    !file_name.is_empty()
        && file_name.len() <= 255
        && file_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !file_name.contains("..")
        && file_name != "."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_dcv_file_names_are_refused() {
        for bad in [
            "", ".", "..", "../x.txt", "a/b.txt", "a..txt", "a b", "x\0", "é.txt", "a\\b",
        ] {
            assert!(!is_safe_file_name(bad), "{bad:?} accepted");
        }
        assert!(is_safe_file_name("B8EE25A34BC5CD1F4D5DC8C20FD4EEB2.txt"));
        assert!(is_safe_file_name("fileauth_x-y.txt"));
        assert!(!is_safe_file_name(&"a".repeat(256)));
    }
}
