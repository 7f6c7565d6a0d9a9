//! The orderer's run lock: `/lock`, created only when absent, on a lease of `lease_ttl` seconds
//! kept alive for the run. A holder that dies stops renewing it and etcd drops it after the
//! TTL, so another node can take over (and resumes the persisted order: [`super::mirror`]).

use serde::{Deserialize, Serialize};

use super::{Cluster, keys, records};
use crate::exit::Failure;

/// What `/lock` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockHolder {
    /// The node that holds it.
    pub node: String,
    /// Its process id.
    pub pid: u32,
    /// Since when (Unix seconds).
    pub at: i64,
}

/// Takes the lock; returns the lease it lives on. Held by another run: exit 3, naming the node.
pub fn take(cluster: &Cluster) -> Result<i64, Failure> {
    let etcd = &cluster.etcd;
    let lease = etcd
        .lease(cluster.settings.lease_ttl)
        .map_err(Failure::failed)?;
    let holder = LockHolder {
        node: cluster.node().to_string(),
        pid: std::process::id(),
        at: super::now(),
    };
    let taken = etcd
        .create(keys::LOCK, records::to_json(&holder), Some(lease))
        .map_err(Failure::failed)?;
    if taken {
        return Ok(lease);
    }
    let _ = etcd.revoke(lease);
    let who = etcd
        .get(keys::LOCK)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice::<LockHolder>(&v).ok())
        .map_or_else(
            || "another node".to_string(),
            |h| format!("node {} (pid {})", h.node, h.pid),
        );
    Err(Failure::locked(anyhow::anyhow!(
        "another enc365-nginx run holds the cluster lock {} ({who}); wait for it to finish and \
         try again (a node that died releases it after lease_ttl = {} seconds)",
        etcd.full_key(keys::LOCK),
        cluster.settings.lease_ttl
    )))
}
