//! Installing: every issued certificate (and every reinstall of our existing one) in one
//! transaction with one reload, proven by handshake ([`crate::install::install_batch`]); then the
//! order records, lineages and results are updated and the user's hooks run (pre before, one
//! deploy per certificate, post after).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

use super::Run;
use crate::hooks::HookKind;
use crate::install::{self, Issued};
use crate::lifecycle;
use crate::orders::{OrderRecord, RecordState};
use crate::site::Site;

/// Installs what is ready: `reinstall` sites get their live certificate back, `issued` orders
/// theirs (taken: each certificate is held once, in the batch). `wanted` is, per site, the names
/// it wants (for the lineage).
pub fn run(
    run: &mut Run,
    reinstall: &[Site],
    issued: Vec<(Site, OrderRecord)>,
    wanted: &BTreeMap<String, Vec<String>>,
) {
    let mut batch = reinstalls(run, reinstall);
    batch.extend(issued_batch(run, issued));
    if batch.is_empty() {
        // Take the temporary validation locations out of the running nginx.
        run.settle_reload();
        return;
    }
    run.say(format!("Installing {} certificate(s) …", batch.len()));
    run_hook(run, HookKind::Pre, None, &[]);
    // The install takes the batch: each certificate's PEMs go once its files are written.
    let certs: Vec<(String, Vec<String>)> = (batch.iter())
        .map(|item| (item.site.clone(), item.names.clone()))
        .collect();
    let (state_dir, config_dir, now) = (&run.state_dir, &run.env.config_dir, run.ctx.now());
    // With the state on this host, the records are written (each flushed, beside its record)
    // while nginx checks, reloads and answers the handshakes, and put in place once the install
    // is proven. A cluster's records are mirrored as they are saved: saved after the proof.
    let local = matches!(
        crate::cluster::current(),
        crate::cluster::StateBackend::Local
    );
    let stage = || {
        local.then(|| {
            crate::bounded::map(&certs, install::WRITE_CONCURRENCY, |(site, names)| {
                stage_install(state_dir, config_dir, (site, names), wanted, now)
            })
        })
    };
    let (outcome, staged) = install::install_owned_alongside(&run.env, batch, now, stage);
    let staged = staged.flatten();
    // What the install read and planned is dropped; recording it starts from a small footprint.
    super::give_back_freed_memory();
    run.report.reloads += 1;
    run.report.nginx_tests += 1;
    match outcome {
        Ok(_txn) => {
            // Its reload also took out what was put back before (temporary locations, a
            // killed run's edits). A failed install may not have reloaded: the debt stays.
            run.reload_owed = false;
            let records = crate::timings::Phase::start("records");
            let stored = match staged {
                Some(staged) => put_in_place(staged),
                // The records of many certificates at once (each is flushed on its own), each
                // certificate read back from the live files the install wrote and proved.
                None => crate::bounded::map(&certs, install::WRITE_CONCURRENCY, |(site, names)| {
                    let item = install::read_live(config_dir, site, names)?;
                    record_install(state_dir, &item, wanted, now)?;
                    Ok(Recorded::of(item))
                }),
            };
            for ((site, names), stored) in certs.iter().zip(stored) {
                installed(run, site, names, stored);
            }
            drop(records);
            hooks_after(run, &certs);
        }
        Err(e) => {
            for staged in staged.into_iter().flatten().flatten() {
                staged.discard();
            }
            for (site, _) in &certs {
                run.fail(site, format!("{e:#}"));
            }
            run_hook(run, HookKind::Post, None, &[]);
        }
    }
}

/// One certificate's records, written and flushed beside the records they replace
/// ([`crate::store::StagedFile`]): the order record marked installed, the new lineage.
struct StagedInstall {
    order: Option<crate::store::StagedFile>,
    lineage: Option<crate::store::StagedFile>,
    not_after: Option<String>,
}

impl StagedInstall {
    /// Drops the staged records (the install failed: the records stay as they were).
    fn discard(self) {
        self.order
            .into_iter()
            .chain(self.lineage)
            .for_each(|s| s.discard());
    }
}

