//! Cancelling a pending order: the provider's cancel call (HowSSL `cancelOrder`), then what was
//! published for the order removed ([`super::leftovers`]) and its record marked
//! [`RecordState::Cancelled`], so the next run orders anew.
//!
//! A provider without a cancel call (Encryption365, ACME) is told plainly, with what to do; with
//! `forget` the order is dropped here without asking the CA. An order whose creation (or commit)
//! answer was never saved has no id to cancel: it is dropped here, and the user is told to check
//! the CA console.
//!
//! Not here: parsing options or printing (that is `commands::cancel`).

use std::path::Path;

use anyhow::{anyhow, bail};
use serde::Serialize;

use super::leftovers;
use crate::ca::{CertificateAuthority, OrderId};
use crate::orders::{OrderRecord, RecordState};
use crate::publish::dns::DnsPublisher;

/// Which order to cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The order of this site (its name, or any of its names).
    Site(String),
    /// The order with this id (or HowSSL draft id).
    Order(String),
}

/// What cancelling did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    /// The site.
    pub site: String,
    /// The CA's order id, when known.
    pub order_id: Option<String>,
    /// True when the CA was asked to cancel and agreed; false when the order was only dropped
    /// here.
    pub cancelled_at_ca: bool,
    /// What the user should still check, if anything (an order whose answer was never saved).
    pub warning: Option<String>,
    /// DNS records whose removal failed: pending removal, retried by every later run.
    pub pending_removal: Vec<String>,
}

/// Why nothing was cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// The user asked for something that cannot be done (no such order, wrong provider, a
    /// provider without a cancel call): nothing changed.
    #[error("{0}")]
    Refused(String),
    /// The CA's cancel call failed: nothing changed here.
    #[error("{0}")]
    Failed(String),
}

/// The open order record `which` names.
pub fn find(state_dir: &Path, which: &Which) -> Result<OrderRecord, CancelError> {
    let records = OrderRecord::all(state_dir).map_err(|e| CancelError::Failed(format!("{e:#}")))?;
    let found = records.into_iter().find(|r| match which {
        Which::Site(name) => &r.site == name || r.names.contains(name),
        Which::Order(id) => {
            r.order_id.as_deref() == Some(id.as_str()) || r.draft_id.as_deref() == Some(id)
        }
    });
    let what = match which {
        Which::Site(name) => format!("{name} has no order"),
        Which::Order(id) => format!("there is no order {id}"),
    };
    match found {
        Some(r) if r.state.is_open() => Ok(r),
        Some(r) if r.state == RecordState::Installed => Err(CancelError::Refused(format!(
            "order {} of {} is finished and installed; there is nothing pending to cancel \
             (`enc365-nginx revoke --site {}` revokes an issued certificate where the provider can)",
            r.order_id.as_deref().unwrap_or("?"),
            r.site,
            r.site
        ))),
        Some(r) => Err(CancelError::Refused(format!(
            "order {} of {} is already cancelled; the next run orders anew",
            r.order_id.as_deref().unwrap_or("?"),
            r.site
        ))),
        None => Err(CancelError::Refused(format!(
            "{what} pending here (`enc365-nginx status` lists pending orders)"
        ))),
    }
}

/// Cancels `record`'s order at the CA (unless `forget`), removes what was published for it and
/// marks the record cancelled. Nothing changes when the CA refuses or cannot cancel.
pub async fn cancel(
    state_dir: &Path,
    ca: &dyn CertificateAuthority,
    dns: &DnsPublisher,
    mut record: OrderRecord,
    forget: bool,
    say: &dyn Fn(String),
) -> Result<Cancelled, CancelError> {
    if record.provider != ca.name() {
        return Err(CancelError::Refused(format!(
            "order {} of {} was placed with {}, but the configured provider is {}; set provider \
             = \"{}\" (or pass --provider) to cancel it",
            record.order_id.as_deref().unwrap_or("?"),
            record.site,
            record.provider,
            ca.name(),
            record.provider
        )));
    }
    let mut warning = None;
    let mut cancelled_at_ca = false;
    match (&record.order_id, forget) {
        (Some(id), false) if ca.capabilities().cancel => {
            ca.cancel(&OrderId(id.clone())).await.map_err(|e| {
                CancelError::Failed(format!(
                    "{e}; nothing was cancelled, and the order is kept (check it in the {} \
                     console)",
                    ca.name()
                ))
            })?;
            cancelled_at_ca = true;
        }
        (Some(id), false) => {
            let said = ca.cancel(&OrderId(id.clone())).await.err();
            let said = said.map_or_else(|| "it has no cancel call".into(), |e| e.to_string());
            return Err(CancelError::Refused(format!(
                "{} cannot cancel order {id} through its API ({said}); nothing was changed. \
                 Cancel it in the provider's console if it must go, then run `enc365-nginx \
                 cancel --site {} --forget` to drop it here (its validation files and DNS \
                 records are removed, and the next run orders anew)",
                ca.name(),
                record.site
            )));
        }
        (Some(_), true) => {}
        (None, _) if record.state == RecordState::Created => say(format!(
            "  {}: draft {} was never committed (nothing was paid); it is dropped here",
            record.site,
            record.draft_id.as_deref().unwrap_or("?")
        )),
        (None, _) => warning = Some(unsaved(&record)),
    }
    leftovers::remove_all(state_dir, dns, &mut record, say);
    record.state = RecordState::Cancelled;
    record
        .save(state_dir)
        .map_err(|e| CancelError::Failed(format!("{e:#}")))?;
    let _ = std::fs::remove_file(OrderRecord::key_path(state_dir, &record.site));
    Ok(Cancelled {
        site: record.site.clone(),
        order_id: record.order_id.clone(),
        cancelled_at_ca,
        warning,
        pending_removal: record.dns_records.iter().map(|r| r.to_string()).collect(),
    })
}

/// What to tell about an order whose create or commit answer was lost: the CA may hold it.
fn unsaved(record: &OrderRecord) -> String {
    match &record.draft_id {
        Some(draft) => format!(
            "the commit of draft {draft} was sent and its answer never saved: the CA may hold \
             (and have charged) an order of {}. Check the CA console and cancel it there",
            record.names.join(", ")
        ),
        _ => format!(
            "the order was sent and its answer never saved: the CA may hold an order of {}. \
             Check the CA console and cancel it there",
            record.names.join(", ")
        ),
    }
}

/// Checks a `--site`/`--order` pair (exactly one given).
pub fn which(site: Option<&str>, order: Option<&str>) -> anyhow::Result<Which> {
    match (site, order) {
        (Some(s), None) => Ok(Which::Site(s.to_string())),
        (None, Some(o)) => Ok(Which::Order(o.to_string())),
        (Some(_), Some(_)) => bail!("give --site or --order, not both"),
        (None, None) => Err(anyhow!("give --site NAME or --order ID")),
    }
}
