//! `enc365-nginx auto` (and `plan`, which shows what it would do): take every site that needs a
//! certificate to verified HTTPS, unattended, never leaving nginx worse than it was.
//! `auto --dry-run` tests the run for real without touching a live file
//! ([`crate::pipeline::dry_run`]).
//!
//! The work is the shared pipeline ([`crate::pipeline`]): recover what a killed run left open,
//! check `nginx -t`, select the sites (`--site`, or every site that needs a certificate),
//! preflight each name, order, validate, install in one transaction with one reload, report.
//! This module only chooses between nothing to do, a preview, a dry run and a real run.

use crate::cli::AutoArgs;
use crate::commands::Context;
use crate::exit::CommandResult;
use crate::pipeline::{self, preview, report, select};

pub use crate::pipeline::{AutoJson, SiteResult};

/// Runs `plan`: what `auto` would do, touching nothing and asking no CA.
pub fn plan(args: &AutoArgs, ctx: &Context) -> CommandResult {
    let mut args = args.clone();
    args.dry_run = true;
    run_as(&args, ctx, true)
}

/// Runs `auto` (`--dry-run`: the test run of [`pipeline::dry_run`]).
pub fn run(args: &AutoArgs, ctx: &Context) -> CommandResult {
    run_as(args, ctx, false)
}

/// `auto`, or with `preview` `plan`.
fn run_as(args: &AutoArgs, ctx: &Context, preview: bool) -> CommandResult {
    let (mut run, found) = pipeline::prepare(args, ctx, "auto")?;
    if args.dry_run && !preview {
        pipeline::dry_run::load_config(&mut run)?;
    }
    let selected = select::for_auto(&mut run, &found)?;
    if selected.is_empty() {
        // One verdict per run: the "nothing to do" line only when no site has a result of its
        // own (a failure or a skip, which `finish` prints as the verdict).
        if run.report.results.is_empty() {
            run.say(
                "Nothing to do: every site with certifiable names already has a good certificate.",
            );
        }
        return report::finish(&mut run);
    }
    if preview {
        pipeline::check_nginx(&mut run)?;
        let shown =
            preview::preview(&mut run, &found, &selected).map_err(crate::exit::Failure::failed)?;
        return report::print_preview(&run, &selected, shown);
    }
    let selection = select::plan_auto(&run, &found, selected)?;
    if args.dry_run {
        return pipeline::dry_run::execute(run, found, selection);
    }
    pipeline::execute(run, found, selection)
}
