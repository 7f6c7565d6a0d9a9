//! Node liveness: an agent keeps `/nodes/<node>` on a lease of its own; the key goes with the
//! lease when the agent stops renewing it. The orderer waits for validation acks from the live
//! nodes only; `status --cluster` shows the others as unreachable.

use super::records::{self, NodeEntry};
use super::{Cluster, keys};

/// Announces this node as alive; returns the lease (revoke it to leave at once).
pub fn announce(cluster: &Cluster) -> anyhow::Result<i64> {
    let lease = cluster.etcd.lease(cluster.settings.lease_ttl)?;
    let entry = NodeEntry {
        node: cluster.node().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: super::now(),
    };
    cluster.etcd.put(
        &keys::node(cluster.node()),
        records::to_json(&entry),
        Some(lease),
    )?;
    Ok(lease)
}

/// The nodes whose agent is alive, sorted.
pub fn live_nodes(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    Ok(cluster
        .etcd
        .list(keys::NODES)?
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix(keys::NODES).map(str::to_string))
        .collect())
}
