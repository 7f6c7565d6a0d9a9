//! The HowSSL API client (providers.md §2): token, products and balance, `createOrder` →
//! `commitOrder`, validation data, `refreshOrder`, status, download and cancel, over the shared
//! transport ([`super::http`], multipart bodies).
//!
//! Every call is a `POST` of `multipart/form-data` holding the `token` field. Answers are the
//! envelope `{"status":true,"msg","data","code":200}`; `{"status":false,"msg","code"}` is an API
//! error quoting `msg` and `code`. Numbers may come as strings and several "JSON" fields as
//! JSON-encoded strings (`prices_info`, `validity_status`); both are accepted. An HTML page (a
//! wrong path answers an HTML 404) is named as such, with the base URL to check.
//!
//! Ordering is two persisted steps: `createOrder` answers a `check_id` (a draft, nothing paid),
//! `commitOrder` pays and answers the `order_id`. Both are sent once, never retried. Before either,
//! the balance is compared with what the names cost ([`order_cost`]); nothing is sent when it is
//! short. HowSSL has no call that finds an order by its `check_id`, so a commit whose answer was
//! lost cannot be found again by the API: the pipeline stops and names the draft.
//!
//! Where the vendor documentation is silent, the choice is in [`undocumented`], and a failure that
//! depends on it names the field.
//!
//! Not here: publishing validation data (`crate::publish`), the order record (`crate::orders`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::account::{self, AccountApi, AccountInfo, RegisterRequest};
use super::envelope::{clean_message, loose_f64, loose_string, loose_u64};
use super::http::{Body, Expect, HttpOptions, Request, Transport};
use super::pem::check_downloaded;
use super::{
    BoxFuture, CaError, Capabilities, CertificateAuthority, Challenge, Created, IssuedCertificate,
    NameValidation, Order, OrderId, OrderRequest, OrderState, PKI_VALIDATION, PollPolicy,
    ValidationMethod, is_safe_file_name,
};
use crate::secret::Secret;

/// The HowSSL API base URL used when `[howssl]` names none.
pub const DEFAULT_BASE_URL: &str = "https://api.howssl.com";

/// The largest DCV file content accepted from the CA.
const MAX_DCV_CONTENT: usize = 4096;

/// The choices made where HowSSL's documentation is silent (providers.md §2.6), in one place.
/// Failure messages that depend on one name the field, so a user can report it.
pub mod undocumented {
    use std::time::Duration;

    /// The `createOrder` form field holding the names (its name was not recoverable). `domains`
    /// is what the sibling Encryption365 API and most CA reseller APIs use.
    pub const DOMAINS_FIELD: &str = "domains";
    /// How the names are joined in [`DOMAINS_FIELD`]: comma, no spaces (as Encryption365).
    pub const DOMAINS_SEPARATOR: &str = ",";
    /// The `createOrder` field `auto_info` (an int, required, meaning not recovered). `1` asks
    /// HowSSL to fill the order's contact details from the account, since the tool sends none.
    pub const AUTO_INFO: &str = "1";
    /// The `createOrder` answer field holding the draft id (`commitOrder` takes `check_id`).
    pub const CHECK_ID_FIELD: &str = "check_id";
    /// The least time between two `refreshOrder` calls for one order (rate limits are not
    /// documented; a DCV re-check is slow at the CA anyway).
    pub const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(60);
    /// Products listed per `Product_info/lists` page, and the most pages read.
    pub const PAGE_SIZE: u32 = 50;
    /// See [`PAGE_SIZE`].
    pub const MAX_PAGES: u32 = 20;
}

/// The endpoints (providers.md §2.3); case matters.
mod path {
    pub const PRODUCTS: &str = "/Home/Product_info/lists";
    pub const ACCOUNT: &str = "/Home/User/AccountInfo";
    pub const CREATE: &str = "/Home/Order/createOrder";
    pub const COMMIT: &str = "/Home/Order/commitOrder";
    pub const VALIDITY_INFO: &str = "/Home/Order/getValidity_info";
    pub const REFRESH: &str = "/Home/Order/refreshOrder";
    pub const BATCH_DCV: &str = "/Home/Order/batchUpdateDCV";
    pub const UPDATE_DCV: &str = "/Home/Order/updateDCV";
    pub const ORDER_INFO: &str = "/Home/Order/getOrderInfo";
    pub const CERTIFICATE: &str = "/Home/Order/getCertificate";
    pub const CANCEL: &str = "/Home/Order/cancelOrder";
}

/// One price of a product (`prices_info` entry), for one validity.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// The validity in months (`label`).
    pub months: u32,
    /// The selling price of the order (`price`).
    pub price: f64,
    /// The list price (`real_price`).
    pub list_price: Option<f64>,
    /// The price of each extra normal name (`attachCommonPrice`).
    pub extra_name: f64,
    /// The price of each extra wildcard name (`attachWildcardPrice`).
    pub extra_wildcard: f64,
    /// The currency (`currency`), if said.
    pub currency: String,
}

