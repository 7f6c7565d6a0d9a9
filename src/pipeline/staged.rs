//! `nginx -t` on a staged copy of the configuration as an install would leave it, for dry runs:
//! every file nginx reads is copied under a scratch directory with the install's edits applied
//! and every `include` pointed at the copies; the certificates, keys and TLS snippet the edits
//! name are written there too. The live files are only read, nginx is not reloaded.
//!
//! Relative paths other than `include` (an `ssl_dhparam`, an `auth_basic_user_file`) resolve
//! against the copy's directory, where each entry of the real configuration directory that was
//! not copied is linked, so they still reach the real files.
//!
//! Not here: the real install ([`crate::install`]).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Run;
use crate::discovery::Discovery;
use crate::install::{self, Issued};
use crate::nginx::control::{NginxPaths, TestOutcome};
use crate::nginx::edit;
use crate::site::Site;

/// Stages the configuration with `certs` installed for `sites` and runs `nginx -t` on it.
pub fn check(
    run: &Run,
    found: &Discovery,
    sites: &[&Site],
    certs: &[Issued],
) -> anyhow::Result<TestOutcome> {
    let stage = Scratch::new("enc365-staged")
        .context("could not make a scratch directory for the staged configuration")?;
    let mut env = run.env.clone();
    env.config_dir = stage.path().join("enc365");
    for cert in certs {
        let (chain, key) = install::live_paths(&env.config_dir, &cert.site);
        write(&chain, cert.fullchain_pem.as_bytes(), 0o644)?;
        write(&key, cert.key_pem.as_bytes(), 0o600)?;
    }
    let snippet = install::snippet_path(&env.config_dir);
    write(&snippet, install::TLS_SNIPPET.as_bytes(), 0o644)?;
    let edits = install::plan_edits(found, sites, &env)?;
    let root = stage.path().join("root");
    let mirror = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    for (i, file) in found.config.files.iter().enumerate() {
        let mut splices = edits.get(&i).cloned().unwrap_or_default();
        splices.extend(include_rewrites(found, i, &mirror));
        let bytes = edit::apply(&file.bytes, &splices)?;
        write(&mirror(&file.path), &bytes, 0o644)?;
    }
    link_the_rest(&found.config.conf_dir, &mirror(&found.config.conf_dir))?;
    let paths = NginxPaths {
        conf: mirror(&run.env.paths.conf),
        prefix: run.env.paths.prefix.clone(),
    };
    let outcome = run.env.nginx.test(&paths)?;
    tracing::info!(ok = outcome.ok, "nginx -t on the staged configuration");
    Ok(outcome)
}

/// Splices pointing every `include` of file `i` at the copies (relative ones resolved against
/// the configuration directory first, as nginx does).
fn include_rewrites(
    found: &Discovery,
    i: usize,
    mirror: &dyn Fn(&Path) -> PathBuf,
) -> Vec<edit::Splice> {
    let file = &found.config.files[i];
    let mut out = Vec::new();
    for d in file.nodes.iter().filter(|d| d.is("include", &file.bytes)) {
        let Some(arg) = file.args(d).first() else {
            continue;
        };
        let value = String::from_utf8_lossy(&arg.value(&file.bytes)).into_owned();
        let target = found.config.conf_dir.join(&value);
        let staged = mirror(&target).display().to_string();
        let span = arg.span.start as usize..arg.span.end as usize;
        out.push(edit::Splice::replace(span, edit::quote_arg(&staged)));
    }
    out
}

/// Links each entry of `real` that the copy `staged` lacks, so paths relative to the
/// configuration directory reach the real files.
fn link_the_rest(real: &Path, staged: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(staged)?;
    for entry in std::fs::read_dir(real)?.flatten() {
        let to = staged.join(entry.file_name());
        if std::fs::symlink_metadata(&to).is_err() {
            std::os::unix::fs::symlink(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` with `mode`, creating its directory.
fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("could not write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A private scratch directory (0700, under the system's temporary directory), removed with
/// everything in it when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// Makes a new one named `<prefix>-<random>`.
    pub fn new(prefix: &str) -> std::io::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("{prefix}-{:016x}", rand::random::<u64>()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Scratch(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
