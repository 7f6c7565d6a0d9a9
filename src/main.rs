//! `enc365-nginx`: parse the command line, run the command, map the outcome to an exit code.

use clap::Parser;
use enc365_nginx::cli::Cli;
use enc365_nginx::commands;

fn main() {
    let cli = Cli::parse();
    commands::init_logging(cli.global.verbose);
    let code = match commands::run(cli) {
        Ok(status) => status.code(),
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.status.code()
        }
    };
    std::process::exit(code);
}
