//! Certificates across the cluster: the orderer shares each one at `/certs/<stem>` once its own
//! install is proven ([`share`], the key sealed for that entry), and every node installs the
//! entries it serves and lacks ([`install_missing`]) with the same transaction as `auto`
//! (backup, splice, `nginx -t`, one reload for the batch, handshake, byte-identical rollback),
//! writing its result at `/status/<stem>/<node>`. A node whose install fails rolls back alone.

use super::records::{self, CertEntry, NodeState};
use super::{Cluster, keys, status};
use crate::install::{Environment, Issued};
use crate::lifecycle::Lineage;

/// Puts `/certs/<stem>` for a certificate proven installed here, and this node's status.
pub fn share(cluster: &Cluster, item: &Issued) -> anyhow::Result<()> {
    let rel = keys::cert(&item.site);
    let chain = item.fullchain_pem.as_bytes();
    let entry = CertEntry {
        site: item.site.clone(),
        names: item.names.clone(),
        serial: records::leaf_serial(&item.fullchain_pem).unwrap_or_default(),
        fingerprint: crate::verify::pem_leaf_fingerprint(chain).map_err(|e| anyhow::anyhow!(e))?,
        not_after: crate::tlsinfo::summarize_pem(chain).map_or(0, |s| s.not_after),
        fullchain_pem: item.fullchain_pem.clone(),
        sealed_key: cluster.seal(&rel, item.key_pem.as_bytes())?,
        issued_by_node: cluster.node().to_string(),
        at: super::now(),
    };
    cluster.etcd.put(&rel, records::to_json(&entry), None)?;
    status::write(cluster, &entry, NodeState::Installed, None)
}

/// How a pass over `/certs/` went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass {
    /// Certificates installed by this pass.
    pub installed: usize,
    /// Certificates whose install failed (rolled back).
    pub failed: usize,
    /// Nothing failed.
    pub ok: bool,
}

/// Installs every `/certs/` entry this node serves a site for and has not installed (its
/// lineage's fingerprint differs), in one transaction (site by site when that fails, so a
/// broken site fails alone); writes each one's status. Without `retry_failed`, a serial this
/// node already failed to install is left alone.
pub fn install_missing(
    cluster: &Cluster,
    env: &Environment,
    now: i64,
    retry_failed: bool,
    say: &dyn Fn(String),
) -> anyhow::Result<Pass> {
    let mut pass = Pass {
        ok: true,
        ..Pass::default()
    };
    let entries = cluster.etcd.list(keys::CERTS)?;
    if entries.is_empty() {
        return Ok(pass);
    }
    let found =
        crate::discovery::discover(&env.paths.conf, now, 30).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sites = crate::site::group(&found);
    let mut batch: Vec<(Issued, CertEntry)> = Vec::new();
    for (key, value) in &entries {
        let entry: CertEntry = records::parse(key, value)?;
        let lineage = Lineage::load(&env.state_dir, &entry.site).ok().flatten();
        if lineage.is_some_and(|l| l.fingerprint == entry.fingerprint) {
            status::ensure_installed(cluster, &entry)?;
            continue;
        }
        if !sites
            .iter()
            .any(|s| s.names.iter().any(|n| entry.names.contains(n)))
        {
            continue;
        }
        if !retry_failed && status::failed_before(cluster, &entry)? {
            pass.ok = false;
            continue;
        }
        let key_pem = match cluster.open(key, &entry.sealed_key) {
            Ok(k) => String::from_utf8_lossy(&k).into_owned(),
            Err(e) => {
                let reason = format!("{e:#}");
                status::write(cluster, &entry, NodeState::Failed, Some(reason))?;
                pass.failed += 1;
                pass.ok = false;
                continue;
            }
        };
        status::write(cluster, &entry, NodeState::Verifying, None)?;
        let item = Issued {
            site: entry.site.clone(),
            names: entry.names.clone(),
            fullchain_pem: entry.fullchain_pem.clone(),
            key_pem,
        };
        batch.push((item, entry));
    }
    if batch.is_empty() {
        return Ok(pass);
    }
    say(format!(
        "Installing {} certificate(s) from the cluster …",
        batch.len()
    ));
    super::serve::withdraw_locations(env)?;
    let items: Vec<Issued> = batch.iter().map(|(i, _)| i.clone()).collect();
    match crate::install::install_batch(env, &items, now) {
        Ok(_) => {
            for (item, entry) in &batch {
                installed(cluster, env, item, entry, now, say, &mut pass)?;
            }
        }
        Err(e) if batch.len() == 1 => {
            failed(cluster, &batch[0].1, &format!("{e:#}"), say, &mut pass)?;
        }
        Err(_) => {
            say("  the batch failed and was rolled back; installing site by site".into());
            for (item, entry) in &batch {
                match crate::install::install_batch(env, std::slice::from_ref(item), now) {
                    Ok(_) => installed(cluster, env, item, entry, now, say, &mut pass)?,
                    Err(e) => failed(cluster, entry, &format!("{e:#}"), say, &mut pass)?,
                }
            }
        }
    }
    Ok(pass)
}

/// Records one proven install: lineage, status.
fn installed(
    cluster: &Cluster,
    env: &Environment,
    item: &Issued,
    entry: &CertEntry,
    now: i64,
    say: &dyn Fn(String),
    pass: &mut Pass,
) -> anyhow::Result<()> {
    crate::lifecycle::note_installed(&env.state_dir, item, &entry.names, now)?;
    status::write(cluster, entry, NodeState::Installed, None)?;
    say(format!(
        "  {}: HTTPS verified (serial {} from the cluster)",
        entry.site, entry.serial
    ));
    pass.installed += 1;
    Ok(())
}

/// Records one failed (rolled back) install.
fn failed(
    cluster: &Cluster,
    entry: &CertEntry,
    reason: &str,
    say: &dyn Fn(String),
    pass: &mut Pass,
) -> anyhow::Result<()> {
    say(format!(
        "  {}: install failed, rolled back: {reason}",
        entry.site
    ));
    let why = Some(reason.to_string());
    status::write(cluster, entry, NodeState::Failed, why)?;
    pass.failed += 1;
    pass.ok = false;
    Ok(())
}
