//! ACME (RFC 8555) behind [`CertificateAuthority`]: Let's Encrypt, ZeroSSL, Pebble, any
//! compliant CA, through the instant-acme crate (JWS, nonces, `badNonce` retries) over
//! [`AcmeHttp`].
//!
//! The persisted steps map onto ACME like this: [`CertificateAuthority::create`] is `newOrder`
//! with every name, answered with [`Created::Placed`] whose id is the order URL — nothing else is
//! asked before the caller saves it, so a crash resumes that order and `newOrder` is never sent in
//! a loop. [`CertificateAuthority::order_status`] reads the order and its authorizations and hands
//! out the challenges as data (HTTP-01: a file at `/.well-known/acme-challenge/<token>` holding
//! the key authorization; DNS-01: a TXT record at `_acme-challenge.<name>`); once the order is
//! `ready` it finalizes with *our* CSR (the one in the order record, given by
//! [`CertificateAuthority::attach_csr`]) and, once `valid`, downloads the chain.
//! [`CertificateAuthority::request_validation`] tells the CA the challenges are ready. Renewals
//! carry `replaces` (RFC 9773) where the CA offers ACME Renewal Information; [`renewal_window`]
//! reads the window the CA suggests.
//!
//! The account (URL and key) lives in one file per directory under the config directory
//! ([`crate::paths::acme_account`], 0600), written by [`register`] and reused by every later run.
//!
//! Not here: where challenges are published (`crate::publish`), nginx.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RevocationReason,
    RevocationRequest,
};
use rustls::pki_types::{CertificateDer, Der};
use sha2::{Digest, Sha256};

use super::account::{AccountApi, AccountInfo, Product, RegisterRequest, Registration};
use super::acme_http::AcmeHttp;
use super::{
    BoxFuture, CaError, Capabilities, CertificateAuthority, Challenge, Created, IssuedCertificate,
    NameValidation, Order, OrderId, OrderRequest, OrderState, PollPolicy,
};
use crate::config::AcmeSettings;

/// The URL path prefix of HTTP-01 challenge files.
pub const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// An ACME CA.
pub struct Acme {
    directory_url: String,
    account_file: PathBuf,
    http: AcmeHttp,
    account: Mutex<Option<Account>>,
    /// Order URL → the CSR (DER) to finalize it with.
    csrs: Mutex<HashMap<String, Vec<u8>>>,
    /// Order URL → the names proven by DNS-01 (wildcards always are).
    dns_names: Mutex<HashMap<String, Vec<String>>>,
    contact: Vec<String>,
    /// `preferred_chain`: the issuer CN of the topmost certificate of the chain to install.
    preferred_chain: Option<String>,
}

/// What `register` needs for an ACME account.
#[derive(Debug, Clone)]
pub struct AcmeRegistration {
    /// The contact e-mail (`mailto:` is added).
    pub email: String,
    /// The user agreed to the CA's terms of service (`--agree-tos`).
    pub agree_tos: bool,
    /// External account binding: key id and the base64url HMAC key.
    pub eab: Option<(String, crate::secret::Secret)>,
}

/// What `register` did.
#[derive(Debug, Clone)]
pub struct AcmeAccountSaved {
    /// The account URL.
    pub account_url: String,
    /// Where the account key is.
    pub file: PathBuf,
    /// False when an account saved earlier was reused.
    pub created: bool,
    /// The terms of service URL, if the CA names one.
    pub terms: Option<String>,
}

impl Acme {
    /// A client for `settings` (the account file is found under `config_dir`).
    pub fn new(settings: &AcmeSettings, config_dir: &Path) -> Result<Acme, CaError> {
        let directory_url = settings.directory_url();
        check_url(&directory_url)?;
        let account_file = (settings.account_key.clone())
            .unwrap_or_else(|| crate::paths::acme_account(config_dir, &directory_url));
        let mut http = AcmeHttp::new(settings.ca_bundle.as_deref())?;
        if settings.preferred_chain.is_some() {
            http = http.keep_chains();
        }
        Ok(Acme {
            http,
            preferred_chain: settings.preferred_chain.clone(),
            directory_url,
            account_file,
            account: Mutex::new(None),
            csrs: Mutex::new(HashMap::new()),
            dns_names: Mutex::new(HashMap::new()),
            contact: settings.contact.clone().unwrap_or_default(),
        })
    }