/// One product of `Product_info/lists`.
#[derive(Debug, Clone, PartialEq)]
pub struct HowProduct {
    /// `product_code`: what `[howssl] product_code` takes.
    pub code: String,
    /// `product_name`.
    pub name: String,
    /// `audit_type`: `DV`, `OV` or `EV`.
    pub audit_type: String,
    /// `domain_type`: `1` single, `2` multi, `3` wildcard, `4` multi-wildcard.
    pub domain_type: String,
    /// `prices_info`, decoded.
    pub prices: Vec<Price>,
}

/// The validation data of an order (`valid_info`): one set for the whole order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidInfo {
    /// `DCVdnsHost`: the CNAME owner relative to each name (`_md5`).
    pub dns_host: Option<String>,
    /// `DCVdnsValue`: the CNAME target.
    pub dns_value: Option<String>,
    /// `DCVdnsType` (`CNAME`).
    pub dns_type: Option<String>,
    /// `DCVfileName`: the file under `/.well-known/pki-validation/` (safe to create).
    pub file_name: Option<String>,
    /// `DCVfileContent`: its exact body.
    pub file_content: Option<String>,
}

/// The HowSSL client.
pub struct HowSsl {
    http: Transport,
    token: Option<Secret>,
    product_code: Option<String>,
    validity_months: Option<u32>,
    refreshed: Mutex<HashMap<String, Instant>>,
}

impl fmt::Debug for HowSsl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HowSsl")
            .field("base", &self.http.base().as_str())
            .field("token", &"[redacted]")
            .field("product_code", &self.product_code)
            .field("validity_months", &self.validity_months)
            .finish()
    }
}

/// What the client orders, from `[howssl]`.
#[derive(Debug, Clone, Default)]
pub struct HowSslOptions {
    /// The token (`None` is enough for nothing but building the client).
    pub token: Option<Secret>,
    /// `product_code`.
    pub product_code: Option<String>,
    /// `validity_period` in months (default: the shortest the product offers).
    pub validity_months: Option<u32>,
}

impl HowSsl {
    /// A client for `base_url` (validated: https, or http on loopback).
    pub fn new(base_url: &str, options: HowSslOptions) -> Result<HowSsl, CaError> {
        let http = Transport::new(base_url, HttpOptions::default())?;
        Ok(HowSsl {
            http,
            token: options.token,
            product_code: options.product_code,
            validity_months: options.validity_months,
            refreshed: Mutex::new(HashMap::new()),
        })
    }

