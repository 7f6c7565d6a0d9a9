//! The Huawei Cloud SCM mode of the simulator (`--provider huawei-scm`), written from
//! providers.md §3: the v3 paths `GET /v3/scm/certificates`, `POST …/buy`, `GET …/{id}`,
//! `POST …/{id}/apply`, `…/cancel-cert`, `…/export`, `DELETE …/{id}` (204), and the v2 ones
//! `POST /v2/{project_id}/scm/cert/{id}/revoke` and `GET …/domain-verify`. Every request must be
//! signed `SDK-HMAC-SHA256` with the configured AK/SK and an `X-Sdk-Date` within 15 minutes; a
//! missing, bad or stale signature gets the gateway's 401 `APIGW.0301` body (the stale one saying
//! so). Errors are `{"error_code":"SCM.XXXX","error_msg"}` with a real HTTP status; every answer
//! carries an `X-Request-Id`.
//!
//! The CA polls, as SCM's does: each ShowCertificate of a `CHECKING` certificate checks its
//! validation — FILE by fetching `http://<name>/.well-known/pki-validation/<file>` (through
//! [`super::SimOptions::connect`]), DNS by asking [`super::SimOptions::dns_server`] for the TXT at
//! `_dnsauth.<name>`, or, for a name in a simulated Huawei Cloud DNS zone, that zone's record
//! sets (where an application with `auto_dns_auth: true` has SCM push the TXT itself) — and
//! issues real X.509 from the simulator's CA once every name passed.
//! Where providers.md says "not documented", the simulator chooses: FILE records are
//! `record_type: "FILE"` with the path in `record_name` and the body in `record_value`; apply
//! answers `{"request_info":"success"}`; error codes are `SCM.0400` (bad request), `SCM.0404`
//! (no such certificate), `SCM.0409` (wrong status).
//!
//! Faults: [`super::scm_state::ScmFaults`], set with [`super::SimHandle::set_scm_faults`] or
//! `POST /_sim/scm/faults`; certificates bought with `POST /_sim/scm/certificates` (a
//! [`Stock`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::huawei_dns::{HuaweiDnsOptions, check_signature};
use super::scm_state::{ScmCert, ScmSimOptions, Stock};
use super::{Shared, lock};

