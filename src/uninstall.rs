//! `delete`: take a site's HTTPS lines back out of its nginx configuration, byte for byte, and
//! stop managing it — in one journaled transaction ([`TxnKind::Delete`]) that `rollback` undoes.
//!
//! In every file holding one of the site's server blocks, the lines we added there (they end
//! with the managed mark) go ([`nginx_conf::unmanage::strip_managed`]); the certificate lines
//! our first install of the site replaced come back from that install's backup copy
//! ([`nginx_conf::unmanage::restore_replaced`]). Then `nginx -t`, and a reload when nginx runs.
//! The lineage record goes too (journaled, so a rollback manages the site again); the live
//! files stay unless asked.
//!
//! Not here: parsing options or printing (the `delete` command).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;

use crate::certificates::LineageFiles;
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::install::Environment;
use crate::lifecycle::Lineage;
use crate::nginx::unmanage;
use crate::site::{self, Site};
use crate::store::{Transaction, TxnKind, TxnState, write_atomic};

/// What `delete` did, as `delete --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    /// The site (the lineage's name when it was managed).
    pub site: String,
    /// The configuration files our lines were taken out of.
    pub files: Vec<PathBuf>,
    /// How many of our lines went.
    pub lines_removed: usize,
    /// The certificate files removed (`--remove-files`); empty when they were kept.
    pub removed_files: Vec<PathBuf>,
    /// The lineage directory, kept or emptied.
    pub live_dir: PathBuf,
    /// The transaction (`rollback` takes it).
    pub transaction: String,
    /// Whether nginx was reloaded (it was not running otherwise).
    pub reloaded: bool,
}

/// Takes the lines of the site `selector` names out of the configuration (see the module doc).
pub fn delete(
    env: &Environment,
    found: &Discovery,
    selector: &str,
    remove_files: bool,
) -> Result<Deleted, Failure> {
    let lineage = find_lineage(&env.state_dir, selector)?;
    let site = find_site(found, &env.config_dir, selector, lineage.as_ref())?;
    let name = lineage
        .as_ref()
        .map_or(site.name.clone(), |l| l.site.clone());
    let edits = plan(found, &site, &env.state_dir)?;
    let lines_removed: usize = edits.values().map(|e| e.1).sum();
    if lines_removed == 0 {
        return Err(Failure::usage(anyhow!(
            "{selector}: its server blocks hold none of our lines (ending in `{}`); nothing to \
             delete (`enc365-nginx status` lists the managed sites)",
            crate::nginx::edit::MANAGED_MARK
        )));
    }
    let files = LineageFiles::of(&env.config_dir, &name);
    let fail = |e: &dyn std::fmt::Display| Failure::failed(anyhow!("{e}"));
    let mut txn = Transaction::begin_kind(&env.state_dir, TxnKind::Delete { site: name.clone() })
        .map_err(|e| fail(&e))?;
    let mut backed: Vec<PathBuf> = edits.keys().cloned().collect();
    backed.push(Lineage::path(&env.state_dir, &name));
    if remove_files {
        backed.extend(files.all().into_iter().cloned());
    }
    txn.backup_all(&backed).map_err(|e| fail(&e))?;
    let applied = apply(env, &edits, &name, remove_files.then_some(&files));
    let removed_files =
        match applied.and_then(|removed| check_and_reload(env).map(|r| (removed, r))) {
            Ok(done) => done,
            Err(e) => {
                let restored = txn.restore();
                return Err(Failure::failed(anyhow!(
                    "{e:#}; {}",
                    match restored {
                        Ok(_) => "every file was put back as it was".to_string(),
                        Err(r) => format!("PUTTING THE FILES BACK FAILED: {r}"),
                    }
                )));
            }
        };
    txn.commit().map_err(|e| fail(&e))?;
    Ok(Deleted {
        site: name,
        files: edits.into_keys().collect(),
        lines_removed,
        removed_files: removed_files.0,
        live_dir: files
            .fullchain
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        transaction: txn.id().to_string(),
        reloaded: removed_files.1,
    })
}

/// The managed certificate `selector` names (its site or any of its names), if any.
fn find_lineage(state_dir: &Path, selector: &str) -> Result<Option<Lineage>, Failure> {
    let all = Lineage::all(state_dir).map_err(Failure::failed)?;
    Ok(all
        .iter()
        .find(|l| l.site == selector)
        .or_else(|| all.iter().find(|l| l.names.iter().any(|n| n == selector)))
        .cloned())
}

