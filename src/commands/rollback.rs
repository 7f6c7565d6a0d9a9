//! `enc365-nginx history` and `enc365-nginx rollback [TXN]`: the backup transactions every change
//! was made in ([`crate::store::Transaction`]), and undoing one.
//!
//! A rollback is itself a transaction (`rollback: <id>`): the files as they are now are backed up
//! first, then the chosen transaction's copies are put back byte for byte, `nginx -t` checks the
//! result and nginx is reloaded. If `nginx -t` refuses it, the files are put back as they were
//! before the rollback, and nothing changed. Rolling back `rollback: <id>` redoes `<id>`.
//!
//! Afterwards the managed-certificate records follow the files: a lineage whose live certificate
//! is gone is dropped (the site is no longer managed); one whose live certificate is again the
//! one it replaced goes back to that — so a rolled-back renewal is due again, and the next
//! `renew` redoes it unless the cause is fixed. Redoing a rollback puts files back, not records.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::RollbackArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::lifecycle::Lineage;
use crate::nginx::control::{master_pid, parse_reload_command};
use crate::store::{Manifest, RunLock, Transaction, TxnKind, TxnState};

/// One transaction in `history --json`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The id (`rollback` takes it).
    pub id: String,
    /// When it began, RFC 3339.
    pub created: String,
    /// What the run was doing.
    pub label: String,
    /// `open`, `committed` or `restored`.
    pub state: TxnState,
    /// Every file it touched (a file it created is deleted by a rollback).
    pub files: Vec<HistoryFile>,
}

/// One file of a transaction.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryFile {
    /// The path.
    pub path: PathBuf,
    /// Whether it existed before the transaction.
    pub existed: bool,
}

fn entry(m: &Manifest) -> HistoryEntry {
    HistoryEntry {
        id: m.id.clone(),
        created: m.created.clone(),
        label: m.label.clone(),
        state: m.state,
        files: m
            .entries
            .iter()
            .map(|e| HistoryFile {
                path: e.path.clone(),
                existed: e.existed,
            })
            .collect(),
    }
}

/// Runs `history`.
pub fn history(ctx: &Context) -> CommandResult {
    let manifests = Transaction::list(&ctx.state_dir()).map_err(|e| Failure::failed(anyhow!(e)))?;
    let entries: Vec<HistoryEntry> = manifests.iter().map(entry).collect();
    if ctx.global.json {
        let doc = serde_json::json!({ "transactions": entries });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::failed(anyhow!(e)))?
        );
        return Ok(ExitStatus::Success);
    }
    if entries.is_empty() {
        eprintln!("No transactions yet: nothing was changed.");
        return Ok(ExitStatus::Success);
    }
    for e in &entries {
        let state = serde_json::to_value(e.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!("{}  {}  {:<9}  {}", e.id, e.created, state, e.label);
        for f in &e.files {
            println!(
                "    {}{}",
                f.path.display(),
                if f.existed { "" } else { " (created)" }
            );
        }
    }
    Ok(ExitStatus::Success)
}

/// The default target: the newest committed install, renewal or delete (not a rollback, not
/// the temporary validation edits, which are always undone by the run that made them).
fn default_target(manifests: &[Manifest]) -> Option<&Manifest> {
    manifests.iter().rev().find(|m| {
        m.state == TxnState::Committed
            && matches!(m.kind(), TxnKind::Install { .. } | TxnKind::Delete { .. })
    })
}

