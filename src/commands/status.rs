//! `enc365-nginx status`: every certificate we manage and every order in flight — site, names,
//! provider, order id, state, expiry, days left, whether it is due, the last run's result — and
//! sites whose configuration no longer points at our live files (a panel regenerated them; the
//! next `auto` or `renew` puts our certificate back). Reads only; takes no lock.
//!
//! Like `certbot certificates`, each certificate also shows its key type and files and the sites
//! whose configuration uses it ([`crate::certificates`]); `certonly` lineages are listed too.
//! `--site` and `--name` narrow the list.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde::Serialize;

use crate::certificates::{self, LineageFiles};
use crate::cli::StatusArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::install;
use crate::lifecycle::{self, LastRun, Lineage, Verdict};
use crate::orders::{OrderRecord, RecordState};
use crate::site;

/// An order in flight, as `status --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingOrder {
    /// The CA's order id (none while the CA's answer is not saved).
    pub order_id: Option<String>,
    /// The draft a two-step provider's first step created (HowSSL `check_id`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
    /// `creating`, `created` (a draft to commit), `committing`, `pending` or `issued`.
    pub state: RecordState,
    /// The names ordered.
    pub names: Vec<String>,
    /// The order it renews.
    pub renews: Option<String>,
    /// The last error met while working on it.
    pub last_error: Option<String>,
}

/// One site in `status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The site.
    pub site: String,
    /// The names of the installed certificate (or of the pending order when none is installed).
    pub names: Vec<String>,
    /// The provider.
    pub provider: String,
    /// The installed certificate's order id (or the pending order's).
    pub order_id: Option<String>,
    /// `installed`, `revoked` (still installed; `renew` replaces it), or the pending order's
    /// state when nothing is installed yet.
    pub state: String,
    /// End of the installed certificate's validity, RFC 3339.
    pub not_after: Option<String>,
    /// Days of validity left.
    pub days_left: Option<i64>,
    /// The chain nginx should serve.
    pub cert_path: Option<String>,
    /// `nginx` (installed by `auto`, renewed by `renew`) or `certonly` (files only).
    pub kind: &'static str,
    /// The key type of the certificate (`ecdsa-p256`, `rsa2048`, …).
    pub key_type: Option<String>,
    /// The lineage's four files (absent when nothing is on disk yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesJson>,
    /// The sites whose TLS blocks serve this certificate.
    pub used_by: Vec<String>,
    /// `ok` (every TLS block of the site points at our live files), `regenerated` (it does not),
    /// `missing` (no server block carries the site), `unknown` (the nginx configuration could not
    /// be read), or `n/a` (nothing installed yet).
    pub config: String,
    /// Why the configuration is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_detail: Option<String>,
    /// Why `renew` would renew it now (`--days 30`), if it would.
    pub due: Option<String>,
    /// An order in flight for the site (a first order, or a renewal).
    pub pending_order: Option<PendingOrder>,
    /// The last run that worked on the site.
    pub last_run: Option<LastRun>,
}

/// A lineage's files in `status --json`.
#[derive(Debug, Clone, Serialize)]
pub struct FilesJson {
    /// The leaf alone.
    pub cert: String,
    /// The intermediates alone.
    pub chain: String,
    /// Leaf then intermediates.
    pub fullchain: String,
    /// The private key.
    pub privkey: String,
}

impl FilesJson {
    fn of(files: &LineageFiles) -> FilesJson {
        let s = |p: &std::path::PathBuf| p.display().to_string();
        FilesJson {
            cert: s(&files.cert),
            chain: s(&files.chain),
            fullchain: s(&files.fullchain),
            privkey: s(&files.privkey),
        }
    }
}

/// The whole `status --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct StatusJson {
    /// Every managed certificate and pending order, by site.
    pub certificates: Vec<Entry>,
    /// Why the nginx configuration could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nginx_error: Option<String>,
}

