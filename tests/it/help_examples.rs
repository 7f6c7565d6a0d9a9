//! `--help` of the tool and of every visible subcommand ends with examples (they also become the
//! EXAMPLES section of each manual page).

use clap::CommandFactory;
use enc365_nginx::cli::Cli;

#[test]
fn every_command_help_shows_examples() {
    let cli = Cli::command();
    let mut missing = Vec::new();
    let top = cli
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    if !top.starts_with("Examples") {
        missing.push("enc365-nginx".to_string());
    }
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let help = sub
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        let example = format!("enc365-nginx {}", sub.get_name());
        if !help.starts_with("Examples") || !help.contains(&example) {
            missing.push(example);
        }
    }
    assert!(
        missing.is_empty(),
        "add an after_help starting \"Examples:\" with a `COMMAND` line to: {missing:?}"
    );
}
