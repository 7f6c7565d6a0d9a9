//! Host names from nginx's `server_name`: which of them a public CA can certify, and in what form.
//!
//! nginx accepts many things as a server name that are not names a certificate can carry: regexes
//! (`~^(?<sub>.+)\.example\.com$`), the catch-all `_`, `localhost`, the empty name `""`, names with
//! a port, trailing wildcards (`example.*`), `$hostname`. Each of those is kept with the reason it is
//! left out. What remains is lower-cased, turned into punycode A-labels when it is an IDN
//! (`例子.test` → `xn--fsqu00a.test`), de-duplicated, and marked when it is a wildcard (which only DNS
//! validation can prove). The leading-dot form `.example.com` means `example.com` and
//! `*.example.com`, as in nginx.
//!
//! Pure functions on strings: no nginx types, no CA types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// One server name, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Name {
    /// The name to order (lower-case A-labels) when certifiable; otherwise the name as written.
    pub name: String,
    /// Whether a public CA can issue a certificate for it.
    pub certifiable: bool,
    /// A wildcard (`*.example.com`): certifiable, but only through DNS validation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wildcard: bool,
    /// Why the name is not certifiable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Name {
    fn certifiable(name: String, wildcard: bool) -> Name {
        Name {
            name,
            certifiable: true,
            wildcard,
            reason: None,
        }
    }

    fn not(name: &str, reason: impl Into<String>) -> Name {
        Name {
            name: name.to_string(),
            certifiable: false,
            wildcard: false,
            reason: Some(reason.into()),
        }
    }

    /// Whether this is an IP address rather than a DNS name.
    pub fn is_ip(&self) -> bool {
        self.name.parse::<IpAddr>().is_ok()
    }
}

/// Classifies every `server_name` value of a server block, in order, without duplicates.
pub fn classify_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Name> {
    let mut out: Vec<Name> = Vec::new();
    for value in values {
        classify_each(value, |name| {
            if !out.iter().any(|n| n.name == name.name) {
                out.push(name);
            }
        });
    }
    out
}

/// Classifies one `server_name` value as nginx sees it (quotes removed). A leading-dot name yields
/// two entries (the apex and its wildcard); every other value yields one.
pub fn classify(raw: &str) -> Vec<Name> {
    let mut out = Vec::with_capacity(1);
    classify_each(raw, |name| out.push(name));
    out
}

/// [`classify`], each entry handed to `each` (no list per value: a 10,000-site host has some
/// 50,000 names).
fn classify_each(raw: &str, mut each: impl FnMut(Name)) {
    if raw.is_empty() {
        return each(Name::not(raw, "empty name"));
    }
    if raw.starts_with('~') {
        return each(Name::not(raw, "regex"));
    }
    if raw.contains('$') {
        return each(Name::not(
            raw,
            "variable (nginx substitutes it at run time)",
        ));
    }
    if let Some(apex) = raw.strip_prefix('.') {
        let mut both = classify_one(raw, apex);
        if both.certifiable {
            let wildcard = classify_one(raw, &format!("*.{apex}"));
            each(both);
            return each(wildcard);
        }
        both.name = raw.to_string();
        return each(both);
    }
    each(classify_one(raw, raw))
}

/// Classifies `name` (which is `raw`, or derived from it); reasons quote `raw`.
fn classify_one(raw: &str, name: &str) -> Name {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let bracketed = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
    if let Ok(ip) = bracketed.unwrap_or(trimmed).parse::<IpAddr>() {
        return classify_ip(raw, ip);
    }
    if trimmed.contains(':') {
        return Name::not(raw, "has a port (server_name takes host names only)");
    }
    if trimmed == "_" {
        return Name::not(raw, "catch-all placeholder, not a host name");
    }
    let (wildcard, base) = match trimmed.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, trimmed),
    };
    if base.contains('*') {
        let reason = if base.ends_with(".*") || base == "*" {
            "ends in a wildcard (example.*), which no certificate can carry"
        } else {
            "wildcard not in the leftmost label"
        };
        return Name::not(raw, reason);
    }
    let ascii = if base.is_ascii() {
        base.to_ascii_lowercase()
    } else {
        match idna::domain_to_ascii(base) {
            Ok(a) => a,
            Err(_) => return Name::not(raw, "not a valid internationalized domain name"),
        }
    };
    if ascii == "localhost" || ascii.ends_with(".localhost") || ascii == "localhost.localdomain" {
        return Name::not(raw, "localhost");
    }
    if let Err(reason) = check_hostname(&ascii) {
        return Name::not(raw, reason);
    }
    let name = if wildcard {
        format!("*.{ascii}")
    } else {
        ascii
    };
    Name::certifiable(name, wildcard)
}

