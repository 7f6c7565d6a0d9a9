//! On-disk state and the one way we write files: [`write_atomic`].
//!
//! Every file the tool writes (config, orders, certificates, keys, nginx config edits, backups) goes
//! through [`write_atomic`]: a temporary file in the same directory, the final mode set before any
//! byte is written, fsync, rename over the target, fsync of the directory. A reader sees the old
//! bytes or the new bytes, never a mix, and a crash leaves no half-written file.
//!
//! Also here, the two pieces of state that keep a run safe (design §3.4):
//!
//! - [`RunLock`]: `flock` on `<state-dir>/lock`, so one run at a time. The kernel drops the lock
//!   when the process ends, however it ends, so a lock is never stale.
//! - [`Transaction`]: the backup journal. Before a file is touched, [`Transaction::backup`] (or
//!   [`Transaction::backup_all`] for many files) copies its bytes, mode and owner (or notes that it
//!   did not exist) into `<state-dir>/backups/<id>/` and appends its entry to the journal there —
//!   so even after a crash mid-change, [`Transaction::open`] + [`Transaction::restore`] put every
//!   file back byte for byte (and delete files the transaction created).
//!   [`Transaction::list`] serves `history`/`rollback`; [`Transaction::list_open`] finds what a
//!   run must restore without reading finished manifests (a `finished` marker beside each).
//!
//! A transaction's bookkeeping is O(entries): `manifest.json` is written when it begins and when
//! it ends (committed or restored, with every entry folded in); in between, each batch of entries
//! is one append to `journal` (a JSON line per entry) and one fsync. A crash mid-append leaves a
//! torn last line: it is ignored on reading — its batch's files were never touched, because the
//! caller changes a file only after the batch's fsync returned.
//!
//! Not here: deciding what to change, running nginx, or reloading after a restore — that is the
//! install step's job.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::exit::Failure;

/// How many backup copies (or files of [`write_atomic_all`]) are written and flushed at once.
const COPY_CONCURRENCY: usize = 16;

/// [`write_atomic`] for many files (path, bytes, mode) at once: each written beside itself,
/// flushed and renamed over it — many at once, their flushes overlapping — and then each
/// directory among them flushed once, not once per file (a thousand vhosts in one
/// `sites-available` are one directory flush, not a thousand). The first error in the files'
/// order, after every write ended; the directories of the files replaced are flushed all the
/// same. For files changed inside a [`Transaction`]: until the directories are flushed, a crash
/// may leave some of them old, which restoring the transaction puts right like any other.
pub fn write_atomic_all(files: &[(&Path, &[u8], u32)]) -> anyhow::Result<()> {
    let replaced = crate::bounded::map(files, COPY_CONCURRENCY, |(path, bytes, mode)| {
        let staged = stage_beside(&resolve_symlinks(path)?, *mode, &mut |f| f.write_all(bytes))?;
        let dir = staged.dir().to_path_buf();
        staged.put_in_place().map(|()| dir)
    });
    let dirs = (replaced.iter()).filter_map(|r| r.as_ref().ok().map(PathBuf::as_path));
    let flushed = sync_dirs(dirs);
    replaced
        .into_iter()
        .collect::<anyhow::Result<Vec<PathBuf>>>()?;
    flushed
}

/// Writes `bytes` to `path` atomically with permission bits `mode`.
///
/// A symlink at `path` is resolved first, so the rename replaces the file it points at and the link
/// stays a link (sites-enabled → sites-available keeps working).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_atomic_at(&resolve_symlinks(path)?, bytes, mode)
}

/// Like [`write_atomic`], but a symlink at `path` is replaced by the file, never followed: for
/// files written into directories other users control (validation files in webroots).
pub fn write_atomic_no_follow(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_atomic_at(path, bytes, mode)
}

fn write_atomic_at(target: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    write_atomic_with(target, mode, &mut |file| file.write_all(bytes))
}

/// [`write_atomic_at`] with the content written by `write` (into a buffered temporary file):
/// a large document is written as it is produced, never whole in memory.
fn write_atomic_with(
    target: &Path,
    mode: u32,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    stage_beside(target, mode, write)?.put_in_place()?;
    sync_dir(parent_dir(target))
}

/// [`write_atomic`] for a few files that belong together (a certificate's key, leaf, chain and
/// full chain): each is still replaced atomically on its own, after all of them are written and
/// flushed, and each directory among them is flushed once, after the last rename — not once per
/// file.
pub fn write_atomic_group(files: &[(&Path, &[u8], u32)]) -> anyhow::Result<()> {
    let mut staged: Vec<StagedFile> = Vec::with_capacity(files.len());
    for (path, bytes, mode) in files {
        let one = resolve_symlinks(path)
            .and_then(|target| stage_beside(&target, *mode, &mut |f| f.write_all(bytes)));
        match one {
            Ok(one) => staged.push(one),
            Err(e) => {
                staged.into_iter().for_each(StagedFile::discard);
                return Err(e);
            }
        }
    }
    let dirs: Vec<PathBuf> = staged.iter().map(|s| s.dir().to_path_buf()).collect();
    let mut staged = staged.into_iter();
    for one in staged.by_ref() {
        if let Err(e) = one.put_in_place() {
            staged.for_each(StagedFile::discard);
            return Err(e);
        }
    }
    sync_dirs(dirs.iter().map(PathBuf::as_path))
}

/// The directory a file path is in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes the bytes `write` produces into a new temporary file beside `target` (mode `mode`),
/// flushed to disk; returns its path, for the caller to rename over `target`. Nothing is left
/// behind when it fails.
fn stage(
    target: &Path,
    mode: u32,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", target.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".enc365-tmp-{}", std::process::id()));
    let tmp = parent_dir(target).join(tmp_name);

    let result = (|| -> anyhow::Result<()> {
        // create_new (O_EXCL) never follows a link someone planted under the temp name; a
        // leftover of a killed run (or such a link) is removed first.
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
        };
        let mut file = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp).and_then(|()| create())
            }
            other => other,
        }
        .with_context(|| format!("could not create {}", tmp.display()))?;
        // The umask may have narrowed the mode given to open(); set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .with_context(|| format!("could not set the mode of {}", tmp.display()))?;
        let mut buffered = std::io::BufWriter::new(&mut file);
        write(&mut buffered)
            .and_then(|()| buffered.flush())
            .with_context(|| format!("could not write {}", tmp.display()))?;
        drop(buffered);
        file.sync_all()
            .with_context(|| format!("could not flush {} to disk", tmp.display()))
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Reads one JSON record: `None` when there is no file. A file that does not parse is an error
/// naming it as damaged, followed by `what_to_do`.
pub fn read_record<T: serde::de::DeserializeOwned>(
    path: &Path,
    what_to_do: &str,
) -> anyhow::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is damaged; {what_to_do}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
    }
}

/// Writes one JSON record atomically (0600), creating its directory (0700).
pub fn write_record<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let staged = stage_record(path, value)?;
    let dir = staged.dir().to_path_buf();
    staged.put_in_place()?;
    sync_dir(&dir)
}

/// A file's new bytes, written and flushed beside it but not yet in its place: readers (and a
/// crash) still see the old file. [`StagedFile::put_in_place`] makes them the file (as
/// atomically as [`write_atomic`]; the directory is flushed by the caller, once for many files:
/// [`sync_dirs`]); [`StagedFile::discard`] drops them. Lets a run write its records while it
/// waits on something else and only put them in place once that succeeded.
#[derive(Debug)]
pub struct StagedFile {
    staged: PathBuf,
    target: PathBuf,
    placing: Placing,
}

/// How a [`StagedFile`] takes its place.
#[derive(Debug, Clone, Copy)]
enum Placing {
    /// Renamed over the record (a new file, [`write_record`]).
    Rename,
    /// Swapped with the record ([`rewrite_record`]'s spare); the spare, now holding the old
    /// bytes, is kept for the next write or removed.
    Exchange { keep_spare: bool },
}

impl StagedFile {
    /// The directory of the record (to flush once it is in place).
    pub fn dir(&self) -> &Path {
        parent_dir(&self.target)
    }

    /// Puts the staged bytes in the record's place. The directory is not flushed.
    pub fn put_in_place(self) -> anyhow::Result<()> {
        match self.placing {
            Placing::Rename => fs::rename(&self.staged, &self.target).map_err(|e| {
                let _ = fs::remove_file(&self.staged);
                anyhow!(e).context(format!("could not replace {}", self.target.display()))
            }),
            Placing::Exchange { keep_spare } => {
                exchange_or_rename(&self.staged, &self.target)?;
                if !keep_spare {
                    remove_spare(&self.target);
                }
                Ok(())
            }
        }
    }

    /// Drops the staged bytes; the record stays as it is.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.staged);
    }
}

/// Stages what [`write_record`] would write at `path` (its directory made, 0700): a new file
/// beside it, flushed.
pub fn stage_record<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<StagedFile> {
    if let Some(dir) = path.parent() {
        ensure_dir(dir, 0o700)?;
    }
    let bytes = serde_json::to_vec_pretty(value)
        .with_context(|| format!("could not encode {}", path.display()))?;
    stage_beside(&resolve_symlinks(path)?, 0o600, &mut |file| {
        file.write_all(&bytes)
    })
}

