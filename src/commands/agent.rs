//! `enc365-nginx agent [--once]`: a cluster node's service (see [`crate::cluster::agent`]).

use crate::cli::AgentArgs;
use crate::commands::Context;
use crate::exit::CommandResult;

/// Runs the agent: one pass with `--once`, else until stopped.
pub fn run(args: &AgentArgs, ctx: &Context) -> CommandResult {
    crate::cluster::agent::run(ctx, args.once, args.http_port)
}
