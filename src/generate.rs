//! Manual pages and shell completions, generated from the clap definitions so they never drift from
//! `--help`.
//!
//! [`man_pages`] writes one roff page per command and visible subcommand (`enc365-nginx.1`,
//! `enc365-nginx-discover.1`, …) with `clap_mangen`; [`completions`] writes the bash, zsh and fish
//! scripts with `clap_complete`, under the names each shell's completion directory expects. The
//! package build (`packaging/build-deb.sh`) calls them through the hidden `enc365-nginx generate`
//! subcommand and `enc365-sim --generate-docs`.
//!
//! Not here: where the files are installed (that is the package's business) or compressing them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap_complete::Shell;

/// The manual section the pages belong to (user commands).
const SECTION: &str = "1";

/// Writes a manual page for `cmd` and for each of its visible subcommands (recursively) into
/// `dir`, creating it if needed. Returns the files written, in the order written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_man(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_man(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let source = format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .source(source)
        .manual("enc365-nginx manual");
    let path = dir.join(man.get_filename());
    let bytes = render_man(&man, cmd)
        .with_context(|| format!("could not render the manual page {}", path.display()))?;
    fs::write(&path, bytes).with_context(|| format!("could not write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man(sub, dir, written)?;
    }
    Ok(())
}

/// clap_mangen's page, except that the `after_help` text becomes an EXAMPLES section set
/// without filling, so example command lines keep their spacing and line breaks.
fn render_man(man: &clap_mangen::Man, cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
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
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn writes_a_page_per_visible_command_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(crate::cli::Cli::command(), dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"enc365-nginx.1".to_string()), "{names:?}");
        assert!(
            names.contains(&"enc365-nginx-discover.1".to_string()),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.contains("generate")),
            "hidden commands get no page: {names:?}"
        );
        let main = fs::read_to_string(dir.path().join("enc365-nginx.1")).unwrap();
        assert!(
            main.starts_with(".ie"),
            "roff: {}",
            &main[..40.min(main.len())]
        );
        assert!(main.contains(".TH enc365-nginx 1"), "{main}");
        let auto = fs::read_to_string(dir.path().join("enc365-nginx-auto.1")).unwrap();
        assert!(auto.contains(".SH EXAMPLES\n.nf\n"), "{auto}");
        assert!(
            auto.contains("enc365\\-nginx auto \\-\\-site shop.example.com \\-\\-json"),
            "{auto}"
        );

        let files = completions(crate::cli::Cli::command(), dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let bash = fs::read_to_string(dir.path().join("bash/enc365-nginx")).unwrap();
        assert!(bash.contains("discover"), "{bash}");
        assert!(
            !bash.contains("generate"),
            "hidden commands are not completed"
        );
        assert!(dir.path().join("zsh/_enc365-nginx").exists());
        assert!(dir.path().join("fish/enc365-nginx.fish").exists());
    }
}
