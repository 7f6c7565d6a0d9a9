//! Ordering: a new key and CSR, then the order placed in persisted steps ([`Step`]): `create`,
//! and for a provider whose create answers a draft (HowSSL `check_id`) `commit`, preceded by the
//! provider's checks that change nothing (`before_commit`: HowSSL's balance). The order record
//! is saved *before* each CA call and again with its answer ([`take_step`]), so a run killed at
//! any point is resumed by the next one at the step it had not finished ([`next`]) and never
//! orders twice. A pending order is resumed; a step whose answer was lost is refused until the
//! user says (`--discard-interrupted-order`).
//!
//! Not here: publishing what the CA asks for ([`super::validate`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;

use super::Run;
use crate::ca::{
    CaError, CertificateAuthority, Created, OrderId, OrderRequest, OrderState, ValidationMethod,
};
use crate::keys::KeyAndCsr;
use crate::keys::pool::{AHEAD, KeyPool};
use crate::orders::{OrderRecord, RecordState};
use crate::site::Site;
use crate::timings::Phase;

/// Orders (or resumes) every site with keys made for them now ([`place_with`]).
pub async fn place_all(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    sites: Vec<Site>,
) -> Vec<(Site, OrderRecord)> {
    let keys = start_keys(run, &sites);
    let placed = place_with(run, ca, sites, &keys).await;
    time_keys(&keys);
    placed
}

/// Adds what `keys` spent to the run's timings: their CPU time (`keys`) and when the last one
/// was made (`after_last_key`).
pub fn time_keys(keys: &KeyPool) {
    crate::timings::add("keys", keys.generation_time());
    if let Some(at) = keys.last_made() {
        crate::timings::mark("last_key", at);
    }
}

/// Starts making the keys of the new orders among `sites` (those without an order to resume) on
/// every core, so they are ready when the orders are placed: a run starts it as soon as it knows
/// its sites, before the checks and probes that come first.
pub fn start_keys(run: &Run, sites: &[Site]) -> KeyPool {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    KeyPool::start(run.config.key_type, new_orders(run, sites), threads, AHEAD)
}

/// How many of `sites` may need a new key: all but those with an order [`resumable`] resumes
/// (placed, or a draft to commit). Never fewer than [`place_with`] takes; a few more only where
/// an interrupted step stops the site first.
pub fn new_orders(run: &Run, sites: &[Site]) -> usize {
    let resumed = |site: &Site| {
        let record = OrderRecord::load(&run.state_dir, &site.name).ok().flatten();
        record.is_some_and(|r| r.state.is_open() && matches!(next(&r), Next::Placed | Next::Commit))
    };
    sites.iter().filter(|s| !resumed(s)).count()
}

/// Orders (or resumes) every site; failures are reported and the site dropped. The keys of the
/// new orders come from `keys`, made on every core while the run did what came before, so key
/// generation is off the critical path. Several sites' orders are placed at once
/// ([`ca_concurrency`]); results are reported in the sites' order.
pub async fn place_with(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    sites: Vec<Site>,
    keys: &KeyPool,
) -> Vec<(Site, OrderRecord)> {
    // Which sites resume and which need a new key, decided first.
    let starts: Vec<(Site, anyhow::Result<Start>)> = sites
        .into_iter()
        .map(|site| {
            let start = resumable(run, &site.name).map(|record| match record {
                Some(record) => Start::Resume(Box::new(record)),
                None => Start::New,
            });
            (site, start)
        })
        .collect();
    let ordering = Phase::start("ordering");
    let placed = {
        let run: &Run = run;
        let starts = &starts;
        crate::bounded::each(starts.len(), ca_concurrency(ca), |i| async move {
            let (site, start) = &starts[i];
            match start {
                Ok(Start::Resume(record)) if next(record) == Next::Placed => Ok(*record.clone()),
                Ok(Start::Resume(record)) => place(run, ca, *record.clone()).await,
                Ok(Start::New) => {
                    let waited = Phase::start("keys_wait");
                    // Each site runs on a thread of its own (`bounded::each`): waiting for a
                    // key blocks only this one.
                    let key = keys.take(&site.names);
                    drop(waited);
                    new_order(run, ca, site, key.map_err(|e| anyhow!(e))?).await
                }
                Err(e) => Err(anyhow!("{e:#}")),
            }
        })
        .await
    };
    drop(ordering);
    let mut pending = Vec::new();
    for ((site, _), outcome) in starts.into_iter().zip(placed) {
        match outcome {
            Ok(record) => {
                run.result(&site.name).order_id = record.order_id.clone();
                run.result(&site.name).renews = record.renews.clone();
                pending.push((site, record));
            }
            Err(e) => run.fail(&site.name, format!("{e:#}")),
        }
    }
    pending
}

