//! Which sites a run works on, and what to do with each: one [`Planned`] per site, whichever
//! command chose them — `auto` (sites that need a certificate, `--site`, managed sites whose
//! configuration was regenerated), `renew` (managed certificates that are due) and `reissue`
//! (one managed certificate). Orders an earlier run left pending are always resumed.
//!
//! Not here: checking names (that is [`super::preflight`]) or ordering.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde::Serialize;

use super::Run;
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::lifecycle::{self, Action, Lineage, Planned, Verdict};
use crate::orders::OrderRecord;
use crate::site::{self, Site};

/// The sites `auto` works on: `--site` or every site needing a certificate, plus managed sites
/// whose configuration no longer serves our certificate and sites with a pending order. Sites
/// none of whose names can be ordered are reported and left out.
pub fn for_auto(run: &mut Run, found: &Discovery) -> Result<Vec<Site>, Failure> {
    let args = run.args;
    let mut all_sites = site::group(found);
    let records = known_records(&run.state_dir).map_err(Failure::failed)?;
    site::keep_known_names(&mut all_sites, |name| {
        records.contains(std::ffi::OsStr::new(&format!(
            "{}.json",
            crate::paths::stem(name)
        )))
    });
    let mut selected = site::select(found, all_sites.clone(), &args.sites).map_err(|unmatched| {
        Failure::usage(anyhow!(
            "--site {} matches no server block; `enc365-nginx discover` lists the names and files",
            unmatched.join(", --site ")
        ))
    })?;
    // -d NAME: just those names, of the sites carrying them.
    let explicit = !args.sites.is_empty() || !args.domains.is_empty();
    if !args.domains.is_empty() {
        selected =
            super::domains::narrow(&all_sites, selected, !args.sites.is_empty(), &args.domains)?;
    }
    // Managed sites whose configuration was regenerated get our certificate back.
    if !args.dry_run {
        lifecycle::adopt_installed(&run.state_dir, &run.env.config_dir, run.ctx.now())
            .map_err(Failure::failed)?;
    }
    if !explicit {
        let index = lifecycle::SiteIndex::new(&all_sites, found);
        for managed in Lineage::sites(&run.state_dir).map_err(Failure::failed)? {
            if let Some(site) = index.site_of(&managed, &run.env.config_dir)
                && !selected.iter().any(|s| s.servers == site.servers)
                && lifecycle::config_points_at_live(found, &site, &run.env.config_dir).is_some()
            {
                selected.push(site);
            }
        }
    }
    // Orders left pending by an earlier run are resumed whether or not they are selected now.
    let records = OrderRecord::open(&run.state_dir).map_err(Failure::failed)?;
    for record in &records {
        if !selected.iter().any(|s| s.name == record.site)
            && let Some(site) = all_sites.iter().find(|s| s.name == record.site)
        {
            selected.push(site.clone());
        }
    }
    // With DNS validation configured, wildcards are ordered too (proven by DNS).
    if run.config.dns.as_ref().is_some_and(|d| d.configured()) {
        for site in &mut selected {
            site.admit_wildcards();
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
        let why = "none of its names can be ordered with HTTP validation (wildcards need DNS \
                   validation: see [dns] in the README); nothing was ordered";
        run.result(&site.name).names_left_out = site.left_out.clone();
        if !explicit {
            run.result(&site.name).skipped = Some(why.to_string());
        } else {
            run.fail(&site.name, why);
        }
        false
    });
    Ok(selected)
}

/// What to do with each site `auto` selected (see [`lifecycle::plan`]).
pub fn plan_auto(run: &Run, found: &Discovery, sites: Vec<Site>) -> Result<Vec<Planned>, Failure> {
    lifecycle::plan(
        found,
        &run.state_dir,
        &run.env.config_dir,
        sites,
        run.ctx.now(),
        30,
    )
    .map_err(Failure::failed)
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
        merged.dns_names.extend(s.dns_names.iter().cloned());
        merged.left_out.extend(s.left_out.iter().cloned());
    }
    merged
}

/// A managed certificate that is not due, as `renew --json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NotDue {
    /// The site.
    pub site: String,
    /// Days of validity left.
    pub days_left: i64,
    /// Why it is not due (or why it was skipped).
    pub reason: String,
    /// The rule that decided: `ari` (the CA's renewal window) or `days` (`--days`); empty when
    /// it was skipped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// No server block carries the site any more.
    #[serde(skip)]
    pub orphaned: bool,
}

