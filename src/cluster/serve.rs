//! An agent's side of HTTP validation: for every `/dcv/<id>` entry whose host one of this
//! node's sites serves, the file is written where this nginx serves it — the site's webroot, or
//! our own directory behind a temporary location — through the same HTTP publisher and plan as
//! the pipeline, fetched back from this node's nginx, then acked at `/dcv-ack/<id>/<node>`.
//! When an entry goes, its file goes; when no entry needs the temporary locations any more,
//! their transaction is restored (byte for byte) and nginx reloaded.
//!
//! What was written is journaled in `<state>/cluster-dcv.json` before it is checked, so a
//! killed agent's files are removed by its next pass. Not here: the orderer's side
//! ([`super::dcv`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};

use super::records::{self, DcvAck, DcvEntry};
use super::{Cluster, keys};
use crate::ca::Challenge;
use crate::dcv::Publication;
use crate::discovery::Discovery;
use crate::install::Environment;
use crate::publish::Published;
use crate::publish::http::HttpPublisher;
use crate::site::Site;
use crate::store::{Transaction, TxnKind, TxnState};

/// What an agent wrote for one entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Served {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    /// Served through the temporary location of `site`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location_for: Option<String>,
}

/// `<state>/cluster-dcv.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ledger {
    #[serde(default)]
    served: BTreeMap<String, Served>,
    /// The transaction holding the temporary locations, and the sites it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    txn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    txn_sites: Vec<String>,
}

impl Ledger {
    fn load(state_dir: &Path) -> Ledger {
        crate::store::read_record(&crate::paths::cluster_dcv_ledger(state_dir), "remove it")
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Written 0600 beside the state directory's other files (not through `write_record`,
    /// which would make the state directory itself 0700 and hide `dcv/` from nginx's workers).
    fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::store::write_atomic(&crate::paths::cluster_dcv_ledger(state_dir), &bytes, 0o600)
    }
}

/// One entry to serve here.
struct Wanted {
    id: String,
    entry: DcvEntry,
    site: Site,
}

/// One pass over `/dcv/`. False when some entry this node should serve could not be served.
/// `http_port` is where a temporary validation server listens (as `auto --http-port`).
pub fn serve(
    cluster: &Cluster,
    env: &Environment,
    now: i64,
    http_port: u16,
) -> anyhow::Result<bool> {
    let entries = cluster.etcd.list(keys::DCV)?;
    let mut ledger = Ledger::load(&env.state_dir);
    let live: BTreeSet<String> = (entries.iter())
        .filter_map(|(k, _)| k.strip_prefix(keys::DCV).map(str::to_string))
        .collect();
    let acked = acked_here(cluster)?;
    // An entry served here whose ack is gone was withdrawn and published again between two
    // passes (an orderer that took over withdraws what a dead one left): it is served anew.
    ledger.served.retain(|id, w| {
        let keep = live.contains(id) && acked.contains(id);
        if !keep {
            crate::dcv::remove_files(&w.files, &w.dirs);
        }
        keep
    });
    ledger.save(&env.state_dir)?;
    let mut found = discover(env, now)?;
    let mut wanted = Vec::new();
    for (key, value) in &entries {
        let id = key.strip_prefix(keys::DCV).unwrap_or(key).to_string();
        let entry: DcvEntry = records::parse(key, value)?;
        let site = crate::site::group(&found)
            .into_iter()
            .find(|s| s.names.contains(&entry.host));
        if let Some(site) = site {
            wanted.push(Wanted { id, entry, site });
        }
    }
    // The sites that need the temporary location (with the URL prefix it serves): those already
    // served through it, and new entries whose route (planned on the configuration without our
    // edits) goes through it.
    let dcv_dir = crate::paths::dcv_dir(&env.state_dir);
    let mut location_sites: BTreeMap<String, String> = BTreeMap::new();
    for w in &wanted {
        let needs = match ledger.served.get(&w.id) {
            Some(served) => served.location_for.is_some(),
            None => {
                // A site already behind our location keeps it (the edited block would plan
                // as blocked); any other is planned on its block as the user wrote it.
                ledger.txn_sites.contains(&w.site.name)
                    || (plan(env, &found, w, http_port).routes.iter())
                        .any(|r| r.dir.starts_with(&dcv_dir))
            }
        };
        if needs {
            location_sites.insert(w.site.name.clone(), well_known(&w.entry).to_string());
        }
    }
    let names: Vec<String> = location_sites.keys().cloned().collect();
    if names != ledger.txn_sites {
        found = set_locations(env, &mut ledger, &location_sites, (now, http_port))?;
        // The edits may add blocks (a temporary server): the sites' block indexes moved.
        let sites = crate::site::group(&found);
        for w in &mut wanted {
            if let Some(site) = sites.iter().find(|s| s.name == w.site.name) {
                w.site = site.clone();
            }
        }
    }
    let mut ok = true;
    let new: Vec<&Wanted> = (wanted.iter())
        .filter(|w| !ledger.served.contains_key(&w.id))
        .collect();
    for w in new {
        let through = location_sites.contains_key(&w.site.name);
        if let Err(e) = serve_one(cluster, env, (&found, http_port), w, through, &mut ledger) {
            eprintln!(
                "  {}: cannot serve the validation file here: {e:#}",
                w.entry.host
            );
            ok = false;
        }
    }
    Ok(ok)
}

