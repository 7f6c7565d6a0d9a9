//! The propagation check: before the CA is asked to look, every server of each record's zone
//! (its authoritative servers, or `--dns-server` / `[dns] check_servers`) must answer the
//! record, asked directly rather than through a caching resolver. Bounded wait; a clear message
//! per name that did not make it.

use std::time::{Duration, Instant};

use super::{DnsPublisher, DnsRecord, record_type, wire};

/// Waits until every server answers every record, or `timeout`; returns the names (with why)
/// whose records did not propagate in time.
pub fn wait(dns: &DnsPublisher, records: &[DnsRecord], timeout: Duration) -> Vec<(String, String)> {
    let deadline = Instant::now() + timeout;
    let mut waiting: Vec<&DnsRecord> = records.iter().collect();
    let mut last: Vec<(String, String)> = Vec::new();
    loop {
        last.clear();
        waiting.retain(|record| match missing_on(dns, record) {
            Ok(missing) if missing.is_empty() => false,
            Ok(missing) => {
                last.push((
                    record.name.clone(),
                    format!("not answered by {}", missing.join(", ")),
                ));
                true
            }
            Err(e) => {
                last.push((record.name.clone(), format!("{e:#}")));
                true
            }
        });
        if waiting.is_empty() {
            return Vec::new();
        }
        if Instant::now() >= deadline {
            return waiting
                .iter()
                .zip(&last)
                .map(|(record, (name, why))| {
                    (
                        name.clone(),
                        format!(
                            "the DNS record {record} for {name} did not propagate within {} s \
                             ({why}); check that the publisher really updates the zone's \
                             authoritative servers, or raise [dns] propagation_timeout",
                            timeout.as_secs()
                        ),
                    )
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(500).min(deadline - Instant::now()));
    }
}

/// The servers that do not answer `record` yet.
fn missing_on(dns: &DnsPublisher, record: &DnsRecord) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for server in dns.servers_for(&record.zone)? {
        let values = wire::values(server, &record.owner, record_type(&record.record_type));
        if !values.is_ok_and(|v| v.contains(&record.value)) {
            missing.push(server.to_string());
        }
    }
    Ok(missing)
}