/// How a site's order starts: an unfinished order resumed, or a new one with the next key of
/// the [`KeyPool`].
enum Start {
    /// The earlier run's record.
    Resume(Box<OrderRecord>),
    /// A new order.
    New,
}

/// How many sites' orders (and later validations and status polls) are in flight at once:
/// several for Encryption365; one at a time for the others (HowSSL checks the balance before
/// each commit, ACME orders share one account's nonces).
pub fn ca_concurrency(ca: &dyn CertificateAuthority) -> usize {
    match ca.name() {
        "encryption365" => 8,
        _ => 1,
    }
}

/// A new order for `site` with the key made for it: the record saved first, then placed.
async fn new_order(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    site: &Site,
    key: KeyAndCsr,
) -> anyhow::Result<OrderRecord> {
    let renews = run.renews.get(&site.name).cloned();
    let verb = if renews.is_some() {
        "renewing"
    } else {
        "ordering"
    };
    run.say(format!(
        "  {}: {verb} for {}",
        site.name,
        site.names.join(", ")
    ));
    let previous = OrderRecord::load(&run.state_dir, &site.name).ok().flatten();
    let (mut record, _) = record_with_key(run, ca, &site.name, &site.names, None, key)?;
    if let Some(previous) = previous {
        // What the previous order could not remove yet is removed when this one is done.
        super::leftovers::carry_over(previous, &mut record);
    }
    record.renews = renews;
    record.dns_names = site.dns_names.clone();
    // Not saved here: placing it saves it first, before the CA is asked (`take_step`); a save
    // here wrote the same bytes once more (two flushes per order).
    place(run, ca, record).await
}

/// The site's unfinished order, if it can be resumed; an interrupted step is an error unless
/// `--discard-interrupted-order` (then the record goes and `None` is returned).
fn resumable(run: &Run, site: &str) -> anyhow::Result<Option<OrderRecord>> {
    let Some(record) = OrderRecord::load(&run.state_dir, site)?.filter(|r| r.state.is_open())
    else {
        return Ok(None);
    };
    match next(&record) {
        Next::Placed => {
            run.say(format!(
                "  {site}: resuming order {}",
                record.order_id.as_deref().unwrap_or("?")
            ));
            return Ok(Some(record));
        }
        Next::Commit => {
            run.say(format!(
                "  {site}: resuming at the commit of draft {}",
                record.draft_id.as_deref().unwrap_or("?")
            ));
            return Ok(Some(record));
        }
        Next::Create => {}
        Next::Reissue => anyhow::bail!(
            "an earlier `reissue` of order {} was interrupted before the CA's answer was saved; \
             run `enc365-nginx reissue --site {site}` to finish it with the key made then",
            record.order_id.as_deref().unwrap_or("?")
        ),
        Next::Interrupted if !run.args.discard_interrupted_order => {
            anyhow::bail!("{}", interrupted_commit(&record));
        }
        Next::Interrupted => {}
    }
    if !run.args.discard_interrupted_order {
        anyhow::bail!(
            "an earlier run was interrupted while ordering, before the CA's answer was saved; the \
             CA may hold that order. Check the CA console, then run again with \
             --discard-interrupted-order to order anew"
        );
    }
    OrderRecord::discard(&run.state_dir, site);
    Ok(None)
}