/// Runs `rollback`.
pub fn run(args: &RollbackArgs, ctx: &Context) -> CommandResult {
    let state_dir = ctx.state_dir();
    let config_path = ctx.config_path();
    let config = crate::config::Config::load_or_default(&config_path).map_err(Failure::usage)?;
    let config_dir = ctx.config_dir();
    let _lock = RunLock::acquire(&state_dir)?;
    let manifests = Transaction::list(&state_dir).map_err(|e| Failure::failed(anyhow!(e)))?;
    let target = pick_target(args, &manifests)?;

    let paths = ctx.nginx_paths()?;
    let nginx = ctx.nginx_binary();
    let reload_argv = parse_reload_command(&config.reload_command).map_err(Failure::usage)?;
    let pid_file = ctx.pid_file(&paths);
    let reload = ctx.reload_method(&reload_argv, &pid_file);

    let fail = |e: &dyn std::fmt::Display| Failure::failed(anyhow!("{e}"));
    check_ours(target, &config_dir, &state_dir, &paths.conf)?;
    let of = target.id.clone();
    let mut undo =
        Transaction::begin_kind(&state_dir, TxnKind::Rollback { of }).map_err(|e| fail(&e))?;
    let files: Vec<&std::path::Path> = target.entries.iter().map(|e| e.path.as_path()).collect();
    undo.backup_all(&files).map_err(|e| fail(&e))?;
    let mut txn = Transaction::open(&state_dir, &target.id).map_err(|e| fail(&e))?;
    let changed = match txn.restore() {
        Ok(changed) => keep_shared_snippet(&config_dir, changed).map_err(|e| fail(&e))?,
        Err(e) => {
            let _ = undo.restore();
            return Err(Failure::failed(anyhow!(
                "{e}; the files were put back as they were before the rollback"
            )));
        }
    };
    let test = nginx.test(&paths).map_err(Failure::failed)?;
    if !test.ok {
        let undone = undo.restore();
        let _ = txn.commit();
        return Err(Failure::failed(anyhow!(
            "nginx -t refuses the configuration of before {}: {}; {}",
            target.id,
            test.output.trim(),
            match undone {
                Ok(_) => "the files were put back as they were, nothing changed".to_string(),
                Err(e) => format!("PUTTING THE FILES BACK FAILED: {e}"),
            }
        )));
    }
    let running = master_pid(&pid_file).is_some();
    if running {
        nginx
            .reload(&paths, &reload, &pid_file, Duration::from_secs(20))
            .map_err(|e| {
                Failure::failed(anyhow!(
                    "the files of before {} are back, but the reload failed: {e:#}; reload \
                     nginx yourself",
                    target.id
                ))
            })?;
    }
    undo.commit().map_err(|e| fail(&e))?;
    let sites = follow_lineages(&state_dir, &config_dir, &target.kind());

    print_result(ctx, target, undo.id(), &changed, running, &sites)
}

/// The shared TLS snippet outlives the install that created it: other sites may include it by
/// now (installs before this version journaled its creation, so restoring one removed it). It is
/// written again when the restore removed it, and not listed as put back.
fn keep_shared_snippet(config_dir: &Path, changed: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let snippet = crate::install::snippet_path(config_dir);
    let snippet = std::path::absolute(&snippet).unwrap_or(snippet);
    if !changed.iter().any(|p| p == &snippet) {
        return Ok(changed);
    }
    crate::install::ensure_snippet(config_dir)?;
    Ok(changed.into_iter().filter(|p| p != &snippet).collect())
}

/// Refuses a transaction naming a file this tool never changes: every entry must be under the
/// config directory's `live/` or `nginx/`, a lineage record under the state directory's `certs/`
/// (`delete` journals them), or a file of the nginx configuration as nginx reads it
/// now, and what it names must be what its path resolves to. Root writes and chowns what a
/// manifest names, so a forged entry must not reach anything else.
fn check_ours(
    target: &Manifest,
    config_dir: &Path,
    state_dir: &Path,
    nginx_conf: &Path,
) -> Result<(), Failure> {
    let canonical = |p: &Path| -> PathBuf {
        match (p.parent().map(std::fs::canonicalize), p.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => p.to_path_buf(),
        }
    };
    let config_dir = std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.into());
    let ours_dirs = [
        crate::paths::live_dir(&config_dir, "x")
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        crate::paths::ssl_params(&config_dir)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        std::fs::canonicalize(crate::paths::certs_dir(state_dir))
            .unwrap_or_else(|_| crate::paths::certs_dir(state_dir)),
    ];
    let nginx_files: Vec<PathBuf> = crate::nginx::tree::Config::load(nginx_conf)
        .map(|c| c.files.iter().map(|f| canonical(&f.path)).collect())
        .unwrap_or_default();
    for entry in &target.entries {
        let resolved = match &entry.symlink {
            Some(link) if link.is_relative() => {
                entry.path.parent().map_or(link.clone(), |d| d.join(link))
            }
            Some(link) => link.clone(),
            None => entry.path.clone(),
        };
        let resolved = crate::store::resolve_symlinks(&resolved).unwrap_or(resolved);
        let consistent = canonical(&resolved) == entry.target;
        let path = canonical(&entry.path);
        let ours = ours_dirs.iter().any(|d| path.starts_with(d)) || nginx_files.contains(&path);
        if !consistent || !ours {
            return Err(Failure::failed(anyhow!(
                "transaction {} names {} (-> {}), which is not a file this tool changes (one of \
                 the nginx configuration {} reads, or under {}, {} or {}); nothing was rolled back. \
                 Its manifest in the state directory may have been tampered with: inspect it",
                target.id,
                entry.path.display(),
                entry.target.display(),
                nginx_conf.display(),
                ours_dirs[0].display(),
                ours_dirs[1].display(),
                ours_dirs[2].display()
            )));
        }
    }
    Ok(())
}