/// [`stage`] as a [`StagedFile`] that is renamed over `target`.
fn stage_beside(
    target: &Path,
    mode: u32,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<StagedFile> {
    Ok(StagedFile {
        staged: stage(target, mode, write)?,
        target: target.to_path_buf(),
        placing: Placing::Rename,
    })
}

/// Flushes each directory once (files put in place with [`StagedFile::put_in_place`]).
pub fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> anyhow::Result<()> {
    let mut done = std::collections::HashSet::new();
    for dir in dirs {
        if done.insert(dir) {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// [`write_record`] for a record rewritten at every step of its life (an order's record is
/// saved before and after each CA call): the new bytes go into a spare file beside the record
/// ([`spare_path`], 0600), are flushed, and the two files are swapped in one
/// `renameat2(RENAME_EXCHANGE)` — as atomic as [`write_atomic`]'s rename (a reader, or a crash,
/// sees the old record or the new one), then the directory is flushed. The file that held the
/// old bytes becomes the spare of the next write instead of being freed, so rewriting a record
/// creates and frees no inode: on a run rewriting thousands of records that is most of the
/// file system's work (ext4 without a journal scans every inode freed in the last minutes for
/// each new one). The spare's bytes are never read. `keep_spare` false removes the spare
/// afterwards: the record's last write for now (it is closed). Where the file system cannot
/// exchange, the spare is renamed over the record (what [`write_atomic`] does).
pub fn rewrite_record<T: Serialize>(
    path: &Path,
    value: &T,
    keep_spare: bool,
) -> anyhow::Result<()> {
    stage_rewrite(path, value, keep_spare)?.put_in_place()?;
    sync_dir(parent_dir(path))
}

/// Stages what [`rewrite_record`] would write at `path`: the new bytes in the record's spare
/// file, flushed; [`StagedFile::put_in_place`] swaps them in (and removes the spare unless
/// `keep_spare`).
pub fn stage_rewrite<T: Serialize>(
    path: &Path,
    value: &T,
    keep_spare: bool,
) -> anyhow::Result<StagedFile> {
    ensure_dir(parent_dir(path), 0o700)?;
    let bytes = serde_json::to_vec_pretty(value)
        .with_context(|| format!("could not encode {}", path.display()))?;
    let spare = spare_path(path)?;
    let mut file = open_spare(&spare)?;
    file.write_all(&bytes)
        .and_then(|()| file.set_len(bytes.len() as u64))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", spare.display()))?;
    Ok(StagedFile {
        staged: spare,
        target: path.to_path_buf(),
        placing: Placing::Exchange { keep_spare },
    })
}

/// The spare file of a record written by [`rewrite_record`]: `.<name>.enc365-spare` beside it
/// (hidden, and not `*.json`, so no listing of records sees it).
pub fn spare_path(record: &Path) -> anyhow::Result<PathBuf> {
    let name = record
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", record.display()))?;
    let mut spare = std::ffi::OsString::from(".");
    spare.push(name);
    spare.push(".enc365-spare");
    Ok(record.with_file_name(spare))
}

/// Removes a record's spare file ([`rewrite_record`]), if there is one.
pub fn remove_spare(record: &Path) {
    if let Ok(spare) = spare_path(record) {
        let _ = fs::remove_file(spare);
    }
}

/// Opens the spare file for writing from its start: the one left by the last write when it is
/// a plain file of ours with no other name (mode set back to 0600 if it changed), else a new
/// one (anything else under that name, a link included, is removed first, never followed).
fn open_spare(spare: &Path) -> anyhow::Result<File> {
    let existing = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(spare);
    match existing {
        Ok(file) => {
            let meta = file
                .metadata()
                .with_context(|| format!("could not inspect {}", spare.display()))?;
            let ours = meta.file_type().is_file()
                && meta.nlink() == 1
                && meta.uid() == nix::unistd::geteuid().as_raw();
            if ours {
                if meta.mode() & 0o7777 != 0o600 {
                    file.set_permissions(fs::Permissions::from_mode(0o600))
                        .with_context(|| {
                            format!("could not set the mode of {}", spare.display())
                        })?;
                }
                return Ok(file);
            }
            drop(file);
            fs::remove_file(spare)
                .with_context(|| format!("could not remove {}", spare.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => {
            // A link (O_NOFOLLOW refused it), a directory or a file we may not write: removed,
            // then made anew.
            fs::remove_file(spare)
                .with_context(|| format!("could not remove {}", spare.display()))?;
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(spare)
        .with_context(|| format!("could not create {}", spare.display()))?;
    // The umask may have narrowed the mode given to open(); set it exactly.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("could not set the mode of {}", spare.display()))?;
    Ok(file)
}

/// Swaps `spare` and `target` atomically; renames `spare` to `target` when there is no
/// `target` yet or the file system cannot swap.
fn exchange_or_rename(spare: &Path, target: &Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
    let (Ok(from), Ok(to)) = (c(spare), c(target)) else {
        return Err(anyhow!("{} contains a NUL byte", target.display()));
    };
    // SAFETY: both are NUL-terminated paths that live across the call.
    let swapped = unsafe {
        nix::libc::renameat2(
            nix::libc::AT_FDCWD,
            from.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            nix::libc::RENAME_EXCHANGE,
        )
    };
    if swapped == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(nix::libc::ENOENT | nix::libc::EINVAL | nix::libc::ENOSYS | nix::libc::EOPNOTSUPP) => {
            fs::rename(spare, target)
                .with_context(|| format!("could not replace {}", target.display()))
        }
        _ => Err(error).with_context(|| format!("could not replace {}", target.display())),
    }
}

/// Every `*.json` record in `dir` (none when the directory does not exist), unsorted. A file that
/// does not parse is an error naming it as damaged, followed by `what_to_do`.
pub fn read_records<T: serde::de::DeserializeOwned + Send>(
    dir: &Path,
    what_to_do: &str,
) -> anyhow::Result<Vec<T>> {
    read_records_if(dir, what_to_do, |_| true)
}

/// [`read_records`] of the records whose bytes `wanted` accepts: the others are read, never
/// parsed (on a host with thousands of records, most are not wanted). Many records are read
/// 64 at a time, one run per thread, each thread into one buffer it reuses (no `stat` per
/// file), on more threads when the reads wait on the disk ([`crate::bounded::reads`]).
pub fn read_records_if<T: serde::de::DeserializeOwned + Send>(
    dir: &Path,
    what_to_do: &str,
    wanted: impl Fn(&[u8]) -> bool + Sync,
) -> anyhow::Result<Vec<T>> {
    let names = record_names(dir)?;
    let read = |names: &[std::ffi::OsString]| -> anyhow::Result<Vec<T>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for name in names {
            let path = dir.join(name);
            let len = read_reusing(&path, &mut buf)
                .with_context(|| format!("could not read {}", path.display()))?;
            if wanted(&buf[..len]) {
                out.push(
                    serde_json::from_slice(&buf[..len])
                        .with_context(|| format!("{} is damaged; {what_to_do}", path.display()))?,
                );
            }
        }
        Ok(out)
    };
    let mut out = Vec::new();
    for part in crate::bounded::reads(names.len(), 64, |run| read(&names[run])) {
        out.extend(part?);
    }
    Ok(out)
}

/// Reads the whole file at `path` into `buf` (grown as needed, never shrunk) and returns its
/// length: an `open`, the `read`s and a `close`, no `stat`.
fn read_reusing(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut file = File::open(path)?;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize((buf.len() * 2).max(16 << 10), 0);
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The file names of every `*.json` record in `dir` (none when the directory does not exist),
/// unsorted, without reading them: which sites have a record.
pub fn record_names(dir: &Path) -> anyhow::Result<Vec<std::ffi::OsString>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry
            .with_context(|| format!("could not read {}", dir.display()))?
            .file_name();
        if Path::new(&name).extension().is_some_and(|e| e == "json") {
            out.push(name);
        }
    }
    Ok(out)
}

/// Creates `dir` (and missing parents) and sets its mode to exactly `mode` — on a handle opened
/// without following a link: a link at `dir` is refused, never chmodded through.
pub fn ensure_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    use nix::fcntl::OFlag;
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(dir, flags, nix::sys::stat::Mode::empty()).map_err(|e| {
        match crate::fs_safe::untrusted(dir, false).filter(|_| is_link(dir)) {
            Some(why) => anyhow!(why),
            None => anyhow!(
                "could not open the directory {}: {}",
                dir.display(),
                e.desc()
            ),
        }
    })?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
        .with_context(|| format!("could not set the mode of {}", dir.display()))
}

/// Whether `path` is a symbolic link.
fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
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

pub use crate::paths::LOCK_FILE;

/// Creates the state directory (mode 0711, design §3.4) when it does not exist yet (an existing
/// one keeps the mode it has), then checks it can be trusted ([`check_state_dir`]).
pub fn ensure_state_dir(state_dir: &Path) -> anyhow::Result<()> {
    if !state_dir.is_dir() {
        ensure_dir(state_dir, 0o711)?;
    }
    check_state_dir(state_dir)
}

/// Refuses a state directory another user could change — root runs what its records say and
/// restores what its backups name: the directory (and `orders/`, `certs/`, `backups/`, `dcv/`,
/// `lock`, `last-run.json`) must be owned by root or the running user and not writable by group
/// or others, and nothing in it (or in those directories) may be a link. The error names the
/// path and the fix.
pub fn check_state_dir(state_dir: &Path) -> anyhow::Result<()> {
    use crate::paths;
    let dirs = [
        paths::orders_dir(state_dir),
        paths::certs_dir(state_dir),
        paths::backups_dir(state_dir),
        paths::dcv_dir(state_dir),
    ];
    let files = [paths::lock(state_dir), paths::last_run(state_dir)];
    let problem = crate::fs_safe::untrusted(state_dir, true)
        .or_else(|| (dirs.iter().chain(&files)).find_map(|p| crate::fs_safe::untrusted(p, false)))
        .or_else(|| crate::fs_safe::link_inside(state_dir))
        .or_else(|| dirs.iter().find_map(|d| crate::fs_safe::link_inside(d)));
    match problem {
        Some(why) => Err(anyhow!("the state directory cannot be used: {why}")),
        None => Ok(()),
    }
}

/// One run at a time: an exclusive `flock` on `<state-dir>/lock`, held until dropped (or until the
/// process ends, however it ends — a lock is never stale).
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
    path: PathBuf,
}

/// Why the run lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another enc365-nginx run holds the lock {}; wait for it to finish and try again \
         (the lock is released when that process exits)",
        path.display()
    )]
    Held {
        /// The lock file.
        path: PathBuf,
    },
    /// The state directory is not safe to use (see [`check_state_dir`]).
    #[error("{0}")]
    Untrusted(String),
    /// The state directory or lock file cannot be created or opened.
    #[error(
        "could not take the lock {}: {reason} (run as root, or point --state-dir at a writable \
         directory)",
        path.display()
    )]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
}

