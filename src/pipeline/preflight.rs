//! Preflight: before anything is ordered, each name must resolve in DNS and a probe file,
//! published the way its validation file will be, must really be served by this nginx for that
//! Host. Names proven by DNS (wildcards, `[dns] validation = "dns"`, and — when `[dns]` is
//! configured — names whose HTTP probe fails) skip both checks. Names that fail are left out and reported (`--require-all` makes that fatal); a site
//! left with no name is skipped (or failed when asked for by name).
//!
//! Sites with a pending order skip the checks (their names were checked when they were ordered)
//! but get their validation routes like the rest — unless the CA already issued (or validated)
//! their order.
//!
//! Temporary validation locations cost a config edit and a reload (and another to take them
//! out), so they come last: names served from a webroot are probed through nginx as it is;
//! names that need a location are first checked for everything that needs none (DNS, nginx's
//! workers can read our directory, the site's other checks), and only the sites still in the
//! running get their locations (one reload for all) and then their probe. A run in which every
//! site is refused before that changes no configuration and reloads nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::probes::ProbeLeftovers;
use super::worker_access::{self, WorkerUser};
use super::{Run, routes};
use crate::ca::ValidationMethod;
use crate::dcv::{self, Publication};
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::lifecycle;
use crate::orders::OrderRecord;
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
    /// The probe files, removed (when dropped) once the run's validation files are.
    pub probes: ProbeLeftovers,
}

/// Which names a probe round checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Names whose files nginx serves as it is (webroots): probed now. Names that need a
    /// temporary location are only checked for what can be checked without it (nginx's workers
    /// can read our directory) and kept for the next round.
    AsConfigured,
    /// Names served through the temporary locations, now that they are in place.
    Temporary,
}

/// Checks every site's names; plans the validation routes and applies the temporary locations
/// only for the sites that need them and passed every other check. `settled`: sites whose
/// order the CA already issued (or validated), which need no route at all; `worker`: the user
/// nginx's workers run as ([`worker_access::worker_user`]). Reads only `found`'s servers and
/// its files' bytes (its directives may be released).
pub fn run(
    run: &mut Run,
    found: &Discovery,
    selected: Vec<Site>,
    (settled, worker): (&BTreeSet<String>, Option<&WorkerUser>),
) -> Result<Ready, Failure> {
    let mut kept: Vec<Site> = Vec::new();
    let mut to_probe: Vec<Site> = Vec::new();
    for mut site in selected {
        run.result(&site.name).names_left_out = site.left_out.clone();
        let record = OrderRecord::load(&run.state_dir, &site.name).map_err(Failure::failed)?;
        if let Some(record) = record.filter(|r| r.state.is_open()) {
            site.names = record.names.clone();
            site.dns_names = record.dns_names.clone();
            kept.push(site);
            continue;
        }
        for name in site.names.clone() {
            let (method, _) = publish::choose(&name, &site.name, run.config.dns.as_ref());
            if method == ValidationMethod::Dns {
                site.prove_by_dns(&name);
            }
        }
        to_probe.push(site);
    }
    resolve_names(run, &mut to_probe);
    let publications = routes::plan_routes(run, found, kept.iter().chain(&to_probe))?;
    for (site, publication) in &publications {
        for note in routes::note_fallbacks(run, site, publication) {
            run.say(format!("  {note}"));
        }
    }
    // Resumed orders the CA still has to validate need their routes.
    let mut need_location: Vec<(Site, bool)> = (kept.iter())
        .filter(|s| !settled.contains(&s.name))
        .map(|s| (s.clone(), false))
        .collect();
    let round = Round::AsConfigured;
    let mut probes = ProbeLeftovers::new(&run.state_dir);
    let probed = probe_round(run, (&publications, &mut probes), to_probe.iter(), round);
    for (mut site, probed) in to_probe.into_iter().zip(probed) {
        let Some(publication) = publications.get(&site.name) else {
            continue;
        };
        let unserved = probe_names(run, publication, &mut site, worker, (round, probed));
        if !passes(run, &site, unserved) {
            continue;
        }
        if served_through_location(run, publication, &site).is_empty() {
            kept.push(site);
        } else {
            need_location.push((site, unserved));
        }
    }
    let lists = (need_location, &mut kept);
    let planned = (&publications, &mut probes);
    let temporary = temporary_round(run, (found, worker), planned, lists)?;
    let mut publications = publications;
    for site in &mut kept {
        name_after_a_covered_name(run, &mut publications, site);
    }
    probes.settle();
    Ok(Ready {
        sites: kept,
        publications,
        temporary,
        probes,
    })
}

