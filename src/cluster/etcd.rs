//! The connection to etcd: endpoints, TLS, timeouts, and the few calls the cluster code makes
//! (get, list by prefix, put, delete, create-if-absent, leases, watch), each bounded by a
//! timeout. The calls are synchronous: they run on a small runtime of their own, so the
//! pipeline (itself inside an async runtime) can make them at its persist points.
//!
//! Every key given here is relative to the cluster prefix (`/orders/x`); [`Etcd::full_key`] is
//! the absolute key. An unreachable etcd is [`EtcdDown`], whose message says so and names the
//! endpoints. Not here: what the keys mean ([`super::keys`]) or sealing ([`super::seal`]).

use std::sync::mpsc;
use std::time::Duration;

use anyhow::anyhow;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};

use crate::config::EtcdCluster;

/// How long one call may take before etcd counts as down.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// etcd could not be reached (or did not answer in time).
#[derive(Debug, thiserror::Error)]
#[error(
    "etcd is down: no answer from {endpoints} ({reason}). nginx keeps serving what it has and \
     nothing was changed; start etcd (or fix [cluster] endpoints) and run again"
)]
pub struct EtcdDown {
    /// The endpoints tried, comma-separated.
    pub endpoints: String,
    /// What the client said.
    pub reason: String,
}