    /// The directory URL.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// The account file (URL and key).
    pub fn account_file(&self) -> &Path {
        &self.account_file
    }

    /// True when an account has been registered for this directory.
    pub fn has_account(&self) -> bool {
        self.account_file.is_file()
    }

    /// The directory object, fetched with a plain GET.
    async fn directory(&self) -> Result<serde_json::Value, CaError> {
        self.http.get_json(&self.directory_url).await
    }

    /// The account, loaded from its file once per run.
    async fn account(&self) -> Result<Account, CaError> {
        if let Some(account) = self.account.lock().unwrap().clone() {
            return Ok(account);
        }
        let text = std::fs::read_to_string(&self.account_file).map_err(|e| {
            CaError::Invalid(format!(
                "no ACME account for {} ({}: {e}); run `enc365-nginx register --provider acme \
                 --email ADDR --agree-tos` first",
                self.directory_url,
                self.account_file.display()
            ))
        })?;
        let credentials: AccountCredentials = serde_json::from_str(&text).map_err(|e| {
            CaError::Invalid(format!(
                "{} is not an ACME account file ({e}); move it away and register again",
                self.account_file.display()
            ))
        })?;
        let account = Account::builder_with_http(Box::new(self.http.clone()))
            .from_credentials(credentials)
            .await
            .map_err(|e| self.error("directory", e))?;
        *self.account.lock().unwrap() = Some(account.clone());
        Ok(account)
    }

    /// An instant-acme error as a [`CaError`] for `endpoint`: problem documents are the CA's
    /// refusal; anything else is a transport failure.
    fn error(&self, endpoint: &str, e: instant_acme::Error) -> CaError {
        let endpoint = format!("{} {endpoint}", self.directory_url);
        match e {
            instant_acme::Error::Api(problem) => CaError::Api {
                endpoint,
                message: problem.to_string(),
            },
            instant_acme::Error::Unsupported(what) => {
                CaError::Unsupported(format!("the ACME server does not support {what}"))
            }
            other => CaError::Transport {
                endpoint,
                detail: format!("{other}; the next run asks again"),
            },
        }
    }

