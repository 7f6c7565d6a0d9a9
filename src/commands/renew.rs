//! `enc365-nginx renew`: every certificate we manage ([`Lineage`]) that is due — expiring within
//! `--days` (for an ACME CA offering renewal information, RFC 9773: past a point inside the
//! window it suggests, see [`pipeline::ari`]), its live files missing, or its site's names
//! changed since it was ordered — goes
//! through the shared pipeline ([`crate::pipeline`]) as a renewal of its order (Encryption365:
//! `renew=true`, `old_vendor_id`). Sites whose configuration no longer points at our live files
//! (a panel regenerated them) get the still-valid certificate put back, with no new order.
//!
//! Orders an earlier run left pending are resumed first. Nothing due: no output on stdout (one
//! line on stderr, none with `--quiet`), exit 0 — so a timer can run it twice a day.
//!
//! `--dry-run` renews what is due for real as far as it can without touching a live file
//! ([`crate::pipeline::dry_run`]): the full cycle against a test endpoint, up to the order
//! against a commercial one.
//!
//! A renewal writes new bytes to the same `live/<site>/` paths, so the nginx configuration does
//! not change; the install step reloads once and proves the new leaf by handshake, and on any
//! failure puts the old files back.

use anyhow::anyhow;

use crate::cli::RenewArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, Failure};
use crate::pipeline::{self, report, select};

pub use crate::pipeline::report::RenewPlan;
pub use crate::pipeline::select::{DueSite, NotDue};

/// Runs `renew`.
pub fn run(args: &RenewArgs, ctx: &Context) -> CommandResult {
    let pipeline_args = args.pipeline.to_auto();
    let (mut run, found) = pipeline::prepare(&pipeline_args, ctx, "renew")?;
    if !args.pipeline.dry_run {
        crate::lifecycle::adopt_installed(&run.state_dir, &run.env.config_dir, ctx.now())
            .map_err(Failure::failed)?;
    }
    let days = i64::from(args.days);
    let ari = pipeline::ari::windows(&run);
    let timing = (days, args.force);
    let chosen = select::renewals(&run, &found, &args.pipeline.sites, timing, &ari)?;
    if chosen.selection.is_empty() {
        let quiet = args.quiet;
        return report::print_renew_plan(&mut run, chosen, quiet, args.days);
    }
    for d in &chosen.due {
        run.say(format!("  {}: {} ({})", d.site, d.action, d.reason));
    }
    for (key, value) in [
        ("due", serde_json::to_value(&chosen.due)),
        ("not_due", serde_json::to_value(&chosen.not_due)),
    ] {
        run.report.extra_json.insert(
            key.to_string(),
            value.map_err(|e| Failure::failed(anyhow!(e)))?,
        );
    }
    if args.pipeline.dry_run {
        pipeline::dry_run::load_config(&mut run)?;
        return pipeline::dry_run::execute(run, found, chosen.selection);
    }
    pipeline::execute(run, found, chosen.selection)
}
