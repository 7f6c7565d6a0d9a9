//! Filesystem safety: writing where other users can write, and deciding whether a directory we
//! keep state in can be trusted.
//!
//! Webroots belong to site owners. Everything this tool creates, writes or removes under a
//! webroot goes through directory handles: the webroot itself is opened once (its path is the
//! admin's, from the nginx configuration), every component below it is opened with
//! `O_NOFOLLOW|O_DIRECTORY` (created with `mkdirat`, its mode and owner set on the handle with
//! `fchmod`/`fchown`), a file is created with `O_CREAT|O_EXCL|O_NOFOLLOW` (under its own name when
//! nothing is there, else under a temporary name renamed into place), and removal is `unlinkat` relative to the
//! handle. A link planted — or swapped in mid-run — below the webroot is never followed: the
//! write fails instead. Restoring a backed-up file (`rollback`) works the same way from `/` down.
//!
//! The trust checks refuse a state or config directory another user could change: not owned by
//! root (or the running user), writable by group or others, or holding a link we did not make.
//!
//! Not here: which files to write where ([`crate::dcv`]), or our own atomic writes
//! ([`crate::store`]).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{Read as _, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};

/// The first directory below a webroot that we create or write in.
pub const WELL_KNOWN_DIR: &str = ".well-known";

/// The directories below a webroot that validation files may go through.
const WEBROOT_DIRS: [&str; 3] = [
    ".well-known",
    ".well-known/pki-validation",
    ".well-known/acme-challenge",
];

/// Why validation files cannot be written safely under `webroot`: a directory they go through
/// (`.well-known`, `.well-known/pki-validation`, `.well-known/acme-challenge`) is a symbolic link
/// or not a directory. `None` when each is a real directory or missing (we create it).
pub fn webroot_obstacle(webroot: &Path) -> Option<String> {
    for rel in WEBROOT_DIRS {
        let path = webroot.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Some(format!(
                    "{} is a symbolic link, and nothing is written through one",
                    path.display()
                ));
            }
            Ok(m) if !m.is_dir() => {
                return Some(format!("{} is not a directory", path.display()));
            }
            _ => {}
        }
    }
    None
}

/// Splits `path` where it becomes untrusted: the part before its last `.well-known` component
/// (a webroot, opened as the admin named it) and the components from there; for a path without
/// one (our own directory), the nearest existing ancestor of its parent and the rest.
fn split(path: &Path) -> (PathBuf, Vec<OsString>) {
    let parts: Vec<Component> = path.components().collect();
    if let Some(i) = parts
        .iter()
        .rposition(|c| c.as_os_str() == OsStr::new(WELL_KNOWN_DIR))
    {
        let anchor: PathBuf = parts[..i].iter().collect();
        let rel = parts[i..]
            .iter()
            .map(|c| c.as_os_str().to_owned())
            .collect();
        return (anchor, rel);
    }
    let mut anchor = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut rel = vec![path.file_name().unwrap_or_default().to_owned()];
    while fs::symlink_metadata(&anchor).is_err() {
        let Some(name) = anchor.file_name() else {
            break;
        };
        rel.insert(0, name.to_owned());
        anchor.pop();
    }
    (anchor, rel)
}

/// Opens a directory the admin named (links followed).
fn open_anchor(path: &Path) -> anyhow::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("could not open the directory {}", path.display()))
}

