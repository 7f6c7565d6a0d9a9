//! Running the nginx binary and the running nginx: `nginx -V` (version, compiled-in paths),
//! `nginx -t` (validate), whether the master runs, and reload.
//!
//! Always `std::process::Command` with explicit arguments, never a shell string.
//!
//! **Which master.** Whether nginx runs is answered from a pid file, given explicitly
//! ([`master_pid`]): the caller knows it from the configuration's `pid` directive (relative to
//! the prefix), else `--pid-path` from `nginx -V` ([`CompiledPaths::pid_path`]), else
//! `PREFIX/logs/nginx.pid` — exactly what `nginx -s` itself reads. A pid file naming a process
//! that is gone, or that is not nginx (a stale file whose pid was reused), means "not running".
//!
//! **How to reload** ([`ReloadMethod::detect`]): the configured `reload_command` when there is one
//! (an argv list, run without a shell); else `systemctl reload nginx` when systemd runs this
//! nginx (`/run/systemd/system` exists, `systemctl is-active nginx` says `active`, and the unit's
//! MainPID is our master — otherwise a hand-started nginx would be missed and a different one
//! reloaded); else `nginx -s reload` with the same `-p`/`-c` — or, for a configuration that
//! just passed `nginx -t` ([`NginxBinary::reload_tested_within`]), with a `-c` naming only the
//! pid file ([`crate::signal_conf`]), so the certificates are read once, by the master.
//!
//! **Did it take?** A reload only *asks* nginx; the master reads the configuration afterwards and,
//! if it cannot apply it (a port in use, an unreadable key), logs the error and keeps the old
//! workers. [`NginxBinary::reload`] therefore waits until the master has started new worker
//! processes — nginx does so only after the new configuration is in place — and every old worker
//! has exited or stopped accepting ("worker process is shutting down"), and reports
//! [`ControlError::NotApplied`] otherwise. Proof that each name serves the new certificate is
//! the caller's job (enc365-nginx's `verify` module).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::signal_conf::SignalConf;

/// The nginx binary we run.
#[derive(Debug, Clone)]
pub struct NginxBinary {
    /// Path (or bare name looked up in PATH) of the executable.
    pub path: PathBuf,
    /// Environment variables removed from every process this runs (nginx, a reload command):
    /// the caller's secrets, which nginx needs none of. Set with [`NginxBinary::without_env`].
    pub env_remove: Vec<OsString>,
    /// How long `nginx -V` and `nginx -t` may run before they are stopped
    /// ([`NginxBinary::with_timeout`]; [`NGINX_TIMEOUT`] by default).
    pub timeout: Duration,
}

/// How long `nginx -t` (or `-V`) may run by default: a test reading a huge configuration takes
/// seconds, a hung one (an include of a FIFO, a stuck network filesystem) never ends.
pub const NGINX_TIMEOUT: Duration = Duration::from_secs(120);

/// Where nginx's main config file and prefix are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxPaths {
    /// Absolute path of the main configuration file.
    pub conf: PathBuf,
    /// The prefix (`-p`), when known; relative paths in the config resolve against it.
    pub prefix: Option<PathBuf>,
}

