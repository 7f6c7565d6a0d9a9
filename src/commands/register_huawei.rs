//! `enc365-nginx register --provider huawei-scm`: Huawei Cloud has no registration call — access
//! keys are made in the console — so `register` takes the access key from `--access-key`, reads
//! the secret key (standard input with `--secret-key-stdin`, else a no-echo prompt; never argv),
//! checks the pair with a signed list call, and only then saves both in `[huawei_scm]` with the
//! region and project id (the file written 0600). A refused pair leaves the file as it was.
//!
//! Not here: Encryption365's device registration (`super::register`), HowSSL's token
//! (`super::register_token`).

use std::io::{BufRead, IsTerminal};

use anyhow::anyhow;
use serde_json::json;

use crate::ca::factory;
use crate::ca::huawei_scm::DEFAULT_REGION;
use crate::cli::RegisterArgs;
use crate::commands::{Context, block_on, print_json};
use crate::config::{Config, HuaweiScmSettings, ProviderSettings};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::secret::Secret;

/// Checks and saves a Huawei Cloud access key pair. `config` is the file as read, `effective`
/// with overrides.
pub fn run(
    args: &RegisterArgs,
    ctx: &Context,
    mut config: Config,
    effective: &Config,
) -> CommandResult {
    let path = ctx.config_path();
    let ak = (args.access_key.as_deref().map(str::trim))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "--access-key AK is needed: make an access key in the Huawei Cloud console (My \
                 Credentials → Access Keys); the secret key is then read from standard input \
                 (--secret-key-stdin) or a prompt"
            ))
        })?
        .to_string();
    let sk = read_secret(args)?;
    let mut settings = effective.huawei_scm.clone().unwrap_or_default();
    settings.access_key = Some(ak.clone());
    settings.secret_key = Some(sk.clone());
    if let Some(region) = &args.region {
        settings.region = Some(region.trim().to_string());
    }
    if let Some(project) = &args.project_id {
        settings.project_id = Some(project.trim().to_string());
    }
    let api = factory::account_api(&ProviderSettings::HuaweiScm(settings.clone()), &path, true)
        .map_err(|e| Failure::usage(anyhow!(e)))?;
    let certificates = block_on(api.products())?.map_err(|e| {
        Failure::failed(anyhow!(e).context(format!(
            "Huawei Cloud did not accept access key {ak} (region {}); nothing was written",
            settings.region.as_deref().unwrap_or(DEFAULT_REGION)
        )))
    })?;
    let table = config
        .huawei_scm
        .get_or_insert_with(HuaweiScmSettings::default);
    table.access_key = Some(ak.clone());
    table.secret_key = Some(sk);
    table.region = settings.region.clone();
    table.project_id = settings.project_id.clone();
    config.save(&path).map_err(Failure::usage)?;
    let unused = (certificates.iter())
        .filter(|c| c.provider_fields.get("status").and_then(|s| s.as_str()) == Some("PAID"))
        .count();
    if ctx.global.json {
        print_json(&json!({
            "registered": true,
            "provider": "huawei-scm",
            "access_key": ak,
            "region": settings.region.as_deref().unwrap_or(DEFAULT_REGION),
            "project_id": settings.project_id,
            "certificates": certificates.len(),
            "unused_certificates": unused,
            "config": path.display().to_string(),
        }));
    } else {
        println!(
            "Huawei Cloud accepted access key {ak}: the account holds {} certificate(s), {unused} \
             unused.",
            certificates.len()
        );
        println!(
            "Saved it under [huawei_scm] in {} (mode 0600).",
            path.display()
        );
        if config.provider != crate::config::Provider::HuaweiScm {
            println!(
                "Set provider = \"huawei-scm\" in {} to apply for certificates through SCM.",
                path.display()
            );
        }
        println!(
            "Next: set applicant_name, applicant_phone and applicant_email under [huawei_scm]; \
             `enc365-nginx products` lists the certificates `auto` can apply to."
        );
    }
    Ok(ExitStatus::Success)
}

/// The secret key: the first line of stdin with `--secret-key-stdin`, else a no-echo prompt.
fn read_secret(args: &RegisterArgs) -> Result<Secret, Failure> {
    let secret = if args.secret_key_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            Failure::usage(anyhow!("could not read the secret key from stdin: {e}"))
        })?;
        line.trim().to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Huawei Cloud secret key (SK): ")
            .map_err(|e| Failure::usage(anyhow!("could not read the secret key: {e}")))?
            .trim()
            .to_string()
    } else {
        return Err(Failure::usage(anyhow!(
            "no secret key: pipe it in with --secret-key-stdin, or run in a terminal to be \
             prompted"
        )));
    };
    if secret.is_empty() {
        return Err(Failure::usage(anyhow!("the secret key is empty")));
    }
    Ok(Secret::new(secret))
}