impl From<LockError> for Failure {
    /// A held lock is exit 3; a state directory we cannot use is a configuration error (exit 2).
    fn from(error: LockError) -> Failure {
        match error {
            LockError::Held { .. } => Failure::locked(error),
            LockError::Io { .. } | LockError::Untrusted(_) => Failure::usage(error),
        }
    }
}

impl RunLock {
    /// Takes the lock without waiting, creating the state directory and lock file when missing.
    pub fn acquire(state_dir: &Path) -> Result<RunLock, LockError> {
        let path = crate::paths::lock(state_dir);
        let io = |reason: String| LockError::Io {
            path: path.clone(),
            reason,
        };
        if !state_dir.is_dir() {
            ensure_dir(state_dir, 0o711).map_err(|e| io(format!("{e:#}")))?;
        }
        check_state_dir(state_dir).map_err(|e| LockError::Untrusted(format!("{e:#}")))?;
        // Opened, never rewritten: replacing the file would leave the lock on a dead inode.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc_o_nofollow())
            .open(&path)
            .map_err(|e| io(e.to_string()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(RunLock { _lock: lock, path }),
            Err((_, Errno::EWOULDBLOCK)) => Err(LockError::Held { path }),
            Err((_, errno)) => Err(io(errno.desc().to_string())),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Begun, neither committed nor restored: the run is going on, or it died mid-change.
    Open,
    /// The change succeeded and was kept.
    Committed,
    /// Every file was put back.
    Restored,
}

/// What was saved about one file before the transaction touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEntry {
    /// The path as given to [`Transaction::backup`] (made absolute).
    pub path: PathBuf,
    /// The file a write to `path` replaces (symlinks resolved); this is what is restored.
    pub target: PathBuf,
    /// When `path` itself was a symlink, what it pointed to (put back if it was replaced).
    pub symlink: Option<PathBuf>,
    /// Whether the file existed; if not, restoring deletes it.
    pub existed: bool,
    /// Permission bits (`mode & 0o7777`) of the original.
    pub mode: Option<u32>,
    /// Owner of the original.
    pub uid: Option<u32>,
    /// Group of the original.
    pub gid: Option<u32>,
    /// SHA-256 (hex) of the original bytes, checked before restoring.
    pub sha256: Option<String>,
    /// The byte copy, relative to the transaction directory.
    pub copy: Option<PathBuf>,
}

impl BackupEntry {
    /// The entry of a file that did not exist (restoring removes it): `path` as given, `target`
    /// the file behind it, `symlink` what `path` pointed to when it was a link.
    fn absent(path: PathBuf, target: PathBuf, symlink: Option<PathBuf>) -> BackupEntry {
        BackupEntry {
            path,
            target,
            symlink,
            existed: false,
            mode: None,
            uid: None,
            gid: None,
            sha256: None,
            copy: None,
        }
    }
}

/// A transaction's manifest, `backups/<id>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this file.
    pub version: u32,
    /// The transaction id (also its directory name); ids sort by creation time.
    pub id: String,
    /// When it began, RFC 3339 UTC.
    pub created: String,
    /// What the run was doing, for `history` (e.g. `install: shop.example.com`).
    pub label: String,
    /// What the run was doing, for the code (absent in manifests written before it was
    /// recorded, and for transactions begun with a label only: see [`Manifest::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TxnKind>,
    /// Where it stands.
    pub state: TxnState,
    /// Every file backed up, in the order they were.
    pub entries: Vec<BackupEntry>,
}

/// What a transaction is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TxnKind {
    /// Installing (or renewing) the certificates of these sites.
    Install {
        /// The sites, in the order installed.
        sites: Vec<String>,
    },
    /// A run's temporary validation locations (always undone by the run that made them).
    Validation,
    /// Taking a site's HTTPS lines out of its configuration (`delete`).
    Delete {
        /// The site.
        site: String,
    },
    /// Undoing another transaction.
    Rollback {
        /// The transaction undone.
        of: String,
    },
    /// Anything else.
    Other,
}

impl TxnKind {
    /// The `history` label of a transaction of this kind.
    pub fn label(&self) -> String {
        match self {
            TxnKind::Install { sites } => format!("install: {}", sites.join(", ")),
            TxnKind::Validation => "dcv: temporary validation locations".into(),
            TxnKind::Delete { site } => format!("delete: {site}"),
            TxnKind::Rollback { of } => format!("rollback: {of}"),
            TxnKind::Other => "other".into(),
        }
    }
}

impl Manifest {
    /// What the transaction is for. Manifests written before the kind was recorded are read
    /// from their label, which [`TxnKind::label`] has always written the same way.
    pub fn kind(&self) -> TxnKind {
        if let Some(kind) = &self.kind {
            return kind.clone();
        }
        if let Some(list) = self.label.strip_prefix("install: ") {
            let sites = list.split(", ").map(str::to_string).collect();
            TxnKind::Install { sites }
        } else if let Some(site) = self.label.strip_prefix("delete: ") {
            TxnKind::Delete {
                site: site.to_string(),
            }
        } else if let Some(of) = self.label.strip_prefix("rollback: ") {
            TxnKind::Rollback { of: of.to_string() }
        } else if self.label == TxnKind::Validation.label() {
            TxnKind::Validation
        } else {
            TxnKind::Other
        }
    }
}

/// Why a transaction step failed.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// A file operation failed.
    #[error("could not {action} {}: {reason}", path.display())]
    Io {
        /// What we were doing ("read", "back up", …).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The manifest cannot be read or written.
    #[error(
        "the backup manifest {} cannot be used: {reason} (the byte copies beside it are intact; \
         inspect them before deleting the directory)",
        path.display()
    )]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No transaction with this id.
    #[error("there is no backup transaction {id:?} in {}", dir.display())]
    NotFound {
        /// The id asked for.
        id: String,
        /// The backups directory.
        dir: PathBuf,
    },
    /// A directory (or other non-file) was given to back up.
    #[error("{} is not a regular file; only files can be backed up", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// A byte copy no longer matches its checksum.
    #[error(
        "the backup copy {} of {} is damaged (its SHA-256 no longer matches); not restoring \
         that file",
        copy.display(),
        path.display()
    )]
    Damaged {
        /// The file it would restore.
        path: PathBuf,
        /// The damaged copy.
        copy: PathBuf,
    },
    /// Some files could not be restored; the others were.
    #[error(
        "transaction {id}: {} file(s) could not be put back (the others were): {}; fix the cause \
         and restore the transaction again",
        failures.len(),
        failures.join("; ")
    )]
    Incomplete {
        /// The transaction.
        id: String,
        /// One message per file that failed.
        failures: Vec<String>,
    },
}

/// The backup journal of one change: back up every file before touching it, then commit or
/// restore. See the module doc.
///
/// Its entries stay on disk (the journal, the manifest): only their count and a 128-bit digest
/// of each target are held, so a 10,000-site install's tens of thousands of entries do not
/// weigh on memory while the configuration is edited and checked; [`Transaction::entries`],
/// restoring and finishing read them back.
#[derive(Debug)]
pub struct Transaction {
    dir: PathBuf,
    /// The manifest's header (its `entries` always empty: see [`Transaction::entries`]).
    manifest: Manifest,
    /// A digest of each entry's target, so a backup finds a repeat in O(1).
    targets: std::collections::HashSet<u128>,
    /// How many entries the transaction has (the next copy's index).
    count: usize,
}

/// A 128-bit digest of a backup target (first half of its SHA-256): two paths share one by
/// chance with probability 2^-128, so a repeat is recognised without holding the path.
fn target_digest(target: &Path) -> u128 {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(target.as_os_str().as_encoded_bytes());
    let mut half = [0u8; 16];
    half.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(half)
}

impl Transaction {
    /// Starts a transaction of `kind`: creates `<state-dir>/backups/<id>/` (0700) and writes its
    /// manifest, labelled for `history` as the kind says.
    pub fn begin_kind(state_dir: &Path, kind: TxnKind) -> Result<Transaction, TxnError> {
        Self::begin_with(state_dir, &kind.label(), Some(kind))
    }

    /// Starts a transaction with a free-form label (its kind read from the label).
    pub fn begin(state_dir: &Path, label: &str) -> Result<Transaction, TxnError> {
        Self::begin_with(state_dir, label, None)
    }