    /// `newOrder` with `request`'s names (and `replaces` when renewing at a CA with ARI).
    async fn new_order(&self, request: &OrderRequest) -> Result<Created, CaError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = request.names.iter().map(|n| identifier(n)).collect();
        let replaces = match &request.renews {
            Some(old) => self.replaces(&account, old).await,
            None => None,
        };
        let mut new = NewOrder::new(&identifiers);
        if let Some(id) = replaces.clone() {
            new = new.replaces(id);
        }
        // A `badNonce` refusal created nothing: instant-acme retries it three times, and so do
        // we, since a CA may reject nonces at random (Pebble does, on purpose).
        let mut attempts = 0;
        let order = loop {
            match account.new_order(&new).await {
                Err(e) if is_bad_nonce(&e) && attempts < 3 => attempts += 1,
                other => break other.map_err(|e| self.error("newOrder", e))?,
            }
        };
        let url = order.url().to_string();
        self.attach_csr(&OrderId(url.clone()), &request.csr_pem);
        let by_dns: Vec<String> = (request.methods.iter())
            .filter(|(_, m)| **m == super::ValidationMethod::Dns)
            .map(|(n, _)| n.clone())
            .collect();
        self.attach_dns_names(&OrderId(url.clone()), &by_dns);
        Ok(Created::Placed(Order {
            id: OrderId(url),
            names: request.names.clone(),
            state: OrderState::Pending {
                detail: "pending".into(),
            },
            validations: Vec::new(),
        }))
    }

    /// The ARI identifier of the certificate the order at `old` issued, when the CA offers ARI
    /// and that certificate can still be fetched; `None` otherwise (the order is placed without
    /// `replaces`).
    async fn replaces(
        &self,
        account: &Account,
        old: &OrderId,
    ) -> Option<CertificateIdentifier<'static>> {
        let directory = self.directory().await.ok()?;
        directory.get("renewalInfo")?.as_str()?;
        let mut order = account.order(old.0.clone()).await.ok()?;
        let pem = order.certificate().await.ok()??;
        cert_identifier(&pem)
    }

    /// [`Acme::status_once`], again after a `badNonce` refusal (reading is harmless, and a
    /// refused finalize did nothing).
    async fn status(&self, id: &OrderId, names: &[String]) -> Result<Order, CaError> {
        let mut attempts = 0;
        loop {
            match self.status_once(id, names).await {
                Err(e) if refused_nonce(&e) && attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Reads the order, finalizing it with our CSR once ready and downloading the chain once
    /// valid.
    async fn status_once(&self, id: &OrderId, names: &[String]) -> Result<Order, CaError> {
        let account = self.account().await?;
        let mut order = account
            .order(id.0.clone())
            .await
            .map_err(|e| self.error("order", e))?;
        let mut status = order.state().status;
        if status == OrderStatus::Ready {
            let csr = self.csr_for(id)?;
            order
                .finalize_csr(&csr)
                .await
                .map_err(|e| self.error("finalize", e))?;
            status = order.state().status;
        }
        let (state, validations) = match status {
            OrderStatus::Pending => {
                let validations = self.validations(&account, &mut order, names).await?;
                (pending("pending"), validations)
            }
            OrderStatus::Ready | OrderStatus::Processing => (pending("processing"), Vec::new()),
            OrderStatus::Valid => match order.certificate().await {
                Ok(Some(pem)) => {
                    let url = order.state().certificate.clone();
                    let pem = self.chosen_chain(&account, url.as_deref(), pem).await;
                    (OrderState::Issued(split_chain(&pem)?), Vec::new())
                }
                Ok(None) => (pending("processing"), Vec::new()),
                Err(e) => return Err(self.error("certificate", e)),
            },
            OrderStatus::Invalid => {
                let reason = (order.state().error.as_ref())
                    .map_or_else(|| "invalid".to_string(), |p| format!("invalid: {p}"));
                let detail = self.failed_challenges(&mut order).await;
                (
                    OrderState::Failed {
                        reason: format!("{reason}{detail}"),
                    },
                    Vec::new(),
                )
            }
        };
        Ok(Order {
            id: id.clone(),
            names: names.to_vec(),
            state,
            validations,
        })
    }

    /// The chain to install: with `preferred_chain` set, the first of the default chain and the
    /// alternates the CA named (`Link: rel="alternate"`) whose topmost certificate was issued
    /// by that common name; the default chain when none is.
    async fn chosen_chain(&self, account: &Account, url: Option<&str>, default: String) -> String {
        let (Some(wanted), Some(url)) = (&self.preferred_chain, url) else {
            return default;
        };
        self.http.take_chain(url);
        if top_issuer_cn(&default).as_deref() == Some(wanted.as_str()) {
            return default;
        }
        for alternate in self.http.alternates(url) {
            // instant-acme has no POST-as-GET for a chain URL; an order read signs the same
            // request, and the transport keeps the chain it answers with (the order parse fails).
            let _ = account.order(alternate.clone()).await;
            let Some(pem) = self.http.take_chain(&alternate) else {
                continue;
            };
            if top_issuer_cn(&pem).as_deref() == Some(wanted.as_str()) && pem_blocks(&pem).is_ok() {
                tracing::info!(chain = %alternate, issuer = %wanted, "the preferred chain");
                return pem;
            }
        }
        tracing::warn!(
            issuer = %wanted,
            "no chain offered by the CA ends in a certificate issued by the preferred issuer; \
             the default chain is installed"
        );
        default
    }

    /// The CSR to finalize `id` with, as DER.
    fn csr_for(&self, id: &OrderId) -> Result<Vec<u8>, CaError> {
        self.csrs
            .lock()
            .unwrap()
            .get(&id.0)
            .cloned()
            .ok_or_else(|| {
                CaError::Invalid(format!(
                    "order {id} is ready but no CSR was given for it; the next run finalizes it"
                ))
            })
    }

    /// Per name: validated or not, and the challenges offered (HTTP-01, then DNS-01).
    async fn validations(
        &self,
        account: &Account,
        order: &mut instant_acme::Order,
        names: &[String],
    ) -> Result<Vec<NameValidation>, CaError> {
        let thumbprint = account.key_thumbprint().to_string();
        let mut out = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(handle) = authorizations.next().await {
            let handle = handle.map_err(|e| self.error("authorization", e))?;
            let name = handle.identifier().to_string();
            if !names.contains(&name) {
                return Err(CaError::Malformed {
                    endpoint: format!("{} authorization", self.directory_url),
                    detail: format!("the CA asks to validate {name:?}, which was not ordered"),
                });
            }
            let challenges = (handle.challenges.iter())
                .filter_map(|c| challenge(&name, &c.r#type, &c.token, &thumbprint))
                .collect::<Result<Vec<_>, CaError>>()?;
            out.push(NameValidation {
                name,
                validated: handle.status == AuthorizationStatus::Valid,
                challenges,
            });
        }
        out.sort_by_key(|v| names.iter().position(|n| *n == v.name));
        Ok(out)
    }

    /// What the CA said about failed challenges, for the failure reason.
    async fn failed_challenges(&self, order: &mut instant_acme::Order) -> String {
        let mut out = String::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(handle)) = authorizations.next().await {
            for c in handle.challenges.iter() {
                if let Some(problem) = &c.error {
                    out.push_str(&format!("; {}: {problem}", handle.identifier()));
                }
            }
        }
        out
    }

    /// [`Acme::ready_once`], again after a `badNonce` refusal (setting a challenge ready twice is
    /// harmless: a challenge no longer pending is skipped).
    async fn ready(&self, id: &OrderId) -> Result<(), CaError> {
        let mut attempts = 0;
        loop {
            match self.ready_once(id).await {
                Err(e) if refused_nonce(&e) && attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Tells the CA the challenge of each pending authorization is ready: DNS-01 for wildcards
    /// and the names the order record proves by DNS, HTTP-01 for the rest.
    async fn ready_once(&self, id: &OrderId) -> Result<(), CaError> {
        let account = self.account().await?;
        let mut order = account
            .order(id.0.clone())
            .await
            .map_err(|e| self.error("order", e))?;
        if order.state().status != OrderStatus::Pending {
            return Ok(());
        }
        let by_dns = (self.dns_names.lock().unwrap().get(&id.0).cloned()).unwrap_or_default();
        let mut authorizations = order.authorizations();
        while let Some(handle) = authorizations.next().await {
            let mut handle = handle.map_err(|e| self.error("authorization", e))?;
            if handle.status != AuthorizationStatus::Pending {
                continue;
            }
            let name = handle.identifier().to_string();
            let kind = if handle.identifier().wildcard || by_dns.contains(&name) {
                ChallengeType::Dns01
            } else {
                ChallengeType::Http01
            };
            let Some(mut challenge) = handle.challenge(kind.clone()) else {
                return Err(CaError::Unsupported(format!(
                    "the CA offers no {kind:?} challenge for {name}"
                )));
            };
            if challenge.status == instant_acme::ChallengeStatus::Pending {
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| self.error("challenge", e))?;
            }
        }
        Ok(())
    }

    /// [`Acme::revoke_once`], again after a `badNonce` refusal (reading the order is harmless,
    /// and a refused revocation did nothing).
    async fn revoke_order(&self, id: &OrderId, reason: u8) -> Result<(), CaError> {
        let mut attempts = 0;
        loop {
            match self.revoke_once(id, reason).await {
                Err(e) if refused_nonce(&e) && attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Revokes the certificate the order at `id` issued, with an RFC 5280 reason code.
    async fn revoke_once(&self, id: &OrderId, reason: u8) -> Result<(), CaError> {
        let account = self.account().await?;
        let mut order = account
            .order(id.0.clone())
            .await
            .map_err(|e| self.error("order", e))?;
        let pem = (order.certificate().await)
            .map_err(|e| self.error("certificate", e))?
            .ok_or_else(|| CaError::Invalid(format!("order {id} has no certificate yet")))?;
        let leaf = first_der(&pem)?;
        let reason = revocation_reason(reason);
        account
            .revoke(&RevocationRequest {
                certificate: &CertificateDer::from(leaf),
                reason: Some(reason),
            })
            .await
            .map_err(|e| self.error("revokeCert", e))
    }

    /// The account as the CA knows it: URL and contact.
    async fn info(&self) -> Result<AccountInfo, CaError> {
        let account = self.account().await?;
        let contact = if self.contact.is_empty() {
            "(no contact)".to_string()
        } else {
            self.contact.join(", ")
        };
        Ok(AccountInfo {
            balance: None,
            currency: None,
            user: Some(format!("{} ({contact})", account.id())),
        })
    }
}

/// True for the CA's `badNonce` refusal (nothing was done; the request may be sent again).
fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p) if p.r#type.as_deref().is_some_and(|t| t.ends_with(":badNonce")))
}

/// True for a [`CaError`] made from the CA's `badNonce` refusal.
fn refused_nonce(e: &CaError) -> bool {
    matches!(e, CaError::Api { message, .. } if message.contains(":badNonce"))
}

/// Refuses a directory URL that is not https (http only for loopback hosts).
fn check_url(url: &str) -> Result<(), CaError> {
    crate::config::validate_base_url(url)
        .map(|_| ())
        .map_err(|e| CaError::Invalid(format!("ACME directory: {e}")))
}

fn pending(detail: &str) -> OrderState {
    OrderState::Pending {
        detail: detail.to_string(),
    }
}

/// The ACME identifier of a name: an IP address, or a DNS name (a wildcard keeps its `*.`).
fn identifier(name: &str) -> Identifier {
    match name.parse() {
        Ok(ip) => Identifier::Ip(ip),
        Err(_) => Identifier::Dns(name.to_string()),
    }
}

/// One challenge as data, or `None` for a type we do not publish.
fn challenge(
    name: &str,
    kind: &ChallengeType,
    token: &str,
    thumbprint: &str,
) -> Option<Result<Challenge, CaError>> {
    let key_authorization = format!("{token}.{thumbprint}");
    match kind {
        ChallengeType::Http01 => Some(if super::is_safe_file_name(token) {
            Ok(Challenge::HttpFile {
                path: format!("{ACME_CHALLENGE}{token}"),
                content: key_authorization,
            })
        } else {
            Err(CaError::Malformed {
                endpoint: "challenge".into(),
                detail: format!("unsafe HTTP-01 token {token:?} for {name}"),
            })
        }),
        ChallengeType::Dns01 => Some(Ok(Challenge::DnsRecord {
            host: format!("_acme-challenge.{}", name.trim_start_matches("*.")),
            record_type: "TXT".into(),
            value: URL_SAFE_NO_PAD.encode(Sha256::digest(key_authorization.as_bytes())),
        })),
        _ => None,
    }
}

/// The PEM blocks of a chain, each checked as X.509, in order.
fn pem_blocks(pem: &str) -> Result<Vec<String>, CaError> {
    super::pem::certificate_list(pem, false).map_err(|e| CaError::Malformed {
        endpoint: "certificate".into(),
        detail: e.to_string(),
    })
}

/// The issuer common name of a PEM chain's topmost (last) certificate.
pub fn top_issuer_cn(pem: &str) -> Option<String> {
    let last = pem_blocks(pem).ok()?.pop()?;
    let (_, block) = x509_parser::pem::parse_x509_pem(last.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).ok()?;
    let cn = cert.issuer().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The DER of a chain's first certificate.
fn first_der(pem: &str) -> Result<Vec<u8>, CaError> {
    let first = pem_blocks(pem)?.remove(0);
    let (_, block) =
        x509_parser::pem::parse_x509_pem(first.as_bytes()).map_err(|e| CaError::Malformed {
            endpoint: "certificate".into(),
            detail: e.to_string(),
        })?;
    Ok(block.contents)
}

/// The downloaded chain as leaf + intermediates, each PEM with LF line endings.
fn split_chain(pem: &str) -> Result<IssuedCertificate, CaError> {
    let blocks = pem_blocks(pem)?;
    Ok(IssuedCertificate {
        leaf_pem: blocks[0].clone(),
        chain_pem: blocks[1..].concat(),
    })
}

/// The RFC 9773 certificate identifier (AKI key id . serial) of a PEM chain's leaf.
pub fn cert_identifier(pem: &str) -> Option<CertificateIdentifier<'static>> {
    let der = first_der(pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })?;
    let serial = cert.tbs_certificate.raw_serial().to_vec();
    Some(CertificateIdentifier::new(Der::from_slice(&aki), Der::from_slice(&serial)).into_owned())
}

/// The RFC 5280 reason for a code (unknown codes become `unspecified`).
fn revocation_reason(code: u8) -> RevocationReason {
    match code {
        1 => RevocationReason::KeyCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        9 => RevocationReason::PrivilegeWithdrawn,
        _ => RevocationReason::Unspecified,
    }
}

/// The CSR's DER from its PEM.
fn csr_der(csr_pem: &str) -> Option<Vec<u8>> {
    let body: String = csr_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

impl CertificateAuthority for Acme {
    fn name(&self) -> &'static str {
        "acme"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            explicit_recheck: true,
            reissue: false,
            cancel: false,
            revoke: true,
        }
    }

    fn create<'a>(&'a self, request: &'a OrderRequest) -> BoxFuture<'a, Result<Created, CaError>> {
        Box::pin(self.new_order(request))
    }

    fn attach_csr(&self, id: &OrderId, csr_pem: &str) {
        if let Some(der) = csr_der(csr_pem) {
            self.csrs.lock().unwrap().insert(id.0.clone(), der);
        }
    }

    fn attach_dns_names(&self, id: &OrderId, dns_names: &[String]) {
        (self.dns_names.lock().unwrap()).insert(id.0.clone(), dns_names.to_vec());
    }

    fn order_status<'a>(
        &'a self,
        id: &'a OrderId,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(self.status(id, names))
    }

    fn poll_policy(&self) -> PollPolicy {
        // Let's Encrypt validates within seconds; polling every 2 s backing off to 10 s keeps
        // far inside its overall request limits.
        PollPolicy {
            interval: Duration::from_secs(2),
            backoff: 1.5,
            max_backoff: 5.0,
            timeout: Duration::from_secs(300),
            rechecks_per_run: 1,
        }
    }

    fn request_validation<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(self.ready(id))
    }

    fn reissue<'a>(
        &'a self,
        _id: &'a OrderId,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async {
            Err(CaError::Unsupported(
                "ACME has no reissue: `enc365-nginx renew --force` orders a new certificate".into(),
            ))
        })
    }

    fn cancel<'a>(&'a self, _id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async {
            Err(CaError::Unsupported(
                "ACME orders cannot be cancelled; an unfinished order expires by itself".into(),
            ))
        })
    }

    fn revoke<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(self.revoke_order(id, 0))
    }

    fn revoke_with_reason<'a>(
        &'a self,
        id: &'a OrderId,
        reason: u8,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(self.revoke_order(id, reason))
    }
}

