//! `enc365-nginx delete --site NAME`: a site's HTTPS lines out of its configuration, byte for
//! byte, then `nginx -t` and a reload (the work is [`crate::uninstall`]); `--remove-files` also
//! removes its certificate files. Like `certbot delete`, journaled: `rollback` undoes it.

use std::time::Duration;

use anyhow::anyhow;

use crate::cli::DeleteArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::install::Environment;
use crate::nginx::control::parse_reload_command;
use crate::store::RunLock;

/// Runs `delete`.
pub fn run(args: &DeleteArgs, ctx: &Context) -> CommandResult {
    let env = environment(ctx)?;
    let _lock = RunLock::acquire(&env.state_dir)?;
    let found = crate::discovery::discover(&env.paths.conf, ctx.now(), 30)
        .map_err(|e| Failure::usage(anyhow!("{e}\nNothing was changed.")))?;
    let done = crate::uninstall::delete(&env, &found, &args.site, args.remove_files)?;
    if ctx.global.json {
        let doc = serde_json::to_value(&done).map_err(|e| Failure::failed(anyhow!(e)))?;
        crate::commands::print_json(&doc);
        return Ok(ExitStatus::Success);
    }
    println!(
        "{}: {} line(s) of ours taken out of {} file(s){}.",
        done.site,
        done.lines_removed,
        done.files.len(),
        if done.reloaded {
            ", nginx reloaded"
        } else {
            ""
        }
    );
    for f in &done.files {
        println!("    {}", f.display());
    }
    if done.removed_files.is_empty() {
        println!("The certificate files stay in {}.", done.live_dir.display());
    } else {
        println!(
            "Removed the certificate files in {}.",
            done.live_dir.display()
        );
    }
    println!("To undo: enc365-nginx rollback {}", done.transaction);
    Ok(ExitStatus::Success)
}

/// Where nginx and our files are, and how to reload, from the global options and the config.
pub fn environment(ctx: &Context) -> Result<Environment, Failure> {
    let config =
        crate::config::Config::load_or_default(&ctx.config_path()).map_err(Failure::usage)?;
    let paths = ctx.nginx_paths()?;
    let reload_argv = parse_reload_command(&config.reload_command).map_err(Failure::usage)?;
    let pid_file = ctx.pid_file(&paths);
    Ok(Environment {
        nginx: ctx.nginx_binary(),
        reload: ctx.reload_method(&reload_argv, &pid_file),
        paths,
        pid_file,
        config_dir: ctx.config_dir(),
        state_dir: ctx.state_dir(),
        https_port: ctx.global.https_port.unwrap_or(config.https_port),
        verify_timeout: Duration::from_secs(15),
        redirect: false,
        hsts: false,
    })
}
