//! `enc365-nginx account`: the account balance (Encryption365 `/account/details`), through the
//! configured provider's account API, and which account and API the config points at, as text or
//! one JSON object. No secret is ever shown.

use anyhow::anyhow;
use serde_json::json;

use crate::ca::CaError;
use crate::commands::{Context, block_on, print_json};
use crate::exit::{CommandResult, ExitStatus, Failure};

/// Runs `account`.
pub fn run(ctx: &Context) -> CommandResult {
    let config = ctx.load_config()?;
    let api = ctx.account_api(&config, None, true)?;
    let info = block_on(api.account())?.map_err(|e| match e {
        CaError::Unsupported(_) => Failure::usage(anyhow!(e)),
        e => Failure::failed(anyhow!(e).context("could not read the account details")),
    })?;
    let summary = config.provider_settings().summary();
    if ctx.global.json {
        let mut doc = json!({
            "provider": api.name(),
            "credit": info.balance,
            "currency": info.currency,
            "user": info.user,
            "key_type": config.key_type.as_str(),
        });
        for (_, key, value) in summary {
            doc[key] = value;
        }
        print_json(&doc);
        return Ok(ExitStatus::Success);
    }
    let currency = info.currency.as_deref().unwrap_or("");
    match info.balance {
        Some(balance) => println!("{:<11}{balance:.2} {currency}", "Balance:"),
        None => println!("{:<11}(not reported by the CA)", "Balance:"),
    }
    if let Some(user) = &info.user {
        // ACME reports its account URL and contact here.
        let label = if api.name() == "acme" {
            "Account:"
        } else {
            "User:"
        };
        println!("{label:<11}{user}");
    }
    for (label, _, value) in summary {
        let value = match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Null => "(not set)".to_string(),
            other => other.to_string(),
        };
        println!("{:<11}{value}", format!("{label}:"));
    }
    println!("{:<11}{}", "Key type:", config.key_type);
    Ok(ExitStatus::Success)
}
