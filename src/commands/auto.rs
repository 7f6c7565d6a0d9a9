//! `enc365-nginx auto` (and `plan`, which is `auto --dry-run`): take every site that needs a
//! certificate to verified HTTPS, unattended, never leaving nginx worse than it was.
//!
//! The work is the shared pipeline ([`crate::pipeline`]): recover what a killed run left open,
//! check `nginx -t`, select the sites (`--site`, or every site that needs a certificate),
//! preflight each name, order, validate, install in one transaction with one reload, report.
//! This module only chooses between nothing to do, a dry run and a real run.

use crate::cli::AutoArgs;
use crate::commands::Context;
use crate::exit::CommandResult;
use crate::pipeline::{self, preview, report, select};

pub use crate::pipeline::{AutoJson, SiteResult};

/// Runs `auto` (or `plan` when `args.dry_run`).
pub fn run(args: &AutoArgs, ctx: &Context) -> CommandResult {
    let (mut run, found) = pipeline::prepare(args, ctx, "auto")?;
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
    if args.dry_run {
        pipeline::check_nginx(&mut run)?;
        let shown =
            preview::preview(&mut run, &found, &selected).map_err(crate::exit::Failure::failed)?;
        return report::print_preview(&run, &selected, shown);
    }
    let selection = select::plan_auto(&run, &found, selected)?;
    pipeline::execute(run, found, selection)
}
