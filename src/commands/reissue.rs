//! `enc365-nginx reissue --site NAME`: a new key and CSR for a managed certificate, on the same
//! order through the provider's reissue call (Encryption365 `/cert/reissue`), then validated,
//! installed and proven exactly as a renewal is (the pending order goes through
//! `auto::execute`). The old certificate stays in place until the new one is served.
//!
//! The names are the certificate's own (the lineage's); changing names is `renew`'s job.

use anyhow::anyhow;

use crate::ca::{CaError, OrderId, OrderRequest};
use crate::cli::ReissueArgs;
use crate::commands::{Context, auto, block_on};
use crate::exit::{CommandResult, Failure};
use crate::lifecycle::{self, Action, Lineage, Planned};
use crate::orders::{OrderRecord, RecordState};
use crate::site;

/// Runs `reissue`.
pub fn run(args: &ReissueArgs, ctx: &Context) -> CommandResult {
    let [selector] = args.pipeline.sites.as_slice() else {
        return Err(Failure::usage(anyhow!(
            "reissue needs exactly one --site NAME (`enc365-nginx status` lists the managed sites)"
        )));
    };
    if args.pipeline.dry_run || args.pipeline.one_certificate {
        return Err(Failure::usage(anyhow!(
            "reissue takes neither --dry-run nor --one-certificate"
        )));
    }
    let (run, found) = auto::prepare(&args.pipeline, ctx, "reissue")?;
    let lineage = Lineage::all(&run.state_dir)
        .map_err(Failure::failed)?
        .into_iter()
        .find(|l| &l.site == selector || l.names.contains(selector))
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "{selector} has no certificate managed here; `enc365-nginx auto --site \
                 {selector}` gives it one"
            ))
        })?;
    let sites = site::group(&found);
    let site = lifecycle::site_of(&lineage.site, &sites, &found, &run.env.config_dir).ok_or_else(|| {
        Failure::usage(anyhow!(
            "no server block carries {} any more; a reissued certificate could not be installed",
            lineage.site
        ))
    })?;
    if let Some(record) = OrderRecord::load(&run.state_dir, &lineage.site)
        .map_err(Failure::failed)?
        .filter(|r| r.state != RecordState::Installed)
    {
        return Err(Failure::usage(anyhow!(
            "order {} for {} is still in flight; finish it with `enc365-nginx renew` first",
            record.order_id.as_deref().unwrap_or("(not answered yet)"),
            lineage.site
        )));
    }
    let Some(order_id) = lineage.renewable_order() else {
        return Err(Failure::usage(anyhow!(
            "{}: the certificate was revoked or its order id is unknown; `enc365-nginx renew \
             --site {}` orders a new one",
            lineage.site,
            lineage.site
        )));
    };
    let ca = ctx.certificate_authority(&run.config)?;
    if !ca.capabilities().reissue || ca.name() != lineage.provider {
        return Err(Failure::usage(anyhow!(
            "{} cannot reissue this certificate (issued by {}); `enc365-nginx renew --force \
             --site {}` replaces it with a new order and a new key",
            ca.name(),
            lineage.provider,
            lineage.site
        )));
    }

    run.say(format!(
        "  {}: reissuing order {order_id} for {} with a new key",
        lineage.site,
        lineage.names.join(", ")
    ));
    let generated =
        crate::keys::generate(run.config.key_type, &lineage.names).map_err(Failure::failed)?;
    let key_path = OrderRecord::key_path(&run.state_dir, &lineage.site);
    crate::store::ensure_dir(&crate::orders::orders_dir(&run.state_dir), 0o700)
        .map_err(Failure::failed)?;
    crate::keys::write_private_key(&key_path, &generated.key).map_err(Failure::failed)?;
    let mut record = OrderRecord {
        site: lineage.site.clone(),
        names: lineage.names.clone(),
        provider: ca.name().to_string(),
        order_id: Some(order_id.clone()),
        state: RecordState::Creating,
        csr_pem: generated.csr_pem.clone(),
        fullchain_pem: None,
        created_at: ctx.now(),
        last_error: None,
        published_files: Vec::new(),
        published_dirs: Vec::new(),
        renews: None,
    };
    record.save(&run.state_dir).map_err(Failure::failed)?;
    let request = OrderRequest {
        product: run.config.product(),
        names: lineage.names.clone(),
        csr_pem: generated.csr_pem,
        period: None,
        renews: None,
        existing_id: None,
    };
    let id = OrderId(order_id);
    match block_on(ca.reissue(&id, &request))? {
        Ok(_) => {
            record.state = RecordState::Pending;
            record.save(&run.state_dir).map_err(Failure::failed)?;
        }
        Err(e) => {
            OrderRecord::discard(&run.state_dir, &lineage.site);
            let hint = match e {
                CaError::Transport { .. } => {
                    "; the CA may have taken the reissue anyway — check the TrustOcean console, \
                     then run reissue again (the installed certificate is unchanged)"
                }
                _ => "; nothing changed, the installed certificate stays",
            };
            return Err(Failure::failed(anyhow!("{e}{hint}")));
        }
    }
    auto::execute(
        run,
        found,
        vec![Planned {
            site,
            action: Action::Order { renews: None },
        }],
    )
}
