//! `enc365-nginx renew`: every certificate we manage ([`Lineage`]) that is due — expiring within
//! `--days`, its live files missing, or its site's names changed since it was ordered — goes
//! through the shared pipeline ([`crate::pipeline`]) as a renewal of its order (Encryption365:
//! `renew=true`, `old_vendor_id`). Sites whose configuration no longer points at our live files
//! (a panel regenerated them) get the still-valid certificate put back, with no new order.
//!
//! Orders an earlier run left pending are resumed first. Nothing due: no output on stdout (one
//! line on stderr, none with `--quiet`), exit 0 — so a timer can run it twice a day.
//!
//! A renewal writes new bytes to the same `live/<site>/` paths, so the nginx configuration does
//! not change; the install step reloads once and proves the new leaf by handshake, and on any
//! failure puts the old files back.

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::RenewArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::pipeline::{self, Run, SiteResult, select};

pub use crate::pipeline::select::{DueSite, NotDue};

/// The `renew --json` document when nothing is done (nothing due, or `--dry-run`). When
/// something is done it is `auto`'s document with `due` and `not_due` added, so both shapes share
/// `dry_run`, `due`, `sites`, `reloads` and `not_due`.
#[derive(Debug, Clone, Serialize)]
pub struct RenewPlan {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Sites that would be (or were) worked on: `renew`, `resume` or `reinstall`, with why.
    pub due: Vec<DueSite>,
    /// The per-site results (empty when nothing was done).
    pub sites: Vec<SiteResult>,
    /// How many times nginx was reloaded.
    pub reloads: u32,
    /// Managed certificates that are not due.
    pub not_due: Vec<NotDue>,
}

/// Runs `renew`.
pub fn run(args: &RenewArgs, ctx: &Context) -> CommandResult {
    if args.pipeline.one_certificate {
        return Err(Failure::usage(anyhow!(
            "--one-certificate is for `auto`; `renew` keeps each certificate's names"
        )));
    }
    let (mut run, found) = pipeline::prepare(&args.pipeline, ctx, "renew")?;
    if !args.pipeline.dry_run {
        crate::lifecycle::adopt_installed(&run.state_dir, &run.env.config_dir, ctx.now())
            .map_err(Failure::failed)?;
    }
    let days = i64::from(args.days);
    let chosen = select::renewals(&run, &found, &args.pipeline.sites, days, args.force)?;
    if chosen.selection.is_empty() || args.pipeline.dry_run {
        return report_plan(&run, args, chosen.due, chosen.not_due);
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
    pipeline::execute(run, found, chosen.selection)
}

/// Nothing due, or `--dry-run`: says what is (or would be) done, changes nothing.
fn report_plan(
    run: &Run,
    args: &RenewArgs,
    due: Vec<DueSite>,
    not_due: Vec<NotDue>,
) -> CommandResult {
    if run.ctx.global.json {
        let doc = RenewPlan {
            dry_run: args.pipeline.dry_run,
            due,
            sites: Vec::new(),
            reloads: 0,
            not_due,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::failed(anyhow!(e)))?
        );
        return Ok(ExitStatus::Success);
    }
    if !due.is_empty() {
        for d in &due {
            println!("{:<32} would {}: {}", d.site, d.action, d.reason);
        }
        return Ok(ExitStatus::Success);
    }
    if !args.quiet {
        let next = not_due
            .iter()
            .filter(|n| !n.orphaned)
            .min_by_key(|n| n.days_left);
        match next {
            Some(n) => run.say(format!(
                "Nothing is due for renewal (within {} days); the next is {} in {} days.",
                args.days, n.site, n.days_left
            )),
            None => run.say("No managed certificate is due; `enc365-nginx auto` adds sites."),
        }
        for n in not_due.iter().filter(|n| n.orphaned) {
            run.say(format!("  {}: {}", n.site, n.reason));
        }
    }
    Ok(ExitStatus::Success)
}
