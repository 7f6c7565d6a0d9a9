//! What we manage after the first install: one [`Lineage`] per site whose certificate we installed
//! (`<state-dir>/certs/<site>.json`, 0600), the result of the last run per site
//! (`<state-dir>/last-run.json`), and the decisions `auto` and `renew` share — is a managed
//! certificate due ([`verdict`]), does the site's configuration still point at our live files
//! ([`config_points_at_live`]), and what to do with a selected site ([`plan`]).
//!
//! A lineage is written only after an install was proven by handshake, and a renewal replaces it
//! only then (the one it replaced is kept as [`Lineage::previous`], so `rollback` can put it back).
//! An order in flight lives in [`crate::orders`]; the live certificate files themselves in
//! `<config-dir>/live/<site>/` ([`crate::install::live_paths`]).
//!
//! Not here: talking to the CA, editing nginx configuration, or printing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};

use crate::discovery::Discovery;
use crate::install::{self, Issued};
use crate::orders::{OrderRecord, RecordState};
use crate::site::Site;
use crate::store::write_atomic;
use crate::tlsinfo::{self, CertSummary};

/// A certificate we installed for a site and keep renewing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The site's name (also names `live/<site>/` and this record's file).
    pub site: String,
    /// The names the installed certificate was ordered for.
    pub names: Vec<String>,
    /// The site's certifiable names when it was ordered, including those the preflight checks
    /// left out; a change of these is what makes a renewal with other names due.
    pub wanted: Vec<String>,
    /// The provider that issued it (`encryption365`).
    pub provider: String,
    /// The CA's order id; a renewal names it as the order it renews.
    pub order_id: Option<String>,
    /// End of the leaf's validity (Unix seconds).
    pub not_after: i64,
    /// SHA-256 of the leaf (hex), to tell which certificate the live files hold.
    pub fingerprint: String,
    /// When it was installed (Unix seconds).
    pub installed_at: i64,
    /// The lineage this one replaced (one level deep), for `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<Lineage>>,
    /// When `revoke` revoked it at the CA (Unix seconds); a revoked certificate is due at once,
    /// and replaced by a new order rather than a renewal of the revoked one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// The directory holding lineages.
pub fn certs_dir(state_dir: &Path) -> PathBuf {
    crate::paths::certs_dir(state_dir)
}

impl Lineage {
    /// A lineage record's path.
    pub fn path(state_dir: &Path, site: &str) -> PathBuf {
        crate::paths::lineage(state_dir, site)
    }

    /// Reads a site's lineage, if there is one.
    pub fn load(state_dir: &Path, site: &str) -> anyhow::Result<Option<Lineage>> {
        crate::store::read_record(
            &Self::path(state_dir, site),
            &format!(
                "move it away and run `enc365-nginx auto --site {site}` to manage the site again"
            ),
        )
    }

