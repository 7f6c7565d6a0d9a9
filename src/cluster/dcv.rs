//! HTTP validation across the cluster. The orderer puts each file it published (and checked on
//! its own nginx) at `/dcv/<id>`, then waits until every other live node acked it at
//! `/dcv-ack/<id>/<node>` — only then is the CA asked (the agents' side is [`super::serve`]).
//! DNS validation needs none of this.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::backend::Active;
use super::records::{self, DcvEntry};
use super::{Cluster, keys, liveness};
use crate::publish::http::Written;

/// Puts `written` at `/dcv/` and waits for every other live node's ack (up to `ack_timeout`).
pub fn publish_and_wait(active: &Active, site: &str, written: &[Written]) -> anyhow::Result<()> {
    if written.is_empty() {
        return Ok(());
    }
    let cluster = &active.cluster;
    let mut ids = Vec::new();
    for w in written {
        let id = keys::dcv_id(&w.name, &w.path);
        let entry = DcvEntry {
            site: site.to_string(),
            host: w.name.clone(),
            path: w.path.clone(),
            body: w.content.clone(),
        };
        if let Ok(mut made) = active.dcv_made.lock() {
            made.entry(site.to_string()).or_default().push(id.clone());
        }
        cluster
            .etcd
            .put(&keys::dcv(&id), records::to_json(&entry), None)?;
        ids.push(id);
    }
    wait_for_acks(cluster, &ids)
}

/// Waits until every live node other than this one acked every id.
fn wait_for_acks(cluster: &Cluster, ids: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(cluster.settings.ack_timeout);
    loop {
        let mut missing = BTreeSet::new();
        let live = liveness::live_nodes(cluster)?;
        for id in ids {
            let acked: BTreeSet<String> = (cluster.etcd.list(&keys::dcv_acks(id))?.into_iter())
                .filter_map(|(k, _)| k.rsplit('/').next().map(str::to_string))
                .collect();
            missing.extend(
                (live.iter())
                    .filter(|n| n.as_str() != cluster.node() && !acked.contains(*n))
                    .cloned(),
            );
        }
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "node(s) {} did not confirm serving the validation files within {} seconds \
                 (ack_timeout); the CA was not asked. Check `enc365-nginx agent` runs there and \
                 serves the site from a webroot, then run again",
                missing.into_iter().collect::<Vec<_>>().join(", "),
                cluster.settings.ack_timeout
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Deletes the `/dcv/` entries (and acks) this run made for `site`.
pub fn withdraw_site(active: &Active, site: &str) {
    let ids = (active.dcv_made.lock().ok()).and_then(|mut m| m.remove(site));
    for id in ids.unwrap_or_default() {
        delete_entry(&active.cluster, &id);
    }
}

/// Deletes every `/dcv/` entry this run made (the run is ending).
pub fn withdraw_all(active: &Active) {
    let all = (active.dcv_made.lock().ok()).map(|mut m| std::mem::take(&mut *m));
    for id in all.unwrap_or_default().into_values().flatten() {
        delete_entry(&active.cluster, &id);
    }
}

fn delete_entry(cluster: &Cluster, id: &str) {
    let _ = cluster.etcd.delete(&keys::dcv(id), false);
    let _ = cluster.etcd.delete(&keys::dcv_acks(id), true);
}
