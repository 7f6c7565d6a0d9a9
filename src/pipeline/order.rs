//! Ordering: a new key and CSR, the order record saved *before* the CA is asked and again with
//! its answer, so a run killed at any point is resumed by the next one and never orders twice.
//! A pending order is resumed; an order whose creation was interrupted before the answer was
//! saved is refused until the user says (`--discard-interrupted-order`).
//!
//! Not here: publishing what the CA asks for ([`super::validate`]).

use anyhow::anyhow;

use super::Run;
use crate::ca::{CaError, CertificateAuthority, OrderId, OrderRequest};
use crate::orders::{OrderRecord, RecordState};
use crate::site::Site;

/// Orders (or resumes) every site; failures are reported and the site dropped.
pub async fn place_all(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    sites: Vec<Site>,
) -> Vec<(Site, OrderRecord)> {
    let mut pending = Vec::new();
    for site in sites {
        match ensure_order(run, ca, &site).await {
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

/// The site's order: resumed from its record, or placed now (record saved first).
async fn ensure_order(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    site: &Site,
) -> anyhow::Result<OrderRecord> {
    if let Some(record) = resumable(run, &site.name)? {
        return Ok(record);
    }
    let renews = run.renews.get(&site.name).cloned();
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
    let (mut record, csr_pem) = new_record(run, ca, &site.name, &site.names, None)?;
    record.renews = renews.clone();
    record.save(&run.state_dir)?;
    let request = OrderRequest {
        product: run.config.pid.to_string(),
        names: site.names.clone(),
        csr_pem,
        period: None,
        renews: renews.map(OrderId),
        existing_id: None,
    };
    place(run, ca, record, request).await
}

/// The site's unfinished order, if it can be resumed; an interrupted creation is an error
/// unless `--discard-interrupted-order` (then the record goes and `None` is returned).
fn resumable(run: &Run, site: &str) -> anyhow::Result<Option<OrderRecord>> {
    let Some(record) =
        OrderRecord::load(&run.state_dir, site)?.filter(|r| r.state != RecordState::Installed)
    else {
        return Ok(None);
    };
    if record.state != RecordState::Creating {
        run.say(format!(
            "  {site}: resuming order {}",
            record.order_id.as_deref().unwrap_or("?")
        ));
        return Ok(Some(record));
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
    crate::store::ensure_dir(&crate::orders::orders_dir(&run.state_dir), 0o700)?;
    crate::keys::write_private_key(&OrderRecord::key_path(&run.state_dir, site), &generated.key)?;
    let record = OrderRecord {
        site: site.to_string(),
        names: names.to_vec(),
        provider: ca.name().to_string(),
        order_id,
        state: RecordState::Creating,
        csr_pem: generated.csr_pem.clone(),
        fullchain_pem: None,
        created_at: run.ctx.now(),
        last_error: None,
        published_files: Vec::new(),
        published_dirs: Vec::new(),
        renews: None,
    };
    Ok((record, generated.csr_pem))
}

/// Asks the CA to create the order (the record is saved in state `creating`); a renewal the CA
/// refuses becomes a new order. Saves the answer; a lost answer keeps the record.
async fn place(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    mut record: OrderRecord,
    mut request: OrderRequest,
) -> anyhow::Result<OrderRecord> {
    let mut answer = ca.place_order(&request).await;
    if let (Err(CaError::Api { message, .. }), Some(old)) = (&answer, &request.renews) {
        // Refused, so nothing was created: a renewal the CA will not take becomes a new order.
        run.say(format!(
            "  {}: the CA refused to renew order {old} ({message}); ordering anew",
            record.site
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
        Err(e) => Err(lost(run, &mut record, e)),
    }
}

/// What to tell after a failed create: when the CA refused, or was never reached, nothing was
/// created there and the record goes; otherwise it is kept with the error.
fn lost(run: &Run, record: &mut OrderRecord, e: CaError) -> anyhow::Error {
    match e {
        e @ (CaError::Api { .. } | CaError::Invalid(_) | CaError::Unreachable { .. }) => {
            OrderRecord::discard(&run.state_dir, &record.site);
            anyhow!(e)
        }
        e => {
            record.last_error = Some(e.to_string());
            if let Err(save) = record.save(&run.state_dir) {
                return save;
            }
            anyhow!(
                "{e}; the CA may have created the order anyway. Check the CA console; the next run \
                 will not order again without --discard-interrupted-order"
            )
        }
    }
}

/// `reissue`: a new key and CSR on the managed certificate's order `order_id`, through the
/// provider's reissue call. The record is saved first; on any failure it goes again (the
/// installed certificate is unchanged).
pub async fn reissue(
    run: &Run<'_>,
    ca: &dyn CertificateAuthority,
    site: &str,
    names: &[String],
    order_id: String,
) -> anyhow::Result<()> {
    let (mut record, csr_pem) = new_record(run, ca, site, names, Some(order_id.clone()))?;
    record.save(&run.state_dir)?;
    let request = OrderRequest {
        product: run.config.pid.to_string(),
        names: names.to_vec(),
        csr_pem,
        period: None,
        renews: None,
        existing_id: None,
    };
    let id = OrderId(order_id);
    match ca.reissue(&id, &request).await {
        Ok(_) => {
            record.state = RecordState::Pending;
            record.save(&run.state_dir)
        }
        Err(e) => {
            OrderRecord::discard(&run.state_dir, site);
            let hint = match e {
                CaError::Transport { .. } => {
                    "; the CA may have taken the reissue anyway — check the TrustOcean console, \
                     then run reissue again (the installed certificate is unchanged)"
                }
                _ => "; nothing changed, the installed certificate stays",
            };
            Err(anyhow!("{e}{hint}"))
        }
    }
}