/// Runs `status`.
pub fn run(args: &StatusArgs, ctx: &Context) -> CommandResult {
    if args.cluster {
        return crate::cluster::status::run(ctx);
    }
    let config_dir = ctx.config_dir();
    let state_dir = ctx.state_dir();
    let now = ctx.now();
    let lineages = Lineage::all(&state_dir).map_err(Failure::failed)?;
    let records = OrderRecord::all(&state_dir).map_err(Failure::failed)?;
    let last = lifecycle::last_runs(&state_dir);
    let paths = ctx.nginx_paths()?;
    let found = crate::discovery::discover(&paths.conf, now, 30);
    let (sites, nginx_error) = match &found {
        Ok(f) => (site::group(f), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    // Built once for every lineage (per lineage, each took time in proportion to all sites).
    let indexes = found.as_ref().ok().map(|f| {
        let users = certificates::CertificateUsers::new(f, &sites);
        (f, lifecycle::SiteIndex::new(&sites, f), users)
    });
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for lineage in &lineages {
        let live = match &indexes {
            Some((f, ..)) => lifecycle::live_summary_in(f, &config_dir, &lineage.site),
            None => lifecycle::live_summary(&config_dir, &lineage.site),
        };
        let (config, detail, due) = match &indexes {
            None => ("unknown", nginx_error.clone(), None),
            Some((f, index, _)) => config_state(f, index, &config_dir, lineage, live.as_ref(), now),
        };
        let (cert, _) = install::live_paths(&config_dir, &lineage.site);
        let files = LineageFiles::of(&config_dir, &lineage.site);
        let not_after = live.as_ref().map_or(lineage.not_after, |l| l.not_after);
        let state = if lineage.revoked_at.is_some() {
            "revoked"
        } else {
            "installed"
        };
        let entry = Entry {
            site: lineage.site.clone(),
            names: lineage.names.clone(),
            provider: lineage.provider.clone(),
            order_id: lineage.order_id.clone(),
            state: state.into(),
            not_after: Some(rfc3339(not_after)),
            days_left: Some((not_after - now).div_euclid(86_400)),
            cert_path: Some(cert.display().to_string()),
            kind: "nginx",
            key_type: std::fs::read(&files.fullchain)
                .ok()
                .and_then(|pem| certificates::key_type(&pem)),
            used_by: match &indexes {
                Some((_, _, users)) => users.sites_using(&sites, &files),
                None => Vec::new(),
            },
            files: Some(FilesJson::of(&files)),
            config: config.into(),
            config_detail: detail,
            due,
            pending_order: None,
            last_run: last.get(&lineage.site).cloned(),
        };
        entries.insert(lineage.site.clone(), entry);
    }
    for record in records.iter().filter(|r| r.state.is_open()) {
        add_pending(&mut entries, record, &last);
    }
    let certonly = Lineage::all_certonly(&state_dir).map_err(Failure::failed)?;
    for lineage in &certonly {
        entries
            .entry(format!("{} (certonly)", lineage.site))
            .or_insert_with(|| certonly_entry(lineage, &config_dir, now, &last));
    }
    let mut certificates: Vec<Entry> = entries.into_values().collect();
    certificates.retain(|e| wanted(e, args));
    let doc = StatusJson {
        certificates,
        nginx_error,
    };
    if ctx.global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::failed(anyhow!(e)))?
        );
        return Ok(ExitStatus::Success);
    }
    print!("{}", table(&doc));
    Ok(ExitStatus::Success)
}

/// A managed site's configuration state (`ok`, `regenerated`, `missing`), why, and why it is
/// due, if it is.
fn config_state(
    found: &crate::discovery::Discovery,
    sites: &lifecycle::SiteIndex,
    config_dir: &std::path::Path,
    lineage: &Lineage,
    live: Option<&crate::tlsinfo::CertSummary>,
    now: i64,
) -> (&'static str, Option<String>, Option<String>) {
    let Some(s) = sites.site_of(&lineage.site, config_dir) else {
        let why = "no server block carries this site any more";
        return ("missing", Some(why.to_string()), None);
    };
    let drift = lifecycle::config_points_at_live(found, &s, config_dir);
    let due = match lifecycle::verdict(lineage, &s, live, now, 30, false) {
        Verdict::Due(why) => Some(why),
        Verdict::Fine(_) => None,
    };
    let state = if drift.is_some() { "regenerated" } else { "ok" };
    (state, drift, due)
}