/// An SCM error: HTTP status, `error_code`, `error_msg`.
type Refusal = (StatusCode, &'static str, String);

fn bad(msg: impl Into<String>) -> Refusal {
    (StatusCode::BAD_REQUEST, "SCM.0400", msg.into())
}

fn error_body(status: StatusCode, code: &str, msg: &str) -> Response {
    let body = json!({"error_code": code, "error_msg": msg, "request_id": request_id()});
    (status, Json(body)).into_response()
}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// One SCM request: signature, routing, faults.
pub(crate) async fn endpoint(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(options) = shared.options.huawei_scm.clone() else {
        return error_body(StatusCode::NOT_FOUND, "APIGW.0101", "SCM is not enabled");
    };
    let keys = HuaweiDnsOptions {
        ak: options.ak.clone(),
        sk: options.sk.clone(),
        zones: Vec::new(),
    };
    if let Err(why) = check_signature(&keys, method, uri, headers, body) {
        let msg = format!("Incorrect IAM authentication information: {why}");
        return error_body(StatusCode::UNAUTHORIZED, "APIGW.0301", &msg);
    }
    let Some((op, id)) = route(method, uri.path(), &options) else {
        return error_body(
            StatusCode::NOT_FOUND,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment",
        );
    };
    *lock(&shared.scm).counts.entry(op.to_string()).or_insert(0) += 1;
    *lock(&shared.counts).entry(format!("scm:{op}")).or_insert(0) += 1;
    let faults = lock(&shared.scm).faults.clone();
    if let Some(msg) = faults.errors.get(op) {
        return error_body(StatusCode::BAD_REQUEST, "SCM.0400", msg);
    }
    let outcome = handle(shared, op, &id, uri, body).await;
    if faults.latency_ops.iter().any(|o| o == op) {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.html_502.iter().any(|o| o == op) {
        let page = "<html><head><title>502 Bad Gateway</title></head><body>502</body></html>";
        return (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            page,
        )
            .into_response();
    }
    let mut response = match outcome {
        Ok((status, Value::Null)) => status.into_response(),
        Ok((status, value)) => (status, Json(value)).into_response(),
        Err((status, code, msg)) => error_body(status, code, &msg),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The operation a method and path name, with the certificate id (empty for list and buy).
fn route(method: &Method, path: &str, options: &ScmSimOptions) -> Option<(&'static str, String)> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let op = match (method.as_str(), parts.as_slice()) {
        ("GET", ["v3", "scm", "certificates"]) => ("list", String::new()),
        ("POST", ["v3", "scm", "certificates", "buy"]) => ("buy", String::new()),
        ("GET", ["v3", "scm", "certificates", id]) => ("show", id.to_string()),
        ("DELETE", ["v3", "scm", "certificates", id]) => ("delete", id.to_string()),
        ("POST", ["v3", "scm", "certificates", id, "apply"]) => ("apply", id.to_string()),
        ("POST", ["v3", "scm", "certificates", id, "cancel-cert"]) => ("cancel", id.to_string()),
        ("POST", ["v3", "scm", "certificates", id, "export"]) => ("export", id.to_string()),
        ("POST", ["v2", project, "scm", "cert", id, "revoke"])
            if *project == options.project_id =>
        {
            ("revoke", id.to_string())
        }
        ("GET", ["v2", project, "scm", "cert", id, "domain-verify"])
            if *project == options.project_id =>
        {
            ("domain-verify", id.to_string())
        }
        _ => return None,
    };
    Some(op)
}

async fn handle(
    shared: &Arc<Shared>,
    op: &str,
    id: &str,
    uri: &Uri,
    body: &[u8],
) -> Result<(StatusCode, Value), Refusal> {
    let ok = |v: Value| Ok((StatusCode::OK, v));
    let json_body = || -> Result<Value, Refusal> {
        if body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))
    };
    match op {
        "list" => ok(list(shared, uri.query().unwrap_or(""))?),
        "buy" => ok(buy(shared, &json_body()?)?),
        "show" => {
            check_now(shared, id).await;
            let hide = lock(&shared.scm).faults.hide_authentification;
            ok(with_cert(shared, id, |c| {
                let mut shown = c.show();
                if hide && let Some(map) = shown.as_object_mut() {
                    map.remove("authentification");
                }
                Ok(shown)
            })?)
        }
        "apply" => ok(apply(shared, id, &json_body()?)?),
        "export" => ok(with_cert(shared, id, export)?),
        "cancel" => ok(with_cert(shared, id, cancel)?),
        "revoke" => ok(with_cert(shared, id, |c| revoke(c, &json_body()?))?),
        "domain-verify" => ok(with_cert(shared, id, |c| Ok(domain_verify(c)))?),
        "delete" => {
            let removed = lock(&shared.scm).certs.remove(id);
            removed.ok_or_else(|| not_found(id))?;
            Ok((StatusCode::NO_CONTENT, Value::Null))
        }
        _ => Err(bad("unknown operation")),
    }
}

fn not_found(id: &str) -> Refusal {
    (
        StatusCode::NOT_FOUND,
        "SCM.0404",
        format!("The certificate {id} does not exist"),
    )
}

fn with_cert(
    shared: &Shared,
    id: &str,
    f: impl FnOnce(&mut ScmCert) -> Result<Value, Refusal>,
) -> Result<Value, Refusal> {
    let mut st = lock(&shared.scm);
    let cert = st.certs.get_mut(id).ok_or_else(|| not_found(id))?;
    // Transitions under review finish by the next look.
    match cert.status.as_str() {
        "CANCELCHECKING" => cert.status = "PAID".into(),
        "REVOKING" => cert.status = "REVOKED".into(),
        _ => {}
    }
    f(cert)
}

fn list(shared: &Shared, query: &str) -> Result<Value, Refusal> {
    let pairs: Vec<(String, String)> = (query.split('&'))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit: usize = match get("limit").unwrap_or("10") {
        "10" => 10,
        "20" => 20,
        "50" => 50,
        other => return Err(bad(format!("limit must be 10, 20 or 50, not {other}"))),
    };
    let offset: usize = get("offset")
        .unwrap_or("0")
        .parse()
        .map_err(|_| bad("bad offset"))?;
    let status = get("status").unwrap_or("ALL");
    let st = lock(&shared.scm);
    let all: Vec<Value> = (st.certs.values())
        .filter(|c| status == "ALL" || c.status == status)
        .map(ScmCert::detail)
        .collect();
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    Ok(json!({"certificates": page, "total_count": all.len()}))
}

fn buy(shared: &Shared, body: &Value) -> Result<Value, Refusal> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let number = |k: &str| body.get(k).and_then(Value::as_u64);
    for k in ["cert_brand", "cert_type", "domain_type"] {
        if text(k).is_empty() {
            return Err(bad(format!("{k} is required")));
        }
    }
    if body.get("agree_privacy_protection") != Some(&json!(true)) {
        return Err(bad("agree_privacy_protection must be true"));
    }
    let (Some(years), Some(domains), Some(count)) = (
        number("effective_time"),
        number("domain_numbers"),
        number("order_number"),
    ) else {
        return Err(bad(
            "effective_time, domain_numbers and order_number are required integers",
        ));
    };
    let wildcards = match text("domain_type").as_str() {
        "WILDCARD" => 1,
        "MULTI_DOMAIN" => number("wildcard_domain_number").unwrap_or(0),
        "SINGLE_DOMAIN" => 0,
        other => {
            return Err(bad(format!(
                "domain_type {other} is not one of SINGLE_DOMAIN, WILDCARD, MULTI_DOMAIN"
            )));
        }
    };
    let stock = Stock {
        cert_type: text("cert_type"),
        domain_type: text("domain_type"),
        domain_count: domains.max(1),
        wildcard_count: wildcards,
        brand: text("cert_brand"),
        months: years * 12,
    };
    let mut st = lock(&shared.scm);
    let ids: Vec<Value> = (0..count.clamp(1, 10))
        .map(|_| json!({"cert_id": st.add(stock.clone())}))
        .collect();
    Ok(
        json!({"order_id": format!("CS{:015}", rand::random::<u64>() % 1_000_000_000_000_000), "cert": ids}),
    )
}

