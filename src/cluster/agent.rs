//! `enc365-nginx agent`: a node's side of the cluster. It keeps `/nodes/<node>` alive, serves
//! the validation files the orderer publishes ([`super::dcv::serve`]) and installs the shared
//! certificates this node lacks ([`super::certs::install_missing`]), writing its status.
//! `--once` makes one pass and exits (0 when everything it did succeeded, 1 otherwise);
//! otherwise it watches the cluster prefix and makes a pass on every change (and every 30
//! seconds), and when etcd goes away it keeps nginx as it is, reconnects, and catches up.
//!
//! A pass takes the local run lock (an `auto` on this node holds it: the pass waits for the
//! next change; `--once` exits 3). The ordering node waits for the acks of the other nodes
//! only, so its own run never waits for its own agent.

use std::time::Duration;

use super::{Cluster, liveness};
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::install::Environment;

/// How often a watching agent makes a pass without any change.
const IDLE_PASS: Duration = Duration::from_secs(30);
/// How long to wait before reconnecting to etcd.
const RECONNECT: Duration = Duration::from_secs(3);

/// Runs the agent.
pub fn run(ctx: &Context, once: bool, http_port: u16) -> CommandResult {
    let config = ctx.load_config()?;
    let env = ctx.environment(&config)?;
    let not_a_cluster = || {
        Failure::usage(anyhow::anyhow!(
            "the agent needs [cluster] backend = \"etcd\" in {}",
            ctx.config_path().display()
        ))
    };
    if Cluster::settings(&config, &env.config_dir)?.is_none() {
        return Err(not_a_cluster());
    }
    crate::store::ensure_state_dir(&env.state_dir).map_err(Failure::usage)?;
    if once {
        let cluster = Cluster::connect(&config, &env.config_dir)?.ok_or_else(not_a_cluster)?;
        let lease = liveness::announce(&cluster).map_err(Failure::failed)?;
        let ok = pass(&cluster, &env, ctx, (true, http_port));
        let _ = cluster.etcd.revoke(lease);
        return Ok(if ok? {
            ExitStatus::Success
        } else {
            ExitStatus::Failed
        });
    }
    loop {
        match Cluster::connect(&config, &env.config_dir) {
            Ok(Some(cluster)) => {
                if let Err(e) = watch(&cluster, &env, ctx, http_port) {
                    eprintln!(
                        "etcd went away ({e:#}); nginx keeps serving what it has, reconnecting …"
                    );
                }
            }
            Ok(None) => return Err(not_a_cluster()),
            Err(f) if f.status == ExitStatus::Usage => return Err(f),
            Err(f) => eprintln!("{f}; retrying in {} seconds", RECONNECT.as_secs()),
        }
        std::thread::sleep(RECONNECT);
    }
}

/// Announces the node, catches up, then makes a pass on every change until etcd goes away.
fn watch(
    cluster: &Cluster,
    env: &Environment,
    ctx: &Context,
    http_port: u16,
) -> anyhow::Result<()> {
    liveness::announce(cluster)?;
    let mut stream = cluster.etcd.watch_all(0)?;
    if let Err(f) = pass(cluster, env, ctx, (true, http_port)) {
        eprintln!("{f}");
    }
    loop {
        cluster.etcd.wait(&mut stream, IDLE_PASS)?;
        // Let a burst of changes settle into one pass.
        while cluster.etcd.wait(&mut stream, Duration::from_millis(100))? {}
        if let Err(f) = pass(cluster, env, ctx, (false, http_port)) {
            eprintln!("{f}");
        }
    }
}

/// One pass: validation files, then certificates, under the local run lock. `retry_failed`:
/// see [`super::certs::install_missing`]; `http_port`: see [`super::serve::serve`]. True when
/// all went well; an error when etcd failed.
fn pass(
    cluster: &Cluster,
    env: &Environment,
    ctx: &Context,
    (retry_failed, http_port): (bool, u16),
) -> Result<bool, Failure> {
    let now = ctx.now();
    let _lock = crate::store::RunLock::acquire(&env.state_dir)?;
    let served = super::serve::serve(cluster, env, now, http_port).map_err(Failure::failed)?;
    let say = |m: String| eprintln!("{m}");
    let certs = super::certs::install_missing(cluster, env, now, retry_failed, &say)
        .map_err(Failure::failed)?;
    Ok(served && certs.ok)
}
