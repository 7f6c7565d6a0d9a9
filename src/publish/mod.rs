//! Where validation goes. A CA says, per name, what must be published ([`Challenge`]: an HTTP
//! file at a URL path, or a DNS record); the pipeline picks the challenge for the method chosen
//! for the name ([`method_for`]) and hands it to the [`Publisher`] for that method: [`http`]
//! (files in a webroot, or under a temporary nginx location) or [`dns`] (a record published by
//! the `[dns]` publisher, checked on the zone's authoritative servers).
//!
//! Not here: planning which nginx block serves a name ([`crate::dcv`]) or talking to the CA.

pub mod dns;
pub mod http;

use std::path::PathBuf;

use crate::ca::{Challenge, NameValidation, ValidationMethod};

/// What was put where for a site, so it can be removed once the order is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Directories created for them (removed when empty).
    pub dirs: Vec<PathBuf>,
    /// DNS records published.
    pub records: Vec<dns::DnsRecord>,
}

/// Publishes what a CA asks for, one way.
pub trait Publisher {
    /// The method this publisher proves names by.
    fn method(&self) -> ValidationMethod;

    /// Publishes `challenge` for `name` and checks it is visible the way the CA will look. What
    /// it wrote is added to `out` even when the check then fails, so it can be removed.
    fn publish(&self, name: &str, challenge: &Challenge, out: &mut Published)
    -> anyhow::Result<()>;
}

/// The method a name needs on its own: DNS for a wildcard (no CA proves one by file), else
/// HTTP file.
pub fn method_for(name: &str) -> ValidationMethod {
    if name.starts_with("*.") {
        ValidationMethod::Dns
    } else {
        ValidationMethod::HttpFile
    }
}

/// The method chosen for a name of an order whose DNS-proven names are `dns_names` (chosen at
/// preflight: wildcards, `validation = "dns"`, and names HTTP could not prove).
pub fn method_in(name: &str, dns_names: &[String]) -> ValidationMethod {
    if dns_names.iter().any(|n| n == name) {
        ValidationMethod::Dns
    } else {
        method_for(name)
    }
}

/// The method chosen for `name` of site `site` before any check, and why: DNS for wildcards and
/// where `[dns]` says so (`validation = "dns"`, `dns_sites`), else HTTP file (with DNS as the
/// fallback when the HTTP preflight fails and DNS is configured).
pub fn choose(
    name: &str,
    site: &str,
    dns: Option<&crate::config::DnsSettings>,
) -> (ValidationMethod, &'static str) {
    let dns = dns.filter(|d| d.configured());
    match dns {
        _ if name.starts_with("*.") => (
            ValidationMethod::Dns,
            "a wildcard: only DNS validation can prove it",
        ),
        Some(d) if d.validation == crate::config::ValidationChoice::Dns => {
            (ValidationMethod::Dns, "[dns] validation = \"dns\"")
        }
        Some(d) if d.dns_sites.iter().any(|s| s == site) => {
            (ValidationMethod::Dns, "[dns] dns_sites lists the site")
        }
        Some(_) => (
            ValidationMethod::HttpFile,
            "this nginx serves it on port 80 (DNS if the HTTP preflight fails)",
        ),
        None => (
            ValidationMethod::HttpFile,
            "this nginx serves it on port 80",
        ),
    }
}

/// The first challenge the CA offers for a name by `method`.
pub fn challenge_for(validation: &NameValidation, method: ValidationMethod) -> Option<&Challenge> {
    validation.challenges.iter().find(|c| c.method() == method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DnsSettings;

    #[test]
    fn the_method_follows_the_name_and_the_dns_table() {
        let none = choose("*.shop.test", "shop.test", None);
        assert_eq!(none.0, ValidationMethod::Dns);
        assert_eq!(
            choose("shop.test", "shop.test", None).0,
            ValidationMethod::HttpFile
        );
        let auto: DnsSettings =
            toml::from_str("provider = \"hook\"\nhook = \"/bin/true\"").unwrap();
        let (method, why) = choose("shop.test", "shop.test", Some(&auto));
        assert_eq!(method, ValidationMethod::HttpFile);
        assert!(why.contains("DNS if the HTTP preflight fails"), "{why}");
        let listed: DnsSettings = toml::from_str(
            "provider = \"hook\"\nhook = \"/bin/true\"\ndns_sites = [\"shop.test\"]",
        )
        .unwrap();
        assert_eq!(
            choose("www.shop.test", "shop.test", Some(&listed)).0,
            ValidationMethod::Dns
        );
        assert_eq!(
            choose("app.test", "app.test", Some(&listed)).0,
            ValidationMethod::HttpFile
        );
        let all: DnsSettings =
            toml::from_str("provider = \"hook\"\nhook = \"/bin/true\"\nvalidation = \"dns\"")
                .unwrap();
        assert_eq!(
            choose("app.test", "app.test", Some(&all)).1,
            "[dns] validation = \"dns\""
        );
        assert_eq!(
            method_in("app.test", &["app.test".into()]),
            ValidationMethod::Dns
        );
        assert_eq!(method_in("app.test", &[]), ValidationMethod::HttpFile);
    }
}
