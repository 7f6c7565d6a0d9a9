//! Which purchased Huawei SCM certificate a site can use: the account's certificates as the list
//! call describes them ([`ScmCertificate`]), what a site needs ([`Fit`]: how many names, how many
//! wildcards), the best unused one ([`best`]), the check of one named in config
//! ([`check_configured`]), the message saying what to buy when none fits ([`nothing_fits`]), and
//! the purchase body ([`buy_body`]), and the one validation method an application may use
//! ([`domain_method`]).
//!
//! Not here: any request (that is [`super::huawei_scm`]).

use serde_json::{Map, Value, json};

use super::account::Product;
use super::envelope::{loose_string, loose_u64};
use super::{CaError, OrderRequest, ValidationMethod};
use crate::config::HuaweiBuy;

/// One certificate of the account (a `CertificateDetail` of the list, or ShowCertificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmCertificate {
    /// `id` (`scs…`).
    pub id: String,
    /// `status` (`PAID` = bought, not applied to yet).
    pub status: String,
    /// `type` (`DV_SSL_CERT`, `OV_SSL_CERT`, …).
    pub cert_type: String,
    /// `brand` (`GEOTRUST`, …).
    pub brand: String,
    /// `domain_type`: `SINGLE_DOMAIN`, `WILDCARD`, `MULTI_DOMAIN`.
    pub domain_type: String,
    /// `domain_count`: how many names it may hold.
    pub domain_count: u64,
    /// `wildcard_count`: how many of them may be wildcards.
    pub wildcard_count: u64,
    /// `validity_period` in months.
    pub validity_months: u64,
    /// `expire_time` (or `not_after`), as Huawei writes it.
    pub expires: String,
    /// `domain`, once applied.
    pub domain: String,
}

impl ScmCertificate {
    /// Reads one certificate; `id` and `status` are required.
    pub fn from_json(endpoint: &str, v: &Value) -> Result<ScmCertificate, CaError> {
        let text = |key: &str| v.get(key).and_then(loose_string).unwrap_or_default();
        let number = |key: &str| v.get(key).and_then(loose_u64).unwrap_or(0);
        let id = text("id");
        let status = text("status");
        if id.is_empty() || status.is_empty() {
            return Err(CaError::Malformed {
                endpoint: endpoint.to_string(),
                detail: "a certificate without id or status".into(),
            });
        }
        let domain_type = text("domain_type");
        // A single-name certificate may not say its counts.
        let domain_count = number("domain_count").max(1);
        let wildcard_count = match (number("wildcard_count"), domain_type.as_str()) {
            (0, "WILDCARD") => 1,
            (n, _) => n,
        };
        let expires = match text("expire_time") {
            e if e.is_empty() => text("not_after"),
            e => e,
        };
        Ok(ScmCertificate {
            id,
            status,
            cert_type: text("type"),
            brand: text("brand"),
            domain_type,
            domain_count,
            wildcard_count,
            validity_months: number("validity_period"),
            expires,
            domain: text("domain"),
        })
    }

    /// True when the certificate can hold the site's names.
    pub fn fits(&self, fit: &Fit) -> bool {
        let single = matches!(self.domain_type.as_str(), "SINGLE_DOMAIN" | "WILDCARD");
        let count = if single { 1 } else { self.domain_count };
        let wildcards = if self.domain_type == "SINGLE_DOMAIN" {
            0
        } else {
            self.wildcard_count
        };
        fit.names <= count && fit.wildcards <= wildcards
    }

    /// One line for `account`.
    pub fn summary(&self) -> String {
        format!(
            "{} {} {} {} name(s) {}",
            self.id, self.status, self.cert_type, self.domain_count, self.domain_type
        )
    }

    /// The certificate as the provider-neutral product list shows it.
    pub fn as_product(&self) -> Product {
        let level = self
            .cert_type
            .split('_')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut fields = Map::new();
        fields.insert("certificate_id".into(), Value::from(self.id.clone()));
        fields.insert("status".into(), Value::from(self.status.clone()));
        fields.insert("type".into(), Value::from(self.cert_type.clone()));
        fields.insert("domain_type".into(), Value::from(self.domain_type.clone()));
        fields.insert("domain_count".into(), Value::from(self.domain_count));
        fields.insert("wildcard_count".into(), Value::from(self.wildcard_count));
        fields.insert("expire_time".into(), Value::from(self.expires.clone()));
        fields.insert("domain".into(), Value::from(self.domain.clone()));
        let expires = if self.expires.is_empty() {
            String::new()
        } else {
            format!(", expires {}", self.expires)
        };
        Product {
            id: self.id.clone(),
            title: format!(
                "{} {} {} ({} name(s), {} wildcard)",
                self.brand,
                self.cert_type,
                self.domain_type,
                self.domain_count,
                self.wildcard_count
            ),
            class: level.clone(),
            level: level.to_ascii_lowercase(),
            term: format!("{} months, {}{expires}", self.validity_months, self.status),
            period: self.validity_months.to_string(),
            is_free: false,
            price_fqdn: 0.0,
            price_wildcard: 0.0,
            currency: String::new(),
            provider_fields: fields,
        }
    }
}

