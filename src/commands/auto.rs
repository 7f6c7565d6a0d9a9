//! `enc365-nginx auto` (and `plan`, which is `auto --dry-run`): take every site that needs a
//! certificate to verified HTTPS, unattended, never leaving nginx worse than it was.
//!
//! The steps, each of which a rerun resumes:
//! 1. recover: restore any transaction a killed run left open (temporary DCV edits, a half
//!    install), so the configuration is the user's again;
//! 2. read the configuration (`nginx -t` must pass before we touch anything), group server blocks
//!    into sites, select them (`--site`, or every site that needs a certificate);
//! 3. preflight each name: it resolves in DNS, and a probe file published the way the validation
//!    file will be is really served by this nginx for that Host — names that fail are left out and
//!    reported (`--require-all` makes that fatal);
//! 4. order: key + CSR, the order record saved *before* the CA is asked, and again with the id;
//! 5. publish the validation files, check each is served, ask the CA to validate, poll;
//! 6. install every issued certificate in one transaction with one reload, proven by handshake.
//!
//! At most two reloads per run: one when temporary DCV locations are needed, one for the install.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde::Serialize;

use crate::ca::{CaError, CertificateAuthority, Challenge, OrderId, OrderRequest, OrderState};
use crate::cli::AutoArgs;
use crate::commands::Context;
use crate::dcv::{self, Publication};
use crate::discovery::{self, Discovery};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::install::{self, Environment, Issued};
use crate::lifecycle::{self, Action, Planned};
use crate::nginx::control::{ReloadMethod, parse_reload_command};
use crate::nginx::edit;
use crate::orders::{OrderRecord, RecordState};
use crate::site::{self, LeftOut, Site};
use crate::store::{RunLock, Transaction, TxnState};

/// The outcome for one site, as `--json` prints it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SiteResult {
    /// The site's name.
    pub site: String,
    /// The names the certificate covers (empty when none was issued).
    pub names_issued: Vec<String>,
    /// Names left out, with reasons.
    pub names_left_out: Vec<LeftOut>,
    /// The CA's order id.
    pub order_id: Option<String>,
    /// The installed certificate chain.
    pub cert_path: Option<String>,
    /// End of the installed certificate's validity (RFC 3339).
    pub not_after: Option<String>,
    /// Why nothing was ordered for a site that was not asked for by name (every name failed the
    /// preflight checks); not a failure. With `--site` the same is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The order the new certificate renews (renewals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renews: Option<String>,
    /// Our existing certificate was put back into a regenerated configuration; nothing ordered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reinstalled: bool,
}

/// The whole `auto --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct AutoJson {
    /// Whether nothing was changed (`--dry-run` / `plan`).
    pub dry_run: bool,
    /// Per-site results.
    pub sites: Vec<SiteResult>,
    /// How many times nginx was reloaded.
    pub reloads: u32,
    /// The config edits a dry run would make, as unified diffs (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<String>,
    /// The hooks run, and how they ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::hooks::HookRun>,
}

/// Everything a run works with (shared by `auto` and `renew`).
pub(crate) struct Run<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) args: &'a AutoArgs,
    pub(crate) env: Environment,
    pub(crate) state_dir: PathBuf,
    dcv_dir: PathBuf,
    http_port: u16,
    reloads: u32,
    pub(crate) results: BTreeMap<String, SiteResult>,
    /// The command, for the last-run record (`auto`, `renew`).
    pub(crate) command: &'static str,
    /// The loaded configuration.
    pub(crate) config: crate::config::Config,
    /// Per site, the order a new order renews.
    renews: BTreeMap<String, String>,
    /// The hooks to run, and what they did.
    hooks: crate::hooks::Hooks,
    hook_runs: Vec<crate::hooks::HookRun>,
    /// More top-level fields for the `--json` document (`renew` adds `due` and `not_due`).
    pub(crate) extra_json: serde_json::Map<String, serde_json::Value>,
    _lock: Option<RunLock>,
}

impl Run<'_> {
    pub(crate) fn say(&self, message: impl AsRef<str>) {
        self.spin(0, None);
        eprintln!("{}", message.as_ref());
    }

    /// Redraws the one-line progress view while the CA works: a spinner, what is pending and
    /// for how long. Only on a terminal; `None` clears the line.
    fn spin(&self, tick: usize, status: Option<String>) {
        use std::io::{IsTerminal, Write};
        let mut err = std::io::stderr();
        if !err.is_terminal() {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        let _ = match status {
            Some(text) => write!(err, "\r\x1b[2K{} {text}", FRAMES[tick % FRAMES.len()]),
            None => write!(err, "\r\x1b[2K"),
        };
        let _ = err.flush();
    }

    pub(crate) fn result(&mut self, site: &str) -> &mut SiteResult {
        self.results
            .entry(site.to_string())
            .or_insert_with(|| SiteResult {
                site: site.to_string(),
                ..SiteResult::default()
            })
    }

    pub(crate) fn fail(&mut self, site: &str, error: impl std::fmt::Display) {
        self.say(format!("  {site}: {error}"));
        self.result(site).error = Some(error.to_string());
    }

    fn reload(&mut self) -> anyhow::Result<()> {
        self.env.nginx.reload(
            &self.env.paths,
            &self.env.reload,
            &self.env.pid_file,
            Duration::from_secs(20),
        )?;
        self.reloads += 1;
        Ok(())
    }
}

