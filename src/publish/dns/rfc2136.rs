//! RFC 2136 dynamic update signed with a TSIG key (hmac-sha256): adds a record only where the
//! server holds none of that type (CNAME) or adds one value to a TXT set, and removes exactly
//! the value added.
//!
//! Not here: choosing the zone or checking propagation.

use std::net::SocketAddr;

use anyhow::{anyhow, bail};
use base64::Engine as _;
use hickory_proto::op::{ResponseCode, update_message};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::{CNAME, TXT};
use hickory_proto::rr::{RData, Record, RecordSet, TSigner};

use super::DnsRecord;
use super::wire;

/// A primary server and the key its updates are signed with.
pub struct Rfc2136 {
    /// Where updates go.
    pub server: SocketAddr,
    signer: TSigner,
    key_name: String,
}

impl Rfc2136 {
    /// A publisher for `server` with TSIG key `key_name` and its base64 `secret`.
    pub fn new(server: SocketAddr, key_name: &str, secret: &str) -> anyhow::Result<Rfc2136> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| anyhow!("[dns] tsig_secret is not base64 (as `tsig-keygen` prints it)"))?;
        let signer = TSigner::new(key, TsigAlgorithm::HmacSha256, wire::name(key_name)?, 300)
            .map_err(|e| anyhow!("the TSIG key cannot be used: {e}"))?;
        Ok(Rfc2136 {
            server,
            signer,
            key_name: key_name.to_string(),
        })
    }

    fn rrset(record: &DnsRecord, ttl: u32) -> anyhow::Result<RecordSet> {
        let owner = wire::name(&record.owner)?;
        let data = match record.record_type.as_str() {
            "CNAME" => RData::CNAME(CNAME(wire::name(&record.value)?)),
            "TXT" => RData::TXT(TXT::new(vec![record.value.clone()])),
            other => bail!("{other} records cannot be published by RFC 2136 here"),
        };
        Ok(RecordSet::from(Record::from_rdata(owner, ttl, data)))
    }

    fn send(&self, message: hickory_proto::op::Message, what: &str) -> anyhow::Result<()> {
        let answer = wire::exchange(self.server, message, Some(&self.signer))?;
        match answer.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::YXRRSet => bail!(
                "{} already holds a record there that we did not create; it was left alone",
                self.server
            ),
            ResponseCode::NotAuth | ResponseCode::Refused => bail!(
                "{} refused the update of {what} ({}); check that key {:?} may update the zone \
                 (BIND: update-policy or allow-update)",
                self.server,
                answer.metadata.response_code,
                self.key_name
            ),
            code => bail!("{} answered {code} to the update of {what}", self.server),
        }
    }

    /// Adds `record` to `zone`. A CNAME is added only where no CNAME stands yet.
    pub fn add(&self, zone: &str, record: &DnsRecord, ttl: u32) -> anyhow::Result<()> {
        let rrset = Self::rrset(record, ttl)?;
        let message = if record.record_type == "CNAME" {
            update_message::create(rrset, wire::name(zone)?, false)
        } else {
            update_message::append(rrset, wire::name(zone)?, false, false)
        };
        self.send(message, &record.to_string())
    }

    /// Removes exactly `record` (its value) from `zone`.
    pub fn remove(&self, zone: &str, record: &DnsRecord) -> anyhow::Result<()> {
        let rrset = Self::rrset(record, 0)?;
        let message = update_message::delete_by_rdata(rrset, wire::name(zone)?, false);
        self.send(message, &record.to_string())
    }
}
