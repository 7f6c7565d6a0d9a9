//! Where validation files are served: plans each site's routes ([`crate::dcv::plan`]) and applies
//! the temporary config edits some need (one transaction, `nginx -t`, one reload) — only for the
//! sites that still need them once every other check has passed, so a run that validates
//! nothing through them changes no configuration and reloads nothing. The files themselves are
//! published by [`crate::publish::http`].

use std::collections::BTreeMap;

use anyhow::anyhow;

use super::Run;
use crate::dcv::{self, Publication};
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::site::Site;
use crate::store::{Transaction, TxnKind};

/// The URL path prefix the configured CA fetches HTTP validation files under: ACME's
/// `/.well-known/acme-challenge/`, else `/.well-known/pki-validation/`. Webroot files and the
/// temporary location of proxy and redirect-only sites both follow it.
pub fn validation_prefix(config: &crate::config::Config) -> &'static str {
    match config.provider {
        crate::config::Provider::Acme => crate::ca::acme::ACME_CHALLENGE,
        _ => dcv::WELL_KNOWN,
    }
}

/// Plans where every site's validation files go (no config change): a route per name. The
/// temporary edits the names without a usable webroot need are left out (empty `splices`):
/// [`apply_temporary`] plans them for the sites that still need them.
pub fn plan_routes<'s>(
    run: &Run,
    found: &Discovery,
    sites: impl Iterator<Item = &'s Site>,
) -> Result<BTreeMap<String, Publication>, Failure> {
    let prefix = run.env.paths.prefix_or_root();
    let mut publications = BTreeMap::new();
    for site in sites {
        let at = (prefix.as_path(), run.dcv_dir.as_path(), run.args.http_port);
        let mut publication = dcv::plan_at(found, site, at, validation_prefix(&run.config));
        // Held through validation, which needs only the routes: the temporary edits are planned
        // again, for the sites that still need them, by `apply_temporary`.
        publication.splices = Vec::new();
        publications.insert(site.name.clone(), publication);
    }
    crate::store::ensure_dir(&run.dcv_dir, 0o755).map_err(Failure::failed)?;
    Ok(publications)
}

/// Whether `route` is served from our own directory, i.e. needs a temporary location (or
/// server) in the configuration before anything there is served.
pub fn needs_location(run: &Run, route: &dcv::Route) -> bool {
    route.dir.starts_with(&run.dcv_dir)
}

/// Applies the temporary config edits `sites` need (one transaction, `nginx -t`, one reload);
/// `None` when they need none.
pub fn apply_temporary<'s>(
    run: &mut Run,
    found: &Discovery,
    sites: impl Iterator<Item = &'s Site>,
) -> Result<Option<Transaction>, Failure> {
    let prefix = run.env.paths.prefix_or_root();
    let mut splices = Vec::new();
    for site in sites {
        let at = (prefix.as_path(), run.dcv_dir.as_path(), run.args.http_port);
        let publication = dcv::plan_at(found, site, at, validation_prefix(&run.config));
        splices.extend(publication.splices);
    }
    if splices.is_empty() {
        return Ok(None);
    }
    run.say("Adding temporary validation locations …");
    let mut txn = Transaction::begin_kind(&run.state_dir, TxnKind::Validation)
        .map_err(|e| Failure::failed(anyhow!(e)))?;
    let outcome = (|| -> anyhow::Result<()> {
        // In chunks, each backed up (one journal append) before its files are written: only
        // one chunk's new bytes are held, never all of them through the `nginx -t` below.
        let by_file = crate::nginx::https::by_file(splices);
        let files = (by_file.iter()).map(|(file, list)| {
            let f = &found.config.files[*file];
            (f.path.as_path(), &f.bytes[..], &list[..])
        });
        crate::install::write_edits(files, crate::install::EDIT_CHUNK, &mut txn)?;
        drop(by_file);
        let started = std::time::Instant::now();
        let test = run.env.nginx.test(&run.env.paths)?;
        run.nginx_t_took = started.elapsed();
        run.report.nginx_tests += 1;
        tracing::info!(
            ok = test.ok,
            "nginx -t with the temporary validation locations"
        );
        if !test.ok {
            anyhow::bail!(
                "nginx -t refused the temporary validation locations: {}",
                test.output.trim()
            );
        }
        // The configuration as found passes too: the edit only adds locations to it.
        run.nginx_checked = true;
        run.reload_tested()
    })();
    if let Err(e) = outcome {
        let _ = txn.restore();
        if !run.nginx_checked {
            // The run left checking the configuration to this `nginx -t`: was it failing
            // before we touched it? Then say so, as the check before any change does. (Nothing
            // was reloaded: there is nothing to take back from the running nginx.)
            super::check_nginx(run)?;
        } else {
            let _ = run.reload();
        }
        return Err(Failure::failed(anyhow!(
            "{e:#}; every file was put back as it was"
        )));
    }
    Ok(Some(txn))
}

/// Records in `site`'s result (for `--json`) the names validated through the temporary location
/// because their webroot cannot be written safely, and returns those notes.
pub fn note_fallbacks(run: &mut Run, site: &str, publication: &Publication) -> Vec<String> {
    let mut out = Vec::new();
    for (name, why) in &publication.fallbacks {
        let note = format!("{name}: {why}");
        let notes = &mut run.result(site).validation_notes;
        if !notes.contains(&note) {
            notes.push(note.clone());
        }
        out.push(note);
    }
    out
}