/// Runs `auto` (or `plan` when `args.dry_run`).
pub fn run(args: &AutoArgs, ctx: &Context) -> CommandResult {
    let (mut run, found) = prepare(args, ctx, "auto")?;
    let all_sites = site::group(&found);
    let mut selected = site::select(&found, all_sites.clone(), &args.sites).map_err(|unmatched| {
        Failure::usage(anyhow!(
            "--site {} matches no server block; `enc365-nginx discover` lists the names and files",
            unmatched.join(", --site ")
        ))
    })?;
    // Managed sites whose configuration was regenerated get our certificate back.
    if !args.dry_run {
        lifecycle::adopt_installed(&run.state_dir, &run.env.config_dir, ctx.now())
            .map_err(Failure::failed)?;
    }
    if args.sites.is_empty() {
        for lineage in lifecycle::Lineage::all(&run.state_dir).map_err(Failure::failed)? {
            if let Some(site) =
                lifecycle::site_of(&lineage.site, &all_sites, &found, &run.env.config_dir)
                && !selected.iter().any(|s| s.servers == site.servers)
                && lifecycle::config_points_at_live(&found, &site, &run.env.config_dir).is_some()
            {
                selected.push(site);
            }
        }
    }
    // Orders left pending by an earlier run are resumed whether or not they are selected now.
    let records = OrderRecord::all(&run.state_dir).map_err(Failure::failed)?;
    for record in records.iter().filter(|r| r.state != RecordState::Installed) {
        if !selected.iter().any(|s| s.name == record.site)
            && let Some(site) = all_sites.iter().find(|s| s.name == record.site)
        {
            selected.push(site.clone());
        }
    }
    if args.one_certificate && selected.len() > 1 {
        selected = vec![merge_sites(selected)];
    }
    // A site none of whose names can be ordered (only wildcards without DNS validation, regexes)
    // is reported, never planned or ordered.
    selected.retain(|site| {
        if !site.names.is_empty() {
            return true;
        }
        let why = "none of its names can be ordered with HTTP validation; nothing was ordered";
        run.result(&site.name).names_left_out = site.left_out.clone();
        if args.sites.is_empty() {
            run.result(&site.name).skipped = Some(why.to_string());
        } else {
            run.fail(&site.name, why);
        }
        false
    });
    if selected.is_empty() {
        run.say("Nothing to do: every site with certifiable names already has a good certificate.");
        return finish(&mut run, &found, Vec::new());
    }
    if args.dry_run {
        return dry_run(&mut run, &found, selected);
    }
    let selection = lifecycle::plan(
        &found,
        &run.state_dir,
        &run.env.config_dir,
        selected,
        ctx.now(),
        30,
    )
    .map_err(Failure::failed)?;
    execute(run, found, selection)
}