impl NginxPaths {
    /// The prefix relative paths in the configuration resolve against: the known prefix, else
    /// `/`.
    pub fn prefix_or_root(&self) -> PathBuf {
        self.prefix.clone().unwrap_or_else(|| PathBuf::from("/"))
    }
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
    /// `--pid-path=` from the configure arguments (the pid file when the config has no `pid`).
    pub pid_path: Option<PathBuf>,
    /// Whether the binary was built `--with-http_ssl_module` (no TLS without it).
    pub http_ssl_module: bool,
    /// Whether the binary was built `--with-http_v2_module`.
    pub http_v2_module: bool,
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
            return NginxBinary::at(path);
        }
        let in_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|dir| dir.join("nginx").is_file()))
            .unwrap_or(false);
        let path = if in_path || !Path::new("/usr/sbin/nginx").is_file() {
            PathBuf::from("nginx")
        } else {
            PathBuf::from("/usr/sbin/nginx")
        };
        NginxBinary::at(path)
    }

    /// The binary at `path`, run with the environment this process has.
    fn at(path: PathBuf) -> NginxBinary {
        NginxBinary {
            path,
            env_remove: Vec::new(),
            timeout: NGINX_TIMEOUT,
        }
    }

    /// The same binary, with `nginx -t`/`-V` stopped after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> NginxBinary {
        self.timeout = timeout;
        self
    }

    /// The same binary, with `vars` removed from the environment of every process it runs (the
    /// caller's secrets: nginx and reload commands need none of them).
    pub fn without_env<I, S>(mut self, vars: I) -> NginxBinary
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.env_remove.extend(vars.into_iter().map(Into::into));
        self
    }

    /// A command for `program` without the variables of [`NginxBinary::env_remove`]: the one
    /// place every child this crate runs (nginx, `systemctl`, a reload command) gets its
    /// environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        for var in &self.env_remove {
            command.env_remove(var);
        }
        command
    }

    /// Runs `nginx -V` and reads the version and compiled-in paths.
    pub fn compiled_paths(&self) -> anyhow::Result<CompiledPaths> {
        let out = self.bounded(self.command(&self.path).arg("-V"), "-V")?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.is_some_and(|s| s.success()) {
            bail!("{} -V failed: {}", self.path.display(), text.trim());
        }
        Ok(parse_version_output(&text))
    }

    /// The binary's version, from `nginx -V`; decides e.g. [`Http2Syntax`].
    pub fn version(&self) -> anyhow::Result<NginxVersion> {
        let compiled = self.compiled_paths()?;
        let text = compiled
            .version
            .ok_or_else(|| anyhow::anyhow!("{} -V printed no version", self.path.display()))?;
        Ok(NginxVersion::parse(&text)?)
    }

    /// Runs `nginx -t` on the given paths.
    pub fn test(&self, paths: &NginxPaths) -> anyhow::Result<TestOutcome> {
        let mut command = self.command(&self.path);
        command.args(self.base_args(paths)).arg("-t");
        let out = self.bounded(&mut command, "-t")?;
        Ok(TestOutcome {
            ok: out.status.is_some_and(|s| s.success()),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs `command` (nginx with `what`, e.g. `-t`) within [`NginxBinary::timeout`]; running
    /// longer is an error saying so (the process group is killed).
    fn bounded(
        &self,
        command: &mut Command,
        what: &str,
    ) -> anyhow::Result<crate::process::Finished> {
        let out = crate::process::run_bounded(command, self.timeout)
            .with_context(|| format!("could not run {} {what}", self.path.display()))?;
        if out.status.is_none() {
            bail!(
                "`{} {what}` did not finish within {} s and was stopped; nginx may be reading an \
                 include that never ends (a FIFO, a device, a hung network filesystem) — run \
                 `{} -t` by hand to see where it stops",
                self.path.display(),
                self.timeout.as_secs(),
                self.path.display()
            );
        }
        Ok(out)
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
                } else if let Some(v) = arg.strip_prefix("--pid-path=") {
                    paths.pid_path = Some(PathBuf::from(v));
                } else if arg == "--with-http_ssl_module" {
                    paths.http_ssl_module = true;
                } else if arg == "--with-http_v2_module" {
                    paths.http_v2_module = true;
                }
            }
        }
    }
    paths
}

/// A parsed nginx version, e.g. `1.22.1`. Ordered, so `version >= NginxVersion::new(1, 25, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NginxVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number (0 when absent).
    pub patch: u32,
}

impl NginxVersion {
    /// The version `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> NginxVersion {
        NginxVersion {
            major,
            minor,
            patch,
        }
    }

    /// Reads `1.22.1`, `1.25`, or a distribution's `1.21.4.1` (extra parts are ignored).
    pub fn parse(text: &str) -> Result<NginxVersion, ControlError> {
        let bad = || ControlError::BadVersion {
            text: text.to_string(),
        };
        let mut parts = text.trim().split('.');
        let mut number = |required: bool| -> Result<u32, ControlError> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        Ok(NginxVersion {
            major: number(true)?,
            minor: number(true)?,
            patch: number(false)?,
        })
    }

    /// How this version enables HTTP/2 (see [`Http2Syntax`]).
    pub fn http2_syntax(self) -> Http2Syntax {
        if self >= HTTP2_DIRECTIVE_SINCE {
            Http2Syntax::Directive
        } else {
            Http2Syntax::ListenParameter
        }
    }
}