    /// Sends one call (multipart, `token` first) and reads the envelope; only read-only calls
    /// are retried after transport failures. Answers the whole envelope object.
    async fn call(
        &self,
        endpoint: &str,
        fields: &[(&str, &str)],
        read_only: bool,
    ) -> Result<Map<String, Value>, CaError> {
        let token = self
            .token
            .as_ref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CaError::Invalid(
                    "no HowSSL token: run `enc365-nginx register --provider howssl --token-stdin`"
                        .to_string(),
                )
            })?;
        let mut form = vec![("token".to_string(), token.expose().to_string())];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let request = Request::post(endpoint, Body::Multipart(form))
            .idempotent(read_only)
            .expect(Expect::Any);
        let response = self.http.send(&request).await?;
        parse_envelope(endpoint, response.status, &response.body, self.http.base())
    }

    /// `User/AccountInfo`: (`user_email`, `user_amount`).
    pub async fn account_info(&self) -> Result<(Option<String>, f64), CaError> {
        let envelope = self.call(path::ACCOUNT, &[], true).await?;
        let data = data_object(path::ACCOUNT, &envelope)?;
        let amount = data
            .get("user_amount")
            .and_then(loose_f64)
            .ok_or_else(|| malformed(path::ACCOUNT, "data.user_amount (a number) is missing"))?;
        Ok((data.get("user_email").and_then(loose_string), amount))
    }

    /// `Product_info/lists`, every page.
    pub async fn product_list(&self) -> Result<Vec<HowProduct>, CaError> {
        let mut out = Vec::new();
        let size = undocumented::PAGE_SIZE.to_string();
        for page in 1..=undocumented::MAX_PAGES {
            let page_text = page.to_string();
            let envelope = self
                .call(
                    path::PRODUCTS,
                    &[("page", &page_text), ("size", &size)],
                    true,
                )
                .await?;
            let items = match envelope.get("data") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(malformed(
                        path::PRODUCTS,
                        &format!("data should be a list of products, got {}", short(other)),
                    ));
                }
            };
            let total = envelope.get("total").and_then(loose_u64);
            let got = items.len();
            for item in &items {
                out.push(parse_product(item)?);
            }
            if got == 0 || total.is_none_or(|t| out.len() as u64 >= t) {
                break;
            }
        }
        Ok(out)
    }

    /// The configured product and the price for the configured validity, with a clear error
    /// when either is not on offer.
    pub async fn chosen_price(&self) -> Result<(HowProduct, Price), CaError> {
        let code = self.product_code.as_deref().filter(|c| !c.is_empty());
        let code = code.ok_or_else(|| {
            CaError::Invalid(
                "no HowSSL product chosen: set product_code under [howssl] to one of the codes \
                 `enc365-nginx products` lists"
                    .to_string(),
            )
        })?;
        let products = self.product_list().await?;
        let product = (products.iter().find(|p| p.code == code)).ok_or_else(|| {
            let codes: Vec<&str> = products.iter().map(|p| p.code.as_str()).collect();
            CaError::Invalid(format!(
                "product_code {code:?} under [howssl] is not offered to this account; it offers: \
                 {}",
                codes.join(", ")
            ))
        })?;
        choose_validity(product, self.validity_months).map(|p| (product.clone(), p))
    }

    /// Refuses (nothing sent) when the balance cannot pay for `names`.
    pub async fn ensure_balance(&self, names: &[String]) -> Result<(HowProduct, Price), CaError> {
        let (product, price) = self.chosen_price().await?;
        let cost = order_cost(&price, names);
        let (_, balance) = self.account_info().await?;
        if balance + 1e-9 < cost {
            return Err(CaError::Invalid(format!(
                "the HowSSL balance ({balance:.2}) cannot pay for {} name(s) of {} for {} months \
                 ({cost:.2} {}); nothing was ordered. Top up the account on the HowSSL site, then \
                 run again",
                names.len(),
                product.code,
                price.months,
                price.currency
            )));
        }
        Ok((product, price))
    }

    /// `createOrder`: the draft's `check_id` (sent once).
    pub async fn create_order(
        &self,
        product: &str,
        months: u32,
        csr_pem: &str,
        names: &[String],
    ) -> Result<String, CaError> {
        check_request(names, csr_pem)?;
        let months = months.to_string();
        let domains = names.join(undocumented::DOMAINS_SEPARATOR);
        let fields = [
            ("product_code", product),
            ("validity_period", months.as_str()),
            ("csr", csr_pem),
            ("auto_info", undocumented::AUTO_INFO),
            (undocumented::DOMAINS_FIELD, domains.as_str()),
        ];
        let envelope = match self.call(path::CREATE, &fields, false).await {
            Err(CaError::Api { endpoint, message }) => {
                // The names went in an undocumented field: say which, so a refusal that is
                // really about the field name can be reported.
                return Err(CaError::Api {
                    endpoint,
                    message: format!(
                        "{message} [the names were sent in the form field `{}`, joined by \
                         \"{}\": HowSSL does not document this field]",
                        undocumented::DOMAINS_FIELD,
                        undocumented::DOMAINS_SEPARATOR
                    ),
                });
            }
            other => other?,
        };
        let field = undocumented::CHECK_ID_FIELD;
        let found = match envelope.get("data") {
            Some(Value::Object(d)) => d.get(field).and_then(loose_string),
            Some(v) => loose_string(v),
            None => None,
        };
        found.filter(|id| is_plain_id(id)).ok_or_else(|| {
            malformed(
                path::CREATE,
                &format!(
                    "no usable data.{field} in the answer (the field name is not documented; \
                     please report this with the answer's shape)"
                ),
            )
        })
    }

    /// `commitOrder`: pays for the draft; the `order_id` and validation data (sent once).
    pub async fn commit_order(&self, check_id: &str) -> Result<(String, ValidInfo), CaError> {
        let envelope = self
            .call(path::COMMIT, &[("check_id", check_id)], false)
            .await?;
        let data = data_object(path::COMMIT, &envelope)?;
        let order_id = (data.get("order_id").and_then(loose_string))
            .filter(|id| is_plain_id(id))
            .ok_or_else(|| {
                malformed(
                    path::COMMIT,
                    &format!(
                        "data.order_id is missing; draft (check_id) {check_id} may have been \
                         paid: check the HowSSL console"
                    ),
                )
            })?;
        let info = match data.get("valid_info") {
            Some(v) => parse_valid_info(path::COMMIT, v)?,
            None => None,
        };
        Ok((order_id, info.unwrap_or_default()))
    }

    /// `getValidity_info`: the order's validation data; `None` for e-mail validation.
    pub async fn validity_info(&self, order_id: &str) -> Result<Option<ValidInfo>, CaError> {
        let envelope = self
            .call(path::VALIDITY_INFO, &[("order_id", order_id)], true)
            .await?;
        let data = data_object(path::VALIDITY_INFO, &envelope)?;
        match data.get("valid_info") {
            Some(v) => parse_valid_info(path::VALIDITY_INFO, v),
            None => Ok(None),
        }
    }

    /// `getOrderInfo`: the opaque `order_status` and, per name found in `validity_status`,
    /// whether it is validated.
    pub async fn order_info(
        &self,
        order_id: &str,
        names: &[String],
    ) -> Result<(String, HashMap<String, bool>), CaError> {
        let envelope = self
            .call(path::ORDER_INFO, &[("order_id", order_id)], true)
            .await?;
        let data = data_object(path::ORDER_INFO, &envelope)?;
        let status = data.get("order_status").and_then(loose_string);
        let validated = match data.get("validity_status") {
            Some(v) => parse_validity_status(v, names)?,
            None => HashMap::new(),
        };
        Ok((status.unwrap_or_else(|| "?".into()), validated))
    }

    /// `getCertificate`: the certificate once the order is finished, checked (covers `names`,
    /// chain parses and is put in order); `Err(Api)` while it is not.
    pub async fn certificate(
        &self,
        order_id: &str,
        names: &[String],
    ) -> Result<IssuedCertificate, CaError> {
        let envelope = self
            .call(path::CERTIFICATE, &[("order_id", order_id)], true)
            .await?;
        let data = data_object(path::CERTIFICATE, &envelope)?;
        let Some(Value::Object(cert)) = data.get("certificate") else {
            return Err(malformed(path::CERTIFICATE, "data.certificate is missing"));
        };
        let text = |k: &str| cert.get(k).and_then(loose_string).unwrap_or_default();
        checked_certificate(&text("cert"), &text("ca_cert"), names)
    }

    /// `refreshOrder`, at most once per [`undocumented::REFRESH_MIN_INTERVAL`] per order.
    pub async fn refresh(&self, order_id: &str) -> Result<(), CaError> {
        {
            let mut sent = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if sent
                .get(order_id)
                .is_some_and(|at| now.duration_since(*at) < undocumented::REFRESH_MIN_INTERVAL)
            {
                return Ok(());
            }
            sent.insert(order_id.to_string(), now);
        }
        self.call(path::REFRESH, &[("order_id", order_id)], false)
            .await
            .map(drop)
    }

    /// Switches the names whose method at the CA (from `getOrderInfo`'s `validity_status`)
    /// differs from the one chosen in `request`: one `batchUpdateDCV` when every name of the
    /// order changes to the same method and none is validated yet (the only case the API allows
    /// it), else `updateDCV` per name. A name whose method cannot be read is switched too.
    /// Answers the names switched.
    pub async fn set_methods(
        &self,
        order_id: &str,
        request: &OrderRequest,
    ) -> Result<Vec<String>, CaError> {
        let envelope = self
            .call(path::ORDER_INFO, &[("order_id", order_id)], true)
            .await?;
        let data = data_object(path::ORDER_INFO, &envelope)?;
        let at_ca = match data.get("validity_status") {
            Some(v) => parse_name_methods(v, &request.names)?,
            None => HashMap::new(),
        };
        let switch: Vec<(&String, ValidationMethod)> = (request.names.iter())
            .map(|n| (n, request.method(n)))
            .filter(|(n, want)| match at_ca.get(*n) {
                Some((true, _)) => false,
                Some((false, Some(now))) => now != want,
                _ => true,
            })
            .collect();
        let one_way = switch.windows(2).all(|w| w[0].1 == w[1].1);
        if switch.len() == request.names.len() && switch.len() > 1 && one_way {
            let check_way = dcv_way(switch[0].1);
            let fields = [("order_id", order_id), ("check_way", check_way)];
            self.call(path::BATCH_DCV, &fields, false).await?;
        } else {
            for (name, method) in &switch {
                let fields = [
                    ("order_id", order_id),
                    ("check_way", dcv_way(*method)),
                    ("domain", name.as_str()),
                ];
                self.call(path::UPDATE_DCV, &fields, false).await?;
            }
        }
        Ok(switch.into_iter().map(|(n, _)| n.clone()).collect())
    }

    /// `cancelOrder`.
    pub async fn cancel_order(&self, order_id: &str) -> Result<(), CaError> {
        self.call(path::CANCEL, &[("order_id", order_id)], false)
            .await
            .map(drop)
    }

    /// The order as it stands: issued when `getCertificate` succeeds (the `order_status` codes are
    /// not documented, so no code is taken to mean "issued"), else pending with what to publish.
    async fn status(&self, order_id: &str, names: &[String]) -> Result<Order, CaError> {
        let (status, validated) = self.order_info(order_id, names).await?;
        let order = |state, validations| Order {
            id: OrderId(order_id.to_string()),
            names: names.to_vec(),
            state,
            validations,
        };
        let not_ready = match self.certificate(order_id, names).await {
            Ok(cert) => return Ok(order(OrderState::Issued(cert), Vec::new())),
            Err(CaError::Api { message, .. }) => message,
            Err(e) => return Err(e),
        };
        let info = match self.validity_info(order_id).await {
            Ok(info) => info,
            Err(CaError::Api { message, .. }) => {
                tracing::info!("{}: {message}", path::VALIDITY_INFO);
                None
            }
            Err(e) => return Err(e),
        };
        let validations = validations(names, info.as_ref(), &validated);
        let detail = format!("order_status {status} ({not_ready})");
        Ok(order(OrderState::Pending { detail }, validations))
    }
}

