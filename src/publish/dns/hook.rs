//! The hook publisher: a user command run without a shell, like certbot's manual hooks, with
//! `ENC365_DNS_ACTION` (`add`/`remove`), `ENC365_DNS_NAME`, `ENC365_DNS_TYPE`,
//! `ENC365_DNS_VALUE` and `ENC365_DNS_ZONE` in its environment. A non-zero exit fails the name,
//! quoting what the hook wrote to stderr.

use std::process::Command;

use anyhow::{anyhow, bail};

use super::DnsRecord;

/// Runs `command` (program then arguments, split on whitespace) for one record.
pub fn run(command: &str, action: &str, zone: &str, record: &DnsRecord) -> anyhow::Result<()> {
    let mut words = command.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| anyhow!("[dns] hook is empty; give the path of the hook command"))?;
    let mut cmd = Command::new(program);
    cmd.args(words);
    crate::secret::scrub_env(&mut cmd);
    cmd.env("ENC365_DNS_ACTION", action)
        .env("ENC365_DNS_NAME", &record.owner)
        .env("ENC365_DNS_TYPE", &record.record_type)
        .env("ENC365_DNS_VALUE", &record.value)
        .env("ENC365_DNS_ZONE", zone);
    // Its own process group, killed whole at the time limit, like every hook.
    let out = crate::nginx::process::run_bounded(&mut cmd, crate::hooks::HOOK_TIMEOUT)
        .map_err(|e| anyhow!("could not run the DNS hook {program}: {e}"))?;
    let Some(status) = out.status else {
        bail!(
            "the DNS hook {program} did not finish within {} s and was stopped (to {action} \
             {record})",
            crate::hooks::HOOK_TIMEOUT.as_secs()
        );
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = status
            .code()
            .map_or("a signal".to_string(), |c| format!("status {c}"));
        bail!(
            "the DNS hook {program} failed to {action} {record} ({code}): {:?}",
            stderr.trim()
        );
    }
    Ok(())
}