/// A new key (written, 0600) and CSR for `names`, and the record about to be sent (not saved).
pub fn new_record(
    run: &Run,
    ca: &dyn CertificateAuthority,
    site: &str,
    names: &[String],
    order_id: Option<String>,
) -> anyhow::Result<(OrderRecord, String)> {
    let generated = crate::keys::generate(run.config.key_type, names)?;
    record_with_key(run, ca, site, names, order_id, generated)
}

/// [`new_record`] with a key already made: the key written (0600), the record not saved.
fn record_with_key(
    run: &Run,
    ca: &dyn CertificateAuthority,
    site: &str,
    names: &[String],
    order_id: Option<String>,
    generated: KeyAndCsr,
) -> anyhow::Result<(OrderRecord, String)> {
    crate::store::ensure_dir(&crate::orders::orders_dir(&run.state_dir), 0o700)?;
    crate::keys::write_private_key(&OrderRecord::key_path(&run.state_dir, site), &generated.key)?;
    let record = OrderRecord {
        site: site.to_string(),
        names: names.to_vec(),
        provider: ca.name().to_string(),
        order_id,
        draft_id: None,
        state: RecordState::Creating,
        csr_pem: generated.csr_pem.clone(),
        fullchain_pem: None,
        created_at: run.ctx.now(),
        last_error: None,
        published_files: Vec::new(),
        published_dirs: Vec::new(),
        renews: None,
        dns_names: Vec::new(),
        dns_records: Vec::new(),
    };
    Ok((record, generated.csr_pem))
}

/// The request a record stands for (its names, CSR and the order it renews).
pub(super) fn request_for(run: &Run, record: &OrderRecord) -> OrderRequest {
    OrderRequest {
        product: run.config.product(),
        names: record.names.clone(),
        csr_pem: record.csr_pem.clone(),
        period: None,
        renews: record.renews.clone().map(OrderId),
        existing_id: None,
        methods: methods(&record.names, &record.dns_names),
    }
}

/// The validation method chosen for each name.
fn methods(names: &[String], dns_names: &[String]) -> BTreeMap<String, ValidationMethod> {
    (names.iter())
        .map(|n| (n.clone(), crate::publish::method_in(n, dns_names)))
        .collect()
}

/// Takes the record's remaining steps; a renewal the CA refuses becomes a new order. A failure
/// is explained with what the next run will do.
async fn place(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    mut record: OrderRecord,
) -> anyhow::Result<OrderRecord> {
    let mut request = request_for(run, &record);
    let mut outcome = advance(ca, &run.state_dir, &mut record, &request).await;
    if let (Err(StepFailure::Refused(Step::Create, CaError::Api { message, .. })), Some(old)) =
        (&outcome, &request.renews)
    {
        // Refused, so nothing was created: a renewal the CA will not take becomes a new order.
        run.say(format!(
            "  {}: the CA refused to renew order {old} ({message}); ordering anew",
            record.site
        ));
        request.renews = None;
        record.renews = None;
        record.save(&run.state_dir)?;
        outcome = advance(ca, &run.state_dir, &mut record, &request).await;
    }
    match outcome {
        Ok(()) => Ok(record),
        Err(failure) => Err(explain(&run.state_dir, &record, failure)),
    }
}

/// What to tell after a failed step, and what becomes of the record: a refused creation created
/// nothing, so the record goes; a refused commit keeps the draft for the next run; a lost answer
/// keeps the record as interrupted.
fn explain(state_dir: &Path, record: &OrderRecord, failure: StepFailure) -> anyhow::Error {
    let draft = record.draft_id.as_deref().unwrap_or("?");
    match failure {
        StepFailure::Refused(Step::Create, e) => {
            OrderRecord::discard(state_dir, &record.site);
            anyhow!(e)
        }
        StepFailure::Refused(Step::Commit, e) => anyhow!(
            "{e}; the CA holds draft {draft}, not committed; the next run tries the commit again"
        ),
        StepFailure::Lost(Step::Create, e) => anyhow!(
            "{e}; the CA may have created the order anyway. Check the CA console; the next run \
             will not order again without --discard-interrupted-order"
        ),
        StepFailure::Lost(Step::Commit, e) => anyhow!(
            "{e}; the CA may have committed draft {draft} anyway. Check the CA console; the next \
             run will not commit again without --discard-interrupted-order"
        ),
        StepFailure::Interrupted => anyhow!("{}", interrupted_commit(record)),
        StepFailure::Disk(e) => e,
    }
}