fn classify_ip(raw: &str, ip: IpAddr) -> Name {
    let public = match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    };
    if public {
        Name::certifiable(ip.to_string(), false)
    } else {
        Name::not(
            raw,
            "private or reserved IP address (a public CA cannot certify it)",
        )
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (64..128).contains(&o[1])))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// Checks an ASCII, lower-case DNS name against the rules a CA applies (LDH labels of 1–63
/// characters, at most 253 in all, at least two labels, a non-numeric top-level label).
fn check_hostname(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("longer than 253 characters".to_string());
    }
    if !name.contains('.') {
        return Err("not a fully qualified domain name (no dot)".to_string());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("has an empty label (two dots in a row)".to_string());
        }
        if label.len() > 63 {
            return Err("has a label longer than 63 characters".to_string());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "contains {c:?}, which is not allowed in a host name"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with \"-\"".to_string());
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("has a numeric top-level label".to_string());
    }
    Ok(())
}

/// Whether a certificate name (`example.com` or `*.example.com`) covers `name`, as TLS clients
/// match them: exactly, or a wildcard standing for exactly one leftmost label.
pub fn covers(cert_name: &str, name: &str) -> bool {
    let cert_name = cert_name.to_ascii_lowercase();
    if cert_name == name {
        return true;
    }
    match (cert_name.strip_prefix("*."), name.split_once('.')) {
        (Some(base), Some((first, rest))) => !first.is_empty() && first != "*" && rest == base,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> Name {
        let mut v = classify(raw);
        assert_eq!(v.len(), 1, "{raw}");
        v.remove(0)
    }

    #[test]
    fn plain_names_are_lowercased_and_certifiable() {
        assert_eq!(
            one("Shop.Example.COM"),
            Name::certifiable("shop.example.com".into(), false)
        );
        assert_eq!(one("shop.example.com.").name, "shop.example.com");
    }

    #[test]
    fn non_names_carry_a_reason() {
        for (raw, reason) in [
            ("", "empty name"),
            ("~^(?<sub>.+)\\.example\\.com$", "regex"),
            ("_", "catch-all placeholder, not a host name"),
            ("localhost", "localhost"),
            ("$hostname", "variable (nginx substitutes it at run time)"),
            (
                "example.com:8080",
                "has a port (server_name takes host names only)",
            ),
            (
                "example.*",
                "ends in a wildcard (example.*), which no certificate can carry",
            ),
            ("www.*.example.com", "wildcard not in the leftmost label"),
            ("intranet", "not a fully qualified domain name (no dot)"),
            (
                "10.0.0.1",
                "private or reserved IP address (a public CA cannot certify it)",
            ),
        ] {
            let n = one(raw);
            assert!(!n.certifiable, "{raw}");
            assert_eq!(n.reason.as_deref(), Some(reason), "{raw}");
        }
        assert!(
            one("under_score.example.com")
                .reason
                .unwrap()
                .contains("'_'")
        );
    }

    #[test]
    fn wildcards_and_leading_dots() {
        assert_eq!(
            one("*.Example.com"),
            Name::certifiable("*.example.com".into(), true)
        );
        let both = classify(".example.com");
        assert_eq!(both[0], Name::certifiable("example.com".into(), false));
        assert_eq!(both[1], Name::certifiable("*.example.com".into(), true));
    }

    #[test]
    fn idn_becomes_punycode() {
        assert_eq!(one("例子.测试").name, "xn--fsqu00a.xn--0zwm56d");
        assert_eq!(one("BÜCHER.example").name, "xn--bcher-kva.example");
    }

    #[test]
    fn public_ips_are_certifiable() {
        assert_eq!(one("8.8.8.8"), Name::certifiable("8.8.8.8".into(), false));
        assert_eq!(one("[2606:4700::1111]").name, "2606:4700::1111");
        assert!(!one("127.0.0.1").certifiable);
        assert!(!one("::1").certifiable);
    }

    #[test]
    fn duplicates_collapse_after_normalisation() {
        let all = classify_all([
            "a.example.com",
            "A.EXAMPLE.COM",
            ".example.com",
            "example.com",
        ]);
        let names: Vec<_> = all.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a.example.com", "example.com", "*.example.com"]);
    }

    #[test]
    fn coverage_follows_tls_wildcard_rules() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(covers("Example.com", "example.com"));
    }
}
