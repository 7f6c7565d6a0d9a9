//! `enc365-nginx delete --site NAME`: a site's HTTPS lines out of its configuration, byte for
//! byte, then `nginx -t` and a reload (the work is [`crate::uninstall`]); `--remove-files` also
//! removes its certificate files. Like `certbot delete`, journaled: `rollback` undoes it.

use anyhow::anyhow;

use crate::cli::DeleteArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::store::RunLock;

/// Runs `delete`.
pub fn run(args: &DeleteArgs, ctx: &Context) -> CommandResult {
    let config =
        crate::config::Config::load_or_default(&ctx.config_path()).map_err(Failure::usage)?;
    let env = ctx.environment(&config)?;
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
