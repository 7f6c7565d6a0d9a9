//! On-disk state and the one way we write files: [`write_atomic`].
//!
//! Every file the tool writes (config, orders, certificates, keys, nginx config edits, backups) goes
//! through [`write_atomic`]: a temporary file in the same directory, the final mode set before any
//! byte is written, fsync, rename over the target, fsync of the directory. A reader sees the old
//! bytes or the new bytes, never a mix, and a crash leaves no half-written file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

/// Writes `bytes` to `path` atomically with permission bits `mode`.
///
/// A symlink at `path` is resolved first, so the rename replaces the file it points at and the link
/// stays a link (sites-enabled → sites-available keeps working).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let target = resolve_symlinks(path)?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", target.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".enc365-tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = (|| -> anyhow::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("could not create {}", tmp.display()))?;
        // The umask may have narrowed the mode given to open(); set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("could not set the mode of {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("could not write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("could not flush {} to disk", tmp.display()))?;
        fs::rename(&tmp, &target)
            .with_context(|| format!("could not replace {}", target.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and missing parents) and sets its mode to exactly `mode`.
pub fn ensure_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("could not set the mode of {}", dir.display()))
}

/// Follows symlinks at `path` (any number, relative ones against the link's directory) to the path
/// that a write must replace. A missing final target is fine: that is where the file will be.
pub fn resolve_symlinks(path: &Path) -> anyhow::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current)
                    .with_context(|| format!("could not read the link {}", current.display()))?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(anyhow!(
        "too many levels of symbolic links at {}",
        path.display()
    ))
}

/// fsyncs a directory so a rename in it survives a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("could not flush the directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_sets_mode_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.toml");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn write_atomic_through_a_symlink_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("available")).unwrap();
        fs::create_dir(dir.path().join("enabled")).unwrap();
        let real = dir.path().join("available/site.conf");
        fs::write(&real, b"old").unwrap();
        let link = dir.path().join("enabled/site.conf");
        std::os::unix::fs::symlink("../available/site.conf", &link).unwrap();
        write_atomic(&link, b"new", 0o644).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
    }
}