/// Whether the preflight may add temporary validation locations for `sites`: a guess made
/// before any check (some name would be served only through one), so the run can leave
/// checking the configuration to their own `nginx -t`. Never for a dry run, which adds none.
pub fn may_add_locations(run: &Run, found: &Discovery, sites: &[Site]) -> bool {
    if run.args.dry_run {
        return false;
    }
    let prefix = (run.env.paths.prefix.clone()).unwrap_or_else(|| "/".into());
    let at = (prefix.as_path(), run.dcv_dir.as_path(), run.args.http_port);
    sites.iter().any(|site| {
        let publication = dcv::plan_at(found, site, at, routes::validation_prefix(&run.config));
        !served_through_location(run, &publication, site).is_empty()
    })
}

/// The names of `site` served only through a temporary location.
fn served_through_location(run: &Run, publication: &Publication, site: &Site) -> Vec<String> {
    (publication.routes.iter())
        .filter(|r| site.names.contains(&r.name) && !site.dns_names.contains(&r.name))
        .filter(|r| routes::needs_location(run, r))
        .map(|r| r.name.clone())
        .collect()
}

/// Adds the temporary locations the sites in `need` need (one reload; none when there are no
/// such sites), then probes the names served through them; the new sites that pass join
/// `kept`. Resumed sites (already in `kept`) only get their routes.
fn temporary_round(
    run: &mut Run,
    (found, worker): (&Discovery, Option<&WorkerUser>),
    (publications, probes): (&BTreeMap<String, Publication>, &mut ProbeLeftovers),
    (need, kept): (Vec<(Site, bool)>, &mut Vec<Site>),
) -> Result<Option<Transaction>, Failure> {
    let narrowed: Vec<Site> = (need.iter())
        .filter_map(|(site, _)| {
            let publication = publications.get(&site.name)?;
            let names = served_through_location(run, publication, site);
            (!names.is_empty()).then(|| Site {
                names,
                ..site.clone()
            })
        })
        .collect();
    if run.args.dry_run {
        // A dry run edits no live configuration: those names are not exercised.
        leave_out_location_names(run, publications, need, kept);
        return Ok(None);
    }
    let temporary = routes::apply_temporary(run, found, narrowed.iter())?;
    let mut kept_names: BTreeSet<String> = kept.iter().map(|k| k.name.clone()).collect();
    let round = Round::Temporary;
    let to_probe = (need.iter()).filter(|(site, _)| !kept_names.contains(&site.name));
    let planned = (publications, probes);
    let mut probed = probe_round(run, planned, to_probe.map(|(site, _)| site), round);
    probed.reverse();
    for (mut site, unserved_before) in need {
        if kept_names.contains(&site.name) {
            continue;
        }
        let probed = probed.pop().unwrap_or_default();
        let Some(publication) = publications.get(&site.name) else {
            continue;
        };
        let unserved = probe_names(run, publication, &mut site, worker, (round, probed));
        if passes(run, &site, unserved || unserved_before) {
            kept_names.insert(site.name.clone());
            kept.push(site);
        }
    }
    Ok(temporary)
}

