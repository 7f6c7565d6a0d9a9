//! The configuration `nginx -s reload` reads to find the master: only the `pid` directive (and
//! the `events` block nginx requires of every configuration).
//!
//! `nginx -s reload -c nginx.conf` parses the whole configuration — every server block, every
//! certificate and key — only to read the pid file and send the master its signal; the master
//! then reads the configuration again itself. On a host with thousands of certificates that
//! first read takes as long as `nginx -t`. The caller has just tested the configuration and
//! knows the pid file ([`crate::control::master_pid`]): nginx is pointed at a file of two lines
//! naming that pid file instead, and the master reads its own configuration as before. Not
//! here: running nginx, or the other reload methods.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A signal-only configuration on disk (in the temporary directory, mode 0600), removed when
/// dropped.
#[derive(Debug)]
pub struct SignalConf {
    path: PathBuf,
}

impl SignalConf {
    /// Writes the configuration naming `pid_file`; `None` when nginx could not be pointed at it
    /// as written (a relative path, which nginx would read against its prefix; a path that is
    /// not UTF-8 or holds a quote, backslash, `$` or control character) or it could not be
    /// written — the caller then lets nginx read the full configuration.
    pub fn write(pid_file: &Path) -> Option<SignalConf> {
        let text = pid_file.to_str().filter(|_| pid_file.is_absolute())?;
        let plain = |c: char| !c.is_control() && !matches!(c, '"' | '\\' | '$');
        if !text.chars().all(plain) {
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "enc365-nginx-signal-{}-{}.conf",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ok()?;
        let conf = SignalConf { path };
        let body = format!("pid \"{text}\";\nevents {{}}\n");
        file.write_all(body.as_bytes()).ok()?;
        Some(conf)
    }

    /// Where the configuration is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SignalConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_pid_file_and_goes_when_dropped() {
        let conf = SignalConf::write(Path::new("/run/nginx.pid")).expect("written");
        let path = conf.path().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "pid \"/run/nginx.pid\";\nevents {}\n");
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        drop(conf);
        assert!(!path.exists());
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
