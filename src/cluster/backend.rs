//! The state backend the pipeline calls at its persist points — the run lock, each order-record
//! save, a validation file published before the CA is asked, a certificate after its proven
//! install. [`StateBackend::Local`] adds nothing to what the local directories already do
//! (today's behaviour); [`StateBackend::Etcd`] mirrors each point to etcd synchronously, and a
//! failed put is an error at that point, so the run stops before the side effect it protects.
//!
//! A run's [`Orderer`] (held by the pipeline's `Run`) connects, takes the cluster lock, pulls
//! the shared state and makes itself the process's current backend ([`current`]); the record
//! saves deep in the pipeline reach it there. Dropping it ends all that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::Cluster;
use crate::exit::Failure;
use crate::install::{Environment, Issued};
use crate::orders::OrderRecord;
use crate::publish::http::Written;

/// Where the state lives for this process.
#[derive(Debug, Clone)]
pub enum StateBackend {
    /// The local state directory only.
    Local,
    /// The local directory mirrored to etcd.
    Etcd(Arc<Active>),
}

/// The etcd backend of a running orderer.
#[derive(Debug)]
pub struct Active {
    /// The connection.
    pub cluster: Cluster,
    /// The local state directory it mirrors.
    pub state_dir: PathBuf,
    lock_lease: i64,
    /// Per site, SHA-256 of the pending key last pushed.
    pushed_keys: Mutex<BTreeMap<String, [u8; 32]>>,
    /// Per site, the DCV ids this run published.
    pub(super) dcv_made: Mutex<BTreeMap<String, Vec<String>>>,
}

static CURRENT: Mutex<Option<Arc<Active>>> = Mutex::new(None);

/// The backend of this process: etcd while an [`Orderer`] runs, else local.
pub fn current() -> StateBackend {
    match CURRENT.lock().ok().and_then(|c| c.clone()) {
        Some(active) => StateBackend::Etcd(active),
        None => StateBackend::Local,
    }
}

impl StateBackend {
    /// After a record was saved locally: push it (and a new pending key) to etcd.
    pub fn order_saved(&self, state_dir: &Path, record: &OrderRecord) -> anyhow::Result<()> {
        let StateBackend::Etcd(active) = self else {
            return Ok(());
        };
        if active.state_dir != state_dir {
            return Ok(());
        }
        let key = std::fs::read(OrderRecord::key_path(state_dir, &record.site)).ok();
        let digest: Option<[u8; 32]> = key.map(|k| Sha256::digest(&k).into());
        let mut pushed = active.pushed_keys.lock().map_err(|_| poisoned())?;
        let changed = digest.is_some() && pushed.get(&record.site) != digest.as_ref();
        super::mirror::push(&active.cluster, state_dir, record, changed)?;
        if let Some(d) = digest {
            pushed.insert(record.site.clone(), d);
        }
        Ok(())
    }

    /// After a record was discarded locally (nothing was created at the CA).
    pub fn order_discarded(&self, site: &str) {
        if let StateBackend::Etcd(active) = self
            && let Err(e) = super::mirror::discard(&active.cluster, site)
        {
            tracing::warn!("could not remove {site}'s order from etcd: {e:#}");
        }
    }

    /// After this node's own validation files for a batch of sites were written and
    /// self-checked, and before the CA is asked: every live node must serve them too. Returns
    /// the sites that cannot go on, with why (none with local state).
    pub fn dcv_published(&self, batch: &[(&str, &[Written])]) -> BTreeMap<String, anyhow::Error> {
        match self {
            StateBackend::Local => BTreeMap::new(),
            StateBackend::Etcd(active) => super::dcv::publish_all(active, batch),
        }
    }

    /// After this node's install of `item` was proven: share the certificate with the cluster.
    pub fn installed(&self, item: &Issued) -> anyhow::Result<()> {
        match self {
            StateBackend::Local => Ok(()),
            StateBackend::Etcd(active) => {
                super::certs::share(&active.cluster, item)?;
                super::dcv::withdraw_site(active, &item.site);
                Ok(())
            }
        }
    }
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("internal error: the cluster state lock is poisoned")
}

/// A run's hold on the cluster: connected, locked, pulled, current. Dropping it withdraws what
/// the run published, releases the lock and makes the backend local again.
#[derive(Debug)]
pub struct Orderer {
    active: Arc<Active>,
}

impl Orderer {
    /// For a config with `backend = "etcd"`: connects (etcd down: exit 1), takes the lock (held:
    /// exit 3), withdraws the validation files a dead orderer left, pulls the orders and installs the shared certificates this node lacks. `None`
    /// for the local backend.
    pub fn start(
        config: &crate::config::Config,
        env: &Environment,
        now: i64,
        say: &dyn Fn(String),
    ) -> Result<Option<Orderer>, Failure> {
        let Some(cluster) = Cluster::connect(config, &env.config_dir)? else {
            return Ok(None);
        };
        let lock_lease = super::lock::take(&cluster)?;
        // Only the lock's holder publishes validation files: any entry still there was left by
        // an orderer that died, and nothing will ever withdraw it but us.
        for prefix in [super::keys::DCV, super::keys::DCV_ACK] {
            cluster.etcd.delete(prefix, true).map_err(Failure::failed)?;
        }
        let active = Arc::new(Active {
            cluster,
            state_dir: env.state_dir.clone(),
            lock_lease,
            pushed_keys: Mutex::new(BTreeMap::new()),
            dcv_made: Mutex::new(BTreeMap::new()),
        });
        let orderer = Orderer { active };
        let pulled = super::mirror::pull(&orderer.active.cluster, &env.state_dir)
            .map_err(Failure::failed)?;
        for site in pulled {
            say(format!(
                "  {site}: the order persisted in the cluster is resumed here"
            ));
        }
        let catch_up = super::certs::install_missing(&orderer.active.cluster, env, now, true, say)
            .map_err(Failure::failed)?;
        if !catch_up.ok {
            say(
                "  some certificates of the cluster could not be installed here (see above)".into(),
            );
        }
        if let Ok(mut current) = CURRENT.lock() {
            *current = Some(orderer.active.clone());
        }
        Ok(Some(orderer))
    }

    /// The connected cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.active.cluster
    }
}

impl Drop for Orderer {
    fn drop(&mut self) {
        if let Ok(mut current) = CURRENT.lock() {
            *current = None;
        }
        super::dcv::withdraw_all(&self.active);
        let _ = self.active.cluster.etcd.revoke(self.active.lock_lease);
    }
}
