//! The simulator's Encryption365 endpoints: request parsing (loose types, as the real service
//! accepts), accounts and tokens, orders, validation by HTTP fetch, and issuance.
//!
//! Each endpoint returns the success fields (the caller adds `"result":"success"` and applies
//! faults) or the error `message`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, UtcOffset};

use super::dcv::{self, CsrHashes};
use super::state::{Account, Device, NameState, OrderRecord, SimState};
use super::{Shared, lock};

const CA_PATHS: &[&str] = &[
    "/client/create",
    "/account/products",
    "/account/details",
    "/cert/create",
    "/cert/details",
    "/cert/challenge",
    "/cert/reissue",
    "/client/version",
    "/ping",
];
const UNCONFIRMED_PATHS: &[&str] = &["/cert/revoke", "/cert/change_dcv"];

const PROCESSING: &str = "enroll_caprocessing";
const ISSUED: &str = "issued_active";
const BAD_TOKEN: &str = "client_id 或 access_token 无效 (invalid client_id or access_token)";
const NO_ORDER: &str = "订单不存在 (no such order)";
const FETCH_LIMIT: usize = 64 * 1024;

/// True for the paths the simulator answers.
pub(super) fn is_endpoint(path: &str, unconfirmed: bool) -> bool {
    CA_PATHS.contains(&path) || (unconfirmed && UNCONFIRMED_PATHS.contains(&path))
}

/// Runs one endpoint.
pub(super) async fn handle(shared: &Arc<Shared>, path: &str, body: &[u8]) -> Result<Value, String> {
    if path == "/ping" {
        // The Lua client pings with an empty body.
        return Ok(json!({"message": "pong"}));
    }
    let req = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Req(map),
        _ => return Err("请求参数格式错误 (the request body must be a JSON object)".into()),
    };
    match path {
        "/client/create" => client_create(shared, &req),
        "/account/products" => {
            auth(shared, &req)?;
            Ok(json!({"products": products()}))
        }
        "/account/details" => {
            let (_, username) = auth(shared, &req)?;
            let st = lock(&shared.state);
            let credit = st.accounts.get(&username).map_or(0.0, |a| a.credit);
            Ok(json!({"credit": money(credit)}))
        }
        "/client/version" => {
            auth(shared, &req)?;
            Ok(json!({
                "latest_version": env!("CARGO_PKG_VERSION"),
                "update_description": "enc365-sim",
            }))
        }
        "/cert/create" => cert_create(shared, &req),
        "/cert/details" => {
            let (_, username) = auth(shared, &req)?;
            let id = req.id()?;
            let mut st = lock(&shared.state);
            owned(&st, id, &username)?;
            maybe_issue(shared, &mut st, id);
            expire_if_due(shared, &mut st, id);
            let order = st.orders.get(&id).ok_or(NO_ORDER)?;
            Ok(order_json(order, &contact_of(&st, order), true))
        }
        "/cert/challenge" => {
            let (_, username) = auth(shared, &req)?;
            let id = req.id()?;
            {
                let st = lock(&shared.state);
                let order = owned(&st, id, &username)?;
                if order.status == ISSUED {
                    return Ok(
                        json!({"status": "success", "message": "证书已签发 (already issued)"}),
                    );
                }
                if order.status != PROCESSING {
                    return Err(format!(
                        "订单状态为 {} (the order is {})",
                        order.status, order.status
                    ));
                }
            }
            let message = validate(shared, id).await;
            Ok(json!({"status": "success", "message": message}))
        }
        "/cert/reissue" => cert_reissue(shared, &req),
        "/cert/revoke" => {
            let (_, username) = auth(shared, &req)?;
            let id = req.id()?;
            let mut st = lock(&shared.state);
            owned(&st, id, &username)?;
            let order = st.orders.get_mut(&id).ok_or(NO_ORDER)?;
            if order.status != ISSUED {
                return Err(format!(
                    "只能吊销已签发的证书 (only issued certificates can be revoked; this one is {})",
                    order.status
                ));
            }
            order.status = "revoked".into();
            shared.save(&st);
            Ok(json!({}))
        }
        "/cert/change_dcv" => {
            let (_, username) = auth(shared, &req)?;
            let id = req.id()?;
            let domain = req.string("domain")?;
            let method = req.string("method")?;
            let mut st = lock(&shared.state);
            owned(&st, id, &username)?;
            let order = st.orders.get_mut(&id).ok_or(NO_ORDER)?;
            let name = order
                .names
                .iter_mut()
                .find(|n| n.name.eq_ignore_ascii_case(&domain))
                .ok_or_else(|| format!("域名 {domain} 不在订单中 (not in the order)"))?;
            if !(matches!(method.as_str(), "http" | "https" | "dns") || method.contains('@')) {
                return Err(format!("验证方式无效 (unknown method {method:?})"));
            }
            name.method = method;
            shared.save(&st);
            Ok(json!({}))
        }
        _ => Err("unknown endpoint".into()),
    }
}

