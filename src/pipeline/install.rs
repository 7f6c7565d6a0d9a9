//! Installing: every issued certificate (and every reinstall of our existing one) in one
//! transaction with one reload, proven by handshake ([`crate::install::install_batch`]); then the
//! order records, lineages and results are updated and the user's hooks run (pre before, one
//! deploy per certificate, post after).

use std::collections::BTreeMap;
use std::path::Path;

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
    let outcome = install::install_batch(&run.env, &batch, run.ctx.now());
    // What the install read and planned is dropped; recording it starts from a small footprint.
    super::give_back_freed_memory();
    run.report.reloads += 1;
    run.report.nginx_tests += 1;
    match outcome {
        Ok(_txn) => {
            // Its reload also took out what was put back before (temporary locations, a
            // killed run's edits). A failed install may not have reloaded: the debt stays.
            run.reload_owed = false;
            // The records of many certificates at once (each is flushed on its own).
            let (state_dir, now) = (&run.state_dir, run.ctx.now());
            let stored = crate::bounded::map(&batch, install::WRITE_CONCURRENCY, |item| {
                record_install(state_dir, item, wanted, now)
            });
            for (item, stored) in batch.iter().zip(stored) {
                installed(run, item, stored);
            }
            hooks_after(run, &batch);
        }
        Err(e) => {
            for item in &batch {
                run.fail(&item.site, format!("{e:#}"));
            }
            run_hook(run, HookKind::Post, None, &[]);
        }
    }
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

/// The issued certificates with their pending keys. The rest of each record (CSR, validation
/// details) is dropped here: the install reloads the record from disk when it records itself.
fn issued_batch(run: &mut Run, issued: Vec<(Site, OrderRecord)>) -> Vec<Issued> {
    let mut batch = Vec::with_capacity(issued.len());
    for (site, record) in issued {
        let key = std::fs::read_to_string(OrderRecord::key_path(&run.state_dir, &site.name))
            .with_context(|| format!("{}: the pending private key is missing", site.name));
        match (key, record.fullchain_pem) {
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
        record.state = RecordState::Installed;
        record.last_error = None;
        let _ = record.save(state_dir);
    }
    let names = wanted.get(&item.site).cloned().unwrap_or_default();
    lifecycle::note_installed(state_dir, item, &names, now)
}

/// Reports one proven install (`stored`: how recording it went) in the site's result.
fn installed(run: &mut Run, item: &Issued, stored: anyhow::Result<()>) {
    if let Err(e) = stored {
        run.say(format!(
            "  {}: could not record the install: {e:#}",
            item.site
        ));
    }
    if let Err(e) = crate::cluster::current().installed(item) {
        run.fail(
            &item.site,
            format!("installed and verified here, but not shared with the cluster: {e:#}"),
        );
    }
    let (cert, _) = install::live_paths(&run.env.config_dir, &item.site);
    let not_after = crate::tlsinfo::summarize_pem(item.fullchain_pem.as_bytes())
        .ok()
        .map(|s| rfc3339(s.not_after));
    let result = run.result(&item.site);
    result.names_issued = item.names.clone();
    result.cert_path = Some(cert.display().to_string());
    result.not_after = not_after;
    run.say(format!(
        "  {}: HTTPS verified for {}",
        item.site,
        item.names.join(", ")
    ));
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
fn hooks_after(run: &mut Run, batch: &[Issued]) {
    for item in batch {
        let (cert, _) = install::live_paths(&run.env.config_dir, &item.site);
        let live_dir = cert.parent().map(Path::to_path_buf).unwrap_or_default();
        let env = crate::hooks::deploy_env(&live_dir, &item.names);
        run_hook(run, HookKind::Deploy, Some(&item.site), &env);
    }
    let lineages: Vec<String> = batch
        .iter()
        .filter_map(|item| {
            let (cert, _) = install::live_paths(&run.env.config_dir, &item.site);
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