/// What a site needs of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// How many names (wildcards included).
    pub names: u64,
    /// How many of them are wildcards.
    pub wildcards: u64,
}

impl Fit {
    /// The needs of `names`.
    pub fn of(names: &[String]) -> Fit {
        Fit {
            names: names.len() as u64,
            wildcards: names.iter().filter(|n| n.starts_with("*.")).count() as u64,
        }
    }

    /// The `domain_type` a purchase for this site should have.
    pub fn domain_type(&self) -> &'static str {
        match (self.names, self.wildcards) {
            (1, 0) => "SINGLE_DOMAIN",
            (1, 1) => "WILDCARD",
            _ => "MULTI_DOMAIN",
        }
    }
}

/// The smallest unused (`PAID`) certificate that fits, DV before OV/EV, never `exclude`.
pub fn best<'a>(
    all: &'a [ScmCertificate],
    fit: &Fit,
    exclude: Option<&str>,
) -> Option<&'a ScmCertificate> {
    (all.iter())
        .filter(|c| c.status == "PAID" && c.fits(fit) && Some(c.id.as_str()) != exclude)
        .min_by_key(|c| (!c.cert_type.starts_with("DV"), c.domain_count, c.id.clone()))
}

/// The configured certificate, if unused and big enough; else why not.
pub fn check_configured(cert: &ScmCertificate, fit: &Fit) -> Result<ScmCertificate, CaError> {
    if cert.status != "PAID" {
        return Err(CaError::Invalid(format!(
            "certificate_id {} under [huawei_scm] is {}, not unused (PAID): SCM applies only \
             once to a purchased certificate. Remove certificate_id to let the tool choose an \
             unused one, or name another",
            cert.id, cert.status
        )));
    }
    if !cert.fits(fit) {
        return Err(CaError::Invalid(format!(
            "certificate_id {} under [huawei_scm] ({}, {} name(s), {} wildcard) cannot hold {} \
             name(s) with {} wildcard(s); nothing was applied",
            cert.id,
            cert.domain_type,
            cert.domain_count,
            cert.wildcard_count,
            fit.names,
            fit.wildcards
        )));
    }
    Ok(cert.clone())
}

/// The message when no unused certificate fits: what to buy, and what the account holds.
pub fn nothing_fits(all: &[ScmCertificate], fit: &Fit) -> String {
    let unused: Vec<String> = (all.iter())
        .filter(|c| c.status == "PAID")
        .map(ScmCertificate::summary)
        .collect();
    let held = if unused.is_empty() {
        "the account holds no unused certificate".to_string()
    } else {
        format!(
            "its unused certificates are too small: {}",
            unused.join("; ")
        )
    };
    let wildcards = if fit.wildcards > 0 {
        format!(" including {} wildcard(s)", fit.wildcards)
    } else {
        String::new()
    };
    format!(
        "no purchased Huawei SCM certificate fits {} name(s){wildcards} ({held}); nothing was \
         applied. Buy a DV certificate of type {} for at least {} name(s){wildcards} in the SCM \
         console, or let the tool buy one by adding [huawei_scm.buy] (cert_brand, cert_type, \
         effective_time) to the config",
        fit.names,
        fit.domain_type(),
        fit.names
    )
}

/// The body of `POST /v3/scm/certificates/buy` for a site of `fit`.
pub fn buy_body(buy: &HuaweiBuy, fit: &Fit) -> Value {
    let domain_type = buy
        .domain_type
        .clone()
        .unwrap_or_else(|| fit.domain_type().to_string());
    let numbers = buy
        .domain_numbers
        .map_or(fit.names, u64::from)
        .max(fit.names);
    let mut body = json!({
        "cert_brand": buy.cert_brand.clone().unwrap_or_else(|| "GEOTRUST".into()),
        "cert_type": buy.cert_type.clone().unwrap_or_else(|| "DV_SSL_CERT".into()),
        "domain_type": domain_type,
        "effective_time": buy.effective_time.unwrap_or(1),
        "domain_numbers": numbers,
        "order_number": 1,
        "agree_privacy_protection": true,
        "is_auto_pay": true,
    });
    if domain_type == "MULTI_DOMAIN" {
        body["primary_domain_type"] = json!(if fit.wildcards > 0 {
            "WILDCARD"
        } else {
            "SINGLE_DOMAIN"
        });
        body["wildcard_domain_number"] = json!(fit.wildcards);
        body["single_domain_number"] = json!(numbers - fit.wildcards);
    }
    body
}

