//! `certonly`: order a certificate for the names given, validated through a webroot the user
//! names (files under `DIR/.well-known/…`), and save its four files in its lineage
//! (`live/<first name>/`, [`LineageFiles`]) — never reading nginx's configuration for edits,
//! never running `nginx -t` nor reloading. The order goes through the same persisted steps
//! ([`super::order`]) and validation ([`super::validate`]) as `auto`'s, so a rerun resumes a
//! pending order and never orders twice; a certificate on hand that is not due (30 days) with
//! the same names is kept. The lineage record lives in `<state-dir>/certonly/`, apart from the
//! sites `renew` manages. `--deploy-hook` runs after the files are saved.
//!
//! Not here: installing into nginx (that is `auto`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;

use super::{Run, order, report, validate};
use crate::certificates::LineageFiles;
use crate::cli::{AutoArgs, CertonlyArgs};
use crate::commands::Context;
use crate::dcv::{Publication, Route};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::install::Environment;
use crate::lifecycle::Lineage;
use crate::nginx::control::{NginxPaths, ReloadMethod};
use crate::orders::{OrderRecord, RecordState};
use crate::site::Site;
use crate::store::{RunLock, Transaction};

/// Runs `certonly` (see the module doc).
pub fn run(args: &CertonlyArgs, ctx: &Context) -> CommandResult {
    let names = check_names(&args.domains)?;
    let webroot = check_webroot(&args.webroot)?;
    let name = names[0].clone();
    let auto_args = args.to_auto();
    let mut run = new_run(&auto_args, ctx)?;
    if Lineage::load(&run.state_dir, &name)
        .map_err(Failure::failed)?
        .is_some()
    {
        return Err(Failure::usage(anyhow!(
            "{name} is a site `auto` manages (its files are in {}); `certonly` keeps lineages of \
             its own: name another first -d, or use that site's files",
            crate::paths::live_dir(&run.env.config_dir, &name).display()
        )));
    }
    let record_path = crate::paths::certonly_lineage(&run.state_dir, &name);
    let previous: Option<Lineage> =
        crate::store::read_record(&record_path, "move it away to order anew")
            .map_err(Failure::failed)?;
    let files = LineageFiles::of(&run.env.config_dir, &name);
    if !args.force
        && let Some(kept) = previous
            .as_ref()
            .and_then(|p| not_due(p, &names, &files, ctx.now()))
    {
        return print_kept(&run, &files, &kept);
    }
    if let Some(order_id) = previous.as_ref().and_then(Lineage::renewable_order) {
        run.renews.insert(name.clone(), order_id);
    }
    let site = Site {
        name: name.clone(),
        servers: Vec::new(),
        names: names.clone(),
        left_out: Vec::new(),
        needs_certificate: true,
        reason: "certonly".into(),
        dns_names: Vec::new(),
    };
    let routes = names
        .iter()
        .map(|n| Route {
            name: n.clone(),
            dir: webroot.join(".well-known/pki-validation"),
            port: auto_args.http_port,
        })
        .collect();
    let publications = BTreeMap::from([(
        name.clone(),
        Publication {
            routes,
            ..Publication::default()
        },
    )]);
    let ca = ctx.certificate_authority(&run.config)?;
    let ordered = crate::commands::block_on(order::place_all(&mut run, ca.as_ref(), vec![site]))?;
    let dns = validate::dns_publisher(&run);
    let issued = crate::commands::block_on(validate::run(
        &mut run,
        ca.as_ref(),
        ordered,
        &publications,
        &dns,
        &mut validate::DirsMade::default(),
    ))?;
    for (site, record) in issued {
        if let Err(e) = save(&mut run, &files, &record, previous.clone()) {
            run.fail(&site.name, format!("{e:#}"));
        }
    }
    report::finish(&mut run)
}

/// The names, as they are ordered: each one a certifiable name (lower case, no trailing dot).
fn check_names(domains: &[String]) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    for d in domains {
        for n in crate::names::classify(d) {
            if !n.certifiable || n.wildcard {
                return Err(Failure::usage(anyhow!(
                    "-d {d}: {} (certonly proves names by a webroot file, so no wildcards)",
                    n.reason
                        .as_deref()
                        .unwrap_or("not a name a certificate can hold")
                )));
            }
            if !out.contains(&n.name) {
                out.push(n.name);
            }
        }
    }
    if out.is_empty() {
        return Err(Failure::usage(anyhow!(
            "certonly needs at least one -d NAME"
        )));
    }
    Ok(out)
}

/// The webroot, absolute; it must be a directory.
fn check_webroot(dir: &Path) -> Result<PathBuf, Failure> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !dir.is_dir() {
        return Err(Failure::usage(anyhow!(
            "--webroot {} is not a directory; give the directory the web server serves for \
             these names",
            dir.display()
        )));
    }
    Ok(dir)
}

