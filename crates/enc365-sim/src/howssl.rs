//! The HowSSL mode of the simulator (`--provider howssl`), written from providers.md §2: every
//! path of §2.3 under `/Home/...`, `POST` with `multipart/form-data` only, the `token` form field
//! checked on every call, the envelope `{"status","msg","data","code"}` with
//! `{"status":false,"msg","code"}` errors, a balance debited by `commitOrder`, real file validation
//! (fetched through [`super::SimOptions::connect`] like the Encryption365 mode), real DNS
//! validation (the CNAME `DCVdnsHost.<name>` → `DCVdnsValue` of §2.4, asked at
//! [`super::SimOptions::dns_server`]), the method of each name set by `updateDCV` /
//! `batchUpdateDCV` (`FILE` until then), and real X.509 from the simulator's CA.
//!
//! A wildcard is validated as its base name; with a DNS server given, a wildcard passes only by
//! DNS (CA/B rules), so a wildcard left on `FILE` stays unvalidated.
//!
//! Where providers.md says "not documented", the simulator chooses: the `createOrder` name list is
//! the field `domains` (comma-separated); `createOrder` answers `data.check_id`; `order_status` is
//! `2` while in review, `5` once finished, `7` once cancelled (clients must not rely on these);
//! errors use code `400` (`401` for a bad token, `402` for a short balance). What costs what:
//! `price` for the order plus `attachCommonPrice`/`attachWildcardPrice` per extra name.
//!
//! Faults ([`HowFaults`]): an error envelope per endpoint, HTML pages, truncated answers, numbers as
//! strings, latency, slow issuance, and names refused at `createOrder`. Set them with
//! [`super::SimHandle::set_howssl_faults`] or `POST /_sim/howssl/faults`. Tokens are made with
//! [`super::SimHandle::add_howssl_token`] or `POST /_sim/howssl/tokens`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::dcv::CsrHashes;
use super::{Shared, lock};

/// Switches that make the HowSSL mode misbehave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HowFaults {
    /// Answer these paths with `{"status":false,"msg":<message>,"code":<code>}`, doing nothing.
    pub errors: BTreeMap<String, String>,
    /// The `code` of those errors (default 400).
    pub error_code: Option<u64>,
    /// Answer these paths with an HTML 404 page, doing nothing (as a wrong path does).
    pub html_404: Vec<String>,
    /// Answer these paths with the JSON cut in half, after doing the work.
    pub truncated: Vec<String>,
    /// Send every number as a string (`"code":"200"`, `"order_status":"2"`).
    pub string_numbers: bool,
    /// Delay answers to these paths by [`HowFaults::latency_ms`].
    pub latency_paths: Vec<String>,
    /// See [`HowFaults::latency_paths`].
    pub latency_ms: u64,
    /// Issue this many seconds after every name is validated.
    pub issuance_delay_secs: u64,
    /// `createOrder` refuses orders holding any of these names.
    pub reject_names: Vec<String>,
}

/// A token's account.
#[derive(Debug, Clone)]
struct Account {
    email: String,
    amount: f64,
}

/// One price of a product.
#[derive(Debug, Clone)]
struct SimPrice {
    months: u32,
    price: f64,
    extra: f64,
    extra_wildcard: f64,
}

/// A product.
#[derive(Debug, Clone)]
struct SimProduct {
    code: &'static str,
    name: &'static str,
    domain_type: &'static str,
    prices: Vec<SimPrice>,
}

/// A draft (`check_id`) from `createOrder`.
#[derive(Debug, Clone)]
struct Draft {
    token: String,
    names: Vec<String>,
    csr_der: Vec<u8>,
    months: u32,
    cost: f64,
    committed: bool,
}

