//! The `[dns]` table: how DNS validation records are published (RFC 2136 with TSIG, a hook
//! command, or Huawei Cloud DNS), per zone where a host has several, which names are proven by
//! DNS, and where the propagation check asks.
//!
//! Not here: publishing (that is [`crate::publish::dns`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Which way records are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProvider {
    /// RFC 2136 dynamic update signed with a TSIG key (BIND, Knot, PowerDNS, …).
    Rfc2136,
    /// A user command run without a shell, with `ENC365_DNS_*` in its environment.
    Hook,
    /// Huawei Cloud DNS record sets, signed with AK/SK (`SDK-HMAC-SHA256`).
    Huaweicloud,
}

/// Which names are proven by DNS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationChoice {
    /// HTTP where it can prove the name; DNS for wildcards and where HTTP's preflight fails.
    #[default]
    Auto,
    /// Every name by DNS.
    Dns,
}

/// One publisher's settings (the `[dns]` table itself, or a `[dns.zones."<zone>"]` table).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsBackend {
    /// `rfc2136`, `hook` or `huaweicloud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DnsProvider>,
    /// rfc2136: the primary server to send updates to (`ADDR:PORT`, port 53 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// rfc2136: the TSIG key's name, as the server knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_key_name: Option<String>,
    /// rfc2136: the TSIG key's secret (base64, hmac-sha256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_secret: Option<Secret>,
    /// hook: the command (program path then arguments, split on spaces, no shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// huaweicloud: the DNS endpoint (default `https://dns.myhuaweicloud.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// huaweicloud: the access key id (AK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// huaweicloud: the secret access key (SK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// The publisher for every zone not listed under `zones`.
    #[serde(flatten)]
    pub backend: DnsBackend,
    /// Per zone (`"example.com"`), a publisher of its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub zones: BTreeMap<String, DnsBackend>,
    /// `auto` or `dns` (every name by DNS).
    #[serde(default)]
    pub validation: ValidationChoice,
    /// Sites (by name) whose every name is proven by DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_sites: Vec<String>,
    /// Servers the propagation check asks instead of the zone's authoritative servers
    /// (`--dns-server` wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_servers: Vec<String>,
    /// Where the zone walk starts (`ADDR` or `ADDR:PORT`): a recursive resolver, or an
    /// authoritative server of a parent zone whose delegations are followed down to each record's
    /// zone and its authoritative servers. Default: the system resolver. `check_servers` (or
    /// `--dns-server`) skips the walk for the propagation check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// The port the authoritative servers found by the walk are asked on (default 53; another
    /// only for private set-ups and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authoritative_port: Option<u16>,
    /// How long the propagation check waits for every server to answer a record (seconds).
    #[serde(default = "default_propagation_timeout")]
    pub propagation_timeout: u64,
    /// The TTL of the records published (seconds).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_propagation_timeout() -> u64 {
    120
}

fn default_ttl() -> u32 {
    60
}

impl DnsSettings {
    /// The publisher settings for `zone`: its own table, else `[dns]` itself.
    pub fn backend_for(&self, zone: &str) -> &DnsBackend {
        let zone = zone.trim_end_matches('.');
        self.zones
            .iter()
            .find(|(z, _)| z.trim_end_matches('.').eq_ignore_ascii_case(zone))
            .map(|(_, b)| b)
            .unwrap_or(&self.backend)
    }

    /// The zone table that covers `name` (the longest listed zone it is in), if any.
    pub fn listed_zone_of(&self, name: &str) -> Option<String> {
        let name = name.trim_start_matches("*.").trim_end_matches('.');
        self.zones
            .keys()
            .map(|z| z.trim_end_matches('.'))
            .filter(|z| name == *z || name.ends_with(&format!(".{z}")))
            .max_by_key(|z| z.len())
            .map(str::to_string)
    }

    /// Whether any publisher is configured.
    pub fn configured(&self) -> bool {
        self.backend.provider.is_some() || self.zones.values().any(|b| b.provider.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_override_the_default_publisher() {
        let dns: DnsSettings = toml::from_str(
            r#"
            provider = "hook"
            hook = "/usr/local/bin/dns-hook"
            check_servers = ["127.0.0.1:5353"]
            [zones."example.org"]
            provider = "rfc2136"
            server = "127.0.0.1:53"
            tsig_key_name = "k"
            tsig_secret = "c2VjcmV0"
            "#,
        )
        .unwrap();
        assert!(dns.configured());
        assert_eq!(dns.propagation_timeout, 120);
        assert_eq!(
            dns.listed_zone_of("*.shop.example.org").as_deref(),
            Some("example.org")
        );
        assert_eq!(dns.listed_zone_of("example.com"), None);
        assert_eq!(
            dns.backend_for("example.org").provider,
            Some(DnsProvider::Rfc2136)
        );
        assert_eq!(
            dns.backend_for("example.com").provider,
            Some(DnsProvider::Hook)
        );
        assert!(toml::from_str::<DnsSettings>("provider = \"route53\"").is_err());
    }
}
