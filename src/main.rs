//! `enc365-nginx`: parse the command line, run the command, map the outcome to an exit code.
//!
//! With `--json`, a command that fails before printing its own document prints
//! `{"error": MESSAGE, "exit_code": N}` on stdout (and the message on stderr), so stdout always
//! holds exactly one JSON object. A command line clap cannot parse is the one exception: it
//! prints clap's usage message on stderr and exits 2 with nothing on stdout.

use clap::Parser;
use clap::error::ErrorKind;
use enc365_nginx::cli::Cli;
use enc365_nginx::commands;

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| exit_with(e));
    let json = cli.global.json;
    commands::init_logging(cli.global.verbose);
    let code = match commands::run(cli) {
        Ok(status) => status.code(),
        Err(failure) => {
            eprintln!("error: {failure}");
            if json {
                commands::print_json(&serde_json::json!({
                    "error": failure.to_string(),
                    "exit_code": failure.status.code(),
                }));
            }
            failure.status.code()
        }
    };
    std::process::exit(code);
}

/// Prints clap's error (or help) and exits as clap would, except that the hidden `generate`
/// command is never offered as a suggestion for a mistyped command.
fn exit_with(e: clap::Error) -> ! {
    if e.kind() == ErrorKind::InvalidSubcommand {
        let text = e.render().to_string();
        if text.contains("'generate'") {
            let mut kept: Vec<&str> = Vec::new();
            for line in text.lines() {
                if line.contains("'generate'") {
                    // The tip and the blank line before it.
                    kept.pop_if(|l| l.is_empty());
                } else {
                    kept.push(line);
                }
            }
            eprintln!("{}", kept.join("\n"));
            std::process::exit(2);
        }
    }
    e.exit()
}