/// What an order of `names` costs at `price`: the order's `price` covers the first name; each
/// further name costs `attachCommonPrice`, or `attachWildcardPrice` for a wildcard. (The docs
/// give the three prices, not the formula; this is the reading of "price of extra names".)
pub fn order_cost(price: &Price, names: &[String]) -> f64 {
    let extra: f64 = (names.iter().skip(1))
        .map(|n| {
            if n.starts_with("*.") {
                price.extra_wildcard
            } else {
                price.extra_name
            }
        })
        .sum();
    price.price + extra
}

/// The price for `months` (default: the shortest offered), or an error listing what is offered.
pub fn choose_validity(product: &HowProduct, months: Option<u32>) -> Result<Price, CaError> {
    let offered: Vec<String> = product
        .prices
        .iter()
        .map(|p| p.months.to_string())
        .collect();
    let found = match months {
        Some(m) => product.prices.iter().find(|p| p.months == m),
        None => product.prices.iter().min_by_key(|p| p.months),
    };
    found.cloned().ok_or_else(|| match months {
        Some(m) => CaError::Invalid(format!(
            "product {} does not offer validity_period = {m} (months) under [howssl]; it offers: \
             {} months",
            product.code,
            offered.join(", ")
        )),
        None => CaError::Invalid(format!(
            "product {} lists no prices (prices_info is empty); choose another product_code",
            product.code
        )),
    })
}

