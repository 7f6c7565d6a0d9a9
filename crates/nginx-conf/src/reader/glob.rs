//! Expanding an `include` pattern as nginx does with the C library's `glob(3)`: the matches
//! sorted in byte order (`strcoll` in nginx's C locale), no match being no error.
//!
//! The common pattern — wildcards only in the last component (`sites-enabled/*`,
//! `conf.d/*.conf`) — is expanded here: the directory is opened once and listed with
//! `getdents64`, every name tested with the C library's own `fnmatch(3)` under the flags
//! `glob(3)` uses (`FNM_PERIOD`: a leading dot must be matched explicitly), and the directory
//! is kept open so the files can be read relative to it. Any other pattern (wildcards in a
//! directory part, a backslash) goes to `glob(3)` itself. The test
//! `listing_equals_glob3_on_tricky_names` holds the two to the same answer.
//!
//! Lists names; reading the files is [`super`]'s job.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{ReadError, read_config_file, read_config_file_at};

/// The files an include pattern names, in nginx's order.
#[derive(Debug, Default)]
pub struct Expansion {
    /// Every match, named as `glob(3)` names it (the pattern's directory part, then the name).
    pub paths: Vec<PathBuf>,
    /// The directory every match is in, open, when the pattern was expanded here.
    dir: Option<OwnedFd>,
    /// Where the name starts in each of `paths` (after the directory part).
    name_start: usize,
}

impl Expansion {
    /// A plain path (no wildcards): itself, read by its path.
    pub fn single(path: PathBuf) -> Expansion {
        Expansion {
            paths: vec![path],
            dir: None,
            name_start: 0,
        }
    }

    /// Reads the `i`th match (relative to the open directory when there is one).
    pub fn read(&self, i: usize) -> Result<Vec<u8>, ReadError> {
        let path = &self.paths[i];
        match &self.dir {
            Some(dir) => {
                read_config_file_at(dir.as_fd(), &path.as_os_str().as_bytes()[self.name_start..])
            }
            None => read_config_file(path),
        }
    }
}

/// Expands `pattern` (absolute) as `glob(3)` with nginx's flags would.
pub fn expand(pattern: &Path) -> Result<Expansion, String> {
    let bytes = pattern.as_os_str().as_bytes();
    let Some(slash) = bytes.iter().rposition(|&b| b == b'/') else {
        return glob3(pattern).map(|paths| Expansion {
            paths,
            ..Expansion::default()
        });
    };
    let (dir, name_pattern) = (&bytes[..=slash], &bytes[slash + 1..]);
    let listable = !name_pattern.is_empty()
        && !name_pattern.contains(&b'\\')
        && !dir.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'));
    if !listable {
        return glob3(pattern).map(|paths| Expansion {
            paths,
            ..Expansion::default()
        });
    }
    let c_pattern = CString::new(name_pattern).map_err(|_| nul_error(pattern))?;
    let c_dir = CString::new(dir).map_err(|_| nul_error(pattern))?;
    // SAFETY: a NUL-terminated path; the descriptor returned is owned below.
    let fd = unsafe {
        libc::open(
            c_dir.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        // glob(3) without GLOB_ERR: a directory it cannot open has no matches.
        return Ok(Expansion::default());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let dir_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut names = matching_names(dir_fd.as_fd(), &c_pattern);
    names.sort();
    let paths = names
        .iter()
        .map(|name| {
            let mut path = Vec::with_capacity(dir.len() + name.len());
            path.extend_from_slice(dir);
            path.extend_from_slice(name);
            PathBuf::from(OsStr::from_bytes(&path))
        })
        .collect();
    Ok(Expansion {
        paths,
        dir: Some(dir_fd),
        name_start: dir.len(),
    })
}

/// Names listed from a directory, kept in one buffer (a directory of 50,000 sites is one
/// allocation, not 50,000).
struct Names {
    bytes: Vec<u8>,
    /// Each name: its first eight bytes as a big-endian number (so most comparisons in the sort
    /// never look at the buffer), and where it is in `bytes`.
    entries: Vec<(u64, u32, u32)>,
}

impl Names {
    fn push(&mut self, name: &[u8]) {
        let mut head = [0u8; 8];
        let n = name.len().min(8);
        head[..n].copy_from_slice(&name[..n]);
        let at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        self.entries
            .push((u64::from_be_bytes(head), at, name.len() as u32));
    }

    /// Puts the names in byte order (the order `glob(3)` gives in the C locale).
    fn sort(&mut self) {
        let bytes = &self.bytes;
        let slice = |at: u32, len: u32| &bytes[at as usize..(at + len) as usize];
        // Equal heads decide nothing yet; a name shorter than eight bytes is padded with zeros,
        // so it sorts before the longer names it starts, as the byte comparison says.
        self.entries.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| slice(a.1, a.2).cmp(slice(b.1, b.2)))
        });
    }

    /// The names, in their current order.
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (self.entries.iter()).map(|&(_, at, len)| &self.bytes[at as usize..(at + len) as usize])
    }
}