impl AccountApi for Acme {
    fn name(&self) -> &'static str {
        "acme"
    }

    fn register<'a>(
        &'a self,
        _request: &'a RegisterRequest,
    ) -> BoxFuture<'a, Result<Registration, CaError>> {
        Box::pin(async {
            Err(CaError::Unsupported(
                "ACME accounts are registered with `enc365-nginx register --provider acme \
                 --email ADDR --agree-tos`"
                    .into(),
            ))
        })
    }

    fn products(&self) -> BoxFuture<'_, Result<Vec<Product>, CaError>> {
        Box::pin(async {
            Err(CaError::Unsupported(
                "ACME has no products: the CA issues one kind of DV certificate, with the names \
                 the site has; there is nothing to choose"
                    .into(),
            ))
        })
    }

    fn account(&self) -> BoxFuture<'_, Result<AccountInfo, CaError>> {
        Box::pin(self.info())
    }
}

/// Creates (or reuses) the ACME account for `acme`'s directory and saves its key (0600).
/// Refuses without the user's agreement to the CA's terms, naming them.
pub async fn register(
    acme: &Acme,
    request: &AcmeRegistration,
) -> Result<AcmeAccountSaved, CaError> {
    let directory = acme.directory().await?;
    let meta = directory.get("meta");
    let terms = (meta.and_then(|m| m.get("termsOfService")))
        .and_then(|t| t.as_str())
        .map(str::to_string);
    if acme.has_account() {
        let account = acme.account().await?;
        return Ok(AcmeAccountSaved {
            account_url: account.id().to_string(),
            file: acme.account_file.clone(),
            created: false,
            terms,
        });
    }
    if !request.agree_tos {
        return Err(CaError::Invalid(format!(
            "registering needs your agreement to the CA's terms of service ({}); read them and \
             add --agree-tos",
            terms.as_deref().unwrap_or("the CA names no terms URL")
        )));
    }
    let eab_required = (meta.and_then(|m| m.get("externalAccountRequired")))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let eab = match &request.eab {
        Some((kid, hmac)) => {
            let key = URL_SAFE_NO_PAD
                .decode(hmac.expose().trim().trim_end_matches('='))
                .map_err(|_| {
                    CaError::Invalid(
                        "the EAB HMAC key is not base64url; paste it as the CA shows it".into(),
                    )
                })?;
            Some(ExternalAccountKey::new(kid.clone(), &key))
        }
        None if eab_required => {
            return Err(CaError::Invalid(format!(
                "{} requires external account binding: add --eab-kid KID and pipe the HMAC key \
                 on stdin (from the CA's dashboard)",
                acme.directory_url
            )));
        }
        None => None,
    };
    let contact = format!("mailto:{}", request.email.trim());
    let contacts = [contact.as_str()];
    // A `badNonce` refusal created nothing (a CA may reject nonces at random; Pebble does, on
    // purpose): asked again, with a new key, up to three times.
    let mut attempts = 0;
    let (account, credentials) = loop {
        let created = Account::builder_with_http(Box::new(acme.http.clone()))
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                acme.directory_url.clone(),
                eab.as_ref(),
            )
            .await;
        match created {
            Err(e) if is_bad_nonce(&e) && attempts < 3 => attempts += 1,
            other => break other.map_err(|e| acme.error("newAccount", e))?,
        }
    };
    let json = serde_json::to_vec_pretty(&credentials)
        .map_err(|e| CaError::Invalid(format!("could not encode the account: {e}")))?;
    if let Some(dir) = acme.account_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CaError::Invalid(format!("could not create {}: {e}", dir.display())))?;
    }
    crate::store::write_atomic(&acme.account_file, &json, 0o600).map_err(|e| {
        CaError::Invalid(format!(
            "the account {} was created but its key could not be saved: {e:#}",
            account.id()
        ))
    })?;
    Ok(AcmeAccountSaved {
        account_url: account.id().to_string(),
        file: acme.account_file.clone(),
        created: true,
        terms,
    })
}