/// A connected etcd client for one cluster prefix.
pub struct Etcd {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    prefix: String,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.prefix)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Etcd {
    /// Connects and checks etcd answers (one read), so a down etcd is found before anything
    /// else happens. TLS files that cannot be read are configuration errors (not [`EtcdDown`]).
    pub fn connect(cluster: &EtcdCluster) -> anyhow::Result<Etcd> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("enc365-etcd")
            .enable_all()
            .build()
            .map_err(|e| anyhow!("could not start the etcd client's runtime: {e}"))?;
        let options = options(cluster)?;
        let endpoints = cluster.endpoints.clone();
        let down = |reason: String| EtcdDown {
            endpoints: cluster.endpoints.join(", "),
            reason,
        };
        let (tx, rx) = mpsc::channel();
        let eps = endpoints.clone();
        runtime.spawn(async move {
            let connect = Client::connect(&eps, Some(options));
            let _ = tx.send(tokio::time::timeout(CALL_TIMEOUT, connect).await);
        });
        let client = match rx.recv() {
            Ok(Ok(Ok(client))) => client,
            Ok(Ok(Err(e))) => return Err(down(e.to_string()).into()),
            Ok(Err(_)) => return Err(down("timed out".into()).into()),
            Err(_) => return Err(down("the client stopped".into()).into()),
        };
        let etcd = Etcd {
            runtime: Some(runtime),
            client,
            prefix: cluster.prefix.clone(),
            endpoints,
        };
        etcd.call("read", |mut c| async move {
            c.get("/", Some(GetOptions::new().with_count_only())).await
        })?;
        Ok(etcd)
    }

    /// The absolute key of `rel` (`<prefix><rel>`): also the associated data of a sealed value.
    pub fn full_key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// Runs one etcd call on the client's runtime and waits for it, each attempt bounded by the
    /// timeout. A member that cannot be reached (connection refused, gRPC `UNAVAILABLE`) is
    /// skipped by trying again, up to once per endpoint more: the balanced channel then picks
    /// another member, so a cluster with a quorum answers with one member down.
    fn call<T, F>(&self, what: &str, f: impl Fn(Client) -> F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| anyhow!("etcd closed"))?;
        let down = |reason: String| EtcdDown {
            endpoints: self.endpoints.join(", "),
            reason: format!("{what}: {reason}"),
        };
        let mut last = String::new();
        for attempt in 0..=self.endpoints.len() {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            let future = f(self.client.clone());
            let (tx, rx) = mpsc::channel();
            runtime.spawn(async move {
                let _ = tx.send(tokio::time::timeout(CALL_TIMEOUT, future).await);
            });
            match rx.recv() {
                Ok(Ok(Ok(value))) => return Ok(value),
                Ok(Ok(Err(e))) if unreachable_member(&e) => last = e.to_string(),
                Ok(Ok(Err(e))) => return Err(down(e.to_string()).into()),
                Ok(Err(_)) => last = "timed out".into(),
                Err(_) => return Err(down("the client stopped".into()).into()),
            }
        }
        Err(down(last).into())
    }

    /// The value at `rel`, if any.
    pub fn get(&self, rel: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = self.full_key(rel);
        let kvs = self.call(&format!("get {key}"), |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        })?;
        Ok(kvs.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every key under `rel` (relative keys, sorted), with its value.
    pub fn list(&self, rel: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let key = self.full_key(rel);
        let response = self.call(&format!("list {key}"), |mut c| {
            let key = key.clone();
            async move { c.get(key, Some(GetOptions::new().with_prefix())).await }
        })?;
        let skip = self.prefix.len();
        Ok(response
            .kvs()
            .iter()
            .filter_map(|kv| {
                let k = std::str::from_utf8(kv.key()).ok()?;
                Some((k.get(skip..)?.to_string(), kv.value().to_vec()))
            })
            .collect())
    }

    /// Writes `value` at `rel`, attached to `lease` when given.
    pub fn put(&self, rel: &str, value: Vec<u8>, lease: Option<i64>) -> anyhow::Result<()> {
        let key = self.full_key(rel);
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        self.call(&format!("put {key}"), |mut c| {
            let (key, value, options) = (key.clone(), value.clone(), options.clone());
            async move { c.put(key, value, options).await }
        })?;
        Ok(())
    }

    /// Deletes `rel` (and, with `prefix`, every key under it).
    pub fn delete(&self, rel: &str, prefix: bool) -> anyhow::Result<()> {
        let key = self.full_key(rel);
        let options = prefix.then(|| DeleteOptions::new().with_prefix());
        self.call(&format!("delete {key}"), |mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.delete(key, options).await }
        })?;
        Ok(())
    }

    /// Writes `value` at `rel` only when the key does not exist; true when written.
    pub fn create(&self, rel: &str, value: Vec<u8>, lease: Option<i64>) -> anyhow::Result<bool> {
        let key = self.full_key(rel);
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, options)]);
        let response = self.call(&format!("create {key}"), |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        Ok(response.succeeded())
    }

    /// Grants a lease of `ttl` seconds and keeps it alive in the background until revoked or
    /// this client is dropped (a process that dies stops renewing it: etcd drops it after `ttl`).
    pub fn lease(&self, ttl: u64) -> anyhow::Result<i64> {
        let granted = self.call("lease grant", move |mut c| async move {
            c.lease_grant(ttl as i64, None).await
        })?;
        let id = granted.id();
        let mut client = self.client.clone();
        let every = Duration::from_millis((ttl * 1000 / 3).max(500));
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                loop {
                    let kept = async {
                        let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
                        loop {
                            keeper.keep_alive().await?;
                            match stream.message().await? {
                                Some(r) if r.ttl() > 0 => tokio::time::sleep(every).await,
                                _ => return Ok::<(), etcd_client::Error>(()),
                            }
                        }
                    };
                    match kept.await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!("keeping the etcd lease alive: {e}"),
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        Ok(id)
    }

    /// Revokes a lease: every key attached to it goes at once.
    pub fn revoke(&self, lease: i64) -> anyhow::Result<()> {
        self.call("lease revoke", move |mut c| async move {
            c.lease_revoke(lease).await
        })?;
        Ok(())
    }

    /// Starts a watch on every key under the prefix, from `revision` on (0: from now).
    pub fn watch_all(&self, revision: i64) -> anyhow::Result<WatchStream> {
        let key = self.full_key("/");
        let mut options = WatchOptions::new().with_prefix();
        if revision > 0 {
            options = options.with_start_revision(revision);
        }
        self.call("watch", |mut c| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.watch(key, Some(options)).await }
        })
    }

    /// Waits up to `timeout` for the next batch of events on `stream`: true when something
    /// changed, false on timeout; an error when the watch broke (etcd went away).
    pub fn wait(&self, stream: &mut WatchStream, timeout: Duration) -> anyhow::Result<bool> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| anyhow!("etcd closed"))?;
        let answer =
            runtime.block_on(async { tokio::time::timeout(timeout, stream.message()).await });
        match answer {
            Err(_) => Ok(false),
            Ok(Ok(Some(r))) if !r.canceled() => Ok(true),
            Ok(Ok(_)) => Err(anyhow!("the etcd watch ended")),
            Ok(Err(e)) => Err(anyhow!("the etcd watch broke: {e}")),
        }
    }
}

/// Whether an error means the member asked could not be reached (another may answer): a
/// transport error, or gRPC status 14 `UNAVAILABLE`.
fn unreachable_member(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => i32::from(status.code()) == 14,
        _ => false,
    }
}

/// The client options: timeouts and, when configured, TLS.
fn options(cluster: &EtcdCluster) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(CALL_TIMEOUT)
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    let read = |p: &std::path::Path| {
        std::fs::read(p)
            .map_err(|e| anyhow!("could not read {} ([cluster] TLS file): {e}", p.display()))
    };
    if cluster.ca_file.is_some() || cluster.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &cluster.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&cluster.cert_file, &cluster.cert_key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls);
    }
    Ok(options)
}