/// One site that is due.
#[derive(Debug, Clone, Serialize)]
pub struct DueSite {
    /// The site.
    pub site: String,
    /// `renew`, `resume` or `reinstall`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// The rule that decided a renewal: `force`, `revoked`, `missing`, `expired`, `ari` (the
    /// CA's renewal window), `days` (`--days`) or `names`; empty for a resume or reinstall.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule: String,
}

/// What `renew` selected.
#[derive(Debug, Clone, Default)]
pub struct Renewals {
    /// The sites to work on.
    pub selection: Vec<Planned>,
    /// The same, with why, for the report.
    pub due: Vec<DueSite>,
    /// Managed certificates left alone.
    pub not_due: Vec<NotDue>,
}

impl Renewals {
    fn add(&mut self, site: Site, action: Action, verb: &str, reason: String) {
        self.due.push(DueSite {
            site: site.name.clone(),
            action: verb.into(),
            reason,
            rule: String::new(),
        });
        self.selection.push(Planned { site, action });
    }
}

/// The sites `renew` works on: pending orders (resumed), managed certificates that are due
/// (expiring within `days`, or `force`), and managed sites whose configuration no longer serves
/// our certificate (reinstalled). `selectors` narrows it (`--site`). `ari` holds the renewal
/// windows the CA suggests, by site; they decide instead of `days` where present.
pub fn renewals(
    run: &Run,
    found: &Discovery,
    selectors: &[String],
    (days, force): (i64, bool),
    ari: &BTreeMap<String, crate::ca::acme::RenewalWindow>,
) -> Result<Renewals, Failure> {
    let all_sites = site::group(found);
    let only: Option<Vec<Site>> = if selectors.is_empty() {
        None
    } else {
        Some(
            site::select(found, all_sites.clone(), selectors).map_err(|unmatched| {
                Failure::usage(anyhow!(
                    "--site {} matches no server block; `enc365-nginx status` lists the \
                         managed sites",
                    unmatched.join(", --site ")
                ))
            })?,
        )
    };
    let chosen = |site: &Site| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|s| s.servers == site.servers))
    };
    let config_dir = &run.env.config_dir;
    let index = lifecycle::SiteIndex::new(&all_sites, found);
    let mut out = Renewals::default();
    // Pending orders first: they are resumed, never placed again.
    let records = OrderRecord::open(&run.state_dir).map_err(Failure::failed)?;
    for record in &records {
        match index.site_of(&record.site, config_dir) {
            Some(site) if chosen(&site) => {
                let why = format!(
                    "order {} left pending by an earlier run",
                    record.order_id.as_deref().unwrap_or("(not yet answered)")
                );
                let renews = record.renews.clone();
                out.add(site, Action::Order { renews }, "resume", why);
            }
            Some(_) => {}
            None => run.say(format!(
                "  {}: an order is pending for a site no longer in the nginx configuration; \
                 put the site back, or remove {}",
                record.site,
                OrderRecord::path(&run.state_dir, &record.site).display()
            )),
        }
    }
    let now = run.ctx.now();
    for lineage in Lineage::all(&run.state_dir).map_err(Failure::failed)? {
        if out.selection.iter().any(|p| p.site.name == lineage.site) {
            continue;
        }
        let Some(site) = index.site_of(&lineage.site, config_dir) else {
            out.not_due.push(NotDue {
                site: lineage.site.clone(),
                days_left: lineage.days_left(now),
                reason: "no server block carries this site any more; not renewed".into(),
                rule: String::new(),
                orphaned: true,
            });
            continue;
        };
        if chosen(&site) {
            let window = ari.get(&lineage.site);
            renewal_of(
                &mut out,
                found,
                config_dir,
                &lineage,
                site,
                (now, days, force),
                window,
            );
        }
    }
    Ok(out)
}

