//! The Huawei SCM mode's data: the purchased-certificate inventory ([`Stock`] → [`ScmCert`]), the
//! credentials requests must be signed with ([`ScmSimOptions`]), the fault switches
//! ([`ScmFaults`]), and the JSON shapes of providers.md §3.5 (CertificateDetail, ShowCertificate).
//!
//! Not here: HTTP (that is [`super::scm`]).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A kind of certificate the account holds (or buys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stock {
    /// `type`: `DV_SSL_CERT`, `OV_SSL_CERT`, …
    pub cert_type: String,
    /// `domain_type`: `SINGLE_DOMAIN`, `WILDCARD`, `MULTI_DOMAIN`.
    pub domain_type: String,
    /// `domain_count`.
    pub domain_count: u64,
    /// `wildcard_count`.
    pub wildcard_count: u64,
    /// `brand`.
    pub brand: String,
    /// `validity_period` in months.
    pub months: u64,
}

impl Default for Stock {
    fn default() -> Stock {
        Stock {
            cert_type: "DV_SSL_CERT".into(),
            domain_type: "MULTI_DOMAIN".into(),
            domain_count: 2,
            wildcard_count: 0,
            brand: "GEOTRUST".into(),
            months: 12,
        }
    }
}

impl Stock {
    /// `TYPE:DOMAIN_TYPE:COUNT:WILDCARDS` (as `--scm-stock` takes it).
    pub fn parse(spec: &str) -> Result<Stock, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let [cert_type, domain_type, count, wild] = parts[..] else {
            return Err(format!(
                "{spec:?}: expected TYPE:DOMAIN_TYPE:COUNT:WILDCARDS, e.g. \
                 DV_SSL_CERT:MULTI_DOMAIN:2:1"
            ));
        };
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{spec:?}: {s} is not a number"))
        };
        Ok(Stock {
            cert_type: cert_type.into(),
            domain_type: domain_type.into(),
            domain_count: number(count)?,
            wildcard_count: number(wild)?,
            ..Stock::default()
        })
    }
}

/// What the SCM mode knows at start.
#[derive(Debug, Clone, Default)]
pub struct ScmSimOptions {
    /// The access key requests must be signed with.
    pub ak: String,
    /// Its secret key.
    pub sk: String,
    /// The project id the v2 paths must carry.
    pub project_id: String,
    /// The certificates the account has bought, unused (`PAID`).
    pub inventory: Vec<Stock>,
}

/// Switches that make the SCM mode misbehave. Operations are named `list`, `show`, `buy`,
/// `apply`, `export`, `cancel`, `revoke`, `domain-verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScmFaults {
    /// Answer these operations 400 `{"error_code":"SCM.0400","error_msg":<message>}`, doing
    /// nothing.
    pub errors: BTreeMap<String, String>,
    /// Answer these operations with an HTML 502 page, after doing the work.
    pub html_502: Vec<String>,
    /// Delay answers to these operations by [`ScmFaults::latency_ms`], after doing the work.
    pub latency_ops: Vec<String>,
    /// See [`ScmFaults::latency_ops`].
    pub latency_ms: u64,
    /// Issue this many seconds after every name is validated.
    pub issuance_delay_secs: u64,
    /// Applications whose names all validate end `UNPASSED` instead of being issued.
    pub reject_applications: bool,
    /// Refuse FILE applications of DV certificates too (the API page's stricter reading).
    pub refuse_file: bool,
    /// Leave `authentification` out of ShowCertificate (as for older certificates): the records
    /// are then only in the v2 `domain-verify` answer.
    pub hide_authentification: bool,
}

/// One certificate of the account.
#[derive(Debug, Clone)]
pub struct ScmCert {
    /// `id` (`scs` + 13 digits).
    pub id: String,
    /// `order_id`.
    pub order_id: String,
    /// What was bought.
    pub stock: Stock,
    /// `status`.
    pub status: String,
    /// `domain` then `sans`, once applied.
    pub names: Vec<String>,
    /// The CSR, DER.
    pub csr_der: Vec<u8>,
    /// `domain_method`: `FILE` or `DNS`.
    pub method: String,
    /// The file name under `/.well-known/pki-validation/` (FILE).
    pub file_name: String,
    /// The value of the file and of the TXT records.
    pub token: String,
    /// The names validated so far.
    pub validated: Vec<String>,
    /// When every name was validated.
    pub validated_at: Option<Instant>,
    /// Leaf and chain, once issued.
    pub issued: Option<(String, String)>,
    /// `not_after`, once issued (`YYYY-MM-DD HH:MM:SS.0`).
    pub not_after: String,
    /// The applicant block of the application.
    pub application: Value,
    /// Why it was revoked.
    pub revoke_reason: String,
    /// Whether the application asked SCM to push its DNS records (`auto_dns_auth`).
    pub auto_dns_auth: bool,
}