/// A request body, read with the loose typing the real service accepts.
struct Req(Map<String, Value>);

impl Req {
    fn string(&self, key: &str) -> Result<String, String> {
        match self.0.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(format!("缺少参数 {key} (missing parameter {key})")),
        }
    }

    fn u64(&self, key: &str) -> Result<u64, String> {
        match self.0.get(key) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("参数 {key} 无效 (parameter {key} must be an integer)"))
    }

    fn i64_or(&self, key: &str, default: i64) -> Result<i64, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n.as_i64().ok_or(()),
            Some(Value::String(s)) => s.trim().parse().map_err(drop),
            Some(_) => Err(()),
        }
        .map_err(|_| format!("参数 {key} 无效 (parameter {key} must be an integer)"))
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "1" => Ok(true),
            Some(Value::String(s)) if s == "false" || s == "0" || s.is_empty() => Ok(false),
            Some(Value::Number(n)) => Ok(n.as_u64() != Some(0)),
            Some(_) => Err(format!(
                "参数 {key} 无效 (parameter {key} must be a boolean)"
            )),
        }
    }

    fn id(&self) -> Result<u64, String> {
        self.u64("trustocean_id")
    }
}

/// Checks `client_id`/`access_token`; returns (client_id, username).
fn auth(shared: &Shared, req: &Req) -> Result<(String, String), String> {
    let client_id = req.string("client_id").map_err(|_| BAD_TOKEN.to_string())?;
    let token = req
        .string("access_token")
        .map_err(|_| BAD_TOKEN.to_string())?;
    let st = lock(&shared.state);
    match st.devices.get(&client_id) {
        Some(d) if constant_time_eq(d.access_token.as_bytes(), token.as_bytes()) => {
            Ok((client_id, d.username.clone()))
        }
        _ => Err(BAD_TOKEN.to_string()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The order `id` if it belongs to `username`.
fn owned<'a>(st: &'a SimState, id: u64, username: &str) -> Result<&'a OrderRecord, String> {
    let order = st.orders.get(&id).ok_or(NO_ORDER)?;
    let owner = st
        .devices
        .get(&order.client_id)
        .map(|d| d.username.as_str());
    if owner == Some(username) {
        Ok(order)
    } else {
        Err(NO_ORDER.to_string())
    }
}

/// Creates or replaces an account.
pub(super) fn add_account(shared: &Shared, username: &str, password: &str, credit: f64) {
    let mut st = lock(&shared.state);
    st.accounts.insert(
        username.to_string(),
        Account {
            password: password.to_string(),
            credit,
        },
    );
    shared.save(&st);
}

/// Registers a device for `username`; returns (client_id, access_token).
pub(super) fn add_device(
    shared: &Shared,
    username: &str,
    servername: &str,
) -> Result<(String, String), String> {
    let mut st = lock(&shared.state);
    if !st.accounts.contains_key(username) {
        return Err(format!("no account {username:?}"));
    }
    let client_id = uuid_like();
    let token = hex(&rand::random::<[u8; 16]>());
    st.devices.insert(
        client_id.clone(),
        Device {
            username: username.to_string(),
            access_token: token.clone(),
            servername: servername.to_string(),
            created_at: now_text(),
        },
    );
    shared.save(&st);
    Ok((client_id, token))
}

fn client_create(shared: &Shared, req: &Req) -> Result<Value, String> {
    let username = req.string("username")?;
    let password = req.string("password")?;
    let servername = req.string("servername")?;
    let known = {
        let st = lock(&shared.state);
        st.accounts
            .get(&username)
            .is_some_and(|a| constant_time_eq(a.password.as_bytes(), password.as_bytes()))
    };
    if !known {
        return Err("账户或密码错误".into());
    }
    let (client_id, access_token) = add_device(shared, &username, &servername)?;
    Ok(json!({
        "client_id": client_id,
        "access_token": access_token,
        "ip_address": "127.0.0.1",
        "status": "active",
        "created_at": now_text(),
    }))
}

/// The two documented products, exactly as the docs show them.
fn products() -> Value {
    json!({
        "100": {
            "title": "免费版 SSL 证书", "useage": "试用", "class": "DV", "term": "90天",
            "brand": "环智中诚", "logo": "/encryption365/static/img/logo-encryption365.svg",
            "support": false, "isFree": true, "level": "dv",
            "businessDefault": false, "default": true, "promote": false, "promoText": "促销",
            "recommended": false, "period": "quarterly", "periodText": "季度",
            "price": {"fqdn": 0, "wildcard": 0},
            "normal_price": {"fqdn": 0, "wildcard": 0}
        },
        "108": {
            "title": "正式版 SSL 证书", "useage": "个人/企业", "class": "DV", "term": "1年",
            "brand": "环智中诚", "logo": "/encryption365/static/img/logo-encryption365.svg",
            "support": true, "isFree": false, "level": "dv",
            "businessDefault": true, "default": false, "promote": true, "promoText": "超实惠",
            "recommended": true, "period": "annually", "periodText": "年",
            "price": {"fqdn": 256, "wildcard": 750},
            "normal_price": {"fqdn": 529, "wildcard": 1668}
        }
    })
}

/// (title, default validity, price per fqdn, price per wildcard) of a product.
fn product(pid: u64) -> Option<(&'static str, Duration, f64, f64)> {
    match pid {
        100 => Some(("免费版 SSL 证书", Duration::from_secs(90 * 86400), 0.0, 0.0)),
        108 => Some((
            "正式版 SSL 证书",
            Duration::from_secs(365 * 86400),
            256.0,
            750.0,
        )),
        _ => None,
    }
}

fn fees(pid: u64, names: &[String]) -> f64 {
    let Some((_, _, fqdn, wildcard)) = product(pid) else {
        return 0.0;
    };
    names
        .iter()
        .map(|n| if n.starts_with("*.") { wildcard } else { fqdn })
        .sum()
}

/// Parses the `csr_code` PEM to DER and checks it is a valid, self-signed request.
pub(crate) fn csr_der(pem: &str) -> Result<Vec<u8>, String> {
    let bad = || "CSR 无效 (csr_code is not a PEM certificate request)".to_string();
    let unix = pem.replace("\r\n", "\n");
    let begin = "-----BEGIN CERTIFICATE REQUEST-----";
    let end = "-----END CERTIFICATE REQUEST-----";
    let start = unix.find(begin).ok_or_else(bad)? + begin.len();
    let stop = unix[start..].find(end).ok_or_else(bad)? + start;
    let b64: String = unix[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    rcgen::CertificateSigningRequestParams::from_der(&der.clone().into())
        .map_err(|e| format!("CSR 无效 (invalid CSR: {e})"))?;
    Ok(der)
}

/// Splits and checks the comma-separated `domains`.
fn domain_list(req: &Req) -> Result<Vec<String>, String> {
    let raw = match req.0.get("domains") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => return Err("缺少参数 domains (missing parameter domains)".into()),
    };
    let names: Vec<String> = raw
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() || names.len() > 1000 {
        return Err("域名数量无效 (between 1 and 1000 names)".into());
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(format!("域名重复 (duplicate name {name})"));
        }
        if !plausible_name(name) {
            return Err(format!("域名无效 (invalid name {name:?})"));
        }
    }
    Ok(names)
}

