//! `enc365-nginx revoke --site NAME [--yes]`: revokes a managed certificate at the CA, where the
//! provider has a revoke call, after asking (unless `--yes`).
//!
//! Encryption365 documents none: its client calls the guessed `/cert/revoke` only with
//! `enable_unconfirmed_endpoints = true` in the config, and otherwise this says so and changes
//! nothing. A revoked certificate stays installed (nginx keeps serving it) and is marked in its
//! lineage, which makes it due: the next `renew` replaces it with a new order.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::anyhow;

use crate::ca::OrderId;
use crate::cli::RevokeArgs;
use crate::commands::{Context, block_on};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::lifecycle::Lineage;
use crate::store::RunLock;

/// Runs `revoke`.
pub fn run(args: &RevokeArgs, ctx: &Context) -> CommandResult {
    let state_dir = ctx.state_dir();
    let config = ctx.load_config()?;
    let _lock = RunLock::acquire(&state_dir)?;
    let mut lineage = Lineage::all(&state_dir)
        .map_err(Failure::failed)?
        .into_iter()
        .find(|l| l.site == args.site || l.names.contains(&args.site))
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "{} has no certificate managed here (`enc365-nginx status` lists them)",
                args.site
            ))
        })?;
    if lineage.revoked_at.is_some() {
        return Err(Failure::usage(anyhow!(
            "the certificate of {} was already revoked; `enc365-nginx renew --site {}` replaces it",
            lineage.site,
            lineage.site
        )));
    }
    let order_id = lineage.order_id.clone().ok_or_else(|| {
        Failure::usage(anyhow!(
            "{}: the order id is unknown, so it cannot be revoked from here; use the CA console",
            lineage.site
        ))
    })?;
    let ca = ctx.certificate_authority(&config)?;
    if !ca.capabilities().revoke && ca.name() != "encryption365" {
        // The provider's own words: which console, and the order id (no request is sent).
        let id = crate::ca::OrderId(order_id.clone());
        let said = block_on(ca.revoke(&id))?.err();
        return Err(Failure::usage(anyhow!(
            "{}; nothing was revoked",
            said.map_or_else(|| "revoke is not supported".to_string(), |e| e.to_string())
        )));
    }
    if !ca.capabilities().revoke {
        return Err(Failure::usage(anyhow!(
            "{} documents no revoke call, so nothing was revoked. Revoke order {order_id} in the \
             provider's console, or set enable_unconfirmed_endpoints = true under \
             [encryption365] in {} to try the guessed /cert/revoke endpoint",
            ca.name(),
            ctx.config_path().display()
        )));
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(anyhow!(
                "revoking cannot be undone; pass --yes to revoke without being asked"
            )));
        }
        eprint!(
            "Revoke the certificate of {} (order {order_id}, {})? This cannot be undone, and \
             nginx keeps serving it until `renew` replaces it. Type yes to revoke: ",
            lineage.site,
            lineage.names.join(", ")
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            eprintln!("Not revoked.");
            return Ok(ExitStatus::Failed);
        }
    }
    block_on(ca.revoke_with_reason(&OrderId(order_id.clone()), args.reason.code()))?.map_err(
        |e| {
            Failure::failed(anyhow!(
                "{e}; nothing was revoked (check the provider's console)"
            ))
        },
    )?;
    lineage.revoked_at = Some(ctx.now());
    lineage.save(&state_dir).map_err(Failure::failed)?;
    if ctx.global.json {
        println!(
            "{}",
            serde_json::json!({
                "site": lineage.site,
                "order_id": order_id,
                "revoked": true,
            })
        );
    } else {
        println!(
            "Revoked order {order_id} ({}). nginx still serves it: run `enc365-nginx renew \
             --site {}` to replace it now (the timer's next renew does it too).",
            lineage.names.join(", "),
            lineage.site
        );
    }
    Ok(ExitStatus::Success)
}
