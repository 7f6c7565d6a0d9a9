//! The shared integration-test harness: a real nginx, started by the test itself.
//!
//! [`NginxSandbox`] owns a temporary prefix directory (`logs/`, `run/`, `tmp/` with every temp path
//! nginx wants inside it), runs the real nginx binary with `-p PREFIX -c PREFIX/nginx.conf` on
//! loopback high ports handed out by [`free_port`], and stops it when dropped. It never touches the
//! system service, `/etc/nginx`, or ports 80/443, so any number of tests run in parallel, each with
//! its own sandbox.
//!
//! nginx runs as a child of the test (`-g "daemon off;"`, master + workers), so the harness always
//! knows the master's pid, can tell when nginx died, and reaps it on drop. The pid file is still
//! written (`run/nginx.pid`), so `nginx -s reload -p … -c …` — what the product does — works too.
//!
//! Also here, because nearly every integration test needs them: [`http_get`] (HTTP/1.1 over a raw
//! `TcpStream`, with an explicit `Host` header) and [`TestCert`] (a self-signed certificate made with
//! rcgen). Not here: anything the product itself does — tests drive the product's own code against
//! this nginx, never a stand-in for it.
//!
//! And, for the nginx-model tests: [`run_nginx`] (`nginx -t`/`-T` on a tree with a bounded number
//! of open files), [`nginx_dump_files`] and [`relativize`].
//!
//! Use it from a test module with `use crate::common;`:
//!
//! ```ignore
//! let mut nginx = NginxSandbox::new();
//! let port = nginx.alloc_port();
//! nginx.write_file("www/index.html", "hello\n");
//! nginx.write_http_conf("server { listen 127.0.0.1:{port.0}; root {prefix}/www; }");
//! nginx.start();
//! assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "hello\n");
//! nginx.write_http_conf("server { listen 127.0.0.1:{port.0}; return 204; }");
//! nginx.reload(); // returns once the old workers are gone
//! ```
//!
//! Product code under test is pointed at the same nginx with `nginx_bin()`, `prefix()`,
//! `conf_path()` and `pid_file()`; after the product reloads, [`NginxSandbox::wait_for_reload`]
//! waits for the new workers.

pub mod cluster;
pub mod etcd;
pub mod host;
pub mod named;

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use enc365_nginx::nginx::control::children_of;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Table-driven tests: one test per case, named for the behaviour it checks, each running the same
/// function on its case, so cases run in parallel and a failure names its case.
///
/// ```ignore
/// cases! {
///     fn rolls_back;
///     a_failing_reload_restores_every_file => RollbackCase { .. };
/// }
/// ```
macro_rules! cases {
    (fn $run:ident; $($test:ident => $case:expr;)+) => {$(
        #[test]
        fn $test() {
            $run($case)
        }
    )+};
    (async fn $run:ident; $($test:ident => $case:expr;)+) => {$(
        #[tokio::test]
        async fn $test() {
            $run($case).await
        }
    )+};
}
pub(crate) use cases;

/// The `enc365-sim` binary, built once per test run exactly as `cargo build` at the workspace root
/// builds it (a test of this package cannot name another package's binary at compile time).
pub fn sim_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--locked", "--quiet", "--message-format=json"])
            .args(["--bin", "enc365-sim"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo build --bin enc365-sim failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "enc365-sim")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the enc365-sim executable")
    })
}

/// How long starting, reloading or stopping nginx may take before the harness gives up.
pub const NGINX_TIMEOUT: Duration = Duration::from_secs(15);

/// The temp paths nginx needs, all created inside the prefix's `tmp/`.
const TEMP_PATHS: [(&str, &str); 5] = [
    ("client_body_temp_path", "tmp/client_body"),
    ("proxy_temp_path", "tmp/proxy"),
    ("fastcgi_temp_path", "tmp/fastcgi"),
    ("uwsgi_temp_path", "tmp/uwsgi"),
    ("scgi_temp_path", "tmp/scgi"),
];

/// The nginx binary the tests run: `nginx` from PATH, else `/usr/sbin/nginx` (Debian's place, often
/// missing from a non-root PATH). Panics with the fix when neither exists.
pub fn nginx_binary() -> PathBuf {
    nginx_binary_in(std::env::var_os("PATH"))
}

/// [`nginx_binary`] with an explicit search path (the value of `PATH`).
pub fn nginx_binary_in(search_path: Option<OsString>) -> PathBuf {
    if let Some(path) = search_path {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nginx");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    assert!(
        debian.is_file(),
        "nginx is not installed (not in PATH, not at /usr/sbin/nginx): run scripts/deps.sh"
    );
    debian
}

