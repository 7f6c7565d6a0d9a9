//! Encryption365's DCV values, derived from the CSR by Sectigo's CSR-hash scheme (providers.md
//! §1.6.3), and the `dcv_info` entry built from them.
//!
//! `md5`/`sha` are the lowercase hex MD5 and SHA-256 of the CSR's DER. The file is
//! `upper(md5).txt` holding `sha CRLF comodoca.com CRLF unique_id`; the CNAME is
//! `_md5[.subdomain]` → `sha[0..32].sha[32..64].unique_id.comodoca.com`. The seed's example CSR
//! reproduces the documented values exactly (see the tests).
//!
//! Inferred, not documented: wildcard names are validated as the name without `*.`; the registrable
//! domain is the last two labels, or three under a short list of two-level public suffixes.

use md5::{Digest as _, Md5};
use serde_json::{Value, json};
use sha2::Sha256;

/// The two digests every DCV value is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrHashes {
    /// Lowercase hex MD5 of the CSR DER.
    pub md5: String,
    /// Lowercase hex SHA-256 of the CSR DER.
    pub sha256: String,
}

impl CsrHashes {
    /// Hashes a CSR's DER bytes.
    pub fn of_der(der: &[u8]) -> CsrHashes {
        CsrHashes {
            md5: hex(&Md5::digest(der)),
            sha256: hex(&Sha256::digest(der)),
        }
    }

    /// The validation file's name: `upper(md5).txt`.
    pub fn file_name(&self) -> String {
        format!("{}.txt", self.md5.to_ascii_uppercase())
    }

    /// The validation file's exact content.
    pub fn file_content(&self, unique_id: &str) -> String {
        format!("{}\r\ncomodoca.com\r\n{unique_id}", self.sha256)
    }

    /// The CNAME target.
    pub fn dns_value(&self, unique_id: &str) -> String {
        format!(
            "{}.{}.{unique_id}.comodoca.com",
            &self.sha256[..32],
            &self.sha256[32..]
        )
    }

    /// The CNAME owner relative to the registrable domain.
    pub fn dns_host(&self, subdomain: Option<&str>) -> String {
        match subdomain {
            Some(sub) => format!("_{}.{sub}", self.md5),
            None => format!("_{}", self.md5),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Two-level public suffixes the simulator knows (enough for tests and demos).
const TWO_LEVEL_SUFFIXES: &[&str] = &[
    "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn", "co.uk", "org.uk", "ac.uk",
    "com.au", "net.au", "co.jp", "ne.jp", "com.hk", "com.tw", "co.nz", "com.br", "co.in",
];

/// The name that is actually validated: a wildcard without its `*.`.
pub fn validation_name(name: &str) -> &str {
    name.strip_prefix("*.").unwrap_or(name)
}

/// Splits a host name into (subdomain, registrable domain).
pub fn split_domain(name: &str) -> (Option<String>, String) {
    let labels: Vec<&str> = name.split('.').collect();
    let keep = if labels.len() >= 3
        && TWO_LEVEL_SUFFIXES.contains(&labels[labels.len() - 2..].join(".").as_str())
    {
        3
    } else {
        2
    };
    if labels.len() <= keep {
        return (None, name.to_string());
    }
    let cut = labels.len() - keep;
    (Some(labels[..cut].join(".")), labels[cut..].join("."))
}

/// The `dcv_info` entry for one ordered name.
pub fn entry(name: &str, hashes: &CsrHashes, unique_id: &str, status: &str) -> Value {
    let target = validation_name(name);
    let is_ip = target.parse::<std::net::IpAddr>().is_ok();
    let file_name = hashes.file_name();
    let content = hashes.file_content(unique_id);
    let url_host = if target.contains(':') {
        format!("[{target}]")
    } else {
        target.to_string()
    };
    let (subdomain, topdomain) = if is_ip {
        (None, target.to_string())
    } else {
        split_domain(target)
    };
    let mut emails = Vec::new();
    if !is_ip {
        for host in std::iter::once(topdomain.as_str()).chain(subdomain.as_ref().map(|_| target)) {
            for mailbox in [
                "admin",
                "administrator",
                "hostmaster",
                "postmaster",
                "webmaster",
            ] {
                emails.push(format!("{mailbox}@{host}"));
            }
        }
    }
    let (dns_host, dns_value) = if is_ip {
        (String::new(), String::new())
    } else {
        (
            hashes.dns_host(subdomain.as_deref()),
            hashes.dns_value(unique_id),
        )
    };
    json!({
        "domain": name,
        "emails": emails,
        "method": "http",
        "status": status,
        "domainmd5hash": hex(&Md5::digest(name.as_bytes())),
        "isip": is_ip,
        "subdomain": subdomain,
        "topdomain": topdomain,
        "dns_host": dns_host,
        "dns_type": "CNAME",
        "dns_value": dns_value,
        "http_verifylink": format!("http://{url_host}/.well-known/pki-validation/{file_name}"),
        "http_filename": file_name,
        "http_filecontent": content,
        "https_verifylink": format!("https://{url_host}/.well-known/pki-validation/{file_name}"),
        "https_filename": file_name,
        "https_filecontent": content,
        "email": Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_split_like_the_docs_example() {
        assert_eq!(
            split_domain("api.trustocean.com"),
            (Some("api".into()), "trustocean.com".into())
        );
        assert_eq!(
            split_domain("trustocean.com"),
            (None, "trustocean.com".into())
        );
        assert_eq!(
            split_domain("a.b.example.com.cn"),
            (Some("a.b".into()), "example.com.cn".into())
        );
    }

    #[test]
    fn domain_md5_matches_the_docs_example() {
        let h = CsrHashes {
            md5: "0".repeat(32),
            sha256: "0".repeat(64),
        };
        let e = entry("api.trustocean.com", &h, "cab1", "needverification");
        assert_eq!(e["domainmd5hash"], "3e9a833f8eaf35c3f4831263f2fcdf83");
        let e = entry("trustocean.com", &h, "cab1", "needverification");
        assert_eq!(e["domainmd5hash"], "f7781fc6f4b6a396532df4e70aee94e7");
    }
}
