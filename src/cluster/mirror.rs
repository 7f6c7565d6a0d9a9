//! The order records in etcd: every save of a record is pushed (its pending key sealed, and
//! pushed before the record that needs it), and a run starts by pulling every record (and key)
//! into the local state, so an order another node persisted — and maybe died working on — is
//! resumed here, never placed a second time.
//!
//! etcd wins over the local copy: a local record newer than etcd's can only come from a save
//! whose push failed, and that run stopped before the side effect the save announced.

use std::path::Path;

use anyhow::Context as _;

use super::{Cluster, keys};
use crate::orders::OrderRecord;

/// Pulls `/orders/*` into `<state>/orders/`: records whose content differs are replaced, and
/// their sealed keys opened into the 0600 key files. Returns the sites updated.
pub fn pull(cluster: &Cluster, state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = cluster.etcd.list(keys::ORDERS)?;
    crate::store::ensure_dir(&crate::orders::orders_dir(state_dir), 0o700)?;
    let mut updated = Vec::new();
    for (key, value) in &entries {
        if key.ends_with(keys::KEY_SUFFIX) {
            continue;
        }
        let record: OrderRecord = super::records::parse(key, value)?;
        let local = OrderRecord::load(state_dir, &record.site).ok().flatten();
        if local.as_ref() == Some(&record) {
            continue;
        }
        let key_rel = keys::order_key(&record.site);
        if let Some((_, sealed)) = entries.iter().find(|(k, _)| *k == key_rel) {
            let plain = cluster.open(&key_rel, &String::from_utf8_lossy(sealed))?;
            crate::store::write_atomic(
                &OrderRecord::key_path(state_dir, &record.site),
                &plain,
                0o600,
            )
            .with_context(|| format!("{}: writing the pulled key", record.site))?;
        }
        crate::store::write_record(&OrderRecord::path(state_dir, &record.site), &record)?;
        updated.push(record.site.clone());
    }
    Ok(updated)
}

/// Pushes one saved record: its pending key first when `key_changed`, then the record.
pub fn push(
    cluster: &Cluster,
    state_dir: &Path,
    record: &OrderRecord,
    key_changed: bool,
) -> anyhow::Result<()> {
    if key_changed {
        let key_path = OrderRecord::key_path(state_dir, &record.site);
        let pem = std::fs::read(&key_path)
            .with_context(|| format!("{}: reading the pending key to share it", record.site))?;
        let rel = keys::order_key(&record.site);
        let sealed = cluster.seal(&rel, &pem)?;
        cluster.etcd.put(&rel, sealed.into_bytes(), None)?;
    }
    let json = serde_json::to_vec(record)?;
    cluster.etcd.put(&keys::order(&record.site), json, None)
}

/// Removes a discarded record (and its key) from etcd.
pub fn discard(cluster: &Cluster, site: &str) -> anyhow::Result<()> {
    cluster.etcd.delete(&keys::order_key(site), false)?;
    cluster.etcd.delete(&keys::order(site), false)
}
