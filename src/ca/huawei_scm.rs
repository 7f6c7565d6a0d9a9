//! The Huawei Cloud SSL Certificate Manager client (providers.md §3): every request signed with
//! AK/SK (`SDK-HMAC-SHA256`, through the transport's signing hook, [`ScmSigner`]); the account's
//! certificates listed; an unused purchased certificate chosen for the site, or the one named in
//! config, or — only when `[huawei_scm.buy]` allows it — one bought; the application made with our
//! CSR; the validation records read from ShowCertificate's `authentification[]`; the certificate
//! exported, revoked (v2) or its application withdrawn.
//!
//! SCM maps onto the pipeline's two persisted steps: [`CertificateAuthority::create`] *chooses*
//! the certificate (a list call; or the purchase, sent once) and answers it as a draft;
//! [`CertificateAuthority::commit`] *applies* to it (sent once). Choosing first means a purchase
//! whose answer was lost is found again by the next run as an unused certificate, never bought
//! twice. SCM has no re-check call: the CA polls, so do we ([`CertificateAuthority::poll_policy`]).
//! SCM takes one validation method per application (`domain_method`): FILE only for DV and IP
//! certificates without wildcards, DNS otherwise; a site whose names need both is refused before
//! anything is bought or applied.
//!
//! Automatic DNS push (`auto_dns_auth`): asked for when a DNS application's names are all at
//! Huawei Cloud DNS (or `[huawei_scm] auto_dns_auth = true`), see [`auto_dns_auth`]; SCM then
//! writes the records itself and the pipeline publishes none. The secret key is only ever an
//! HMAC key here.
//!
//! Not here: publishing validation data (`crate::publish`), the order record (`crate::orders`),
//! choosing certificates ([`crate::ca::huawei_scm_pick`]), reading answers
//! ([`crate::ca::huawei_scm_answer`]).

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use super::account::{self, AccountApi, AccountInfo, RegisterRequest};
use super::envelope::{loose_string, loose_u64};
use super::http::{Body, Expect, HttpOptions, Outgoing, Request, Signer, Transport};
use super::huawei_scm_answer::{
    challenge, check_id, checked_certificate, is_plain_id, malformed, read_answer, validations,
};
use super::huawei_scm_pick::{self as pick, Fit, ScmCertificate, domain_method};
use super::{
    BoxFuture, CaError, Capabilities, CertificateAuthority, Created, IssuedCertificate,
    NameValidation, Order, OrderId, OrderRequest, OrderState, PollPolicy, ValidationMethod,
};
use crate::config::{DnsProvider, HuaweiBuy, HuaweiScmSettings};
use crate::secret::Secret;

/// The region used when `[huawei_scm]` names none (China, Beijing 4).
pub const DEFAULT_REGION: &str = "cn-north-4";

/// The environment variable that shifts the client's clock by this many seconds when it dates a
/// request (`X-Sdk-Date`). Meant for tests only (to show what a skewed clock looks like); never
/// set it on a real host.
pub const TEST_CLOCK_OFFSET_ENV: &str = "ENC365_TEST_CLOCK_OFFSET_SECS";

/// The SCM endpoint of `region` (`https://scm.<region>.myhuaweicloud.com`).
pub fn region_endpoint(region: &str) -> Result<String, CaError> {
    let ok = !region.is_empty()
        && region.len() <= 40
        && (region.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(CaError::Invalid(format!(
            "region {region:?} under [huawei_scm] is not a Huawei Cloud region (cn-north-4, \
             ap-southeast-1, …)"
        )));
    }
    Ok(format!("https://scm.{region}.myhuaweicloud.com"))
}

/// Whether the application for `request` asks SCM to push its DNS validation records to Huawei
/// Cloud DNS (`auto_dns_auth: true`) instead of our publishing them. Only DNS applications (every
/// name proven by DNS); then `[huawei_scm] auto_dns_auth` when set, else whether `[dns]` publishes
/// every name through `huaweicloud` (the name's DNS is at Huawei Cloud DNS, where SCM can write).
pub fn auto_dns_auth(settings: &HuaweiScmSettings, request: &OrderRequest) -> bool {
    let by_dns = !request.names.is_empty()
        && (request.names.iter()).all(|n| request.method(n) == ValidationMethod::Dns);
    if !by_dns {
        return false;
    }
    if let Some(forced) = settings.auto_dns_auth {
        return forced;
    }
    let Some(dns) = &settings.dns else {
        return false;
    };
    request.names.iter().all(|name| {
        let backend = match dns.listed_zone_of(name) {
            Some(zone) => dns.backend_for(&zone),
            None => &dns.backend,
        };
        backend.provider == Some(DnsProvider::Huaweicloud)
    })
}