/// `--dry-run`: the names of `need` served only through a temporary location are left out (a
/// dry run adds none to the live configuration); sites with other names go on without them.
fn leave_out_location_names(
    run: &mut Run,
    publications: &BTreeMap<String, Publication>,
    need: Vec<(Site, bool)>,
    kept: &mut Vec<Site>,
) {
    let mut kept_names: BTreeSet<String> = kept.iter().map(|k| k.name.clone()).collect();
    for (mut site, unserved) in need {
        if kept_names.contains(&site.name) {
            continue;
        }
        let Some(publication) = publications.get(&site.name) else {
            continue;
        };
        let why = "served only through a temporary validation location, which a dry run \
                   does not add to the live configuration";
        for name in served_through_location(run, publication, &site) {
            site.names.retain(|n| *n != name);
            let reason = format!("{why} (not exercised)");
            site.left_out
                .push(LeftOut::new(LeftOutKind::NotServed, name, reason));
        }
        run.result(&site.name).names_left_out = site.left_out.clone();
        if site.names.is_empty() {
            run.result(&site.name).dry_run = Some(format!("not exercised: {why}"));
        } else if passes(run, &site, unserved) {
            kept_names.insert(site.name.clone());
            kept.push(site);
        }
    }
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

/// Leaves out the names that do not resolve (unless `--skip-dns-check`); the lookups of every
/// site run at once, bounded ([`http::PROBE_CONCURRENCY`]).
fn resolve_names(run: &Run, sites: &mut [Site]) {
    // A name proven by DNS needs no address (a wildcard has none).
    let lookups: BTreeSet<&String> = (sites.iter())
        .flat_map(|site| site.names.iter().filter(|n| !site.dns_names.contains(n)))
        .filter(|_| !run.args.skip_dns_check)
        .collect();
    let lookups: Vec<&String> = lookups.into_iter().collect();
    let resolved = crate::bounded::map(&lookups, http::PROBE_CONCURRENCY, |name| {
        !dcv::resolve(name).is_empty()
    });
    let resolves: BTreeMap<String, bool> = (lookups.into_iter().cloned()).zip(resolved).collect();
    for site in sites {
        let mut names = Vec::new();
        for name in std::mem::take(&mut site.names) {
            if resolves.get(&name).is_none_or(|ok| *ok) {
                names.push(name);
            } else {
                let why = "does not resolve in DNS";
                site.left_out
                    .push(LeftOut::new(LeftOutKind::Unresolved, name, why));
            }
        }
        site.names = names;
    }
}

/// The outcome of each name's HTTP probe, per site.
type Probed = BTreeMap<String, Result<(), String>>;

/// Probes, for every site at once (bounded, [`http::ProbePlan`]), the names this `round`
/// fetches over HTTP; per site in the order given, each probed name's outcome (none for a site
/// without routes). The probe files stay, journaled in `probes`, until the run ends.
fn probe_round<'s>(
    run: &Run,
    (publications, probes): (&BTreeMap<String, Publication>, &mut ProbeLeftovers),
    sites: impl Iterator<Item = &'s Site>,
    round: Round,
) -> Vec<Probed> {
    let mut jobs = Vec::new();
    let mut owner = Vec::new();
    let mut count = 0;
    for (i, site) in sites.enumerate() {
        count = i + 1;
        let Some(publication) = publications.get(&site.name) else {
            continue;
        };
        for name in site
            .names
            .iter()
            .filter(|n| probed_in(run, publication, site, n, round))
        {
            jobs.push(http::ProbeJob { publication, name });
            owner.push(i);
        }
    }
    let plan = http::ProbePlan::new(&jobs);
    let outcomes = match probes.journal(&plan.paths()) {
        Ok(()) => {
            let (outcomes, written) = plan.run(run.args.skip_dns_check, http::PROBE_CONCURRENCY);
            probes.made(written);
            outcomes
        }
        // Nothing is written that could not be journaled: every name of the round fails.
        Err(e) => {
            let why = format!("the probe files could not be journaled: {e:#}");
            vec![Err(why); jobs.len()]
        }
    };
    let mut out = vec![Probed::new(); count];
    for ((i, job), outcome) in owner.into_iter().zip(&jobs).zip(outcomes) {
        out[i].insert(job.name.to_string(), outcome);
    }
    out
}

/// Whether `name` of `site` is fetched over HTTP in `round`: not proven by DNS, and served as
/// configured (first round) or through a temporary location (second round).
fn probed_in(run: &Run, publication: &Publication, site: &Site, name: &str, round: Round) -> bool {
    if site.dns_names.iter().any(|n| n == name) {
        return false;
    }
    let route = (publication.routes.iter()).find(|r| r.name == name);
    let through_location = route.is_some_and(|r| routes::needs_location(run, r));
    match round {
        Round::AsConfigured => !through_location,
        Round::Temporary => through_location,
    }
}

/// Leaves out the names whose probe file was not served back (`probed`: the outcomes of this
/// round's probes, [`probe_round`]); when nginx's workers (running as `worker`) cannot enter
/// the directory, the reason says so with the fix. Returns whether a probe really failed (a
/// name whose path the configuration claims is not probed).
fn probe_names(
    run: &mut Run,
    publication: &Publication,
    site: &mut Site,
    worker: Option<&WorkerUser>,
    (round, probed): (Round, Probed),
) -> bool {
    let mut unserved = false;
    let dns = run.config.dns.as_ref().is_some_and(|d| d.configured());
    let mut names = Vec::new();
    for name in std::mem::take(&mut site.names) {
        if site.dns_names.contains(&name) {
            names.push(name);
            continue;
        }
        let route = (publication.routes.iter()).find(|r| r.name == name);
        let through_location = route.is_some_and(|r| routes::needs_location(run, r));
        let outcome = match (round, through_location) {
            (Round::AsConfigured, true) => {
                // Probed once the location is in place; only what needs none is checked now
                // (a dry run adds no location: its directory is a scratch one).
                let worker = worker.filter(|_| !run.args.dry_run);
                match route
                    .zip(worker)
                    .and_then(|(r, w)| worker_access::explain(&r.dir, w))
                {
                    None => {
                        names.push(name);
                        continue;
                    }
                    Some(why) => Err(why),
                }
            }
            (Round::Temporary, false) => {
                names.push(name);
                continue;
            }
            _ => (probed.get(&name).cloned())
                .unwrap_or_else(|| Err("validation probe failed: it was not probed".into())),
        };
        match outcome {
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
        // Asked for by name (`--site`, or `-d` naming its names) or renewed: a failure.
        let asked = !run.args.sites.is_empty() || !run.args.domains.is_empty();
        if !asked && !run.renews.contains_key(&site.name) {
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