/// The renewal window the CA suggests for one certificate (RFC 9773 §4.2), in Unix seconds,
/// with the moment inside it this host renews at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    /// The start of the suggested window.
    pub start: i64,
    /// Its end.
    pub end: i64,
    /// When to renew: a point inside the window chosen from the certificate's identifier, so
    /// certificates spread over the window (as RFC 9773 asks: not at its start) and every run
    /// of the timer picks the same point for the same certificate.
    pub renew_at: i64,
    /// The CA's page explaining the window (for example after an incident), if it gives one.
    pub explanation_url: Option<String>,
}

impl RenewalWindow {
    /// The window of the CA's `renewalInfo` answer for the certificate identified by `seed`
    /// (its ARI identifier). A window whose end is not after its start renews at its start.
    pub fn from_info(info: &instant_acme::RenewalInfo, seed: &str) -> RenewalWindow {
        let start = info.suggested_window.start.unix_timestamp();
        let end = info.suggested_window.end.unix_timestamp();
        let span = u64::try_from(end.saturating_sub(start)).unwrap_or(0);
        let offset = if span == 0 {
            0
        } else {
            let digest = Sha256::digest(seed.as_bytes());
            let pick = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
            i64::try_from(pick % span).unwrap_or(0)
        };
        RenewalWindow {
            start,
            end,
            renew_at: start + offset,
            explanation_url: info.explanation_url.clone(),
        }
    }
}