    fn begin_with(
        state_dir: &Path,
        label: &str,
        kind: Option<TxnKind>,
    ) -> Result<Transaction, TxnError> {
        let backups = crate::paths::backups_dir(state_dir);
        let io = |action, path: &Path, e: &dyn std::fmt::Display| TxnError::Io {
            action,
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        ensure_state_dir(state_dir).map_err(|e| io("create", state_dir, &e))?;
        ensure_dir(&backups, 0o700).map_err(|e| io("create", &backups, &e))?;
        let now = time::OffsetDateTime::now_utc();
        // Nanoseconds in the id: two runs in the same second still sort in the order they began,
        // so `rollback` without an id takes the newest.
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z-{}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.nanosecond(),
            std::process::id()
        );
        // create_dir (not _all) claims the id: two transactions never share a directory.
        let mut n = 0u32;
        let (id, dir) = loop {
            let id = if n == 0 {
                stamp.clone()
            } else {
                format!("{stamp}-{n}")
            };
            let dir = backups.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(e) => return Err(io("create", &dir, &e)),
            }
        };
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("set the mode of", &dir, &e))?;
        let created = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let manifest = Manifest {
            version: 1,
            id,
            created,
            label: label.to_string(),
            kind,
            state: TxnState::Open,
            entries: Vec::new(),
        };
        write_manifest(&dir, &manifest)?;
        Ok(Transaction {
            dir,
            manifest,
            targets: Default::default(),
            count: 0,
        })
    }

    /// Opens an existing transaction by id (e.g. one a crashed run left open).
    pub fn open(state_dir: &Path, id: &str) -> Result<Transaction, TxnError> {
        let backups = crate::paths::backups_dir(state_dir);
        let valid = !id.is_empty() && !id.starts_with('.') && !id.contains('/');
        let dir = backups.join(id);
        if !valid || !dir.join(crate::paths::MANIFEST).is_file() {
            return Err(TxnError::NotFound {
                id: id.to_string(),
                dir: backups,
            });
        }
        let mut manifest = load(&dir)?;
        let entries = std::mem::take(&mut manifest.entries);
        let targets = entries.iter().map(|e| target_digest(&e.target)).collect();
        Ok(Transaction {
            dir,
            manifest,
            targets,
            count: entries.len(),
        })
    }

    /// Every transaction's manifest, oldest first. Directories without a manifest (a `begin`
    /// that died before writing it) are skipped; an unreadable manifest is an error.
    pub fn list(state_dir: &Path) -> Result<Vec<Manifest>, TxnError> {
        let backups = crate::paths::backups_dir(state_dir);
        let entries = match fs::read_dir(&backups) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(TxnError::Io {
                    action: "list",
                    path: backups,
                    reason: e.to_string(),
                });
            }
        };
        let mut manifests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TxnError::Io {
                action: "list",
                path: backups.clone(),
                reason: e.to_string(),
            })?;
            let dir = entry.path();
            if dir.join(crate::paths::MANIFEST).is_file() {
                manifests.push(load(&dir)?);
            }
        }
        manifests.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(manifests)
    }

    /// The transactions still open (a run going on, or one that died mid-change), oldest first:
    /// what a run restores before it starts. A finished transaction's directory holds a
    /// `finished` marker (written after its manifest says so, and only read in a trusted
    /// directory), so its manifest — tens of thousands of entries after a large install — is not
    /// read; one without the marker is read, and gets it when it is finished.
    pub fn list_open(state_dir: &Path) -> Result<Vec<Manifest>, TxnError> {
        let backups = crate::paths::backups_dir(state_dir);
        let list_error = |e: std::io::Error| TxnError::Io {
            action: "list",
            path: backups.clone(),
            reason: e.to_string(),
        };
        let entries = match fs::read_dir(&backups) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(list_error(e)),
        };
        let mut open = Vec::new();
        for entry in entries {
            let dir = entry.map_err(list_error)?.path();
            let marker = dir.join(crate::paths::TXN_FINISHED);
            if marker.is_file() && crate::fs_safe::untrusted(&dir, false).is_none() {
                continue;
            }
            if !dir.join(crate::paths::MANIFEST).is_file() {
                continue;
            }
            let manifest = load(&dir)?;
            if manifest.state == TxnState::Open {
                open.push(manifest);
            } else {
                mark_finished(&dir);
            }
        }
        open.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(open)
    }

    /// The transaction id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The transaction's directory, `<state-dir>/backups/<id>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest's header as last written: id, label, kind, state. Its `entries` are empty:
    /// they stay on disk ([`Transaction::entries`]).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every entry so far, in the order they were backed up, read from disk (the manifest and
    /// the journal).
    pub fn entries(&self) -> Result<Vec<BackupEntry>, TxnError> {
        load(&self.dir).map(|m| m.entries)
    }

    /// Saves `path` as it is now — bytes, mode, owner, or the fact that it does not exist — and
    /// records it in the journal, all before returning: call it before the first change to
    /// `path`. Backing up a file already in the transaction (by any path to it) does nothing, so
    /// the copy is always of the state before the transaction.
    pub fn backup(&mut self, path: &Path) -> Result<(), TxnError> {
        self.backup_all(&[path])
    }

    /// [`Transaction::backup`] for many files at once: every copy is flushed, then all the
    /// entries are one journal append and one fsync. Nothing is recorded when it fails.
    pub fn backup_all<P: AsRef<Path>>(&mut self, paths: &[P]) -> Result<(), TxnError> {
        let io = |action, path: &Path, e: &dyn std::fmt::Display| TxnError::Io {
            action,
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let mut seen = std::collections::HashSet::new();
        let mut todo = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let path = std::path::absolute(path).map_err(|e| io("find", path, &e))?;
            let target = resolve_symlinks(&path).map_err(|e| io("resolve", &path, &e))?;
            // `enabled/../available/x` and `available/x` are one file: canonicalise the
            // directory (the file itself may not exist yet).
            let target = match (target.parent().map(fs::canonicalize), target.file_name()) {
                (Some(Ok(dir)), Some(name)) => dir.join(name),
                _ => target,
            };
            let digest = target_digest(&target);
            if self.targets.contains(&digest) || !seen.insert(digest) {
                continue;
            }
            let index = self.count + todo.len();
            todo.push((path, target, index));
        }
        // The copies are independent files, each flushed on its own: many at once.
        let copies = crate::bounded::map(&todo, COPY_CONCURRENCY, |(path, target, index)| {
            self.copy_entry(path.clone(), target.clone(), *index)
        });
        let batch = copies.into_iter().collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            return Ok(());
        }
        if batch.iter().any(|e| e.copy.is_some()) {
            let files = self.dir.join(crate::paths::BACKUP_FILES);
            sync_dir(&files).map_err(|e| io("flush", &files, &e))?;
            sync_dir(&self.dir).map_err(|e| io("flush", &self.dir, &e))?;
        }
        append_journal(&self.dir, &batch)?;
        self.targets.extend(seen);
        self.count += batch.len();
        Ok(())
    }

    /// Copies one file into `files/<index>` (written and fsynced, not yet in the journal).
    fn copy_entry(
        &self,
        path: PathBuf,
        target: PathBuf,
        index: usize,
    ) -> Result<BackupEntry, TxnError> {
        let io = |action, path: &Path, e: &dyn std::fmt::Display| TxnError::Io {
            action,
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let symlink = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                Some(fs::read_link(&path).map_err(|e| io("read the link", &path, &e))?)
            }
            _ => None,
        };
        let meta = match fs::metadata(&target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BackupEntry::absent(path, target, symlink));
            }
            Err(e) => return Err(io("inspect", &target, &e)),
            Ok(meta) if !meta.is_file() => return Err(TxnError::NotAFile { path }),
            Ok(meta) => meta,
        };
        let bytes = fs::read(&target).map_err(|e| io("read", &target, &e))?;
        let files = self.dir.join(crate::paths::BACKUP_FILES);
        if !files.is_dir() {
            ensure_dir(&files, 0o700).map_err(|e| io("create", &files, &e))?;
        }
        let copy = PathBuf::from(crate::paths::BACKUP_FILES).join(index.to_string());
        let copy_path = self.dir.join(&copy);
        write_copy(&copy_path, &bytes).map_err(|e| io("back up", &copy_path, &e))?;
        Ok(BackupEntry {
            path,
            target,
            symlink,
            existed: true,
            mode: Some(meta.permissions().mode() & 0o7777),
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
            sha256: Some(sha256_hex(&bytes)),
            copy: Some(copy),
        })
    }

    /// Puts every backed-up file back as it was — same bytes, mode and owner; a file that did not
    /// exist is deleted; a replaced symlink is put back — newest first, and marks the transaction
    /// restored. Goes on past a file that fails and reports all failures at the end. Returns the
    /// paths whose content was changed back.
    ///
    /// Entries that touch different files (each file and link in one entry only: what a
    /// transaction's backups are) are restored [`RESTORE_CONCURRENCY`] at once, each file flushed,
    /// and each directory they were put back into is flushed once at the end, before the
    /// transaction is marked restored: a crash before that leaves it open, and the next run
    /// restores it again.
    pub fn restore(&mut self) -> Result<Vec<PathBuf>, TxnError> {
        let mut changed = Vec::new();
        let mut failures = Vec::new();
        let entries = self.entries()?;
        let newest_first: Vec<&BackupEntry> = entries.iter().rev().collect();
        let at_once = if touch_different_files(&entries) {
            RESTORE_CONCURRENCY
        } else {
            1
        };
        let outcomes = crate::bounded::map(&newest_first, at_once, |entry| {
            restore_entry(&self.dir, entry)
        });
        let mut dirs = std::collections::HashSet::new();
        for (entry, outcome) in newest_first.iter().zip(outcomes) {
            match outcome {
                Ok(true) => {
                    changed.push(entry.path.clone());
                    dirs.extend(entry.target.parent().map(Path::to_path_buf));
                    dirs.extend(entry.path.parent().map(Path::to_path_buf));
                }
                Ok(false) => {}
                Err(e) => failures.push(e.to_string()),
            }
        }
        if let Err(e) = sync_dirs(dirs.iter().map(PathBuf::as_path)) {
            failures.push(format!("{e:#}"));
        }
        if !failures.is_empty() {
            return Err(TxnError::Incomplete {
                id: self.manifest.id.clone(),
                failures,
            });
        }
        self.set_state(TxnState::Restored)?;
        Ok(changed)
    }

    /// Marks the transaction committed: the change is kept. The copies stay for `rollback`.
    pub fn commit(&mut self) -> Result<(), TxnError> {
        self.set_state(TxnState::Committed)
    }

    fn set_state(&mut self, state: TxnState) -> Result<(), TxnError> {
        // The manifest is written whole once, with every entry folded in, each streamed from
        // the journal as it is written (tens of thousands after a large install).
        let listed = read_manifest(&self.dir.join(crate::paths::MANIFEST))?;
        let header = Manifest { state, ..listed };
        let journal = self.dir.join(crate::paths::JOURNAL);
        write_manifest(
            &self.dir,
            &Streamed {
                header: &header,
                journal,
            },
        )?;
        self.manifest.state = state;
        // Every entry is in the manifest now; a journal left behind (a crash right here) only
        // repeats entries, which reading skips.
        let _ = fs::remove_file(self.dir.join(crate::paths::JOURNAL));
        if state != TxnState::Open {
            mark_finished(&self.dir);
        }
        Ok(())
    }
}

/// A manifest written with its journal's entries folded in, each read from the journal as it is
/// written: the bytes of the whole [`Manifest`] ([`load`]'s entries), never all held at once.
struct Streamed<'a> {
    /// The manifest file's header and its own entries.
    header: &'a Manifest,
    /// The journal whose entries follow (a repeat of a target skipped; a torn tail ignored).
    journal: PathBuf,
}