/// Reads the envelope; an HTML page or non-JSON body is named, with the base URL to check.
fn parse_envelope(
    endpoint: &str,
    http_status: u16,
    body: &[u8],
    base: &reqwest::Url,
) -> Result<Map<String, Value>, CaError> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let Ok(Value::Object(map)) = parsed else {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let lower = start.trim_start().to_ascii_lowercase();
        let what = if lower.starts_with("<!doctype") || lower.starts_with("<html") {
            "an HTML page"
        } else if body.is_empty() {
            "an empty body"
        } else {
            "malformed or cut-off JSON"
        };
        let detail = format!(
            "HTTP {http_status} with {what} starting {start:?}, not the HowSSL JSON envelope; \
             check base_url under [howssl] ({base}) — a wrong path answers an HTML 404 — or try \
             again later"
        );
        return Err(if http_status == 200 {
            malformed(endpoint, &detail)
        } else {
            CaError::Transport {
                endpoint: endpoint.to_string(),
                detail,
            }
        });
    };
    let ok = match map.get("status") {
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => super::envelope::loose_bool(v),
        None => None,
    };
    let code = map.get("code").and_then(loose_u64);
    let msg = map
        .get("msg")
        .and_then(loose_string)
        .map(|m| clean_message(&m));
    match ok {
        Some(true) if code.is_none_or(|c| c == 200) => Ok(map),
        Some(_) => Err(CaError::Api {
            endpoint: endpoint.to_string(),
            message: format!(
                "{} (code {})",
                msg.filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "(HowSSL gave no msg)".into()),
                code.map_or_else(|| "absent".into(), |c| c.to_string())
            ),
        }),
        None => Err(malformed(
            endpoint,
            &format!("the envelope has no boolean \"status\" (HTTP {http_status})"),
        )),
    }
}

