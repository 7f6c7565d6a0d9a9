//! `enc365-nginx register --provider acme --email ADDR --agree-tos`: create (or reuse) the ACME
//! account for the configured directory and keep its key under the config directory (0600); the
//! contact and, with `--server`, the directory are saved in `[acme]`.
//!
//! Refuses without `--agree-tos`, naming the CA's terms. External account binding (ZeroSSL):
//! `--eab-kid KID` with the HMAC key on standard input — never a flag, never stored.

use std::io::BufRead;

use anyhow::anyhow;
use serde_json::json;

use crate::ca::CaError;
use crate::ca::acme::{self, AcmeRegistration};
use crate::cli::RegisterArgs;
use crate::commands::{Context, block_on, print_json};
use crate::config::{AcmeSettings, Config, Provider};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::secret::Secret;

/// Runs `register` for an ACME CA. `config` is the file as read; `effective` has the
/// environment and `--server` applied.
pub fn run(
    args: &RegisterArgs,
    ctx: &Context,
    mut config: Config,
    effective: &Config,
) -> CommandResult {
    let path = ctx.config_path();
    let email = (args.email.as_deref().map(str::trim))
        .filter(|e| e.contains('@'))
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "ACME registration needs --email ADDR (the CA's expiry and policy mail goes there)"
            ))
        })?;
    let settings = effective.acme.clone().unwrap_or_default();
    let client = crate::ca::factory::acme(&settings, &path, false)
        .map_err(|e| Failure::usage(anyhow!(e)))?;
    let eab = match &args.eab_kid {
        Some(kid) => Some((kid.clone(), read_hmac_key()?)),
        None => settings
            .eab
            .as_ref()
            .map(|e| (e.kid.clone(), e.hmac_key.clone())),
    };
    let request = AcmeRegistration {
        email: email.to_string(),
        agree_tos: args.agree_tos,
        eab,
    };
    let saved = block_on(acme::register(&client, &request))?.map_err(|e| match e {
        CaError::Invalid(_) => Failure::usage(anyhow!(e)),
        e => Failure::failed(anyhow!(e).context(format!(
            "could not register with {}",
            client.directory_url()
        ))),
    })?;
    let table = config.acme.get_or_insert_with(AcmeSettings::default);
    table.contact = Some(vec![format!("mailto:{email}")]);
    if let Some(server) = &ctx.global.server {
        table.directory = Some(server.clone());
    }
    if let Some(bundle) = &settings.ca_bundle {
        table.ca_bundle.get_or_insert(bundle.clone());
    }
    config.provider = Provider::Acme;
    config.save(&path).map_err(Failure::usage)?;
    if ctx.global.json {
        print_json(&json!({
            "registered": true,
            "provider": "acme",
            "created": saved.created,
            "account_url": saved.account_url,
            "directory": client.directory_url(),
            "account_key": saved.file.display().to_string(),
            "contact": format!("mailto:{email}"),
            "terms_of_service": saved.terms,
            "config": path.display().to_string(),
        }));
    } else {
        let verb = if saved.created {
            "Registered"
        } else {
            "Reusing"
        };
        println!(
            "{verb} ACME account {} at {}.",
            saved.account_url,
            client.directory_url()
        );
        println!("Account key: {} (mode 0600).", saved.file.display());
        println!(
            "Saved provider = \"acme\" and the contact in {}.",
            path.display()
        );
        println!("Next: `enc365-nginx plan`, then `enc365-nginx auto`.");
    }
    Ok(ExitStatus::Success)
}

/// The EAB HMAC key: the first line of standard input.
fn read_hmac_key() -> Result<Secret, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(anyhow!("could not read the EAB HMAC key from stdin: {e}")))?;
    let key = line.trim().to_string();
    if key.is_empty() {
        return Err(Failure::usage(anyhow!(
            "--eab-kid needs the HMAC key on standard input: printf '%s' \"$HMAC\" | enc365-nginx register …"
        )));
    }
    Ok(Secret::new(key))
}