/// The names in `dir` that `fnmatch(3)` matches against `pattern` with `FNM_PERIOD`, in the
/// directory's order; entries of inode 0 are skipped, as `readdir(3)` skips them. A listing
/// error ends the listing, as it ends `glob(3)`'s. A lone `*` (`sites-enabled/*`) matches
/// every name not starting with a dot without asking `fnmatch(3)` for each of thousands.
fn matching_names(dir: BorrowedFd<'_>, pattern: &CStr) -> Names {
    use std::os::fd::AsRawFd;
    let mut names = Names {
        bytes: Vec::new(),
        entries: Vec::new(),
    };
    let any_visible = pattern.to_bytes() == b"*";
    let mut buf = vec![0u8; 256 << 10];
    loop {
        // SAFETY: `buf` is writable for its whole length; the kernel fills whole records.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n <= 0 {
            return names;
        }
        let mut at = 0usize;
        while at + 19 < n as usize {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name (NUL-ended).
            let ino = u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or_default());
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen == 0 {
                return names;
            }
            let record = &buf[at + 19..(at + reclen).min(n as usize)];
            at += reclen;
            let Ok(name) = CStr::from_bytes_until_nul(record) else {
                continue;
            };
            let matched = if any_visible {
                name.to_bytes().first().is_some_and(|&b| b != b'.')
            } else {
                // SAFETY: both are NUL-terminated strings.
                unsafe { libc::fnmatch(pattern.as_ptr(), name.as_ptr(), libc::FNM_PERIOD) == 0 }
            };
            if ino != 0 && matched {
                names.push(name.to_bytes());
            }
        }
    }
}

fn nul_error(pattern: &Path) -> String {
    format!(
        "the include pattern {} contains a NUL byte",
        pattern.display()
    )
}

