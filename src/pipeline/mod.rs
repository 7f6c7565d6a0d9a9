//! The order pipeline every ordering command shares (`auto`, `plan`, `renew`, `reissue`): from a
//! selection of sites to verified HTTPS, each stage a small module with a typed result.
//!
//! 1. [`prepare`]: lock, restore what a killed run left open, read the nginx configuration; then,
//!    only when there is something to do, [`check_nginx`]: `nginx -t` passes before anything is
//!    touched;
//! 2. [`select`]: which sites, and what to do with each ([`crate::lifecycle::Planned`]);
//! 3. [`preflight`]: each name resolves in DNS and a probe file published the way the validation
//!    file will be is really served by this nginx for that Host;
//! 4. [`order`]: key + CSR, the order placed in persisted steps (the record is saved before each
//!    CA call and after each answer), or resumed;
//! 5. [`validate`]: publish what the CA asks for, check it is served, ask the CA to check, poll
//!    by the provider's policy;
//! 6. [`install`]: every issued certificate in one transaction with one reload, proven by
//!    handshake, with the user's hooks;
//! 7. [`report`]: one reporter for the human lines and the `--json` document.
//!
//! Reloads only when they serve a purpose: one when temporary validation locations are needed
//! (only for sites that passed every other check and still have something to validate), one
//! for the install, which also takes out the temporary locations and any a killed run left; a
//! run that installs nothing reloads once more only to take out what it (or a killed run)
//! added. Not here: parsing options (the commands) or talking HTTP to a CA ([`crate::ca`]).

pub mod ari;
pub mod cancel;
pub mod certonly;
pub mod domains;
pub mod dry_run;
pub mod install;
pub mod leftovers;
pub mod order;
pub mod preflight;
pub mod preview;
pub mod probes;
pub mod report;
pub mod resume;
pub mod routes;
pub mod select;
pub mod staged;
pub mod validate;
pub mod worker_access;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;

use crate::cli::AutoArgs;
use crate::commands::Context;
use crate::discovery::{self, Discovery};
use crate::exit::{CommandResult, Failure};
use crate::install::Environment;
use crate::lifecycle::Planned;
use crate::store::{RunLock, Transaction, TxnState};

pub use report::{AutoJson, Report, SiteResult};

/// Everything a run works with.
pub struct Run<'a> {
    /// The command's context (global options).
    pub ctx: &'a Context,
    /// The pipeline options.
    pub args: &'a AutoArgs,
    /// Where nginx and the files live, and how to reload.
    pub env: Environment,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Our own directory for validation files served by a temporary location.
    pub dcv_dir: PathBuf,
    /// The command, for the last-run record (`auto`, `renew`, `reissue`).
    pub command: &'static str,
    /// The loaded configuration.
    pub config: crate::config::Config,
    /// Per site, the order a new order renews.
    pub renews: BTreeMap<String, String>,
    /// The hooks to run.
    pub hooks: crate::hooks::Hooks,
    /// What the run did, per site, for the summary and `--json`.
    pub report: Report,
    /// The configuration on disk differs from what the running nginx loaded (files of a killed
    /// run, or this run's temporary locations, were put back): the next reload is owed, and
    /// the end of the run makes it when no install did.
    pub reload_owed: bool,
    /// In cluster mode, the run's hold on the cluster (lock, mirror); `None` with local state.
    pub cluster: Option<crate::cluster::Orderer>,
    /// How long the last `nginx -t` took: a reload reads as much ([`crate::install::reload_waits`]).
    pub nginx_t_took: Duration,
    /// `nginx -t` passed on the configuration as the run found it ([`check_nginx`]), or on it
    /// with this run's temporary validation locations ([`routes::apply_temporary`]).
    pub nginx_checked: bool,
    _lock: Option<RunLock>,
}

impl Run<'_> {
    /// Reloads nginx, counting the reload for the report.
    pub fn reload(&mut self) -> anyhow::Result<()> {
        self.reload_as(false)
    }

    /// [`Run::reload`] right after `nginx -t` passed on the configuration: nginx reads it once,
    /// in the master ([`crate::nginx::control::NginxBinary::reload_tested_within`]).
    pub fn reload_tested(&mut self) -> anyhow::Result<()> {
        self.reload_as(true)
    }

    /// [`Run::reload`] (`tested`: [`Run::reload_tested`]).
    fn reload_as(&mut self, tested: bool) -> anyhow::Result<()> {
        tracing::info!(method = ?self.env.reload, "reloading nginx");
        let nginx = &self.env.nginx;
        let reload = if tested {
            crate::nginx::control::NginxBinary::reload_tested_within
        } else {
            crate::nginx::control::NginxBinary::reload_within
        };
        reload(
            nginx,
            &self.env.paths,
            &self.env.reload,
            &self.env.pid_file,
            crate::install::reload_waits(self.nginx_t_took),
        )?;
        self.report.reloads += 1;
        self.reload_owed = false;
        Ok(())
    }

    /// Makes the reload owed, if any (see [`Run::reload_owed`]).
    pub fn settle_reload(&mut self) {
        if self.reload_owed
            && crate::nginx::control::master_pid(&self.env.pid_file).is_some()
            && let Err(e) = self.reload()
        {
            self.say(format!("could not reload nginx: {e:#}"));
        }
    }
}

