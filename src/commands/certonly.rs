//! `enc365-nginx certonly --webroot DIR -d NAME…`: order a certificate validated through a
//! webroot and save its four files, without touching nginx (like `certbot certonly --webroot`).
//! The work is [`crate::pipeline::certonly`].

use crate::cli::CertonlyArgs;
use crate::commands::Context;
use crate::exit::CommandResult;

/// Runs `certonly`.
pub fn run(args: &CertonlyArgs, ctx: &Context) -> CommandResult {
    crate::pipeline::certonly::run(args, ctx)
}