impl std::fmt::Display for NginxVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The first nginx with the `http2 on;` directive; `listen … http2` is deprecated from it on.
pub const HTTP2_DIRECTIVE_SINCE: NginxVersion = NginxVersion::new(1, 25, 1);

/// How HTTP/2 is switched on for a server block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http2Syntax {
    /// `http2 on;` inside the server block (nginx ≥ 1.25.1).
    Directive,
    /// The `http2` parameter of the `listen` directive (older nginx; `http2 on;` is unknown there).
    ListenParameter,
}

/// Errors of the running-nginx operations: version, pid file, reload.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// `nginx -V` printed a version we cannot read.
    #[error("cannot read the nginx version {text:?} (expected something like 1.22.1)")]
    BadVersion {
        /// The text given.
        text: String,
    },
    /// The reload program could not be started.
    #[error("could not run {program}: {reason} (check that it is installed and executable)")]
    Spawn {
        /// The program.
        program: String,
        /// What the system said.
        reason: String,
    },
    /// The reload command ran and failed.
    #[error("`{command}` failed ({status}): {output}")]
    ReloadFailed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (stderr, else stdout), trimmed.
        output: String,
    },
    /// The reload command did not finish in time.
    #[error("`{command}` did not finish within {} s and was stopped", timeout.as_secs())]
    ReloadHung {
        /// The command line.
        command: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// No live nginx master is named by the pid file.
    #[error(
        "nginx is not running (no live nginx master process is named by {}); start nginx, or, \
         if it runs with another pid file, pass that file with --nginx-pid-file \
         (ENC365_NGINX_PID_FILE)",
        pid_file.display()
    )]
    NotRunning {
        /// The pid file read.
        pid_file: PathBuf,
    },
    /// The reload was sent but nginx started no new workers.
    #[error(
        "nginx did not apply the new configuration: no new worker processes within {} s of the \
         reload; it most likely rejected it (a port in use, an unreadable certificate or key) — \
         see nginx's error log",
        waited.as_secs()
    )]
    NotApplied {
        /// How long we waited.
        waited: Duration,
    },
    /// `reload_command` from the configuration cannot be used.
    #[error("reload_command {text:?} cannot be used: {reason}")]
    BadReloadCommand {
        /// The configured text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How nginx is told to reload. See the module doc for how it is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadMethod {
    /// The configured `reload_command`: program and arguments, run without a shell.
    Command(Vec<String>),
    /// `systemctl reload nginx`.
    Systemd,
    /// `nginx -s reload` with the same `-p`/`-c`.
    Signal,
}

/// What systemd says about the `nginx` unit, as far as choosing a reload method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemdView {
    /// `/run/systemd/system` exists: systemd is the init system.
    pub booted: bool,
    /// `systemctl is-active nginx` printed `active`.
    pub unit_active: bool,
    /// The unit's MainPID (`systemctl show -p MainPID --value nginx`), when non-zero.
    pub main_pid: Option<i32>,
}

impl SystemdView {
    /// Asks the system. Any failure to ask (no systemctl, no systemd) reads as "not systemd".
    pub fn probe() -> SystemdView {
        if !Path::new("/run/systemd/system").is_dir() {
            return SystemdView::default();
        }
        let ask = |args: &[&str]| -> Option<String> {
            // A query needs none of our environment (and must not see our secrets).
            let out = Command::new("systemctl")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .args(args)
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let unit_active = ask(&["is-active", "nginx"]).as_deref() == Some("active");
        let main_pid = ask(&["show", "--property", "MainPID", "--value", "nginx"])
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|pid| *pid > 0);
        SystemdView {
            booted: true,
            unit_active,
            main_pid,
        }
    }
}

impl ReloadMethod {
    /// Chooses the method: `reload_command` (already split, see [`parse_reload_command`]) when
    /// non-empty; else systemd when it runs *this* master; else a signal via `nginx -s reload`.
    pub fn choose(
        reload_command: Option<&[String]>,
        systemd: SystemdView,
        master: Option<i32>,
    ) -> ReloadMethod {
        if let Some(argv) = reload_command.filter(|argv| !argv.is_empty()) {
            return ReloadMethod::Command(argv.to_vec());
        }
        let ours = master.is_some() && systemd.main_pid == master;
        if systemd.booted && systemd.unit_active && ours {
            ReloadMethod::Systemd
        } else {
            ReloadMethod::Signal
        }
    }

