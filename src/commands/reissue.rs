//! `enc365-nginx reissue --site NAME`: a new key and CSR for a managed certificate, on the same
//! order through the provider's reissue call (Encryption365 `/cert/reissue`), then validated,
//! installed and proven exactly as a renewal is (the pending order goes through the shared
//! pipeline). The old certificate stays in place until the new one is served.
//!
//! The names are the certificate's own (the lineage's); changing names is `renew`'s job.

use anyhow::anyhow;

use crate::cli::ReissueArgs;
use crate::commands::{Context, block_on};
use crate::exit::{CommandResult, Failure};
use crate::lifecycle::{Action, Planned};
use crate::pipeline::{self, order, select};

/// Runs `reissue`.
pub fn run(args: &ReissueArgs, ctx: &Context) -> CommandResult {
    let [selector] = args.pipeline.sites.as_slice() else {
        return Err(Failure::usage(anyhow!(
            "reissue needs exactly one --site NAME (`enc365-nginx status` lists the managed sites)"
        )));
    };
    let pipeline_args = args.pipeline.to_auto();
    let (run, found) = pipeline::prepare(&pipeline_args, ctx, "reissue")?;
    let (lineage, site) = select::for_reissue(&run, &found, selector)?;
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
        let console = if ca.name() == "howssl" && lineage.provider == "howssl" {
            format!(
                "HowSSL's API has no reissue call (reissue order {order_id} in the HowSSL console \
                 if you need the same order); "
            )
        } else {
            String::new()
        };
        return Err(Failure::usage(anyhow!(
            "{} cannot reissue this certificate (issued by {}); {console}`enc365-nginx renew \
             --force --site {}` replaces it with a new order and a new key",
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
    let reissued = order::reissue(&run, ca.as_ref(), &lineage.site, &lineage.names, order_id);
    block_on(reissued)?.map_err(Failure::failed)?;
    let action = Action::Order { renews: None };
    pipeline::execute(run, found, vec![Planned { site, action }])
}
