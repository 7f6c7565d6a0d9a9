//! `enc365-nginx generate man DIR` / `generate completions DIR` (hidden): the manual pages and
//! shell completions the package ships, written from the clap definitions by [`crate::generate`].

use clap::CommandFactory;

use crate::cli::{Cli, GenerateArgs, GenerateWhat};
use crate::exit::{CommandResult, ExitStatus, Failure};

/// Runs `generate`: writes the files and prints each path written on stdout.
pub fn run(args: &GenerateArgs) -> CommandResult {
    let written = match &args.what {
        GenerateWhat::Man { dir } => {
            crate::generate::man_pages_with(Cli::command(), dir, &crate::generate::extras())
        }
        GenerateWhat::Completions { dir } => crate::generate::completions(Cli::command(), dir),
    }
    .map_err(Failure::failed)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitStatus::Success)
}