impl Drop for Run<'_> {
    /// A run that stops early (an error after a killed run's files were put back) still makes
    /// the reload it owes, so the running nginx matches the files.
    fn drop(&mut self) {
        self.settle_reload();
    }
}

/// Loads the configuration, takes the lock (unless a dry run), restores what a killed run left
/// open and reads the nginx configuration. `nginx -t` is [`check_nginx`], run once there is
/// something to do.
pub fn prepare<'a>(
    args: &'a AutoArgs,
    ctx: &'a Context,
    command: &'static str,
) -> Result<(Run<'a>, Discovery), Failure> {
    limit_malloc_arenas();
    let config = if args.dry_run {
        crate::config::Config::load_or_default(&ctx.config_path()).map_err(Failure::usage)?
    } else {
        ctx.load_config()?
    };
    let mut config = config;
    if let Some(key_type) = args.key_type {
        config.key_type = key_type;
    }
    if let Some(chain) = &args.preferred_chain {
        config.acme.get_or_insert_default().preferred_chain = Some(chain.clone());
    }
    let config_dir = ctx.config_dir();
    let state_dir = ctx.state_dir();
    for (dir, option) in [(&config_dir, "--config"), (&state_dir, "--state-dir")] {
        check_dir_for_nginx(dir, option)?;
    }
    let env = Environment {
        redirect: args.redirect,
        hsts: args.hsts,
        ..ctx.environment(&config)?
    };
    let hooks = crate::hooks::Hooks {
        pre: args.hooks.pre_hook.clone().or(config.pre_hook.clone()),
        post: args.hooks.post_hook.clone().or(config.post_hook.clone()),
        deploy: (args.hooks.deploy_hook.clone()).or(config.deploy_hook.clone()),
    };
    let mut run = Run {
        ctx,
        args,
        env,
        dcv_dir: crate::paths::dcv_dir(&state_dir),
        state_dir,
        command,
        config,
        renews: BTreeMap::new(),
        hooks,
        report: Report::default(),
        reload_owed: false,
        cluster: None,
        nginx_t_took: Duration::ZERO,
        nginx_checked: false,
        _lock: None,
    };
    if !args.dry_run {
        crate::store::ensure_state_dir(&run.state_dir).map_err(Failure::usage)?;
        run._lock = Some(RunLock::acquire(&run.state_dir)?);
        recover(&mut run)?;
        let say = |m: String| run.say(m);
        let orderer = crate::cluster::Orderer::start(&run.config, &run.env, ctx.now(), &say)?;
        run.cluster = orderer;
        sweep_leftovers(&run);
    }
    let discover = crate::timings::Phase::start("discover");
    let found = discovery::discover(&run.env.paths.conf, ctx.now(), 30).map_err(|e| {
        Failure::usage(anyhow!(
            "{e}\nNothing was changed. Fix the configuration, then check it with `nginx -t`."
        ))
    })?;
    drop(discover);
    Ok((run, found))
}

/// Checks `nginx -t` passes before anything is touched. Called only when the run will change
/// something (or preview a change): a run with nothing to do skips it — on a host with
/// thousands of certificates it is most of such a run's time — and relies on discover's own
/// parse, which already refused a configuration it cannot read.
pub fn check_nginx(run: &mut Run) -> Result<(), Failure> {
    let phase = crate::timings::Phase::start("nginx_t");
    let started = std::time::Instant::now();
    let test = run.env.nginx.test(&run.env.paths).map_err(Failure::usage)?;
    run.nginx_t_took = started.elapsed();
    drop(phase);
    run.report.nginx_tests += 1;
    if !test.ok {
        return Err(Failure::usage(anyhow!(
            "nginx -t fails before anything was changed; fix that first:\n{}",
            test.output.trim()
        )));
    }
    run.nginx_checked = true;
    Ok(())
}

/// Refuses a directory whose path nginx could not be pointed at as written: not UTF-8, or with a
/// `$` (nginx reads `$name` in `ssl_certificate` and `alias` as a variable, even in quotes).
fn check_dir_for_nginx(dir: &std::path::Path, option: &str) -> Result<(), Failure> {
    match dir.to_str() {
        Some(text) if !text.contains('$') => Ok(()),
        _ => Err(Failure::usage(anyhow!(
            "{} cannot be written into the nginx configuration (nginx reads `$` as a variable, \
             and the path must be UTF-8); give {option} a directory without them",
            dir.display()
        ))),
    }
}

