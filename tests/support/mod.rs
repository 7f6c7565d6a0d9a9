//! Helpers for the nginx-model tests: finding the real nginx binary and running `nginx -t` / `-T`
//! on a tree, and normalising discovery JSON for comparison.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The nginx binary: /usr/sbin/nginx (Debian), else `nginx` from PATH.
pub fn nginx_bin() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

/// Runs nginx with `-p prefix -c conf` and `extra` arguments. Open files are limited to 4096, so an
/// include loop fails at once instead of recursing for a long time.
pub fn run_nginx(prefix: &Path, conf: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(nginx_bin());
    cmd.arg("-p").arg(prefix).arg("-c").arg(conf).args(extra);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output()
        .expect("nginx runs (install it with scripts/deps.sh)")
}

/// The files `nginx -T` dumps, in its order (its `# configuration file X:` headers).
pub fn nginx_dump_files(prefix: &Path, conf: &Path) -> Vec<String> {
    let out = run_nginx(prefix, conf, &["-T", "-q"]);
    assert!(
        out.status.success(),
        "nginx -T failed on {}: {}",
        conf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("# configuration file ")
                .and_then(|l| l.strip_suffix(':'))
        })
        .map(str::to_string)
        .collect()
}

/// Removes every `root/` from every string of a JSON value, so paths compare across machines.
pub fn relativize(value: &mut serde_json::Value, root: &str) {
    let prefix = format!("{root}/");
    match value {
        serde_json::Value::String(s) if s.contains(&prefix) => *s = s.replace(&prefix, ""),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| relativize(v, root)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| relativize(v, root)),
        _ => {}
    }
}
