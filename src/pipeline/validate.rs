//! Validation: publish what the CA asks for each name, check it is served the way the CA will
//! fetch it, ask the CA to check, then poll every waiting order until issued, failed for good,
//! or `--timeout`. Issued orders are saved with their chain.
//!
//! Every file written is journaled in the order record before the self-check and before the CA
//! is asked to look, and DNS records before they are created ([`dns_records`]), so a run killed
//! at any point leaves nothing that a later run does not know of. The CA may check again minutes
//! after the run ends (`--no-wait`, `--timeout`): webroot files of orders still pending stay
//! published, and go when the order is issued or fails ([`super::leftovers`]); files served by
//! a temporary location go with the location.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::Run;
use crate::ca::ValidationMethod;
use crate::ca::{CertificateAuthority, OrderId, OrderState, PollPolicy};
use crate::dcv::{self, Publication};
use crate::orders::{OrderRecord, RecordState};
use crate::publish::dns::DnsPublisher;
use crate::publish::http::{HttpPublisher, Written};
use crate::publish::{self, Published};

mod dns_records;
use super::leftovers;
use crate::site::Site;

/// Per site: what this run published for it.
type PublishedBySite = BTreeMap<String, Published>;

/// The run's DNS publisher, made once per run (a run that validates in batches shares it): a
/// `[dns]` table it cannot use is said once, and DNS validation is off for the run.
pub fn dns_publisher(run: &Run<'_>) -> DnsPublisher {
    DnsPublisher::new(run.config.dns.clone(), &run.args.dns_server).unwrap_or_else(|e| {
        run.say(format!("  {e:#}; DNS validation is off for this run"));
        DnsPublisher::default()
    })
}

/// Every directory a run made for its validation files (and its preflight's probe files, which
/// stay until the run ends): a site whose files go under one journals it in its order record,
/// so the last order to use it removes it, and a killed run leaves nothing a later run does not
/// remove. A run validating in batches passes one from batch to batch.
#[derive(Debug, Default)]
pub struct DirsMade(std::collections::HashSet<PathBuf>);

impl DirsMade {
    /// The directories the preflight's probes made.
    pub fn after_probes(probe_dirs: Vec<PathBuf>) -> DirsMade {
        DirsMade(probe_dirs.into_iter().collect())
    }
}

/// Publishes (DNS records through `dns`, from [`dns_publisher`]), asks the CA to check, polls,
/// and cleans up; returns the issued orders. `dirs` holds the directories the run made before
/// (its probes, its earlier batches) and gets those made here.
pub async fn run(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    ordered: Vec<(Site, OrderRecord)>,
    publications: &BTreeMap<String, Publication>,
    dns: &DnsPublisher,
    dirs: &mut DirsMade,
) -> Vec<(Site, OrderRecord)> {
    let mut published = PublishedBySite::new();
    let mut waiting = Vec::new();
    let validation = crate::timings::Phase::start("validation");
    let limit = super::order::ca_concurrency(ca);
    let groups = webroot_groups(&ordered, publications, limit);
    let (sites, records) = takeable(ordered);
    // With local state there is no cluster to wait for: each site's CA check is asked for as
    // soon as its files are checked, so the files written are never held for every site at
    // once (at 10,000 sites, megabytes at the run's peak).
    let ask_at_once = matches!(
        crate::cluster::current(),
        crate::cluster::StateBackend::Local
    );
    let done = {
        let (run, sites, records): (&Run, _, _) = (run, &sites, &records);
        let groups = &groups;
        let earlier = &dirs.0;
        crate::bounded::each(groups.len(), limit, |g| async move {
            let mut created_dirs: Vec<PathBuf> = Vec::new();
            let mut out = Vec::new();
            for &i in &groups[g] {
                let site = &sites[i];
                let mut record = take(&records[i]);
                if record.state != RecordState::Pending {
                    out.push((i, record, None, Ok(Checked::NotPending)));
                    continue;
                }
                let publication = publications.get(&site.name).cloned().unwrap_or_default();
                let mut files = Published::default();
                let outcome = publish_and_check(
                    run,
                    ca,
                    &mut record,
                    &publication,
                    &mut files,
                    (&created_dirs, earlier),
                    dns,
                )
                .await;
                let outcome = match outcome {
                    Ok(None) => Ok(Checked::NotPending),
                    Ok(Some(_)) if ask_at_once => {
                        ask_ca(ca, &record).await.map(|()| Checked::Asked)
                    }
                    Ok(Some(written)) => Ok(Checked::Published(written)),
                    Err(e) => Err(e),
                };
                created_dirs.extend(files.dirs.iter().cloned());
                if outcome.is_err() {
                    dns_records::remove_all(run, dns, &mut record);
                }
                out.push((i, record, Some(files), outcome));
            }
            out
        })
        .await
    };
    let mut done: Vec<_> = done.into_iter().flatten().collect();
    done.sort_unstable_by_key(|(i, ..)| *i);
    // Each record goes on as it is in `done`.
    drop(records);
    let asked = share_and_ask(ca, &done, limit).await;
    for ((site, (_, mut record, files, outcome)), asked) in sites.into_iter().zip(done).zip(asked) {
        if let Some(files) = files {
            dirs.0.extend(files.dirs.iter().cloned());
            published.insert(site.name.clone(), files);
        }
        match outcome.and(asked) {
            Ok(_) => waiting.push((site, record)),
            Err(e) => {
                dns_records::remove_all(run, dns, &mut record);
                run.fail(
                    &site.name,
                    format!("{e:#}; the order is kept and the next run resumes it"),
                )
            }
        }
    }
    drop(validation);
    let polling = crate::timings::Phase::start("polling");
    let issued = wait_for_issuance(run, ca, waiting, dns).await;
    drop(polling);
    clean_up(run, &published);
    issued
}