fn apply(shared: &Shared, id: &str, body: &Value) -> Result<Value, Refusal> {
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for k in [
        "domain",
        "applicant_name",
        "applicant_phone",
        "applicant_email",
        "domain_method",
    ] {
        if text(k).is_empty() {
            return Err(bad(format!("{k} is required")));
        }
    }
    if body.get("agree_privacy_protection") != Some(&json!(true)) {
        return Err(bad("agree_privacy_protection must be true"));
    }
    let mut names = vec![text("domain").to_ascii_lowercase()];
    names.extend(
        (text("sans").split(';'))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty()),
    );
    let method = text("domain_method");
    let csr_der = super::api::csr_der(&text("csr")).map_err(|e| bad(format!("csr: {e}")))?;
    let refuse_file = lock(&shared.scm).faults.refuse_file;
    let mut st = lock(&shared.scm);
    let cert = st.certs.get_mut(id).ok_or_else(|| not_found(id))?;
    if cert.status != "PAID" {
        return Err((
            StatusCode::CONFLICT,
            "SCM.0409",
            format!(
                "The certificate is {}, it cannot be applied for",
                cert.status
            ),
        ));
    }
    check_method(cert, &names, &method, refuse_file)?;
    if let Some(why) = cert.misfit(&names) {
        return Err(bad(why));
    }
    if !cert.stock.cert_type.starts_with("DV") {
        for k in [
            "company_name",
            "company_province",
            "company_city",
            "country",
        ] {
            if text(k).is_empty() {
                return Err(bad(format!("{k} is required for {}", cert.stock.cert_type)));
            }
        }
    }
    cert.names = names;
    cert.csr_der = csr_der;
    cert.method = method;
    cert.file_name = format!("{}.txt", random_text(20));
    cert.token = random_text(64);
    cert.validated.clear();
    cert.validated_at = None;
    cert.status = "CHECKING".into();
    cert.auto_dns_auth = body.get("auto_dns_auth") == Some(&json!(true));
    if cert.auto_dns_auth && cert.method == "DNS" {
        push_records(shared, cert);
    }
    cert.application = json!({"country": text("country"), "company_name": text("company_name"),
        "applicant_name": text("applicant_name"), "applicant_phone": text("applicant_phone"),
        "applicant_email": text("applicant_email")});
    Ok(json!({"request_info": "success"}))
}