/// A paid order.
#[derive(Debug, Clone)]
struct HowOrder {
    token: String,
    names: Vec<String>,
    csr_der: Vec<u8>,
    months: u32,
    cost: f64,
    /// Per name: (method `FILE`/`DNS`/`EMAIL`, validated).
    names_state: BTreeMap<String, (String, bool)>,
    validated_at: Option<Instant>,
    issued: Option<(String, String)>,
    cancelled: bool,
}

/// The HowSSL mode's state.
#[derive(Debug, Default)]
pub(crate) struct HowState {
    accounts: BTreeMap<String, Account>,
    drafts: BTreeMap<String, Draft>,
    orders: BTreeMap<String, HowOrder>,
    faults: HowFaults,
}

impl HowState {
    /// Adds (or replaces) a token with its account.
    pub(crate) fn add_token(&mut self, token: &str, email: &str, amount: f64) {
        let account = Account {
            email: email.to_string(),
            amount,
        };
        self.accounts.insert(token.to_string(), account);
    }

    /// A token's balance.
    pub(crate) fn balance(&self, token: &str) -> Option<f64> {
        self.accounts.get(token).map(|a| a.amount)
    }

    /// Replaces the faults.
    pub(crate) fn set_faults(&mut self, faults: HowFaults) {
        self.faults = faults;
    }

    /// The faults.
    pub(crate) fn faults(&self) -> HowFaults {
        self.faults.clone()
    }
}

fn products() -> Vec<SimProduct> {
    let price = |months, price, extra, extra_wildcard| SimPrice {
        months,
        price,
        extra,
        extra_wildcard,
    };
    vec![
        SimProduct {
            code: "sim-dv-multi",
            name: "Simulated Multi-Domain SSL(DV)",
            domain_type: "2",
            prices: vec![price(12, 10.0, 2.0, 8.0), price(24, 18.0, 3.5, 15.0)],
        },
        SimProduct {
            code: "sim-dv-single",
            name: "Simulated PositiveSSL Certificate(DV)",
            domain_type: "1",
            prices: vec![price(12, 6.95, 0.0, 0.0)],
        },
    ]
}

/// Every documented path.
const PATHS: [&str; 12] = [
    "/Home/Product_info/lists",
    "/Home/User/AccountInfo",
    "/Home/Order/createOrder",
    "/Home/Order/commitOrder",
    "/Home/Order/getValidity_info",
    "/Home/Order/refreshOrder",
    "/Home/Order/recvEmail",
    "/Home/Order/batchUpdateDCV",
    "/Home/Order/updateDCV",
    "/Home/Order/getOrderInfo",
    "/Home/Order/getCertificate",
    "/Home/Order/cancelOrder",
];

/// An error: (code, msg).
type Refusal = (u64, String);

fn refuse(msg: impl Into<String>) -> Refusal {
    (400, msg.into())
}