/// Loads the configuration, takes the lock (unless a dry run), restores what a killed run left
/// open, reads the nginx configuration and checks `nginx -t` passes before anything is touched.
pub(crate) fn prepare<'a>(
    args: &'a AutoArgs,
    ctx: &'a Context,
    command: &'static str,
) -> Result<(Run<'a>, Discovery), Failure> {
    let config_path = ctx.config_path();
    let config = if args.dry_run {
        crate::config::Config::load_or_default(&config_path).map_err(Failure::usage)?
    } else {
        ctx.load_config()?
    };
    let config_dir = ctx.config_dir();
    let state_dir = ctx.state_dir();
    for (dir, option) in [(&config_dir, "--config"), (&state_dir, "--state-dir")] {
        check_dir_for_nginx(dir, option)?;
    }
    let paths = ctx.nginx_paths()?;
    let nginx = ctx.nginx_binary();
    let reload_argv = parse_reload_command(&config.reload_command).map_err(Failure::usage)?;
    let pid_file = ctx.pid_file(&paths);
    let reload = ReloadMethod::detect(Some(&reload_argv), &pid_file);
    let https_port = ctx.global.https_port.unwrap_or(config.https_port);
    let env = Environment {
        nginx,
        paths,
        reload,
        pid_file,
        config_dir,
        state_dir: state_dir.clone(),
        https_port,
        verify_timeout: Duration::from_secs(15),
        redirect: args.redirect,
        hsts: args.hsts,
    };
    let hooks = crate::hooks::Hooks {
        pre: args.hooks.pre_hook.clone().or(config.pre_hook.clone()),
        post: args.hooks.post_hook.clone().or(config.post_hook.clone()),
        deploy: args
            .hooks
            .deploy_hook
            .clone()
            .or(config.deploy_hook.clone()),
    };
    let mut run = Run {
        ctx,
        args,
        env,
        dcv_dir: state_dir.join("dcv"),
        state_dir,
        http_port: args.http_port,
        reloads: 0,
        results: BTreeMap::new(),
        command,
        config,
        renews: BTreeMap::new(),
        hooks,
        hook_runs: Vec::new(),
        extra_json: serde_json::Map::new(),
        _lock: None,
    };

    if !args.dry_run {
        crate::store::ensure_state_dir(&run.state_dir).map_err(Failure::usage)?;
        run._lock = Some(RunLock::acquire(&run.state_dir)?);
    }
    if !args.dry_run {
        recover(&mut run)?;
    }

    let found = discovery::discover(&run.env.paths.conf, ctx.now(), 30).map_err(|e| {
        Failure::usage(anyhow!(
            "{e}\nNothing was changed. Fix the configuration, then check it with `nginx -t`."
        ))
    })?;
    let test = run.env.nginx.test(&run.env.paths).map_err(Failure::usage)?;
    if !test.ok {
        return Err(Failure::usage(anyhow!(
            "nginx -t fails before anything was changed; fix that first:\n{}",
            test.output.trim()
        )));
    }

    Ok((run, found))
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

/// The pipeline `auto` and `renew` share, from preflight to proven install, for a selection of
/// sites: each is ordered (a renewal when `renews` is set; a pending order is resumed) or, for
/// [`Action::Reinstall`], gets our existing certificate back without a new order.
pub(crate) fn execute(mut run: Run, found: Discovery, selection: Vec<Planned>) -> CommandResult {
    let (ctx, args) = (run.ctx, run.args);
    let mut selected = Vec::new();
    let mut reinstall = Vec::new();
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for planned in selection {
        wanted.insert(planned.site.name.clone(), planned.site.names.clone());
        match planned.action {
            Action::Reinstall => reinstall.push(planned.site),
            Action::Keep(why) => {
                run.say(format!("  {}: {why}", planned.site.name));
                run.result(&planned.site.name).skipped = Some(why);
            }
            Action::Order { renews } => {
                if let Some(old) = renews {
                    run.result(&planned.site.name).renews = Some(old.clone());
                    run.renews.insert(planned.site.name.clone(), old);
                }
                selected.push(planned.site);
            }
        }
    }

    let ca = ctx.certificate_authority(&run.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("could not start the async runtime: {e}")))?;
    let key_type = run.config.key_type;
    let product = run.config.product();

    // 3. Preflight (names of resumed orders were checked when they were ordered).
    let mut kept: Vec<Site> = Vec::new();
    let mut to_probe: Vec<Site> = Vec::new();
    for mut site in selected {
        run.result(&site.name).names_left_out = site.left_out.clone();
        let record = OrderRecord::load(&run.state_dir, &site.name).map_err(Failure::failed)?;
        if let Some(record) = record.filter(|r| r.state != RecordState::Installed) {
            site.names = record.names.clone();
            kept.push(site);
            continue;
        }
        let mut names = Vec::new();
        for name in std::mem::take(&mut site.names) {
            if args.skip_dns_check || !dcv::resolve(&name).is_empty() {
                names.push(name);
            } else {
                site.left_out.push(LeftOut {
                    name,
                    reason: "does not resolve in DNS".into(),
                });
            }
        }
        site.names = names;
        to_probe.push(site);
    }

    let publications = publish_routes(&mut run, &found, kept.iter().chain(&to_probe))?;
    let dcv_txn = publications.1;
    let publications = publications.0;

    for mut site in to_probe {
        let Some(publication) = publications.get(&site.name) else {
            continue;
        };
        // Unpredictable, so no one who can write into a webroot can plant a file (or a link)
        // under the name before we write it.
        let token = format!("enc365-probe-{:032x}", rand::random::<u128>());
        let mut names = Vec::new();
        for name in std::mem::take(&mut site.names) {
            match probe(&run, publication, &name, &token) {
                Ok(()) => names.push(name),
                Err(reason) => site.left_out.push(LeftOut { name, reason }),
            }
        }
        site.names = names;
        run.result(&site.name).names_left_out = site.left_out.clone();
        if site.names.is_empty() {
            let why = "no name passed the preflight checks; nothing was ordered";
            if args.sites.is_empty() && !run.renews.contains_key(&site.name) {
                run.say(format!("  {}: skipped: {why}", site.name));
                run.result(&site.name).skipped = Some(why.to_string());
            } else {
                run.fail(&site.name, why);
            }
            continue;
        }
        let dropped = site
            .left_out
            .iter()
            .filter(|l| !l.reason.starts_with("wildcard") && !l.reason.is_empty())
            .count();
        if args.require_all && dropped > 0 {
            run.fail(
                &site.name,
                "--require-all: some names failed the preflight checks; nothing was ordered",
            );
            continue;
        }
        if let Some(why) = lifecycle::renewal_loses_names(&run.state_dir, &site) {
            run.fail(&site.name, why);
            continue;
        }
        kept.push(site);
    }

    // 4 + 5. Order, publish, validate, poll.
    let mut pending: Vec<(Site, OrderRecord)> = Vec::new();
    for site in kept {
        match runtime.block_on(ensure_order(&run, &*ca, &site, key_type, &product)) {
            Ok(record) => {
                run.result(&site.name).order_id = record.order_id.clone();
                run.result(&site.name).renews = record.renews.clone();
                pending.push((site, record));
            }
            Err(e) => run.fail(&site.name, format!("{e:#}")),
        }
    }
    // Per site: the validation files written, and the directories created for them.
    let mut published: BTreeMap<String, (Vec<PathBuf>, Vec<PathBuf>)> = BTreeMap::new();
    let mut waiting: Vec<(Site, OrderRecord)> = Vec::new();
    for (site, record) in pending {
        if record.state != RecordState::Pending {
            waiting.push((site, record));
            continue;
        }
        let publication = publications.get(&site.name).cloned().unwrap_or_default();
        let (written, created_dirs) = published.entry(site.name.clone()).or_default();
        match runtime.block_on(publish_and_validate(
            &run,
            &*ca,
            &record,
            &publication,
            written,
            created_dirs,
        )) {
            Ok(()) => waiting.push((site, record)),
            Err(e) => run.fail(
                &site.name,
                format!("{e:#}; the order is kept and the next run resumes it"),
            ),
        }
    }
    let issued = runtime.block_on(wait_for_issuance(&mut run, &*ca, waiting));
    // The CA may check again minutes after the run ends (--no-wait, --timeout): the webroot files
    // of orders still pending stay published; the run that installs removes them. Files served
    // by a temporary location go, with the location: the configuration is the user's again.
    let all_created: Vec<&PathBuf> = published.values().flat_map(|(_, d)| d).collect();
    let (mut files, mut dirs): (Vec<PathBuf>, Vec<PathBuf>) = (Vec::new(), Vec::new());
    for (site, (written, created_dirs)) in &published {
        let mut record = OrderRecord::load(&run.state_dir, site).ok().flatten();
        let still_pending = record
            .as_ref()
            .is_some_and(|r| r.state == RecordState::Pending);
        let in_webroot = written.iter().all(|f| !f.starts_with(&run.dcv_dir));
        if let Some(record) = record.as_mut().filter(|_| still_pending && in_webroot) {
            run.say(format!(
                "  {site}: the validation files stay in its webroot until the certificate is installed"
            ));
            // Sites may share a webroot: the directories this run made above this site's files,
            // whichever site made them, are removed when this order is finished.
            let above = all_created
                .iter()
                .filter(|d| written.iter().any(|f| f.starts_with(d)))
                .map(|d| (*d).clone());
            for (list, new) in [
                (&mut record.published_files, written.clone()),
                (&mut record.published_dirs, above.collect()),
            ] {
                for path in new {
                    if !list.contains(&path) {
                        list.push(path);
                    }
                }
            }
            if let Err(e) = record.save(&run.state_dir) {
                run.fail(site, format!("{e:#}"));
            }
        } else {
            files.extend(written.iter().cloned());
            dirs.extend(created_dirs.iter().cloned());
            if let Some(record) = record
                .as_mut()
                .filter(|r| !r.published_files.is_empty() || !r.published_dirs.is_empty())
            {
                files.append(&mut record.published_files);
                dirs.append(&mut record.published_dirs);
                let _ = record.save(&run.state_dir);
            }
        }
    }
    // Files first, then the directories, innermost last in the list (they are removed in
    // reverse), each only when empty.
    dirs.sort_by_key(|d| d.components().count());
    dirs.dedup();
    dcv::remove_files(&files, &dirs);
    if let Some(mut txn) = dcv_txn {
        txn.restore().map_err(|e| {
            Failure::failed(anyhow!(
                "could not remove the temporary validation edits: {e}"
            ))
        })?;
    }

    // 6. Install.
    let mut batch = Vec::new();
    for site in &reinstall {
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
    for (site, record) in &issued {
        let key = std::fs::read_to_string(OrderRecord::key_path(&run.state_dir, &site.name))
            .with_context(|| format!("{}: the pending private key is missing", site.name));
        match (key, &record.fullchain_pem) {
            (Ok(key_pem), Some(chain)) => batch.push(Issued {
                site: site.name.clone(),
                names: record.names.clone(),
                fullchain_pem: chain.clone(),
                key_pem,
            }),
            (Err(e), _) => run.fail(&site.name, format!("{e:#}")),
            (_, None) => run.fail(
                &site.name,
                "the record says issued but holds no certificate",
            ),
        }
    }
    if batch.is_empty() {
        if run.reloads > 0 {
            // Take the temporary validation locations out of the running nginx.
            let _ = run.reload();
        }
        return finish(
            &mut run,
            &found,
            issued.into_iter().map(|(s, _)| s).collect(),
        );
    }
    run.say(format!("Installing {} certificate(s) …", batch.len()));
    run_hook(&mut run, "pre", None, &[]);
    match install::install_batch(&run.env, &batch, ctx.now()) {
        Ok(_txn) => {
            run.reloads += 1;
            for item in &batch {
                if let Ok(Some(mut record)) = OrderRecord::load(&run.state_dir, &item.site) {
                    record.state = RecordState::Installed;
                    record.last_error = None;
                    let _ = record.save(&run.state_dir);
                }
                let names = wanted.get(&item.site).cloned().unwrap_or_default();
                if let Err(e) = lifecycle::note_installed(&run.state_dir, item, &names, ctx.now()) {
                    run.say(format!(
                        "  {}: could not record the install: {e:#}",
                        item.site
                    ));
                }
                let (cert, _) = install::live_paths(&run.env.config_dir, &item.site);
                let not_after = crate::tlsinfo::summarize_pem(item.fullchain_pem.as_bytes())
                    .ok()
                    .map(|s| {
                        time::OffsetDateTime::from_unix_timestamp(s.not_after)
                            .ok()
                            .and_then(|t| {
                                t.format(&time::format_description::well_known::Rfc3339)
                                    .ok()
                            })
                            .unwrap_or_default()
                    });
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
            for item in &batch {
                let (cert, _) = install::live_paths(&run.env.config_dir, &item.site);
                let live_dir = cert.parent().map(Path::to_path_buf).unwrap_or_default();
                let env = crate::hooks::deploy_env(&live_dir, &item.names);
                run_hook(&mut run, "deploy", Some(&item.site), &env);
            }
            let lineages: Vec<String> = batch
                .iter()
                .filter_map(|item| {
                    let (cert, _) = install::live_paths(&run.env.config_dir, &item.site);
                    cert.parent().map(|d| d.display().to_string())
                })
                .collect();
            run_hook(
                &mut run,
                "post",
                None,
                &[("ENC365_LINEAGES", lineages.join(" "))],
            );
        }
        Err(e) => {
            run.reloads += 1;
            for item in &batch {
                run.fail(&item.site, format!("{e:#}"));
            }
            run_hook(&mut run, "post", None, &[]);
        }
    }
    finish(&mut run, &found, Vec::new())
}

/// Runs one of the configured hooks (if set), reporting a failure on stderr and in `--json`.
fn run_hook(run: &mut Run, hook: &str, site: Option<&str>, env: &[(&str, String)]) {
    let command = match hook {
        "pre" => run.hooks.pre.clone(),
        "post" => run.hooks.post.clone(),
        _ => run.hooks.deploy.clone(),
    };
    let Some(command) = command.filter(|c| !c.trim().is_empty()) else {
        return;
    };
    if hook == "post" && !run.hook_runs.iter().any(|h| h.hook == "pre") && run.hooks.pre.is_some() {
        return;
    }
    let outcome = crate::hooks::run(hook, site, &command, env);
    if let Some(error) = &outcome.error {
        run.say(format!("  {error}"));
    }
    run.hook_runs.push(outcome);
}

/// Restores every transaction an earlier run left open, so we start from the user's files.
fn recover(run: &mut Run) -> Result<(), Failure> {
    let manifests = Transaction::list(&run.state_dir).map_err(|e| Failure::failed(anyhow!(e)))?;
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
    if restored && crate::nginx::control::master_pid(&run.env.pid_file).is_some() {
        run.reload().map_err(Failure::failed)?;
    }
    Ok(())
}

/// Plans where every site's validation files go; applies the temporary config edits (one
/// transaction, `nginx -t`, one reload) when any are needed.
fn publish_routes<'s>(
    run: &mut Run,
    found: &Discovery,
    sites: impl Iterator<Item = &'s Site>,
) -> Result<(BTreeMap<String, Publication>, Option<Transaction>), Failure> {
    let prefix = run
        .env
        .paths
        .prefix
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut publications = BTreeMap::new();
    let mut splices = Vec::new();
    for site in sites {
        let publication = dcv::plan(found, site, &prefix, &run.dcv_dir, run.http_port);
        splices.extend(publication.splices.clone());
        publications.insert(site.name.clone(), publication);
    }
    crate::store::ensure_dir(&run.dcv_dir, 0o755).map_err(Failure::failed)?;
    if splices.is_empty() {
        return Ok((publications, None));
    }
    run.say("Adding temporary validation locations …");
    let mut txn = Transaction::begin(&run.state_dir, "dcv: temporary validation locations")
        .map_err(|e| Failure::failed(anyhow!(e)))?;
    let outcome = (|| -> anyhow::Result<()> {
        for (file, list) in crate::nginx::https::by_file(splices) {
            let f = &found.config.files[file];
            let new = edit::apply(&f.bytes, &list)?;
            txn.backup(&f.path)?;
            let mode = std::fs::metadata(&f.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            crate::store::write_atomic(&f.path, &new, mode)?;
        }
        let test = run.env.nginx.test(&run.env.paths)?;
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

/// Publishes a probe file for `name` the way its validation file will be, and fetches it back.
fn probe(run: &Run, publication: &Publication, name: &str, token: &str) -> Result<(), String> {
    if let Some((_, reason)) = publication.blocked.iter().find(|(n, _)| n == name) {
        return Err(reason.clone());
    }
    let route = publication
        .routes
        .iter()
        .find(|r| r.name == name)
        .ok_or("no server block answers HTTP for it")?;
    let file_name = format!("{token}.txt");
    let created =
        dcv::write_file(&route.dir, &file_name, token.as_bytes()).map_err(|e| format!("{e:#}"))?;
    let addr = connect_address(run, name, route.port);
    let result = dcv::check_served(
        addr,
        name,
        &format!("{}{file_name}", dcv::WELL_KNOWN),
        token.as_bytes(),
    );
    dcv::remove_files(&[route.dir.join(&file_name)], &created);
    result.map_err(|e| {
        let resolved = if run.args.skip_dns_check {
            Vec::new()
        } else {
            dcv::resolve(name)
        };
        let local = dcv::local_addresses();
        if !resolved.is_empty() && !resolved.iter().any(|ip| dcv::is_local(*ip, &local)) {
            let ips: Vec<String> = resolved.iter().map(|ip| ip.to_string()).collect();
            format!(
                "resolves to {}, which is not an address of this host (DNS pointing elsewhere, or a CDN or proxy in front?), and the validation probe there failed: {e}",
                ips.join(", ")
            )
        } else {
            format!("validation probe failed: {e}")
        }
    })
}

/// Where an HTTP fetch for `name` connects: the address it resolves to (loopback when the DNS
/// check is skipped), on the port of the listen that answers for it.
fn connect_address(run: &Run, name: &str, port: u16) -> SocketAddr {
    let ip = if run.args.skip_dns_check {
        None
    } else {
        dcv::resolve(name).into_iter().next()
    };
    SocketAddr::new(ip.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])), port)
}

/// The site's order: resumed from its record, or placed now (record saved first).
async fn ensure_order(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    site: &Site,
    key_type: crate::keys::KeyType,
    product: &str,
) -> anyhow::Result<OrderRecord> {
    let existing = OrderRecord::load(&run.state_dir, &site.name)?
        .filter(|r| r.state != RecordState::Installed);
    let renews = run.renews.get(&site.name).cloned();
    if let Some(record) = existing {
        if record.state != RecordState::Creating {
            run.say(format!(
                "  {}: resuming order {}",
                site.name,
                record.order_id.as_deref().unwrap_or("?")
            ));
            return Ok(record);
        }
        if !run.args.discard_interrupted_order {
            anyhow::bail!(
                "an earlier run was interrupted while ordering, before the CA's answer was saved; the \
                 CA may hold that order. Check the CA console, then run again with \
                 --discard-interrupted-order to order anew"
            );
        }
        OrderRecord::discard(&run.state_dir, &site.name);
    }
    run.say(format!(
        "  {}: {} for {}",
        site.name,
        if renews.is_some() {
            "renewing"
        } else {
            "ordering"
        },
        site.names.join(", ")
    ));
    let generated = crate::keys::generate(key_type, &site.names)?;
    crate::store::ensure_dir(&crate::orders::orders_dir(&run.state_dir), 0o700)?;
    crate::keys::write_private_key(
        &OrderRecord::key_path(&run.state_dir, &site.name),
        &generated.key,
    )?;
    let mut record = OrderRecord {
        site: site.name.clone(),
        names: site.names.clone(),
        provider: ca.name().to_string(),
        order_id: None,
        state: RecordState::Creating,
        csr_pem: generated.csr_pem.clone(),
        fullchain_pem: None,
        created_at: run.ctx.now(),
        last_error: None,
        published_files: Vec::new(),
        published_dirs: Vec::new(),
        renews: renews.clone(),
    };
    record.save(&run.state_dir)?;
    let mut request = OrderRequest {
        product: product.to_string(),
        names: site.names.clone(),
        csr_pem: generated.csr_pem,
        period: None,
        renews: renews.map(OrderId),
        existing_id: None,
    };
    let mut answer = ca.place_order(&request).await;
    if let (Err(CaError::Api { message, .. }), Some(old)) = (&answer, &request.renews) {
        // Refused, so nothing was created: a renewal the CA will not take becomes a new order.
        run.say(format!(
            "  {}: the CA refused to renew order {old} ({message}); ordering anew",
            site.name
        ));
        request.renews = None;
        record.renews = None;
        record.save(&run.state_dir)?;
        answer = ca.place_order(&request).await;
    }
    match answer {
        Ok(order) => {
            record.order_id = Some(order.id.0.clone());
            record.state = RecordState::Pending;
            record.save(&run.state_dir)?;
            Ok(record)
        }
        Err(e @ CaError::Api { .. })
        | Err(e @ CaError::Invalid(_))
        | Err(e @ CaError::Unreachable { .. }) => {
            // The CA refused, or was never reached: nothing was created there.
            OrderRecord::discard(&run.state_dir, &site.name);
            Err(anyhow!(e))
        }
        Err(e) => {
            record.last_error = Some(e.to_string());
            record.save(&run.state_dir)?;
            Err(anyhow!(
                "{e}; the CA may have created the order anyway. Check the CA console; the next run \
                 will not order again without --discard-interrupted-order"
            ))
        }
    }
}

/// Writes each name's validation file where it is served, checks it is, and asks the CA to look.
async fn publish_and_validate(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    record: &OrderRecord,
    publication: &Publication,
    written: &mut Vec<PathBuf>,
    created_dirs: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let id = OrderId(
        record
            .order_id
            .clone()
            .ok_or_else(|| anyhow!("the record has no order id"))?,
    );
    let order = ca.order_status(&id, &record.names).await?;
    if !matches!(order.state, OrderState::Pending { .. }) {
        return Ok(());
    }
    for validation in order.validations.iter().filter(|v| !v.validated) {
        let Some((file_name, content)) = validation.challenges.iter().find_map(|c| match c {
            Challenge::HttpFile { file_name, content } => Some((file_name, content)),
            Challenge::DnsRecord { .. } => None,
        }) else {
            anyhow::bail!(
                "the CA offers no HTTP file validation for {}",
                validation.name
            );
        };
        let route = publication
            .routes
            .iter()
            .find(|r| r.name == validation.name)
            .ok_or_else(|| anyhow!("no server block answers HTTP for {}", validation.name))?;
        created_dirs.extend(dcv::write_file(&route.dir, file_name, content.as_bytes())?);
        written.push(route.dir.join(file_name));
        let addr = connect_address(run, &validation.name, route.port);
        dcv::check_served(
            addr,
            &validation.name,
            &format!("{}{file_name}", dcv::WELL_KNOWN),
            content.as_bytes(),
        )
        .map_err(|e| anyhow!("self-check failed: {e}"))?;
    }
    ca.request_validation(&id).await?;
    Ok(())
}

/// Polls every waiting order until issued, failed for good, or `--timeout`. Issued ones are
/// recorded (with their chain) and returned.
async fn wait_for_issuance(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    mut waiting: Vec<(Site, OrderRecord)>,
) -> Vec<(Site, OrderRecord)> {
    let mut issued = Vec::new();
    waiting.retain(|(site, record)| {
        if record.state == RecordState::Issued {
            issued.push((site.clone(), record.clone()));
            false
        } else {
            true
        }
    });
    if run.args.no_wait {
        for (site, _) in &waiting {
            run.say(format!(
                "  {}: ordered; run again to install once the CA has issued it",
                site.name
            ));
        }
        return issued;
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(run.args.timeout);
    // Polls back off from --poll-interval to four times it (the CA asks for no more than one
    // status call per 30 s per order; issuance often takes minutes), never past the deadline.
    let base = Duration::from_secs_f64(run.args.poll_interval.max(0.05));
    let mut interval = base;
    let mut tick = 0;
    // The last failed status call per site, told when the deadline passes.
    let mut last_error: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut still = Vec::new();
        for (site, mut record) in waiting {
            let id = OrderId(record.order_id.clone().unwrap_or_default());
            match ca.order_status(&id, &record.names).await {
                Ok(order) => match order.state {
                    OrderState::Issued(cert) => {
                        record.state = RecordState::Issued;
                        record.fullchain_pem = Some(cert.fullchain_pem());
                        if let Err(e) = record.save(&run.state_dir) {
                            run.fail(&site.name, format!("{e:#}"));
                            continue;
                        }
                        issued.push((site, record));
                    }
                    OrderState::Failed { reason } => {
                        OrderRecord::discard(&run.state_dir, &site.name);
                        run.fail(
                            &site.name,
                            format!("the CA ended order {id} without a certificate: {reason}"),
                        );
                    }
                    OrderState::Pending { .. } => still.push((site, record)),
                },
                Err(e) => {
                    run.say(format!("  {}: {e} (will ask again)", site.name));
                    last_error.insert(site.name.clone(), e.to_string());
                    still.push((site, record));
                }
            }
        }
        waiting = still;
        if waiting.is_empty() {
            run.spin(0, None);
            return issued;
        }
        if Instant::now() >= deadline {
            run.spin(0, None);
            for (site, record) in &waiting {
                let last = last_error
                    .get(&site.name)
                    .map(|e| format!(" (the last answer: {e})"))
                    .unwrap_or_default();
                run.fail(
                    &site.name,
                    format!(
                        "order {} not issued within --timeout{last}; it is kept, and the next run \
                         resumes it",
                        record.order_id.as_deref().unwrap_or("?")
                    ),
                );
            }
            return issued;
        }
        // Sleep until the next poll, keeping the spinner turning on a terminal.
        let wake =
            Instant::now() + interval.min(deadline.saturating_duration_since(Instant::now()));
        while Instant::now() < wake {
            tokio::time::sleep(
                wake.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(120)),
            )
            .await;
            run.spin(
                tick,
                Some(format!(
                    "waiting for the CA to issue {} certificate(s) … {} s",
                    waiting.len(),
                    started.elapsed().as_secs()
                )),
            );
            tick += 1;
        }
        interval = (interval.mul_f64(1.5)).min(base * 4);
    }
}

/// `--one-certificate`: every selected site's names in one certificate, named after the first.
fn merge_sites(sites: Vec<Site>) -> Site {
    let mut merged = sites[0].clone();
    for s in &sites[1..] {
        for n in &s.names {
            if !merged.names.contains(n) {
                merged.names.push(n.clone());
            }
        }
        merged.servers.extend(&s.servers);
        merged.left_out.extend(s.left_out.iter().cloned());
    }
    merged
}

/// `plan` / `--dry-run`: what would happen, touching nothing.
fn dry_run(run: &mut Run, found: &Discovery, selected: Vec<Site>) -> CommandResult {
    let prefix = run
        .env
        .paths
        .prefix
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let refs: Vec<&Site> = selected.iter().collect();
    let mut diffs = Vec::new();
    match install::plan_edits(found, &refs, &run.env) {
        Ok(edits) => {
            for (file, splices) in edits {
                let f = &found.config.files[file];
                let new =
                    edit::apply(&f.bytes, &splices).map_err(|e| Failure::failed(anyhow!(e)))?;
                let name = f.path.display().to_string();
                diffs.push(
                    String::from_utf8_lossy(&edit::unified_diff(&f.bytes, &new, &name, &name))
                        .into_owned(),
                );
            }
        }
        Err(e) => run.say(format!("  {e:#}")),
    }
    let mut temporary = Vec::new();
    for site in &selected {
        let publication = dcv::plan(found, site, &prefix, &run.dcv_dir, run.http_port);
        for r in &publication.routes {
            temporary.push(format!(
                "{}: validation files in {} (port {})",
                r.name,
                r.dir.display(),
                r.port
            ));
        }
        let result = run.result(&site.name);
        result.names_issued = site.names.clone();
        result.names_left_out = site.left_out.clone();
    }
    if !run.ctx.global.json {
        let mut out = String::new();
        for site in &selected {
            out.push_str(&format!("site {} ({})\n", site.name, site.reason));
            out.push_str(&format!("  order: {}\n", site.names.join(", ")));
            for l in &site.left_out {
                out.push_str(&format!("  left out: {} — {}\n", l.name, l.reason));
            }
        }
        for r in run.results.values() {
            if let Some(why) = r.skipped.as_ref().or(r.error.as_ref()) {
                out.push_str(&format!("site {}: not ordered: {why}\n", r.site));
                for l in &r.names_left_out {
                    out.push_str(&format!("  left out: {} — {}\n", l.name, l.reason));
                }
            }
        }
        out.push_str(
            "\nvalidation (before the DNS and HTTP preflight checks, which a real run makes):\n",
        );
        for t in &temporary {
            out.push_str(&format!("  {t}\n"));
        }
        out.push_str("\nconfiguration changes after issuance:\n");
        for d in &diffs {
            out.push_str(d);
        }
        print!("{out}");
        return Ok(ExitStatus::Success);
    }
    let doc = AutoJson {
        dry_run: true,
        sites: run.results.values().cloned().collect(),
        reloads: 0,
        diffs,
        hooks: Vec::new(),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| Failure::failed(anyhow!(e)))?
    );
    Ok(ExitStatus::Success)
}