fn malformed(endpoint: &str, detail: &str) -> CaError {
    CaError::Malformed {
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// `data` as an object (a JSON string holding an object is decoded).
fn data_object(
    endpoint: &str,
    envelope: &Map<String, Value>,
) -> Result<Map<String, Value>, CaError> {
    match envelope.get("data").map(json_in_string) {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(malformed(
            endpoint,
            &format!("data should be an object, got {}", short(&other)),
        )),
        None => Err(malformed(endpoint, "data is missing")),
    }
}

/// A value that may be JSON encoded in a string, decoded once (other values as they are).
fn json_in_string(v: &Value) -> Value {
    match v {
        Value::String(s) if s.trim_start().starts_with(['[', '{']) => {
            serde_json::from_str(s).unwrap_or_else(|_| v.clone())
        }
        other => other.clone(),
    }
}

fn parse_product(item: &Value) -> Result<HowProduct, CaError> {
    let Value::Object(p) = item else {
        return Err(malformed(
            path::PRODUCTS,
            &format!("a product should be an object, got {}", short(item)),
        ));
    };
    let text = |k: &str| p.get(k).and_then(loose_string).unwrap_or_default();
    let code = text("product_code");
    if code.is_empty() {
        return Err(malformed(path::PRODUCTS, "a product has no product_code"));
    }
    let prices = match p.get("prices_info").map(json_in_string) {
        Some(Value::Array(entries)) => (entries.iter())
            .map(|e| parse_price(&code, e))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(malformed(
                path::PRODUCTS,
                &format!(
                    "{code}: prices_info should be a list (JSON in a string), got {}",
                    short(&other)
                ),
            ));
        }
    };
    Ok(HowProduct {
        name: text("product_name"),
        audit_type: text("audit_type"),
        domain_type: text("domain_type"),
        code,
        prices,
    })
}

fn parse_price(code: &str, entry: &Value) -> Result<Price, CaError> {
    let number = |k: &str| entry.get(k).and_then(loose_f64);
    let months = (entry.get("label").and_then(loose_u64))
        .and_then(|m| u32::try_from(m).ok())
        .ok_or_else(|| {
            malformed(
                path::PRODUCTS,
                &format!("{code}: prices_info entry without a month count in label"),
            )
        })?;
    let price = number("price").ok_or_else(|| {
        malformed(
            path::PRODUCTS,
            &format!("{code}: prices_info entry for {months} months has no price"),
        )
    })?;
    Ok(Price {
        months,
        price,
        list_price: number("real_price"),
        extra_name: number("attachCommonPrice").unwrap_or(0.0),
        extra_wildcard: number("attachWildcardPrice").unwrap_or(0.0),
        currency: entry
            .get("currency")
            .and_then(loose_string)
            .unwrap_or_default(),
    })
}

/// `valid_info`: the five DCV keys (checked), or `None` when it is a string (e-mail method).
fn parse_valid_info(endpoint: &str, v: &Value) -> Result<Option<ValidInfo>, CaError> {
    let Value::Object(m) = json_in_string(v) else {
        return Ok(None);
    };
    let text = |k: &str| m.get(k).and_then(loose_string).filter(|s| !s.is_empty());
    let info = ValidInfo {
        dns_host: text("DCVdnsHost"),
        dns_value: text("DCVdnsValue"),
        dns_type: text("DCVdnsType"),
        file_name: text("DCVfileName"),
        file_content: text("DCVfileContent"),
    };
    if let Some(name) = &info.file_name
        && !is_safe_file_name(name)
    {
        return Err(malformed(
            endpoint,
            &format!(
                "valid_info.DCVfileName {name:?} is not a safe file name (only [A-Za-z0-9._-], \
                 no \"..\"); refusing to write it"
            ),
        ));
    }
    if let Some(content) = &info.file_content
        && (content.len() > MAX_DCV_CONTENT || content.contains('\0'))
    {
        return Err(malformed(
            endpoint,
            "valid_info.DCVfileContent is not a plausible validation value",
        ));
    }
    for (key, value) in [
        ("DCVdnsHost", &info.dns_host),
        ("DCVdnsValue", &info.dns_value),
    ] {
        if let Some(v) = value
            && !is_dns_text(v)
        {
            return Err(malformed(
                endpoint,
                &format!("valid_info.{key} {v:?} is not a DNS name"),
            ));
        }
    }
    Ok(Some(info))
}

/// `validity_status` (a JSON string holding `[{value, status}]`, `status` 1 = validated): per
/// ordered name found in an entry's `value`, whether it is validated.
fn parse_validity_status(v: &Value, names: &[String]) -> Result<HashMap<String, bool>, CaError> {
    let entries = match json_in_string(v) {
        Value::Array(entries) => entries,
        Value::String(s) if s.trim().is_empty() => Vec::new(),
        other => {
            return Err(malformed(
                path::ORDER_INFO,
                &format!(
                    "validity_status should be a list (JSON in a string), got {}",
                    short(&other)
                ),
            ));
        }
    };
    let mut out = HashMap::new();
    for entry in entries {
        let text = entry
            .get("value")
            .and_then(loose_string)
            .unwrap_or_default();
        let done = entry.get("status").and_then(loose_u64) == Some(1);
        if let Some(name) = names.iter().find(|n| names_domain(&text, n)) {
            out.insert(name.clone(), done);
        }
    }
    Ok(out)
}

/// True when the HTML-ish `value` ("域名:a.com<br>验证方式: …") names exactly `name`.
fn names_domain(value: &str, name: &str) -> bool {
    value
        .split("<br>")
        .flat_map(|part| part.rsplit([':', '：']).next())
        .any(|token| token.trim().eq_ignore_ascii_case(name))
}

/// The `check_way` value for a method.
fn dcv_way(method: ValidationMethod) -> &'static str {
    match method {
        ValidationMethod::HttpFile => "FILE",
        ValidationMethod::Dns => "DNS",
    }
}

/// Per ordered name in `validity_status`: whether it is validated, and its method as the entry's
/// text names it ("验证方式: DNS验证" / "文件验证" / "邮箱验证", or the English words); `None` for
/// e-mail or a text not understood.
fn parse_name_methods(
    v: &Value,
    names: &[String],
) -> Result<HashMap<String, (bool, Option<ValidationMethod>)>, CaError> {
    let Value::Array(entries) = json_in_string(v) else {
        return parse_validity_status(v, names)
            .map(|m| m.into_iter().map(|(n, done)| (n, (done, None))).collect());
    };
    let mut out = HashMap::new();
    for entry in entries {
        let text = (entry.get("value").and_then(loose_string)).unwrap_or_default();
        let done = entry.get("status").and_then(loose_u64) == Some(1);
        let Some(name) = names.iter().find(|n| names_domain(&text, n)) else {
            continue;
        };
        out.insert(name.clone(), (done, method_named(&text)));
    }
    Ok(out)
}

/// The method named by the "验证方式: …" (or "method: …") part of a `validity_status` value.
fn method_named(value: &str) -> Option<ValidationMethod> {
    let part = (value.split("<br>")).find(|p| {
        let lower = p.to_ascii_lowercase();
        p.contains("验证方式") || lower.contains("method")
    })?;
    let said = part.rsplit([':', '：']).next()?.to_ascii_lowercase();
    if said.contains("dns") {
        Some(ValidationMethod::Dns)
    } else if said.contains("文件") || said.contains("file") {
        Some(ValidationMethod::HttpFile)
    } else {
        None
    }
}