/// The one `domain_method` of an application: FILE when every name is proven by HTTP file and
/// the certificate may use it (DV or IP, no wildcard), DNS when every name is proven by DNS.
pub fn domain_method(request: &OrderRequest, cert_type: &str) -> Result<&'static str, CaError> {
    let by_dns: Vec<&String> = (request.names.iter())
        .filter(|n| request.method(n) == ValidationMethod::Dns)
        .collect();
    let by_file: Vec<&String> = (request.names.iter())
        .filter(|n| request.method(n) == ValidationMethod::HttpFile)
        .collect();
    let wildcard = request.names.iter().any(|n| n.starts_with("*."));
    let ip = request
        .names
        .iter()
        .any(|n| n.parse::<std::net::IpAddr>().is_ok());
    if by_file.is_empty() {
        if ip {
            return Err(CaError::Invalid(
                "Huawei SCM proves IP addresses by file only; validate this site by HTTP".into(),
            ));
        }
        return Ok("DNS");
    }
    if !by_dns.is_empty() || wildcard {
        return Err(CaError::Invalid(format!(
            "Huawei SCM takes one validation method per certificate, and {} must be proven by \
             DNS while {} would be proven by file; set validation = \"dns\" under [dns] (or list \
             the site in dns_sites) so every name is proven by DNS. Nothing was bought or applied",
            list_or(&by_dns, "the wildcard"),
            by_file
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !cert_type.starts_with("DV") && !ip {
        return Err(CaError::Invalid(format!(
            "Huawei SCM proves {cert_type} certificates by DNS only (file validation is for DV \
             and IP certificates); configure [dns] with validation = \"dns\". Nothing was applied"
        )));
    }
    Ok("FILE")
}

fn list_or(names: &[&String], empty: &str) -> String {
    if names.is_empty() {
        empty.to_string()
    } else {
        names
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(id: &str, status: &str, kind: &str, count: u64, wild: u64) -> ScmCertificate {
        ScmCertificate {
            id: id.into(),
            status: status.into(),
            cert_type: "DV_SSL_CERT".into(),
            brand: "GEOTRUST".into(),
            domain_type: kind.into(),
            domain_count: count,
            wildcard_count: wild,
            validity_months: 12,
            expires: String::new(),
            domain: String::new(),
        }
    }

    #[test]
    fn the_smallest_unused_certificate_that_fits_is_chosen() {
        let all = vec![
            cert("scs1", "ISSUED", "MULTI_DOMAIN", 5, 0),
            cert("scs2", "PAID", "MULTI_DOMAIN", 5, 0),
            cert("scs3", "PAID", "MULTI_DOMAIN", 2, 0),
            cert("scs4", "PAID", "SINGLE_DOMAIN", 1, 0),
            cert("scs5", "PAID", "MULTI_DOMAIN", 2, 1),
        ];
        let two = Fit::of(&["a.test".into(), "www.a.test".into()]);
        assert_eq!(best(&all, &two, None).map(|c| c.id.as_str()), Some("scs3"));
        assert_eq!(
            best(&all, &two, Some("scs3")).map(|c| c.id.as_str()),
            Some("scs5")
        );
        let wild = Fit::of(&["*.a.test".into(), "a.test".into()]);
        assert_eq!(best(&all, &wild, None).map(|c| c.id.as_str()), Some("scs5"));
        let three = Fit::of(&["a".into(), "b".into(), "*.c".into(), "*.d".into()]);
        assert!(best(&all, &three, None).is_none());
        let m = nothing_fits(&all, &three);
        assert!(
            m.contains("MULTI_DOMAIN") && m.contains("2 wildcard"),
            "{m}"
        );
    }

    fn request(names: &[&str], dns: &[&str]) -> OrderRequest {
        OrderRequest {
            product: String::new(),
            names: names.iter().map(|s| s.to_string()).collect(),
            csr_pem: String::new(),
            period: None,
            renews: None,
            existing_id: None,
            methods: (dns.iter())
                .map(|n| (n.to_string(), ValidationMethod::Dns))
                .collect(),
        }
    }

    #[test]
    fn one_method_per_application_file_only_for_dv_without_wildcards() {
        assert_eq!(
            domain_method(&request(&["a.test"], &[]), "DV_SSL_CERT").unwrap(),
            "FILE"
        );
        let both = ["*.a.test", "a.test"];
        assert_eq!(
            domain_method(&request(&both, &both), "DV_SSL_CERT").unwrap(),
            "DNS"
        );
        let e = domain_method(&request(&both, &["*.a.test"]), "DV_SSL_CERT").unwrap_err();
        assert!(e.to_string().contains("validation = \"dns\""), "{e}");
        let e = domain_method(&request(&["a.test"], &[]), "OV_SSL_CERT").unwrap_err();
        assert!(e.to_string().contains("DNS only"), "{e}");
    }
}
