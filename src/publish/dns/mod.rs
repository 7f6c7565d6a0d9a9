//! DNS validation: publishes the record a CA asks for (CNAME or TXT) through the publisher the
//! `[dns]` table chooses for the record's zone — RFC 2136 with TSIG ([`rfc2136`]), a hook
//! command ([`hook`]) or Huawei Cloud DNS ([`huaweicloud`]) — then waits until every
//! authoritative server of the zone answers it ([`propagation`]).
//!
//! The records are part of the order's state: the pipeline journals each in the order record
//! before it is created ([`DnsRecord::created`] says whether it was ours), and removes them when
//! the order is issued or fails, or when a later run finds them left by a crashed one. An
//! existing record we did not create is never changed.
//!
//! Not here: choosing which names are proven by DNS (that is [`super::method_for`]).

pub mod hook;
pub mod huaweicloud;
pub mod propagation;
pub mod rfc2136;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use hickory_proto::rr::RecordType;
use serde::{Deserialize, Serialize};

use super::{Published, Publisher};
use crate::ca::{Challenge, ValidationMethod};
use crate::config::{DnsBackend, DnsProvider, DnsSettings};

/// One record published for validation, as journaled in the order record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The name it proves.
    pub name: String,
    /// The zone it was published in.
    pub zone: String,
    /// The full owner name (`_abc.www.example.com`).
    pub owner: String,
    /// `CNAME` or `TXT`.
    pub record_type: String,
    /// The value.
    pub value: String,
    /// True when we create it (and so remove it); false for a record that already stood.
    pub created: bool,
}

impl DnsRecord {
    /// Whether `other` is the same record (owner, type, value).
    pub fn same(&self, other: &DnsRecord) -> bool {
        self.owner.eq_ignore_ascii_case(&other.owner)
            && self.record_type == other.record_type
            && self.value == other.value
    }
}

impl fmt::Display for DnsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.owner, self.record_type, self.value)
    }
}

/// The DNS publisher, built from `[dns]` (and `--dns-server`).
#[derive(Debug, Clone, Default)]
pub struct DnsPublisher {
    /// `[dns]`, when configured.
    pub settings: Option<DnsSettings>,
    /// The servers the propagation check asks instead of each zone's authoritative servers.
    pub check_servers: Vec<SocketAddr>,
}

impl DnsPublisher {
    /// The publisher for `settings`, with `--dns-server` (which wins over `check_servers`).
    pub fn new(settings: Option<DnsSettings>, dns_server: &[String]) -> anyhow::Result<Self> {
        let listed = if dns_server.is_empty() {
            settings
                .as_ref()
                .map(|s| s.check_servers.clone())
                .unwrap_or_default()
        } else {
            dns_server.to_vec()
        };
        let check_servers = (listed.iter())
            .map(|s| wire::server_addr(s))
            .collect::<anyhow::Result<_>>()?;
        Ok(DnsPublisher {
            settings: settings.filter(DnsSettings::configured),
            check_servers,
        })
    }

    /// Whether a publisher is configured.
    pub fn configured(&self) -> bool {
        self.settings.is_some()
    }

    fn settings(&self) -> anyhow::Result<&DnsSettings> {
        self.settings.as_ref().ok_or_else(|| {
            anyhow!(
                "DNS validation is not configured; add a [dns] table to the config (see the \
                 README's DNS validation section)"
            )
        })
    }

    /// The server the zone walk asks, and whether it recurses.
    fn walk_server(&self, backend: &DnsBackend) -> (SocketAddr, bool) {
        if let Some(server) = (backend.server.as_deref()).and_then(|s| wire::server_addr(s).ok()) {
            return (server, false);
        }
        match self.check_servers.first() {
            Some(server) => (*server, false),
            None => (wire::system_resolver(), true),
        }
    }

    /// The record to publish for `name`, with its zone found (not yet created).
    pub fn prepare(&self, name: &str, challenge: &Challenge) -> anyhow::Result<DnsRecord> {
        let Challenge::DnsRecord {
            host,
            record_type,
            value,
        } = challenge
        else {
            bail!("{name}: not a DNS challenge");
        };
        let settings = self.settings()?;
        let owner = host.trim_end_matches('.').to_ascii_lowercase();
        let record_type = record_type.to_ascii_uppercase();
        if !matches!(record_type.as_str(), "CNAME" | "TXT") {
            bail!(
                "the CA asks for a {record_type} record for {name}; only CNAME and TXT are published"
            );
        }
        let zone = match (settings.listed_zone_of(&owner), self.resolver()?) {
            (Some(zone), _) => zone,
            (None, Some(resolver)) => wire::walk(resolver, &owner, self.authoritative_port())?.zone,
            (None, None) => {
                let (server, recurse) = self.walk_server(&settings.backend);
                wire::find_zone(server, &owner, recurse)?
            }
        };
        let value = if record_type == "CNAME" {
            value.trim_end_matches('.').to_ascii_lowercase()
        } else {
            value.clone()
        };
        Ok(DnsRecord {
            name: name.to_string(),
            zone,
            owner,
            record_type,
            value,
            created: true,
        })
    }

    /// What the zone's servers already hold at the record's owner, of its type (a CNAME
    /// standing there when a TXT is wanted is listed as `CNAME <target>`). Asks the primary the updates go to when there is one, else the first server checked.
    pub fn existing(&self, record: &DnsRecord) -> anyhow::Result<Vec<String>> {
        let rtype = record_type(&record.record_type);
        let primary = (self.settings()?.backend_for(&record.zone).server.as_deref())
            .map(wire::server_addr)
            .transpose()?;
        let server = match primary {
            Some(s) => s,
            None => match self.servers_for(&record.zone)?.first() {
                Some(s) => *s,
                None => bail!("no server to ask about {}", record.owner),
            },
        };
        wire::values(server, &record.owner, rtype)
    }