/// Serves one request of the HowSSL mode.
pub(crate) async fn endpoint(
    shared: &Arc<Shared>,
    method: &axum::http::Method,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Response {
    if !PATHS.contains(&path) {
        return html_404();
    }
    if method != axum::http::Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n").into_response();
    }
    *lock(&shared.counts).entry(path.to_string()).or_insert(0) += 1;
    let faults = lock(&shared.howssl).faults();
    if faults.latency_ms > 0 && faults.latency_paths.iter().any(|p| p == path) {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.html_404.iter().any(|p| p == path) {
        return html_404();
    }
    let outcome = match faults.errors.get(path) {
        Some(msg) => Err((faults.error_code.unwrap_or(400), msg.clone())),
        None => match parse_multipart(headers, body) {
            Ok(form) => handle(shared, path, &form).await,
            Err(msg) => Err((415, msg)),
        },
    };
    shape(path, outcome, &faults)
}

fn html_404() -> Response {
    let page = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body>\
                <h1>404 Not Found</h1><p>The page you requested does not exist.</p></body></html>\n";
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// The envelope, with the faults applied.
fn shape(path: &str, outcome: Result<Value, Refusal>, faults: &HowFaults) -> Response {
    let mut value = match outcome {
        Ok(Value::Object(mut map)) => {
            map.insert("status".into(), json!(true));
            map.insert("code".into(), json!(200));
            map.entry("msg").or_insert(json!("Succeeded"));
            Value::Object(map)
        }
        Ok(other) => json!({"status": true, "msg": "Succeeded", "data": other, "code": 200}),
        Err((code, msg)) => json!({"status": false, "msg": msg, "code": code}),
    };
    if faults.string_numbers {
        super::stringify_numbers(&mut value);
    }
    let mut bytes = value.to_string().into_bytes();
    if faults.truncated.iter().any(|p| p == path) {
        bytes.truncate(bytes.len() / 2);
    }
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        bytes,
    )
        .into_response()
}

/// The text fields of a `multipart/form-data` body.
fn parse_multipart(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let content_type = (headers.get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = (content_type.strip_prefix("multipart/form-data"))
        .and_then(|rest| {
            rest.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
        })
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| "The request must be multipart/form-data".to_string())?;
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut form = BTreeMap::new();
    for part in text.split(&delimiter).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            return Err("malformed multipart part".into());
        };
        let name = (head.lines())
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .and_then(|l| l.split("name=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| "multipart part without a name".to_string())?;
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        form.insert(name.to_string(), value.to_string());
    }
    Ok(form)
}

/// Dispatches a checked request.
async fn handle(
    shared: &Arc<Shared>,
    path: &str,
    form: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    let token = form.get("token").cloned().unwrap_or_default();
    if !lock(&shared.howssl).accounts.contains_key(&token) {
        return Err((401, "Invalid token".into()));
    }
    let field = |k: &str| {
        (form.get(k))
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| refuse(format!("The parameter {k} is required")))
    };
    let action = path.rsplit('/').next().unwrap_or_default();
    match action {
        "lists" => Ok(product_list(form)),
        "AccountInfo" => {
            let st = lock(&shared.howssl);
            let a = &st.accounts[&token];
            Ok(json!({"data": {"user_email": a.email, "user_amount": format!("{:.2}", a.amount)}}))
        }
        "createOrder" => create_order(shared, &token, form),
        "commitOrder" => commit_order(shared, &token, &field("check_id")?),
        "refreshOrder" => {
            let id = field("order_id")?;
            owned(shared, &token, &id)?;
            validate(shared, &id).await;
            Ok(json!({"msg": "Refreshed successfully"}))
        }
        _ => order_action(shared, &token, action, form).await,
    }
}

/// The calls on an existing order, other than `refreshOrder`.
async fn order_action(
    shared: &Arc<Shared>,
    token: &str,
    action: &str,
    form: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    let id = (form.get("order_id").filter(|v| !v.is_empty()))
        .cloned()
        .ok_or_else(|| refuse("The parameter order_id is required"))?;
    owned(shared, token, &id)?;
    if action == "getOrderInfo" {
        // A real CA re-checks on its own: the status call stands in for that.
        validate(shared, &id).await;
    }
    let mut st = lock(&shared.howssl);
    let delay = Duration::from_secs(st.faults.issuance_delay_secs);
    let order = st.orders.get_mut(&id).ok_or_else(|| refuse("no order"))?;
    maybe_issue(shared, order, delay);
    match action {
        "getOrderInfo" => Ok(order_info(order)),
        "getValidity_info" if order.issued.is_some() || order.cancelled => {
            Err(refuse("The order is not in review"))
        }
        "getValidity_info" => Ok(json!({"data": {"valid_info": valid_info(&order.csr_der)}})),
        "getCertificate" => match &order.issued {
            Some((cert, ca)) => Ok(json!({"msg": "Successfully gained the certificate data",
                "data": {"cert_start_time": "2026-01-01 08:00:00", "cert_end_time": "2027-01-01 07:59:59",
                "paid": true, "ca_order_id": "480111210",
                "certificate": {"cert": cert, "ca_cert": ca, "csr": "", "private_key": ""}}})),
            None => Err(refuse("The order is not finished")),
        },
        "updateDCV" | "batchUpdateDCV" | "recvEmail" => update_dcv(order, action, form),
        "cancelOrder" if order.issued.is_some() || order.cancelled => {
            Err(refuse("The order cannot be cancelled"))
        }
        "cancelOrder" => {
            order.cancelled = true;
            let (owner, cost) = (order.token.clone(), order.cost);
            if let Some(a) = st.accounts.get_mut(&owner) {
                a.amount += cost;
            }
            Ok(json!({"msg": "Successfully canceled the order!"}))
        }
        _ => Err(refuse("Unknown action")),
    }
}