/// Ports this process has already handed out; a port is never given twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP port on 127.0.0.1 that no other caller in this process has been given.
///
/// The port is found by binding `127.0.0.1:0` and releasing it; the kernel picks from the
/// ephemeral range, so it is high and (across processes) very unlikely to be reused before nginx
/// binds it.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = guard.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("could not bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("bound socket has an address")
            .port();
        drop(listener);
        if port >= 1024 && handed_out.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found after 1000 tries");
}

/// A real nginx in its own temporary prefix. Stopped (and reaped) on drop.
pub struct NginxSandbox {
    /// Removed (with everything nginx wrote) when the sandbox is dropped.
    _dir: tempfile::TempDir,
    prefix: PathBuf,
    nginx: PathBuf,
    ports: Vec<u16>,
    master: Option<Child>,
}

impl Default for NginxSandbox {
    fn default() -> Self {
        NginxSandbox::new()
    }
}

impl NginxSandbox {
    /// Creates the prefix (`logs/`, `run/`, `tmp/…`); nginx is not started yet.
    ///
    /// The prefix is mode 0755, like a real server's tree, so workers running unprivileged
    /// (`nobody` when the tests run as root) can read what it serves.
    pub fn new() -> NginxSandbox {
        let dir = tempfile::Builder::new()
            .prefix("enc365-nginx-test-")
            .tempdir()
            .expect("could not create a temporary directory");
        let prefix = dir.path().to_path_buf();
        for sub in ["logs", "run", "tmp", "conf"] {
            fs::create_dir_all(prefix.join(sub)).expect("could not create sandbox directories");
        }
        for (_, rel) in TEMP_PATHS {
            fs::create_dir_all(prefix.join(rel)).expect("could not create nginx temp paths");
        }
        fs::set_permissions(&prefix, fs::Permissions::from_mode(0o755))
            .expect("could not open up the sandbox prefix");
        NginxSandbox {
            _dir: dir,
            prefix,
            nginx: nginx_binary(),
            ports: Vec::new(),
            master: None,
        }
    }

    /// The prefix directory, passed to nginx as `-p`.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The main configuration file, `PREFIX/nginx.conf`, passed to nginx as `-c`.
    pub fn conf_path(&self) -> PathBuf {
        self.prefix.join("nginx.conf")
    }

    /// The pid file every configuration made by [`NginxSandbox::main_conf`] names.
    pub fn pid_file(&self) -> PathBuf {
        self.prefix.join("run/nginx.pid")
    }

    /// The error log (`-e` and the config's `error_log`).
    pub fn error_log_path(&self) -> PathBuf {
        self.prefix.join("logs/error.log")
    }

    /// The nginx binary this sandbox runs.
    pub fn nginx_bin(&self) -> &Path {
        &self.nginx
    }