    /// Writes the record atomically (0600, directory 0700).
    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        crate::store::write_record(&Self::path(state_dir, &self.site), self)
    }

    /// [`Lineage::save`] staged: written and flushed in the record's spare file, in place only
    /// once the caller puts it there ([`crate::store::StagedFile`]). The spare has a fixed
    /// name, so one a killed run left is reused, never piled up.
    pub fn stage_save(&self, state_dir: &Path) -> anyhow::Result<crate::store::StagedFile> {
        crate::store::stage_rewrite(&Self::path(state_dir, &self.site), self, false)
    }

    /// Removes a site's lineage (the site is no longer managed).
    pub fn remove(state_dir: &Path, site: &str) -> anyhow::Result<()> {
        match std::fs::remove_file(Self::path(state_dir, site)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("could not remove the lineage record")
            }
            _ => Ok(()),
        }
    }

    /// Every lineage, sorted by site.
    pub fn all(state_dir: &Path) -> anyhow::Result<Vec<Lineage>> {
        let mut out: Vec<Lineage> = crate::store::read_records(
            &certs_dir(state_dir),
            "move it away and run `enc365-nginx auto` to manage its site again",
        )?;
        out.sort_by(|a, b| a.site.cmp(&b.site));
        Ok(out)
    }

    /// The site of every lineage, sorted, read from the file names where they tell it (a name
    /// without `_` is the site's own: [`crate::paths::stem`] changed nothing) and from the
    /// record otherwise — so a host with thousands of lineages lists them without reading them.
    pub fn sites(state_dir: &Path) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for name in crate::store::record_names(&certs_dir(state_dir))? {
            let stem = name.to_str().and_then(|n| n.strip_suffix(".json"));
            match stem {
                Some(site) if !site.contains('_') && !site.is_empty() => out.push(site.to_string()),
                _ => {
                    let path = certs_dir(state_dir).join(&name);
                    let what_to_do = "move it away and run `enc365-nginx auto` to manage its \
                                      site again";
                    let read: Option<Lineage> = crate::store::read_record(&path, what_to_do)?;
                    out.extend(read.map(|l| l.site));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every lineage `certonly` saved (`<state-dir>/certonly/`), sorted by name.
    pub fn all_certonly(state_dir: &Path) -> anyhow::Result<Vec<Lineage>> {
        let mut out: Vec<Lineage> = crate::store::read_records(
            &crate::paths::certonly_dir(state_dir),
            "move it away; the next `enc365-nginx certonly` for its names orders anew",
        )?;
        out.sort_by(|a, b| a.site.cmp(&b.site));
        Ok(out)
    }

    /// The order a renewal of this certificate names as the one it renews (none once revoked).
    pub fn renewable_order(&self) -> Option<String> {
        self.order_id.clone().filter(|_| self.revoked_at.is_none())
    }

    /// Days of validity left at `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// Records a proven install: a new lineage from the site's order record when the installed leaf
/// is the one that order brought (the old lineage kept as `previous`); nothing when the leaf is
/// the one the lineage already holds (a reinstall). `wanted` is the site's certifiable names.
pub fn note_installed(
    state_dir: &Path,
    item: &Issued,
    wanted: &[String],
    now: i64,
) -> anyhow::Result<()> {
    let order = || Ok(OrderRecord::load(state_dir, &item.site)?.map(|r| (r.provider, r.order_id)));
    match lineage_after_install(state_dir, item, wanted, now, order)? {
        Some(lineage) => lineage.save(state_dir),
        None => Ok(()),
    }
}

/// The lineage a proven install of `item` makes (see [`note_installed`]), or `None` when the
/// site's lineage already holds this certificate. `order` gives the provider and order id of
/// the site's order record, if it has one (asked only when a lineage is made).
pub fn lineage_after_install(
    state_dir: &Path,
    item: &Issued,
    wanted: &[String],
    now: i64,
    order: impl FnOnce() -> anyhow::Result<Option<(String, Option<String>)>>,
) -> anyhow::Result<Option<Lineage>> {
    let fingerprint = crate::verify::pem_leaf_fingerprint(item.fullchain_pem.as_bytes())
        .map_err(|e| anyhow!(e))?;
    let old = Lineage::load(state_dir, &item.site)?;
    if old.as_ref().is_some_and(|l| l.fingerprint == fingerprint) {
        return Ok(None);
    }
    let summary = tlsinfo::summarize_pem(item.fullchain_pem.as_bytes()).map_err(|e| anyhow!(e))?;
    let (provider, order_id) = order()?.unwrap_or_else(|| ("unknown".into(), None));
    let mut wanted: Vec<String> = wanted.to_vec();
    for n in &item.names {
        if !wanted.contains(n) {
            wanted.push(n.clone());
        }
    }
    Ok(Some(Lineage {
        site: item.site.clone(),
        names: item.names.clone(),
        wanted,
        provider,
        order_id,
        not_after: summary.not_after,
        fingerprint,
        installed_at: now,
        previous: old.map(|mut o| {
            o.previous = None;
            Box::new(o)
        }),
        revoked_at: None,
    }))
}

/// Adopts certificates installed before lineages were kept: an `installed` order record with no
/// lineage, whose certificate is the one in the live files, gets one. Returns the sites adopted.
pub fn adopt_installed(
    state_dir: &Path,
    config_dir: &Path,
    now: i64,
) -> anyhow::Result<Vec<String>> {
    let mut adopted = Vec::new();
    for record in unmanaged_records(state_dir)? {
        if record.state != RecordState::Installed
            || Lineage::load(state_dir, &record.site)?.is_some()
        {
            continue;
        }
        let Some(chain) = &record.fullchain_pem else {
            continue;
        };
        let (cert, key) = install::live_paths(config_dir, &record.site);
        let Ok(live_chain) = std::fs::read_to_string(&cert) else {
            continue;
        };
        let same = |pem: &str| crate::verify::pem_leaf_fingerprint(pem.as_bytes()).ok();
        if same(chain).is_none() || same(chain) != same(&live_chain) {
            continue;
        }
        let item = Issued {
            site: record.site.clone(),
            names: record.names.clone(),
            fullchain_pem: live_chain,
            key_pem: std::fs::read_to_string(&key).unwrap_or_default(),
        };
        note_installed(state_dir, &item, &record.names, now)?;
        adopted.push(record.site.clone());
    }
    Ok(adopted)
}

/// The order records of sites with no lineage, sorted by site: only they can be adopted. A
/// managed site's record is not read (on a host with thousands of sites, all of them are).
fn unmanaged_records(state_dir: &Path) -> anyhow::Result<Vec<OrderRecord>> {
    let managed: std::collections::HashSet<_> = crate::store::record_names(&certs_dir(state_dir))?
        .into_iter()
        .collect();
    let orders = crate::paths::orders_dir(state_dir);
    let mut out = Vec::new();
    for name in crate::store::record_names(&orders)? {
        if managed.contains(&name) {
            continue;
        }
        let what_to_do = "move it away to start its site over (check the CA console first: the \
                          CA may hold the order it recorded)";
        out.extend(crate::store::read_record::<OrderRecord>(
            &orders.join(name),
            what_to_do,
        )?);
    }
    out.sort_by(|a, b| a.site.cmp(&b.site));
    Ok(out)
}

/// Whether a managed certificate is due, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Renew it: a new order.
    Due(String),
    /// It is fine for now.
    Fine(String),
}

/// Decides whether the lineage of `site` is due at `now`: forced, the live certificate is missing
/// or unreadable, it expires within `days`, or the site's certifiable names changed since it was
/// ordered (added or removed).
pub fn verdict(
    lineage: &Lineage,
    site: &Site,
    live: Option<&CertSummary>,
    now: i64,
    days: i64,
    force: bool,
) -> Verdict {
    renewal_verdict(lineage, site, live, (now, days, force), None).0
}

/// [`verdict`], with the renewal window the CA suggests (ACME Renewal Information) when it
/// offers one: then the window decides instead of `days`. Also says which rule decided:
/// `force`, `revoked`, `missing`, `expired`, `ari`, `days` or `names`.
pub fn renewal_verdict(
    lineage: &Lineage,
    site: &Site,
    live: Option<&CertSummary>,
    (now, days, force): (i64, i64, bool),
    ari: Option<&crate::ca::acme::RenewalWindow>,
) -> (Verdict, &'static str) {
    if force {
        return (Verdict::Due("--force".into()), "force");
    }
    if lineage.revoked_at.is_some() {
        return (Verdict::Due("revoked at the CA".into()), "revoked");
    }
    let Some(live) = live else {
        let why = "the live certificate is missing or unreadable";
        return (Verdict::Due(why.into()), "missing");
    };
    let left = live.days_left(now);
    if now >= live.not_after {
        return (
            Verdict::Due(format!("expired {} days ago", -left)),
            "expired",
        );
    }
    // A window starting after the certificate expires is no advice: `days` decides then.
    let ari = ari.filter(|w| w.start < live.not_after);
    let timing = match ari {
        Some(window) => (ari_verdict(window, now), "ari"),
        None if left < days => (Verdict::Due(format!("expires in {left} days")), "days"),
        None => (Verdict::Fine(format!("valid for {left} more days")), "days"),
    };
    if matches!(timing.0, Verdict::Due(_)) {
        return timing;
    }
    match names_changed(lineage, site) {
        Some(why) => (Verdict::Due(why), "names"),
        None => timing,
    }
}

/// Due once `now` is past the moment chosen inside the CA's suggested window — at once when the
/// whole window is past (a CA moves it there to ask for early renewal, e.g. before revoking).
pub fn ari_verdict(window: &crate::ca::acme::RenewalWindow, now: i64) -> Verdict {
    let at = crate::commands::status::rfc3339;
    let range = format!("{} to {}", at(window.start), at(window.end));
    let explained = (window.explanation_url.as_deref())
        .map_or_else(String::new, |u| format!("; the CA explains: {u}"));
    if now >= window.end {
        Verdict::Due(format!(
            "the CA's renewal window (ARI, {range}) has passed: renew now{explained}"
        ))
    } else if now >= window.renew_at {
        Verdict::Due(format!(
            "inside the CA's renewal window (ARI, {range}), past this certificate's renewal \
             time {}{explained}",
            at(window.renew_at)
        ))
    } else {
        Verdict::Fine(format!(
            "the CA suggests renewing from {range} (ARI); this certificate renews at {}",
            at(window.renew_at)
        ))
    }
}

/// Why the site's certifiable names no longer match the ones the lineage was ordered for.
fn names_changed(lineage: &Lineage, site: &Site) -> Option<String> {
    let added: Vec<&str> = site
        .names
        .iter()
        .filter(|n| !lineage.wanted.contains(n))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = lineage
        .wanted
        .iter()
        .filter(|n| !site.names.contains(n))
        .map(String::as_str)
        .collect();
    if !added.is_empty() {
        return Some(format!("names added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        return Some(format!("names removed: {}", removed.join(", ")));
    }
    None
}

/// Reads the live certificate of a site, if it is there and parses.
pub fn live_summary(config_dir: &Path, site: &str) -> Option<CertSummary> {
    let (cert, _) = install::live_paths(config_dir, site);
    tlsinfo::read_certificate(&cert).ok()
}

/// [`live_summary`], from what `found` read of it when a TLS block names the live file (the
/// usual case: it was read moments ago, in this run), else from the file.
pub fn live_summary_in(found: &Discovery, config_dir: &Path, site: &str) -> Option<CertSummary> {
    let (cert, _) = install::live_paths(config_dir, site);
    match found.certificate(&cert) {
        Some(read) => read.cloned(),
        None => tlsinfo::read_certificate(&cert).ok(),
    }
}

/// Why a managed site's configuration does not serve our live certificate, or `None` when every
/// TLS block of the site points at it.
pub fn config_points_at_live(found: &Discovery, site: &Site, config_dir: &Path) -> Option<String> {
    let (cert, _) = install::live_paths(config_dir, &site.name);
    // Resolved only when a block names the file by another path (rarely: it is usually ours).
    let canonical = std::cell::OnceCell::new();
    let canonical = || canonical.get_or_init(|| std::fs::canonicalize(&cert).ok());
    let tls: Vec<usize> = site
        .servers
        .iter()
        .copied()
        .filter(|&i| found.servers[i].tls)
        .collect();
    if tls.is_empty() {
        return Some("no server block of the site has TLS any more".into());
    }
    for i in tls {
        let server = &found.servers[i];
        let ours = !server.ssl_certificates.is_empty()
            && server.ssl_certificates.iter().all(|file| {
                let path = found.config.conf_dir.join(file);
                path == cert
                    || canonical().is_some() && std::fs::canonicalize(&path).ok() == *canonical()
            });
        if !ours {
            let (file, line) = found.location(i);
            return Some(format!(
                "{}:{line} no longer points at {} (was the file regenerated?)",
                file.display(),
                cert.display()
            ));
        }
    }
    None
}

/// The site that a lineage belongs to: the one named after it, else the one carrying its name —
/// merged with every other site whose TLS blocks serve the same live certificate (one
/// certificate for several sites, `auto --one-certificate`), so a renewal keeps covering them all.
/// The returned site is named as the lineage is, so its live paths stay the same. For many
/// lineages, build a [`SiteIndex`] once instead.
pub fn site_of(
    lineage_site: &str,
    sites: &[Site],
    found: &Discovery,
    config_dir: &Path,
) -> Option<Site> {
    SiteIndex::new(sites, found).site_of(lineage_site, config_dir)
}

/// [`site_of`] for many lineages: the sites indexed by name and by the certificate files their
/// TLS blocks serve, so each lookup costs what that lineage's sites cost, not all sites.
pub struct SiteIndex<'a> {
    sites: &'a [Site],
    named: HashMap<&'a str, usize>,
    carrying: HashMap<&'a str, usize>,
    serving: HashMap<PathBuf, Vec<usize>>,
}

impl<'a> SiteIndex<'a> {
    /// Indexes `sites` (grouped from `found`).
    pub fn new(sites: &'a [Site], found: &Discovery) -> SiteIndex<'a> {
        let mut index = SiteIndex {
            sites,
            named: HashMap::new(),
            carrying: HashMap::new(),
            serving: crate::certificates::files_served(found, sites),
        };
        for (j, site) in sites.iter().enumerate() {
            index.named.entry(&site.name).or_insert(j);
            for n in &site.names {
                index.carrying.entry(n).or_insert(j);
            }
        }
        index
    }

    /// [`site_of`] for `lineage_site`.
    pub fn site_of(&self, lineage_site: &str, config_dir: &Path) -> Option<Site> {
        let first = (self.named.get(lineage_site)).or_else(|| self.carrying.get(lineage_site));
        let primary = &self.sites[*first?];
        let mut site = primary.clone();
        site.name = lineage_site.to_string();
        let (cert, _) = install::live_paths(config_dir, lineage_site);
        for &j in self
            .serving
            .get(&cert)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let other = &self.sites[j];
            if other.servers == primary.servers {
                continue;
            }
            for n in &other.names {
                if !site.names.contains(n) {
                    site.names.push(n.clone());
                }
            }
            site.servers.extend(&other.servers);
            site.left_out.extend(other.left_out.iter().cloned());
        }
        Some(site)
    }
}

/// What to do with one selected site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Order (or resume the pending order); `renews` is the order a new one renews.
    Order {
        /// The order id of the certificate this renews, if any.
        renews: Option<String>,
    },
    /// Put our existing, still valid certificate back into the site's configuration (a panel
    /// regenerated it); no new order.
    Reinstall,
    /// Nothing to do: our certificate is valid and the configuration serves it (the reason).
    Keep(String),
}

/// One site of a run's selection, with what to do.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The site.
    pub site: Site,
    /// What to do.
    pub action: Action,
}

/// Decides, for sites `auto` selected, whether each needs an order (a renewal when we manage it),
/// only a reinstall of our valid certificate, or nothing. A pending order always wins: it is
/// resumed.
pub fn plan(
    found: &Discovery,
    state_dir: &Path,
    config_dir: &Path,
    sites: Vec<Site>,
    now: i64,
    days: i64,
) -> anyhow::Result<Vec<Planned>> {
    let mut out = Vec::new();
    for site in sites {
        let pending = OrderRecord::load(state_dir, &site.name)?.filter(|r| r.state.is_open());
        let lineage = Lineage::load(state_dir, &site.name)?;
        let action = match (pending, lineage) {
            (Some(record), _) => Action::Order {
                renews: record.renews,
            },
            (None, None) => Action::Order { renews: None },
            (None, Some(lineage)) => {
                let live = live_summary_in(found, config_dir, &site.name);
                match verdict(&lineage, &site, live.as_ref(), now, days, false) {
                    Verdict::Due(_) => Action::Order {
                        renews: lineage.renewable_order(),
                    },
                    Verdict::Fine(why) => match config_points_at_live(found, &site, config_dir) {
                        Some(_) => Action::Reinstall,
                        None => Action::Keep(format!("certificate {why}; nothing to do")),
                    },
                }
            }
        };
        out.push(Planned { site, action });
    }
    Ok(out)
}

/// For a managed site about to be renewed: the names its current certificate covers that failed
/// the preflight checks now. A renewal without them would take HTTPS away from those names, so
/// the renewal is not made (the current certificate stays) and this says why.
pub fn renewal_loses_names(state_dir: &Path, site: &Site) -> Option<String> {
    let lineage = Lineage::load(state_dir, &site.name).ok().flatten()?;
    let lost: Vec<&str> = site
        .left_out
        .iter()
        .filter(|l| lineage.names.contains(&l.name))
        .map(|l| l.name.as_str())
        .collect();
    if lost.is_empty() {
        return None;
    }
    Some(format!(
        "{} failed the preflight checks ({}); a renewal without them would take their HTTPS \
         away, so nothing was ordered and the current certificate stays. Fix them, or remove \
         them from the server block, and run again",
        lost.join(", "),
        site.left_out
            .iter()
            .filter(|l| lineage.names.contains(&l.name))
            .map(|l| l.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

/// Reads a site's live chain and key back as an [`Issued`] for a reinstall.
pub fn live_issued(config_dir: &Path, lineage: &Lineage) -> anyhow::Result<Issued> {
    let (cert, key) = install::live_paths(config_dir, &lineage.site);
    let fullchain_pem = std::fs::read_to_string(&cert)
        .with_context(|| format!("could not read {}", cert.display()))?;
    let key_pem = std::fs::read_to_string(&key)
        .with_context(|| format!("could not read {}", key.display()))?;
    Ok(Issued {
        site: lineage.site.clone(),
        names: lineage.names.clone(),
        fullchain_pem,
        key_pem,
    })
}

/// How one site fared in the last run that worked on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When (Unix seconds).
    pub at: i64,
    /// The command (`auto`, `renew`, `reissue`, …).
    pub command: String,
    /// `ok`, `failed` or `skipped`.
    pub result: String,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last-run file's path.
pub fn last_run_path(state_dir: &Path) -> PathBuf {
    crate::paths::last_run(state_dir)
}

/// The last run per site.
pub fn last_runs(state_dir: &Path) -> BTreeMap<String, LastRun> {
    std::fs::read(last_run_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Merges this run's per-site outcomes into the last-run file (sites not in `runs` keep theirs).
pub fn note_runs(state_dir: &Path, runs: BTreeMap<String, LastRun>) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let mut all = last_runs(state_dir);
    all.extend(runs);
    let bytes = serde_json::to_vec_pretty(&all).context("could not encode the last run")?;
    write_atomic(&last_run_path(state_dir), &bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::acme::RenewalWindow;

    #[test]
    fn lineage_sites_come_from_the_file_names_or_the_records_when_a_name_was_changed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Lineage::sites(dir.path()).unwrap().is_empty());
        for site in ["b.test", "*.a.test", "x_y.test"] {
            let lineage = Lineage {
                site: site.into(),
                names: vec![site.into()],
                wanted: vec![site.into()],
                provider: "encryption365".into(),
                order_id: None,
                not_after: 0,
                fingerprint: String::new(),
                installed_at: 0,
                previous: None,
                revoked_at: None,
            };
            lineage.save(dir.path()).unwrap();
        }
        let sites = Lineage::sites(dir.path()).unwrap();
        assert_eq!(sites, ["*.a.test", "b.test", "x_y.test"]);
        let all: Vec<String> = (Lineage::all(dir.path()).unwrap().into_iter())
            .map(|l| l.site)
            .collect();
        assert_eq!(sites, all);
    }

    #[test]
    fn the_cas_window_decides_renewal_at_the_chosen_point_and_at_once_once_past() {
        let window = RenewalWindow {
            start: 1_000,
            end: 2_000,
            renew_at: 1_400,
            explanation_url: None,
        };
        let fine = |now| matches!(ari_verdict(&window, now), Verdict::Fine(_));
        assert!(fine(0), "before the window");
        assert!(
            fine(1_200),
            "inside the window, before this certificate's point"
        );
        let Verdict::Due(why) = ari_verdict(&window, 1_400) else {
            panic!("due at the chosen point")
        };
        assert!(why.contains("inside the CA's renewal window (ARI"), "{why}");
        // A CA asking for early renewal (an incident) moves the window into the past.
        let early = RenewalWindow {
            explanation_url: Some("https://ca.test/incident".into()),
            ..window.clone()
        };
        let Verdict::Due(why) = ari_verdict(&early, 5_000) else {
            panic!("due at once")
        };
        assert!(why.contains("has passed: renew now"), "{why}");
        assert!(why.contains("https://ca.test/incident"), "{why}");
    }
}
