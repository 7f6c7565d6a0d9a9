//! HTTP validation across the cluster. The orderer puts each file it published (and checked on
//! its own nginx) at `/dcv/<id>`, then waits until every other live node acked it at
//! `/dcv-ack/<id>/<node>` — only then is the CA asked. Each agent ([`serve`]) writes the files
//! of the entries whose host one of its sites serves through the same HTTP publisher the
//! pipeline uses, fetches each back from its own nginx, and acks; when an entry goes, the file
//! goes. DNS validation needs none of this.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

use super::backend::Active;
use super::records::{self, DcvAck, DcvEntry};
use super::{Cluster, keys, liveness};
use crate::ca::Challenge;
use crate::discovery::Discovery;
use crate::install::Environment;
use crate::publish::Published;
use crate::publish::http::{HttpPublisher, Written};
use crate::site::Site;

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

/// What an agent wrote for one entry (`<state>/cluster-dcv.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Served {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

type Ledger = BTreeMap<String, Served>;

fn load_ledger(state_dir: &Path) -> Ledger {
    crate::store::read_record(&crate::paths::cluster_dcv_ledger(state_dir), "remove it")
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn save_ledger(state_dir: &Path, ledger: &Ledger) -> anyhow::Result<()> {
    crate::store::write_record(&crate::paths::cluster_dcv_ledger(state_dir), ledger)
}

/// One agent pass over `/dcv/`: removes the files of entries that went, serves and acks the
/// new ones this node's sites answer for. False when some entry could not be served.
pub fn serve(cluster: &Cluster, env: &Environment, found: &Discovery) -> anyhow::Result<bool> {
    let entries = cluster.etcd.list(keys::DCV)?;
    let mut ledger = load_ledger(&env.state_dir);
    let live: BTreeSet<String> = (entries.iter())
        .filter_map(|(k, _)| k.strip_prefix(keys::DCV).map(str::to_string))
        .collect();
    let gone: Vec<String> = ledger
        .keys()
        .filter(|id| !live.contains(*id))
        .cloned()
        .collect();
    for id in gone {
        if let Some(w) = ledger.remove(&id) {
            crate::dcv::remove_files(&w.files, &w.dirs);
        }
    }
    save_ledger(&env.state_dir, &ledger)?;
    let sites = crate::site::group(found);
    let mut ok = true;
    for (key, value) in &entries {
        let id = key.strip_prefix(keys::DCV).unwrap_or(key).to_string();
        if ledger.contains_key(&id) {
            continue;
        }
        let entry: DcvEntry = records::parse(key, value)?;
        let Some(site) = sites.iter().find(|s| s.names.contains(&entry.host)) else {
            continue;
        };
        if let Err(e) = serve_one(cluster, env, found, site, &id, &entry, &mut ledger) {
            tracing::warn!("{}: {e:#}", entry.host);
            eprintln!("  {}: cannot serve the validation file: {e:#}", entry.host);
            ok = false;
        }
    }
    Ok(ok)
}

/// Writes one entry's file where this node's nginx serves it, journals it, checks it, acks it.
fn serve_one(
    cluster: &Cluster,
    env: &Environment,
    found: &Discovery,
    site: &Site,
    id: &str,
    entry: &DcvEntry,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let well_known = entry
        .path
        .rfind('/')
        .map(|i| &entry.path[..=i])
        .ok_or_else(|| anyhow!("the validation path {:?} is not a URL path", entry.path))?;
    let prefix = env
        .paths
        .prefix
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let dcv_dir = crate::paths::dcv_dir(&env.state_dir);
    let publication = crate::dcv::plan_at(found, site, (&prefix, &dcv_dir, 80), well_known);
    let route = (publication.routes.iter())
        .find(|r| r.name == entry.host)
        .ok_or_else(|| anyhow!("no server block answers HTTP for it here"))?;
    if route.dir.starts_with(&dcv_dir) {
        bail!(
            "its server block has no usable webroot; the agent serves validation files through \
             webroots only (give the block a root, or use DNS validation)"
        );
    }
    let publisher = HttpPublisher {
        publication: &publication,
        skip_dns_check: true,
    };
    let challenge = Challenge::HttpFile {
        path: entry.path.clone(),
        content: entry.body.clone(),
    };
    let mut out = Published::default();
    let mut written = publisher.write(&entry.host, &challenge, &mut out);
    ledger.insert(
        id.to_string(),
        Served {
            files: out.files,
            dirs: out.dirs,
        },
    );
    save_ledger(&env.state_dir, ledger)?;
    if let Ok(w) = &mut written {
        w.addr = own_address(found, site, route.port);
    }
    publisher.check(&written?)?;
    let ack = DcvAck {
        node: cluster.node().to_string(),
        at: super::now(),
    };
    cluster.etcd.put(
        &keys::dcv_ack(id, cluster.node()),
        records::to_json(&ack),
        None,
    )
}

/// Where this node's nginx answers `port` for the site: the address of the block's listen when
/// it names one, else loopback.
fn own_address(found: &Discovery, site: &Site, port: u16) -> SocketAddr {
    let ip = (site.servers.iter())
        .filter_map(|&i| found.servers.get(i))
        .flat_map(|s| s.listens.iter())
        .filter(|l| !l.ssl && l.port == Some(port))
        .find_map(|l| {
            let host = l.address.rsplit_once(':')?.0;
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
                .filter(|ip| !ip.is_unspecified())
        });
    SocketAddr::new(ip.unwrap_or(IpAddr::from([127, 0, 0, 1])), port)
}