/// What to tell when the commit of a draft was sent and its answer not saved. The CA may have
/// placed (and charged) the order; no provider so far can look an order up by its draft id
/// (HowSSL has no such call), so the user checks and decides.
fn interrupted_commit(record: &OrderRecord) -> String {
    let draft = record.draft_id.as_deref().unwrap_or("?");
    let (console, draft_name) = match record.provider.as_str() {
        "howssl" => (
            "CA console (the HowSSL console at howssl.com: its order list, and the \
             account balance for a debit at that time)",
            "HowSSL check_id",
        ),
        "huawei-scm" => (
            "CA console (Huawei Cloud SCM: the certificate's status)",
            "SCM certificate id",
        ),
        _ => ("CA console", "draft id"),
    };
    format!(
        "an earlier run was interrupted while ordering, before the CA's answer was saved: the \
         commit of draft {draft} ({draft_name} {draft}) was sent, and the CA may have placed \
         and charged that order. Check the {console} for an order of {} made then; if there is \
         one, finish or cancel it there; if there is none, run again with \
         --discard-interrupted-order to order anew",
        record.names.join(", ")
    )
}

/// `reissue`: a new key and CSR on the managed certificate's order `order_id`, through the
/// provider's reissue call. The record is saved first (state `reissuing`, with the new key). A
/// refusal changed nothing at the CA, so the record goes; a lost answer keeps record and key, and
/// the next `reissue` resumes: it reads the order's state and finishes with that key, or sends
/// the same reissue again when the CA did not take it ([`resume_reissue`]).
pub async fn reissue(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    site: &str,
    names: &[String],
    order_id: String,
) -> anyhow::Result<()> {
    let interrupted = OrderRecord::load(&run.state_dir, site)?
        .filter(|r| r.state.is_open() && r.order_id.as_deref() == Some(&order_id));
    if let Some(record) = interrupted
        .as_ref()
        .filter(|r| r.state != RecordState::Reissuing)
    {
        // The CA took it and a killed run was validating or installing it: the pipeline
        // resumes that record; asking again would throw away its key (and its certificate).
        let stage = if record.state == RecordState::Issued {
            "issued, not yet installed"
        } else {
            "taken by the CA, not yet validated"
        };
        run.say(format!(
            "  {site}: finishing the interrupted reissue of order {order_id} ({stage}) with the \
             key made then"
        ));
        return Ok(());
    }
    let mut record = match interrupted {
        Some(record) => {
            run.say(format!(
                "  {site}: resuming the interrupted reissue of order {order_id} with the key \
                 made then"
            ));
            match resume_reissue(ca, &run.state_dir, &record).await? {
                Resumed::Taken => return mark_pending(run, record),
                Resumed::NotTaken => record,
            }
        }
        None => {
            let (mut record, _) = new_record(run, ca, site, names, Some(order_id))?;
            record.state = RecordState::Reissuing;
            record.save(&run.state_dir)?;
            record
        }
    };
    let request = OrderRequest {
        product: run.config.product(),
        names: record.names.clone(),
        csr_pem: record.csr_pem.clone(),
        period: None,
        renews: None,
        existing_id: None,
        methods: methods(&record.names, &[]),
    };
    let id = OrderId(record.order_id.clone().unwrap_or_default());
    match ca.reissue(&id, &request).await {
        Ok(_) => mark_pending(run, record),
        Err(e) if nothing_happened(&e) => {
            OrderRecord::discard(&run.state_dir, site);
            Err(anyhow!(
                "{e}; nothing changed, the installed certificate stays"
            ))
        }
        Err(e) => {
            record.last_error = Some(e.to_string());
            record.save(&run.state_dir)?;
            Err(anyhow!(
                "{e}; the CA may have taken the reissue anyway. The new key and the order record \
                 are kept: run `enc365-nginx reissue --site {site}` again — it reads the order's \
                 state and finishes with that key (the installed certificate is unchanged)"
            ))
        }
    }
}