    /// [`ReloadMethod::choose`] with the system probed and the master read from `pid_file`.
    pub fn detect(reload_command: Option<&[String]>, pid_file: &Path) -> ReloadMethod {
        if let Some(argv) = reload_command.filter(|argv| !argv.is_empty()) {
            return ReloadMethod::Command(argv.to_vec());
        }
        ReloadMethod::choose(None, SystemdView::probe(), master_pid(pid_file))
    }
}

/// Splits the configured `reload_command` into program and arguments, the way a user expects
/// from a shell line — whitespace separates, `'…'` and `"…"` group, `\` escapes outside single
/// quotes — but it is never run by a shell: `;`, `&`, `|`, `<`, `>`, `` ` `` and `$` outside
/// quotes are refused rather than passed on with a meaning they would not have. Empty text gives
/// an empty list (use the default method).
pub fn parse_reload_command(text: &str) -> Result<Vec<String>, ControlError> {
    let bad = |reason: &str| ControlError::BadReloadCommand {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let mut argv = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => argv.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(bad("a single quote is not closed")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => return Err(bad("it ends with a backslash")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(bad("a double quote is not closed")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(bad("it ends with a backslash")),
            },
            ';' | '&' | '|' | '<' | '>' | '`' | '$' => {
                return Err(bad(&format!(
                    "it is run without a shell, so {c:?} would not mean what it means in a shell; \
                     put the steps in a script and name the script"
                )));
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    argv.extend(word);
    Ok(argv)
}

/// The pid of the running nginx master named by `pid_file`, or `None` when the file is missing,
/// unreadable, or names a process that is gone or is not nginx.
pub fn master_pid(pid_file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|pid| *pid > 0)?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (state, _) = stat_fields(&stat)?;
    if state == "Z" {
        return None;
    }
    // nginx sets its title to "nginx: master process …"; a reused pid shows something else.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let is_nginx = cmdline.starts_with(b"nginx: master process") || comm.trim() == "nginx";
    is_nginx.then_some(pid)
}

/// `(state, ppid)` from the text of `/proc/PID/stat` (the command name may hold spaces and
/// parentheses, so fields are read after the last `)`).
fn stat_fields(stat: &str) -> Option<(&str, i32)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The live (non-zombie) children of `parent`: for an nginx master, its workers and cache
/// processes. Sorted.
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((state, ppid)) = stat_fields(&stat)
            && ppid == parent
            && state != "Z"
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Whether an nginx worker has been told to quit (its title says so).
fn is_shutting_down(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline.windows(13).any(|w| w == b"shutting down")
}

/// How long a reload command may run before it is stopped.
const RELOAD_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl NginxBinary {
    /// Reloads nginx with `method` and waits up to `apply_timeout` until the master named by
    /// `pid_file` has started new workers and retired the old ones (see the module doc).
    ///
    /// Fails with [`ControlError::NotRunning`] before doing anything when no master runs — except
    /// for a configured command, which may reload an nginx we cannot see (in a container): it is
    /// run, and only the handshake check can prove the result. Fails with nginx's (or the
    /// command's) own words when the command fails, and with [`ControlError::NotApplied`] when
    /// nginx kept its old workers.
    pub fn reload(
        &self,
        paths: &NginxPaths,
        method: &ReloadMethod,
        pid_file: &Path,
        apply_timeout: Duration,
    ) -> Result<(), ControlError> {
        let timeouts = (RELOAD_COMMAND_TIMEOUT, apply_timeout);
        self.reload_within(paths, method, pid_file, timeouts)
    }

    /// [`NginxBinary::reload`] with the reload command stopped after `command_timeout` (60 s
    /// there): `nginx -s reload` reads the whole configuration, every certificate included,
    /// which on a host with thousands of sites takes as long as `nginx -t`.
    pub fn reload_within(
        &self,
        paths: &NginxPaths,
        method: &ReloadMethod,
        pid_file: &Path,
        (command_timeout, apply_timeout): (Duration, Duration),
    ) -> Result<(), ControlError> {
        let master = master_pid(pid_file);
        if master.is_none() && !matches!(method, ReloadMethod::Command(_)) {
            return Err(ControlError::NotRunning {
                pid_file: pid_file.to_path_buf(),
            });
        }
        let command = self.reload_command(paths, method)?;
        reload_and_wait(command, pid_file, master, (command_timeout, apply_timeout))
    }

    /// [`NginxBinary::reload_within`] for a configuration that passed `nginx -t` just before:
    /// `nginx -s reload` (the [`ReloadMethod::Signal`] method) is pointed at a file naming only
    /// the pid file ([`SignalConf`]), so it does not read every certificate and key once more
    /// before the master reads them itself. A configuration the master cannot apply keeps the
    /// old workers and fails as [`ControlError::NotApplied`] after the wait (nginx's own words
    /// are in its error log); the other methods run as in `reload_within`.
    pub fn reload_tested_within(
        &self,
        paths: &NginxPaths,
        method: &ReloadMethod,
        pid_file: &Path,
        (command_timeout, apply_timeout): (Duration, Duration),
    ) -> Result<(), ControlError> {
        let master = master_pid(pid_file);
        let signal_conf = (matches!(method, ReloadMethod::Signal) && master.is_some())
            .then(|| SignalConf::write(pid_file))
            .flatten();
        let (Some(master), Some(conf)) = (master, &signal_conf) else {
            return self.reload_within(paths, method, pid_file, (command_timeout, apply_timeout));
        };
        let command = self.signal_command(paths, conf);
        reload_and_wait(
            command,
            pid_file,
            Some(master),
            (command_timeout, apply_timeout),
        )
    }
}

/// Runs a reload `command` (stopped after `command_timeout`) and, when a `master` ran before,
/// waits up to `apply_timeout` for workers that were not there before it.
fn reload_and_wait(
    mut command: Command,
    pid_file: &Path,
    master: Option<i32>,
    (command_timeout, apply_timeout): (Duration, Duration),
) -> Result<(), ControlError> {
    let before = master.map(children_of).unwrap_or_default();
    run_checked(&mut command, command_timeout)?;
    match master {
        Some(master) => wait_for_new_workers(pid_file, master, &before, apply_timeout),
        None => Ok(()),
    }
}

impl NginxBinary {
    /// `nginx -s reload` with the same prefix, pointed at `signal_conf` ([`SignalConf`]) for the
    /// pid file instead of the full configuration.
    fn signal_command(&self, paths: &NginxPaths, signal_conf: &SignalConf) -> Command {
        let mut command = self.command(&self.path);
        if let Some(prefix) = &paths.prefix {
            command.arg("-p").arg(prefix);
        }
        command
            .arg("-c")
            .arg(signal_conf.path())
            .args(["-s", "reload"]);
        signal_conf.pass_to(&mut command);
        command
    }

    /// The command that asks nginx to reload by `method`, with the environment every child of
    /// ours gets ([`NginxBinary::command`]).
    pub fn reload_command(
        &self,
        paths: &NginxPaths,
        method: &ReloadMethod,
    ) -> Result<Command, ControlError> {
        Ok(match method {
            ReloadMethod::Command(argv) => {
                let (program, args) =
                    argv.split_first()
                        .ok_or_else(|| ControlError::BadReloadCommand {
                            text: String::new(),
                            reason: "it is empty".to_string(),
                        })?;
                let mut command = self.command(program);
                command.args(args);
                command
            }
            ReloadMethod::Systemd => {
                let mut command = self.command("systemctl");
                command.args(["reload", "nginx"]);
                command
            }
            ReloadMethod::Signal => {
                let mut command = self.command(&self.path);
                command.args(self.base_args(paths)).args(["-s", "reload"]);
                command
            }
        })
    }
}

/// Waits until nginx runs workers that were not there `before` — under the same master, or under
/// a new master (a reload command that restarts nginx).
fn wait_for_new_workers(
    pid_file: &Path,
    master: i32,
    before: &[i32],
    timeout: Duration,
) -> Result<(), ControlError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let current = master_pid(pid_file);
        let applied = match current {
            Some(pid) if pid != master => !children_of(pid).is_empty(),
            Some(pid) => {
                // New workers run, and every old one is gone or has stopped accepting (nginx
                // retitles a worker "worker process is shutting down" as it closes its listening
                // sockets; it may go on serving open keep-alive connections for a while).
                let now = children_of(pid);
                now.iter().any(|w| !before.contains(w))
                    && now
                        .iter()
                        .filter(|w| before.contains(w))
                        .all(|w| is_shutting_down(*w))
            }
            None => false,
        };
        if applied {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(ControlError::NotApplied { waited: timeout });
        }
        // Short pauses: the new workers start the moment the master has read the configuration,
        // and every check after the reload waits for this one.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs `command` (no stdin) in its own process group, killing the group after `timeout`; an
/// unsuccessful exit is an error carrying what it printed.
fn run_checked(command: &mut Command, timeout: Duration) -> Result<(), ControlError> {
    let line = describe_command(command);
    let done = crate::process::run_bounded(command, timeout).map_err(|e| ControlError::Spawn {
        program: line.clone(),
        reason: e.to_string(),
    })?;
    let Some(status) = done.status else {
        return Err(ControlError::ReloadHung {
            command: line,
            timeout,
        });
    };
    if status.success() {
        return Ok(());
    }
    let output = if done.stderr.trim_ascii().is_empty() {
        done.stdout
    } else {
        done.stderr
    };
    Err(ControlError::ReloadFailed {
        command: line,
        status: status.to_string(),
        output: String::from_utf8_lossy(output.trim_ascii()).into_owned(),
    })
}

/// The command line for messages (arguments with spaces are quoted).
fn describe_command(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.contains(char::is_whitespace) {
                format!("{a:?}")
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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
        assert_eq!(p.pid_path, None);
        assert!(!p.http_ssl_module);
    }

    #[test]
    fn the_variables_named_in_without_env_never_reach_nginx() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        // A variable of this process the shell does not set by itself.
        let var = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .find(|name| {
                name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    && !["PATH", "PWD", "OLDPWD", "IFS", "PPID", "OPTIND", "_"]
                        .contains(&name.as_str())
            })
            .expect("the test process has an environment");
        // A stand-in nginx that reports whether that variable reached it.
        let script = dir.path().join("nginx");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ -n \"${{{var}+set}}\" ]; then echo kept; else echo removed; fi >{}\n",
                seen.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let paths = NginxPaths {
            conf: dir.path().join("nginx.conf"),
            prefix: None,
        };
        let nginx = NginxBinary::locate(Some(script.clone()));
        assert!(nginx.test(&paths).unwrap().ok);
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "kept\n");
        let nginx = nginx.without_env([&var]);
        assert!(nginx.test(&paths).unwrap().ok);
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "removed\n");
    }

    #[test]
    fn every_reload_method_runs_without_the_removed_variables() {
        let nginx = NginxBinary::locate(Some(PathBuf::from("/usr/sbin/nginx")))
            .without_env(["ENC365_PASSWORD", "OTHER_SECRET"]);
        let paths = NginxPaths {
            conf: PathBuf::from("/etc/nginx/nginx.conf"),
            prefix: None,
        };
        for method in [
            ReloadMethod::Systemd,
            ReloadMethod::Signal,
            ReloadMethod::Command(vec!["/usr/local/bin/reload-web".into()]),
        ] {
            let command = nginx.reload_command(&paths, &method).unwrap();
            let removed: Vec<_> = command
                .get_envs()
                .filter(|(_, value)| value.is_none())
                .map(|(name, _)| name.to_owned())
                .collect();
            for var in ["ENC365_PASSWORD", "OTHER_SECRET"] {
                assert!(removed.iter().any(|r| r == var), "{method:?} keeps {var}");
            }
        }
    }

    #[test]
    fn a_hung_nginx_t_is_stopped_with_a_clear_error() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("nginx");
        std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let paths = NginxPaths {
            conf: dir.path().join("nginx.conf"),
            prefix: None,
        };
        let nginx = NginxBinary::locate(Some(script)).with_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = nginx.test(&paths).unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.contains("did not finish within"), "{err}");
    }

    #[test]
    fn reads_pid_path_and_modules() {
        let text = "nginx version: openresty/1.21.4.1\nconfigure arguments: \
                    --pid-path=/run/nginx.pid --with-http_ssl_module --with-http_v2_module\n";
        let p = parse_version_output(text);
        assert_eq!(p.version.as_deref(), Some("1.21.4.1"));
        assert_eq!(p.pid_path, Some(PathBuf::from("/run/nginx.pid")));
        assert!(p.http_ssl_module && p.http_v2_module);
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(
            NginxVersion::parse("1.22.1").unwrap(),
            NginxVersion::new(1, 22, 1)
        );
        assert_eq!(
            NginxVersion::parse("1.25").unwrap(),
            NginxVersion::new(1, 25, 0)
        );
        assert_eq!(
            NginxVersion::parse("1.21.4.1").unwrap(),
            NginxVersion::new(1, 21, 4)
        );
        assert!(NginxVersion::new(1, 9, 9) < NginxVersion::new(1, 10, 0));
        for bad in ["", "1", "one.two", "1.x.3"] {
            assert!(
                matches!(
                    NginxVersion::parse(bad),
                    Err(ControlError::BadVersion { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn http2_directive_from_1_25_1_on() {
        let syntax = |v: &str| NginxVersion::parse(v).unwrap().http2_syntax();
        assert_eq!(syntax("1.22.1"), Http2Syntax::ListenParameter);
        assert_eq!(syntax("1.25.0"), Http2Syntax::ListenParameter);
        assert_eq!(syntax("1.25.1"), Http2Syntax::Directive);
        assert_eq!(syntax("1.26.2"), Http2Syntax::Directive);
        assert_eq!(syntax("2.0.0"), Http2Syntax::Directive);
    }

    #[test]
    fn reload_command_splits_like_a_shell_line_without_a_shell() {
        let argv = |t: &str| parse_reload_command(t).unwrap();
        assert_eq!(
            argv("systemctl reload nginx"),
            ["systemctl", "reload", "nginx"]
        );
        assert_eq!(
            argv("  /opt/my panel/reload  "),
            ["/opt/my", "panel/reload"]
        );
        assert_eq!(
            argv("'/opt/my panel/reload' --site \"a b\""),
            ["/opt/my panel/reload", "--site", "a b"]
        );
        assert_eq!(
            argv(r"docker exec web\ 1 nginx -s reload"),
            ["docker", "exec", "web 1", "nginx", "-s", "reload"]
        );
        assert_eq!(argv("echo '$HOME;'"), ["echo", "$HOME;"]);
        assert!(argv("").is_empty());
        for bad in [
            "nginx -t && nginx -s reload",
            "reload; true",
            "x | y",
            "echo $HOME",
            "a 'b",
            "a \"b",
            "a\\",
        ] {
            let err = parse_reload_command(bad).unwrap_err();
            assert!(
                matches!(err, ControlError::BadReloadCommand { .. }),
                "{bad}: {err}"
            );
        }
        let err = parse_reload_command("a && b").unwrap_err();
        assert!(err.to_string().contains("without a shell"), "{err}");
    }

    #[test]
    fn reload_method_prefers_command_then_systemd_running_our_master() {
        let argv = vec!["/usr/local/bin/reload-web".to_string()];
        let systemd = SystemdView {
            booted: true,
            unit_active: true,
            main_pid: Some(42),
        };
        assert_eq!(
            ReloadMethod::choose(Some(&argv), systemd, Some(42)),
            ReloadMethod::Command(argv.clone())
        );
        assert_eq!(
            ReloadMethod::choose(Some(&[]), systemd, Some(42)),
            ReloadMethod::Systemd
        );
        assert_eq!(
            ReloadMethod::choose(None, systemd, Some(42)),
            ReloadMethod::Systemd
        );
        // A hand-started nginx next to the unit's: signal ours, do not reload theirs.
        assert_eq!(
            ReloadMethod::choose(None, systemd, Some(7)),
            ReloadMethod::Signal
        );
        assert_eq!(
            ReloadMethod::choose(None, systemd, None),
            ReloadMethod::Signal
        );
        let inactive = SystemdView {
            unit_active: false,
            ..systemd
        };
        assert_eq!(
            ReloadMethod::choose(None, inactive, Some(42)),
            ReloadMethod::Signal
        );
        let no_systemd = SystemdView {
            booted: false,
            ..systemd
        };
        assert_eq!(
            ReloadMethod::choose(None, no_systemd, Some(42)),
            ReloadMethod::Signal
        );
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "1234 (nginx: a) b)) S 77 1234 1234 0 -1";
        assert_eq!(stat_fields(stat), Some(("S", 77)));
        assert_eq!(stat_fields("garbage"), None);
    }
}