    /// `PREFIX/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.prefix.join(rel)
    }

    /// Allocates one more free loopback port for this sandbox (see [`free_port`]); `{port.N}` in
    /// [`NginxSandbox::render`] is the N-th one allocated.
    pub fn alloc_port(&mut self) -> u16 {
        let port = free_port();
        self.ports.push(port);
        port
    }

    /// Replaces `{prefix}` with the prefix (no trailing slash) and `{port.N}` with the N-th
    /// allocated port. Any other text, braces included, is kept as is.
    pub fn render(&self, template: &str) -> String {
        let mut text = template.replace("{prefix}", &self.prefix.to_string_lossy());
        for (i, port) in self.ports.iter().enumerate() {
            text = text.replace(&format!("{{port.{i}}}"), &port.to_string());
        }
        text
    }

    /// A complete main configuration around `http_body` (rendered with [`NginxSandbox::render`]):
    /// pid, error log, temp paths and access log inside the prefix, one worker, no includes of
    /// system files.
    pub fn main_conf(&self, http_body: &str) -> String {
        let temp_paths: String = TEMP_PATHS
            .iter()
            .map(|(directive, rel)| format!("    {directive} {rel};\n"))
            .collect();
        format!(
            "pid run/nginx.pid;\n\
             error_log logs/error.log info;\n\
             worker_processes 1;\n\
             events {{\n    worker_connections 128;\n}}\n\
             http {{\n\
             {temp_paths}    \
             access_log logs/access.log;\n    \
             default_type text/plain;\n\
             {body}\n\
             }}\n",
            body = self.render(http_body)
        )
    }

    /// Writes `PREFIX/nginx.conf` as given (no rendering).
    pub fn write_conf(&self, text: &str) -> PathBuf {
        self.write_file("nginx.conf", text)
    }

    /// Writes `PREFIX/nginx.conf` from [`NginxSandbox::main_conf`]`(http_body)`.
    pub fn write_http_conf(&self, http_body: &str) -> PathBuf {
        self.write_conf(&self.main_conf(http_body))
    }

    /// Writes `PREFIX/rel` (creating parent directories, world-readable), returning its path.
    pub fn write_file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.prefix.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("could not create parent directories");
        }
        fs::write(&path, bytes).expect("could not write a sandbox file");
        path
    }

    /// The arguments every nginx invocation in this sandbox carries: `-p PREFIX -c CONF -e LOG`.
    pub fn nginx_args(&self) -> Vec<OsString> {
        vec![
            "-p".into(),
            self.prefix.clone().into_os_string(),
            "-c".into(),
            self.conf_path().into_os_string(),
            "-e".into(),
            self.error_log_path().into_os_string(),
        ]
    }

    /// Runs `nginx -t` on the sandbox's configuration: `Ok(output)` when nginx accepts it,
    /// `Err(output)` otherwise (nginx prints on stderr).
    pub fn test_config(&self) -> Result<String, String> {
        let out = Command::new(&self.nginx)
            .args(self.nginx_args())
            .arg("-t")
            .output()
            .map_err(|e| format!("could not run {}: {e}", self.nginx.display()))?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Starts nginx and waits until it serves: pid file written by our master (nginx writes it
    /// after binding every listen) and at least one worker running. Panics with nginx's own words
    /// on failure.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    /// [`NginxSandbox::start`], returning what went wrong instead of panicking.
    pub fn try_start(&mut self) -> Result<(), String> {
        assert!(
            self.master.is_none(),
            "nginx is already running in this sandbox"
        );
        self.check_own_pid_file()?;
        let stderr = fs::File::create(self.prefix.join("logs/stderr.log"))
            .map_err(|e| format!("could not create logs/stderr.log: {e}"))?;
        let child = Command::new(&self.nginx)
            .args(self.nginx_args())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", self.nginx.display()))?;
        let pid = child.id() as i32;
        self.master = Some(child);
        let deadline = Instant::now() + NGINX_TIMEOUT;
        loop {
            if let Some(status) = self.master_exit()? {
                self.master = None;
                return Err(format!(
                    "nginx exited at start ({status}):\n{}",
                    self.diagnostics()
                ));
            }
            let pid_ok = fs::read_to_string(self.pid_file())
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                == Some(pid);
            // nginx binds its listening sockets before it writes the pid file, so once the
            // file names our master and a worker runs, every listen accepts connections.
            if pid_ok && !self.workers().is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx did not get ready in time:\n{}",
                    self.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Refuses a configuration without `pid run/nginx.pid;`: nginx would otherwise use the
    /// system's pid file — write it at start, or signal the system's nginx on reload.
    fn check_own_pid_file(&self) -> Result<(), String> {
        let conf = fs::read(self.conf_path()).unwrap_or_default();
        let own_pid = conf
            .split(|b| *b == b'\n')
            .any(|line| line.trim_ascii().starts_with(b"pid run/nginx.pid;"));
        if own_pid {
            Ok(())
        } else {
            Err(
                "the sandbox's nginx.conf must set `pid run/nginx.pid;` at top level (main_conf \
                 does); nginx would otherwise use the system's pid file"
                    .to_string(),
            )
        }
    }

    /// `Some(status)` when the master has exited.
    fn master_exit(&mut self) -> Result<Option<std::process::ExitStatus>, String> {
        match &mut self.master {
            Some(child) => child
                .try_wait()
                .map_err(|e| format!("could not poll nginx: {e}")),
            None => Ok(None),
        }
    }

    /// The master's pid while nginx runs.
    pub fn master_pid(&self) -> Option<i32> {
        self.master.as_ref().map(|c| c.id() as i32)
    }

    /// Whether the master process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.master.is_some() && matches!(self.master_exit(), Ok(None))
    }

    /// The master's children (workers, and cache processes if configured), sorted.
    pub fn workers(&self) -> Vec<i32> {
        match self.master_pid() {
            Some(pid) => children_of(pid),
            None => Vec::new(),
        }
    }

    /// Reloads with `nginx -s reload` (same `-p`/`-c`) and waits until it has taken effect.
    /// Panics with nginx's words when the reload is refused or does not take effect.
    pub fn reload(&self) {
        if let Err(e) = self.try_reload() {
            panic!("{e}");
        }
    }

    /// [`NginxSandbox::reload`], returning what went wrong instead of panicking.
    pub fn try_reload(&self) -> Result<(), String> {
        self.check_own_pid_file()?;
        let before = self.workers();
        let out = Command::new(&self.nginx)
            .args(self.nginx_args())
            .args(["-s", "reload"])
            .output()
            .map_err(|e| format!("could not run {} -s reload: {e}", self.nginx.display()))?;
        if !out.status.success() {
            return Err(format!(
                "nginx -s reload failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        self.wait_for_reload(&before)
    }

    /// Waits until a reload signalled by someone else (e.g. the product's own reload) has taken
    /// effect: new workers are running (nginx starts them only once the new configuration
    /// loaded) and, for up to two seconds more, the workers in `before` are gone — an old worker
    /// may stay longer finishing a connection, as nginx's graceful shutdown allows. nginx keeps
    /// the old workers when it rejects the new configuration, so a refused reload ends in an
    /// error that quotes the error log.
    pub fn wait_for_reload(&self, before: &[i32]) -> Result<(), String> {
        let deadline = Instant::now() + NGINX_TIMEOUT;
        let mut new_since: Option<Instant> = None;
        loop {
            let now = self.workers();
            if now.iter().any(|pid| !before.contains(pid)) {
                let since = *new_since.get_or_insert_with(Instant::now);
                if now.iter().all(|pid| !before.contains(pid))
                    || since.elapsed() > Duration::from_secs(2)
                {
                    return Ok(());
                }
            }
            if self.master_pid().is_none_or(|pid| !process_exists(pid)) {
                return Err(format!("nginx died during reload:\n{}", self.diagnostics()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the reload did not take effect (workers before {before:?}, now {now:?}):\n{}",
                    self.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops nginx (SIGTERM, then SIGKILL after the timeout) and reaps the master and any worker
    /// left behind. Does nothing when nginx is not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.master.take() else {
            return;
        };
        let pid = child.id() as i32;
        let workers = children_of(pid);
        send_signal(pid, Signal::SIGTERM);
        let deadline = Instant::now() + NGINX_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        for worker in workers {
            if process_exists(worker) {
                send_signal(worker, Signal::SIGKILL);
            }
        }
    }

    /// The error log's content (empty when there is none yet).
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.error_log_path()).unwrap_or_default()
    }

    /// What nginx said: its stderr and the tail of the error log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let stderr = fs::read_to_string(self.prefix.join("logs/stderr.log")).unwrap_or_default();
        let log = self.error_log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- nginx stderr ---\n{stderr}--- error.log (tail) ---\n{}",
            tail.join("\n")
        )
    }
}

impl Drop for NginxSandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a (non-zombie) process with this pid exists.
fn process_exists(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .map(|i| stat[i + 1..].split_whitespace().next() != Some("Z"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
fn send_signal(pid: i32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid), signal);
}

/// An HTTP response read by [`http_get`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when the response was chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` over HTTP/1.1 to `127.0.0.1:port` with the given `Host` header and
/// `Connection: close`; 5-second timeouts. No redirects are followed.
pub fn http_get(port: u16, host: &str, path: &str) -> std::io::Result<HttpResponse> {
    http_get_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), host, path)
}

/// [`http_get`] to any address (e.g. a cluster node's own loopback address).
pub fn http_get_at(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: enc365-nginx-tests\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// `GET path` over HTTPS to `127.0.0.1:port`, sending `host` as SNI and `Host`, through the real
/// `openssl s_client` (any certificate accepted); no redirects are followed.
pub fn https_get(port: u16, host: &str, path: &str) -> std::io::Result<HttpResponse> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.as_bytes())?;
    let out = child.wait_with_output()?;
    parse_response(&out.stdout)
}

/// Parses a complete HTTP/1.1 response (status line, headers, body by chunks or to the end).
fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("response has no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Decodes a chunked body.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// A self-signed certificate and its key, for nginx to serve in tests.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl TestCert {
    /// A fresh self-signed ECDSA P-256 certificate for `names` (the first is also the CN).
    pub fn self_signed(names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).expect("valid test names");
        TestCert::from_params(params)
    }

    /// A self-signed certificate for `names` whose validity ended on 2020-01-01.
    pub fn expired(names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("valid test names");
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        TestCert::from_params(params)
    }

    /// A self-signed certificate from rcgen parameters, with a fresh ECDSA P-256 key.
    pub fn from_params(params: rcgen::CertificateParams) -> TestCert {
        let key = rcgen::KeyPair::generate().expect("rcgen makes a key");
        let cert = params
            .self_signed(&key)
            .expect("rcgen signs the certificate");
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Writes `rel_dir/fullchain.pem` and `rel_dir/privkey.pem` (0600) into the sandbox, returning
    /// their paths.
    pub fn write_into(&self, sandbox: &NginxSandbox, rel_dir: &str) -> (PathBuf, PathBuf) {
        let cert = sandbox.write_file(&format!("{rel_dir}/fullchain.pem"), &self.cert_pem);
        let key = sandbox.write_file(&format!("{rel_dir}/privkey.pem"), &self.key_pem);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .expect("could not set the key's mode");
        (cert, key)
    }
}

/// Runs nginx with `-p prefix -c conf` and `extra` arguments. Open files are limited to 4096, so an
/// include loop fails at once instead of recursing for a long time.
pub fn run_nginx(prefix: &Path, conf: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(nginx_binary());
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
