//! `enc365-nginx status`: every certificate we manage and every order in flight — site, names,
//! provider, order id, state, expiry, days left, whether it is due, the last run's result — and
//! sites whose configuration no longer points at our live files (a panel regenerated them; the
//! next `auto` or `renew` puts our certificate back). Reads only; takes no lock.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde::Serialize;

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
pub fn run(ctx: &Context) -> CommandResult {
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
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for lineage in &lineages {
        let live = lifecycle::live_summary(&config_dir, &lineage.site);
        let (config, detail, due) = match &found {
            Err(_) => ("unknown", nginx_error.clone(), None),
            Ok(f) => config_state(f, &sites, &config_dir, lineage, live.as_ref(), now),
        };
        let (cert, _) = install::live_paths(&config_dir, &lineage.site);
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
    let doc = StatusJson {
        certificates: entries.into_values().collect(),
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
    sites: &[site::Site],
    config_dir: &std::path::Path,
    lineage: &Lineage,
    live: Option<&crate::tlsinfo::CertSummary>,
    now: i64,
) -> (&'static str, Option<String>, Option<String>) {
    let Some(s) = lifecycle::site_of(&lineage.site, sites, found, config_dir) else {
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
        config: "n/a".into(),
        config_detail: None,
        due: None,
        pending_order: Some(pending),
        last_run: last.get(&record.site).cloned(),
    };
    entries.insert(record.site.clone(), entry);
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