/// Restores every transaction an earlier run left open, so we start from the user's files.
fn recover(run: &mut Run) -> Result<(), Failure> {
    let manifests =
        Transaction::list_open(&run.state_dir).map_err(|e| Failure::failed(anyhow!(e)))?;
    let mut restored = false;
    for m in manifests.iter().filter(|m| m.state == TxnState::Open) {
        run.say(format!(
            "Restoring the files of an interrupted run ({}: {}) …",
            m.id, m.label
        ));
        let mut txn =
            Transaction::open(&run.state_dir, &m.id).map_err(|e| Failure::failed(anyhow!(e)))?;
        txn.restore()
            .map_err(|e| Failure::failed(anyhow!("could not restore {}: {e}", m.id)))?;
        restored = true;
    }
    // The running nginx still has the killed run's edits; the install's reload (or one at the
    // end of the run) takes them out.
    run.reload_owed |= restored;
    Ok(())
}

/// The pipeline from preflight to proven install for a selection of sites: each is ordered (a
/// renewal when its action says so; a pending order is resumed) or, for
/// [`crate::lifecycle::Action::Reinstall`], gets our existing certificate back without a new
/// order. Prints the report and returns the exit status.
pub fn execute(mut run: Run, mut found: Discovery, selection: Vec<Planned>) -> CommandResult {
    let work = select::split(&mut run, selection);
    if work.order.is_empty() && work.reinstall.is_empty() {
        return report::finish(&mut run);
    }
    // From here on only the servers and the files' bytes are read (routes are planned and
    // temporary locations spliced at spans the servers hold): the parsed directives go before
    // the preflight's own memory is taken, so it reuses theirs.
    let worker = worker_access::worker_user(&found.config);
    found.config.release_directives();
    // The keys of the new orders are made from now on, on every core, while nginx is checked,
    // the sites probed and the orders before them placed and validated.
    let keys = order::start_keys(&run, &work.order);
    // When the preflight adds temporary validation locations, their own `nginx -t` (before any
    // order) checks the configuration too, and tells a configuration that failed before it was
    // touched from one our edit broke (`routes::apply_temporary`): one `nginx -t` less.
    if !preflight::may_add_locations(&run, &found, &work.order) {
        check_nginx(&mut run)?;
    }
    let ca = run.ctx.certificate_authority(&run.config)?;
    // Multi-threaded: several sites' CA calls and record writes run at once (see
    // `order::ca_concurrency`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("could not start the async runtime: {e}")))?;
    let settled = runtime.block_on(resume::settle(&mut run, ca.as_ref(), &work.order));
    // What discover and the selection freed goes back before the preflight's own memory.
    give_back_freed_memory();
    let preflight = crate::timings::Phase::start("preflight");
    let mut ready = preflight::run(&mut run, &found, work.order, (&settled, worker.as_ref()))?;
    drop(preflight);
    if !run.nginx_checked {
        // No temporary location was added after all: the check the run owes before ordering.
        check_nginx(&mut run)?;
    }
    // Nothing reads this configuration any more (the install reads it afresh): on a host with
    // thousands of sites it is most of the run's memory.
    drop(found);
    give_back_freed_memory();
    // Sites the preflight refused need no key.
    keys.limit(order::new_orders(&run, &ready.sites));
    let dns = validate::dns_publisher(&run);
    let orders = Orders {
        ca: ca.as_ref(),
        runtime: &runtime,
        keys: &keys,
        publications: &ready.publications,
        dns: &dns,
    };
    let dirs = validate::DirsMade::after_probes(ready.probes.take_made_dirs());
    let issued = orders.order_and_validate(&mut run, ready.sites, dirs);
    order::time_keys(&keys);
    drop(keys);
    drop(ready.publications);
    if let Some(mut txn) = ready.temporary {
        let _removing = crate::timings::Phase::start("remove_temporary");
        txn.restore().map_err(|e| {
            Failure::failed(anyhow!(
                "could not remove the temporary validation edits: {e}"
            ))
        })?;
        run.reload_owed = true;
    }
    // The validation's own memory (freed on the runtime's threads) goes back before the install
    // reads the configuration again.
    give_back_freed_memory();
    install::run(&mut run, &work.reinstall, issued, &work.wanted);
    // The probe files and the directories made for them go last.
    drop(ready.probes);
    report::finish(&mut run)
}

