//! HTTP validation across the cluster. The orderer puts each file it published (and checked on
//! its own nginx) at `/dcv/<id>`, then waits until every other live node acked it at
//! `/dcv-ack/<id>/<node>` — only then is the CA asked (the agents' side is [`super::serve`]).
//! A run publishes the files of all its sites before it waits, and waits once.
//! DNS validation needs none of this.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::backend::Active;
use super::records::{self, DcvEntry};
use super::{Cluster, keys, liveness};
use crate::publish::http::Written;

/// Puts every site's `written` files at `/dcv/` first, then waits (up to `ack_timeout`) until
/// every other live node acked them — one wait for the whole batch, so each agent serves the
/// batch in one pass (one reload where it needs temporary locations), not one per site. Returns
/// the sites that cannot go on, each with why; the others' files are served everywhere.
pub fn publish_all(
    active: &Active,
    batch: &[(&str, &[Written])],
) -> BTreeMap<String, anyhow::Error> {
    let cluster = &active.cluster;
    let mut refused = BTreeMap::new();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (site, written) in batch.iter().filter(|(_, w)| !w.is_empty()) {
        match put_entries(active, site, written) {
            Ok(made) => {
                ids.insert(site.to_string(), made);
            }
            Err(e) => {
                refused.insert(site.to_string(), e);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(cluster.settings.ack_timeout);
    loop {
        let missing = match missing_acks(cluster, &ids) {
            Ok(missing) => missing,
            Err(e) => {
                for site in ids.into_keys() {
                    refused.insert(site, anyhow::anyhow!("{e:#}"));
                }
                return refused;
            }
        };
        ids.retain(|site, _| missing.contains_key(site));
        if ids.is_empty() {
            return refused;
        }
        if Instant::now() >= deadline {
            for (site, nodes) in missing {
                refused.insert(
                    site,
                    anyhow::anyhow!(
                        "node(s) {} did not confirm serving the validation files within {} \
                         seconds (ack_timeout); the CA was not asked. Check `enc365-nginx \
                         agent` runs there, then run again",
                        nodes.into_iter().collect::<Vec<_>>().join(", "),
                        cluster.settings.ack_timeout
                    ),
                );
            }
            return refused;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Puts one site's files at `/dcv/`; their ids.
fn put_entries(active: &Active, site: &str, written: &[Written]) -> anyhow::Result<Vec<String>> {
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
        (active.cluster.etcd).put(&keys::dcv(&id), records::to_json(&entry), None)?;
        ids.push(id);
    }
    Ok(ids)
}

/// Per site (of `ids`, its DCV ids), the live nodes other than this one that have not acked
/// all of them; sites with none missing are left out.
fn missing_acks(
    cluster: &Cluster,
    ids: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let live = liveness::live_nodes(cluster)?;
    let mut out = BTreeMap::new();
    for (site, site_ids) in ids {
        let mut missing = BTreeSet::new();
        for id in site_ids {
            let acked: BTreeSet<String> = (cluster.etcd.list(&keys::dcv_acks(id))?.into_iter())
                .filter_map(|(k, _)| k.rsplit('/').next().map(str::to_string))
                .collect();
            missing.extend(
                (live.iter())
                    .filter(|n| n.as_str() != cluster.node() && !acked.contains(*n))
                    .cloned(),
            );
        }
        if !missing.is_empty() {
            out.insert(site.clone(), missing);
        }
    }
    Ok(out)
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
