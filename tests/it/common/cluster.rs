//! A fleet of nginx nodes behind one load balancer, on a real etcd, for the cluster-mode tests.
//!
//! [`Cluster::start`] builds, all on this machine and all started by the test:
//!
//! * an [`EtcdCluster`] (three members on loopback high ports);
//! * N [`Node`]s, node `i` (1-based) named `web{i}` on its own loopback address `127.0.0.{10+i}`
//!   (all of 127/8 is local on Linux), each a full host: its own [`NginxSandbox`] (`-p` prefix)
//!   with the same sites ([`SITES`], one file per site under `vhosts/`), its own config directory
//!   (`config.toml` with the account and a `[cluster]` table, `state/`, `live/`, a hosts file
//!   that resolves the sites' names to the node's own address) and the cluster key, made with the
//!   product's `cluster-key --generate` on node 1 and copied to the others;
//! * one nginx load balancer on `127.0.0.1:<lb_port>` that spreads requests round-robin over the
//!   nodes' HTTP port, passing `Host` through, and logs which node answered each request;
//! * the Encryption365 simulator in process, validating through the balancer
//!   (`SimOptions::connect`), so a validation file must be served by whichever node the balancer
//!   picks.
//!
//! Every node runs the real binary: [`Node::auto`], [`Node::agent_once`], and [`Node::start_agent`]
//! for `enc365-nginx agent` as a child process (killed on drop). [`Node::served`] does a TLS
//! handshake against one node directly and reads the served leaf's serial. Not here: any cluster
//! logic — the product's own code is what runs against this fleet.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use enc365_nginx::verify;
use enc365_sim::{Faults, SimHandle, SimOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::etcd::EtcdCluster;
use super::host::{add_pipeline_options, base_command_at, start_sim, write_config};
use super::{HttpResponse, NginxSandbox, free_port, http_get_at};

/// The sites every node serves, with the names each carries: a static site with two names and a
/// second static site (validated through their webroots), and a reverse proxy without a root
/// ([`PROXY_SITE`], validated through a temporary location).
pub const SITES: &[(&str, &[&str])] = &[
    ("shop.test", &["shop.test", "www.shop.test"]),
    ("app.test", &["app.test"]),
    ("blog.test", &["blog.test"]),
];

/// The reverse proxy of [`SITES`]: no root, so its validation files need a temporary location.
pub const PROXY_SITE: &str = "app.test";

/// The etcd key prefix of the test cluster.
pub const PREFIX: &str = "/enc365/test";

/// The `lease_ttl` of the test cluster, seconds: short, so a killed orderer's lock and a stopped
/// agent's liveness expire quickly.
pub const LEASE_TTL: u64 = 3;

/// How long a test waits for the agents to install a certificate everywhere.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);

/// Site `site`'s server block for a node listening on `addr:http` (`{prefix}` is left for
/// [`NginxSandbox::render`]).
pub fn vhost(site: &str, addr: Ipv4Addr, http: u16) -> String {
    let names = SITES
        .iter()
        .find(|(s, _)| *s == site)
        .map(|(_, names)| names.join(" "))
        .unwrap_or_else(|| site.to_string());
    let body = if site == PROXY_SITE {
        "    location / { proxy_pass http://127.0.0.1:9; }\n".to_string()
    } else {
        format!("    root {{prefix}}/www/{site};\n")
    };
    format!("server {{\n    listen {addr}:{http};\n    server_name {names};\n{body}}}\n")
}

/// The enc365-nginx agent of one node, running as a child process; killed on drop.
pub struct Agent {
    child: Child,
}

impl Agent {
    /// Stops the agent like `systemctl stop` does (SIGTERM, then SIGKILL after 10 s) and reaps it.
    pub fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the agent process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node of the fleet: its nginx, its config directory, its address and ports, its agent.
pub struct Node {
    /// The node's name in `[cluster] node` (`web1`, `web2`, …).
    pub name: String,
    /// The node's own loopback address; every listen of its nginx is on it.
    pub addr: Ipv4Addr,
    /// The node's nginx.
    pub sb: NginxSandbox,
    /// `config.toml`, `state/`, `live/`, `hosts`, `cluster.key`, `agent.log`.
    pub dir: tempfile::TempDir,
    /// The HTTP port every node's sites listen on (on the node's address).
    pub http: u16,
    /// The port HTTPS is added on.
    pub https: u16,
    agent: Option<Agent>,
}

impl Node {
    /// Creates node `i` (1-based) serving [`SITES`] on `127.0.0.{10+i}:http` and starts its nginx.
    fn start(i: usize, http: u16, https: u16) -> Node {
        let addr = Ipv4Addr::new(127, 0, 0, 10 + i as u8);
        let mut sb = NginxSandbox::new();
        for (site, _) in SITES {
            sb.write_file(
                &format!("vhosts/{site}.conf"),
                sb.render(&vhost(site, addr, http)),
            );
            if *site != PROXY_SITE {
                sb.write_file(&format!("www/{site}/index.html"), *site);
            }
        }
        sb.write_http_conf("include {prefix}/vhosts/*.conf;");
        sb.start();
        let dir = tempfile::tempdir().unwrap();
        let hosts: String = SITES
            .iter()
            .flat_map(|(_, names)| names.iter())
            .map(|n| format!("{addr} {n}\n"))
            .collect();
        fs::write(dir.path().join("hosts"), hosts).unwrap();
        Node {
            name: format!("web{i}"),
            addr,
            sb,
            dir,
            http,
            https,
            agent: None,
        }
    }

    /// The cluster key file named in this node's `[cluster] key_file`.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("cluster.key")
    }

    /// The binary with `args` and this node's global options, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        base_command_at(&self.sb, self.dir.path(), self.https, args)
    }

    /// Runs the binary with `args` and this node's global options.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// A pipeline command (`auto`, `renew`, `reissue`) on this node with auto's options, not yet
    /// run.
    pub fn pipeline_command(&self, sub: &str, extra: &[&str]) -> Command {
        let mut command = self.command(&[sub]);
        add_pipeline_options(&mut command, sub, extra, self.http);
        command
    }

    /// `auto` with `extra` on this node, run to its end.
    pub fn auto(&self, extra: &[&str]) -> Output {
        self.pipeline_command("auto", extra).output().unwrap()
    }

    /// The `agent` command line of this node with `extra`, not yet run.
    pub fn agent_command(&self, extra: &[&str]) -> Command {
        let mut command = self.command(&["agent"]);
        command.args(["--http-port", &self.http.to_string()]);
        command.args(extra);
        command
    }

    /// `agent --once`: one pass, then exit.
    pub fn agent_once(&self) -> Output {
        self.agent_command(&["--once"]).output().unwrap()
    }

    /// Starts `enc365-nginx agent` for this node in the background, its output appended to
    /// `agent.log` in the node's directory.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "{}'s agent already runs", self.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.agent_log_path())
            .unwrap();
        let child = self
            .agent_command(&[])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(Agent { child });
    }

    /// Stops this node's agent (as `systemctl stop` does); nothing when none runs.
    pub fn stop_agent(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.stop();
        }
    }

    /// Whether this node's agent was started and still runs.
    pub fn agent_running(&mut self) -> bool {
        self.agent.as_mut().is_some_and(Agent::is_running)
    }

    /// Where the background agent's output goes.
    pub fn agent_log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// The background agent's output so far.
    pub fn agent_log(&self) -> String {
        fs::read_to_string(self.agent_log_path()).unwrap_or_default()
    }

    /// A TLS handshake with this node directly (its address, the HTTPS port), `name` as SNI.
    pub fn served(&self, name: &str) -> Result<verify::ServedCert, String> {
        let addr = SocketAddr::from((self.addr, self.https));
        verify::handshake(addr, name, Duration::from_secs(5)).map_err(|e| e.to_string())
    }

    /// The serial (lowercase hex, see [`serial_hex`]) of the leaf this node serves for `name`;
    /// `None` when the handshake fails.
    pub fn served_serial(&self, name: &str) -> Option<String> {
        self.served(name).ok().map(|c| serial_hex(&c.der))
    }

    /// `GET path` with `Host: host` to this node's nginx directly.
    pub fn http_get(&self, host: &str, path: &str) -> std::io::Result<HttpResponse> {
        http_get_at(SocketAddr::from((self.addr, self.http)), host, path)
    }

    /// Every configuration file of this node (`nginx.conf`, `vhosts/*.conf`) with its bytes.
    pub fn conf_snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        files.insert(self.sb.conf_path(), fs::read(self.sb.conf_path()).unwrap());
        for entry in fs::read_dir(self.sb.path("vhosts")).unwrap() {
            let path = entry.unwrap().path();
            files.insert(path.clone(), fs::read(&path).unwrap());
        }
        files
    }

    /// Site `site`'s vhost file on this node.
    pub fn vhost_path(&self, site: &str) -> PathBuf {
        self.sb.path(&format!("vhosts/{site}.conf"))
    }
}

