//! Running the nginx binary: `nginx -V` (compiled-in paths and version), `nginx -t` (validate).
//!
//! Always `std::process::Command` with explicit arguments, never a shell string.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The nginx binary we run.
#[derive(Debug, Clone)]
pub struct NginxBinary {
    /// Path (or bare name looked up in PATH) of the executable.
    pub path: PathBuf,
}

/// Where nginx's main config file and prefix are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxPaths {
    /// Absolute path of the main configuration file.
    pub conf: PathBuf,
    /// The prefix (`-p`), when known; relative paths in the config resolve against it.
    pub prefix: Option<PathBuf>,
}

/// What `nginx -V` says about how the binary was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledPaths {
    /// The version, e.g. `1.22.1`.
    pub version: Option<String>,
    /// `--prefix=` from the configure arguments.
    pub prefix: Option<PathBuf>,
    /// `--conf-path=` from the configure arguments.
    pub conf_path: Option<PathBuf>,
}

/// The outcome of `nginx -t`.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// Whether nginx accepted the configuration.
    pub ok: bool,
    /// What nginx printed (it prints everything on stderr).
    pub output: String,
}

impl NginxBinary {
    /// The binary given, else `nginx` from PATH, else `/usr/sbin/nginx` (Debian puts it there and a
    /// non-root PATH often lacks /usr/sbin).
    pub fn locate(given: Option<PathBuf>) -> NginxBinary {
        if let Some(path) = given {
            return NginxBinary { path };
        }
        let in_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|dir| dir.join("nginx").is_file()))
            .unwrap_or(false);
        let path = if in_path || !Path::new("/usr/sbin/nginx").is_file() {
            PathBuf::from("nginx")
        } else {
            PathBuf::from("/usr/sbin/nginx")
        };
        NginxBinary { path }
    }

    /// Runs `nginx -V` and reads the version and compiled-in paths.
    pub fn compiled_paths(&self) -> anyhow::Result<CompiledPaths> {
        let out = Command::new(&self.path)
            .arg("-V")
            .output()
            .with_context(|| format!("could not run {} -V", self.path.display()))?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("{} -V failed: {}", self.path.display(), text.trim());
        }
        Ok(parse_version_output(&text))
    }

    /// Runs `nginx -t` on the given paths.
    pub fn test(&self, paths: &NginxPaths) -> anyhow::Result<TestOutcome> {
        let out = Command::new(&self.path)
            .args(self.base_args(paths))
            .arg("-t")
            .output()
            .with_context(|| format!("could not run {} -t", self.path.display()))?;
        Ok(TestOutcome {
            ok: out.status.success(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// The `-p PREFIX -c CONF` arguments every invocation carries.
    pub fn base_args(&self, paths: &NginxPaths) -> Vec<OsString> {
        let mut args = Vec::new();
        if let Some(prefix) = &paths.prefix {
            args.push(OsString::from("-p"));
            args.push(prefix.as_os_str().to_owned());
        }
        args.push(OsString::from("-c"));
        args.push(paths.conf.as_os_str().to_owned());
        args
    }
}

/// Reads `nginx -V` output: `nginx version: nginx/1.22.1` and `configure arguments: --prefix=…`.
pub fn parse_version_output(text: &str) -> CompiledPaths {
    let mut paths = CompiledPaths::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("nginx version: ") {
            let version = rest.split_whitespace().next().unwrap_or(rest);
            let version = version.rsplit('/').next().unwrap_or(version);
            paths.version = Some(version.to_string());
        }
        if let Some(rest) = line.strip_prefix("configure arguments:") {
            for arg in rest.split_whitespace() {
                if let Some(v) = arg.strip_prefix("--prefix=") {
                    paths.prefix = Some(PathBuf::from(v));
                } else if let Some(v) = arg.strip_prefix("--conf-path=") {
                    paths.conf_path = Some(PathBuf::from(v));
                }
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debian_version_output() {
        let text = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.11\n\
                    configure arguments: --with-cc-opt='-g -O2' --prefix=/usr/share/nginx \
                    --conf-path=/etc/nginx/nginx.conf --http-log-path=/var/log/nginx/access.log\n";
        let p = parse_version_output(text);
        assert_eq!(p.version.as_deref(), Some("1.22.1"));
        assert_eq!(p.prefix, Some(PathBuf::from("/usr/share/nginx")));
        assert_eq!(p.conf_path, Some(PathBuf::from("/etc/nginx/nginx.conf")));
    }
}