fn plausible_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let host = dcv::validation_name(name);
    host.contains('.')
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn cert_create(shared: &Shared, req: &Req) -> Result<Value, String> {
    let (client_id, username) = auth(shared, req)?;
    let pid = req.u64("pid")?;
    product(pid).ok_or_else(|| format!("产品不存在 (no product {pid})"))?;
    let csr_pem = req.string("csr_code")?;
    let names = domain_list(req)?;
    let renew = req.bool_or("renew", false)?;
    let old = req.i64_or("old_vendor_id", -1)?;
    let der = csr_der(&csr_pem)?;
    let mut st = lock(&shared.state);
    let renews = if renew {
        let old = u64::try_from(old)
            .map_err(|_| "续费需要 old_vendor_id (renewal needs old_vendor_id)")?;
        owned(&st, old, &username)?;
        Some(old)
    } else {
        None
    };
    let total = fees(pid, &names);
    let account = st.accounts.get_mut(&username).ok_or(BAD_TOKEN)?;
    if account.credit < total {
        return Err(format!(
            "账户余额不足 (insufficient balance: {total} needed, {} left)",
            account.credit
        ));
    }
    account.credit -= total;
    let id = st.next_id;
    st.next_id += 1;
    let order =
        OrderRecord {
            id,
            client_id,
            pid,
            csr_pem,
            csr_der_b64: base64::engine::general_purpose::STANDARD.encode(&der),
            names: names
                .iter()
                .map(|n| NameState {
                    name: n.clone(),
                    verified: false,
                    method: "http".into(),
                    last_check: None,
                })
                .collect(),
            unique_id: shared.options.fixed_unique_id.clone().unwrap_or_else(|| {
                format!("cab{}", rand::random_range(100_000_000u64..1_000_000_000))
            }),
            status: PROCESSING.into(),
            created_at: now_text(),
            issue_after: None,
            cert_pem: None,
            ca_pem: None,
            expire_at: None,
            not_after: None,
            total_fees: total,
            renews,
        };
    let answer = order_json(&order, &contact_of(&st, &order), false);
    st.orders.insert(id, order);
    shared.save(&st);
    Ok(answer)
}