/// The ids of the `/dcv/` entries this node has acked.
fn acked_here(cluster: &Cluster) -> anyhow::Result<BTreeSet<String>> {
    let acks = cluster.etcd.list(keys::DCV_ACK)?;
    Ok((acks.into_iter())
        .filter_map(|(k, _)| {
            let (id, node) = k.strip_prefix(keys::DCV_ACK)?.split_once('/')?;
            (node == cluster.node()).then(|| id.to_string())
        })
        .collect())
}

fn discover(env: &Environment, now: i64) -> anyhow::Result<Discovery> {
    crate::discovery::discover(&env.paths.conf, now, 30).map_err(|e| anyhow!("{e}"))
}

/// Takes the temporary locations out before an install (whose transaction must start from the
/// user's configuration): their transaction is restored (the install's reload makes it live),
/// and the entries served through them are forgotten, so a later pass serves them again.
pub fn withdraw_locations(env: &Environment) -> anyhow::Result<()> {
    let mut ledger = Ledger::load(&env.state_dir);
    let Some(id) = ledger.txn.take() else {
        return Ok(());
    };
    let mut txn = Transaction::open(&env.state_dir, &id)?;
    if txn.manifest().state == TxnState::Open {
        txn.restore()?;
    }
    ledger.txn_sites.clear();
    ledger.served.retain(|_, w| {
        if w.location_for.is_some() {
            crate::dcv::remove_files(&w.files, &w.dirs);
        }
        w.location_for.is_none()
    });
    ledger.save(&env.state_dir)
}

/// The URL path prefix of an entry's file (`/.well-known/pki-validation/`).
fn well_known(entry: &DcvEntry) -> &str {
    entry.path.rfind('/').map_or("/", |i| &entry.path[..=i])
}

/// The routes of a wanted entry's site for the entry's URL path prefix.
fn plan(env: &Environment, found: &Discovery, w: &Wanted, http_port: u16) -> Publication {
    let well_known = well_known(&w.entry);
    let prefix = env.paths.prefix_or_root();
    let dcv_dir = crate::paths::dcv_dir(&env.state_dir);
    crate::dcv::plan_at(found, &w.site, (&prefix, &dcv_dir, http_port), well_known)
}

/// Makes the temporary locations cover exactly `sites`: the old transaction restored, a new one
/// applied (backup, splice, `nginx -t`), one reload. Returns the configuration as it now is.
fn set_locations(
    env: &Environment,
    ledger: &mut Ledger,
    sites: &BTreeMap<String, String>,
    (now, http_port): (i64, u16),
) -> anyhow::Result<Discovery> {
    if let Some(id) = ledger.txn.take() {
        let mut txn = Transaction::open(&env.state_dir, &id)?;
        if txn.manifest().state == TxnState::Open {
            txn.restore()?;
        }
        ledger.txn_sites.clear();
        ledger.save(&env.state_dir)?;
    }
    let found = discover(env, now)?;
    let chosen: Vec<Site> = (crate::site::group(&found).into_iter())
        .filter(|s| sites.contains_key(&s.name))
        .collect();
    let prefix = env.paths.prefix_or_root();
    let dcv_dir = crate::paths::dcv_dir(&env.state_dir);
    crate::store::ensure_dir(&dcv_dir, 0o755)?;
    let mut splices = Vec::new();
    for site in &chosen {
        let well_known = sites
            .get(&site.name)
            .map_or(crate::dcv::WELL_KNOWN, String::as_str);
        let at = (prefix.as_path(), dcv_dir.as_path(), http_port);
        splices.extend(crate::dcv::plan_at(&found, site, at, well_known).splices);
    }
    if !splices.is_empty() {
        let mut txn = Transaction::begin_kind(&env.state_dir, TxnKind::Validation)?;
        ledger.txn = Some(txn.id().to_string());
        ledger.txn_sites = sites.keys().cloned().collect();
        ledger.save(&env.state_dir)?;
        if let Err(e) = apply(env, &found, splices, &mut txn) {
            let _ = txn.restore();
            ledger.txn = None;
            ledger.txn_sites.clear();
            ledger.save(&env.state_dir)?;
            reload(env)?;
            return Err(e.context("the temporary validation locations were put back"));
        }
    }
    reload(env)?;
    discover(env, now)
}