/// The serial number of a DER certificate: its bytes in lowercase hex, without separators or
/// leading zeros.
pub fn serial_hex(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("a parsable leaf");
    normalize_serial(&cert.raw_serial_as_string())
}

/// A serial written as hex with or without `:` separators and leading zeros, in the form
/// [`serial_hex`] gives.
pub fn normalize_serial(text: &str) -> String {
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The whole fleet: etcd, the nodes, the balancer and the simulator. Dropped in that order (the
/// agents stop first).
pub struct Cluster {
    /// The nodes, `nodes[0]` is `web1`.
    pub nodes: Vec<Node>,
    /// The load balancer in front of the nodes.
    pub balancer: NginxSandbox,
    /// The balancer's port on 127.0.0.1.
    pub lb_port: u16,
    /// The cluster's etcd.
    pub etcd: EtcdCluster,
    /// The CA simulator, validating through the balancer.
    pub sim: SimHandle,
    _runtime: tokio::runtime::Runtime,
}

impl Cluster {
    /// A fleet of `count` nodes (at most 9), with a simulator without faults.
    pub fn start(count: usize) -> Cluster {
        Cluster::with_faults(count, Faults::default())
    }

    /// A fleet of `count` nodes whose simulator starts with `faults`.
    pub fn with_faults(count: usize, faults: Faults) -> Cluster {
        assert!((1..=9).contains(&count), "1 to 9 nodes");
        let etcd = EtcdCluster::start();
        let (http, https) = (free_port(), free_port());
        let nodes: Vec<Node> = (1..=count).map(|i| Node::start(i, http, https)).collect();
        let (balancer, lb_port) = start_balancer(&nodes, http);
        let (runtime, sim, account) = start_sim(SimOptions {
            connect: Some(SocketAddr::from(([127, 0, 0, 1], lb_port))),
            faults,
            ..SimOptions::default()
        });
        for node in &nodes {
            let cluster = format!(
                "[cluster]\nbackend = \"etcd\"\nendpoints = {endpoints}\nprefix = \"{PREFIX}\"\n\
                 node = \"{name}\"\nkey_file = \"{key}\"\nlease_ttl = {LEASE_TTL}\n\
                 ack_timeout = 30\n",
                endpoints = etcd.endpoints_toml(),
                name = node.name,
                key = node.key_file().display(),
            );
            write_config(node.dir.path(), &format!("{account}{cluster}"));
        }
        share_cluster_key(&nodes);
        Cluster {
            nodes,
            balancer,
            lb_port,
            etcd,
            sim,
            _runtime: runtime,
        }
    }

    /// Node `name` (`web1`, …).
    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("a node")
    }

    /// Every key under `PREFIX` + `sub` in etcd, with its value.
    pub fn etcd_keys(&self, sub: &str) -> BTreeMap<String, String> {
        self.etcd.get_prefix(&format!("{PREFIX}{sub}"))
    }

    /// Waits until etcd lists exactly `names` as live nodes (`/nodes/<name>`); panics with the
    /// agents' logs after 30 s.
    pub fn wait_live(&self, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live: Vec<String> = self
                .etcd_keys("/nodes/")
                .keys()
                .map(|k| k.rsplit('/').next().unwrap_or_default().to_string())
                .collect();
            if live == names {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "live nodes in etcd are {live:?}, not {names:?}\n{}",
                    self.agent_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no run lock is held in etcd (nothing under `/lock`); panics after
    /// 10 × [`LEASE_TTL`].
    pub fn wait_unlocked(&self) {
        let deadline = Instant::now() + Duration::from_secs(10 * LEASE_TTL);
        while !self.etcd_keys("/lock").is_empty() {
            assert!(
                Instant::now() < deadline,
                "the run lock is still held: {:?}",
                self.etcd_keys("/lock")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node in `nodes` serves, for every name of every site, a leaf with the
    /// same serial as the others for that site; returns each site's serial. Panics (naming what
    /// each node serves, and the agents' logs) after [`CONVERGE_TIMEOUT`].
    pub fn wait_served_everywhere(&self, nodes: &[&str]) -> BTreeMap<String, String> {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let mut seen: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
            for (site, names) in SITES {
                for node in nodes {
                    for name in *names {
                        seen.entry(site.to_string())
                            .or_default()
                            .push(self.node(node).served_serial(name));
                    }
                }
            }
            let agreed: BTreeMap<String, String> = seen
                .iter()
                .filter_map(|(site, serials)| {
                    let first = serials[0].clone()?;
                    serials
                        .iter()
                        .all(|s| s.as_deref() == Some(first.as_str()))
                        .then(|| (site.clone(), first))
                })
                .collect();
            if agreed.len() == SITES.len() {
                return agreed;
            }
            if Instant::now() > deadline {
                panic!(
                    "the nodes {nodes:?} do not serve one certificate per site: {seen:?}\n{}",
                    self.agent_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `status --cluster --json` on node `name`, with its exit code checked to be 0 (no node
    /// failed).
    pub fn status(&self, name: &str) -> serde_json::Value {
        let out = self.node(name).run(&["status", "--cluster", "--json"]);
        super::host::expect_exit(&out, 0)
    }

    /// `status --cluster --json` on node `name`: its exit code and document.
    pub fn status_with_code(&self, name: &str) -> (Option<i32>, serde_json::Value) {
        let out = self.node(name).run(&["status", "--cluster", "--json"]);
        (out.status.code(), super::host::json(&out))
    }

    /// The requests for validation files the balancer passed on: (node address that answered,
    /// status, host), in order.
    pub fn validation_fetches(&self) -> Vec<(String, u16, String)> {
        let log = fs::read_to_string(self.balancer.path("logs/lb.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("/.well-known/"))
            .filter_map(|l| {
                let mut fields = l.split_whitespace();
                let upstream = fields.next()?.to_string();
                let status = fields.next()?.parse().ok()?;
                let host = fields.next()?.to_string();
                Some((upstream, status, host))
            })
            .collect()
    }

    /// The run's JSON document, after checking its exit code; when it is not `code`, panics with
    /// the document, the run's stderr, the agents' logs and the balancer's log.
    pub fn expect_exit(&self, out: &Output, code: i32) -> serde_json::Value {
        let doc = super::host::json(out);
        if out.status.code() != Some(code) {
            let lb = fs::read_to_string(self.balancer.path("logs/lb.log")).unwrap_or_default();
            panic!(
                "exit {:?}, not {code}: {doc:#}\n{}\n{}--- balancer ---\n{lb}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr),
                self.agent_logs()
            );
        }
        doc
    }

    /// Every node's agent log and the tail of its nginx error log, for failure messages.
    pub fn agent_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = n.sb.error_log();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                let modes: Vec<String> = ["", "state", "state/dcv"]
                    .iter()
                    .map(|rel| {
                        let mode = fs::metadata(n.dir.path().join(rel))
                            .map(|m| format!("{:o}", m.permissions().mode() & 0o7777))
                            .unwrap_or_else(|_| "absent".into());
                        format!("{rel}/ {mode}")
                    })
                    .collect();
                format!(
                    "--- agent {} ({}) ---\n{}--- nginx error.log of {} (tail) ---\n{}\n",
                    n.name,
                    modes.join(", "),
                    n.agent_log(),
                    n.name,
                    tail.join("\n")
                )
            })
            .collect()
    }
}

/// Starts the balancer: nginx on `127.0.0.1:<port>`, round-robin over every node's
/// `addr:http`, `Host` passed through, each request logged as `upstream status host uri` in
/// `logs/lb.log`.
fn start_balancer(nodes: &[Node], http: u16) -> (NginxSandbox, u16) {
    let mut lb = NginxSandbox::new();
    let port = lb.alloc_port();
    let servers: String = nodes
        .iter()
        .map(|n| format!("        server {}:{http};\n", n.addr))
        .collect();
    lb.write_http_conf(&format!(
        "    log_format lb '$upstream_addr $status $host $request_uri';\n    \
         upstream nodes {{\n{servers}    }}\n    \
         server {{\n        listen 127.0.0.1:{{port.0}};\n        \
         access_log logs/lb.log lb;\n        \
         location / {{\n            proxy_pass http://nodes;\n            \
         proxy_set_header Host $host;\n        }}\n    }}"
    ));
    lb.start();
    (lb, port)
}

/// Makes the cluster key with the product's `cluster-key --generate` on the first node and copies
/// it (0600) to every other node, as the operator does.
fn share_cluster_key(nodes: &[Node]) {
    let first = &nodes[0];
    let out = first.run(&["cluster-key", "--generate"]);
    assert!(
        out.status.success(),
        "cluster-key --generate failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let key = fs::read(first.key_file()).expect("cluster-key --generate wrote the key file");
    for node in &nodes[1..] {
        fs::write(node.key_file(), &key).unwrap();
        fs::set_permissions(node.key_file(), fs::Permissions::from_mode(0o600)).unwrap();
    }
}