fn owned(shared: &Shared, token: &str, id: &str) -> Result<(), Refusal> {
    match lock(&shared.howssl).orders.get(id) {
        Some(o) if o.token == token => Ok(()),
        _ => Err(refuse(format!("Order {id} does not exist"))),
    }
}

fn product_list(form: &BTreeMap<String, String>) -> Value {
    let page: usize = form
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let size: usize = form
        .get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let filter = form.get("product_name").cloned().unwrap_or_default();
    let all: Vec<SimProduct> = (products().into_iter())
        .filter(|p| p.name.to_lowercase().contains(&filter.to_lowercase()))
        .collect();
    let items: Vec<Value> = (all.iter().skip((page - 1) * size).take(size))
        .map(|p| {
            let prices: Vec<Value> = (p.prices.iter())
                .map(|x| {
                    json!({"label": x.months.to_string(), "country": "中国", "currency": "CNY",
                    "real_price": format!("{:.2}", x.price * 3.0), "price": format!("{:.2}", x.price),
                    "attachCommonPrice": format!("{:.2}", x.extra),
                    "attachWildcardPrice": format!("{:.2}", x.extra_wildcard)})
                })
                .collect();
            json!({"product_name": p.name, "product_code": p.code,
                "prices_info": Value::Array(prices).to_string(),
                "domain_type": p.domain_type, "audit_type": "DV"})
        })
        .collect();
    json!({"total": all.len(), "data": items, "msg": "Succeeded in gaining data"})
}

