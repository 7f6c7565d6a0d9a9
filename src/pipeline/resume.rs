//! Before anything is published for orders an earlier run left (a kill, `--no-wait`,
//! `--timeout`): asks the CA where each stands, so an order it issued meanwhile is saved and
//! goes straight to the install — no temporary validation location, no validation reload for
//! it. An order the CA has validated needs no route either.
//!
//! Not here: polling until issued ([`super::validate`]).

use std::collections::BTreeSet;

use super::Run;
use crate::ca::{CertificateAuthority, OrderId, OrderState};
use crate::orders::{OrderRecord, RecordState};
use crate::site::Site;

/// The sites among `sites` whose earlier order needs nothing validated any more: issued (now
/// saved with its chain) or with every name validated. A CA call that fails settles nothing
/// (validation goes on as before).
pub async fn settle(
    run: &mut Run<'_>,
    ca: &dyn CertificateAuthority,
    sites: &[Site],
) -> BTreeSet<String> {
    let mut settled = BTreeSet::new();
    for site in sites {
        let Ok(Some(mut record)) = OrderRecord::load(&run.state_dir, &site.name) else {
            continue;
        };
        match record.state {
            RecordState::Issued => {
                settled.insert(site.name.clone());
                continue;
            }
            RecordState::Pending => {}
            _ => continue,
        }
        let Some(id) = record.order_id.clone().map(OrderId) else {
            continue;
        };
        ca.attach_csr(&id, &record.csr_pem);
        let Ok(order) = ca.order_status(&id, &record.names).await else {
            continue;
        };
        match order.state {
            OrderState::Issued(cert) => {
                record.state = RecordState::Issued;
                record.fullchain_pem = Some(cert.fullchain_pem());
                // Nothing is validated for it any more: the files an earlier run left published
                // (`--no-wait`, a kill) go now.
                let files = std::mem::take(&mut record.published_files);
                let mut dirs = std::mem::take(&mut record.published_dirs);
                dirs.sort_by_key(|d| d.components().count());
                crate::dcv::remove_files(&files, &dirs);
                if record.save(&run.state_dir).is_ok() {
                    run.say(format!(
                        "  {}: order {id} was issued since the last run",
                        site.name
                    ));
                    settled.insert(site.name.clone());
                }
            }
            OrderState::Pending { .. }
                if !order.validations.is_empty()
                    && order.validations.iter().all(|v| v.validated) =>
            {
                settled.insert(site.name.clone());
            }
            _ => {}
        }
    }
    settled
}
