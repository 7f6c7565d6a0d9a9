//! `enc365-nginx register`: create a device account through the provider's account API
//! (Encryption365 `/client/create`) and save its `client_id`/`access_token` in the provider's table
//! of the config file (created 0600 if absent). Flat first-release keys are moved into the table
//! as the file is rewritten.
//!
//! The password comes from `ENC365_PASSWORD`, from standard input with `--password-stdin`, or from
//! a prompt without echo — never from a flag (argv is visible to every user of the host). It is sent
//! once and not stored. Nothing is written unless the CA accepted the registration. The base URL
//! registered against (including an `ENC365_BASE_URL` override) is saved with the token, since the
//! token is valid only there.

use std::io::{BufRead, IsTerminal};

use anyhow::anyhow;
use serde_json::json;

use crate::ca::CaError;
use crate::ca::account::RegisterRequest;
use crate::cli::RegisterArgs;
use crate::commands::{Context, block_on, print_json};
use crate::config::Config;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::secret::Secret;

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = crate::secret::SECRET_ENV_VARS[0];

/// Runs `register`.
pub fn run(args: &RegisterArgs, ctx: &Context) -> CommandResult {
    let path = ctx.config_path();
    let mut config = Config::load_or_default(&path).map_err(Failure::usage)?;
    let migrated = crate::config::flat_keys(&path);
    let mut effective = config.clone();
    effective.apply_env(|k| std::env::var(k).ok());
    if let Some(provider) = args.provider {
        effective.provider = provider;
    }
    effective.apply_server(ctx.global.server.as_deref());
    if effective.provider == crate::config::Provider::HowSsl {
        ctx.check_provider(Some(effective.provider))?;
        return super::register_token::run(args, ctx, config, &effective);
    }
    if effective.provider == crate::config::Provider::HuaweiScm {
        ctx.check_provider(Some(effective.provider))?;
        return super::register_huawei::run(args, ctx, config, &effective);
    }
    if effective.provider == crate::config::Provider::Acme {
        return super::register_acme::run(args, ctx, config, &effective);
    }
    if args.username.trim().is_empty() {
        return Err(Failure::usage(anyhow!(
            "--username must be your account's user name (TrustOcean: the account e-mail)"
        )));
    }
    let api = ctx.account_api(&effective, None, false)?;
    let password = read_password(args)?;
    let servername = args.servername.clone().unwrap_or_else(host_name);
    let request = RegisterRequest {
        username: args.username.trim().to_string(),
        password,
        servername: servername.clone(),
    };
    let settings = effective.provider_settings();
    let base_url = settings
        .summary()
        .iter()
        .find(|(_, key, _)| *key == "base_url")
        .and_then(|(_, _, v)| v.as_str().map(str::to_string))
        .unwrap_or_else(|| api.name().to_string());
    let registration = block_on(api.register(&request))?.map_err(|e| {
        let verb = match e {
            CaError::Api { .. } => format!("{} refused to register", api.name()),
            _ => "could not register".to_string(),
        };
        let what = format!(
            "{verb} this server (device label {servername:?}) for the account {:?} at {base_url}",
            request.username
        );
        match e {
            CaError::Unsupported(_) => Failure::usage(anyhow!(e)),
            e => Failure::failed(anyhow!("{what}: {e}; {}", register_hint(&e, api.name()))),
        }
    })?;
    let replaced = config.saved_account(effective.provider);
    let client_id = registration.account_id.clone();
    config
        .store_registration(&settings, registration.account_id, registration.secret)
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "{} gave no credentials to save; nothing was written",
                api.name()
            ))
        })?;
    config.save(&path).map_err(Failure::usage)?;
    if ctx.global.json {
        print_json(&json!({
            "registered": true,
            "provider": api.name(),
            "client_id": client_id,
            "servername": servername,
            "status": registration.status,
            "ip_address": registration.ip_address,
            "config": path.display().to_string(),
            "replaced_client_id": replaced,
            "migrated_keys": migrated,
        }));
    } else {
        println!(
            "Registered {servername:?} as device {client_id} (seen from {}).",
            registration
                .ip_address
                .as_deref()
                .unwrap_or("an unknown address")
        );
        println!("Saved the device token in {} (mode 0600).", path.display());
        if !migrated.is_empty() {
            println!(
                "Moved the top-level keys {} into [{}].",
                migrated.join(", "),
                effective.provider.table()
            );
        }
        if let Some(old) = &replaced {
            println!(
                "It replaces device {old}; revoke that one in the TrustOcean console if it is no \
                 longer used."
            );
        }
        println!("Next: `enc365-nginx products` to choose a product.");
    }
    Ok(ExitStatus::Success)
}

/// What to tell after a failed registration, by what actually happened: only a refusal by the CA
/// is about the user name and password.
fn register_hint(error: &CaError, ca: &str) -> String {
    match error {
        CaError::Api { .. } => {
            format!("{ca} refused it; check the user name and password (nothing was saved)")
        }
        CaError::Unreachable { .. } => format!(
            "{ca} could not be reached, so nothing was sent and nothing was saved; check the \
             network and the base URL, then run register again"
        ),
        CaError::Transport { .. } => format!(
            "{ca} gave no usable answer (an HTTP error status, a timeout or a broken connection); \
             nothing was saved. The CA may have registered the device anyway: run register again \
             later, and revoke an unused device in the TrustOcean console"
        ),
        CaError::Malformed { .. } => format!(
            "the answer was not {ca}'s API (an HTML error page or a cut-off answer: a proxy, a \
             maintenance page or a wrong base URL?); nothing was saved. The CA may have \
             registered the device anyway: run register again later, and revoke an unused \
             device in the TrustOcean console"
        ),
        CaError::Unsupported(_) | CaError::Invalid(_) => {
            "nothing was sent and nothing was saved".to_string()
        }
    }
}

/// The password: `ENC365_PASSWORD`, else stdin with `--password-stdin`, else a no-echo prompt.
fn read_password(args: &RegisterArgs) -> Result<Secret, Failure> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(anyhow!("could not read the password from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if let Ok(value) = std::env::var(PASSWORD_ENV) {
        value
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {}: ", args.username.trim()))
            .map_err(|e| Failure::usage(anyhow!("could not read the password: {e}")))?
    } else {
        return Err(Failure::usage(anyhow!(
            "no password: pass --password-stdin and pipe it in, set {PASSWORD_ENV}, or run in a \
             terminal to be prompted"
        )));
    };
    if password.is_empty() {
        return Err(Failure::usage(anyhow!("the password is empty")));
    }
    Ok(Secret::new(password))
}

/// This host's name, for the device label.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "nginx".to_string())
}