fn create_order(
    shared: &Shared,
    token: &str,
    form: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    for k in [
        "product_code",
        "validity_period",
        "csr",
        "auto_info",
        "domains",
    ] {
        if get(k).is_empty() {
            return Err(refuse(format!("The parameter {k} is required")));
        }
    }
    if get("auto_info").parse::<i64>().is_err() {
        return Err(refuse("auto_info must be an integer"));
    }
    let product = (products().into_iter())
        .find(|p| p.code == get("product_code"))
        .ok_or_else(|| refuse("The product does not exist"))?;
    let months: u32 = get("validity_period").parse().unwrap_or(0);
    let price = (product.prices.iter())
        .find(|p| p.months == months)
        .ok_or_else(|| refuse("The validity period is not offered for this product"))?;
    let names: Vec<String> = (get("domains").split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let faults = lock(&shared.howssl).faults();
    if let Some(bad) = names.iter().find(|n| faults.reject_names.contains(n)) {
        return Err(refuse(format!("The domain {bad} is not allowed to apply")));
    }
    if product.domain_type == "1" && names.len() > 1 {
        return Err(refuse("This product covers a single domain"));
    }
    let csr_der = super::api::csr_der(get("csr")).map_err(refuse)?;
    let cost = price.price
        + (names.iter().skip(1))
            .map(|n| {
                if n.starts_with("*.") {
                    price.extra_wildcard
                } else {
                    price.extra
                }
            })
            .sum::<f64>();
    let check_id = random_id(16);
    let draft = Draft {
        token: token.to_string(),
        names,
        csr_der,
        months,
        cost,
        committed: false,
    };
    lock(&shared.howssl).drafts.insert(check_id.clone(), draft);
    Ok(json!({"msg": "Verified successfully", "data": {"check_id": check_id}}))
}

fn commit_order(shared: &Shared, token: &str, check_id: &str) -> Result<Value, Refusal> {
    let mut st = lock(&shared.howssl);
    let draft = match st.drafts.get(check_id) {
        Some(d) if d.token == token => d.clone(),
        _ => return Err(refuse(format!("check_id {check_id} does not exist"))),
    };
    if draft.committed {
        return Err(refuse(format!(
            "check_id {check_id} has already been submitted"
        )));
    }
    let account = st
        .accounts
        .get_mut(token)
        .ok_or((401, "Invalid token".into()))?;
    if account.amount + 1e-9 < draft.cost {
        return Err((402, "Insufficient account balance".into()));
    }
    account.amount -= draft.cost;
    if let Some(d) = st.drafts.get_mut(check_id) {
        d.committed = true;
    }
    let order_id = random_id(10);
    let names_state = (draft.names.iter())
        .map(|n| (n.clone(), ("FILE".to_string(), false)))
        .collect();
    let valid_info = valid_info(&draft.csr_der);
    st.orders.insert(
        order_id.clone(),
        HowOrder {
            token: token.to_string(),
            names: draft.names,
            csr_der: draft.csr_der,
            months: draft.months,
            cost: draft.cost,
            names_state,
            validated_at: None,
            issued: None,
            cancelled: false,
        },
    );
    Ok(json!({"msg": "Purchased successfully",
        "data": {"order_id": order_id, "valid_info": valid_info}}))
}

/// The five DCV values (Sectigo CSR hash, no unique value, LF).
fn valid_info(csr_der: &[u8]) -> Value {
    let h = CsrHashes::of_der(csr_der);
    json!({"DCVdnsHost": format!("_{}", h.md5),
        "DCVdnsValue": format!("{}.{}.comodoca.com", &h.sha256[..32], &h.sha256[32..]),
        "DCVdnsType": "CNAME",
        "DCVfileName": h.file_name(),
        "DCVfileContent": format!("{}\ncomodoca.com", h.sha256)})
}

fn update_dcv(
    order: &mut HowOrder,
    action: &str,
    form: &BTreeMap<String, String>,
) -> Result<Value, Refusal> {
    if action == "recvEmail" {
        return Ok(json!({"msg": "The e-mail was sent"}));
    }
    let way = form.get("check_way").cloned().unwrap_or_default();
    if !["FILE", "DNS", "EMAIL"].contains(&way.as_str()) {
        return Err(refuse("check_way must be EMAIL, FILE or DNS"));
    }
    let targets: Vec<String> = if action == "updateDCV" {
        let domain = form.get("domain").cloned().unwrap_or_default();
        if !order.names_state.contains_key(&domain) {
            return Err(refuse(format!("The domain {domain} is not in the order")));
        }
        vec![domain]
    } else {
        order.names.clone()
    };
    for name in targets {
        let state = order
            .names_state
            .get_mut(&name)
            .ok_or_else(|| refuse("no name"))?;
        if state.1 {
            return Err(refuse(format!("{name} is already validated")));
        }
        state.0 = way.clone();
    }
    Ok(json!({"msg": "Modified successfully"}))
}

fn order_info(order: &HowOrder) -> Value {
    let code = if order.cancelled {
        7
    } else if order.issued.is_some() {
        5
    } else {
        2
    };
    let validity: Vec<Value> = (order.names_state.iter())
        .map(|(name, (way, done))| {
            let method = match way.as_str() {
                "DNS" => "DNS验证",
                "EMAIL" => "邮箱验证",
                _ => "文件验证",
            };
            json!({"value": format!("域名:{name}<br>验证方式: {method}<br>"),
                "status": if *done { 1 } else { 2 }})
        })
        .collect();
    json!({"msg": "Succeeded in gaining data", "data": {"order_status": code,
        "validity_status": Value::Array(validity).to_string(),
        "total_amount": [{"value": format!("{:.2}", order.cost), "unit": "CNY"}]}})
}

/// Checks every unvalidated name of the order by its method: `FILE` by fetching the file, `DNS`
/// by asking the DNS server for the CNAME (no lock held while checking). E-mail names are not
/// checked by the simulator.
async fn validate(shared: &Arc<Shared>, id: &str) {
    let (todo, h) = {
        let st = lock(&shared.howssl);
        let Some(order) = st
            .orders
            .get(id)
            .filter(|o| !o.cancelled && o.issued.is_none())
        else {
            return;
        };
        let todo: Vec<(String, String)> = (order.names_state.iter())
            .filter(|(_, (way, done))| way != "EMAIL" && !done)
            .map(|(n, (way, _))| (n.clone(), way.clone()))
            .collect();
        (todo, CsrHashes::of_der(&order.csr_der))
    };
    let mut passed = Vec::new();
    for (name, way) in todo {
        match check_name(shared, &name, &way, &h).await {
            Ok(()) => passed.push(name),
            Err(e) => tracing::info!("HowSSL DCV for {name} ({way}): {e}"),
        }
    }
    let mut st = lock(&shared.howssl);
    if let Some(order) = st.orders.get_mut(id) {
        for name in passed {
            if let Some(state) = order.names_state.get_mut(&name) {
                state.1 = true;
            }
        }
        if order.validated_at.is_none() && order.names_state.values().all(|(_, done)| *done) {
            order.validated_at = Some(Instant::now());
        }
    }
}

/// Checks one name by `way` (`FILE` or `DNS`), the values derived from the CSR as §2.4 says.
async fn check_name(
    shared: &Arc<Shared>,
    name: &str,
    way: &str,
    h: &CsrHashes,
) -> Result<(), String> {
    let base = name.strip_prefix("*.").unwrap_or(name);
    let dns_server = shared.options.dns_server;
    if way == "DNS" {
        let server =
            dns_server.ok_or("no DNS server to ask (start the simulator with --dns-server)")?;
        let owner = format!("_{}.{base}", h.md5);
        let value = format!("{}.{}.comodoca.com", &h.sha256[..32], &h.sha256[32..]);
        return super::dns_check::check_cname(server, &owner, &value).await;
    }
    if name.starts_with("*.") && dns_server.is_some() {
        return Err("a wildcard is validated by DNS only: switch it with updateDCV".into());
    }
    let content = format!("{}\ncomodoca.com", h.sha256);
    super::api::fetch(shared, base, &h.file_name(), &content).await
}

/// Issues once every name is validated and the issuance delay has passed.
fn maybe_issue(shared: &Shared, order: &mut HowOrder, delay: Duration) {
    let ready = order.validated_at.is_some_and(|at| at.elapsed() >= delay);
    if order.issued.is_some() || order.cancelled || !ready {
        return;
    }
    let validity = (shared.options.validity)
        .unwrap_or(Duration::from_secs(u64::from(order.months) * 30 * 86400));
    match shared.ca.issue(&order.csr_der, &order.names, validity) {
        Ok(issued) => order.issued = Some((issued.cert_pem, issued.ca_pem)),
        Err(e) => tracing::error!("could not issue: {e}"),
    }
}

fn random_id(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[rand::random::<u8>() as usize % CHARS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_are_read_and_other_bodies_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().expect("header"),
        );
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nabc\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"csr\"\r\n\r\nl1\nl2\r\n--XyZ--\r\n";
        let form = parse_multipart(&headers, body.as_bytes()).expect("parsed");
        assert_eq!(form["token"], "abc");
        assert_eq!(form["csr"], "l1\nl2");
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().expect("h"));
        assert!(parse_multipart(&json, b"{}").is_err());
    }
}