/// The reissue was taken: the order is pending again with our CSR, for the pipeline to validate.
fn mark_pending(run: &Run, mut record: OrderRecord) -> anyhow::Result<()> {
    record.state = RecordState::Pending;
    record.last_error = None;
    record.save(&run.state_dir)
}

/// Whether the CA took an interrupted reissue, as far as its order's state tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// It did: the order is pending again, or issued for our key.
    Taken,
    /// It did not: the order is still issued for the old key.
    NotTaken,
}

/// Reads the state of the order an interrupted reissue was sent for: pending (validating our
/// new CSR) or issued for our key means it was taken; issued for another key means it was not.
/// An order that ended (cancelled, revoked) ends the reissue: the record goes.
pub async fn resume_reissue(
    ca: &dyn CertificateAuthority,
    state_dir: &Path,
    record: &OrderRecord,
) -> anyhow::Result<Resumed> {
    let id = OrderId(record.order_id.clone().unwrap_or_default());
    let order = ca.order_status(&id, &record.names).await.map_err(|e| {
        anyhow!(
            "{e}; could not read order {id} to finish the interrupted reissue; the new key and \
             the record are kept — run reissue again later"
        )
    })?;
    match order.state {
        OrderState::Pending { .. } => Ok(Resumed::Taken),
        OrderState::Issued(cert) if issued_for_our_key(state_dir, record, &cert.leaf_pem) => {
            Ok(Resumed::Taken)
        }
        OrderState::Issued(_) => Ok(Resumed::NotTaken),
        OrderState::Failed { reason } => {
            OrderRecord::discard(state_dir, &record.site);
            Err(anyhow!(
                "order {id} ended at the CA ({reason}), so it cannot be reissued; `enc365-nginx \
                 renew --force --site {}` orders a new certificate",
                record.site
            ))
        }
    }
}

/// Whether `leaf_pem` certifies the pending key of `record`.
fn issued_for_our_key(state_dir: &Path, record: &OrderRecord, leaf_pem: &str) -> bool {
    let key_path = OrderRecord::key_path(state_dir, &record.site);
    let Ok(key) = std::fs::read_to_string(key_path) else {
        return false;
    };
    let Ok(key) = rcgen::KeyPair::from_pem(&key) else {
        return false;
    };
    let leaf = x509_parser::pem::Pem::iter_from_buffer(leaf_pem.as_bytes())
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"));
    leaf.is_some_and(|pem| {
        x509_parser::parse_x509_certificate(&pem.contents).is_ok_and(|(_, leaf)| {
            leaf.public_key().raw == rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        })
    })
}

/// Whether a failed call certainly did nothing at the CA (refused, or never sent).
fn nothing_happened(e: &CaError) -> bool {
    matches!(
        e,
        CaError::Api { .. }
            | CaError::Invalid(_)
            | CaError::Unreachable { .. }
            | CaError::Unsupported(_)
    )
}

/// One persisted step of placing an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// [`CertificateAuthority::create`].
    Create,
    /// [`CertificateAuthority::commit`] of the draft the create step answered.
    Commit,
}

/// Where a record stands in placing its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The first step is next (the record was saved, the CA not asked yet, or asked with the
    /// answer lost: see [`RecordState::Creating`]).
    Create,
    /// The draft is saved; committing it is next.
    Commit,
    /// A commit was asked and its answer not saved: the user decides.
    Interrupted,
    /// A reissue was asked and its answer not saved: `reissue` resumes it.
    Reissue,
    /// The order is placed (pending, issued or installed).
    Placed,
}

