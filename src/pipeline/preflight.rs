//! Preflight: before anything is ordered, each name must resolve in DNS and a probe file,
//! published the way its validation file will be, must really be served by this nginx for that
//! Host. Names proven by DNS (wildcards, `[dns] validation = "dns"`, and — when `[dns]` is
//! configured — names whose HTTP probe fails) skip both checks. Names that fail are left out and reported (`--require-all` makes that fatal); a site
//! left with no name is skipped (or failed when asked for by name).
//!
//! Sites with a pending order skip the checks (their names were checked when they were ordered)
//! but get their validation routes like the rest.

use std::collections::BTreeMap;

use super::worker_access::{self, WorkerUser};
use super::{Run, routes};
use crate::ca::ValidationMethod;
use crate::dcv::{self, Publication};
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::lifecycle;
use crate::orders::{OrderRecord, RecordState};
use crate::publish::{self, http};
use crate::site::{LeftOut, LeftOutKind, Site};
use crate::store::Transaction;

/// The sites that passed, and where their validation files go.
pub struct Ready {
    /// Sites to order for (or resume), with the names that passed.
    pub sites: Vec<Site>,
    /// Per site, its validation routes.
    pub publications: BTreeMap<String, Publication>,
    /// The temporary validation locations, restored once validation is over.
    pub temporary: Option<Transaction>,
}

/// Checks every site's names; plans (and applies, when needed) the validation routes.
pub fn run(run: &mut Run, found: &Discovery, selected: Vec<Site>) -> Result<Ready, Failure> {
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
        for name in site.names.clone() {
            let (method, _) = publish::choose(&name, &site.name, run.config.dns.as_ref());
            if method == ValidationMethod::Dns {
                site.prove_by_dns(&name);
            }
        }
        resolve_names(run, &mut site);
        to_probe.push(site);
    }
    let (publications, temporary) =
        routes::publish_routes(run, found, kept.iter().chain(&to_probe))?;
    let worker = worker_access::worker_user(&found.config);
    for mut site in to_probe {
        let Some(publication) = publications.get(&site.name) else {
            continue;
        };
        let unserved = probe_names(run, publication, &mut site, worker.as_ref());
        if passes(run, &site, unserved) {
            kept.push(site);
        }
    }
    let mut publications = publications;
    for site in &mut kept {
        name_after_a_covered_name(run, &mut publications, site);
    }
    Ok(Ready {
        sites: kept,
        publications,
        temporary,
    })
}

/// A new site whose name was left out is named after the first name its certificate will cover
/// (its `live/` directory with it); a site with a lineage or an order keeps its name.
fn name_after_a_covered_name(
    run: &mut Run,
    publications: &mut BTreeMap<String, Publication>,
    site: &mut Site,
) {
    let Some(first) = site.names.first().cloned() else {
        return;
    };
    if site.names.contains(&site.name) || super::select::known(run, &site.name) {
        return;
    }
    let old = std::mem::replace(&mut site.name, first.clone());
    if let Some(publication) = publications.remove(&old) {
        publications.insert(first.clone(), publication);
    }
    if let Some(mut result) = run.report.results.remove(&old) {
        result.site = first.clone();
        run.report.results.insert(first.clone(), result);
    }
    if let Some(renews) = run.renews.remove(&old) {
        run.renews.insert(first, renews);
    }
}

/// Leaves out the names that do not resolve (unless `--skip-dns-check`).
fn resolve_names(run: &Run, site: &mut Site) {
    let mut names = Vec::new();
    for name in std::mem::take(&mut site.names) {
        // A name proven by DNS needs no address (a wildcard has none).
        if run.args.skip_dns_check
            || site.dns_names.contains(&name)
            || !dcv::resolve(&name).is_empty()
        {
            names.push(name);
        } else {
            let why = "does not resolve in DNS";
            site.left_out
                .push(LeftOut::new(LeftOutKind::Unresolved, name, why));
        }
    }
    site.names = names;
}

/// Leaves out the names whose probe file is not served back; when nginx's workers (running as
/// `worker`) cannot enter the directory, the reason says so with the fix. Returns whether a
/// probe really failed (a name whose path the configuration claims is not probed).
fn probe_names(
    run: &mut Run,
    publication: &Publication,
    site: &mut Site,
    worker: Option<&WorkerUser>,
) -> bool {
    let mut unserved = false;
    // Unpredictable, so no one who can write into a webroot can plant a file (or a link)
    // under the name before we write it.
    let token = format!("enc365-probe-{:032x}", rand::random::<u128>());
    let dns = run.config.dns.as_ref().is_some_and(|d| d.configured());
    let mut names = Vec::new();
    for name in std::mem::take(&mut site.names) {
        if site.dns_names.contains(&name) {
            names.push(name);
            continue;
        }
        match http::probe(publication, &name, &token, run.args.skip_dns_check) {
            Ok(()) => names.push(name),
            Err(reason) if dns => {
                run.say(format!(
                    "  {name}: the HTTP preflight failed ({reason}); it will be proven by DNS"
                ));
                site.prove_by_dns(&name);
                names.push(name);
            }
            Err(reason) => {
                unserved |= !publication.blocked.iter().any(|(n, _)| *n == name);
                let dir = (publication.routes.iter()).find(|r| r.name == name);
                let unreadable = dir
                    .zip(worker)
                    .and_then(|(r, w)| worker_access::explain(&r.dir, w));
                let reason = unreadable.unwrap_or(reason);
                (site.left_out).push(LeftOut::new(LeftOutKind::NotServed, name, reason))
            }
        }
    }
    site.names = names;
    run.result(&site.name).names_left_out = site.left_out.clone();
    unserved
}

/// Whether a probed site goes on to be ordered; reports why not. `unserved`: a name's probe
/// file was not served back.
fn passes(run: &mut Run, site: &Site, unserved: bool) -> bool {
    if site.names.is_empty() {
        let why = "no name passed the preflight checks; nothing was ordered";
        let not_served = (site.left_out.iter()).find(|l| l.kind == LeftOutKind::NotServed);
        if let Some(l) = not_served.filter(|_| unserved) {
            // Its names point here but this nginx does not serve them: a failure to fix here,
            // not a site that is someone else's business.
            run.fail(&site.name, format!("{why}: {}: {}", l.name, l.reason));
            return false;
        }
        if run.args.sites.is_empty() && !run.renews.contains_key(&site.name) {
            run.say(format!("  {}: skipped: {why}", site.name));
            run.result(&site.name).skipped = Some(why.to_string());
        } else {
            run.fail(&site.name, why);
        }
        return false;
    }
    let dropped = site.left_out.iter().any(LeftOut::failed_a_check);
    if run.args.require_all && dropped {
        run.fail(
            &site.name,
            "--require-all: some names failed the preflight checks; nothing was ordered",
        );
        return false;
    }
    if let Some(why) = lifecycle::renewal_loses_names(&run.state_dir, site) {
        run.fail(&site.name, why);
        return false;
    }
    true
}
