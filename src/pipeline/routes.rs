//! Where validation files are served: plans each site's routes ([`crate::dcv::plan`]) and applies
//! the temporary config edits some need (one transaction, `nginx -t`, one reload). The files
//! themselves are published by [`crate::publish::http`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::anyhow;

use super::Run;
use crate::dcv::{self, Publication};
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::nginx::edit;
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

/// Plans where every site's validation files go; applies the temporary config edits (one
/// transaction, `nginx -t`, one reload) when any are needed.
pub fn publish_routes<'s>(
    run: &mut Run,
    found: &Discovery,
    sites: impl Iterator<Item = &'s Site>,
) -> Result<(BTreeMap<String, Publication>, Option<Transaction>), Failure> {
    let prefix = (run.env.paths.prefix.clone()).unwrap_or_else(|| PathBuf::from("/"));
    let mut publications = BTreeMap::new();
    let mut splices = Vec::new();
    for site in sites {
        let at = (prefix.as_path(), run.dcv_dir.as_path(), run.args.http_port);
        let publication = dcv::plan_at(found, site, at, validation_prefix(&run.config));
        splices.extend(publication.splices.clone());
        publications.insert(site.name.clone(), publication);
    }
    crate::store::ensure_dir(&run.dcv_dir, 0o755).map_err(Failure::failed)?;
    if splices.is_empty() {
        return Ok((publications, None));
    }
    run.say("Adding temporary validation locations …");
    let mut txn = Transaction::begin_kind(&run.state_dir, TxnKind::Validation)
        .map_err(|e| Failure::failed(anyhow!(e)))?;
    let outcome = (|| -> anyhow::Result<()> {
        let mut edited = Vec::new();
        for (file, list) in crate::nginx::https::by_file(splices) {
            let f = &found.config.files[file];
            edited.push((f, edit::apply(&f.bytes, &list)?));
        }
        // Every backup on disk (one journal append) before the first file is written.
        txn.backup_all(&edited.iter().map(|(f, _)| &f.path).collect::<Vec<_>>())?;
        for (f, new) in edited {
            let mode = std::fs::metadata(&f.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            crate::store::write_atomic(&f.path, &new, mode)?;
        }
        let test = run.env.nginx.test(&run.env.paths)?;
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
        run.reload()
    })();
    if let Err(e) = outcome {
        let _ = txn.restore();
        let _ = run.reload();
        return Err(Failure::failed(anyhow!(
            "{e:#}; every file was put back as it was"
        )));
    }
    Ok((publications, Some(txn)))
}