/// `auto_dns_auth`: SCM writes each name's `_dnsauth` TXT into Huawei Cloud DNS itself (the
/// simulated record sets); a name in no simulated zone is left to the applicant.
fn push_records(shared: &Shared, cert: &ScmCert) {
    for entry in cert.authentification() {
        let owner = entry["record_name"].as_str().unwrap_or_default();
        if !super::huawei_dns::push_txt(shared, owner, &cert.token) {
            tracing::info!("SCM cannot push {owner}: no Huawei Cloud DNS zone holds it");
        }
    }
}

/// FILE only for IP and DV certificates, never for wildcards (Huawei's FAQ).
fn check_method(
    cert: &ScmCert,
    names: &[String],
    method: &str,
    refuse_file: bool,
) -> Result<(), Refusal> {
    let ip_only = names.iter().all(|n| n.parse::<std::net::IpAddr>().is_ok());
    match method {
        "DNS" if ip_only => Err(bad("IP certificates support only FILE validation")),
        "DNS" | "EMAIL" => Ok(()),
        "FILE" if names.iter().any(|n| n.starts_with("*.")) => {
            Err(bad("wildcard domains do not support FILE validation"))
        }
        "FILE" if ip_only => Ok(()),
        "FILE" if !cert.stock.cert_type.starts_with("DV") || refuse_file => {
            Err(bad("only IP and DV certificates support FILE validation"))
        }
        "FILE" => Ok(()),
        other => Err(bad(format!(
            "domain_method {other} is not DNS, FILE or EMAIL"
        ))),
    }
}

fn export(cert: &mut ScmCert) -> Result<Value, Refusal> {
    let Some((leaf, chain)) = cert.issued.clone().filter(|_| cert.status == "ISSUED") else {
        return Err((
            StatusCode::CONFLICT,
            "SCM.0409",
            format!("The certificate is {}, not issued", cert.status),
        ));
    };
    let (leaf, chain) = (leaf.trim_end().to_string(), chain.trim_end().to_string());
    Ok(
        json!({"entire_certificate": format!("{leaf}{chain}"), "certificate": leaf,
        "certificate_chain": chain, "private_key": ""}),
    )
}

fn cancel(cert: &mut ScmCert) -> Result<Value, Refusal> {
    if cert.status != "CHECKING" {
        return Err((
            StatusCode::CONFLICT,
            "SCM.0409",
            format!(
                "The certificate is {}, there is no application to withdraw",
                cert.status
            ),
        ));
    }
    cert.status = "CANCELCHECKING".into();
    Ok(json!({"cert_id": cert.id, "message": "success"}))
}

fn revoke(cert: &mut ScmCert, body: &Value) -> Result<Value, Refusal> {
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if reason.chars().count() > 63 {
        return Err(bad("reason is longer than 63 characters"));
    }
    if cert.status != "ISSUED" {
        return Err((
            StatusCode::CONFLICT,
            "SCM.0409",
            format!("The certificate is {}, it cannot be revoked", cert.status),
        ));
    }
    cert.status = "REVOKING".into();
    cert.revoke_reason = reason.to_string();
    Ok(json!({"message": "success"}))
}