/// What to publish for each not-yet-validated name, from the order's one set of values.
fn validations(
    names: &[String],
    info: Option<&ValidInfo>,
    validated: &HashMap<String, bool>,
) -> Vec<NameValidation> {
    (names.iter())
        .map(|name| {
            let mut challenges = Vec::new();
            if let Some(info) = info {
                if let (Some(file), Some(content)) = (&info.file_name, &info.file_content) {
                    challenges.push(Challenge::HttpFile {
                        path: format!("{PKI_VALIDATION}{file}"),
                        content: content.clone(),
                    });
                }
                if let (Some(host), Some(value)) = (&info.dns_host, &info.dns_value)
                    && name.parse::<std::net::IpAddr>().is_err()
                {
                    let base = name.strip_prefix("*.").unwrap_or(name);
                    challenges.push(Challenge::DnsRecord {
                        host: format!("{host}.{base}"),
                        record_type: info.dns_type.clone().unwrap_or_else(|| "CNAME".into()),
                        value: value.clone(),
                    });
                }
                if name.starts_with("*.") {
                    challenges.reverse();
                }
            }
            NameValidation {
                name: name.clone(),
                validated: validated.get(name).copied().unwrap_or(false),
                challenges,
            }
        })
        .collect()
}

/// The downloaded certificate, checked like every certificate: leaf and chain parse, the chain is
/// put in order, the leaf covers every ordered name.
fn checked_certificate(
    cert: &str,
    ca_cert: &str,
    names: &[String],
) -> Result<IssuedCertificate, CaError> {
    let fields = ("certificate.cert", "certificate.ca_cert");
    check_downloaded(cert, ca_cert, names, fields)
        .map_err(|detail| malformed(path::CERTIFICATE, &detail))
}

fn check_request(names: &[String], csr_pem: &str) -> Result<(), CaError> {
    if names.is_empty() {
        return Err(CaError::Invalid("an order needs at least one name".into()));
    }
    if let Some(bad) = names
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

/// An id as HowSSL writes them: short, letters, digits, `-`/`_`.
fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn is_dns_text(s: &str) -> bool {
    s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn unsupported(what: &str, id: &OrderId) -> CaError {
    CaError::Unsupported(format!(
        "HowSSL's API has no {what} call; {what} order {id} in the HowSSL console (howssl.com), \
         or order a new certificate with `enc365-nginx renew --force`"
    ))
}

impl CertificateAuthority for HowSsl {
    fn name(&self) -> &'static str {
        "howssl"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            explicit_recheck: true,
            reissue: false,
            cancel: true,
            revoke: false,
        }
    }

    fn create<'a>(&'a self, request: &'a OrderRequest) -> BoxFuture<'a, Result<Created, CaError>> {
        Box::pin(async move {
            // Nothing is drafted that the balance cannot pay for.
            let (product, price) = self.ensure_balance(&request.names).await?;
            let check_id = self
                .create_order(
                    &product.code,
                    price.months,
                    &request.csr_pem,
                    &request.names,
                )
                .await?;
            Ok(Created::Draft(OrderId(check_id)))
        })
    }

    fn commit<'a>(
        &'a self,
        draft: &'a OrderId,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move {
            // The methods are set by `use_methods` once the order id is saved: a failure there
            // must not lose the id of an order that is paid for.
            let (order_id, info) = self.commit_order(&draft.0).await?;
            Ok(Order {
                id: OrderId(order_id),
                names: request.names.clone(),
                state: OrderState::Pending {
                    detail: "committed".into(),
                },
                validations: validations(&request.names, Some(&info), &HashMap::new()),
            })
        })
    }

    /// The balance may have changed since the draft: checked again before money moves.
    fn before_commit<'a>(
        &'a self,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.ensure_balance(&request.names).await.map(drop) })
    }

    fn order_status<'a>(
        &'a self,
        id: &'a OrderId,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move { self.status(&id.0, names).await })
    }

    /// Rate limits are not documented: a status poll every 20 s backing off to 2 min, a
    /// `refreshOrder` at most once a minute per order, and an hour before a run leaves the order
    /// for the next one.
    fn poll_policy(&self) -> PollPolicy {
        PollPolicy {
            interval: Duration::from_secs(20),
            backoff: 1.5,
            max_backoff: 6.0,
            timeout: Duration::from_secs(3600),
            rechecks_per_run: 1,
        }
    }

    fn request_validation<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.refresh(&id.0).await })
    }

    fn use_methods<'a>(
        &'a self,
        id: &'a OrderId,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move {
            let switched = self.set_methods(&id.0, request).await?;
            if !switched.is_empty() {
                tracing::info!(order = %id, names = ?switched, "switched the validation method");
            }
            Ok(())
        })
    }

    fn reissue<'a>(
        &'a self,
        id: &'a OrderId,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        Box::pin(async move { Err(unsupported("reissue", id)) })
    }

    fn cancel<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { self.cancel_order(&id.0).await })
    }

    fn revoke<'a>(&'a self, id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move { Err(unsupported("revoke", id)) })
    }
}

