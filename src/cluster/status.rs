//! Per-node status: each node writes `/status/<stem>/<node>` for every certificate it installs
//! (installed, verifying, failed with the reason), and `status --cluster` shows every
//! certificate × every node known (live in `/nodes/`, or having written a status).
//!
//! A node's state for a certificate: the state it wrote for the certificate's serial; with none
//! for that serial, `unreachable` when the node has no live agent, else `pending` (its agent
//! installs it next).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::records::{self, CertEntry, NodeState, NodeStatus};
use super::{Cluster, keys, liveness};

/// Writes this node's status for the site of `entry` and its serial.
pub fn write(
    cluster: &Cluster,
    entry: &CertEntry,
    state: NodeState,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let status = NodeStatus {
        node: cluster.node().to_string(),
        site: entry.site.clone(),
        state,
        serial: entry.serial.clone(),
        reason,
        at: super::now(),
    };
    let rel = keys::status(&entry.site, cluster.node());
    cluster.etcd.put(&rel, records::to_json(&status), None)
}

/// Writes `installed` for an entry this node already serves, unless its status says so.
pub fn ensure_installed(cluster: &Cluster, entry: &CertEntry) -> anyhow::Result<()> {
    let rel = keys::status(&entry.site, cluster.node());
    let current: Option<NodeStatus> = cluster
        .etcd
        .get(&rel)?
        .and_then(|v| serde_json::from_slice(&v).ok());
    if current.is_some_and(|s| s.state == NodeState::Installed && s.serial == entry.serial) {
        return Ok(());
    }
    write(cluster, entry, NodeState::Installed, None)
}

/// Whether this node already failed to install this entry's serial.
pub fn failed_before(cluster: &Cluster, entry: &CertEntry) -> anyhow::Result<bool> {
    let rel = keys::status(&entry.site, cluster.node());
    let current: Option<NodeStatus> = cluster
        .etcd
        .get(&rel)?
        .and_then(|v| serde_json::from_slice(&v).ok());
    Ok(current.is_some_and(|s| s.state == NodeState::Failed && s.serial == entry.serial))
}

/// One node in the view.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Its name.
    pub node: String,
    /// Whether its agent holds a live lease.
    pub alive: bool,
}

/// One node's state for one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct CertNodeView {
    /// The node.
    pub node: String,
    /// `installed`, `verifying`, `failed`, `unreachable` or `pending`.
    pub state: String,
    /// Why it failed (or the last state an unreachable node reported).
    pub reason: Option<String>,
}

/// One certificate in the view.
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    /// The site.
    pub site: String,
    /// The current serial (hex).
    pub serial: String,
    /// Every known node's state for it.
    pub nodes: Vec<CertNodeView>,
}

/// What `status --cluster --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// Every known node.
    pub nodes: Vec<NodeView>,
    /// Every certificate.
    pub certificates: Vec<CertView>,
}

/// Reads the whole picture from etcd.
pub fn view(cluster: &Cluster) -> anyhow::Result<ClusterView> {
    let live: BTreeSet<String> = liveness::live_nodes(cluster)?.into_iter().collect();
    let mut statuses: BTreeMap<(String, String), NodeStatus> = BTreeMap::new();
    for (key, value) in cluster.etcd.list(keys::STATUS)? {
        let s: NodeStatus = records::parse(&key, &value)?;
        statuses.insert((crate::paths::stem(&s.site), s.node.clone()), s);
    }
    let mut known: BTreeSet<String> = live.clone();
    known.extend(statuses.keys().map(|(_, n)| n.clone()));
    let mut certificates = Vec::new();
    for (key, value) in cluster.etcd.list(keys::CERTS)? {
        let entry: CertEntry = records::parse(&key, &value)?;
        let stem = crate::paths::stem(&entry.site);
        let nodes = (known.iter())
            .map(|node| {
                let s = statuses.get(&(stem.clone(), node.clone()));
                node_state(node, live.contains(node), &entry.serial, s)
            })
            .collect();
        certificates.push(CertView {
            site: entry.site,
            serial: entry.serial,
            nodes,
        });
    }
    let nodes = (known.iter())
        .map(|n| NodeView {
            node: n.clone(),
            alive: live.contains(n),
        })
        .collect();
    Ok(ClusterView {
        nodes,
        certificates,
    })
}

fn node_state(node: &str, alive: bool, serial: &str, s: Option<&NodeStatus>) -> CertNodeView {
    let name = |st: NodeState| {
        serde_json::to_value(st)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (state, reason) = match s {
        Some(s) if s.serial == serial => (name(s.state), s.reason.clone()),
        Some(s) if !alive => (
            name(NodeState::Unreachable),
            Some(format!(
                "last reported {} for serial {}",
                name(s.state),
                s.serial
            )),
        ),
        None if !alive => (name(NodeState::Unreachable), None),
        _ => ("pending".to_string(), None),
    };
    CertNodeView {
        node: node.to_string(),
        state,
        reason,
    }
}

/// The view as human lines.
pub fn render(view: &ClusterView) -> String {
    let mut out = String::from("Nodes:");
    for n in &view.nodes {
        let alive = if n.alive { "alive" } else { "unreachable" };
        out.push_str(&format!(" {} ({alive})", n.node));
    }
    if view.nodes.is_empty() {
        out.push_str(" none (no agent has run yet)");
    }
    out.push('\n');
    for c in &view.certificates {
        out.push_str(&format!("{}  serial {}\n", c.site, c.serial));
        for n in &c.nodes {
            let reason = n
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            out.push_str(&format!("  {:<16} {}{reason}\n", n.node, n.state));
        }
    }
    out
}

/// `status --cluster [--json]`.
pub fn run(ctx: &crate::commands::Context) -> crate::exit::CommandResult {
    use crate::exit::{ExitStatus, Failure};
    let config = ctx.load_config()?;
    let Some(cluster) = Cluster::connect(&config, &ctx.config_dir())? else {
        return Err(Failure::usage(anyhow::anyhow!(
            "status --cluster needs [cluster] backend = \"etcd\" in {}",
            ctx.config_path().display()
        )));
    };
    let view = view(&cluster).map_err(Failure::failed)?;
    if ctx.global.json {
        let value = serde_json::to_value(&view).map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
        crate::commands::print_json(&value);
    } else {
        print!("{}", render(&view));
    }
    let failed = (view.certificates.iter())
        .flat_map(|c| &c.nodes)
        .any(|n| n.state == "failed");
    Ok(if failed {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    })
}