impl Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let h = self.header;
        let mut out = s.serialize_struct("Manifest", 7)?;
        out.serialize_field("version", &h.version)?;
        out.serialize_field("id", &h.id)?;
        out.serialize_field("created", &h.created)?;
        out.serialize_field("label", &h.label)?;
        match &h.kind {
            Some(kind) => out.serialize_field("kind", kind)?,
            None => out.skip_field("kind")?,
        }
        out.serialize_field("state", &h.state)?;
        out.serialize_field("entries", &StreamedEntries(self))?;
        out.end()
    }
}

/// The `entries` of a [`Streamed`] manifest.
struct StreamedEntries<'a>(&'a Streamed<'a>);

impl Serialize for StreamedEntries<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq as _};
        use std::io::BufRead as _;
        let mut seq = s.serialize_seq(None)?;
        let mut seen = std::collections::HashSet::new();
        for entry in &self.0.header.entries {
            seen.insert(target_digest(&entry.target));
            seq.serialize_element(entry)?;
        }
        let file = match File::open(&self.0.journal) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return seq.end(),
            Err(e) => return Err(S::Error::custom(format!("journal: {e}"))),
        };
        let mut reader = std::io::BufReader::new(file);
        let (mut line, mut line_no, mut damaged) = (Vec::new(), 0, None);
        loop {
            line.clear();
            let read = (reader.read_until(b'\n', &mut line))
                .map_err(|e| S::Error::custom(format!("journal: {e}")))?;
            // The end, or a torn tail (the append never finished).
            if read == 0 || line.last() != Some(&b'\n') {
                break;
            }
            line_no += 1;
            // A bad line is damage only when a whole line follows it (as `read_journal` says).
            if let Some(reason) = damaged.take() {
                return Err(S::Error::custom(format!("journal: {reason}")));
            }
            match serde_json::from_slice::<BackupEntry>(&line[..line.len() - 1]) {
                Ok(entry) if seen.insert(target_digest(&entry.target)) => {
                    seq.serialize_element(&entry)?
                }
                Ok(_) => {}
                Err(e) => damaged = Some(format!("line {line_no} is damaged: {e}")),
            }
        }
        seq.end()
    }
}

/// Writes `manifest` as a transaction directory's `manifest.json` (0600, atomically).
fn write_manifest(dir: &Path, manifest: &impl Serialize) -> Result<(), TxnError> {
    let path = dir.join(crate::paths::MANIFEST);
    let manifest_error = |reason: String| TxnError::Manifest {
        path: path.clone(),
        reason,
    };
    // Written as it is serialized: a 10,000-site install's manifest is tens of megabytes.
    let mut write = |file: &mut dyn Write| {
        serde_json::to_writer_pretty(&mut *file, manifest)
            .map_err(|e| std::io::Error::other(format!("{e} (paths must be UTF-8)")))?;
        file.write_all(b"\n")
    };
    let target = resolve_symlinks(&path).map_err(|e| manifest_error(format!("{e:#}")))?;
    write_atomic_with(&target, 0o600, &mut write).map_err(|e| manifest_error(format!("{e:#}")))
}

/// How many files [`Transaction::restore`] puts back at once.
const RESTORE_CONCURRENCY: usize = 16;

/// Whether no file or link appears in two of `entries` (as the path backed up or the file
/// behind it): then the order they are restored in changes nothing.
fn touch_different_files(entries: &[BackupEntry]) -> bool {
    let mut seen = std::collections::HashSet::new();
    entries.iter().all(|e| {
        let target = (e.target != e.path).then_some(&e.target);
        seen.insert(&e.path) && target.is_none_or(|t| seen.insert(t))
    })
}

/// Restores one file; `Ok(true)` when something on disk changed. Nothing is followed: each
/// path's directories are opened from `/` without following links (they were resolved when the
/// file was backed up), and the file is replaced — never written through a link — with its
/// mode and owner set on the new file before it takes the old one's place. The file is
/// flushed, its directory is not: the caller flushes the directory of every `Ok(true)`.
fn restore_entry(dir: &Path, entry: &BackupEntry) -> Result<bool, TxnError> {
    let io = |action, path: &Path, e: &dyn std::fmt::Display| TxnError::Io {
        action,
        path: path.to_path_buf(),
        reason: format!("{e:#}"),
    };
    let mut changed = false;
    if let Some(link) = &entry.symlink
        && fs::read_link(&entry.path).ok().as_ref() != Some(link)
    {
        put_back_link(&entry.path, link).map_err(|e| io("recreate the link", &entry.path, &e))?;
        changed = true;
    }
    if !entry.existed {
        return crate::fs_safe::remove_no_follow(&entry.target)
            .map(|removed| removed || changed)
            .map_err(|e| io("remove", &entry.target, &e));
    }
    let (Some(copy), Some(mode)) = (&entry.copy, entry.mode) else {
        return Err(TxnError::Manifest {
            path: dir.join(crate::paths::MANIFEST),
            reason: format!("the entry for {} has no copy or mode", entry.path.display()),
        });
    };
    let copy_path = dir.join(copy);
    if let Some(reason) = crate::fs_safe::untrusted(&copy_path, false) {
        return Err(io("read the backup copy", &copy_path, &reason));
    }
    let bytes = fs::read(&copy_path).map_err(|e| io("read the backup copy", &copy_path, &e))?;
    if entry.sha256.as_deref() != Some(sha256_hex(&bytes).as_str()) {
        return Err(TxnError::Damaged {
            path: entry.path.clone(),
            copy: copy_path,
        });
    }
    let current = fs::symlink_metadata(&entry.target)
        .ok()
        .filter(|m| m.file_type().is_file());
    let same = current.as_ref().is_some_and(|m| {
        m.permissions().mode() & 0o7777 == mode
            && (entry.uid.is_none() || Some(m.uid()) == entry.uid)
            && (entry.gid.is_none() || Some(m.gid()) == entry.gid)
    }) && fs::read(&entry.target).ok().as_deref() == Some(&bytes[..]);
    if same {
        return Ok(changed);
    }
    let owner = entry.uid.zip(entry.gid);
    crate::fs_safe::put_back_file(&entry.target, &bytes, mode, owner)
        .map_err(|e| io("restore", &entry.target, &e))?;
    Ok(true)
}

/// Puts the link `path` -> `link` back, replacing whatever is at `path` (through a handle on its
/// parent, opened without following links).
fn put_back_link(path: &Path, link: &Path) -> anyhow::Result<()> {
    let (parent, name) = crate::fs_safe::open_parent_no_follow(path)?;
    match nix::unistd::unlinkat(
        &parent,
        name.as_os_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(anyhow!(e)),
    }
    nix::unistd::symlinkat(link, &parent, name.as_os_str())?;
    Ok(())
}

/// Marks a transaction's directory as finished (its manifest, already on disk, says committed
/// or restored), so [`Transaction::list_open`] need not read the manifest. Only a hint: when the
/// marker is lost (a crash before it reached the disk), the manifest is read instead — so
/// failures are ignored and nothing is flushed.
fn mark_finished(dir: &Path) {
    let _ = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(dir.join(crate::paths::TXN_FINISHED));
}

/// A transaction's manifest with the journal's entries after its own (an entry whose target the
/// manifest already has is a repeat, skipped).
fn load(dir: &Path) -> Result<Manifest, TxnError> {
    let journal = dir.join(crate::paths::JOURNAL);
    let manifest_path = dir.join(crate::paths::MANIFEST);
    // Root restores what a manifest names: one another user could have written is not read.
    for path in [
        dir,
        &manifest_path,
        &journal,
        &dir.join(crate::paths::BACKUP_FILES),
    ] {
        if let Some(reason) = crate::fs_safe::untrusted(path, false) {
            return Err(TxnError::Manifest {
                path: manifest_path.clone(),
                reason,
            });
        }
    }
    let mut manifest = read_manifest(&manifest_path)?;
    let bytes = match fs::read(&journal) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(manifest),
        Err(e) => {
            return Err(TxnError::Manifest {
                path: journal,
                reason: e.to_string(),
            });
        }
    };
    let entries = read_journal(&bytes).map_err(|reason| TxnError::Manifest {
        path: journal,
        reason,
    })?;
    let mut seen: std::collections::HashSet<PathBuf> =
        manifest.entries.iter().map(|e| e.target.clone()).collect();
    for entry in entries {
        if seen.insert(entry.target.clone()) {
            manifest.entries.push(entry);
        }
    }
    Ok(manifest)
}

/// The entries of a journal: one JSON line each. Only the last line may be torn (no newline, or
/// not parsing — a crash mid-append); it is ignored. A bad line before a good one is damage.
fn read_journal(bytes: &[u8]) -> Result<Vec<BackupEntry>, String> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    let mut line_no = 0;
    while !rest.is_empty() {
        line_no += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            break; // torn tail: the append never finished
        };
        let (line, tail) = (&rest[..end], &rest[end + 1..]);
        rest = tail;
        match serde_json::from_slice::<BackupEntry>(line) {
            Ok(entry) => entries.push(entry),
            // A torn tail may read as a line (the size grew before the bytes landed).
            Err(_) if !rest.contains(&b'\n') => break,
            Err(e) => return Err(format!("line {line_no} is damaged: {e}")),
        }
    }
    Ok(entries)
}

/// Appends `entries` to the journal (created 0600) as one write, then one fsync.
fn append_journal(dir: &Path, entries: &[BackupEntry]) -> Result<(), TxnError> {
    let path = dir.join(crate::paths::JOURNAL);
    let journal_error = |reason: String| TxnError::Manifest {
        path: path.clone(),
        reason,
    };
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| journal_error(e.to_string()))?;
    let before = file
        .metadata()
        .map_err(|e| journal_error(e.to_string()))?
        .len();
    // Streamed through a small buffer: tens of thousands of entries are never one string.
    let appended = (|| {
        let mut out = std::io::BufWriter::with_capacity(JOURNAL_BUFFER, &mut file);
        for entry in entries {
            serde_json::to_writer(&mut out, entry)
                .map_err(|e| format!("{e} (paths must be UTF-8)"))?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())
    })();
    if let Err(reason) = appended {
        // Nothing is recorded when it fails: the lines written so far are taken back.
        let _ = file.set_len(before);
        return Err(journal_error(reason));
    }
    file.sync_data().map_err(|e| journal_error(e.to_string()))?;
    if created {
        sync_dir(dir).map_err(|e| journal_error(format!("{e:#}")))?;
    }
    Ok(())
}