/// What [`record_install`] would write for one proven install of `site` (its certificate read
/// back from the live files the install wrote), staged instead of put in place.
fn stage_install(
    state_dir: &Path,
    config_dir: &Path,
    (site, names): (&str, &[String]),
    wanted: &BTreeMap<String, Vec<String>>,
    now: i64,
) -> anyhow::Result<StagedInstall> {
    let item = install::read_live(config_dir, site, names)?;
    let mut order_of = None;
    let mut order = None;
    if let Ok(Some(mut record)) = OrderRecord::load(state_dir, site) {
        installed_state(&mut record);
        order_of = Some((record.provider.clone(), record.order_id.clone()));
        // As when it is saved at once: a record that cannot be written is not an error here.
        order = record.stage_save(state_dir).ok();
    }
    let wanted = wanted.get(site).cloned().unwrap_or_default();
    let lineage = lifecycle::lineage_after_install(state_dir, &item, &wanted, now, || Ok(order_of));
    let staged = lineage.and_then(|l| l.map(|l| l.stage_save(state_dir)).transpose());
    match staged {
        Ok(lineage) => Ok(StagedInstall {
            order,
            lineage,
            not_after: Recorded::of(item).not_after,
        }),
        Err(e) => {
            order.into_iter().for_each(|s| s.discard());
            Err(e)
        }
    }
}

/// Puts every staged record in place (after the install was proven), then flushes each
/// directory once; per certificate, what recording it kept for its report.
fn put_in_place(staged: Vec<anyhow::Result<StagedInstall>>) -> Vec<anyhow::Result<Recorded>> {
    let mut dirs = Vec::new();
    let mut out = Vec::with_capacity(staged.len());
    for one in staged {
        out.push(one.and_then(|s| {
            if let Some(order) = s.order {
                dirs.push(order.dir().to_path_buf());
                // As when it is saved at once: not putting it in place is not an error here.
                let _ = order.put_in_place();
            }
            if let Some(lineage) = s.lineage {
                dirs.push(lineage.dir().to_path_buf());
                lineage.put_in_place()?;
            }
            Ok(Recorded {
                not_after: s.not_after,
                for_cluster: None,
            })
        }));
    }
    if let Err(e) = crate::store::sync_dirs(dirs.iter().map(PathBuf::as_path)) {
        tracing::warn!("{e:#}");
    }
    out
}

/// Our existing certificates for the sites whose configuration lost them.
fn reinstalls(run: &mut Run, sites: &[Site]) -> Vec<Issued> {
    let mut batch = Vec::new();
    for site in sites {
        let live = lifecycle::Lineage::load(&run.state_dir, &site.name)
            .and_then(|l| l.ok_or_else(|| anyhow!("{}: no managed certificate", site.name)))
            .and_then(|l| lifecycle::live_issued(&run.env.config_dir, &l));
        match live {
            Ok(item) => {
                run.say(format!(
                    "  {}: the configuration no longer serves our certificate; putting it back",
                    site.name
                ));
                run.result(&site.name).reinstalled = true;
                batch.push(item);
            }
            Err(e) => run.fail(&site.name, format!("{e:#}")),
        }
    }
    batch
}

/// The issued certificates with their pending keys, read from disk (the run holds an issued
/// record without its chain: [`OrderRecord::without_chain`]), many at once. The rest of each
/// record (CSR, validation details) is dropped here: the install reloads the record from disk
/// when it records itself.
fn issued_batch(run: &mut Run, issued: Vec<(Site, OrderRecord)>) -> Vec<Issued> {
    let state_dir = &run.state_dir;
    let read = crate::bounded::map(&issued, install::WRITE_CONCURRENCY, |(site, record)| {
        let key = std::fs::read_to_string(OrderRecord::key_path(state_dir, &site.name))
            .with_context(|| format!("{}: the pending private key is missing", site.name));
        (key, record.issued_chain(state_dir))
    });
    let mut batch = Vec::with_capacity(issued.len());
    for ((site, record), read) in issued.into_iter().zip(read) {
        match read {
            (Ok(key_pem), Some(fullchain_pem)) => batch.push(Issued {
                site: site.name,
                names: record.names,
                fullchain_pem,
                key_pem,
            }),
            (Err(e), _) => run.fail(&site.name, format!("{e:#}")),
            (_, None) => run.fail(
                &site.name,
                "the record says issued but holds no certificate",
            ),
        }
    }
    batch
}

