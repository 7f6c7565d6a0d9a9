//! Manual pages and shell completions, generated from the clap definitions so they never drift from
//! `--help`.
//!
//! [`man_pages`] writes one roff page per command and visible subcommand (`enc365-nginx.1`,
//! `enc365-nginx-discover.1`, …) with `clap_mangen`; [`completions`] writes the bash, zsh and fish
//! scripts with `clap_complete`, under the names each shell's completion directory expects. Both
//! binaries of the package use it: the package build (`packaging/build-deb.sh`) calls it through
//! the hidden `enc365-nginx generate` subcommand and `enc365-sim --generate-docs`.
//!
//! Not here: where the files are installed (that is the package's business) or compressing them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap_complete::Shell;

/// The manual section the pages belong to (user commands).
const SECTION: &str = "1";

/// The package both binaries ship in, named as the source of every page.
const PACKAGE: &str = "enc365-nginx";

/// Sections every page gets beyond what clap knows: each a list of (term, description).
#[derive(Debug, Clone, Default)]
pub struct ManExtras {
    /// Environment variables no option reads (the options' own `env` are listed too).
    pub environment: Vec<(String, String)>,
    /// The FILES section.
    pub files: Vec<(String, String)>,
    /// The EXIT STATUS section.
    pub exit_status: Vec<(String, String)>,
}

/// Writes a manual page for `cmd` and for each of its visible subcommands (recursively) into
/// `dir`, creating it if needed. Returns the files written, in the order written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    man_pages_with(cmd, dir, &ManExtras::default())
}

/// [`man_pages`] with ENVIRONMENT, FILES and EXIT STATUS sections from `extras` on every page.
pub fn man_pages_with(cmd: clap::Command, dir: &Path, extras: &ManExtras) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_man(&cmd, dir, extras, &mut written)?;
    Ok(written)
}

fn write_man(
    cmd: &clap::Command,
    dir: &Path,
    extras: &ManExtras,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let source = format!("{PACKAGE} {}", env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .source(source)
        .manual("enc365-nginx manual");
    let path = dir.join(man.get_filename());
    let bytes = render_man(&man, cmd, extras)
        .with_context(|| format!("could not render the manual page {}", path.display()))?;
    fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man(sub, dir, extras, written)?;
    }
    Ok(())
}

/// clap_mangen's page, except that the `after_help` text becomes an EXAMPLES section set
/// without filling, so example command lines keep their spacing and line breaks.
fn render_man(
    man: &clap_mangen::Man,
    cmd: &clap::Command,
    extras: &ManExtras,
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    render_synopsis(cmd, &mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(after) = cmd.get_after_help() {
        let text = after.to_string();
        let mut lines = text.lines().peekable();
        if lines
            .peek()
            .is_some_and(|l| l.starts_with("Examples") && l.trim_end().ends_with(':'))
        {
            lines.next();
        }
        let mut roff = roff::Roff::new();
        roff.control("SH", ["EXAMPLES"]).control("nf", []);
        for line in lines {
            roff.text([roff::roman(line)]);
        }
        roff.control("fi", []);
        roff.to_writer(&mut out)?;
    }
    let mut environment: Vec<(String, String)> = (cmd.get_arguments())
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let name = a.get_env()?.to_string_lossy().into_owned();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            Some((
                name,
                format!("{} (as {})", help.trim_end_matches('.'), flag_of(a)),
            ))
        })
        .collect();
    environment.extend(extras.environment.iter().cloned());
    render_list("ENVIRONMENT", &environment, &mut out)?;
    render_list("FILES", &extras.files, &mut out)?;
    render_list("EXIT STATUS", &extras.exit_status, &mut out)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// SYNOPSIS with the value names (`[--config FILE]`), which clap_mangen leaves out.
fn render_synopsis(cmd: &clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    let mut words = vec![roff::bold(name)];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        words.push(roff::roman(format!(" {}", synopsis_item(arg))));
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        words.push(roff::roman(" COMMAND"));
    }
    let mut roff = roff::Roff::new();
    roff.control("SH", ["SYNOPSIS"]).text(words);
    roff.to_writer(out)
}

/// One argument in the synopsis: `[-v|--verbose]...`, `--site NAME`, `[DIR]`.
fn synopsis_item(arg: &clap::Arg) -> String {
    let value = (arg.get_value_names())
        .map(|names| {
            names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    let takes_value = arg.get_num_args().is_none_or(|n| n.takes_values())
        && !matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue
                | clap::ArgAction::SetFalse
                | clap::ArgAction::Count
                | clap::ArgAction::Help
                | clap::ArgAction::HelpShort
                | clap::ArgAction::HelpLong
                | clap::ArgAction::Version
        );
    let item = if arg.is_positional() {
        value
    } else if takes_value {
        format!("{} {value}", flag_of(arg))
    } else {
        flag_of(arg)
    };
    let repeats = matches!(
        arg.get_action(),
        clap::ArgAction::Count | clap::ArgAction::Append
    );
    let dots = if repeats { "..." } else { "" };
    if arg.is_required_set() {
        format!("{item}{dots}")
    } else {
        format!("[{item}]{dots}")
    }
}

/// `-v|--verbose`, `--config`, `-d`.
fn flag_of(arg: &clap::Arg) -> String {
    match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}|--{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => arg.get_id().to_string(),
    }
}

/// A section of tagged paragraphs; nothing when `items` is empty.
fn render_list(title: &str, items: &[(String, String)], out: &mut Vec<u8>) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut roff = roff::Roff::new();
    roff.control("SH", [title]);
    for (term, text) in items {
        roff.control("TP", [])
            .text([roff::bold(term.as_str())])
            .text([roff::roman(text.as_str())]);
    }
    roff.to_writer(out)
}

/// Writes bash, zsh and fish completions for `cmd` into `dir/bash`, `dir/zsh` and `dir/fish`,
/// named as those shells look them up (`NAME`, `_NAME`, `NAME.fish`). Hidden subcommands are not
/// offered. Returns the files written.
pub fn completions(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = visible_only(&cmd);
    let name = cmd.get_name().to_string();
    let mut written = Vec::new();
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let shell_dir = dir.join(shell.to_string());
        fs::create_dir_all(&shell_dir)
            .with_context(|| format!("could not create {}", shell_dir.display()))?;
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut bytes);
        let path = shell_dir.join(file);
        fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A copy of `cmd` without its hidden subcommands (clap_complete would offer them): the same
/// name, texts and arguments, and the visible subcommands, each treated the same way.
fn visible_only(cmd: &clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible_only),
        );
    if let Some(version) = cmd.get_version() {
        copy = copy.version(version.to_string());
    }
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    copy
}