/// A run for `certonly`: the config, the lock, no nginx (its paths are never used).
fn new_run<'a>(args: &'a AutoArgs, ctx: &'a Context) -> Result<Run<'a>, Failure> {
    let mut config = ctx.load_config()?;
    if let Some(key_type) = args.key_type {
        config.key_type = key_type;
    }
    let state_dir = ctx.state_dir();
    crate::store::ensure_state_dir(&state_dir).map_err(Failure::usage)?;
    let lock = RunLock::acquire(&state_dir)?;
    let env = Environment {
        nginx: ctx.nginx_binary(),
        paths: NginxPaths {
            conf: PathBuf::new(),
            prefix: None,
        },
        reload: ReloadMethod::Command(Vec::new()),
        pid_file: PathBuf::new(),
        config_dir: ctx.config_dir(),
        state_dir: state_dir.clone(),
        https_port: config.https_port,
        verify_timeout: Duration::from_secs(15),
        redirect: false,
        hsts: false,
    };
    let hooks = crate::hooks::Hooks {
        pre: None,
        post: None,
        deploy: args
            .hooks
            .deploy_hook
            .clone()
            .or(config.deploy_hook.clone()),
    };
    Ok(Run {
        ctx,
        args,
        env,
        dcv_dir: crate::paths::dcv_dir(&state_dir),
        state_dir,
        command: "certonly",
        config,
        renews: BTreeMap::new(),
        hooks,
        report: Default::default(),
        cluster: None,
        _lock: Some(lock),
        reload_owed: false,
        nginx_t_took: std::time::Duration::ZERO,
        nginx_checked: false,
    })
}

/// The certificate on hand, when it is kept: same names, all four files there and holding it,
/// more than 30 days left.
fn not_due(
    previous: &Lineage,
    names: &[String],
    files: &LineageFiles,
    now: i64,
) -> Option<Lineage> {
    let same_names =
        previous.names.len() == names.len() && names.iter().all(|n| previous.names.contains(n));
    let on_disk = files.all().iter().all(|f| f.is_file());
    let live = std::fs::read(&files.fullchain)
        .ok()
        .and_then(|b| crate::verify::pem_leaf_fingerprint(&b).ok());
    let fresh = previous.not_after - now > 30 * 86_400;
    (same_names && on_disk && live.as_deref() == Some(previous.fingerprint.as_str()) && fresh)
        .then(|| previous.clone())
}

/// Says the certificate on hand is kept (nothing ordered) and exits 0.
fn print_kept(run: &Run, files: &LineageFiles, kept: &Lineage) -> CommandResult {
    let days = kept.days_left(run.ctx.now());
    if run.ctx.global.json {
        let doc = serde_json::json!({
            "lineage": kept.site,
            "names": kept.names,
            "ordered": false,
            "days_left": days,
            "fullchain": files.fullchain,
            "privkey": files.privkey,
        });
        crate::commands::print_json(&doc);
    } else {
        println!(
            "{}: the certificate in {} is not due ({days} days left); nothing ordered \
             (--force orders anyway).",
            kept.site,
            files.fullchain.parent().unwrap_or(Path::new("")).display()
        );
    }
    Ok(ExitStatus::Success)
}

/// Saves an issued certificate's four files (journaled), its lineage record, and runs the
/// deploy hook.
fn save(
    run: &mut Run,
    files: &LineageFiles,
    record: &OrderRecord,
    previous: Option<Lineage>,
) -> anyhow::Result<()> {
    let name = record.site.clone();
    let chain = record
        .issued_chain(&run.state_dir)
        .ok_or_else(|| anyhow!("the record says issued but holds no certificate"))?;
    let key = std::fs::read_to_string(OrderRecord::key_path(&run.state_dir, &name))
        .map_err(|e| anyhow!("the pending private key is missing: {e}"))?;
    files.ensure_dir()?;
    // Journaled like every change (`history` lists it; `rollback ID` puts the old files back).
    let mut txn = Transaction::begin(&run.state_dir, &format!("certonly: {name}"))?;
    txn.backup_all(&files.all())?;
    // The lineage directory's own entry is flushed too: the files a deploy hook is told of stay.
    let written = files
        .write(&chain, &key)
        .and_then(|()| crate::store::sync_dirs(files.dir().parent()));
    if let Err(e) = written {
        let _ = txn.restore();
        return Err(e);
    }
    txn.commit()?;
    let summary = crate::tlsinfo::summarize_pem(chain.as_bytes()).map_err(|e| anyhow!(e))?;
    let lineage = Lineage {
        site: name.clone(),
        names: record.names.clone(),
        wanted: record.names.clone(),
        provider: record.provider.clone(),
        order_id: record.order_id.clone(),
        not_after: summary.not_after,
        fingerprint: crate::verify::pem_leaf_fingerprint(chain.as_bytes())
            .map_err(|e| anyhow!(e))?,
        installed_at: run.ctx.now(),
        previous: previous.map(|mut p| {
            p.previous = None;
            Box::new(p)
        }),
        revoked_at: None,
    };
    crate::store::write_record(
        &crate::paths::certonly_lineage(&run.state_dir, &name),
        &lineage,
    )?;
    let mut done = record.clone();
    // The run held the record without its chain (`OrderRecord::without_chain`): saved with it.
    done.fullchain_pem = Some(chain);
    done.state = RecordState::Installed;
    done.last_error = None;
    done.save(&run.state_dir)?;
    let result = run.result(&name);
    result.names_issued = record.names.clone();
    result.cert_path = Some(files.fullchain.display().to_string());
    result.not_after = Some(crate::commands::status::rfc3339(summary.not_after));
    run.say(format!(
        "  {name}: saved {}",
        files.fullchain.parent().unwrap_or(Path::new("")).display()
    ));
    deploy_hook(run, files, &record.names);
    Ok(())
}

/// The deploy hook, when one is set.
fn deploy_hook(run: &mut Run, files: &LineageFiles, names: &[String]) {
    let Some(command) = run.hooks.deploy.clone() else {
        return;
    };
    let live_dir = files
        .fullchain
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let env = crate::hooks::deploy_env(&live_dir, names);
    let site = names.first().map(String::as_str);
    let outcome = crate::hooks::run(crate::hooks::HookKind::Deploy, site, &command, &env);
    if let Some(error) = &outcome.error {
        run.say(format!("  {error}"));
    }
    run.report.hook_runs.push(outcome);
}