/// The renewal window the CA suggests for a PEM chain's leaf (RFC 9773); `None` when the CA
/// offers no ARI (no `renewalInfo` in its directory), there is no account, or the call fails —
/// the caller then falls back to `--days`.
pub async fn renewal_window(acme: &Acme, fullchain_pem: &str) -> Option<RenewalWindow> {
    let id = cert_identifier(fullchain_pem)?;
    let account = acme.account().await.ok()?;
    match account.renewal_info(&id).await {
        Ok((info, _)) => Some(RenewalWindow::from_info(&info, &id.to_string())),
        Err(e) => {
            tracing::info!(error = %e, "no renewal information (ARI) from the CA: --days decides");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_become_data() {
        let http = challenge("a.test", &ChallengeType::Http01, "tok_-1", "thumb")
            .unwrap()
            .unwrap();
        assert_eq!(
            http,
            Challenge::HttpFile {
                path: "/.well-known/acme-challenge/tok_-1".into(),
                content: "tok_-1.thumb".into()
            }
        );
        let dns = challenge("*.a.test", &ChallengeType::Dns01, "tok", "thumb")
            .unwrap()
            .unwrap();
        let Challenge::DnsRecord {
            host,
            record_type,
            value,
        } = dns
        else {
            panic!("not DNS")
        };
        assert_eq!(host, "_acme-challenge.a.test");
        assert_eq!(record_type, "TXT");
        assert_eq!(value, URL_SAFE_NO_PAD.encode(Sha256::digest(b"tok.thumb")));
        assert!(
            challenge("a.test", &ChallengeType::Http01, "../x", "t")
                .unwrap()
                .is_err()
        );
        assert!(challenge("a.test", &ChallengeType::TlsAlpn01, "t", "t").is_none());
    }

    #[test]
    fn the_ari_identifier_is_the_issuers_key_id_and_the_serial() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![7; 20]);
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["a.test".into()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        leaf.serial_number = Some(SerialNumber::from_slice(&[0x01, 0x02, 0x03]));
        let cert = leaf
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        let id = cert_identifier(&cert.pem()).expect("identifier");
        assert_eq!(
            id.to_string(),
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode([7; 20]),
                URL_SAFE_NO_PAD.encode([1, 2, 3])
            )
        );
    }

    /// The example answer of RFC 9773 §4.2, as a CA sends it.
    const RFC_9773_ANSWER: &str = r#"{
       "suggestedWindow": {
         "start": "2025-01-02T04:00:00Z",
         "end": "2025-01-03T04:00:00Z"
       },
       "explanationURL": "https://acme.example.com/docs/ari"
     }"#;

    #[test]
    fn a_renewal_window_is_read_from_the_cas_answer_and_renews_inside_it() {
        let info: instant_acme::RenewalInfo = serde_json::from_str(RFC_9773_ANSWER).unwrap();
        let seed = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";
        let window = RenewalWindow::from_info(&info, seed);
        assert_eq!(window.start, 1_735_790_400, "2025-01-02T04:00:00Z");
        assert_eq!(window.end, 1_735_876_800, "2025-01-03T04:00:00Z");
        assert!(window.start <= window.renew_at && window.renew_at < window.end);
        assert_eq!(
            window.renew_at,
            RenewalWindow::from_info(&info, seed).renew_at,
            "stable"
        );
        assert_eq!(
            window.explanation_url.as_deref(),
            Some("https://acme.example.com/docs/ari")
        );
        // Certificates spread over the window rather than all renewing at its start.
        let picks: std::collections::BTreeSet<i64> = (0..50)
            .map(|i| RenewalWindow::from_info(&info, &format!("{seed}{i}")).renew_at)
            .collect();
        assert!(picks.len() > 45, "{picks:?}");
        let mean = picks.iter().map(|p| p - window.start).sum::<i64>() / picks.len() as i64;
        assert!((20_000..66_000).contains(&mean), "about mid-window: {mean}");

        // A window of one instant (a CA asking for renewal now) renews at its start.
        let now: instant_acme::RenewalInfo = serde_json::from_str(
            r#"{"suggestedWindow":{"start":"2024-03-01T00:00:00Z","end":"2024-03-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let w = RenewalWindow::from_info(&now, seed);
        assert_eq!((w.renew_at, w.explanation_url), (w.start, None));
    }

    #[test]
    fn presets_and_urls() {
        let mut s = AcmeSettings::default();
        assert!(s.directory_url().contains("acme-staging-v02"));
        s.directory = Some("letsencrypt".into());
        assert_eq!(
            s.directory_url(),
            "https://acme-v02.api.letsencrypt.org/directory"
        );
        s.directory = Some("https://127.0.0.1:14000/dir".into());
        assert_eq!(s.directory_url(), "https://127.0.0.1:14000/dir");
        let path = crate::paths::acme_account(Path::new("/etc/x"), "https://127.0.0.1:14000/dir");
        assert_eq!(path, Path::new("/etc/x/acme/127.0.0.1_14000_dir.json"));
    }
}