/// The transaction `rollback` undoes: the one named, else the newest committed install; it must
/// be committed.
fn pick_target<'m>(
    args: &RollbackArgs,
    manifests: &'m [Manifest],
) -> Result<&'m Manifest, Failure> {
    let target = match &args.txn {
        Some(id) => manifests.iter().find(|m| &m.id == id).ok_or_else(|| {
            Failure::usage(anyhow!(
                "there is no transaction {id:?}; `enc365-nginx history` lists them"
            ))
        })?,
        None => default_target(manifests).ok_or_else(|| {
            Failure::usage(anyhow!(
                "there is no committed install to roll back; `enc365-nginx history` lists the \
                 transactions, and `rollback ID` takes any of them"
            ))
        })?,
    };
    if target.state != TxnState::Committed {
        return Err(Failure::usage(anyhow!(
            "transaction {} is {:?}, not committed: its files are already as they were before it",
            target.id,
            target.state
        )));
    }
    Ok(target)
}

/// Prints what the rollback did (or the `--json` document).
fn print_result(
    ctx: &Context,
    target: &Manifest,
    undo: &str,
    changed: &[std::path::PathBuf],
    running: bool,
    sites: &[String],
) -> CommandResult {
    if ctx.global.json {
        let doc = serde_json::json!({
            "rolled_back": target.id,
            "undo": undo,
            "files": changed,
            "reloaded": running,
            "sites": sites,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::failed(anyhow!(e)))?
        );
    } else {
        println!(
            "Rolled back {} ({}): {} file(s) put back{}.",
            target.id,
            target.label,
            changed.len(),
            if running { ", nginx reloaded" } else { "" }
        );
        for path in changed {
            println!("    {}", path.display());
        }
        for s in sites {
            println!("  {s}");
        }
        println!("To undo this rollback: enc365-nginx rollback {undo}");
    }
    Ok(ExitStatus::Success)
}

/// Brings the lineages of the sites an install transaction installed in line with the live
/// files now on disk; returns one line per site changed.
fn follow_lineages(state_dir: &Path, config_dir: &Path, kind: &TxnKind) -> Vec<String> {
    let TxnKind::Install { sites } = kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for site in sites.iter().map(String::as_str) {
        let Ok(Some(lineage)) = Lineage::load(state_dir, site) else {
            continue;
        };
        let (cert, _) = crate::install::live_paths(config_dir, site);
        let live = std::fs::read(&cert)
            .ok()
            .and_then(|b| crate::verify::pem_leaf_fingerprint(&b).ok());
        match live {
            None => {
                if Lineage::remove(state_dir, site).is_ok() {
                    out.push(format!(
                        "{site}: no longer managed (its certificate files are gone); \
                         `enc365-nginx auto` would order for it again"
                    ));
                }
            }
            Some(fp) if fp == lineage.fingerprint => {}
            Some(fp) => match lineage.previous {
                Some(previous) if previous.fingerprint == fp => {
                    if previous.save(state_dir).is_ok() {
                        out.push(format!(
                            "{site}: back on order {}",
                            previous.order_id.as_deref().unwrap_or("?")
                        ));
                    }
                }
                _ => {
                    if Lineage::remove(state_dir, site).is_ok() {
                        out.push(format!(
                            "{site}: its live certificate is not one we installed; no longer \
                             managed"
                        ));
                    }
                }
            },
        }
    }
    out
}