fn cert_reissue(shared: &Shared, req: &Req) -> Result<Value, String> {
    let (_, username) = auth(shared, req)?;
    let id = req.id()?;
    let csr_pem = req.string("csr_code")?;
    let names = domain_list(req)?;
    let der = csr_der(&csr_pem)?;
    let mut st = lock(&shared.state);
    let old = owned(&st, id, &username)?.clone();
    let contact = contact_of(&st, &old);
    if old.status != ISSUED && old.status != PROCESSING {
        return Err(format!(
            "订单状态为 {} (the order is {}; it cannot be reissued)",
            old.status, old.status
        ));
    }
    let added: Vec<String> = names
        .iter()
        .filter(|n| !old.names.iter().any(|o| &o.name == *n))
        .cloned()
        .collect();
    let extra = fees(old.pid, &added);
    let account = st.accounts.get_mut(&username).ok_or(BAD_TOKEN)?;
    if account.credit < extra {
        return Err(format!(
            "账户余额不足 (insufficient balance: {extra} needed)"
        ));
    }
    account.credit -= extra;
    let order = st.orders.get_mut(&id).ok_or(NO_ORDER)?;
    order.csr_pem = csr_pem;
    order.csr_der_b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    order.names = names
        .iter()
        .map(|n| NameState {
            name: n.clone(),
            verified: false,
            method: "http".into(),
            last_check: None,
        })
        .collect();
    order.status = PROCESSING.into();
    order.issue_after = None;
    order.cert_pem = None;
    order.ca_pem = None;
    order.expire_at = None;
    order.not_after = None;
    let mut answer = order_json(order, &contact, false);
    answer["total_fees"] = money(extra);
    shared.save(&st);
    Ok(answer)
}