/// The legacy v2 domain-verify answer, for the first name still waiting.
fn domain_verify(cert: &ScmCert) -> Value {
    let entry = cert
        .authentification()
        .into_iter()
        .next()
        .unwrap_or(json!({}));
    json!({"domain_name": entry["domain"], "domain_email": "", "record_name": entry["record_name"],
        "record_value": entry["record_value"], "record_type": entry["record_type"],
        "domain_method": cert.method, "applicant_email": cert.application["applicant_email"],
        "auto_dns_auth": cert.auto_dns_auth})
}

/// Checks the validation of a `CHECKING` certificate (no lock held while fetching), then issues
/// when every name passed and the issuance delay is over.
async fn check_now(shared: &Arc<Shared>, id: &str) {
    let todo = {
        let st = lock(&shared.scm);
        match st.certs.get(id).filter(|c| c.status == "CHECKING") {
            Some(c) => c.clone(),
            None => return,
        }
    };
    let mut passed = Vec::new();
    for name in todo.names.iter().filter(|n| !todo.validated.contains(n)) {
        let base = name.strip_prefix("*.").unwrap_or(name);
        let result = if todo.method == "FILE" {
            super::api::fetch(shared, base, &todo.file_name, &todo.token).await
        } else {
            let owner = format!("_dnsauth.{base}");
            match super::huawei_dns::answers_txt(shared, &owner, &todo.token) {
                Some(true) => Ok(()),
                Some(false) => Err(format!("Huawei Cloud DNS holds no TXT at {owner}")),
                None => match shared.options.dns_server {
                    Some(server) => super::scm_dns::check_txt(server, &owner, &todo.token).await,
                    None => Err("no --dns-server to check DNS validation against".into()),
                },
            }
        };
        match result {
            Ok(()) => passed.push(name.clone()),
            Err(e) => tracing::info!("SCM validation of {name}: {e}"),
        }
    }
    let delay = lock(&shared.scm).faults.issuance_delay_secs;
    let reject = lock(&shared.scm).faults.reject_applications;
    let mut st = lock(&shared.scm);
    let Some(cert) = st.certs.get_mut(id).filter(|c| c.status == "CHECKING") else {
        return;
    };
    cert.validated.extend(passed);
    if cert.validated_at.is_none() && cert.names.iter().all(|n| cert.validated.contains(n)) {
        cert.validated_at = Some(Instant::now());
    }
    if cert
        .validated_at
        .is_some_and(|at| at.elapsed() >= Duration::from_secs(delay))
    {
        if reject {
            cert.status = "UNPASSED".into();
            return;
        }
        issue(shared, cert);
    }
}

fn issue(shared: &Shared, cert: &mut ScmCert) {
    let validity =
        (shared.options.validity).unwrap_or(Duration::from_secs(cert.stock.months * 30 * 86400));
    match shared.ca.issue(&cert.csr_der, &cert.names, validity) {
        Ok(issued) => {
            let t = issued.not_after;
            cert.not_after = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.0",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            cert.issued = Some((issued.cert_pem, issued.ca_pem));
            cert.status = "ISSUED".into();
        }
        Err(e) => tracing::error!("could not issue: {e}"),
    }
}

fn random_text(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[rand::random::<u8>() as usize % CHARS.len()] as char)
        .collect()
}

/// `GET /_sim/scm/faults`.
pub(crate) async fn get_faults(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
) -> Json<super::scm_state::ScmFaults> {
    Json(lock(&shared.scm).faults.clone())
}

/// `POST /_sim/scm/faults`: replaces the faults.
pub(crate) async fn set_faults(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<super::scm_state::ScmFaults>(&body) {
        Ok(faults) => {
            lock(&shared.scm).faults = faults.clone();
            Json(faults).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not an SCM faults object: {e}\n"),
        )
            .into_response(),
    }
}

/// `POST /_sim/scm/certificates`: a purchased certificate of the [`Stock`] given.
pub(crate) async fn add_certificate(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    match serde_json::from_slice::<Stock>(&body) {
        Ok(stock) => Json(json!({"cert_id": lock(&shared.scm).add(stock)})).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not a stock object: {e}\n"),
        )
            .into_response(),
    }
}