impl ScmCert {
    /// An unused certificate of `stock`.
    pub fn bought(id: String, order_id: String, stock: Stock) -> ScmCert {
        ScmCert {
            id,
            order_id,
            stock,
            status: "PAID".into(),
            names: Vec::new(),
            csr_der: Vec::new(),
            method: String::new(),
            file_name: String::new(),
            token: String::new(),
            validated: Vec::new(),
            validated_at: None,
            issued: None,
            not_after: String::new(),
            application: json!({}),
            revoke_reason: String::new(),
            auto_dns_auth: false,
        }
    }

    /// The `authentification[]` entries while the application is checked.
    pub fn authentification(&self) -> Vec<Value> {
        if self.status != "CHECKING" {
            return Vec::new();
        }
        (self.names.iter())
            .filter(|n| !self.validated.contains(n))
            .map(|n| {
                if self.method == "FILE" {
                    json!({"domain": n, "record_type": "FILE",
                        "record_name": format!("/.well-known/pki-validation/{}", self.file_name),
                        "record_value": self.token})
                } else {
                    json!({"domain": n, "record_type": "TXT",
                        "record_name": format!("_dnsauth.{}", n.strip_prefix("*.").unwrap_or(n)),
                        "record_value": self.token})
                }
            })
            .collect()
    }

    /// A `CertificateDetail` (list item).
    pub fn detail(&self) -> Value {
        json!({
            "id": self.id, "name": format!("scm-{}", self.id), "domain": self.names.first().cloned().unwrap_or_default(),
            "sans": self.names.iter().skip(1).cloned().collect::<Vec<_>>().join(";"),
            "signature_algorithm": "SHA256WITHRSA", "deploy_support": true,
            "type": self.stock.cert_type, "brand": self.stock.brand, "expire_time": self.not_after,
            "domain_type": self.stock.domain_type, "validity_period": self.stock.months,
            "status": self.status, "domain_count": self.stock.domain_count,
            "wildcard_count": self.stock.wildcard_count, "description": "",
            "domain_id": "sim-domain-id", "enterprise_project_id": "0",
        })
    }

    /// The ShowCertificate answer.
    pub fn show(&self) -> Value {
        json!({
            "id": self.id, "status": self.status, "order_id": self.order_id,
            "name": format!("scm-{}", self.id), "type": self.stock.cert_type,
            "brand": self.stock.brand, "push_support": "ON", "revoke_reason": self.revoke_reason,
            "signature_algorithm": "SHA256WITHRSA", "issue_time": "", "not_before": "",
            "not_after": self.not_after, "validity_period": self.stock.months,
            "validation_method": self.method, "domain_type": self.stock.domain_type,
            "multi_domain_type": "", "domain": self.names.first().cloned().unwrap_or_default(),
            "sans": self.names.iter().skip(1).cloned().collect::<Vec<_>>().join(";"),
            "domain_count": self.stock.domain_count, "wildcard_count": self.stock.wildcard_count,
            "fingerprint": "", "shared": false, "description": "", "enterprise_project_id": "0",
            "application_info": self.application,
            "authentification": self.authentification(),
        })
    }

    /// Why the names of an application do not fit this certificate, if they do not.
    pub fn misfit(&self, names: &[String]) -> Option<String> {
        let single = matches!(
            self.stock.domain_type.as_str(),
            "SINGLE_DOMAIN" | "WILDCARD"
        );
        let count = if single { 1 } else { self.stock.domain_count };
        let wild = names.iter().filter(|n| n.starts_with("*.")).count() as u64;
        let allowed_wild = match self.stock.domain_type.as_str() {
            "SINGLE_DOMAIN" => 0,
            "WILDCARD" => 1,
            _ => self.stock.wildcard_count,
        };
        if names.len() as u64 > count || wild > allowed_wild {
            return Some(format!(
                "the certificate holds {count} domain(s) with {allowed_wild} wildcard(s); the \
                 application has {} with {wild}",
                names.len()
            ));
        }
        None
    }
}

/// The SCM mode's state.
#[derive(Debug, Default)]
pub(crate) struct ScmState {
    /// Every certificate, by id.
    pub certs: BTreeMap<String, ScmCert>,
    /// The faults.
    pub faults: ScmFaults,
    /// Requests per operation (`buy`, `apply`, …).
    pub counts: BTreeMap<String, u64>,
}

impl ScmState {
    /// Adds an unused certificate of `stock`; its id.
    pub fn add(&mut self, stock: Stock) -> String {
        let id = loop {
            let id = format!("scs{:013}", rand::random::<u64>() % 10_000_000_000_000);
            if !self.certs.contains_key(&id) {
                break id;
            }
        };
        let order = format!("CS{:015}", rand::random::<u64>() % 1_000_000_000_000_000);
        self.certs
            .insert(id.clone(), ScmCert::bought(id.clone(), order, stock));
        id
    }
}