/// The account e-mail of the device that placed `order`.
fn contact_of(st: &SimState, order: &OrderRecord) -> String {
    st.devices
        .get(&order.client_id)
        .map(|d| d.username.clone())
        .unwrap_or_default()
}

/// The create/details answer for an order.
fn order_json(order: &OrderRecord, contact: &str, details: bool) -> Value {
    let der = base64::engine::general_purpose::STANDARD
        .decode(&order.csr_der_b64)
        .unwrap_or_default();
    let hashes = CsrHashes::of_der(&der);
    let mut dcv_info = Map::new();
    for n in &order.names {
        let status = if n.verified {
            "verified"
        } else {
            "needverification"
        };
        let mut entry = dcv::entry(&n.name, &hashes, &order.unique_id, status);
        entry["method"] = json!(n.method);
        dcv_info.insert(n.name.clone(), entry);
    }
    let mut v = json!({
        "cert_status": order.status,
        "dcv_info": dcv_info,
        "unique_id": order.unique_id,
        "created_at": order.created_at,
        "trustocean_id": order.id,
        "csr_code": order.csr_pem.replace("\r\n", "\n").trim_end().replace('\n', "\r\n"),
        "contact_email": contact,
        "domains": order.name_list(),
        "total_fees": money(order.total_fees),
    });
    if details {
        let title = product(order.pid).map_or("", |p| p.0);
        v["product_name"] = json!(title);
        v["domain_count"] = json!(order.names.len());
        if let Some(expire) = &order.expire_at {
            v["expire_at"] = json!(expire);
        }
        if order.status == ISSUED || order.cert_pem.is_some() {
            v["cert_code"] = json!(order.cert_pem.clone().unwrap_or_default());
            v["ca_code"] = json!(order.ca_pem.clone().unwrap_or_default());
        }
    }
    v
}

/// Issues the order if every name is validated and the issuance delay has passed.
fn maybe_issue(shared: &Shared, st: &mut SimState, id: u64) {
    let Some(order) = st.orders.get_mut(&id) else {
        return;
    };
    let due = order
        .issue_after
        .is_some_and(|t| OffsetDateTime::now_utc().unix_timestamp() >= t);
    if order.status != PROCESSING || !due {
        return;
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&order.csr_der_b64)
        .unwrap_or_default();
    let validity = shared
        .faults()
        .validity_secs
        .map(Duration::from_secs)
        .or(shared.options.validity)
        .or_else(|| product(order.pid).map(|p| p.1))
        .unwrap_or(Duration::from_secs(90 * 86400));
    let faults = shared.faults();
    let mut names = order.name_list();
    if faults.drop_issued_name && names.len() > 1 {
        names.pop();
    }
    let der = if faults.foreign_key {
        foreign_csr(&names).unwrap_or(der)
    } else {
        der
    };
    match shared.ca.issue(&der, &names, validity) {
        Ok(issued) => {
            order.cert_pem = Some(issued.cert_pem);
            order.ca_pem = Some(if faults.unrelated_chain {
                unrelated_certificate().unwrap_or(issued.ca_pem)
            } else {
                issued.ca_pem
            });
            order.expire_at = Some(api_time(issued.not_after));
            order.not_after = Some(issued.not_after.unix_timestamp());
            order.status = ISSUED.into();
        }
        Err(e) => {
            tracing::warn!("order {id}: issuance failed: {e}");
            order.status = "rejected".into();
        }
    }
    shared.save(st);
}