/// Records one proven install on disk: the order record, the lineage.
fn record_install(
    state_dir: &Path,
    item: &Issued,
    wanted: &BTreeMap<String, Vec<String>>,
    now: i64,
) -> anyhow::Result<()> {
    if let Ok(Some(mut record)) = OrderRecord::load(state_dir, &item.site) {
        installed_state(&mut record);
        let _ = record.save(state_dir);
    }
    let names = wanted.get(&item.site).cloned().unwrap_or_default();
    lifecycle::note_installed(state_dir, item, &names, now)
}

/// Marks an order record installed.
fn installed_state(record: &mut OrderRecord) {
    record.state = RecordState::Installed;
    record.last_error = None;
    // What it published for validation was removed when it was issued
    // (`leftovers::remove_files_keeping_the_list`); DNS records whose removal failed stay.
    record.published_files.clear();
    record.published_dirs.clear();
}

/// What recording one proven install keeps for its report: the leaf's expiry, and the
/// certificate itself only when a cluster must be told of it.
struct Recorded {
    not_after: Option<String>,
    for_cluster: Option<Issued>,
}

impl Recorded {
    fn of(item: Issued) -> Recorded {
        let not_after = crate::tlsinfo::summarize_pem(item.fullchain_pem.as_bytes())
            .ok()
            .map(|s| rfc3339(s.not_after));
        let local = matches!(
            crate::cluster::current(),
            crate::cluster::StateBackend::Local
        );
        Recorded {
            not_after,
            for_cluster: (!local).then_some(item),
        }
    }
}

/// Reports one proven install of `site` for `names` (`stored`: how recording it went) in the
/// site's result.
fn installed(run: &mut Run, site: &str, names: &[String], stored: anyhow::Result<Recorded>) {
    let recorded = stored.unwrap_or_else(|e| {
        run.say(format!("  {site}: could not record the install: {e:#}"));
        Recorded {
            not_after: None,
            for_cluster: None,
        }
    });
    let shared = match &recorded.for_cluster {
        Some(item) => crate::cluster::current().installed(item),
        None => Ok(()),
    };
    if let Err(e) = shared {
        run.fail(
            site,
            format!("installed and verified here, but not shared with the cluster: {e:#}"),
        );
    }
    let (cert, _) = install::live_paths(&run.env.config_dir, site);
    let result = run.result(site);
    result.names_issued = names.to_vec();
    result.cert_path = Some(cert.display().to_string());
    result.not_after = recorded.not_after;
    run.say(format!("  {site}: HTTPS verified for {}", names.join(", ")));
}

/// Unix seconds as RFC 3339 (empty when out of range).
fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The deploy hook per certificate, then the post hook with every live directory.
fn hooks_after(run: &mut Run, certs: &[(String, Vec<String>)]) {
    for (site, names) in certs {
        let (cert, _) = install::live_paths(&run.env.config_dir, site);
        let live_dir = cert.parent().map(Path::to_path_buf).unwrap_or_default();
        let env = crate::hooks::deploy_env(&live_dir, names);
        run_hook(run, HookKind::Deploy, Some(site), &env);
    }
    let lineages: Vec<String> = certs
        .iter()
        .filter_map(|(site, _)| {
            let (cert, _) = install::live_paths(&run.env.config_dir, site);
            cert.parent().map(|d| d.display().to_string())
        })
        .collect();
    run_hook(
        run,
        HookKind::Post,
        None,
        &[("ENC365_LINEAGES", lineages.join(" "))],
    );
}

/// Runs one of the configured hooks (if set), reporting a failure on stderr and in `--json`. The
/// post hook runs only when the pre hook ran (or none is configured).
fn run_hook(run: &mut Run, hook: HookKind, site: Option<&str>, env: &[(&str, String)]) {
    let Some(command) = run.hooks.command(hook).map(str::to_string) else {
        return;
    };
    if hook == HookKind::Post
        && !run.report.hook_runs.iter().any(|h| h.hook == HookKind::Pre)
        && run.hooks.pre.is_some()
    {
        return;
    }
    let outcome = crate::hooks::run(hook, site, &command, env);
    if let Some(error) = &outcome.error {
        run.say(format!("  {error}"));
    }
    run.report.hook_runs.push(outcome);
}
