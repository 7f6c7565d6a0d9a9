//! `enc365-nginx cancel --site NAME | --order ID [--forget]`: cancels a pending order (the work
//! is [`crate::pipeline::cancel`]) and prints what was done.

use anyhow::anyhow;

use crate::cli::CancelArgs;
use crate::commands::{Context, block_on};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::pipeline::cancel::{self, CancelError};
use crate::publish::dns::DnsPublisher;
use crate::store::RunLock;

/// Runs `cancel`.
pub fn run(args: &CancelArgs, ctx: &Context) -> CommandResult {
    let which =
        cancel::which(args.site.as_deref(), args.order.as_deref()).map_err(Failure::usage)?;
    let state_dir = ctx.state_dir();
    let config = ctx.load_config()?;
    let _lock = RunLock::acquire(&state_dir)?;
    let record = cancel::find(&state_dir, &which).map_err(failure)?;
    let ca = ctx.certificate_authority(&config)?;
    let dns = DnsPublisher::new(config.dns.clone(), &[]).unwrap_or_default();
    let say = |m: String| eprintln!("{m}");
    let done = block_on(cancel::cancel(
        &state_dir,
        ca.as_ref(),
        &dns,
        record,
        args.forget,
        &say,
    ))?
    .map_err(failure)?;
    if ctx.global.json {
        let doc = serde_json::to_value(&done).map_err(|e| Failure::failed(anyhow!(e)))?;
        println!("{doc}");
    } else {
        let how = if done.cancelled_at_ca {
            "cancelled at the CA"
        } else {
            "dropped here (the CA was not asked)"
        };
        println!(
            "{}: order {} {how}; the next run orders anew.",
            done.site,
            done.order_id.as_deref().unwrap_or("(no id saved)")
        );
        for r in &done.pending_removal {
            println!("  DNS record still to remove (every later run tries): {r}");
        }
        if let Some(w) = &done.warning {
            println!("  Warning: {w}");
        }
    }
    if done.warning.is_some() || !done.pending_removal.is_empty() {
        return Ok(ExitStatus::Failed);
    }
    Ok(ExitStatus::Success)
}

fn failure(e: CancelError) -> Failure {
    match e {
        CancelError::Refused(m) => Failure::usage(anyhow!(m)),
        CancelError::Failed(m) => Failure::failed(anyhow!(m)),
    }
}