/// Opens `name` in `parent` as a directory, never following a link.
fn open_dir_at(parent: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Whether a `stat` result is a symbolic link.
fn is_link(st: nix::sys::stat::FileStat) -> bool {
    kind(&st) == SFlag::S_IFLNK
}

/// What kind of file `st` describes (`S_IFREG`, `S_IFLNK`, …).
fn kind(st: &nix::sys::stat::FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The error for a component that could not be opened as a directory, saying what it is.
fn not_a_directory(parent: &OwnedFd, name: &OsStr, shown: &Path, errno: Errno) -> anyhow::Error {
    let link = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(is_link);
    if link {
        anyhow!(
            "{} is a symbolic link; nothing is created or written through one (remove it)",
            shown.display()
        )
    } else if matches!(errno, Errno::ENOTDIR | Errno::ELOOP) {
        anyhow!("{} is not a directory (move it away)", shown.display())
    } else {
        anyhow!("could not open {}: {}", shown.display(), errno.desc())
    }
}

/// Opens (creating it 0755, owned like `parent`, when missing) the directory `name` in `parent`.
/// Returns its handle and whether it was created.
fn open_or_make_dir(
    parent: &OwnedFd,
    name: &OsStr,
    shown: &Path,
) -> anyhow::Result<(OwnedFd, bool)> {
    match open_dir_at(parent, name) {
        Ok(fd) => return Ok((fd, false)),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(not_a_directory(parent, name, shown, e)),
    }
    let made = match mkdirat(parent, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        Err(e) => bail!("could not create {}: {}", shown.display(), e.desc()),
    };
    let fd = open_dir_at(parent, name).map_err(|e| not_a_directory(parent, name, shown, e))?;
    if made {
        fchmod(&fd, Mode::from_bits_truncate(0o755))
            .with_context(|| format!("could not set the mode of {}", shown.display()))?;
        // The site owner keeps owning their tree: what we create goes to the parent's owner.
        let (above, here) = (fstat(parent)?, fstat(&fd)?);
        if Uid::effective().is_root() && (above.st_uid, above.st_gid) != (here.st_uid, here.st_gid)
        {
            fchown(
                &fd,
                Some(Uid::from_raw(above.st_uid)),
                Some(Gid::from_raw(above.st_gid)),
            )
            .with_context(|| format!("could not set the owner of {}", shown.display()))?;
        }
    }
    Ok((fd, made))
}

/// Writes `content` to `path` (permission bits `mode`), creating the directories missing on the
/// way (0755). Below the webroot (or our own directory) nothing is followed: see the module doc.
/// Returns the directories it created, outermost first.
pub fn write_file(path: &Path, content: &[u8], mode: u32) -> anyhow::Result<Vec<PathBuf>> {
    let (anchor, rel) = split(path);
    let Some((name, dirs)) = rel.split_last() else {
        bail!("{} names no file", path.display());
    };
    let mut dir = open_anchor(&anchor)?;
    let mut at = anchor;
    let mut created = Vec::new();
    for component in dirs {
        at.push(component);
        let (next, made) = open_or_make_dir(&dir, component, &at)?;
        if made {
            created.push(at.clone());
        }
        dir = next;
    }
    if fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(is_link) {
        bail!(
            "{} is a symbolic link; a validation file is never written through one (remove it)",
            path.display()
        );
    }
    put_file(&dir, name, content, mode)
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(created)
}

/// Creates `name` in `dir` with `content` (mode `mode`). Nothing there yet (the usual case): the
/// file is made under its own name (`O_CREAT|O_EXCL|O_NOFOLLOW`), mode set, written. The very
/// file there already (a regular file of that mode and content: the names of one certificate
/// share one validation file): left as it is, so no file is made and freed per name. Anything
/// else there (a killed run's file, a link): a new file under a temporary name, renamed over it
/// (a link is replaced, not followed). Not flushed to disk: a validation file lives for
/// seconds, nobody fetches it before this returns, and a run after a crash writes it again — a
/// flush per file would only make each of thousands of validations wait on the disk.
fn put_file(dir: &OwnedFd, name: &OsStr, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    let new = |at: &OsStr| {
        openat(
            dir,
            at,
            create | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
    };
    let fill = |fd: OwnedFd| -> anyhow::Result<()> {
        // The umask may have narrowed the mode given to open(); set it exactly.
        fchmod(&fd, Mode::from_bits_truncate(mode))?;
        File::from(fd).write_all(content)?;
        Ok(())
    };
    match new(name) {
        Ok(fd) => {
            let written = fill(fd);
            if written.is_err() {
                let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            }
            return written;
        }
        Err(Errno::EEXIST) if holds_exactly(dir, name, content, mode) => return Ok(()),
        Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".enc365-tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = new(tmp.as_os_str())
        .map_err(anyhow::Error::from)
        .and_then(fill)
        .and_then(|()| Ok(renameat(dir, tmp.as_os_str(), dir, name)?));
    if written.is_err() {
        let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Whether `name` in `dir` is a regular file (not a link) of mode `mode` holding exactly
/// `content`.
fn holds_exactly(dir: &OwnedFd, name: &OsStr, content: &[u8], mode: u32) -> bool {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    let Ok(st) = fstat(&fd) else {
        return false;
    };
    let regular = kind(&st) == SFlag::S_IFREG;
    if !regular || st.st_mode & 0o7777 != mode || usize::try_from(st.st_size) != Ok(content.len()) {
        return false;
    }
    let mut held = Vec::with_capacity(content.len() + 1);
    File::from(fd)
        .take(content.len() as u64 + 1)
        .read_to_end(&mut held)
        .is_ok_and(|_| held == content)
}

/// Removes the file at `path` (`directory`: the empty directory) relative to a handle on its
/// parent, opened as [`write_file`] opens it: a link on the way means nothing is removed. A path
/// already gone (itself or a directory on the way) is no error.
pub fn remove(path: &Path, directory: bool) -> anyhow::Result<()> {
    let (anchor, rel) = split(path);
    let Some((name, dirs)) = rel.split_last() else {
        bail!("{} names nothing to remove", path.display());
    };
    let mut dir = open_anchor(&anchor)?;
    let mut at = anchor;
    for component in dirs {
        at.push(component);
        dir = match open_dir_at(&dir, component) {
            // Its directory is gone, and it with it (another order's clean-up took both).
            Err(Errno::ENOENT) => return Ok(()),
            opened => opened.map_err(|e| not_a_directory(&dir, component, &at, e))?,
        };
    }
    let flag = if directory {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match unlinkat(&dir, name.as_os_str(), flag) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(anyhow!("could not remove {}: {}", path.display(), e.desc())),
    }
}

/// Opens the parent directory of the absolute path `path` from `/` down, every component with
/// `O_NOFOLLOW` (for restoring files whose directories were resolved when backed up).
pub fn open_parent_no_follow(path: &Path) -> anyhow::Result<(OwnedFd, OsString)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} is not a file path", path.display());
    };
    if !path.is_absolute() {
        bail!("{} is not an absolute path", path.display());
    }
    let mut dir = open_anchor(Path::new("/"))?;
    let mut at = PathBuf::from("/");
    for component in parent.components() {
        match component {
            Component::RootDir => continue,
            Component::Normal(c) => {
                at.push(c);
                dir = open_dir_at(&dir, c).map_err(|e| not_a_directory(&dir, c, &at, e))?;
            }
            _ => bail!("{} is not a plain absolute path", path.display()),
        }
    }
    Ok((dir, name.to_owned()))
}

/// Puts `content` at the absolute `path` with `mode` and, when given, owner — through a
/// handle on its parent opened with [`open_parent_no_follow`]; a link at `path` is replaced.
/// The file is flushed and renamed into place; the handle on its parent is returned for the
/// caller to flush — once for every file put back into it, before the restore counts as done
/// (until then a crash may leave the old bytes, which restoring again puts right).
pub fn put_back_file(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<OwnedFd> {
    let (dir, name) = open_parent_no_follow(path)?;
    let mut tmp = OsString::from(".");
    tmp.push(&name);
    tmp.push(format!(".enc365-restore-{}", std::process::id()));
    let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    let fd = openat(
        &dir,
        tmp.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let written = (|| -> anyhow::Result<()> {
        if let Some((uid, gid)) = owner {
            fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
        fchmod(&fd, Mode::from_bits_truncate(mode))?;
        let mut file = File::from(fd);
        file.write_all(content)?;
        file.sync_all()?;
        renameat(&dir, tmp.as_os_str(), &dir, name.as_os_str())?;
        Ok(())
    })();
    if written.is_err() {
        let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    written.with_context(|| format!("could not restore {}", path.display()))?;
    Ok(dir)
}

/// Removes the file at the absolute `path` through a handle on its parent opened with
/// [`open_parent_no_follow`]. `Ok(false)` when it was not there.
pub fn remove_no_follow(path: &Path) -> anyhow::Result<bool> {
    let (dir, name) = open_parent_no_follow(path)?;
    match unlinkat(&dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(anyhow!("could not remove {}: {}", path.display(), e.desc())),
    }
}

/// What is wrong with an existing file or directory we keep state in, if anything: a link
/// (`follow` false: the path must not be one), another owner than root or the running user, or
/// write permission for group or others. The message names the path and the fix.
pub fn untrusted(path: &Path, follow: bool) -> Option<String> {
    let meta = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    let meta = meta.ok()?;
    let shown = path.display();
    if meta.file_type().is_symlink() {
        return Some(format!(
            "{shown} is a symbolic link that enc365-nginx did not create; it is never followed \
             there (it could make this tool write or change permissions elsewhere). Remove it \
             (rm {shown}) and run again"
        ));
    }
    let me = Uid::effective().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        let who = if me == 0 {
            "root".to_string()
        } else {
            me.to_string()
        };
        return Some(format!(
            "{shown} is owned by uid {}, not by root or the user running enc365-nginx: its owner \
             could change what this tool trusts. Fix it with: chown {who} {shown}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "{shown} is writable by group or others (mode {:04o}): another user could change \
             what this tool trusts. Fix it with: chmod go-w {shown}",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// The first link among the entries of `dir` (none when it cannot be read), as an
/// [`untrusted`] message.
pub fn link_inside(dir: &Path) -> Option<String> {
    let entries = fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .find(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .and_then(|e| untrusted(&e.path(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn a_link_below_the_webroot_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (web, elsewhere) = (dir.path().join("web"), dir.path().join("elsewhere"));
        fs::create_dir_all(&web).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        symlink(&elsewhere, web.join(".well-known")).unwrap();
        let file = web.join(".well-known/pki-validation/a.txt");
        let e = write_file(&file, b"x", 0o644).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e:#}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(webroot_obstacle(&web).is_some());
    }

    #[test]
    fn files_and_directories_are_created_with_their_modes_and_removed_by_handle() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".well-known/pki-validation/a.txt");
        let created = write_file(&file, b"token", 0o644).unwrap();
        assert_eq!(
            created,
            vec![
                dir.path().join(".well-known"),
                dir.path().join(".well-known/pki-validation")
            ]
        );
        assert_eq!(fs::read(&file).unwrap(), b"token");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o644);
        assert_eq!(mode(&created[1]), 0o755);
        write_file(&file, b"again", 0o644).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"again");
        remove(&file, false).unwrap();
        for d in created.iter().rev() {
            remove(d, true).unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_same_file_written_again_is_left_as_it_is_and_any_other_is_replaced() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        write_file(&file, b"token", 0o644).unwrap();
        let inode = || fs::symlink_metadata(&file).unwrap().ino();
        let first = inode();
        // The names of one certificate share its file: the second write keeps the first file.
        write_file(&file, b"token", 0o644).unwrap();
        assert_eq!(inode(), first);
        // Other content or another mode: a new file takes the name.
        write_file(&file, b"token2", 0o644).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"token2");
        assert_ne!(inode(), first);
        let second = inode();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        write_file(&file, b"token2", 0o644).unwrap();
        assert_ne!(inode(), second);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        let target = dir.path().join("target.txt");
        fs::write(&target, b"token2").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_file(&file).unwrap();
        symlink(&target, &file).unwrap();
        // A link holding the very bytes is still no file of ours: refused, as any link is.
        assert!(write_file(&file, b"token2", 0o644).is_err());
        assert!(
            fs::symlink_metadata(&file)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_world_writable_directory_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(untrusted(dir.path(), true), None);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let why = untrusted(dir.path(), true).unwrap();
        assert!(why.contains("chmod go-w"), "{why}");
        let link = dir.path().join("link");
        symlink("/etc", &link).unwrap();
        assert!(untrusted(&link, false).unwrap().contains("symbolic link"));
    }
}
