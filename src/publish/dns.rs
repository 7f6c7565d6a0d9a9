//! DNS validation: the slot for publishing a record (RFC 2136, a hook, a provider's DNS API).
//! Nothing is configured yet, so it refuses with what to use instead.

use anyhow::bail;

use super::{Published, Publisher};
use crate::ca::{Challenge, ValidationMethod};

/// The DNS publisher. Not configured: every publish is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct DnsPublisher;

impl Publisher for DnsPublisher {
    fn method(&self) -> ValidationMethod {
        ValidationMethod::Dns
    }

    fn publish(
        &self,
        name: &str,
        challenge: &Challenge,
        _out: &mut Published,
    ) -> anyhow::Result<()> {
        let what = match challenge {
            Challenge::DnsRecord {
                host, record_type, ..
            } => format!(" ({record_type} {host})"),
            Challenge::HttpFile { .. } => String::new(),
        };
        bail!(
            "DNS validation is not configured, so the record{what} for {name} cannot be \
             published; prove {name} over HTTP (serve it on port 80) or publish the record by hand"
        )
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
        let e = DnsPublisher
            .publish("shop.test", &record, &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DNS validation is not configured"), "{e}");
        assert!(e.contains("TXT _dnsauth.shop.test"), "{e}");
        assert_eq!(out, Published::default());
    }
}