/// Where `record` stands.
pub fn next(record: &OrderRecord) -> Next {
    match record.state {
        RecordState::Creating => Next::Create,
        RecordState::Created => Next::Commit,
        RecordState::Committing => Next::Interrupted,
        RecordState::Reissuing => Next::Reissue,
        RecordState::Pending
        | RecordState::Issued
        | RecordState::Installed
        | RecordState::Cancelled => Next::Placed,
    }
}

/// Why a step did not complete.
#[derive(Debug)]
pub enum StepFailure {
    /// The CA refused, or was never reached: this step did nothing there.
    Refused(Step, CaError),
    /// The answer was lost: the step may have happened. The record keeps the error.
    Lost(Step, CaError),
    /// An earlier commit's answer was lost; taking steps again needs the user's word.
    Interrupted,
    /// The record could not be saved.
    Disk(anyhow::Error),
}

/// Takes every step left until the order is placed, saving the record after each.
pub async fn advance(
    ca: &dyn CertificateAuthority,
    state_dir: &Path,
    record: &mut OrderRecord,
    request: &OrderRequest,
) -> Result<(), StepFailure> {
    loop {
        match next(record) {
            Next::Placed => return Ok(()),
            Next::Interrupted | Next::Reissue => return Err(StepFailure::Interrupted),
            Next::Create | Next::Commit => take_step(ca, state_dir, record, request).await?,
        }
    }
}

/// Takes the record's next step: the record is saved before the CA call (in the state that says
/// an answer may be lost) and again with the answer, so a crash after a step resumes at the next.
pub async fn take_step(
    ca: &dyn CertificateAuthority,
    state_dir: &Path,
    record: &mut OrderRecord,
    request: &OrderRequest,
) -> Result<(), StepFailure> {
    let save = |record: &OrderRecord| record.save(state_dir).map_err(StepFailure::Disk);
    match next(record) {
        Next::Placed => Ok(()),
        Next::Interrupted | Next::Reissue => Err(StepFailure::Interrupted),
        Next::Create => {
            save(record)?;
            match ca.create(request).await {
                Ok(Created::Placed(order)) => {
                    record.order_id = Some(order.id.0);
                    record.state = RecordState::Pending;
                }
                Ok(Created::Draft(draft)) => {
                    record.draft_id = Some(draft.0);
                    record.state = RecordState::Created;
                }
                Err(e) => return Err(failed(state_dir, record, Step::Create, e)),
            }
            save(record)
        }
        Next::Commit => {
            let draft = OrderId(record.draft_id.clone().unwrap_or_default());
            if let Err(e) = ca.before_commit(request).await {
                // Nothing was committed: the draft stays for the next run.
                record.last_error = Some(e.to_string());
                save(record)?;
                return Err(StepFailure::Refused(Step::Commit, e));
            }
            record.state = RecordState::Committing;
            save(record)?;
            match ca.commit(&draft, request).await {
                Ok(order) => {
                    record.order_id = Some(order.id.0);
                    record.state = RecordState::Pending;
                    record.last_error = None;
                }
                Err(e) => return Err(failed(state_dir, record, Step::Commit, e)),
            }
            save(record)
        }
    }
}

/// Sorts a failed step's error and records it: a refused commit leaves the draft to commit
/// again; a lost answer leaves the record interrupted, with the error.
fn failed(state_dir: &Path, record: &mut OrderRecord, step: Step, e: CaError) -> StepFailure {
    let refused = matches!(
        e,
        CaError::Api { .. }
            | CaError::Invalid(_)
            | CaError::Unreachable { .. }
            | CaError::Unsupported(_)
    );
    if refused && step == Step::Create {
        return StepFailure::Refused(step, e);
    }
    if refused {
        record.state = RecordState::Created;
    }
    record.last_error = Some(e.to_string());
    if let Err(save) = record.save(state_dir) {
        return StepFailure::Disk(save);
    }
    if refused {
        StepFailure::Refused(step, e)
    } else {
        StepFailure::Lost(step, e)
    }
}