impl AccountApi for HowSsl {
    fn name(&self) -> &'static str {
        "howssl"
    }

    fn register<'a>(
        &'a self,
        _request: &'a RegisterRequest,
    ) -> BoxFuture<'a, Result<account::Registration, CaError>> {
        Box::pin(async move {
            Err(CaError::Unsupported(
                "HowSSL tokens are issued on the HowSSL site, not by an API: run `enc365-nginx \
                 register --provider howssl --token-stdin` with the token"
                    .to_string(),
            ))
        })
    }

    fn products(&self) -> BoxFuture<'_, Result<Vec<account::Product>, CaError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for p in self.product_list().await? {
                for price in &p.prices {
                    out.push(neutral_product(&p, price));
                }
            }
            Ok(out)
        })
    }

    fn account(&self) -> BoxFuture<'_, Result<AccountInfo, CaError>> {
        Box::pin(async move {
            let (email, amount) = self.account_info().await?;
            Ok(AccountInfo {
                balance: Some(amount),
                currency: None,
                user: email,
            })
        })
    }
}

/// One (product, validity) as the provider-neutral product list shows it.
fn neutral_product(p: &HowProduct, price: &Price) -> account::Product {
    let mut provider_fields = Map::new();
    provider_fields.insert("product_code".into(), Value::from(p.code.clone()));
    provider_fields.insert("validity_period".into(), Value::from(price.months));
    provider_fields.insert("price".into(), Value::from(price.price));
    if let Some(list) = price.list_price {
        provider_fields.insert("real_price".into(), Value::from(list));
    }
    provider_fields.insert("domain_type".into(), Value::from(p.domain_type.clone()));
    account::Product {
        id: p.code.clone(),
        title: p.name.clone(),
        class: p.audit_type.to_ascii_uppercase(),
        level: p.audit_type.to_ascii_lowercase(),
        // The order's own price has no column of its own: the term carries it.
        term: format!(
            "{} months, {:.2} {} per order",
            price.months, price.price, price.currency
        ),
        period: price.months.to_string(),
        is_free: price.price == 0.0,
        price_fqdn: price.extra_name,
        price_wildcard: price.extra_wildcard,
        currency: price.currency.clone(),
        provider_fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price() -> Price {
        Price {
            months: 12,
            price: 10.0,
            list_price: None,
            extra_name: 2.0,
            extra_wildcard: 5.0,
            currency: "CNY".into(),
        }
    }

    #[test]
    fn cost_is_the_order_price_plus_each_extra_name_wildcards_apart() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(order_cost(&price(), &names(&["a.test"])), 10.0);
        assert_eq!(
            order_cost(&price(), &names(&["a.test", "www.a.test", "*.a.test"])),
            17.0
        );
    }

    #[test]
    fn a_validity_the_product_does_not_offer_names_what_it_does() {
        let product = HowProduct {
            code: "p".into(),
            name: "P".into(),
            audit_type: "DV".into(),
            domain_type: "1".into(),
            prices: vec![price()],
        };
        assert_eq!(choose_validity(&product, None).expect("default").months, 12);
        let e = choose_validity(&product, Some(24)).expect_err("not offered");
        assert!(e.to_string().contains("validity_period = 24") && e.to_string().contains("12"));
    }

    #[test]
    fn envelope_errors_html_and_strings_are_read() {
        let base = reqwest::Url::parse("http://127.0.0.1:1/").expect("url");
        let e = parse_envelope(
            "x",
            200,
            br#"{"status":false,"msg":"bad token","code":401}"#,
            &base,
        )
        .expect_err("api");
        assert!(
            e.to_string().contains("bad token") && e.to_string().contains("401"),
            "{e}"
        );
        let e =
            parse_envelope("x", 404, b"<!DOCTYPE html><html>404</html>", &base).expect_err("html");
        assert!(
            e.to_string().contains("HTML page") && e.to_string().contains("base_url"),
            "{e}"
        );
        let ok = parse_envelope(
            "x",
            200,
            br#"{"status":"true","code":"200","data":{}}"#,
            &base,
        );
        assert!(ok.is_ok());
        let v =
            Value::from(r#"[{"value":"域名:www.a.test<br>验证方式: 文件验证<br>","status":"1"}]"#);
        let names = vec!["a.test".to_string(), "www.a.test".to_string()];
        let m = parse_validity_status(&v, &names).expect("parsed");
        assert_eq!(m.get("www.a.test"), Some(&true));
        assert_eq!(m.get("a.test"), None);
        let both = Value::from(
            r#"[{"value":"域名:dns.a.test<br>验证方式: 文件验证<br>","status":2},{"value":"域名:*.a.test<br>验证方式: DNS验证<br>","status":2}]"#,
        );
        let names = vec!["dns.a.test".to_string(), "*.a.test".to_string()];
        let m = parse_name_methods(&both, &names).expect("parsed");
        assert_eq!(m["dns.a.test"], (false, Some(ValidationMethod::HttpFile)));
        assert_eq!(m["*.a.test"], (false, Some(ValidationMethod::Dns)));
    }

    #[test]
    fn debug_hides_the_token() {
        let c = HowSsl::new(
            "http://127.0.0.1:9",
            HowSslOptions {
                token: Some(Secret::new("tok-very-secret")),
                ..HowSslOptions::default()
            },
        )
        .expect("client");
        assert!(!format!("{c:?}").contains("tok-very-secret"));
    }
}
