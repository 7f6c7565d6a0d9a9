//! `enc365-nginx discover`: list every server block and whether it needs a certificate.

use crate::cli::DiscoverArgs;
use crate::commands::Context;
use crate::exit::{CommandResult, ExitStatus};

/// Runs `discover`.
pub fn run(_args: &DiscoverArgs, _ctx: &Context) -> CommandResult {
    Ok(ExitStatus::Success)
}