/// Writes the temporary edits (backed up first) and checks them with `nginx -t`.
fn apply(
    env: &Environment,
    found: &Discovery,
    splices: Vec<crate::nginx::https::FileSplice>,
    txn: &mut Transaction,
) -> anyhow::Result<()> {
    let mut edited = Vec::new();
    for (file, list) in crate::nginx::https::by_file(splices) {
        let f = &found.config.files[file];
        edited.push((f, crate::nginx::edit::apply(&f.bytes, &list)?));
    }
    txn.backup_all(&edited.iter().map(|(f, _)| &f.path).collect::<Vec<_>>())?;
    for (f, new) in edited {
        let mode = std::fs::metadata(&f.path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o644);
        crate::store::write_atomic(&f.path, &new, mode)?;
    }
    let test = env.nginx.test(&env.paths)?;
    if !test.ok {
        anyhow::bail!(
            "nginx -t refused the temporary validation locations: {}",
            test.output.trim()
        );
    }
    Ok(())
}

fn reload(env: &Environment) -> anyhow::Result<()> {
    env.nginx.reload(
        &env.paths,
        &env.reload,
        &env.pid_file,
        Duration::from_secs(20),
    )?;
    Ok(())
}

/// Writes one entry's file where this node's nginx serves it, journals it, checks it, acks it.
fn serve_one(
    cluster: &Cluster,
    env: &Environment,
    (found, http_port): (&Discovery, u16),
    w: &Wanted,
    through_location: bool,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let publication = plan(env, found, w, http_port);
    let mut publication = publication;
    if through_location {
        // The block now carries our location: its names are served from our directory.
        let dcv_dir = crate::paths::dcv_dir(&env.state_dir);
        publication.routes = location_routes(found, &w.site, &dcv_dir);
    }
    let route = (publication.routes.iter())
        .find(|r| r.name == w.entry.host)
        .ok_or_else(|| anyhow!("no server block answers HTTP for it here"))?
        .clone();
    let publisher = HttpPublisher {
        publication: &publication,
        skip_dns_check: true,
    };
    let challenge = Challenge::HttpFile {
        path: w.entry.path.clone(),
        content: w.entry.body.clone(),
    };
    let mut out = Published::default();
    let written = publisher.write(&w.entry.host, &challenge, &mut out);
    let served = Served {
        files: out.files,
        dirs: out.dirs,
        location_for: through_location.then(|| w.site.name.clone()),
    };
    ledger.served.insert(w.id.clone(), served);
    ledger.save(&env.state_dir)?;
    let mut written = written?;
    written.addr = own_address(found, &w.site, route.port);
    publisher.check(&written).map_err(|e| {
        e.context(format!(
            "written in {}, fetched through {}",
            route.dir.display(),
            written.addr
        ))
    })?;
    let ack = DcvAck {
        node: cluster.node().to_string(),
        at: super::now(),
    };
    let rel = keys::dcv_ack(&w.id, cluster.node());
    cluster.etcd.put(&rel, records::to_json(&ack), None)
}

/// With our temporary location in place, every name of the site on its plain-HTTP ports is
/// served from our directory.
fn location_routes(found: &Discovery, site: &Site, dcv_dir: &Path) -> Vec<crate::dcv::Route> {
    let ports: Vec<u16> = (site.servers.iter())
        .filter_map(|&i| found.servers.get(i))
        .flat_map(crate::dcv::plain_ports)
        .collect();
    let port = ports.first().copied().unwrap_or(80);
    (site.names.iter())
        .map(|name| crate::dcv::Route {
            name: name.clone(),
            dir: dcv_dir.to_path_buf(),
            port,
        })
        .collect()
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