/// Expands a pattern with the C library's `glob(3)`, as nginx does: sorted, no match is fine.
pub fn glob3(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let c_pattern = CString::new(pattern.as_os_str().as_bytes()).map_err(|_| nul_error(pattern))?;
    // SAFETY: glob_t is plain data that glob() fills in; it is freed with globfree() below, and the
    // path strings are copied out before that.
    unsafe {
        let mut g: libc::glob_t = std::mem::zeroed();
        let rc = libc::glob(c_pattern.as_ptr(), libc::GLOB_NOSORT, None, &mut g);
        let result = match rc {
            0 => {
                let mut paths: Vec<&[u8]> = (0..g.gl_pathc)
                    .map(|i| CStr::from_ptr(*g.gl_pathv.add(i)).to_bytes())
                    .collect();
                // glob(3) sorts with strcoll(), which in nginx's C locale is byte order: the
                // same order, without the C library's slower collation.
                paths.sort_unstable();
                Ok(paths
                    .into_iter()
                    .map(|p| PathBuf::from(OsStr::from_bytes(p)))
                    .collect())
            }
            libc::GLOB_NOMATCH => Ok(Vec::new()),
            libc::GLOB_NOSPACE => Err(format!("out of memory expanding {}", pattern.display())),
            _ => Err(format!(
                "could not read a directory while expanding {} (check its permissions)",
                pattern.display()
            )),
        };
        libc::globfree(&mut g);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &[u8]) {
        std::fs::write(dir.join(OsStr::from_bytes(name)), b"x;\n").unwrap();
    }

    /// Every pattern, on a directory of awkward names, gives glob(3)'s list exactly (and the
    /// listing was really done here, with the directory kept open).
    #[test]
    fn listing_equals_glob3_on_tricky_names() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let names: &[&[u8]] = &[
            b"a.conf",
            b"B.conf",
            b".hidden.conf",
            b"x]y",
            b"[a].conf",
            b"a b.conf",
            b"\xc3\xa9.conf",
            b"\xff\xfe.conf",
            b"-dash",
            b"a.conf~",
            b"line\nbreak.conf",
            b"star*.conf",
            b"q?.conf",
            // Names alike in their first eight bytes, and names that start others.
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgh.conf",
            b"abcdefgi",
            b"abcdefgh\xff",
            b"abc",
            b"abcd\x01",
        ];
        for name in names {
            touch(&dir, name);
        }
        std::fs::create_dir(dir.join("sub.conf")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.join("dangling.conf")).unwrap();
        let base = dir.display().to_string();
        let slashes = format!("{}//d//", tmp.path().display());
        for (prefix, pattern) in [
            (&base, "/*"),
            (&base, "/*.conf"),
            (&base, "/.*"),
            (&base, "/[[]a].conf"),
            (&base, "/*[]]*"),
            (&base, "/[!a-z]*"),
            (&base, "/[^a]*.conf"),
            (&base, "/?.conf"),
            (&base, "/[[:upper:]]*"),
            (&base, "/*.nomatch"),
            (&base, "/a.conf/*"),
            (&slashes, "*"),
        ] {
            let full = PathBuf::from(format!("{prefix}{pattern}"));
            let ours = expand(&full).unwrap();
            assert_eq!(
                ours.paths,
                glob3(&full).unwrap(),
                "pattern {}",
                full.display()
            );
            if full.to_string_lossy().ends_with("a.conf/*") {
                assert!(ours.dir.is_none(), "a file is no directory to list");
            } else {
                assert!(ours.dir.is_some(), "{} was not listed here", full.display());
            }
        }
        let missing = PathBuf::from(format!("{base}/none/*"));
        assert!(expand(&missing).unwrap().paths.is_empty());
        // Wildcards in a directory part and backslashes go to glob(3) itself.
        for pattern in [
            format!("{}/*/a.conf", tmp.path().display()),
            format!("{base}/\\[a].conf"),
        ] {
            let full = PathBuf::from(pattern);
            let ours = expand(&full).unwrap();
            assert!(ours.dir.is_none());
            assert_eq!(ours.paths, glob3(&full).unwrap());
        }
    }

    /// Files read through the open directory: contents, and the same refusals as by path — a
    /// symlink to a FIFO, a directory, a dangling symlink.
    #[test]
    fn reading_relative_to_the_directory_refuses_what_reading_by_path_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("a.conf"), b"server { listen 80; }\n").unwrap();
        let fifo = tmp.path().join("pipe");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink(&fifo, dir.join("b.conf")).unwrap();
        std::fs::create_dir(dir.join("c.conf")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("d.conf")).unwrap();
        std::os::unix::fs::symlink("absent", dir.join("e.conf")).unwrap();
        let found = expand(&dir.join("*.conf")).unwrap();
        assert!(found.dir.is_some());
        let names: Vec<_> = found.paths.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["a.conf", "b.conf", "c.conf", "d.conf", "e.conf"]);
        assert_eq!(found.read(0).unwrap(), b"server { listen 80; }\n");
        let e = found.read(1).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a FIFO (named pipe)")),
            "{e}"
        );
        let e = found.read(2).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("a directory")), "{e}");
        let e = found.read(3).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
        assert!(found.read(4).unwrap_err().is_not_found());
    }
}