/// Adds an order in flight: to its site's entry, or as an entry of its own.
fn add_pending(
    entries: &mut BTreeMap<String, Entry>,
    record: &OrderRecord,
    last: &BTreeMap<String, LastRun>,
) {
    let pending = PendingOrder {
        order_id: record.order_id.clone(),
        draft_id: record.draft_id.clone(),
        state: record.state,
        names: record.names.clone(),
        renews: record.renews.clone(),
        last_error: record.last_error.clone(),
    };
    if let Some(entry) = entries.get_mut(&record.site) {
        entry.pending_order = Some(pending);
        return;
    }
    let state = serde_json::to_value(record.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let entry = Entry {
        site: record.site.clone(),
        names: record.names.clone(),
        provider: record.provider.clone(),
        order_id: record.order_id.clone(),
        state,
        not_after: None,
        days_left: None,
        cert_path: None,
        kind: "nginx",
        key_type: None,
        files: None,
        used_by: Vec::new(),
        config: "n/a".into(),
        config_detail: None,
        due: None,
        pending_order: Some(pending),
        last_run: last.get(&record.site).cloned(),
    };
    entries.insert(record.site.clone(), entry);
}

/// Whether `--site` / `--name` keep an entry.
fn wanted(entry: &Entry, args: &StatusArgs) -> bool {
    let site = args.site.as_deref().is_none_or(|s| {
        let s = s.trim_end_matches('.').to_ascii_lowercase();
        entry.site == s || entry.used_by.contains(&s)
    });
    let name = (args.name.as_deref()).is_none_or(|n| certificates::covers(&entry.names, n));
    site && name
}

/// A `certonly` lineage's entry: no site's configuration is expected to use it.
fn certonly_entry(
    lineage: &Lineage,
    config_dir: &std::path::Path,
    now: i64,
    last: &BTreeMap<String, LastRun>,
) -> Entry {
    let files = LineageFiles::of(config_dir, &lineage.site);
    let live = std::fs::read(&files.fullchain).ok();
    let not_after = (live.as_deref())
        .and_then(|pem| crate::tlsinfo::summarize_pem(pem).ok())
        .map_or(lineage.not_after, |s| s.not_after);
    let due = (not_after - now < 30 * 86_400).then(|| "expires within 30 days".to_string());
    Entry {
        site: lineage.site.clone(),
        names: lineage.names.clone(),
        provider: lineage.provider.clone(),
        order_id: lineage.order_id.clone(),
        state: "saved".into(),
        not_after: Some(rfc3339(not_after)),
        days_left: Some((not_after - now).div_euclid(86_400)),
        cert_path: Some(files.fullchain.display().to_string()),
        kind: "certonly",
        key_type: live.as_deref().and_then(certificates::key_type),
        files: Some(FilesJson::of(&files)),
        used_by: Vec::new(),
        config: "n/a".into(),
        config_detail: None,
        due,
        pending_order: None,
        last_run: last.get(&lineage.site).cloned(),
    }
}

/// The human table.
fn table(doc: &StatusJson) -> String {
    let mut out = String::new();
    if let Some(e) = &doc.nginx_error {
        out.push_str(&format!("the nginx configuration could not be read: {e}\n"));
    }
    if doc.certificates.is_empty() {
        out.push_str("No managed certificates; `enc365-nginx auto` gives sites HTTPS.\n");
        return out;
    }
    out.push_str(&format!(
        "{:<24} {:<10} {:<10} {:<21} {:>5}  {:<12} {:<8} NAMES\n",
        "SITE", "STATE", "ORDER", "EXPIRES", "DAYS", "CONFIG", "LAST"
    ));
    for e in &doc.certificates {
        out.push_str(&format!(
            "{:<24} {:<10} {:<10} {:<21} {:>5}  {:<12} {:<8} {}\n",
            e.site,
            e.state,
            e.order_id.as_deref().unwrap_or("-"),
            e.not_after.as_deref().unwrap_or("-"),
            e.days_left.map_or("-".to_string(), |d| d.to_string()),
            e.config,
            e.last_run.as_ref().map_or("-", |l| l.result.as_str()),
            e.names.join(" ")
        ));
        if let Some(p) = &e.pending_order {
            out.push_str(&format!(
                "{:<24} order {} {:?}{}\n",
                "",
                p.order_id.as_deref().unwrap_or("(not answered yet)"),
                p.state,
                p.renews
                    .as_deref()
                    .map_or(String::new(), |r| format!(", renewing {r}"))
            ));
        }
        if let Some(k) = &e.key_type {
            out.push_str(&format!("{:<24} key type: {k}\n", ""));
        }
        if let Some(f) = &e.files {
            out.push_str(&format!("{:<24} certificate: {}\n", "", f.fullchain));
            out.push_str(&format!("{:<24} private key: {}\n", "", f.privkey));
        }
        if !e.used_by.is_empty() {
            out.push_str(&format!("{:<24} used by: {}\n", "", e.used_by.join(", ")));
        } else if e.kind == "certonly" {
            out.push_str(&format!("{:<24} certonly: files only, no nginx site\n", ""));
        }
        if let Some(d) = &e.config_detail {
            out.push_str(&format!("{:<24} {d}\n", ""));
        }
        if let Some(d) = &e.due {
            out.push_str(&format!("{:<24} due: {d}\n", ""));
        }
        if let Some(err) = e.last_run.as_ref().and_then(|l| l.error.as_deref()) {
            out.push_str(&format!("{:<24} last error: {err}\n", ""));
        }
    }
    out
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