/// The endpoints (providers.md §3.4).
mod path {
    pub const LIST: &str = "/v3/scm/certificates";
    pub const BUY: &str = "/v3/scm/certificates/buy";
    pub fn show(id: &str) -> String {
        format!("/v3/scm/certificates/{id}")
    }
    pub fn apply(id: &str) -> String {
        format!("/v3/scm/certificates/{id}/apply")
    }
    pub fn export(id: &str) -> String {
        format!("/v3/scm/certificates/{id}/export")
    }
    pub fn cancel(id: &str) -> String {
        format!("/v3/scm/certificates/{id}/cancel-cert")
    }
    pub fn domain_verify(project: &str, id: &str) -> String {
        format!("/v2/{project}/scm/cert/{id}/domain-verify")
    }
    pub fn revoke(project: &str, id: &str) -> String {
        format!("/v2/{project}/scm/cert/{id}/revoke")
    }
}

/// Signs every request with the AK/SK pair: adds `X-Sdk-Date` and `Authorization`, signing
/// `host`, `content-type` (when sent) and `x-sdk-date` (providers.md §3.2).
pub struct ScmSigner {
    ak: String,
    sk: Secret,
    clock_offset: i64,
}

impl Signer for ScmSigner {
    fn sign(&self, request: &Outgoing<'_>) -> Result<Vec<(String, String)>, CaError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp() + self.clock_offset;
        let date = crate::huawei_sign::sdk_date(now);
        let mut headers: Vec<(String, String)> = (request.headers.iter())
            .filter(|(k, _)| k == "host" || k == "content-type")
            .cloned()
            .collect();
        headers.push(("x-sdk-date".into(), date.clone()));
        let query: Vec<(String, String)> = (request.url.query_pairs())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Every path this client sends is plain ASCII (ids are checked), so it is signed as sent.
        let signed = crate::huawei_sign::SignRequest {
            method: request.method,
            path: request.url.path(),
            query: &query,
            headers: &headers,
            body: request.body,
        };
        let auth = crate::huawei_sign::authorization(&signed, &self.ak, self.sk.expose())
            .map_err(|e| CaError::Invalid(format!("could not sign the request: {e}")))?;
        Ok(vec![
            ("X-Sdk-Date".into(), date),
            ("Authorization".into(), auth),
        ])
    }
}

/// What the client needs from `[huawei_scm]` (plus the test clock offset).
#[derive(Debug, Clone, Default)]
pub struct ScmOptions {
    /// The settings table.
    pub settings: HuaweiScmSettings,
    /// Seconds added to the clock when dating requests (tests only, [`TEST_CLOCK_OFFSET_ENV`]).
    pub clock_offset: i64,
}

/// The Huawei Cloud SCM client.
pub struct HuaweiScm {
    http: Transport,
    settings: HuaweiScmSettings,
    clock_offset: i64,
}

impl fmt::Debug for HuaweiScm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HuaweiScm")
            .field("base", &self.http.base().as_str())
            .field("access_key", &self.settings.access_key)
            .field("secret_key", &"[redacted]")
            .field("certificate_id", &self.settings.certificate_id)
            .finish()
    }
}

