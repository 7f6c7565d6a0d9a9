//! `enc365-nginx register --provider howssl`: HowSSL has no registration call — its API token is
//! issued on the HowSSL site — so `register` reads the token (standard input with `--token-stdin`,
//! else a no-echo prompt; never argv), checks it with the account call (`User/AccountInfo`), and
//! only then saves it in `[howssl]` (the file written 0600). A refused token leaves the file as it
//! was.
//!
//! Not here: Encryption365's device registration (`super::register`).

use std::io::{BufRead, IsTerminal};

use anyhow::anyhow;
use serde_json::json;

use crate::ca::factory;
use crate::cli::RegisterArgs;
use crate::commands::{Context, block_on, print_json};
use crate::config::{Config, HowSslSettings, ProviderSettings};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::secret::Secret;

/// Checks and saves a HowSSL token. `config` is the file as read, `effective` with overrides.
pub fn run(
    args: &RegisterArgs,
    ctx: &Context,
    mut config: Config,
    effective: &Config,
) -> CommandResult {
    let path = ctx.config_path();
    let token = read_token(args)?;
    let mut settings = effective.howssl.clone().unwrap_or_default();
    settings.token = Some(token.clone());
    let api = factory::account_api(&ProviderSettings::HowSsl(settings.clone()), &path, true)
        .map_err(|e| Failure::usage(anyhow!(e)))?;
    let info = block_on(api.account())?.map_err(|e| {
        Failure::failed(anyhow!(e).context(format!(
            "HowSSL did not accept the token at {}; check that it was copied whole from the \
             HowSSL site and that base_url under [howssl] is right. Nothing was written",
            settings.base_url()
        )))
    })?;
    let replaced = config
        .howssl
        .as_ref()
        .is_some_and(HowSslSettings::holds_credentials);
    let table = config.howssl.get_or_insert_with(HowSslSettings::default);
    table.token = Some(token);
    config.save(&path).map_err(Failure::usage)?;
    if ctx.global.json {
        print_json(&json!({
            "registered": true,
            "provider": "howssl",
            "user": info.user,
            "balance": info.balance,
            "config": path.display().to_string(),
            "replaced_token": replaced,
        }));
    } else {
        println!(
            "HowSSL accepted the token (account {}, balance {}).",
            info.user.as_deref().unwrap_or("?"),
            info.balance
                .map_or_else(|| "?".into(), |b| format!("{b:.2}"))
        );
        println!("Saved it under [howssl] in {} (mode 0600).", path.display());
        if config.provider != crate::config::Provider::HowSsl {
            println!(
                "Set provider = \"howssl\" in {} to order from HowSSL.",
                path.display()
            );
        }
        println!(
            "Next: `enc365-nginx products` to choose product_code and validity_period under \
             [howssl]."
        );
    }
    Ok(ExitStatus::Success)
}

/// The token: the first line of stdin with `--token-stdin`, else a no-echo prompt.
fn read_token(args: &RegisterArgs) -> Result<Secret, Failure> {
    let token = if args.token_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(anyhow!("could not read the token from stdin: {e}")))?;
        line.trim().to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("HowSSL API token: ")
            .map_err(|e| Failure::usage(anyhow!("could not read the token: {e}")))?
            .trim()
            .to_string()
    } else {
        return Err(Failure::usage(anyhow!(
            "no token: pipe the HowSSL token in with --token-stdin, or run in a terminal to be \
             prompted"
        )));
    };
    if token.is_empty() {
        return Err(Failure::usage(anyhow!("the HowSSL token is empty")));
    }
    Ok(Secret::new(token))
}
