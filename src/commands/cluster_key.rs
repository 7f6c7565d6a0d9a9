//! `enc365-nginx cluster-key --generate`: writes a new cluster key (0600) to `[cluster]
//! key_file`, never over an existing one. Without `--generate`, checks the key file is there
//! and readable. The key itself is never printed.

use crate::cli::ClusterKeyArgs;
use crate::cluster::seal;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus, Failure};

/// Generates or checks the cluster key file.
pub fn run(args: &ClusterKeyArgs, ctx: &Context) -> CommandResult {
    let config =
        crate::config::Config::load_or_default(&ctx.config_path()).map_err(Failure::usage)?;
    let settings = config.cluster.clone().unwrap_or_default();
    let config_dir = ctx.config_dir();
    let path = config_dir.join(settings.key_file.unwrap_or_else(|| "cluster.key".into()));
    if args.generate {
        seal::generate_file(&path).map_err(Failure::usage)?;
        report(ctx, &path, "written");
        eprintln!(
            "Copy it (mode 0600) to the same path on every other node of the cluster; keep a \
             copy offline: without it the sealed keys in etcd cannot be read."
        );
    } else {
        seal::ClusterKey::load(&path).map_err(Failure::usage)?;
        report(ctx, &path, "present");
    }
    Ok(ExitStatus::Success)
}

fn report(ctx: &Context, path: &std::path::Path, state: &str) {
    if ctx.global.json {
        crate::commands::print_json(&serde_json::json!({
            "key_file": path.display().to_string(),
            "state": state,
        }));
    } else {
        println!("cluster key {state}: {}", path.display());
    }
}
