//! Huawei Cloud DNS record sets, enough for a DNS-validation publisher: list public zones by
//! name, list/create record sets of a zone, replace one's values, delete one. Every request must carry a valid
//! `SDK-HMAC-SHA256` signature (providers.md §3.2), checked here from the request as received;
//! a bad one gets the gateway's 401 `APIGW.0301`.
//!
//! SCM's automatic DNS push writes into the same store ([`push_txt`]), and the SCM mode's DNS
//! check of a name in a simulated zone is answered from it ([`answers_txt`]): Huawei Cloud DNS
//! is that zone's authoritative DNS. Requests that pass the signature check are counted as
//! `huawei-dns:<METHOD>` (`SimHandle::request_count`).
//!
//! The record-set shape (not in providers.md) follows Huawei's public DNS API reference: names
//! end in a dot, `records` is a list, TXT values are quoted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Shared, lock};

/// The credentials and zones the simulated Huawei Cloud DNS knows.
#[derive(Debug, Clone, Default)]
pub struct HuaweiDnsOptions {
    /// The access key id requests must be signed with.
    pub ak: String,
    /// Its secret key.
    pub sk: String,
    /// The public zones (`example.com`), each given an id.
    pub zones: Vec<String>,
}

/// One record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Its id.
    pub id: String,
    /// The zone it is in (without the trailing dot).
    pub zone: String,
    /// Its name, with the trailing dot.
    pub name: String,
    /// `CNAME`, `TXT`, …
    pub rtype: String,
    /// The values as stored.
    pub records: Vec<String>,
}

/// The record sets, by id.
pub type Store = Mutex<BTreeMap<String, RecordSet>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Recomputes the signature of a request as received; `Err` says why it is refused. (The SCM
/// mode checks its requests with it too.)
pub(crate) fn check_signature(
    options: &HuaweiDnsOptions,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("SDK-HMAC-SHA256 ")
        .ok_or("not SDK-HMAC-SHA256")?;
    let parts: BTreeMap<&str, &str> = rest.split(", ").filter_map(|p| p.split_once('=')).collect();
    if parts.get("Access") != Some(&options.ak.as_str()) {
        return Err("unknown access key".into());
    }
    let signed: Vec<&str> = parts
        .get("SignedHeaders")
        .ok_or("no SignedHeaders")?
        .split(';')
        .collect();
    if !signed.contains(&"x-sdk-date") {
        return Err("x-sdk-date is not signed".into());
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let date = header("x-sdk-date").ok_or("no X-Sdk-Date")?;
    let when = time::PrimitiveDateTime::parse(
        date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| "bad X-Sdk-Date")?
    .assume_utc();
    if (time::OffsetDateTime::now_utc() - when)
        .whole_minutes()
        .abs()
        > 15
    {
        return Err("X-Sdk-Date is more than 15 minutes off".into());
    }
    let mut canonical_headers = String::new();
    for name in &signed {
        canonical_headers.push_str(&format!("{name}:{}\n", header(name).unwrap_or("")));
    }
    let mut path: String = unescape(uri.path())
        .split('/')
        .map(escape)
        .collect::<Vec<_>>()
        .join("/");
    if !path.ends_with('/') {
        path.push('/');
    }
    let mut query: Vec<(String, String)> = (uri.query().unwrap_or("").split('&'))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (escape(&unescape(k)), escape(&unescape(v)))
        })
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{}",
        query.join("&"),
        signed.join(";"),
        hex(&Sha256::digest(body))
    );
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(options.sk.as_bytes()).map_err(|_| "bad key")?;
    mac.update(to_sign.as_bytes());
    if parts.get("Signature") != Some(&hex(&mac.finalize().into_bytes()).as_str()) {
        return Err(format!(
            "verify aksk signature fail, canonical request: {}",
            canonical.replace('\n', "|")
        ));
    }
    Ok(())
}