impl HuaweiScm {
    /// A client for `[huawei_scm]`: the endpoint is `base_url`, else the region's. Without an
    /// access key and secret key, every call is refused saying to register.
    pub fn new(options: ScmOptions) -> Result<HuaweiScm, CaError> {
        let settings = options.settings;
        let base = match settings.base_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => url.to_string(),
            None => region_endpoint(settings.region.as_deref().unwrap_or(DEFAULT_REGION))?,
        };
        let mut http = Transport::new(&base, HttpOptions::default())?;
        if let (Some(ak), Some(sk)) = (&settings.access_key, &settings.secret_key)
            && !ak.is_empty()
            && !sk.is_empty()
        {
            http = http.with_signer(ScmSigner {
                ak: ak.clone(),
                sk: sk.clone(),
                clock_offset: options.clock_offset,
            });
        }
        Ok(HuaweiScm {
            http,
            settings,
            clock_offset: options.clock_offset,
        })
    }

    /// The endpoint requests go to.
    pub fn base_url(&self) -> &str {
        self.http.base().as_str()
    }

    /// Sends one signed request; a 2xx answer's body is parsed as JSON (an empty body is `{}`),
    /// anything else becomes an error saying what to do.
    async fn call(&self, request: Request) -> Result<Value, CaError> {
        if self
            .settings
            .secret_key
            .as_ref()
            .is_none_or(Secret::is_empty)
            || self
                .settings
                .access_key
                .as_ref()
                .is_none_or(String::is_empty)
        {
            return Err(CaError::Invalid(
                "no Huawei Cloud access key: run `enc365-nginx register --provider huawei-scm \
                 --access-key AK` (the secret key is read from standard input or a prompt)"
                    .into(),
            ));
        }
        let endpoint = request.endpoint.clone();
        let idempotent = request.idempotent;
        let response = self.http.send(&request.expect(Expect::Any)).await?;
        read_answer(&endpoint, &response, idempotent, self.clock_offset)
    }

    /// `GET /v3/scm/certificates`, every page.
    pub async fn list_certificates(&self) -> Result<Vec<ScmCertificate>, CaError> {
        let mut out = Vec::new();
        for page in 0..20u32 {
            let mut request = Request::get(path::LIST);
            request.query = vec![
                ("limit".into(), "50".into()),
                ("offset".into(), (page * 50).to_string()),
                ("status".into(), "ALL".into()),
            ];
            let answer = self.call(request).await?;
            let items = match answer.get("certificates") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(malformed(path::LIST, "certificates is not a list")),
            };
            let total = answer.get("total_count").and_then(loose_u64);
            for item in &items {
                out.push(ScmCertificate::from_json(path::LIST, item)?);
            }
            if items.is_empty() || total.is_none_or(|t| out.len() as u64 >= t) {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /v3/scm/certificates/{id}`: the whole answer.
    pub async fn show(&self, id: &str) -> Result<Value, CaError> {
        check_id(id)?;
        self.call(Request::get(&path::show(id))).await
    }

    /// The certificate to apply to for `request`: the configured one, else the best unused one
    /// that fits. `Ok(None)` when none fits (the caller may buy).
    async fn choose(
        &self,
        request: &OrderRequest,
    ) -> Result<Result<ScmCertificate, String>, CaError> {
        let fit = Fit::of(&request.names);
        let all = self.list_certificates().await?;
        if let Some(id) = self
            .settings
            .certificate_id
            .as_deref()
            .filter(|i| !i.is_empty())
        {
            let found = all.iter().find(|c| c.id == id).ok_or_else(|| {
                CaError::Invalid(format!(
                    "certificate_id {id:?} under [huawei_scm] is not in this Huawei Cloud \
                     account; `enc365-nginx products` lists the account's certificates"
                ))
            })?;
            return pick::check_configured(found, &fit).map(Ok);
        }
        let exclude = request.renews.as_ref().map(|r| r.0.as_str());
        Ok(pick::best(&all, &fit, exclude)
            .cloned()
            .ok_or_else(|| pick::nothing_fits(&all, &fit)))
    }

    /// `POST /v3/scm/certificates/buy` (sent once): the new certificate's id.
    pub async fn buy(&self, buy: &HuaweiBuy, fit: &Fit) -> Result<String, CaError> {
        let body = pick::buy_body(buy, fit);
        let answer = self
            .call(Request::post(path::BUY, Body::Json(body)))
            .await?;
        let id = (answer.get("cert").and_then(Value::as_array))
            .and_then(|c| c.first())
            .and_then(|c| c.get("cert_id"))
            .and_then(loose_string)
            .filter(|id| is_plain_id(id));
        id.ok_or_else(|| malformed(path::BUY, "no cert[0].cert_id in the answer"))
    }

    /// `POST /v3/scm/certificates/{id}/apply` (sent once).
    pub async fn apply(
        &self,
        id: &str,
        request: &OrderRequest,
        cert_type: &str,
    ) -> Result<(), CaError> {
        check_id(id)?;
        let method = domain_method(request, cert_type)?;
        let body = self.apply_body(request, cert_type, method)?;
        self.call(Request::post(&path::apply(id), Body::Json(body)))
            .await?;
        Ok(())
    }

    /// The ApplyCertificate body (providers.md §3.5).
    fn apply_body(
        &self,
        request: &OrderRequest,
        cert_type: &str,
        method: &str,
    ) -> Result<Value, CaError> {
        let s = &self.settings;
        let need = |value: &Option<String>, key: &str| {
            value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                CaError::Invalid(format!(
                    "Huawei SCM needs the applicant's details: set {key} under [huawei_scm]; \
                     nothing was applied"
                ))
            })
        };
        let (first, rest) = request
            .names
            .split_first()
            .ok_or_else(|| CaError::Invalid("an order needs at least one name".into()))?;
        let mut body = json!({
            "domain": first,
            "sans": rest.join(";"),
            "csr": request.csr_pem,
            "applicant_name": need(&s.applicant_name, "applicant_name")?,
            "applicant_phone": need(&s.applicant_phone, "applicant_phone")?,
            "applicant_email": need(&s.applicant_email, "applicant_email")?,
            "auto_dns_auth": method == "DNS" && auto_dns_auth(s, request),
            "agree_privacy_protection": true,
            "domain_method": method,
        });
        if !cert_type.starts_with("DV") {
            for key in [
                "company_name",
                "company_unit",
                "company_province",
                "company_city",
                "country",
            ] {
                let value = match key {
                    "company_name" => &s.company_name,
                    "company_unit" => &s.company_unit,
                    "company_province" => &s.company_province,
                    "company_city" => &s.company_city,
                    _ => &s.country,
                };
                body[key] = Value::from(need(value, key)?);
            }
        }
        Ok(body)
    }

    /// `POST /v3/scm/certificates/{id}/export`, checked like every certificate.
    pub async fn export(&self, id: &str, names: &[String]) -> Result<IssuedCertificate, CaError> {
        check_id(id)?;
        let endpoint = path::export(id);
        let request = Request::post(&endpoint, Body::Empty).idempotent(true);
        let answer = self.call(request).await?;
        let text = |key: &str| answer.get(key).and_then(Value::as_str).unwrap_or_default();
        checked_certificate(
            &endpoint,
            text("certificate"),
            text("certificate_chain"),
            names,
        )
    }

    /// Where certificate `id` stands, with what to publish while it is checked.
    pub async fn status(&self, id: &str, names: &[String]) -> Result<Order, CaError> {
        let shown = self.show(id).await?;
        let endpoint = path::show(id);
        let status = shown
            .get("status")
            .and_then(loose_string)
            .ok_or_else(|| malformed(&endpoint, "no status in the answer"))?;
        let pending = |detail: &str| OrderState::Pending {
            detail: detail.to_string(),
        };
        let (state, validations) = match status.as_str() {
            "ISSUED" => (
                OrderState::Issued(self.export(id, names).await?),
                Vec::new(),
            ),
            "CHECKING" | "SUPPLEMENTCHECKING" | "CHECKING_ORG" | "ISSUING" => {
                let mut found = validations(&endpoint, &shown, names)?;
                if found.iter().all(|v| v.challenges.is_empty()) {
                    self.legacy_records(id, &mut found).await?;
                }
                (pending(&status), found)
            }
            "CANCELCHECKING" | "PAID" => (
                OrderState::Failed {
                    reason: format!(
                        "the application was withdrawn (status {status}); the certificate can \
                         be applied to again"
                    ),
                },
                Vec::new(),
            ),
            other => (
                OrderState::Failed {
                    reason: format!("Huawei SCM reports the certificate {other}"),
                },
                Vec::new(),
            ),
        };
        Ok(Order {
            id: OrderId(id.to_string()),
            names: names.to_vec(),
            state,
            validations,
        })
    }

    /// The v2 `domain-verify` record, for a ShowCertificate answer without `authentification`
    /// (older certificates); skipped when no `project_id` is set.
    async fn legacy_records(&self, id: &str, found: &mut [NameValidation]) -> Result<(), CaError> {
        let Some(project) = (self.settings.project_id.as_deref()).filter(|p| is_plain_id(p)) else {
            return Ok(());
        };
        let endpoint = path::domain_verify(project, id);
        let answer = self.call(Request::get(&endpoint)).await?;
        let field = |key: &str| answer.get(key).and_then(loose_string).unwrap_or_default();
        let domain = field("domain_name");
        if let Some(slot) = found
            .iter_mut()
            .find(|v| v.name.eq_ignore_ascii_case(&domain))
        {
            let kind = match field("record_type") {
                t if t.is_empty() => field("domain_method"),
                t => t,
            };
            let record = challenge(
                &endpoint,
                &domain,
                &kind,
                &field("record_name"),
                &field("record_value"),
            )?;
            slot.challenges.push(record);
        }
        Ok(())
    }

    /// v2 `POST /v2/{project_id}/scm/cert/{id}/revoke` with a reason (0–63 characters).
    pub async fn revoke_certificate(&self, id: &str, reason: &str) -> Result<(), CaError> {
        check_id(id)?;
        let project = (self.settings.project_id.as_deref())
            .filter(|p| !p.is_empty() && is_plain_id(p))
            .ok_or_else(|| {
                CaError::Invalid(
                    "revoking needs Huawei's v2 API, which takes a project id: set project_id \
                     under [huawei_scm] (the console's \"My Credentials\" page lists it for the \
                     region), or pass --project-id to register"
                        .into(),
                )
            })?;
        let reason: String = reason.chars().take(63).collect();
        let body = json!({ "reason": reason });
        let request = Request::post(&path::revoke(project, id), Body::Json(body));
        self.call(request).await.map(drop)
    }

    /// `POST /v3/scm/certificates/{id}/cancel-cert`: withdraws a pending application.
    pub async fn cancel_application(&self, id: &str) -> Result<(), CaError> {
        check_id(id)?;
        let request = Request::post(&path::cancel(id), Body::Empty);
        self.call(request).await.map(drop)
    }
}

/// The text sent as the v2 revoke `reason` for an RFC 5280 reason code.
fn reason_text(code: u8) -> &'static str {
    match code {
        1 => "keyCompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        _ => "unspecified",
    }
}

impl CertificateAuthority for HuaweiScm {
    fn name(&self) -> &'static str {
        "huawei-scm"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            explicit_recheck: false,
            reissue: false,
            cancel: true,
            revoke: true,
        }
    }

    /// Chooses the certificate (or buys one, when allowed): a draft whose id is the certificate.
    fn create<'a>(&'a self, request: &'a OrderRequest) -> BoxFuture<'a, Result<Created, CaError>> {
        Box::pin(async move {
            let fit = Fit::of(&request.names);
            match self.choose(request).await? {
                Ok(cert) => {
                    domain_method(request, &cert.cert_type)?;
                    tracing::info!("applying to purchased certificate {}", cert.id);
                    Ok(Created::Draft(OrderId(cert.id)))
                }
                Err(nothing) => {
                    let Some(buy) = &self.settings.buy else {
                        return Err(CaError::Invalid(nothing));
                    };
                    domain_method(request, buy.cert_type.as_deref().unwrap_or("DV_SSL_CERT"))?;
                    let id = self.buy(buy, &fit).await?;
                    Ok(Created::Draft(OrderId(id)))
                }
            }
        })
    }

    /// Applies to the chosen certificate with our CSR and names (sent once).
    fn commit<'a>(
        &'a self,
        draft: &'a OrderId,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move {
            let shown = self.show(&draft.0).await?;
            let cert = ScmCertificate::from_json(&path::show(&draft.0), &shown)?;
            if cert.status != "PAID" {
                return Err(CaError::Invalid(format!(
                    "certificate {} is {}, no longer unused (PAID), so nothing was applied; \
                     check it in the SCM console, then run again with \
                     --discard-interrupted-order to choose another",
                    cert.id, cert.status
                )));
            }
            self.apply(&draft.0, request, &cert.cert_type).await?;
            Ok(Order {
                id: draft.clone(),
                names: request.names.clone(),
                state: OrderState::Pending {
                    detail: "CHECKING".into(),
                },
                validations: Vec::new(),
            })
        })
    }

    fn order_status<'a>(
        &'a self,
        id: &'a OrderId,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move { self.status(&id.0, names).await })
    }

    /// Huawei publishes no rate limits and has no re-check call: the CA polls DNS and files by
    /// itself, so a status poll every 30 s backing off to 5 min, for an hour per run.
    fn poll_policy(&self) -> PollPolicy {
        PollPolicy {
            interval: Duration::from_secs(30),
            backoff: 1.5,
            max_backoff: 10.0,
            timeout: Duration::from_secs(3600),
            rechecks_per_run: 0,
        }
    }

    fn request_validation<'a>(&'a self, _id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async { Ok(()) })
    }

    /// SCM pushes the records itself when the application asks it to ([`auto_dns_auth`]).
    fn publishes_dns_records(&self, request: &OrderRequest) -> bool {
        auto_dns_auth(&self.settings, request)
    }

    fn reissue<'a>(
        &'a self,
        id: &'a OrderId,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move {
            Err(CaError::Unsupported(format!(
                "Huawei SCM has no reissue call for certificate {id}; run `enc365-nginx renew \
                 --force` to apply to another purchased certificate"
            )))
        })
    }

    fn cancel<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.cancel_application(&id.0).await })
    }

    fn revoke<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.revoke_certificate(&id.0, reason_text(0)).await })
    }

    fn revoke_with_reason<'a>(
        &'a self,
        id: &'a OrderId,
        reason: u8,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.revoke_certificate(&id.0, reason_text(reason)).await })
    }
}

impl AccountApi for HuaweiScm {
    fn name(&self) -> &'static str {
        "huawei-scm"
    }

    fn register<'a>(
        &'a self,
        _request: &'a RegisterRequest,
    ) -> BoxFuture<'a, Result<account::Registration, CaError>> {
        Box::pin(async move {
            Err(CaError::Unsupported(
                "Huawei Cloud access keys are made in the console (\"My Credentials\" → \"Access \
                 Keys\"), not by an API: run `enc365-nginx register --provider huawei-scm \
                 --access-key AK` and give the secret key on standard input"
                    .into(),
            ))
        })
    }

    /// The account's certificates: what `auto` can apply to.
    fn products(&self) -> BoxFuture<'_, Result<Vec<account::Product>, CaError>> {
        Box::pin(async move {
            let all = self.list_certificates().await?;
            Ok(all.iter().map(ScmCertificate::as_product).collect())
        })
    }

    fn account(&self) -> BoxFuture<'_, Result<AccountInfo, CaError>> {
        Box::pin(async move {
            let all = self.list_certificates().await?;
            let unused = all.iter().filter(|c| c.status == "PAID").count();
            let summary: Vec<String> = all.iter().map(ScmCertificate::summary).collect();
            Ok(AccountInfo {
                balance: None,
                currency: None,
                user: Some(format!(
                    "{} certificate(s), {unused} unused{}{}",
                    all.len(),
                    if summary.is_empty() { "" } else { ": " },
                    summary.join("; ")
                )),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_dns_auth_follows_the_dns_publisher_unless_forced() {
        use std::collections::BTreeMap;
        let request = |dns: bool| OrderRequest {
            product: String::new(),
            names: vec!["wild.test".into(), "*.wild.test".into()],
            csr_pem: String::new(),
            period: None,
            renews: None,
            existing_id: None,
            methods: (["wild.test", "*.wild.test"].into_iter())
                .map(|n| {
                    (
                        n.to_string(),
                        if dns {
                            ValidationMethod::Dns
                        } else {
                            ValidationMethod::HttpFile
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        };
        let settings = |dns: &str, forced: Option<bool>| HuaweiScmSettings {
            dns: Some(toml::from_str(dns).expect("dns")),
            auto_dns_auth: forced,
            ..HuaweiScmSettings::default()
        };
        let huawei = "provider = \"huaweicloud\"";
        let elsewhere = "provider = \"hook\"\n[zones.\"wild.test\"]\nprovider = \"huaweicloud\"";
        let hook = "provider = \"hook\"";
        assert!(auto_dns_auth(&settings(huawei, None), &request(true)));
        assert!(auto_dns_auth(&settings(elsewhere, None), &request(true)));
        assert!(!auto_dns_auth(&settings(hook, None), &request(true)));
        assert!(!auto_dns_auth(
            &settings(huawei, Some(false)),
            &request(true)
        ));
        assert!(auto_dns_auth(&settings(hook, Some(true)), &request(true)));
        // FILE applications never ask for the push.
        assert!(!auto_dns_auth(
            &settings(huawei, Some(true)),
            &request(false)
        ));
        assert!(!auto_dns_auth(
            &HuaweiScmSettings::default(),
            &request(true)
        ));
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let settings = HuaweiScmSettings {
            access_key: Some("AKX".into()),
            secret_key: Some(Secret::new("sk-very-secret")),
            ..HuaweiScmSettings::default()
        };
        let c = HuaweiScm::new(ScmOptions {
            settings,
            clock_offset: 0,
        })
        .expect("client");
        assert!(!format!("{c:?}").contains("sk-very-secret"));
        assert!(c.base_url().contains("scm.cn-north-4.myhuaweicloud.com"));
    }
}