/// The sites of `ordered` (by index) in groups validated one after the other, the groups at
/// once: sites whose validation files would make the same directory (it does not exist yet)
/// share a group, so each knows the directories the others made for it (see
/// [`journal_files`]). One group of every site, in order, when `limit` is one.
fn webroot_groups(
    ordered: &[(Site, OrderRecord)],
    publications: &BTreeMap<String, Publication>,
    limit: usize,
) -> Vec<Vec<usize>> {
    if limit < 2 {
        return vec![(0..ordered.len()).collect()];
    }
    let mut group_of: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, (site, _)) in ordered.iter().enumerate() {
        let routes = publications.get(&site.name).map(|p| &p.routes[..]);
        let tops: Vec<PathBuf> = (routes.unwrap_or_default().iter())
            .filter_map(|r| crate::publish::http::outermost_missing(&r.dir))
            .collect();
        let mut mine: Vec<usize> = tops
            .iter()
            .filter_map(|t| group_of.get(t))
            .copied()
            .collect();
        mine.sort_unstable();
        mine.dedup();
        let g = match mine.split_first() {
            None => {
                groups.push(Vec::new());
                groups.len() - 1
            }
            Some((&first, others)) => {
                // A site whose directories join groups: they become one (in site order).
                for &other in others {
                    let moved = std::mem::take(&mut groups[other]);
                    groups[first].extend(moved);
                    group_of
                        .values_mut()
                        .filter(|v| **v == other)
                        .for_each(|v| *v = first);
                }
                groups[first].sort_unstable();
                first
            }
        };
        groups[g].push(i);
        for top in tops {
            group_of.insert(top, g);
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// Publishes what the CA asks for each name not yet validated, by the method chosen for it
/// (switching the method at the CA first where it differs), journals every file written and
/// checks it is served. Returns the files written (the CA is to be asked to look at them, by
/// [`ask_ca`]), or `None` when the order is no longer pending.
async fn publish_and_check(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    record: &mut OrderRecord,
    publication: &Publication,
    out: &mut Published,
    created_dirs: (&[PathBuf], &std::collections::HashSet<PathBuf>),
    dns: &DnsPublisher,
) -> anyhow::Result<Option<Vec<Written>>> {
    let id = OrderId(
        record
            .order_id
            .clone()
            .ok_or_else(|| anyhow!("the record has no order id"))?,
    );
    ca.attach_csr(&id, &record.csr_pem);
    ca.attach_dns_names(&id, &record.dns_names);
    let order = ca.order_status(&id, &record.names).await?;
    if !matches!(order.state, OrderState::Pending { .. }) {
        return Ok(None);
    }
    let request = super::order::request_for(run, record);
    ca.use_methods(&id, &request).await?;
    // The CA writes the DNS records itself (Huawei SCM's auto_dns_auth): none of ours.
    let ca_publishes_dns = ca.publishes_dns_records(&request);
    let mut pushed = false;
    let http = HttpPublisher {
        publication,
        skip_dns_check: run.args.skip_dns_check,
    };
    let mut by_dns = Vec::new();
    let mut written = Vec::new();
    let mut failed = None;
    for validation in order.validations.iter().filter(|v| !v.validated) {
        let method = publish::method_in(&validation.name, &record.dns_names);
        if method == ValidationMethod::Dns && ca_publishes_dns {
            pushed = true;
            continue;
        }
        let Some(challenge) = publish::challenge_for(validation, method) else {
            failed = Some(anyhow!(
                "the CA offers no {method} validation for {}",
                validation.name
            ));
            break;
        };
        if method == ValidationMethod::Dns {
            by_dns.push((validation.name.clone(), challenge.clone()));
            continue;
        }
        match http.write(&validation.name, challenge, out) {
            Ok(w) => written.push(w),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    journal_files(run, record, out, created_dirs)?;
    if let Some(e) = failed {
        return Err(e);
    }
    for w in &written {
        http.check(w)?;
    }
    if pushed {
        run.say(format!(
            "  {}: {} publishes the DNS validation records itself (auto_dns_auth); none are \
             published, removed or checked for propagation here",
            record.site,
            ca.name()
        ));
    }
    if !by_dns.is_empty() {
        dns_records::publish(run, dns, record, &by_dns)?;
    }
    Ok(Some(written))
}

/// One site's outcome of [`publish_and_check`]: its index, record, files and result.
type Outcome = (
    usize,
    OrderRecord,
    Option<Published>,
    anyhow::Result<Checked>,
);

/// Where a site's validation stands once [`publish_and_check`] is done with it.
enum Checked {
    /// The order is no longer pending: nothing to ask.
    NotPending,
    /// Its files are published and checked: the cluster serves them, then the CA is asked
    /// ([`share_and_ask`]).
    Published(Vec<Written>),
    /// Published, checked and the CA already asked (local state: no cluster to wait for).
    Asked,
}

/// For the published sites of `done` not asked yet: in cluster mode every other node serves
/// their files first (all sites' files published, then one wait); then the CA is asked to look,
/// `limit` sites at once. Returns, in `done`'s order, what asking gave (`Ok` where nothing was
/// to be asked).
async fn share_and_ask(
    ca: &dyn CertificateAuthority,
    done: &[Outcome],
    limit: usize,
) -> Vec<anyhow::Result<()>> {
    // Borrowed, not copied: at 10,000 sites the files written are megabytes.
    let batch: Vec<(&str, &[Written])> = (done.iter())
        .filter_map(|(_, record, _, outcome)| match outcome {
            Ok(Checked::Published(written)) => Some((record.site.as_str(), &written[..])),
            _ => None,
        })
        .collect();
    let mut refused = crate::cluster::current().dcv_published(&batch);
    let refusals: Vec<std::sync::Mutex<Option<anyhow::Error>>> = (done.iter())
        .map(|(_, record, ..)| std::sync::Mutex::new(refused.remove(&record.site)))
        .collect();
    crate::bounded::each(done.len(), limit, |k| {
        let refusal = refusals[k].lock().ok().and_then(|mut r| r.take());
        async move {
            match (&done[k].3, refusal) {
                (_, Some(e)) => Err(e),
                (Ok(Checked::Published(_)), None) => ask_ca(ca, &done[k].1).await,
                _ => Ok(()),
            }
        }
    })
    .await
}

/// Asks the CA to look at what was published for `record` (when the provider's policy
/// re-checks).
async fn ask_ca(ca: &dyn CertificateAuthority, record: &OrderRecord) -> anyhow::Result<()> {
    if ca.poll_policy().rechecks_per_run > 0
        && let Some(id) = &record.order_id
    {
        ca.request_validation(&OrderId(id.clone())).await?;
    }
    Ok(())
}

/// Journals in the order record the files written for it and the directories made for them —
/// by this site, or by another site of this run sharing the webroot: `created_dirs` holds those
/// of the site's group in this batch and those of the run's earlier batches — and saves it.
fn journal_files(
    run: &Run,
    record: &mut OrderRecord,
    out: &Published,
    created_dirs: (&[PathBuf], &std::collections::HashSet<PathBuf>),
) -> anyhow::Result<()> {
    let (group, earlier) = created_dirs;
    let from_earlier = (out.files.iter())
        .flat_map(|f| f.ancestors().skip(1))
        .filter(|d| earlier.contains(*d))
        .map(|d| d.to_path_buf());
    let above = (group.iter().chain(&out.dirs))
        .filter(|d| out.files.iter().any(|f| f.starts_with(d)))
        .cloned()
        .chain(from_earlier);
    let before = (record.published_files.len(), record.published_dirs.len());
    add_new(&mut record.published_files, out.files.iter().cloned());
    add_new(&mut record.published_dirs, above);
    if before != (record.published_files.len(), record.published_dirs.len()) {
        record.save(&run.state_dir)?;
    }
    Ok(())
}

/// How one status poll went for a waiting order.
enum Polled {
    /// Issued and saved.
    Issued,
    /// Still waiting (or the call failed, with its error: asked again next time).
    Waiting(Option<String>),
    /// Failed for good, with why.
    Gone(String),
}

/// Polls every waiting order until issued, failed for good, or `--timeout`. Issued ones are
/// recorded (with their chain) and returned.
async fn wait_for_issuance(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    mut waiting: Vec<(Site, OrderRecord)>,
    dns: &DnsPublisher,
) -> Vec<(Site, OrderRecord)> {
    let (mut issued, rest): (Vec<_>, Vec<_>) = waiting
        .drain(..)
        .partition(|(_, record)| record.state == RecordState::Issued);
    waiting = rest;
    // What a crashed run left published for an order issued since.
    for (_, record) in &mut issued {
        leftovers::remove_all(&run.state_dir, dns, record, &|m| run.say(m));
    }
    if run.args.no_wait {
        for (site, _) in &waiting {
            run.say(format!(
                "  {}: ordered; run again to install once the CA has issued it",
                site.name
            ));
        }
        return issued;
    }
    let policy = poll_policy(run, ca);
    let started = Instant::now();
    let deadline = started + policy.timeout;
    // Polls back off from the provider's interval (or --poll-interval) as its policy says
    // (Encryption365: one status call per 30 s per order, up to 4x), never past the deadline.
    let base = policy.interval;
    let mut interval = base;
    let mut tick = 0;
    // The last failed status call per site, told when the deadline passes.
    let mut last_error: BTreeMap<String, String> = BTreeMap::new();
    let limit = super::order::ca_concurrency(ca);
    loop {
        let (sites, records) = takeable(waiting);
        let polled = {
            let (run, sites, records): (&Run, _, _) = (run, &sites, &records);
            crate::bounded::each(sites.len(), limit, |i| async move {
                let mut record = take(&records[i]);
                let polled = poll(run, ca, &sites[i], &mut record, dns).await;
                (record, polled)
            })
            .await
        };
        drop(records);
        let mut still = Vec::new();
        for (site, (record, polled)) in sites.into_iter().zip(polled) {
            match polled {
                Polled::Issued => issued.push((site, record)),
                Polled::Waiting(None) => still.push((site, record)),
                Polled::Waiting(Some(e)) => {
                    run.say(format!("  {}: {e} (will ask again)", site.name));
                    last_error.insert(site.name.clone(), e);
                    still.push((site, record));
                }
                Polled::Gone(why) => run.fail(&site.name, why),
            }
        }
        waiting = still;
        if waiting.is_empty() {
            run.spin(0, None);
            return issued;
        }
        if Instant::now() >= deadline {
            run.spin(0, None);
            time_out(run, &waiting, &last_error);
            return issued;
        }
        let wake =
            Instant::now() + interval.min(deadline.saturating_duration_since(Instant::now()));
        let status = format!(
            "waiting for the CA to issue {} certificate(s)",
            waiting.len()
        );
        tick = sleep_until(run, wake, started, &status, tick).await;
        interval = (interval.mul_f64(policy.backoff)).min(base.mul_f64(policy.max_backoff));
    }
}

/// The provider's poll policy, with `--poll-interval` and `--timeout` applied.
fn poll_policy(run: &Run, ca: &dyn CertificateAuthority) -> PollPolicy {
    let mut policy = ca.poll_policy();
    if let Some(secs) = run.args.poll_interval {
        policy.interval = Duration::from_secs_f64(secs);
    }
    if let Some(secs) = run.args.timeout {
        policy.timeout = Duration::from_secs(secs);
    }
    policy.interval = policy.interval.max(Duration::from_millis(50));
    policy
}

/// Each record in a cell of its own, beside its site: concurrent tasks take their record
/// ([`take`]) instead of cloning it, so one copy of each is held.
type Cells = Vec<std::sync::Mutex<Option<OrderRecord>>>;

/// Splits `orders` into the sites and their records' cells (same order).
fn takeable(orders: Vec<(Site, OrderRecord)>) -> (Vec<Site>, Cells) {
    (orders.into_iter())
        .map(|(site, record)| (site, std::sync::Mutex::new(Some(record))))
        .unzip()
}

/// Takes the record out of its cell; each cell is taken once (one task per index).
fn take(cell: &std::sync::Mutex<Option<OrderRecord>>) -> OrderRecord {
    let mut cell = cell.lock().unwrap_or_else(|e| e.into_inner());
    cell.take().expect("each record is taken once")
}

/// Asks the CA once where one order stands; saves it when issued, forgets it when failed.
async fn poll(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    site: &Site,
    record: &mut OrderRecord,
    dns: &DnsPublisher,
) -> Polled {
    let id = OrderId(record.order_id.clone().unwrap_or_default());
    ca.attach_csr(&id, &record.csr_pem);
    ca.attach_dns_names(&id, &record.dns_names);
    match ca.order_status(&id, &record.names).await {
        Ok(order) => match order.state {
            OrderState::Issued(cert) => {
                record.state = RecordState::Issued;
                record.fullchain_pem = Some(cert.fullchain_pem());
                if let Err(e) = record.save(&run.state_dir) {
                    return Polled::Gone(format!("{e:#}"));
                }
                // Its files go now; the record lists them until it is saved as installed. DNS
                // records go too, and the record is saved again only for them (a removal that
                // fails stays journaled).
                leftovers::remove_files_keeping_the_list(record);
                if !record.dns_records.is_empty() {
                    leftovers::remove_records(dns, record, &|m| run.say(m));
                    if let Err(e) = record.save(&run.state_dir) {
                        run.say(format!("  {}: {e:#}", site.name));
                    }
                }
                // Saved with its chain: held without it until the install reads it back
                // ([`OrderRecord::issued_chain`]).
                record.fullchain_pem = None;
                Polled::Issued
            }
            OrderState::Failed { reason } => {
                leftovers::remove_all(&run.state_dir, dns, record, &|m| run.say(m));
                if record.dns_records.is_empty() {
                    OrderRecord::discard(&run.state_dir, &site.name);
                } else {
                    // Kept, cancelled, until every later run has removed its records.
                    record.state = RecordState::Cancelled;
                    let _ = record.save(&run.state_dir);
                }
                Polled::Gone(format!(
                    "the CA ended order {id} without a certificate: {reason}"
                ))
            }
            OrderState::Pending { .. } => Polled::Waiting(None),
        },
        Err(e) => Polled::Waiting(Some(e.to_string())),
    }
}

/// Reports every order still waiting at the deadline (each is kept for the next run).
fn time_out(run: &mut Run, waiting: &[(Site, OrderRecord)], last_error: &BTreeMap<String, String>) {
    for (site, record) in waiting {
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
}

/// Sleeps until `wake`, keeping the spinner turning on a terminal; returns the next tick.
async fn sleep_until(
    run: &Run<'_>,
    wake: Instant,
    started: Instant,
    status: &str,
    mut tick: usize,
) -> usize {
    while Instant::now() < wake {
        tokio::time::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(120)),
        )
        .await;
        let line = format!("{status} … {} s", started.elapsed().as_secs());
        run.spin(tick, Some(line));
        tick += 1;
    }
    tick
}

/// Removes the validation files of this run that no order needs any more: all of a site whose
/// order is finished or gone, and those behind the temporary location (which goes now) of orders
/// still pending. Webroot files of pending orders stay journaled for the run that finishes them.
fn clean_up(run: &mut Run, published: &PublishedBySite) {
    let (mut files, mut dirs): (Vec<PathBuf>, Vec<PathBuf>) = (Vec::new(), Vec::new());
    for (site, out) in published {
        let record = OrderRecord::load(&run.state_dir, site).ok().flatten();
        match record {
            Some(mut record) if record.state == RecordState::Pending => {
                leftovers::remove_under(&run.state_dir, &run.dcv_dir, &mut record);
                if !record.published_files.is_empty() {
                    run.say(format!(
                        "  {site}: the validation files stay in its webroot until the order is \
                         finished"
                    ));
                }
                files.extend(
                    out.files
                        .iter()
                        .filter(|f| f.starts_with(&run.dcv_dir))
                        .cloned(),
                );
            }
            _ => {
                files.extend(out.files.iter().cloned());
                dirs.extend(out.dirs.iter().cloned());
            }
        }
    }
    // Files first, then the directories, innermost last in the list (they are removed in
    // reverse), each only when empty.
    dirs.sort_by_key(|d| d.components().count());
    dirs.dedup();
    dcv::remove_files(&files, &dirs);
}

/// Appends the paths of `new` not already in `list`.
fn add_new(list: &mut Vec<PathBuf>, new: impl Iterator<Item = PathBuf>) {
    for path in new {
        if !list.contains(&path) {
            list.push(path);
        }
    }
}