    /// The servers the propagation check asks for `zone`.
    pub fn servers_for(&self, zone: &str) -> anyhow::Result<Vec<SocketAddr>> {
        if !self.check_servers.is_empty() {
            return Ok(self.check_servers.clone());
        }
        if let Some(resolver) = self.resolver()? {
            let found = wire::walk(resolver, zone, self.authoritative_port())?;
            tracing::info!(zone, servers = ?found.servers, %resolver, "authoritative servers found");
            return Ok(found.servers);
        }
        wire::authoritative_servers(wire::system_resolver(), zone)
    }

    /// `[dns] resolver`, where the zone walk starts, if set.
    fn resolver(&self) -> anyhow::Result<Option<SocketAddr>> {
        (self.settings.as_ref().and_then(|s| s.resolver.as_deref()))
            .map(wire::server_addr)
            .transpose()
    }

    /// `[dns] authoritative_port` (53).
    fn authoritative_port(&self) -> u16 {
        (self.settings.as_ref().and_then(|s| s.authoritative_port)).unwrap_or(53)
    }

    /// Creates `record` through its zone's publisher.
    pub fn create(&self, record: &DnsRecord) -> anyhow::Result<()> {
        self.act("add", record)
    }

    /// Removes `record` through its zone's publisher (only ever called for records we created).
    pub fn remove(&self, record: &DnsRecord) -> anyhow::Result<()> {
        self.act("remove", record)
    }

    fn act(&self, action: &str, record: &DnsRecord) -> anyhow::Result<()> {
        let settings = self.settings()?;
        let backend = settings.backend_for(&record.zone);
        match backend.provider {
            Some(DnsProvider::Rfc2136) => {
                let server = backend.server.as_deref().ok_or_else(|| {
                    anyhow!("[dns] provider = \"rfc2136\" needs `server` (the primary's ADDR:PORT)")
                })?;
                let (Some(key), Some(secret)) = (&backend.tsig_key_name, &backend.tsig_secret)
                else {
                    bail!("[dns] provider = \"rfc2136\" needs `tsig_key_name` and `tsig_secret`");
                };
                let update =
                    rfc2136::Rfc2136::new(wire::server_addr(server)?, key, secret.expose())?;
                if action == "add" {
                    update.add(&record.zone, record, settings.ttl)
                } else {
                    update.remove(&record.zone, record)
                }
            }
            Some(DnsProvider::Hook) => {
                let command = backend.hook.as_deref().ok_or_else(|| {
                    anyhow!("[dns] provider = \"hook\" needs `hook` (the command to run)")
                })?;
                hook::run(command, action, &record.zone, record)
            }
            Some(DnsProvider::Huaweicloud) => {
                let api = huaweicloud::HuaweiDns::from_backend(backend)?;
                if action == "add" {
                    api.add(record, settings.ttl)
                } else {
                    api.remove(record)
                }
            }
            None => bail!(
                "no DNS publisher is configured for zone {}; set `provider` under [dns] or \
                 [dns.zones.\"{}\"]",
                record.zone,
                record.zone
            ),
        }
    }

    /// How long the propagation check waits.
    pub fn propagation_timeout(&self) -> Duration {
        Duration::from_secs(
            self.settings
                .as_ref()
                .map_or(120, |s| s.propagation_timeout),
        )
    }
}

/// The hickory record type for `CNAME`/`TXT`.
pub fn record_type(text: &str) -> RecordType {
    if text.eq_ignore_ascii_case("CNAME") {
        RecordType::CNAME
    } else {
        RecordType::TXT
    }
}

impl Publisher for DnsPublisher {
    fn method(&self) -> ValidationMethod {
        ValidationMethod::Dns
    }

    /// Publishes one record and waits for it (the pipeline journals records itself and uses
    /// [`DnsPublisher::prepare`], [`DnsPublisher::create`] and [`propagation::wait`]).
    fn publish(
        &self,
        name: &str,
        challenge: &Challenge,
        out: &mut Published,
    ) -> anyhow::Result<()> {
        let what = match challenge {
            Challenge::DnsRecord {
                host, record_type, ..
            } => format!(" ({record_type} {host})"),
            Challenge::HttpFile { .. } => String::new(),
        };
        if !self.configured() {
            bail!(
                "DNS validation is not configured, so the record{what} for {name} cannot be \
                 published; prove {name} over HTTP (serve it on port 80), publish the record \
                 by hand, or configure [dns] (see the README's DNS validation section)"
            )
        }
        let record = self.prepare(name, challenge)?;
        self.create(&record)?;
        out.records.push(record.clone());
        let failed = propagation::wait(
            self,
            std::slice::from_ref(&record),
            self.propagation_timeout(),
        );
        match failed.into_iter().next() {
            Some((_, why)) => Err(anyhow!(why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_slot_says_it_is_not_configured() {
        let record = Challenge::DnsRecord {
            host: "_dnsauth.shop.test".into(),
            record_type: "TXT".into(),
            value: "abc".into(),
        };
        let mut out = Published::default();
        let e = DnsPublisher::default()
            .publish("shop.test", &record, &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DNS validation is not configured"), "{e}");
        assert!(e.contains("TXT _dnsauth.shop.test"), "{e}");
        assert_eq!(out, Published::default());
    }
}
