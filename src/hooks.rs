//! User hooks, as certbot has them: a pre-hook before the install step, a post-hook after it (both
//! once per run, and only in runs that install something), and a deploy hook per certificate
//! installed, told which one through its environment:
//!
//! | variable | value |
//! |---|---|
//! | `ENC365_LINEAGE` | the site's live directory (`<config-dir>/live/<site>`) |
//! | `ENC365_DOMAINS` | the names the certificate covers, separated by one space |
//! | `ENC365_CERT` | the chain file nginx serves (`fullchain.pem`) |
//! | `ENC365_KEY` | the private key file (`privkey.pem`) |
//!
//! The post-hook gets `ENC365_LINEAGES`: every live directory installed in the run, space-separated.
//!
//! A command is split into words like `reload_command` and run directly; one holding shell syntax
//! (`; & | < > $ \` ( ) * ? ~` or a newline) runs through `sh -c`. Its output goes to our stderr,
//! never stdout (which belongs to `--json`). A hook that fails or runs longer than
//! [`HOOK_TIMEOUT`] is reported; it never undoes an install that was proven good. It runs in a
//! process group of its own, killed whole at the time limit; a process it leaves running (a
//! daemon it started) is not waited for.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::nginx::control::parse_reload_command;

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// The three hook commands of a run (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Runs once before the install step.
    pub pre: Option<String>,
    /// Runs once after the install step.
    pub post: Option<String>,
    /// Runs once per certificate installed.
    pub deploy: Option<String>,
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Once before the install step.
    Pre,
    /// Once after the install step.
    Post,
    /// Once per certificate installed.
    Deploy,
}

impl HookKind {
    /// The name used in options and messages (`pre` for `--pre-hook`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Pre => "pre",
            HookKind::Post => "post",
            HookKind::Deploy => "deploy",
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Hooks {
    /// The command configured for `kind`, if any (blank counts as none).
    pub fn command(&self, kind: HookKind) -> Option<&str> {
        let command = match kind {
            HookKind::Pre => &self.pre,
            HookKind::Post => &self.post,
            HookKind::Deploy => &self.deploy,
        };
        command.as_deref().filter(|c| !c.trim().is_empty())
    }
}

/// What one hook run did, as `--json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookRun {
    /// `pre`, `post` or `deploy`.
    pub hook: HookKind,
    /// The site, for a deploy hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Whether it exited 0.
    pub ok: bool,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// What went wrong, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// True when `command` needs a shell to mean what it says.
pub fn needs_shell(command: &str) -> bool {
    command.chars().any(|c| {
        matches!(
            c,
            ';' | '&' | '|' | '<' | '>' | '$' | '`' | '(' | ')' | '*' | '?' | '~' | '\n'
        )
    })
}

/// The argv a hook command runs as.
pub fn argv(command: &str) -> Result<Vec<String>, String> {
    if needs_shell(command) {
        return Ok(vec!["sh".into(), "-c".into(), command.to_string()]);
    }
    let argv = parse_reload_command(command).map_err(|e| e.to_string())?;
    if argv.is_empty() {
        return Err("the hook command is empty".into());
    }
    Ok(argv)
}

/// Runs one hook with `env` added to our environment; output is copied to stderr.
pub fn run(hook: HookKind, site: Option<&str>, command: &str, env: &[(&str, String)]) -> HookRun {
    let mut result = HookRun {
        hook,
        site: site.map(str::to_string),
        ok: false,
        exit_code: None,
        error: None,
    };
    let argv = match argv(command) {
        Ok(a) => a,
        Err(e) => {
            result.error = Some(format!("--{hook}-hook cannot be run: {e}"));
            return result;
        }
    };
    let mut cmd = Command::new(&argv[0]);
    crate::secret::scrub_env(&mut cmd).args(&argv[1..]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Its own process group: at the time limit the hook and everything it started are killed,
    // and a process it leaves behind holding its output cannot hold the run.
    let done = match crate::nginx::process::run_bounded(&mut cmd, HOOK_TIMEOUT) {
        Ok(done) => done,
        Err(e) => {
            result.error = Some(format!(
                "--{hook}-hook: could not start {:?}: {e}; check the command and its PATH",
                argv[0]
            ));
            return result;
        }
    };
    let status = done.status;
    let mut output = done.stdout;
    output.extend_from_slice(&done.stderr);
    let text = String::from_utf8_lossy(&output);
    for line in text.lines() {
        eprintln!("  {hook}-hook: {line}");
    }
    match status {
        Some(status) if status.success() => {
            result.ok = true;
            result.exit_code = status.code();
        }
        Some(status) => {
            result.exit_code = status.code();
            result.error = Some(format!(
                "--{hook}-hook exited with {}; the installed certificates stay in place",
                status
                    .code()
                    .map_or("a signal".to_string(), |c| format!("status {c}"))
            ));
        }
        None => {
            result.error = Some(format!(
                "--{hook}-hook ran longer than {} s and was stopped; the installed certificates \
                 stay in place",
                HOOK_TIMEOUT.as_secs()
            ));
        }
    }
    result
}

/// The environment of a deploy hook for a site installed at `live_dir`.
pub fn deploy_env(live_dir: &Path, names: &[String]) -> Vec<(&'static str, String)> {
    vec![
        ("ENC365_LINEAGE", live_dir.display().to_string()),
        ("ENC365_DOMAINS", names.join(" ")),
        (
            "ENC365_CERT",
            live_dir.join(crate::paths::FULLCHAIN).display().to_string(),
        ),
        (
            "ENC365_KEY",
            live_dir.join(crate::paths::PRIVKEY).display().to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands_are_split_and_shell_syntax_goes_to_sh() {
        assert_eq!(
            argv("systemctl restart 'my app'").unwrap(),
            ["systemctl", "restart", "my app"]
        );
        assert_eq!(
            argv("echo $ENC365_DOMAINS > /tmp/x").unwrap(),
            ["sh", "-c", "echo $ENC365_DOMAINS > /tmp/x"]
        );
        assert!(argv("   ").is_err());
    }

    #[test]
    fn a_failing_hook_is_reported_with_its_status() {
        let ok = run(HookKind::Post, None, "true", &[]);
        assert!(ok.ok, "{ok:?}");
        let bad = run(HookKind::Post, None, "sh -c 'exit 7'", &[]);
        assert!(!bad.ok);
        assert_eq!(bad.exit_code, Some(7));
        assert!(bad.error.unwrap().contains("status 7"));
        let missing = run(HookKind::Deploy, Some("a.test"), "/nonexistent/hook", &[]);
        assert!(missing.error.unwrap().contains("could not start"));
    }

    #[test]
    fn a_hook_leaving_a_process_behind_does_not_hold_the_run() {
        let started = std::time::Instant::now();
        let done = run(HookKind::Deploy, Some("a.test"), "sleep 25 &", &[]);
        assert!(done.ok, "{done:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hook held the run for {:?}",
            started.elapsed()
        );
    }
}
