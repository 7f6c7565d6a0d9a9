//! Cluster mode on etcd (issue 18): several nginx nodes serve the same sites; one of them orders
//! each certificate, every node answers the CA's HTTP validation and installs the certificate.
//! The local state directory stays the working copy on each node (and backups and transactions
//! stay local); etcd holds what the nodes share, under `[cluster] prefix` (keys: [`keys`]).
//!
//! - [`etcd`]: the connection (endpoints, TLS, timeouts); a down etcd is [`etcd::EtcdDown`].
//! - [`seal`]: private keys sealed with the cluster key (AES-256-GCM, associated data = the
//!   absolute etcd key).
//! - [`lock`]: the orderer's run lock, a create-if-absent key on a lease.
//! - [`mirror`]: order records (and their sealed keys) pushed at every save, pulled at start.
//! - [`backend`]: the state backend the pipeline calls at its persist points ([`StateBackend`]:
//!   `Local` does nothing more than today; `Etcd` mirrors), and the [`Orderer`] a run holds.
//! - [`dcv`]: validation files published for every node, and the wait for their acks;
//!   [`serve`]: an agent serving them (webroot, or a temporary location) and acking.
//! - [`certs`]: certificates shared after the orderer's proven install, and installed by the
//!   other nodes with the same transaction as `auto`.
//! - [`liveness`], [`status`], [`agent`]: the agent's lease, per-node status, the agent loop.
//!
//! Decisions where CLUSTER.md is silent:
//! - The cluster key file holds the 32 bytes as base64 on one line; `key_file` defaults to
//!   `<config-dir>/cluster.key`, `prefix` to `/enc365`, `node` to the short host name.
//! - `/lock` holds JSON `{node, pid, at}` on the orderer's lease; a held lock is exit 3 like the
//!   local lock, naming the node that holds it.
//! - `/certs/<stem>` also carries `fingerprint` (SHA-256 of the leaf, as the local lineage):
//!   a node installs an entry whose fingerprint differs from its lineage's.
//! - The orderer, after taking the lock, first installs every `/certs/` entry it lacks (the
//!   agent's certificate pass), so a node that runs `auto` late does not order again what
//!   another node already has.
//! - A DCV id is 32 hex digits of SHA-256 over `host\npath`. The orderer deletes the `/dcv/`
//!   entries (and their acks) it made when the site is installed and, for the rest, when its
//!   run ends.
//! - The agent serves DCV files through the site's webroot or, for a block without a usable one,
//!   through the same temporary location the pipeline adds (one transaction for all such sites,
//!   `nginx -t`, one reload; restored when no entry needs it any more, and before the agent
//!   installs a certificate). What it wrote is listed in `<state>/cluster-dcv.json` and removed
//!   when the entry goes.
//! - A node whose install of a serial failed does not retry that serial on every change (its
//!   watch would loop); `agent --once`, a new serial, or the agent's restart tries again. A
//!   failed batch is retried site by site, so one broken site fails alone.
//! - The agent installs with `redirect` and `hsts` off (as `auto` without those flags).
//! - `agent --once` revokes its liveness lease when it ends: a node without a running agent is
//!   not waited for (and shows as unreachable).
//! - Every node behind the balancer runs the agent, the ordering node's too (another node may
//!   order next time): the orderer waits for the live nodes only, so a node without a running
//!   agent behind a balancer makes the CA's check fail there.
//! - `agent --http-port N` (default 80) is where a temporary validation server would listen, as
//!   `auto --http-port`.
//! - `status --cluster` also shows `pending` (a live node with no status for the current serial
//!   yet) and `verifying` (an install started, not yet proven by handshake); it exits 1 when a
//!   node reports `failed`, like `status` for a failed site.
//! - The orderer is `auto`, `renew` and `reissue` (the pipeline's `prepare`); `certonly`,
//!   `cancel` and `revoke` work on the local state only.
//! - etcd calls are bounded (5 s each) and retried on another member when one is unreachable.

pub mod agent;
pub mod backend;
pub mod certs;
pub mod dcv;
pub mod etcd;
pub mod keys;
pub mod liveness;
pub mod lock;
pub mod mirror;
pub mod records;
pub mod seal;
pub mod serve;
pub mod status;

use std::path::Path;

pub use backend::{Orderer, StateBackend, current};

use crate::config::{Config, EtcdCluster};
use crate::exit::Failure;

/// A connected cluster: etcd, the cluster key, the settings.
#[derive(Debug)]
pub struct Cluster {
    /// The etcd connection.
    pub etcd: etcd::Etcd,
    /// The key that seals private keys.
    pub key: seal::ClusterKey,
    /// The checked `[cluster]` settings.
    pub settings: EtcdCluster,
}

impl Cluster {
    /// The checked etcd settings of `config`, `None` for the local backend (exit 2 when the
    /// table is wrong).
    pub fn settings(config: &Config, config_dir: &Path) -> Result<Option<EtcdCluster>, Failure> {
        match &config.cluster {
            None => Ok(None),
            Some(c) => c
                .etcd(config_dir)
                .map_err(|e| Failure::usage(anyhow::anyhow!(e))),
        }
    }

    /// Connects when `config` says `backend = "etcd"`: the cluster key is read first (a missing
    /// key is exit 2), then etcd is reached (down: exit 1, saying so and where).
    pub fn connect(config: &Config, config_dir: &Path) -> Result<Option<Cluster>, Failure> {
        let Some(settings) = Self::settings(config, config_dir)? else {
            return Ok(None);
        };
        let key = seal::ClusterKey::load(&settings.key_file).map_err(Failure::usage)?;
        let etcd = etcd::Etcd::connect(&settings).map_err(Failure::failed)?;
        Ok(Some(Cluster {
            etcd,
            key,
            settings,
        }))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// Seals `plain` for the relative etcd key `rel`.
    pub fn seal(&self, rel: &str, plain: &[u8]) -> anyhow::Result<String> {
        self.key.seal(&self.etcd.full_key(rel), plain)
    }

    /// Opens a value sealed for the relative etcd key `rel`.
    pub fn open(&self, rel: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.key.open(&self.etcd.full_key(rel), sealed)?)
    }
}

/// The current time, Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
