//! The DNS records of one order: each journaled in the order record before it is created,
//! reused when an earlier (crashed) run journaled the same record, refused where a record we did
//! not create stands in the way, checked on every server of the zone, and removed (only those we
//! created) when the order is issued or fails.

use anyhow::{anyhow, bail};

use crate::ca::Challenge;
use crate::orders::OrderRecord;
use crate::pipeline::Run;
use crate::publish::dns::{DnsPublisher, DnsRecord, propagation};
use crate::publish::{Published, Publisher};

/// Publishes the records for `wanted` (name, challenge) and waits until every server answers
/// them. Errors name the name and what stood in the way.
pub fn publish(
    run: &Run,
    dns: &DnsPublisher,
    record: &mut OrderRecord,
    wanted: &[(String, Challenge)],
) -> anyhow::Result<()> {
    if !dns.configured() {
        let (name, challenge) = &wanted[0];
        dns.publish(name, challenge, &mut Published::default())?;
    }
    let mut fresh: Vec<DnsRecord> = Vec::new();
    for (name, challenge) in wanted {
        let rec = dns.prepare(name, challenge)?;
        let rec = journal_and_create(run, dns, record, rec)?;
        if !fresh.iter().any(|r| r.same(&rec)) {
            fresh.push(rec);
        }
    }
    let failed = propagation::wait(dns, &fresh, dns.propagation_timeout());
    if !failed.is_empty() {
        let lines: Vec<String> = failed.into_iter().map(|(_, why)| why).collect();
        bail!("{}", lines.join("; "));
    }
    Ok(())
}

/// One record: reused when journaled already (created again if a crash came before it was),
/// refused when another record stands at its owner, else journaled, saved, then created.
fn journal_and_create(
    run: &Run,
    dns: &DnsPublisher,
    record: &mut OrderRecord,
    mut rec: DnsRecord,
) -> anyhow::Result<DnsRecord> {
    if let Some(prev) = record.dns_records.iter().find(|r| r.same(&rec)).cloned() {
        if prev.created && !dns.existing(&prev)?.contains(&prev.value) {
            dns.create(&prev)
                .map_err(|e| anyhow!("{}: {e:#}", rec.name))?;
        }
        return Ok(prev);
    }
    if rec.record_type == "CNAME"
        && let Some(other) = (record.dns_records.iter())
            .find(|r| r.record_type == "CNAME" && r.owner.eq_ignore_ascii_case(&rec.owner))
    {
        bail!(
            "{}: its CNAME {} → {} would replace the one just published for {} ({}); order \
             these names in separate certificates",
            rec.name,
            rec.owner,
            rec.value,
            other.name,
            other.value
        );
    }
    let existing = dns.existing(&rec)?;
    if existing.contains(&rec.value) {
        // Already there (published by hand): used, never removed.
        rec.created = false;
    } else if (rec.record_type == "CNAME" && !existing.is_empty())
        || existing.iter().any(|v| v.starts_with("CNAME "))
    {
        bail!(
            "{}: {} already holds {} {} which enc365-nginx did not create; it was left alone. \
             Remove it (or make it {} {}) to prove {} by DNS",
            rec.name,
            rec.owner,
            rec.record_type,
            existing.join(", "),
            rec.record_type,
            rec.value,
            rec.name
        );
    }
    record.dns_records.push(rec.clone());
    record.save(&run.state_dir)?;
    if rec.created {
        run.say(format!("  {}: publishing {rec}", rec.name));
        dns.create(&rec)
            .map_err(|e| anyhow!("{}: {e:#}", rec.name))?;
    }
    Ok(rec)
}

/// Removes the records we created for the order (those a removal fails for stay journaled for
/// every later run) and saves the record when it still exists.
pub fn remove_all(run: &Run, dns: &DnsPublisher, record: &mut OrderRecord) {
    if record.dns_records.is_empty() {
        return;
    }
    crate::pipeline::leftovers::remove_records(dns, record, &|m| run.say(m));
    if OrderRecord::path(&run.state_dir, &record.site).exists() {
        let _ = record.save(&run.state_dir);
    }
}