fn refuse(status: StatusCode, code: &str, msg: String) -> Response {
    (
        status,
        Json(json!({"error_code": code, "error_msg": msg, "request_id": "sim"})),
    )
        .into_response()
}

/// Checks the signature, then runs `then`.
fn signed(
    shared: &Shared,
    (method, uri, headers, body): (&Method, &Uri, &HeaderMap, &[u8]),
    then: impl FnOnce(&HuaweiDnsOptions) -> Response,
) -> Response {
    let Some(options) = shared.options.huawei_dns.as_ref() else {
        return refuse(StatusCode::NOT_FOUND, "APIGW.0101", "not enabled".into());
    };
    match check_signature(options, method, uri, headers, body) {
        Ok(()) => {
            *lock(&shared.counts)
                .entry(format!("huawei-dns:{method}"))
                .or_insert(0) += 1;
            then(options)
        }
        Err(e) => refuse(
            StatusCode::UNAUTHORIZED,
            "APIGW.0301",
            format!("Incorrect IAM authentication information: {e}"),
        ),
    }
}

fn zone_id(zone: &str) -> String {
    format!("ff8080{}", &hex(&Sha256::digest(zone.as_bytes()))[..26])
}

fn zone_name(options: &HuaweiDnsOptions, id: &str) -> Option<String> {
    options.zones.iter().find(|z| zone_id(z) == id).cloned()
}

fn set_json(r: &RecordSet) -> Value {
    json!({"id": r.id, "name": r.name, "type": r.rtype, "records": r.records,
           "zone_id": zone_id(&r.zone), "zone_name": format!("{}.", r.zone), "status": "ACTIVE"})
}

/// The simulated zone holding `owner` (the longest), if Huawei Cloud DNS is on and holds one.
fn zone_of(shared: &Shared, owner: &str) -> Option<String> {
    let owner = owner.trim_end_matches('.').to_ascii_lowercase();
    let options = shared.options.huawei_dns.as_ref()?;
    (options.zones.iter())
        .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
        .filter(|z| owner == *z || owner.ends_with(&format!(".{z}")))
        .max_by_key(String::len)
}

/// SCM's automatic DNS push (`auto_dns_auth`, providers.md §3.5): adds the TXT `value` at `owner`
/// to the record sets of the zone holding it. False when no simulated zone holds `owner` (SCM
/// cannot push there).
pub(crate) fn push_txt(shared: &Shared, owner: &str, value: &str) -> bool {
    let Some(zone) = zone_of(shared, owner) else {
        return false;
    };
    let name = format!("{}.", owner.trim_end_matches('.').to_ascii_lowercase());
    let quoted = format!("\"{value}\"");
    let mut store = lock(&shared.huawei_records);
    match store
        .values_mut()
        .find(|r| r.name == name && r.rtype == "TXT")
    {
        Some(set) if set.records.contains(&quoted) => {}
        Some(set) => set.records.push(quoted),
        None => {
            let set = RecordSet {
                id: format!("rs{:030x}", rand::random::<u128>() >> 8),
                zone,
                name,
                rtype: "TXT".into(),
                records: vec![quoted],
            };
            store.insert(set.id.clone(), set);
        }
    }
    true
}

/// What Huawei Cloud DNS answers for `owner` TXT, as the authoritative DNS of its zones: whether
/// it holds `value`; `None` when no simulated zone holds `owner` (ask another server).
pub(crate) fn answers_txt(shared: &Shared, owner: &str, value: &str) -> Option<bool> {
    zone_of(shared, owner)?;
    let name = format!("{}.", owner.trim_end_matches('.').to_ascii_lowercase());
    let quoted = format!("\"{value}\"");
    let store = lock(&shared.huawei_records);
    Some(
        (store.values()).any(|r| r.name == name && r.rtype == "TXT" && r.records.contains(&quoted)),
    )
}