/// The buffer a journal append goes through ([`append_journal`]).
const JOURNAL_BUFFER: usize = 64 * 1024;

/// Writes a byte copy (0600) and fsyncs it; the caller fsyncs the directory once per batch.
fn write_copy(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // A leftover of a run that died before its journal append is overwritten.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_data()?;
    Ok(())
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

fn read_manifest(path: &Path) -> Result<Manifest, TxnError> {
    let bytes = fs::read(path).map_err(|e| TxnError::Manifest {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| TxnError::Manifest {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_under_the_temp_name_or_the_no_follow_name_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").expect("victim");
        let web = dir.path().join("web");
        fs::create_dir(&web).expect("web");
        let tmp = web.join(format!(".a.txt.enc365-tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).expect("link");
        write_atomic(&web.join("a.txt"), b"dcv", 0o644).expect("written");
        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
        assert_eq!(fs::read_to_string(web.join("a.txt")).expect("a"), "dcv");

        let link = web.join("b.txt");
        std::os::unix::fs::symlink(&victim, &link).expect("link");
        write_atomic_no_follow(&link, b"dcv", 0o644).expect("written");
        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
        assert!(
            !fs::symlink_metadata(&link)
                .expect("b")
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn restore_replaces_a_link_planted_at_the_file_and_never_writes_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let (file, victim) = (dir.path().join("site.conf"), dir.path().join("victim"));
        fs::write(&file, "original").unwrap();
        fs::write(&victim, "precious").unwrap();
        let mut txn = Transaction::begin(&dir.path().join("state"), "test").unwrap();
        txn.backup(&file).unwrap();
        fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&victim, &file).unwrap();
        txn.restore().unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(&file).unwrap().is_file());
        assert_eq!(fs::read_to_string(&file).unwrap(), "original");
    }

    #[test]
    fn many_files_are_replaced_at_once_and_a_failure_is_told_after_the_others_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        let paths: Vec<PathBuf> = (0..40)
            .map(|i| [&a, &b][i % 2].join(format!("site{i}.conf")))
            .collect();
        for p in &paths {
            fs::write(p, "old").unwrap();
        }
        let missing = dir.path().join("gone/site.conf");
        let contents: Vec<String> = (0..40).map(|i| format!("new {i}")).collect();
        let mut files: Vec<(&Path, &[u8], u32)> = (paths.iter().zip(&contents))
            .map(|(p, c)| (p.as_path(), c.as_bytes(), 0o640))
            .collect();
        write_atomic_all(&files).unwrap();
        for (p, c) in paths.iter().zip(&contents) {
            assert_eq!(&fs::read_to_string(p).unwrap(), c);
            assert_eq!(
                fs::metadata(p).unwrap().permissions().mode() & 0o7777,
                0o640
            );
        }
        // A file that cannot be written fails the call, after the others are written.
        files.insert(3, (missing.as_path(), b"x", 0o644));
        files.iter_mut().for_each(|f| f.1 = b"again");
        let error = write_atomic_all(&files).unwrap_err();
        assert!(format!("{error:#}").contains("/gone/"), "{error:#}");
        for p in &paths {
            assert_eq!(fs::read_to_string(p).unwrap(), "again");
        }
        // No temporary file is left anywhere.
        for d in [&a, &b] {
            assert_eq!(fs::read_dir(d).unwrap().count(), 20);
        }
    }

    #[test]
    fn a_staged_record_is_unseen_until_put_in_place_and_a_discarded_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let read = |p: &Path| -> serde_json::Value { read_record(p, "").unwrap().unwrap() };
        // A rewrite staged in the spare, then discarded: the record and its spare are as before.
        let order = dir.path().join("orders/site.json");
        rewrite_record(&order, &serde_json::json!({"state": "issued"}), true).unwrap();
        rewrite_record(
            &order,
            &serde_json::json!({"state": "issued", "n": 2}),
            true,
        )
        .unwrap();
        let spare = spare_path(&order).unwrap();
        let staged = stage_rewrite(&order, &serde_json::json!({"state": "installed"}), false);
        let staged = staged.unwrap();
        assert_eq!(read(&order), serde_json::json!({"state": "issued", "n": 2}));
        staged.discard();
        assert_eq!(read(&order), serde_json::json!({"state": "issued", "n": 2}));
        assert!(
            !spare.exists(),
            "the spare that held the staged bytes is gone"
        );
        // Staged again and put in place: the new bytes, and a closed record keeps no spare.
        let staged = stage_rewrite(&order, &serde_json::json!({"state": "installed"}), false);
        let staged = staged.unwrap();
        assert_eq!(staged.dir(), order.parent().unwrap());
        staged.put_in_place().unwrap();
        assert_eq!(read(&order), serde_json::json!({"state": "installed"}));
        assert!(!spare.exists());
        // A new record staged: nothing under its name until it is put in place.
        let lineage = dir.path().join("certs/site.json");
        let staged = stage_record(&lineage, &serde_json::json!({"site": "site"})).unwrap();
        assert!(!lineage.exists());
        assert!(record_names(&dir.path().join("certs")).unwrap().is_empty());
        staged.put_in_place().unwrap();
        sync_dirs([lineage.parent().unwrap(), order.parent().unwrap()]).unwrap();
        assert_eq!(read(&lineage), serde_json::json!({"site": "site"}));
        assert_eq!(fs::read_dir(dir.path().join("certs")).unwrap().count(), 1);
        assert_eq!(
            fs::metadata(&lineage).unwrap().permissions().mode() & 0o7777,
            0o600
        );
    }

    #[test]
    fn a_rewritten_record_swaps_with_one_spare_and_frees_no_inode_until_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders/site.json");
        let spare = spare_path(&path).unwrap();
        rewrite_record(&path, &serde_json::json!({"step": 1}), true).unwrap();
        assert!(
            !spare.exists(),
            "the first write renames its spare into place"
        );
        rewrite_record(&path, &serde_json::json!({"step": 2}), true).unwrap();
        let (record_ino, spare_ino) = (
            fs::metadata(&path).unwrap().ino(),
            fs::metadata(&spare).unwrap().ino(),
        );
        rewrite_record(
            &path,
            &serde_json::json!({"step": 3, "longer": "x".repeat(100)}),
            true,
        )
        .unwrap();
        rewrite_record(&path, &serde_json::json!({"step": 4}), true).unwrap();
        // The same two files, swapped back and forth: no inode made or freed.
        assert_eq!(fs::metadata(&path).unwrap().ino(), record_ino);
        assert_eq!(fs::metadata(&spare).unwrap().ino(), spare_ino);
        let read: serde_json::Value = read_record(&path, "").unwrap().unwrap();
        assert_eq!(
            read,
            serde_json::json!({"step": 4}),
            "a shorter record leaves no old tail"
        );
        for p in [&path, &spare] {
            assert_eq!(
                fs::metadata(p).unwrap().permissions().mode() & 0o7777,
                0o600
            );
        }
        assert_eq!(record_names(path.parent().unwrap()).unwrap().len(), 1);
        rewrite_record(&path, &serde_json::json!({"step": 5}), false).unwrap();
        assert!(!spare.exists(), "a closed record keeps no spare");
        let read: serde_json::Value = read_record(&path, "").unwrap().unwrap();
        assert_eq!(read, serde_json::json!({"step": 5}));
    }

    #[test]
    fn a_planted_spare_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.json");
        let spare = spare_path(&path).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        rewrite_record(&path, &serde_json::json!({"step": 1}), true).unwrap();
        std::os::unix::fs::symlink(&victim, &spare).unwrap();
        rewrite_record(&path, &serde_json::json!({"step": 2}), true).unwrap();
        fs::hard_link(&victim, dir.path().join("victim2")).unwrap();
        fs::remove_file(&spare).unwrap();
        fs::hard_link(&victim, &spare).unwrap();
        rewrite_record(&path, &serde_json::json!({"step": 3}), true).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        let read: serde_json::Value = read_record(&path, "").unwrap().unwrap();
        assert_eq!(read, serde_json::json!({"step": 3}));
        assert!(
            !fs::symlink_metadata(&spare)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        fs::set_permissions(&spare, fs::Permissions::from_mode(0o644)).unwrap();
        rewrite_record(&path, &serde_json::json!({"step": 4}), true).unwrap();
        assert_eq!(
            fs::metadata(&spare).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o600
        );
    }

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

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// A tree with a non-UTF-8 CRLF file, a symlinked site and a path that does not exist yet.
    struct Tree {
        _dir: tempfile::TempDir,
        state: PathBuf,
        plain: PathBuf,
        link: PathBuf,
        real: PathBuf,
        created: PathBuf,
    }

    const PLAIN: &[u8] = b"# caf\xe9 \xff\r\nserver {\r\n\tlisten 80;\r\n}";
    const SITE: &[u8] = b"server { server_name shop.test; }\n";

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs::create_dir_all(etc.join("available")).unwrap();
        fs::create_dir_all(etc.join("enabled")).unwrap();
        let plain = etc.join("nginx.conf");
        fs::write(&plain, PLAIN).unwrap();
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o640)).unwrap();
        let real = etc.join("available/shop.conf");
        fs::write(&real, SITE).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        let link = etc.join("enabled/shop.conf");
        std::os::unix::fs::symlink("../available/shop.conf", &link).unwrap();
        Tree {
            state: dir.path().join("state"),
            created: etc.join("ssl-params.conf"),
            _dir: dir,
            plain,
            link,
            real,
        }
    }

    /// Changes every file of the tree the way an install would.
    fn change_everything(t: &Tree) {
        write_atomic(&t.plain, b"changed\n", 0o644).unwrap();
        write_atomic(&t.link, b"changed site\n", 0o600).unwrap();
        write_atomic(&t.created, b"ssl_protocols TLSv1.2;\n", 0o644).unwrap();
    }

    fn assert_original(t: &Tree) {
        assert_eq!(fs::read(&t.plain).unwrap(), PLAIN);
        assert_eq!(mode_of(&t.plain), 0o640);
        assert!(
            fs::symlink_metadata(&t.link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&t.real).unwrap(), SITE);
        assert_eq!(mode_of(&t.real), 0o644);
        assert!(
            !t.created.exists(),
            "a file the transaction created is removed"
        );
    }

    #[test]
    fn restore_puts_every_file_back_byte_identical() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto: shop.test").unwrap();
        for path in [&t.plain, &t.link, &t.created] {
            txn.backup(path).unwrap();
        }
        change_everything(&t);
        let changed = txn.restore().unwrap();
        assert_original(&t);
        assert_eq!(changed.len(), 3);
        assert_eq!(txn.manifest().state, TxnState::Restored);
        let listed = Transaction::list(&t.state).unwrap();
        assert_eq!(listed[0].state, TxnState::Restored);
        // Restoring again changes nothing and still succeeds.
        assert!(txn.restore().unwrap().is_empty());
        assert_original(&t);
    }

    #[test]
    fn many_files_in_several_directories_are_restored_at_once_byte_identical() {
        let t = tree();
        let etc = t.plain.parent().unwrap();
        let dirs = [etc.join("many-a"), etc.join("many-b")];
        let mut files = Vec::new();
        for (d, dir) in dirs.iter().enumerate() {
            fs::create_dir_all(dir).unwrap();
            for i in 0..40 {
                let path = dir.join(format!("site-{i}.conf"));
                let bytes = format!("server {{ # {d}/{i}\n}}\n").into_bytes();
                fs::write(&path, &bytes).unwrap();
                files.push((path, bytes));
            }
        }
        let gone = dirs[1].join("made-by-the-change.conf");
        let mut txn = Transaction::begin(&t.state, "many").unwrap();
        let mut paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
        paths.push(&gone);
        txn.backup_all(&paths).unwrap();
        for (path, _) in &files {
            fs::write(path, b"changed\n").unwrap();
        }
        fs::write(&gone, b"new\n").unwrap();
        let changed = txn.restore().unwrap();
        assert_eq!(changed.len(), files.len() + 1);
        for (path, bytes) in &files {
            assert_eq!(&fs::read(path).unwrap(), bytes, "{}", path.display());
        }
        assert!(!gone.exists());
        assert_eq!(txn.manifest().state, TxnState::Restored);
    }

    #[test]
    fn entries_sharing_a_file_are_not_restored_at_once() {
        let entry =
            |path: &str, target: &str| BackupEntry::absent(path.into(), target.into(), None);
        let apart = [entry("/a", "/a"), entry("/l", "/b"), entry("/c", "/c")];
        assert!(touch_different_files(&apart));
        let link_and_file = [entry("/l", "/b"), entry("/b", "/b")];
        assert!(!touch_different_files(&link_and_file));
        let two_links = [entry("/l1", "/b"), entry("/l2", "/b")];
        assert!(!touch_different_files(&two_links));
    }

    #[test]
    fn backup_is_on_disk_before_the_file_is_touched() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "test").unwrap();
        txn.backup(&t.plain).unwrap();
        let manifest = load(txn.dir()).unwrap();
        assert_eq!(manifest.entries.len(), 1);
        let entry = &manifest.entries[0];
        assert!(entry.existed);
        assert_eq!(entry.mode, Some(0o640));
        assert_eq!(
            fs::read(txn.dir().join(entry.copy.as_ref().unwrap())).unwrap(),
            PLAIN
        );
        assert_eq!(mode_of(&t.state.join("backups")), 0o700);
        assert_eq!(mode_of(txn.dir()), 0o700);
        assert_eq!(mode_of(&txn.dir().join("manifest.json")), 0o600);
        assert_eq!(mode_of(&t.state), 0o711);
    }

    #[test]
    fn backing_up_a_file_twice_keeps_the_state_before_the_transaction() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "test").unwrap();
        txn.backup(&t.link).unwrap();
        write_atomic(&t.real, b"first change\n", 0o644).unwrap();
        txn.backup(&t.real).unwrap(); // same file through its real path
        txn.backup(&t.link).unwrap();
        assert_eq!(txn.entries().unwrap().len(), 1);
        txn.restore().unwrap();
        assert_eq!(fs::read(&t.real).unwrap(), SITE);
    }

    #[test]
    fn a_run_that_dies_without_commit_can_be_restored_from_its_manifest() {
        let t = tree();
        let id = {
            let mut txn = Transaction::begin(&t.state, "auto").unwrap();
            for path in [&t.plain, &t.link, &t.created] {
                txn.backup(path).unwrap();
            }
            change_everything(&t);
            txn.id().to_string()
            // dropped here without commit or restore, as a crash would leave it
        };
        let listed = Transaction::list(&t.state).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].state),
            (id.as_str(), TxnState::Open)
        );
        let mut txn = Transaction::open(&t.state, &id).unwrap();
        txn.restore().unwrap();
        assert_original(&t);
    }

    #[test]
    fn many_records_are_read_whole_on_two_threads_and_a_damaged_one_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("r");
        // Larger than the first buffer, to be read in several reads.
        let long = "x".repeat(40_000);
        for i in 0..600u32 {
            let text = if i == 7 { long.clone() } else { i.to_string() };
            write_record(&records.join(format!("{i}.json")), &(i, text)).unwrap();
        }
        fs::write(records.join("ignored.key"), b"not a record").unwrap();
        let mut all: Vec<(u32, String)> = read_records(&records, "fix it").unwrap();
        all.sort();
        assert_eq!(all.len(), 600);
        assert_eq!(all[7].1, long);
        assert_eq!(all[599], (599, "599".to_string()));
        let wanted = |b: &[u8]| b.ends_with(b"\"5\"\n]");
        let few: Vec<(u32, String)> = read_records_if(&records, "fix it", wanted).unwrap();
        assert_eq!(few, [(5, "5".to_string())]);
        fs::write(records.join("bad.json"), b"{").unwrap();
        let e = read_records::<(u32, String)>(&records, "fix it").unwrap_err();
        assert!(
            format!("{e:#}").contains("bad.json is damaged; fix it"),
            "{e:#}"
        );
    }

    #[test]
    fn list_open_finds_open_transactions_without_reading_finished_manifests() {
        let t = tree();
        let mut committed = Transaction::begin(&t.state, "committed").unwrap();
        committed.backup(&t.plain).unwrap();
        committed.commit().unwrap();
        let mut restored = Transaction::begin(&t.state, "restored").unwrap();
        restored.backup(&t.link).unwrap();
        restored.restore().unwrap();
        let mut open = Transaction::begin(&t.state, "open").unwrap();
        open.backup(&t.created).unwrap();
        let ids = |list: Vec<Manifest>| list.into_iter().map(|m| m.label).collect::<Vec<_>>();
        assert_eq!(ids(Transaction::list_open(&t.state).unwrap()), ["open"]);
        let marker = |txn: &Transaction| txn.dir().join(crate::paths::TXN_FINISHED);
        assert!(marker(&committed).is_file() && marker(&restored).is_file());
        assert!(!marker(&open).exists());
        // A finished manifest is not read: one made unreadable behind its marker is not an error.
        fs::write(committed.dir().join(crate::paths::MANIFEST), b"{ damaged").unwrap();
        assert_eq!(ids(Transaction::list_open(&t.state).unwrap()), ["open"]);
        // A crash between the manifest's last write and the marker: the manifest decides, and
        // the marker is written then.
        fs::remove_file(marker(&restored)).unwrap();
        assert_eq!(ids(Transaction::list_open(&t.state).unwrap()), ["open"]);
        assert!(marker(&restored).is_file());
        // Once the open one ends, nothing is open.
        open.commit().unwrap();
        assert!(Transaction::list_open(&t.state).unwrap().is_empty());
        assert!(
            Transaction::list_open(&t.state.join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_replaced_symlink_is_put_back() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "test").unwrap();
        txn.backup(&t.link).unwrap();
        fs::remove_file(&t.link).unwrap();
        fs::write(&t.link, b"a panel replaced the link with a file\n").unwrap();
        txn.restore().unwrap();
        assert_original(&t);
    }

    #[test]
    fn commit_keeps_the_change_and_list_is_oldest_first() {
        let t = tree();
        let mut first = Transaction::begin(&t.state, "one").unwrap();
        first.backup(&t.plain).unwrap();
        write_atomic(&t.plain, b"kept\n", 0o640).unwrap();
        first.commit().unwrap();
        let second = Transaction::begin(&t.state, "two").unwrap();
        assert_ne!(first.id(), second.id());
        let listed = Transaction::list(&t.state).unwrap();
        let summary: Vec<_> = listed.iter().map(|m| (m.label.as_str(), m.state)).collect();
        assert_eq!(
            summary,
            [("one", TxnState::Committed), ("two", TxnState::Open)]
        );
        assert_eq!(fs::read(&t.plain).unwrap(), b"kept\n");
        // A committed transaction can still be rolled back later.
        Transaction::open(&t.state, first.id())
            .unwrap()
            .restore()
            .unwrap();
        assert_eq!(fs::read(&t.plain).unwrap(), PLAIN);
    }

    #[test]
    fn the_manifest_is_written_as_it_is_serialized_with_the_same_bytes_and_mode() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "streamed").unwrap();
        txn.backup(&t.plain).unwrap();
        txn.commit().unwrap();
        let path = txn.dir().join(crate::paths::MANIFEST);
        let whole = Manifest {
            entries: txn.entries().unwrap(),
            ..txn.manifest().clone()
        };
        let mut want = serde_json::to_vec_pretty(&whole).unwrap();
        want.push(b'\n');
        assert_eq!(fs::read(&path).unwrap(), want);
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(read_manifest(&path).unwrap().entries.len(), 1);
    }

    #[test]
    fn a_damaged_copy_is_not_restored_and_the_others_are() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "test").unwrap();
        txn.backup(&t.plain).unwrap();
        txn.backup(&t.link).unwrap();
        change_everything(&t);
        let copy = txn
            .dir()
            .join(txn.entries().unwrap()[0].copy.as_ref().unwrap());
        fs::write(&copy, b"bit rot").unwrap();
        let err = txn.restore().unwrap_err();
        assert!(matches!(&err, TxnError::Incomplete { failures, .. } if failures.len() == 1));
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(
            fs::read(&t.plain).unwrap(),
            b"changed\n",
            "not overwritten with garbage"
        );
        assert_eq!(
            fs::read(&t.real).unwrap(),
            SITE,
            "the other file is restored"
        );
        assert_eq!(txn.manifest().state, TxnState::Open);
    }

    #[test]
    fn transactions_begun_in_the_same_second_list_in_the_order_they_began() {
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<String> = (0..20).map(|i| format!("run {i}")).collect();
        for label in &labels {
            Transaction::begin(dir.path(), label).unwrap();
        }
        let listed: Vec<String> = Transaction::list(dir.path())
            .unwrap()
            .into_iter()
            .map(|m| m.label)
            .collect();
        assert_eq!(listed, labels);
    }

    #[test]
    fn directories_and_unknown_ids_are_refused() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "test").unwrap();
        let err = txn.backup(t.real.parent().unwrap()).unwrap_err();
        assert!(matches!(err, TxnError::NotAFile { .. }), "{err}");
        for id in ["nope", "../backups", ""] {
            let err = Transaction::open(&t.state, id).unwrap_err();
            assert!(matches!(err, TxnError::NotFound { .. }), "{id}: {err}");
        }
        assert!(
            Transaction::list(&t.state.join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_second_run_lock_is_refused_with_exit_3() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let held = RunLock::acquire(&state).unwrap();
        assert_eq!(held.path(), state.join(LOCK_FILE));
        let err = RunLock::acquire(&state).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        assert!(err.to_string().contains("wait for it to finish"), "{err}");
        assert_eq!(Failure::from(err).status, crate::exit::ExitStatus::Locked);
        drop(held);
        RunLock::acquire(&state).expect("the lock is free once the holder is dropped");
    }

    #[test]
    fn an_unusable_state_dir_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let err = RunLock::acquire(&file.join("state")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
        assert_eq!(Failure::from(err).status, crate::exit::ExitStatus::Usage);
    }

    #[test]
    fn restore_gives_the_file_back_to_its_owner() {
        // chown needs root; CI and the package's timer run as root.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: owner restoration cannot be exercised here");
            return;
        }
        let t = tree();
        std::os::unix::fs::chown(&t.plain, Some(65534), Some(65534)).unwrap();
        let mut txn = Transaction::begin(&t.state, "test").unwrap();
        txn.backup(&t.plain).unwrap();
        write_atomic(&t.plain, b"changed\n", 0o644).unwrap();
        assert_eq!(
            fs::metadata(&t.plain).unwrap().uid(),
            0,
            "the write made root the owner"
        );
        txn.restore().unwrap();
        let meta = fs::metadata(&t.plain).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(fs::read(&t.plain).unwrap(), PLAIN);
    }

    #[test]
    fn a_transaction_kind_is_recorded_and_read_back_from_old_labels() {
        let dir = tempfile::tempdir().unwrap();
        let sites = vec!["a.test".to_string(), "b.test".to_string()];
        let install = TxnKind::Install {
            sites: sites.clone(),
        };
        let txn = Transaction::begin_kind(dir.path(), install.clone()).unwrap();
        assert_eq!(txn.manifest().label, "install: a.test, b.test");
        let listed = Transaction::list(dir.path()).unwrap();
        assert_eq!(listed[0].kind, Some(install.clone()));
        let mut old = listed[0].clone();
        old.kind = None;
        assert_eq!(old.kind(), install);
        old.label = "dcv: temporary validation locations".into();
        assert_eq!(old.kind(), TxnKind::Validation);
        old.label = "rollback: 20240101T000000Z-1".into();
        assert_eq!(
            old.kind(),
            TxnKind::Rollback {
                of: "20240101T000000Z-1".into()
            }
        );
        old.label = "auto: shop.test".into();
        assert_eq!(old.kind(), TxnKind::Other);
    }

    #[test]
    fn a_torn_journal_tail_is_ignored_and_the_entries_before_it_restore() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto").unwrap();
        txn.backup_all(&[&t.plain, &t.link]).unwrap();
        let id = txn.id().to_string();
        let journal = txn.dir().join(crate::paths::JOURNAL);
        drop(txn);
        change_everything(&t);
        // A crash mid-append: half a line, then (size grown, bytes not landed) a line of NULs.
        let whole = fs::read(&journal).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..whole.len() / 3]);
        fs::write(&journal, &torn).unwrap();
        assert_eq!(
            Transaction::open(&t.state, &id)
                .unwrap()
                .entries()
                .unwrap()
                .len(),
            2
        );
        let mut nuls = whole.clone();
        nuls.extend_from_slice(&[0u8; 40]);
        nuls.push(b'\n');
        fs::write(&journal, &nuls).unwrap();
        let mut txn = Transaction::open(&t.state, &id).unwrap();
        assert_eq!(txn.entries().unwrap().len(), 2);
        txn.restore().unwrap();
        assert_eq!(fs::read(&t.plain).unwrap(), PLAIN);
        assert_eq!(fs::read(&t.real).unwrap(), SITE);
        // Once restored, the manifest holds every entry and the journal is gone.
        assert!(!journal.exists());
        assert_eq!(
            read_manifest(&txn.dir().join("manifest.json"))
                .unwrap()
                .entries
                .len(),
            2
        );
    }

    #[test]
    fn a_batch_that_cannot_be_journaled_records_nothing_and_the_next_one_still_restores() {
        use std::os::unix::ffi::OsStrExt as _;
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto").unwrap();
        txn.backup(&t.plain).unwrap();
        let journal = txn.dir().join(crate::paths::JOURNAL);
        let before = fs::read(&journal).unwrap();
        // The first entry of this batch serializes; the second (a name that is not UTF-8)
        // does not, after the first was already streamed out.
        let odd = t
            .plain
            .with_file_name(std::ffi::OsStr::from_bytes(b"odd\xff.conf"));
        fs::write(&odd, b"odd\n").unwrap();
        let err = txn.backup_all(&[&t.link, &odd]).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        assert_eq!(
            fs::read(&journal).unwrap(),
            before,
            "a failed batch left lines behind"
        );
        txn.backup(&t.link).unwrap();
        let id = txn.id().to_string();
        drop(txn);
        change_everything(&t);
        let mut txn = Transaction::open(&t.state, &id).unwrap();
        assert_eq!(txn.entries().unwrap().len(), 2);
        txn.restore().unwrap();
        assert_eq!(fs::read(&t.plain).unwrap(), PLAIN);
        assert_eq!(fs::read(&t.real).unwrap(), SITE);
    }

    #[test]
    fn a_damaged_journal_line_before_a_good_one_is_an_error_naming_the_journal() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto").unwrap();
        txn.backup(&t.plain).unwrap();
        txn.backup(&t.link).unwrap();
        let journal = txn.dir().join(crate::paths::JOURNAL);
        let mut bytes = fs::read(&journal).unwrap();
        bytes[3] = b'#';
        fs::write(&journal, &bytes).unwrap();
        let err = Transaction::open(&t.state, txn.id()).unwrap_err();
        assert!(matches!(err, TxnError::Manifest { .. }), "{err}");
        assert!(err.to_string().contains("journal"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_run_that_dies_after_a_batch_is_recovered_from_its_journal_alone() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto").unwrap();
        txn.backup_all(&[&t.plain, &t.link, &t.created, &t.real])
            .unwrap();
        assert_eq!(
            txn.entries().unwrap().len(),
            3,
            "the link and its target are one file"
        );
        let id = txn.id().to_string();
        let journal = fs::read_to_string(txn.dir().join(crate::paths::JOURNAL)).unwrap();
        assert_eq!(journal.lines().count(), 3, "one line per entry");
        let manifest = read_manifest(&txn.dir().join("manifest.json")).unwrap();
        assert!(
            manifest.entries.is_empty(),
            "the manifest is not rewritten per entry"
        );
        drop(txn);
        change_everything(&t);
        let listed = Transaction::list(&t.state).unwrap();
        assert_eq!(
            (listed[0].state, listed[0].entries.len()),
            (TxnState::Open, 3)
        );
        Transaction::open(&t.state, &id).unwrap().restore().unwrap();
        assert_original(&t);
    }

    #[test]
    fn entries_are_held_on_disk_only_and_still_restore_byte_for_byte_and_fold_into_the_manifest() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto").unwrap();
        txn.backup_all(&[&t.plain, &t.link]).unwrap();
        // A repeat through another path to the same file is still recognised.
        txn.backup_all(&[&t.real, &t.created]).unwrap();
        assert!(txn.manifest().entries.is_empty(), "nothing held in memory");
        let entries = txn.entries().unwrap();
        let copies: Vec<_> = entries.iter().map(|e| e.copy.clone()).collect();
        assert_eq!(entries.len(), 3, "the link and its target are one file");
        assert_eq!(
            copies,
            [Some("files/0".into()), Some("files/1".into()), None],
            "copy indexes follow the entries"
        );
        change_everything(&t);
        txn.restore().unwrap();
        assert_original(&t);
        let manifest = read_manifest(&txn.dir().join(crate::paths::MANIFEST)).unwrap();
        assert_eq!(
            (manifest.state, manifest.entries),
            (TxnState::Restored, entries)
        );
    }

    #[test]
    fn a_committed_transaction_with_a_leftover_journal_lists_each_entry_once() {
        let t = tree();
        let mut txn = Transaction::begin(&t.state, "auto").unwrap();
        txn.backup_all(&[&t.plain, &t.link]).unwrap();
        let journal = txn.dir().join(crate::paths::JOURNAL);
        let kept = fs::read(&journal).unwrap();
        txn.commit().unwrap();
        // A crash between the manifest write and the journal's removal.
        fs::write(&journal, kept).unwrap();
        let listed = Transaction::list(&t.state).unwrap();
        assert_eq!(
            (listed[0].state, listed[0].entries.len()),
            (TxnState::Committed, 2)
        );
    }
}