/// Prints the summary (or the JSON document) and picks the exit status.
pub(crate) fn finish(run: &mut Run, _found: &Discovery, _unused: Vec<Site>) -> CommandResult {
    let failed =
        run.results.values().any(|r| r.error.is_some()) || run.hook_runs.iter().any(|h| !h.ok);
    if !run.args.dry_run {
        note_results(run);
    }
    if run.ctx.global.json {
        let doc = AutoJson {
            dry_run: false,
            sites: run.results.values().cloned().collect(),
            reloads: run.reloads,
            diffs: Vec::new(),
            hooks: run.hook_runs.clone(),
        };
        let mut value = serde_json::to_value(&doc).map_err(|e| Failure::failed(anyhow!(e)))?;
        if let Some(object) = value.as_object_mut() {
            object.extend(run.extra_json.clone());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| Failure::failed(anyhow!(e)))?
        );
    } else {
        for r in run.results.values() {
            let status = match (&r.error, r.names_issued.is_empty()) {
                (Some(e), _) => format!("FAILED: {e}"),
                (None, true) if r.skipped.is_some() => {
                    format!("skipped: {}", r.skipped.as_deref().unwrap_or(""))
                }
                (None, false) => format!(
                    "HTTPS for {} (until {})",
                    r.names_issued.join(", "),
                    r.not_after.as_deref().unwrap_or("?")
                ),
                (None, true) => "nothing issued".to_string(),
            };
            println!("{:<32} {status}", r.site);
            for l in &r.names_left_out {
                println!("{:<32}   left out {}: {}", "", l.name, l.reason);
            }
        }
        println!("{} reload(s) of nginx.", run.reloads);
    }
    Ok(if failed {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    })
}

/// Saves each site's outcome for `status`.
fn note_results(run: &Run) {
    let runs = run
        .results
        .values()
        .map(|r| {
            let result = match (&r.error, &r.skipped) {
                (Some(_), _) => "failed",
                (None, Some(_)) => "skipped",
                (None, None) => "ok",
            };
            let last = lifecycle::LastRun {
                at: run.ctx.now(),
                command: run.command.to_string(),
                result: result.to_string(),
                error: r.error.clone(),
            };
            (r.site.clone(), last)
        })
        .collect();
    if let Err(e) = lifecycle::note_runs(&run.state_dir, runs) {
        run.say(format!("could not record the results for `status`: {e:#}"));
    }
}