/// Caps glibc's malloc arenas at two (its default is eight per core, one per thread that meets
/// contention): the runtime's, the key pool's and the write workers' threads would each keep
/// their own heap, whose freed memory no other thread reuses — on a 10,000-site run that is tens
/// of megabytes of peak RSS for no speed (the work is bounded by two cores). One arena was
/// tried: RSA key threads then wait on its lock (about 10 s more CPU at 1,000 sites).
///
/// Also fixes the size from which a block gets its own mapping ([`MMAP_THRESHOLD`]). glibc's
/// default threshold rises to the size of every mapped block freed (up to 32 MiB), after which
/// the large, short-lived buffers of one phase (a batch's lists of thousands of entries) are
/// carved from the heap's top, and the small blocks allocated after them keep those pages
/// resident long after they are freed: at 10,000 sites the peak was 113 MiB with the default
/// and 107 MiB with the threshold fixed.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator parameters; M_ARENA_MAX takes any positive count,
    // M_MMAP_THRESHOLD any size up to 32 MiB.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Blocks of this many bytes or more are mapped on their own and unmapped when freed
/// ([`limit_malloc_arenas`]); glibc's starting value, kept fixed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Hands the memory freed so far back to the system (glibc keeps freed heap pages, per thread
/// arena, for later allocations): a phase that ends dropping much lets the next one start
/// from the smaller footprint, so the run's peak is one phase's, not the sum of several
/// phases' leftovers.
pub fn give_back_freed_memory() {
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the system.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Sites in a batch of orders below which slow keys are no longer worth splitting the batch.
const SMALLEST_BATCH: usize = 16;

/// How many of `left` sites the next batch of orders takes: half of them while `batches` (and
/// both halves would hold [`SMALLEST_BATCH`] sites), else all.
fn batch_len(left: usize, batches: bool) -> usize {
    if batches && left >= 2 * SMALLEST_BATCH {
        left / 2
    } else {
        left
    }
}

/// What ordering and validating needs besides the run.
struct Orders<'r> {
    ca: &'r dyn crate::ca::CertificateAuthority,
    runtime: &'r tokio::runtime::Runtime,
    keys: &'r crate::keys::pool::KeyPool,
    publications: &'r BTreeMap<String, crate::dcv::Publication>,
    dns: &'r crate::publish::dns::DnsPublisher,
}

impl Orders<'_> {
    /// Orders and validates `sites`; returns the issued orders, in the sites' order. With keys
    /// that are slow to make (RSA), in batches, each half of what is left: while one batch is
    /// validated and polled, the key pool makes the next batch's keys, so only the last (small)
    /// batch's validation waits on its own. Batches stop once a batch's validation took longer
    /// than its ordering (a CA slow to validate: there, more batches would only wait on it more
    /// often). `dirs`: the directories the preflight's probes made (see `validate::DirsMade`).
    fn order_and_validate(
        &self,
        run: &mut Run,
        mut sites: Vec<crate::site::Site>,
        mut dirs: validate::DirsMade,
    ) -> Vec<(crate::site::Site, crate::orders::OrderRecord)> {
        use crate::keys::KeyType;
        let slow_keys = !matches!(run.config.key_type, KeyType::EcdsaP256 | KeyType::EcdsaP384);
        let mut batches = slow_keys;
        let mut issued = Vec::new();
        while !sites.is_empty() {
            let later = sites.split_off(batch_len(sites.len(), batches));
            let started = std::time::Instant::now();
            let ordered =
                (self.runtime).block_on(order::place_with(run, self.ca, sites, self.keys));
            let ordering = started.elapsed();
            let started = std::time::Instant::now();
            let batch = validate::run(
                run,
                self.ca,
                ordered,
                self.publications,
                self.dns,
                &mut dirs,
            );
            issued.extend(self.runtime.block_on(batch));
            batches &= started.elapsed() < ordering;
            sites = later;
        }
        issued
    }
}

/// Removes what finished or abandoned orders left published (a killed run's files, DNS records
/// whose removal failed): every run tries, whether or not it has anything to order.
fn sweep_leftovers(run: &Run) {
    let dns = crate::publish::dns::DnsPublisher::new(run.config.dns.clone(), &run.args.dns_server)
        .unwrap_or_default();
    leftovers::sweep(&run.state_dir, &dns, &|m| run.say(m));
    probes::sweep(&run.state_dir, &|m| run.say(m));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_halve_what_is_left_down_to_the_smallest_and_one_batch_without_them() {
        let mut left = 1000;
        let mut lens = Vec::new();
        while left > 0 {
            let len = batch_len(left, true);
            lens.push(len);
            left -= len;
        }
        assert_eq!(lens, [500, 250, 125, 62, 31, 16, 16]);
        assert_eq!(batch_len(1000, false), 1000);
        assert_eq!(
            batch_len(2 * SMALLEST_BATCH - 1, true),
            2 * SMALLEST_BATCH - 1
        );
    }
}
