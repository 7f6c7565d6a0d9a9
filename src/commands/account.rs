//! `enc365-nginx account`: the account balance (`/account/details`) and which device and API the
//! config points at, as text or one JSON object. The access token is never shown.

use anyhow::anyhow;
use serde_json::json;

use crate::commands::{Context, block_on, print_json};
use crate::exit::{CommandResult, ExitStatus, Failure};

/// Runs `account`.
pub fn run(ctx: &Context) -> CommandResult {
    let config = ctx.load_config()?;
    let client = ctx.enc365_client(&config)?;
    let details = block_on(client.account_details())?
        .map_err(|e| Failure::failed(anyhow!(e).context("could not read the account details")))?;
    let client_id = config.client_id.clone().unwrap_or_default();
    if ctx.global.json {
        print_json(&json!({
            "credit": details.credit,
            "client_id": client_id,
            "base_url": config.base_url,
            "pid": config.pid,
            "key_type": config.key_type.as_str(),
        }));
        return Ok(ExitStatus::Success);
    }
    match details.credit {
        Some(credit) => println!("Balance:   {credit:.2} CNY"),
        None => println!("Balance:   (not reported by the CA)"),
    }
    println!("Device:    {client_id}");
    println!("API:       {}", config.base_url);
    println!("Product:   {} (key type {})", config.pid, config.key_type);
    Ok(ExitStatus::Success)
}
