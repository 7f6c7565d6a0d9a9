//! A real three-member etcd cluster for the cluster-mode tests, started by the test itself.
//!
//! [`EtcdCluster`] runs Debian's `/usr/bin/etcd` (package `etcd-server`) three times on 127.0.0.1
//! with client and peer ports from [`super::free_port`], each member with its own data directory
//! in a temporary directory and its log in `mN.log` there. It waits until every member answers
//! `/health` with a leader. Members are killed with SIGKILL (one, or all, for the "etcd down" and
//! "partition" faults) and restarted on the same ports and data, and every member still running
//! is killed when the cluster is dropped. The system's etcd service is never touched.
//!
//! Also [`EtcdCluster::get_prefix`]: what the cluster holds under a key prefix, read with the real
//! `etcdctl` (package `etcd-client`), for tests that check what the product wrote. Not here:
//! anything the product's cluster code does — the tests drive the real binary against this etcd.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{free_port, http_get};

/// How long a member (or the whole cluster) may take to become healthy.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(30);

/// The etcd server binary (Debian's `etcd-server`).
const ETCD: &str = "/usr/bin/etcd";

/// The etcd command-line client (Debian's `etcd-client`).
const ETCDCTL: &str = "/usr/bin/etcdctl";

/// One member: its name, ports, data directory and, while it runs, its process.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster on loopback high ports; every member is killed on drop.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    token: String,
}

impl EtcdCluster {
    /// Starts three members and waits until the cluster is healthy. Panics with the members'
    /// logs when it does not get there, or with the fix when etcd is not installed.
    pub fn start() -> EtcdCluster {
        EtcdCluster::with_members(3)
    }

    /// Starts `count` members (1 or more) and waits until the cluster is healthy.
    pub fn with_members(count: usize) -> EtcdCluster {
        assert!(
            Path::new(ETCD).is_file() && Path::new(ETCDCTL).is_file(),
            "etcd is not installed ({ETCD}, {ETCDCTL}): run scripts/deps.sh \
             (packages etcd-server and etcd-client)"
        );
        let dir = tempfile::Builder::new()
            .prefix("enc365-etcd-test-")
            .tempdir()
            .expect("could not create a temporary directory");
        let members = (1..=count)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let token = format!(
            "enc365-test-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let mut cluster = EtcdCluster {
            dir,
            members,
            token,
        };
        for i in 0..count {
            cluster.spawn(i);
        }
        cluster.wait_healthy();
        cluster
    }

    /// The client URLs of every member (`http://127.0.0.1:PORT`), for `[cluster] endpoints`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// `endpoints` as a TOML array, e.g. `["http://127.0.0.1:1", "http://127.0.0.1:2"]`.
    pub fn endpoints_toml(&self) -> String {
        let quoted: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        format!("[{}]", quoted.join(", "))
    }

    /// The `--initial-cluster` value naming every member's peer URL.
    fn initial_cluster(&self) -> String {
        let peers: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        peers.join(",")
    }

    /// Starts member `i` on its ports and data directory (new or kept from an earlier run).
    fn spawn(&mut self, i: usize) {
        let initial_cluster = self.initial_cluster();
        let m = &self.members[i];
        assert!(m.child.is_none(), "etcd member {} already runs", m.name);
        let data = self.dir.path().join(format!("{}.etcd", m.name));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("could not open the etcd log");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(ETCD)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("could not share the etcd log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {ETCD}: {e}"));
        self.members[i].child = Some(child);
    }

    /// Member `i`'s log file.
    fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    /// Kills member `i` with SIGKILL (as a crash or a cut cable looks to the others) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every member: etcd is down.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Restarts the members `which` (indexes into [`EtcdCluster::endpoints`]) on their ports and
    /// data, and waits until every running member is healthy (a quorum must run).
    pub fn restart(&mut self, which: &[usize]) {
        for &i in which {
            self.spawn(i);
        }
        self.wait_healthy();
    }

    /// Restarts every member that is not running and waits until the cluster is healthy.
    pub fn restart_all(&mut self) {
        let stopped: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_none())
            .collect();
        self.restart(&stopped);
    }

    /// Whether member `i` runs and answers `/health` with `"health":"true"` (it sees a leader).
    pub fn member_healthy(&self, i: usize) -> bool {
        self.members[i].child.is_some()
            && http_get(self.members[i].client_port, "127.0.0.1", "/health")
                .map(|r| r.status == 200 && r.text().contains("\"health\":\"true\""))
                .unwrap_or(false)
    }

    /// Waits until every running member is healthy; panics with the logs after [`ETCD_TIMEOUT`].
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + ETCD_TIMEOUT;
        loop {
            self.check_alive();
            let running: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].child.is_some())
                .collect();
            if running.iter().all(|&i| self.member_healthy(i)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "etcd did not become healthy in time:\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Panics with the logs when a member that should run has exited.
    fn check_alive(&mut self) {
        for m in &mut self.members {
            if let Some(child) = &mut m.child
                && let Ok(Some(status)) = child.try_wait()
            {
                m.child = None;
                let name = m.name.clone();
                panic!(
                    "etcd member {name} exited ({status}):\n{}",
                    self.diagnostics()
                );
            }
        }
    }

    /// The tail of every member's log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for i in 0..self.members.len() {
            let log = fs::read_to_string(self.log_path(i)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- etcd {} ---\n", self.members[i].name));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Runs `etcdctl` with the cluster's endpoints and `args`; `Err(stderr)` when it fails.
    fn etcdctl(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let out = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints().join(",")))
            .arg("--command-timeout=5s")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("could not run {ETCDCTL}: {e}"));
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Writes `key` = `value` with `etcdctl put`; `Err(etcdctl's words)` when etcd refuses or is
    /// down.
    pub fn put(&self, key: &str, value: &str) -> Result<(), String> {
        self.etcdctl(&["put", key, value]).map(|_| ())
    }

    /// Every key under `prefix` with its value (as text), read with `etcdctl get --prefix`.
    /// Panics when etcd does not answer.
    pub fn get_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        let stdout = self
            .etcdctl(&["-w", "json", "get", "--prefix", prefix])
            .unwrap_or_else(|e| panic!("etcdctl get --prefix {prefix} failed: {e}"));
        let doc: serde_json::Value =
            serde_json::from_slice(&stdout).expect("etcdctl -w json prints JSON");
        let decode = |v: &serde_json::Value| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .expect("etcdctl prints base64");
            String::from_utf8_lossy(&bytes).into_owned()
        };
        doc["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| (decode(&kv["key"]), decode(&kv["value"])))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
