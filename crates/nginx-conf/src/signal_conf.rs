//! The configuration `nginx -s reload` reads to find the master: only the `pid` directive (and
//! the `events` block nginx requires of every configuration).
//!
//! `nginx -s reload -c nginx.conf` parses the whole configuration — every server block, every
//! certificate and key — only to read the pid file and send the master its signal; the master
//! then reads the configuration again itself. On a host with thousands of certificates that
//! first read takes as long as `nginx -t`. The caller has just tested the configuration and
//! knows the pid file ([`crate::control::master_pid`]): nginx is pointed at a file of two lines
//! naming that pid file instead, and the master reads its own configuration as before.
//!
//! The file lives in memory only (`memfd_create(2)`), handed to the one nginx that reads it as
//! an inherited descriptor it opens as `/proc/self/fd/N`. Nothing is written to a shared
//! directory, so a run that is killed leaves nothing behind, and no file left by another
//! process (a reused process id) can stand in its way. Not here: running nginx, or the other
//! reload methods.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A signal-only configuration held in memory (an anonymous file), gone when dropped.
#[derive(Debug)]
pub struct SignalConf {
    file: File,
}

impl SignalConf {
    /// Writes the configuration naming `pid_file`; `None` when nginx could not be pointed at it
    /// as written (a relative path, which nginx would read against its prefix; a path that is
    /// not UTF-8 or holds a quote, backslash, `$` or control character) or it could not be made
    /// (no `memfd_create`, no `/proc`) — the caller then lets nginx read the full configuration.
    pub fn write(pid_file: &Path) -> Option<SignalConf> {
        let text = pid_file.to_str().filter(|_| pid_file.is_absolute())?;
        let plain = |c: char| !c.is_control() && !matches!(c, '"' | '\\' | '$');
        if !text.chars().all(plain) || !Path::new("/proc/self/fd").is_dir() {
            return None;
        }
        // SAFETY: the name is a NUL-terminated literal; the result is checked before use.
        let fd = unsafe { libc::memfd_create(c"enc365-nginx-signal".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nothing else.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let body = format!("pid \"{text}\";\nevents {{}}\n");
        file.write_all(body.as_bytes()).ok()?;
        Some(SignalConf { file })
    }

    /// The path the child given this configuration by [`SignalConf::pass_to`] opens it by.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// Lets `command`'s process (and only it) inherit the configuration's descriptor, under the
    /// same number [`SignalConf::path`] names.
    pub fn pass_to(&self, command: &mut Command) {
        let fd = self.file.as_raw_fd();
        // SAFETY: between fork and exec only fcntl(2), which is async-signal-safe, runs; it
        // changes the child's copy of the descriptor table, never ours.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_pid_file_and_only_the_child_it_is_passed_to_reads_it() {
        let conf = SignalConf::write(Path::new("/run/nginx.pid")).expect("written");
        let path = conf.path();
        assert!(path.starts_with("/proc/self/fd"), "{path:?}");
        let mut cat = Command::new("cat");
        cat.arg(&path);
        conf.pass_to(&mut cat);
        let out = cat.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"pid \"/run/nginx.pid\";\nevents {}\n");
        // A child it was not passed to does not have it.
        let out = Command::new("cat").arg(&path).output().unwrap();
        assert!(!out.status.success(), "{out:?}");
    }

    #[test]
    fn paths_nginx_would_read_otherwise_are_left_to_the_full_configuration() {
        for odd in [
            "logs/nginx.pid",
            "/run/a\"b.pid",
            "/run/a\\b.pid",
            "/run/$x.pid",
            "/run/a\nb",
        ] {
            assert!(SignalConf::write(Path::new(odd)).is_none(), "{odd:?}");
        }
    }
}