/// Decides one managed certificate for `renew` (by the CA's renewal window when given).
fn renewal_of(
    out: &mut Renewals,
    found: &Discovery,
    config_dir: &std::path::Path,
    lineage: &Lineage,
    site: Site,
    (now, days, force): (i64, i64, bool),
    window: Option<&crate::ca::acme::RenewalWindow>,
) {
    let live = lifecycle::live_summary_in(found, config_dir, &lineage.site);
    let timing = (now, days, force);
    let (verdict, rule) = lifecycle::renewal_verdict(lineage, &site, live.as_ref(), timing, window);
    match verdict {
        Verdict::Due(reason) => {
            let renews = lineage.renewable_order();
            out.add(site, Action::Order { renews }, "renew", reason);
            if let Some(due) = out.due.last_mut() {
                due.rule = rule.to_string();
            }
        }
        Verdict::Fine(reason) => match lifecycle::config_points_at_live(found, &site, config_dir) {
            Some(drift) => out.add(site, Action::Reinstall, "reinstall", drift),
            None => out.not_due.push(NotDue {
                site: lineage.site.clone(),
                days_left: live.map_or(0, |l| l.days_left(now)),
                reason,
                rule: rule.to_string(),
                orphaned: false,
            }),
        },
    }
}

/// Whether `name` has a lineage or an order record here (a site's `live/` name).
pub fn known(run: &Run, name: &str) -> bool {
    crate::paths::lineage(&run.state_dir, name).exists()
        || crate::paths::order_record(&run.state_dir, name).exists()
}

/// The file names of every lineage and order record (`<stem>.json`): [`known`] for many names
/// at the cost of two directory listings.
fn known_records(
    state_dir: &std::path::Path,
) -> anyhow::Result<std::collections::HashSet<std::ffi::OsString>> {
    let mut names = crate::store::record_names(&crate::paths::certs_dir(state_dir))?;
    names.extend(crate::store::record_names(&crate::paths::orders_dir(
        state_dir,
    ))?);
    Ok(names.into_iter().collect())
}

/// The managed certificate `reissue --site` names, and the site that serves it. Refused when an
/// order for it is still in flight.
pub fn for_reissue(
    run: &Run,
    found: &Discovery,
    selector: &str,
) -> Result<(Lineage, Site), Failure> {
    let lineage = Lineage::all(&run.state_dir)
        .map_err(Failure::failed)?
        .into_iter()
        .find(|l| l.site == selector || l.names.iter().any(|n| n == selector))
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "{selector} has no certificate managed here; `enc365-nginx auto --site \
                 {selector}` gives it one"
            ))
        })?;
    let sites = site::group(found);
    let site =
        lifecycle::site_of(&lineage.site, &sites, found, &run.env.config_dir).ok_or_else(|| {
            Failure::usage(anyhow!(
                "no server block carries {} any more; a reissued certificate could not be \
                 installed",
                lineage.site
            ))
        })?;
    // An interrupted reissue (of this certificate's order, before or after the CA took it) is
    // `reissue`'s to finish; any other order in flight is not.
    if let Some(record) = OrderRecord::load(&run.state_dir, &lineage.site)
        .map_err(Failure::failed)?
        .filter(|r| {
            r.state.is_open()
                && r.state != crate::orders::RecordState::Reissuing
                && r.order_id != lineage.renewable_order()
        })
    {
        return Err(Failure::usage(anyhow!(
            "order {} for {} is still in flight; finish it with `enc365-nginx renew` first",
            record.order_id.as_deref().unwrap_or("(not answered yet)"),
            lineage.site
        )));
    }
    Ok((lineage, site))
}

/// A selection sorted by what the pipeline does with it.
#[derive(Debug, Clone, Default)]
pub struct Work {
    /// Sites to order for (or whose pending order to resume).
    pub order: Vec<Site>,
    /// Sites that get our existing certificate back.
    pub reinstall: Vec<Site>,
    /// Per site, the names the site wants (what a lineage records as wanted).
    pub wanted: BTreeMap<String, Vec<String>>,
}

/// Sorts a selection: sites to keep are reported as skipped; renewals are noted.
pub fn split(run: &mut Run, selection: Vec<Planned>) -> Work {
    let mut work = Work::default();
    let dns = run.config.dns.as_ref().is_some_and(|d| d.configured());
    for mut planned in selection {
        // With DNS validation, a renewal or reissue keeps the site's wildcards too.
        if dns {
            planned.site.admit_wildcards();
        }
        let name = planned.site.name.clone();
        work.wanted.insert(name.clone(), planned.site.names.clone());
        match planned.action {
            Action::Reinstall => work.reinstall.push(planned.site),
            Action::Keep(why) => {
                run.say(format!("  {name}: {why}"));
                run.result(&name).skipped = Some(why);
            }
            Action::Order { renews } => {
                if let Some(old) = renews {
                    run.result(&name).renews = Some(old.clone());
                    run.renews.insert(name, old);
                }
                work.order.push(planned.site);
            }
        }
    }
    work
}