/// Marks an issued order `expired` once its certificate's notAfter has passed.
fn expire_if_due(shared: &Shared, st: &mut SimState, id: u64) {
    let Some(order) = st.orders.get_mut(&id) else {
        return;
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if order.status == ISSUED && order.not_after.is_some_and(|t| now > t) {
        order.status = "expired".into();
        shared.save(st);
    }
}

/// Checks every unvalidated name of order `id` by fetching its file; returns a summary message.
async fn validate(shared: &Arc<Shared>, id: u64) -> String {
    let (csr_checked, targets): (String, Vec<Target>) = {
        let st = lock(&shared.state);
        let Some(order) = st.orders.get(&id) else {
            return NO_ORDER.into();
        };
        if order.status != PROCESSING {
            return format!("order is {}", order.status);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&order.csr_der_b64)
            .unwrap_or_default();
        let hashes = CsrHashes::of_der(&der);
        let targets = order
            .names
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.verified)
            .map(|(i, n)| {
                (
                    i,
                    n.name.clone(),
                    hashes.file_name(),
                    hashes.file_content(&order.unique_id),
                    cname_of(&hashes, &n.name, &order.unique_id),
                )
            })
            .collect();
        (order.csr_der_b64.clone(), targets)
    };
    let mut results = Vec::with_capacity(targets.len());
    for (i, name, file, content, cname) in targets {
        let method = {
            let st = lock(&shared.state);
            st.orders
                .get(&id)
                .and_then(|o| o.names.get(i))
                .map(|n| n.method.clone())
        };
        let outcome = match method.as_deref() {
            // Every method's data is handed out at once: a name passes by its file or, when the
            // simulator has an authoritative server to ask, by its CNAME. With a DNS server,
            // wildcards pass only by DNS (CA/B rules); without one, by the base name's file as
            // before.
            Some("http") | Some("https") | Some("dns") => {
                let dns_only = name.starts_with("*.") && shared.options.dns_server.is_some();
                let by_file = if dns_only || method.as_deref() == Some("dns") {
                    Err("a wildcard cannot be validated by file".to_string())
                } else {
                    fetch(shared, dcv::validation_name(&name), &file, &content).await
                };
                match (by_file, shared.options.dns_server) {
                    (Ok(()), _) => Ok(()),
                    (Err(e), Some(server)) => {
                        super::dns_check::check_cname(server, &cname.0, &cname.1)
                            .await
                            .map_err(|d| format!("{e}; by DNS: {d}"))
                    }
                    (Err(e), None) => Err(e),
                }
            }
            Some(other) => Err(format!("{other} validation is not simulated; use http")),
            None => Err("order changed".into()),
        };
        results.push((i, name, outcome));
    }
    let faults = shared.faults();
    let mut st = lock(&shared.state);
    let Some(order) = st.orders.get_mut(&id) else {
        return NO_ORDER.into();
    };
    if order.csr_der_b64 != csr_checked {
        return "订单已重签 (the order was reissued while it was checked)".into();
    }
    let mut failures = Vec::new();
    for (i, name, outcome) in results {
        if let Some(n) = order.names.get_mut(i).filter(|n| n.name == name) {
            match outcome {
                Ok(()) => {
                    n.verified = true;
                    n.last_check = None;
                }
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    n.last_check = Some(e);
                }
            }
        }
    }
    let verified = order.names.iter().filter(|n| n.verified).count();
    let total = order.names.len();
    if verified == total && order.status == PROCESSING && order.issue_after.is_none() {
        if faults.reject_orders {
            order.status = "rejected".into();
        } else {
            order.issue_after = Some(
                OffsetDateTime::now_utc().unix_timestamp()
                    + i64::try_from(faults.issuance_delay_secs).unwrap_or(i64::MAX / 2),
            );
        }
    }
    shared.save(&st);
    maybe_issue(shared, &mut st, id);
    if failures.is_empty() {
        format!("{verified}/{total} 个域名已验证 (names validated)")
    } else {
        format!(
            "{verified}/{total} 个域名已验证 (names validated); {}",
            failures.join("; ")
        )
    }
}

