//! Reading configuration files from disk: only regular files, never more than
//! [`MAX_CONFIG_FILE`] bytes, with as few system calls as a file allows.
//!
//! An `include` may name anything a path can: a FIFO (whose `open` waits for a writer forever),
//! `/dev/zero` (endless), a directory. nginx itself would hang or fail on them; we refuse them with
//! a reason before reading a byte. A file is opened non-blocking (so a FIFO cannot stall the
//! `open`), checked with one `fstat`, and read with one `read` into a buffer of exactly its size
//! (a second `read` only when the file changed size under us).
//!
//! Files a glob names are opened relative to their directory, opened once ([`glob`]), so the
//! kernel does not walk the whole path again for each of thousands of files.
//!
//! Reads bytes; what they mean is left to [`crate::lexer`] and [`crate::tree`].

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

pub mod glob;

/// The largest configuration file we read (64 MiB): far beyond any real one (a large `geo` or `map`
/// list is a few MiB), small enough that a wrong include cannot exhaust memory.
pub const MAX_CONFIG_FILE: u64 = 64 << 20;

/// Why a configuration file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system refused (missing file, permissions, …).
    Io(std::io::Error),
    /// The path is not a regular file; the words say what it is (`a FIFO`, `a directory`, …).
    NotRegular(&'static str),
    /// The file holds more than [`MAX_CONFIG_FILE`] bytes.
    TooLarge,
}

impl ReadError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == ErrorKind::NotFound)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(what) => write!(
                f,
                "it is {what}, not a regular file (nginx configuration must be a file); point \
                 the include at a file"
            ),
            ReadError::TooLarge => write!(
                f,
                "it is larger than {} MiB, far more than any nginx configuration file; check \
                 that the include names the file you meant",
                MAX_CONFIG_FILE >> 20
            ),
        }
    }
}

/// Reads the whole of the regular file at `path` (symlinks followed).
pub fn read_config_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(describe(kind)));
    }
    if meta.len() > MAX_CONFIG_FILE {
        return Err(ReadError::TooLarge);
    }
    read_all(file, meta.len() as usize)
}

/// Reads the whole of the regular file `name` (one path component, symlinks followed) in the
/// open directory `dir`: [`read_config_file`] without walking the directory's path again.
pub fn read_config_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Vec<u8>, ReadError> {
    // A name from a directory listing is at most 255 bytes: NUL-terminated on the stack.
    let mut c_name = [0u8; 256];
    if name.len() >= c_name.len() || name.contains(&0) || name.contains(&b'/') {
        return Err(ReadError::Io(std::io::Error::from(ErrorKind::InvalidInput)));
    }
    c_name[..name.len()].copy_from_slice(name);
    // SAFETY: `c_name` is NUL-terminated; `dir` is an open descriptor for the whole call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c_name.as_ptr().cast(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(ReadError::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: an all-zero `stat` is valid; fstat fills it in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is writable.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(ReadError::Io(std::io::Error::last_os_error()));
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        return Err(ReadError::NotRegular(describe_mode(kind)));
    }
    if st.st_size as u64 > MAX_CONFIG_FILE {
        return Err(ReadError::TooLarge);
    }
    read_all(file, st.st_size as usize)
}

/// Words for a file type (`st_mode & S_IFMT`) that is not a regular file.
fn describe_mode(kind: libc::mode_t) -> &'static str {
    match kind {
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO (named pipe)",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        _ => "not a file",
    }
}

/// Reads `file`, expected to hold `size` bytes: one `read` when it does.
fn read_all(mut file: File, size: usize) -> Result<Vec<u8>, ReadError> {
    // One byte more than expected, so a file that grew is noticed without a second read.
    let mut bytes = vec![0u8; size + 1];
    let mut filled = 0;
    loop {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                // The size fstat gave: the file is complete (usually after one read).
                if filled == size {
                    break;
                }
                if filled == bytes.len() {
                    if bytes.len() as u64 > MAX_CONFIG_FILE {
                        return Err(ReadError::TooLarge);
                    }
                    let more = (bytes.len() * 2).min(MAX_CONFIG_FILE as usize + 1);
                    bytes.resize(more, 0);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// Words for a file type that is not a regular file.
fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_whole_and_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(read_config_file(&path).unwrap(), data);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_config_file(&path).unwrap(), b"");
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.conf");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_config_file(&fifo).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a FIFO (named pipe)")),
            "{e}"
        );
        let e = read_config_file(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
        let e = read_config_file(dir.path()).unwrap_err();
        assert!(e.to_string().starts_with("it is a directory"), "{e}");
        assert!(
            read_config_file(&dir.path().join("absent"))
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn refuses_a_file_over_the_cap_before_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.conf");
        let f = File::create(&path).unwrap();
        f.set_len(MAX_CONFIG_FILE + 1).unwrap();
        assert!(matches!(read_config_file(&path), Err(ReadError::TooLarge)));
    }
}
