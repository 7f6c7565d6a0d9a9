//! The fault matrix: table-driven, each case on a fresh sandbox (real nginx, the simulator in
//! process, the real binary). A case breaks one thing — a CA call answering 5xx, HTML, a cut-off
//! answer, too late, or dropping the connection; a kill -9 while a persisted step waits for the
//! CA, or during an install (its `nginx -t`, or right after its reload signal, with the new
//! certificate files written and the record not yet saying installed); `nginx -t` or reload
//! failing during a renewal; a full filesystem under the vhosts or a
//! webroot; a CA that accepts connections and never answers — then reruns without the fault and
//! checks what must always hold:
//!
//! * every site's configuration is byte-identical to before, or every name it carries is proven
//!   by a TLS handshake to serve the installed certificate;
//! * at most one order per site across the runs (no duplicate);
//! * no validation file left in a webroot or in our temporary location;
//! * no secret (the access token) in any file outside the config file, nor in any output;
//! * no panic.
//!
//! The summary line gives the counts (cases, held, duplicates, leftovers, secrets, panics). Cases
//! run on a few threads with short CA time limits (`ENC365_HTTP_TIMEOUT`), to bound its cost.

use crate::common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::host::Host;
use enc365_nginx::verify;
use enc365_sim::Faults;

const SITES: &str = r#"
    include {prefix}/vhosts/*.conf;
"#;

const VHOSTS: &str = r#"
server {
    listen 127.0.0.1:{port.0};
    server_name shop.test www.shop.test;
    root {prefix}/www/shop;
}
server {
    listen 127.0.0.1:{port.0};
    server_name app.test;
    location / { proxy_pass http://127.0.0.1:9; }
}
"#;

/// The sites and the names each carries.
const NAMES: &[(&str, &[&str])] = &[
    ("shop.test", &["shop.test", "www.shop.test"]),
    ("app.test", &["app.test"]),
];

/// What breaks in a case.
#[derive(Debug, Clone)]
enum Fault {
    /// The simulator misbehaves on one CA path during the first `auto` (or `reissue`).
    Ca { path: &'static str, kind: CaFault },
    /// kill -9 of `rollback` while its `nginx -t` (after restoring the files) runs.
    KillRollback,
    /// kill -9 of `auto` while the call to `path` waits for its answer.
    Kill {
        path: &'static str,
        command: &'static str,
    },
    /// kill -9 of `command` (`auto`, `renew --force`, `reissue`) during its install: while its
    /// `nginx -t` runs, or once its reload was signalled (`step` is `-t` or `reload`). The new
    /// certificate files are written then, and the record does not say installed yet.
    KillInstall {
        command: &'static str,
        step: &'static str,
    },
    /// `nginx -t` (or reload) fails during a forced renewal.
    NginxFails { on: &'static str },
    /// A tmpfs of a few KiB, filled up, under the vhosts (or a webroot).
    FullFs { under: &'static str },
    /// The CA URL accepts connections and never answers.
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum CaFault {
    Status5xx,
    Html,
    Truncated,
    Hang,
    Reset,
}

impl CaFault {
    fn faults(self, path: &str) -> Faults {
        let mut f = Faults {
            paths: vec![path.to_string()],
            ..Faults::default()
        };
        match self {
            CaFault::Status5xx => f.http_status = Some(502),
            CaFault::Html => f.html_error = true,
            CaFault::Truncated => f.truncated_json = true,
            CaFault::Hang => f.answer_delay_ms = 2500,
            CaFault::Reset => f.drop_connection = true,
        }
        f
    }
}

/// How one case ended.
#[derive(Debug, Default)]
struct Verdict {
    name: String,
    problems: Vec<String>,
    duplicate: bool,
    leftover: bool,
    secret: bool,
    panic: bool,
}

fn cases() -> Vec<Fault> {
    let mut out = Vec::new();
    for path in [
        "/cert/create",
        "/cert/details",
        "/cert/challenge",
        "/cert/reissue",
    ] {
        for kind in [
            CaFault::Status5xx,
            CaFault::Html,
            CaFault::Truncated,
            CaFault::Hang,
            CaFault::Reset,
        ] {
            out.push(Fault::Ca { path, kind });
        }
    }
    for (path, command) in [
        ("/cert/create", "auto"),
        ("/cert/challenge", "auto"),
        ("/cert/details", "auto"),
        ("/cert/create", "renew"),
        ("/cert/details", "renew"),
        ("/cert/reissue", "reissue"),
    ] {
        out.push(Fault::Kill { path, command });
    }
    for command in ["auto", "renew", "reissue"] {
        for step in ["-t", "reload"] {
            out.push(Fault::KillInstall { command, step });
        }
    }
    out.push(Fault::KillRollback);
    out.push(Fault::NginxFails { on: "-t" });
    out.push(Fault::NginxFails { on: "reload" });
    out.push(Fault::FullFs { under: "vhosts" });
    out.push(Fault::FullFs { under: "www/shop" });
    out.push(Fault::HalfOpen);
    out
}

#[test]
fn fault_matrix() {
    if !is_root() {
        panic!(
            "the fault matrix needs root (its full-filesystem cases mount a small tmpfs); CI runs \
             as root — run it as root, it is not skipped"
        );
    }
    let started = Instant::now();
    let queue = Mutex::new(cases().into_iter().enumerate().collect::<Vec<_>>());
    let verdicts = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((i, fault)) = next else { break };
                    let name = format!("{i:02} {fault:?}");
                    let verdict = std::panic::catch_unwind(|| run_case(&name, &fault))
                        .unwrap_or_else(|_| Verdict {
                            name: name.clone(),
                            problems: vec!["the case itself panicked".into()],
                            panic: true,
                            ..Verdict::default()
                        });
                    verdicts.lock().unwrap().push(verdict);
                }
            });
        }
    });
    let mut verdicts = verdicts.into_inner().unwrap();
    verdicts.sort_by(|a, b| a.name.cmp(&b.name));
    let held = verdicts.iter().filter(|v| v.problems.is_empty()).count();
    let count = |f: fn(&Verdict) -> bool| verdicts.iter().filter(|v| f(v)).count();
    eprintln!(
        "fault matrix: {} cases, {held} held, {} duplicates, {} leftovers, {} secrets, {} panics \
         ({:.0} s)",
        verdicts.len(),
        count(|v| v.duplicate),
        count(|v| v.leftover),
        count(|v| v.secret),
        count(|v| v.panic),
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.problems.is_empty())
        .map(|v| format!("{}: {}", v.name, v.problems.join("; ")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn new_host() -> Host {
    let host = Host::with(Faults::default(), SITES, "");
    let vhosts = host.sb.render(VHOSTS);
    host.sb.write_file("vhosts/sites.conf", vhosts);
    host.sb.reload();
    host
}

/// Every file of the nginx configuration, with its bytes.
fn config_bytes(host: &Host) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![(
        host.sb.conf_path(),
        std::fs::read(host.sb.conf_path()).unwrap(),
    )];
    let vhost = host.sb.path("vhosts/sites.conf");
    files.push((vhost.clone(), std::fs::read(&vhost).unwrap_or_default()));
    files
}

fn run_case(name: &str, fault: &Fault) -> Verdict {
    let host = new_host();
    let mut outputs: Vec<Output> = Vec::new();
    let mut v = Verdict {
        name: name.to_string(),
        ..Verdict::default()
    };
    let before = config_bytes(&host);
    let mut baseline_creates = 0;
    let mut old_served: Option<(String, String)> = None;
    match fault {
        Fault::Ca { path, kind } => {
            if *path == "/cert/reissue" {
                outputs.push(host.auto(&[]));
                baseline_creates = host.sim.request_count("/cert/create");
            }
            host.sim.set_faults(kind.faults(path));
            let sub = if *path == "/cert/reissue" {
                "reissue"
            } else {
                "auto"
            };
            outputs.push(faulted(&host, sub));
            host.sim.set_faults(Faults::default());
        }
        Fault::Kill { path, command } => {
            if *command != "auto" {
                outputs.push(host.auto(&[]));
                baseline_creates = host.sim.request_count("/cert/create");
            }
            kill_during(&host, path, command);
        }
        Fault::KillInstall { command, step } => {
            if *command != "auto" {
                outputs.push(host.auto(&[]));
                baseline_creates = host.sim.request_count("/cert/create");
                old_served = handshake(&host, "shop.test").map(|f| ("shop.test".to_string(), f));
            }
            if !kill_in_install(&host, command, step) {
                v.problems
                    .push(format!("the run never reached its install's {step}"));
            }
        }
        Fault::KillRollback => {
            let out = host.auto(&["--json"]);
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            outputs.push(out);
            let undo = doc["undo"].as_str().unwrap_or_default().to_string();
            baseline_creates = host.sim.request_count("/cert/create");
            kill_rollback(&host, &undo);
            outputs.push(host.command(&["rollback", &undo, "--json"]));
            check(&host, &before, baseline_creates, None, &outputs, &mut v);
            return v;
        }
        Fault::NginxFails { on } => {
            outputs.push(host.auto(&[]));
            baseline_creates = host.sim.request_count("/cert/create");
            let served = handshake(&host, "shop.test");
            old_served = served.map(|f| ("shop.test".to_string(), f));
            let before_renew = config_bytes(&host);
            outputs.push(renew_with_failing_nginx(&host, on));
            if config_bytes(&host) != before_renew {
                v.problems.push("the configuration changed".into());
            }
        }
        Fault::FullFs { under } => {
            let mount = Mount::full(&host.sb.path(under));
            let before_full = config_bytes(&host);
            outputs.push(host.auto(&["--timeout", "10"]));
            // Checked while the filesystem is still full and mounted.
            check(&host, &before_full, 0, None, &outputs, &mut v);
            drop(mount);
        }
        Fault::HalfOpen => {
            let silent = SilentCa::start();
            outputs.push(
                host.pipeline_command("auto", &["--timeout", "5"])
                    .env("ENC365_BASE_URL", format!("http://{}", silent.addr))
                    .env("ENC365_HTTP_TIMEOUT", "1")
                    .output()
                    .unwrap(),
            );
        }
    }
    // The rerun, with nothing broken.
    let rerun_sub = match fault {
        // A killed `renew` is rerun by the timer as a plain `renew`, not as `auto`.
        Fault::KillInstall { command, .. } => command,
        Fault::Kill {
            command: "reissue", ..
        }
        | Fault::Ca {
            path: "/cert/reissue",
            ..
        } => "reissue",
        _ => "auto",
    };
    outputs.push(rerun(&host, rerun_sub));
    if let Fault::KillInstall { .. } = fault {
        finished_install(&host, &outputs, old_served.as_ref(), &mut v);
    }
    check(
        &host,
        &before,
        baseline_creates,
        old_served,
        &outputs,
        &mut v,
    );
    v
}

fn faulted(host: &Host, sub: &str) -> Output {
    let extra: &[&str] = if sub == "reissue" {
        &["--site", "shop.test", "--timeout", "6"]
    } else {
        &["--timeout", "6"]
    };
    host.pipeline_command(sub, extra)
        .env("ENC365_HTTP_TIMEOUT", "1")
        .output()
        .unwrap()
}

fn rerun(host: &Host, sub: &str) -> Output {
    let extra: &[&str] = if sub == "reissue" {
        &["--site", "shop.test"]
    } else {
        &[]
    };
    host.pipeline_command(sub, extra).output().unwrap()
}

/// Runs `command` with the CA holding `path`'s answer, and kill -9s it once the call is in.
fn kill_during(host: &Host, path: &str, command: &str) {
    host.sim.set_faults(Faults {
        paths: vec![path.to_string()],
        answer_delay_ms: 30_000,
        ..Faults::default()
    });
    let seen = host.sim.request_count(path);
    let extra: &[&str] = match command {
        "reissue" => &["--site", "shop.test"],
        "renew" => &["--force"],
        _ => &[],
    };
    let mut child = host
        .pipeline_command(command, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.sim.request_count(path) == seen && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    host.sim.set_faults(Faults::default());
}

/// Runs `command` with an nginx that, once shop.test's live chain differs from the one served
/// before (the install wrote the new files), hangs at `step`: in `-t` before testing, in reload
/// after signalling the master. The run is kill -9ed there; false when it never got there.
fn kill_in_install(host: &Host, command: &str, step: &str) -> bool {
    let live = host.live("shop.test");
    let saved = host.dir.path().join("fullchain-before.pem");
    if live.exists() {
        std::fs::copy(&live, &saved).unwrap();
    }
    let nginx = host.sb.nginx_bin().display().to_string();
    let (arg, run_first) = match step {
        "-t" => ("-t", String::new()),
        _ => ("reload", format!("{nginx} \"$@\"; ")),
    };
    let when = format!(
        "[ -f {live} ] && ! cmp -s {live} {saved} && ",
        live = live.display(),
        saved = saved.display()
    );
    let (wrapper, marker) = hanging_nginx(host, arg, &when, &run_first);
    let extra: &[&str] = match command {
        "reissue" => &["--site", "shop.test"],
        "renew" => &["--force"],
        _ => &[],
    };
    let child = host
        .command_with_nginx(&[command], &wrapper)
        .args(extra)
        .args(["--poll-interval", "0.1", "--timeout", "30"])
        .args(["--http-port", &host.http.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_at(child, &marker, Duration::from_secs(30))
}

/// A wrapper around nginx that, called with `arg` while the shell test `when` (ending in `&&`,
/// or empty) holds, runs `run_first` (shell, or empty), writes its pid to the returned marker
/// and sleeps; otherwise it is nginx.
fn hanging_nginx(host: &Host, arg: &str, when: &str, run_first: &str) -> (PathBuf, PathBuf) {
    let marker = host.dir.path().join("nginx-hang-started");
    let wrapper = host.dir.path().join("nginx-hangs");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a; do [ \"$a\" = {arg} ] && {when}{{ {run_first}echo $$ > {}; exec sleep 30; }}; done\nexec {} \"$@\"\n",
            marker.display(),
            host.sb.nginx_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    (wrapper, marker)
}

/// Waits (up to `limit`) for `marker` to appear, then kill -9s `child` and the hanging `sleep`
/// whose pid the marker holds. Whether the marker appeared.
fn kill_at(mut child: std::process::Child, marker: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !marker.exists() && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let pid = std::fs::read_to_string(marker)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    if let Some(pid) = pid {
        // SAFETY: kill only sends a signal, to the hanging `sleep` this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    pid.is_some()
}

/// Runs `rollback undo` with an nginx whose `-t` hangs, and kill -9s it there.
fn kill_rollback(host: &Host, undo: &str) {
    let (wrapper, marker) = hanging_nginx(host, "-t", "", "");
    let child = host
        .command_with_nginx(&["rollback", undo], &wrapper)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_at(child, &marker, Duration::from_secs(20));
}

/// `renew --force` with an nginx whose `-t` (or `-s reload`) fails.
fn renew_with_failing_nginx(host: &Host, on: &str) -> Output {
    let wrapper = host.dir.path().join("nginx-fails");
    let test = if on == "-t" { "-t" } else { "reload" };
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a; do [ \"$a\" = {test} ] && {{ echo 'emerg: broken on purpose' >&2; exit 1; }}; done\nexec {} \"$@\"\n",
            host.sb.nginx_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    host.command_with_nginx(&["renew", "--force"], &wrapper)
        .args(["--poll-interval", "0.1", "--timeout", "20"])
        .args(["--http-port", &host.http.to_string()])
        .output()
        .unwrap()
}

fn handshake(host: &Host, name: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], host.https));
    verify::handshake(addr, name, Duration::from_secs(5))
        .ok()
        .map(|c| c.fingerprint)
}

/// After a kill during an install, the rerun (the same command) finishes what the killed run
/// started: it succeeds, shop.test serves the live chain and it is not the one served before,
/// with no second reissue.
fn finished_install(
    host: &Host,
    outputs: &[Output],
    old: Option<&(String, String)>,
    v: &mut Verdict,
) {
    let rerun = outputs.last().expect("the rerun");
    if !rerun.status.success() {
        v.problems.push(format!(
            "the rerun failed: {}",
            String::from_utf8_lossy(&rerun.stderr)
        ));
    }
    let live = std::fs::read(host.live("shop.test"))
        .ok()
        .and_then(|p| verify::pem_leaf_fingerprint(&p).ok());
    let served = handshake(host, "shop.test");
    if served.is_none() || served != live || served.as_ref() == old.map(|o| &o.1) {
        v.problems
            .push("shop.test does not serve the certificate the killed run got".into());
    }
    let reissues = host.sim.request_count("/cert/reissue");
    if reissues > 1 {
        v.duplicate = true;
        v.problems.push(format!("{reissues} reissues of one order"));
    }
}

/// The invariants, after the rerun.
fn check(
    host: &Host,
    before: &[(PathBuf, Vec<u8>)],
    baseline_creates: u64,
    old_served: Option<(String, String)>,
    outputs: &[Output],
    v: &mut Verdict,
) {
    let unchanged = config_bytes(host) == before;
    if !unchanged {
        for (site, names) in NAMES {
            let live = host.live(site);
            let Ok(pem) = std::fs::read(&live) else {
                continue;
            };
            let Ok(installed) = verify::pem_leaf_fingerprint(&pem) else {
                v.problems.push(format!("{site}: unreadable live chain"));
                continue;
            };
            for name in *names {
                if handshake(host, name).as_deref() != Some(installed.as_str()) {
                    v.problems.push(format!(
                        "{name}: configuration changed but the handshake does not show the \
                         installed certificate"
                    ));
                }
            }
        }
    }
    if let Some((name, old)) = old_served {
        // nginx -t / reload failed: the old certificate must still serve (the rerun may have
        // renewed since, which is proven by the check above).
        let now = handshake(host, &name);
        let live = std::fs::read(host.live(&name))
            .ok()
            .and_then(|p| verify::pem_leaf_fingerprint(&p).ok());
        if now.is_none() || (now.as_deref() != Some(old.as_str()) && now != live) {
            v.problems.push(format!(
                "{name}: serves neither the old nor the new certificate"
            ));
        }
    }
    let creates = host.sim.request_count("/cert/create") - baseline_creates;
    if creates > NAMES.len() as u64 {
        v.duplicate = true;
        v.problems.push(format!(
            "{creates} orders for {} sites across the runs",
            NAMES.len()
        ));
    }
    let left = leftovers(host);
    if !left.is_empty() {
        v.leftover = true;
        v.problems.push(format!("validation files left: {left:?}"));
    }
    let token = token_of(host);
    let mut secret_at = files_with(
        host.dir.path(),
        &token,
        &host.dir.path().join("config.toml"),
    );
    secret_at.extend(files_with(host.sb.prefix(), &token, Path::new("/")));
    for out in outputs {
        let all = [&out.stdout[..], &out.stderr[..]].concat();
        if contains(&all, token.as_bytes()) {
            secret_at.push(PathBuf::from("<output>"));
        }
        if contains(&all, b"panicked") {
            v.panic = true;
            v.problems
                .push(format!("panic: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    if !secret_at.is_empty() {
        v.secret = true;
        v.problems.push(format!("the token is in {secret_at:?}"));
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn token_of(host: &Host) -> String {
    let text = std::fs::read_to_string(host.dir.path().join("config.toml")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("access_token = \""))
        .map(|t| t.trim_end_matches('"').to_string())
        .unwrap()
}

/// Files under `dir` (except `skip`) holding `needle`.
fn files_with(dir: &Path, needle: &str, skip: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            out.extend(files_with(&path, needle, skip));
        } else if kind.is_file()
            && path != skip
            && std::fs::read(&path).is_ok_and(|b| contains(&b, needle.as_bytes()))
        {
            out.push(path);
        }
    }
    out
}

/// Validation files left in the webroot or in our temporary location.
fn leftovers(host: &Host) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        host.sb.path("www/shop/.well-known/pki-validation"),
        host.dir.path().join("state/dcv"),
    ] {
        collect_files(&dir, &mut out);
    }
    out
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A small tmpfs mounted over a directory (its files copied in), filled up; unmounted on drop.
struct Mount {
    at: PathBuf,
}

impl Mount {
    fn full(at: &Path) -> Mount {
        let saved = tempfile::tempdir().unwrap();
        let copy = |from: &Path, to: &Path| {
            let ok = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", from.display()))
                .arg(to)
                .status()
                .unwrap()
                .success();
            assert!(ok, "cp -a {} {}", from.display(), to.display());
        };
        copy(at, saved.path());
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,nr_inodes=64", "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", at.display());
        copy(saved.path(), at);
        // Fill it: the rest of the space, then the rest of the inodes.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k", "count=64"])
            .arg(format!("of={}/fill", at.display()))
            .stderr(Stdio::null())
            .status();
        for i in 0..64 {
            if std::fs::write(at.join(format!("i{i}")), b"").is_err() {
                break;
            }
        }
        Mount {
            at: at.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A "CA" that accepts connections and never reads or answers (a half-open peer).
struct SilentCa {
    addr: SocketAddr,
}

impl SilentCa {
    fn start() -> SilentCa {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
                if held.len() > 64 {
                    break;
                }
            }
        });
        SilentCa { addr }
    }
}