/// The CNAME owner (absolute) and target of a name's DNS validation.
type Cname = (String, String);

/// One name to check: its index, the name, the file name and content, and its CNAME.
type Target = (usize, String, String, String, Cname);

fn cname_of(hashes: &CsrHashes, name: &str, unique_id: &str) -> Cname {
    let (sub, top) = dcv::split_domain(dcv::validation_name(name));
    (
        format!("{}.{top}", hashes.dns_host(sub.as_deref())),
        hashes.dns_value(unique_id),
    )
}

/// Runs validation for every pending order (the periodic re-check).
pub(super) async fn recheck_all(shared: &Arc<Shared>) {
    let pending: Vec<u64> = {
        let st = lock(&shared.state);
        st.orders
            .values()
            .filter(|o| o.status == PROCESSING)
            .map(|o| o.id)
            .collect()
    };
    for id in pending {
        validate(shared, id).await;
        let mut st = lock(&shared.state);
        maybe_issue(shared, &mut st, id);
    }
}

/// Fetches the validation file for `name` and compares it byte for byte with `expected`.
pub(crate) async fn fetch(
    shared: &Shared,
    name: &str,
    file: &str,
    expected: &str,
) -> Result<(), String> {
    let path = format!("/.well-known/pki-validation/{file}");
    let host = if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_string()
    };
    let url = match shared.options.connect {
        Some(addr) => format!("http://{addr}{path}"),
        None => format!("http://{host}{path}"),
    };
    let shown = format!("http://{host}{path}");
    let mut response = shared
        .fetcher
        .get(&url)
        .header(reqwest::header::HOST, &host)
        .send()
        .await
        .map_err(|e| format!("could not fetch {shown}: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("{shown} answered HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {shown} failed: {e}"))?
    {
        if body.len() + chunk.len() > FETCH_LIMIT {
            return Err(format!("{shown} is larger than {FETCH_LIMIT} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    if body == expected.as_bytes() {
        Ok(())
    } else {
        Err(format!("{shown} does not hold the expected content"))
    }
}

/// An amount as the API writes it: an integer when whole (`0`, `256`), else a decimal.
fn money(amount: f64) -> Value {
    if amount.fract() == 0.0 && amount.abs() < 1e15 {
        json!(amount as i64)
    } else {
        json!(amount)
    }
}

fn now_text() -> String {
    api_time(OffsetDateTime::now_utc())
}

/// `YYYY-MM-DD HH:MM:SS` in China time, as the API writes times.
fn api_time(t: OffsetDateTime) -> String {
    let offset = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    let t = t.to_offset(offset);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn uuid_like() -> String {
    let h = hex(&rand::random::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A CSR for `names` with a fresh key of the simulator's own (the `foreign_key` fault).
fn foreign_csr(names: &[String]) -> Option<Vec<u8>> {
    let key = rcgen::KeyPair::generate().ok()?;
    let params = rcgen::CertificateParams::new(names.to_vec()).ok()?;
    Some(params.serialize_request(&key).ok()?.der().to_vec())
}

/// A self-signed certificate nothing was issued under (the `unrelated_chain` fault).
fn unrelated_certificate() -> Option<String> {
    let key = rcgen::KeyPair::generate().ok()?;
    let params = rcgen::CertificateParams::new(vec!["unrelated.invalid".to_string()]).ok()?;
    Some(params.self_signed(&key).ok()?.pem())
}