/// The site whose server blocks to clean: the lineage's, else the one `--site` selects.
fn find_site(
    found: &Discovery,
    config_dir: &Path,
    selector: &str,
    lineage: Option<&Lineage>,
) -> Result<Site, Failure> {
    let sites = site::group(found);
    let by_lineage =
        lineage.and_then(|l| crate::lifecycle::site_of(&l.site, &sites, found, config_dir));
    let chosen = match by_lineage {
        Some(site) => Some(site),
        None => site::select(found, sites, &[selector.to_string()])
            .ok()
            .and_then(|s| s.into_iter().next()),
    };
    chosen.ok_or_else(|| {
        Failure::usage(anyhow!(
            "--site {selector} matches no server block; `enc365-nginx status` lists the managed \
             sites and `enc365-nginx discover` every server block"
        ))
    })
}

/// Per file, its new bytes and how many of our lines went.
fn plan(
    found: &Discovery,
    site: &Site,
    state_dir: &Path,
) -> Result<BTreeMap<PathBuf, (Vec<u8>, usize)>, Failure> {
    let mut ranges: BTreeMap<usize, Vec<Range<usize>>> = BTreeMap::new();
    for &i in &site.servers {
        let server = &found.servers[i];
        let (open, close) = server.braces;
        (ranges.entry(server.place.file).or_default()).push(open as usize..close as usize + 1);
    }
    let mut out = BTreeMap::new();
    for (file, ranges) in ranges {
        let f = &found.config.files[file];
        let stripped = unmanage::strip_managed(&f.bytes, &ranges);
        if stripped.removed == 0 {
            continue;
        }
        let before = first_backup(state_dir, &f.path).map_err(Failure::failed)?;
        let new = match before {
            Some(before) => unmanage::restore_replaced(&before, &stripped.bytes, &stripped.ranges),
            None => stripped.bytes,
        };
        out.insert(f.path.clone(), (new, stripped.removed));
    }
    Ok(out)
}

/// The bytes `path` had before the first committed install that changed it, from its backup.
fn first_backup(state_dir: &Path, path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let target = crate::store::resolve_symlinks(path)?;
    let target = std::fs::canonicalize(&target).unwrap_or(target);
    for manifest in Transaction::list(state_dir)? {
        if manifest.state != TxnState::Committed
            || !matches!(manifest.kind(), TxnKind::Install { .. })
        {
            continue;
        }
        let entry = manifest.entries.iter().find(|e| {
            e.existed && std::fs::canonicalize(&e.target).unwrap_or(e.target.clone()) == target
        });
        if let Some(copy) = entry.and_then(|e| e.copy.as_ref()) {
            let dir = crate::paths::backups_dir(state_dir).join(&manifest.id);
            return Ok(Some(std::fs::read(dir.join(copy))?));
        }
    }
    Ok(None)
}

/// Writes the new configuration files, removes the lineage record and (when given) the
/// certificate files; returns the files removed.
fn apply(
    env: &Environment,
    edits: &BTreeMap<PathBuf, (Vec<u8>, usize)>,
    name: &str,
    remove: Option<&LineageFiles>,
) -> anyhow::Result<Vec<PathBuf>> {
    for (path, (bytes, _)) in edits {
        let mode = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o644);
        write_atomic(path, bytes, mode)?;
    }
    Lineage::remove(&env.state_dir, name)?;
    let mut removed = Vec::new();
    for file in remove.map(|f| f.all()).into_iter().flatten() {
        match std::fs::remove_file(file) {
            Ok(()) => removed.push(file.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!("could not remove {}: {e}", file.display())),
        }
    }
    Ok(removed)
}

/// `nginx -t` on the result, then a reload when nginx runs; whether it reloaded.
fn check_and_reload(env: &Environment) -> anyhow::Result<bool> {
    let test = env.nginx.test(&env.paths)?;
    tracing::info!(ok = test.ok, "nginx -t without the site's HTTPS lines");
    if !test.ok {
        anyhow::bail!(
            "nginx -t refuses the configuration without the site's HTTPS lines: {}",
            test.output.trim()
        );
    }
    if crate::nginx::control::master_pid(&env.pid_file).is_none() {
        return Ok(false);
    }
    tracing::info!(method = ?env.reload, "reloading nginx");
    env.nginx
        .reload(
            &env.paths,
            &env.reload,
            &env.pid_file,
            Duration::from_secs(20),
        )
        .map_err(|e| anyhow!("the reload failed: {e:#}"))?;
    Ok(true)
}