/// `GET /v2/zones?name=`.
pub(crate) async fn list_zones(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(&shared, (&method, &uri, &headers, &body), |options| {
        let want = (uri.query().unwrap_or("").split('&'))
            .find_map(|p| p.strip_prefix("name="))
            .map(|n| unescape(n).trim_end_matches('.').to_string());
        let zones: Vec<Value> = (options.zones.iter())
            .filter(|z| want.as_deref().is_none_or(|w| w == z.as_str()))
            .map(|z| json!({"id": zone_id(z), "name": format!("{z}."), "zone_type": "public"}))
            .collect();
        Json(json!({"zones": zones, "metadata": {"total_count": zones.len()}})).into_response()
    })
}

/// `GET` / `POST /v2/zones/{zone_id}/recordsets`.
pub(crate) async fn recordsets(
    State(shared): State<Arc<Shared>>,
    Path(zone): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(&shared, (&method, &uri, &headers, &body), |options| {
        let Some(zone) = zone_name(options, &zone) else {
            return refuse(StatusCode::NOT_FOUND, "DNS.0101", "zone not found".into());
        };
        let mut store = lock(&shared.huawei_records);
        if method == Method::POST {
            let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "DNS.0303",
                    "body is not JSON".into(),
                );
            };
            let name = req["name"].as_str().unwrap_or("").to_ascii_lowercase();
            let rtype = req["type"].as_str().unwrap_or("").to_string();
            let records: Vec<String> = (req["records"].as_array().into_iter().flatten())
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if !name.ends_with(&format!("{zone}.")) || records.is_empty() {
                return refuse(StatusCode::BAD_REQUEST, "DNS.0308", "bad record set".into());
            }
            if store.values().any(|r| r.name == name && r.rtype == rtype) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "DNS.0312",
                    "the record set exists".into(),
                );
            }
            let set = RecordSet {
                id: format!("rs{:030x}", rand::random::<u128>() >> 8),
                zone,
                name,
                rtype,
                records,
            };
            store.insert(set.id.clone(), set.clone());
            return (StatusCode::ACCEPTED, Json(set_json(&set))).into_response();
        }
        let query: BTreeMap<String, String> = (uri.query().unwrap_or("").split('&'))
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), unescape(v)))
            .collect();
        let sets: Vec<Value> = (store.values())
            .filter(|r| r.zone == zone)
            .filter(|r| {
                query
                    .get("name")
                    .is_none_or(|n| n.eq_ignore_ascii_case(&r.name))
            })
            .filter(|r| query.get("type").is_none_or(|t| t == &r.rtype))
            .map(set_json)
            .collect();
        Json(json!({"recordsets": sets})).into_response()
    })
}

/// `DELETE` / `PUT /v2/zones/{zone_id}/recordsets/{recordset_id}`: deletes the set, or replaces
/// its `records` (the name, type and TTL stay).
pub(crate) async fn recordset(
    State(shared): State<Arc<Shared>>,
    Path((zone, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(&shared, (&method, &uri, &headers, &body), |options| {
        let replacement = if method == Method::PUT {
            let records: Option<Vec<String>> =
                serde_json::from_slice::<Value>(&body).ok().and_then(|req| {
                    (req["records"].as_array())
                        .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_string)))
                        .map(Iterator::collect)
                });
            match records {
                Some(records) if !records.is_empty() => Some(records),
                _ => return refuse(StatusCode::BAD_REQUEST, "DNS.0308", "bad record set".into()),
            }
        } else {
            None
        };
        let mut store = lock(&shared.huawei_records);
        let zone = zone_name(options, &zone);
        if store
            .get(&id)
            .is_none_or(|r| Some(&r.zone) != zone.as_ref())
        {
            return refuse(
                StatusCode::NOT_FOUND,
                "DNS.0305",
                "record set not found".into(),
            );
        }
        let answer = match replacement {
            Some(records) => store.get_mut(&id).map(|r| {
                r.records = records;
                set_json(r)
            }),
            None => store.remove(&id).map(|r| set_json(&r)),
        };
        (StatusCode::ACCEPTED, Json(answer.unwrap_or(Value::Null))).into_response()
    })
}
