//! Cluster mode on one node against a real single-member etcd (`/usr/bin/etcd` on loopback high
//! ports, its own data directory, killed on drop): `auto` with `[cluster] backend = "etcd"`
//! mirrors the order and the sealed key to etcd (never the key in the clear), shares the
//! certificate at `/certs/<stem>`, `status --cluster --json` shows the node installed; an order
//! persisted in etcd is resumed by a node that lost it locally (one order); etcd down → exit 1,
//! saying so, nothing changed; a second node's `agent --once` installs the shared certificate, or
//! rolls back alone; etcd over TLS with a client certificate. The three-node tests behind a
//! balancer are in the `cluster` module.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use common::host::ONE_SITE;
use common::host::{Host, expect_exit, json, pem_fingerprint, served};
use enc365_sim::Faults;

/// One etcd member for one test, killed (and its data removed) on drop.
struct Etcd {
    child: Option<Child>,
    port: u16,
    scheme: &'static str,
    client_args: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in a dir.
struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        use rcgen::ExtendedKeyUsagePurpose as Eku;
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        for (name, eku) in [("server", Eku::ServerAuth), ("client", Eku::ClientAuth)] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            params.extended_key_usages = vec![eku];
            let cert = params.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        TlsFiles { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// etcdctl's options for a client of this CA.
    fn client_args(&self) -> Vec<String> {
        [
            "--cacert",
            "ca.pem",
            "--cert",
            "client.pem",
            "--key",
            "client.key",
        ]
        .chunks(2)
        .flat_map(|p| [p[0].to_string(), self.path(p[1])])
        .collect()
    }
}

impl Etcd {
    fn start() -> Etcd {
        Etcd::start_with(None)
    }

    /// With `tls`, clients must use https and present a certificate of its CA.
    fn start_with(tls: Option<&TlsFiles>) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let peer = common::free_port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let mut command = Command::new("/usr/bin/etcd");
        command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .args(["--log-level", "warn", "--logger", "zap"]);
        if let Some(t) = tls {
            command
                .args([
                    "--cert-file",
                    &t.path("server.pem"),
                    "--key-file",
                    &t.path("server.key"),
                ])
                .args(["--trusted-ca-file", &t.path("ca.pem"), "--client-cert-auth"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("/usr/bin/etcd (package etcd-server) must be installed");
        let etcd = Etcd {
            child: Some(child),
            port,
            scheme,
            client_args: tls.map(TlsFiles::client_args).unwrap_or_default(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !etcd.healthy() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn healthy(&self) -> bool {
        Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .args(&self.client_args)
            .args(["--endpoints", &self.endpoint(), "endpoint", "health"])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every key and value under `prefix`, as etcdctl prints them.
    fn dump(&self, prefix: &str) -> String {
        let out = Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .args(&self.client_args)
            .args(["--endpoints", &self.endpoint(), "get", "--prefix", prefix])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The JSON value at `key`.
    fn get_json(&self, key: &str) -> serde_json::Value {
        let dump = self.dump(key);
        let mut lines = dump.lines();
        assert_eq!(lines.next(), Some(key), "{dump}");
        serde_json::from_str(lines.next().unwrap()).unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cluster_host(etcd: &Etcd, faults: Faults) -> Host {
    let table = format!(
        "\n[cluster]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/t\"\nnode = \"n1\"\nlease_ttl = 5\nack_timeout = 5\n",
        etcd.endpoint()
    );
    let host = Host::with(faults, ONE_SITE, &table);
    let out = host.command(&["cluster-key", "--generate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    host
}

fn every_file(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else if path.file_name().is_some_and(|n| n == "lock") {
            // The local run lock is taken (not written) before etcd is reached.
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn auto_in_cluster_mode_shares_the_order_and_certificate_with_the_key_sealed() {
    let etcd = Etcd::start();
    let host = cluster_host(&etcd, Faults::default());
    let key_file = host.dir.path().join("cluster.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );

    let order = etcd.get_json("/t/orders/shop.test");
    assert_eq!(order["state"], "installed", "{order:#}");
    let cert = etcd.get_json("/t/certs/shop.test");
    assert_eq!(cert["site"], "shop.test");
    assert_eq!(cert["issued_by_node"], "n1");
    assert!(cert["sealed_key"].as_str().is_some_and(|s| s.len() > 100));
    let status = etcd.get_json("/t/status/shop.test/n1");
    assert_eq!(status["state"], "installed");
    assert_eq!(status["serial"], cert["serial"]);

    // The private key is nowhere in etcd in the clear, nor the cluster key.
    let dump = etcd.dump("/t");
    assert!(dump.contains("/t/orders/shop.test.key"), "{dump}");
    assert!(!dump.contains("PRIVATE KEY"));
    let key_pem =
        std::fs::read_to_string(host.dir.path().join("live/shop.test/privkey.pem")).unwrap();
    for line in key_pem.lines().filter(|l| l.len() > 20) {
        assert!(!dump.contains(line), "a line of the private key is in etcd");
    }
    let cluster_key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!dump.contains(cluster_key.trim()));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(cluster_key.trim()));
    // The lock went with the run; no validation entry is left behind.
    assert!(!dump.contains("/t/lock"), "{dump}");
    assert!(!dump.contains("/t/dcv/"), "{dump}");

    let out = host.command(&["status", "--cluster", "--json"]);
    let doc = expect_exit(&out, 0);
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1, "{doc:#}");
    assert_eq!(certs[0]["site"], "shop.test");
    assert_eq!(certs[0]["serial"], cert["serial"]);
    assert_eq!(certs[0]["nodes"][0]["node"], "n1");
    assert_eq!(certs[0]["nodes"][0]["state"], "installed", "{doc:#}");
    assert_eq!(doc["nodes"][0]["node"], "n1");
}

#[test]
fn an_order_persisted_in_etcd_is_resumed_by_a_node_that_lost_it_never_placed_twice() {
    let etcd = Etcd::start();
    let pending = Faults {
        force_status: Some("enroll_caprocessing".into()),
        paths: vec!["/cert/details".into()],
        ..Faults::default()
    };
    let host = cluster_host(&etcd, pending);
    let out = host.auto(&["--json", "--no-wait"]);
    expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/cert/create"), 1);
    assert_eq!(etcd.get_json("/t/orders/shop.test")["state"], "pending");

    // This node's local orders are gone (another node, or a lost disk): etcd still has it.
    std::fs::remove_dir_all(host.dir.path().join("state/orders")).unwrap();
    host.sim.set_faults(Faults::default());
    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/cert/create"), 1, "no second order");
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
    assert_eq!(etcd.get_json("/t/orders/shop.test")["state"], "installed");
}

#[test]
fn auto_with_etcd_down_exits_1_saying_so_and_changes_nothing() {
    let mut etcd = Etcd::start();
    let host = cluster_host(&etcd, Faults::default());
    etcd.stop();
    let before = every_file(host.dir.path());
    let conf_before = every_file(host.sb.prefix());
    let out = host.auto(&["--json"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("etcd is down"), "{error}");
    assert!(error.contains(&etcd.endpoint()), "{error}");
    assert_eq!(host.sim.request_count("/cert/create"), 0);
    assert_eq!(
        every_file(host.dir.path()),
        before,
        "nothing written in config or state"
    );
    let conf_after = every_file(host.sb.prefix());
    let nginx_files = |files: &[(PathBuf, Vec<u8>)]| -> Vec<(PathBuf, Vec<u8>)> {
        files
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "conf" || e == "pem"))
            .cloned()
            .collect()
    };
    assert_eq!(nginx_files(&conf_after), nginx_files(&conf_before));
}

/// A second node with the same site, in the same cluster (the cluster key copied from `first`).
fn second_node(etcd: &Etcd, first: &Host, site: &str) -> Host {
    let table = format!(
        "\n[cluster]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/t\"\nnode = \"n2\"\nlease_ttl = 5\n",
        etcd.endpoint()
    );
    let host = Host::with(Faults::default(), site, &table);
    let key = host.dir.path().join("cluster.key");
    std::fs::copy(first.dir.path().join("cluster.key"), &key).unwrap();
    host
}

fn agent_once(host: &Host) -> std::process::Output {
    host.base_command(&["agent", "--once", "--http-port", &host.http.to_string()])
        .output()
        .unwrap()
}

#[test]
fn agent_once_installs_the_shared_certificate_with_the_same_transaction() {
    let etcd = Etcd::start();
    let first = cluster_host(&etcd, Faults::default());
    expect_exit(&first.auto(&["--json"]), 0);
    let second = second_node(&etcd, &first, ONE_SITE);

    let out = agent_once(&second);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_first = served(&first, "shop.test").fingerprint;
    assert_eq!(served(&second, "www.shop.test").fingerprint, on_first);
    assert_eq!(pem_fingerprint(&second.live("shop.test")), on_first);
    let key = second.dir.path().join("live/shop.test/privkey.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let doc = expect_exit(&first.command(&["status", "--cluster", "--json"]), 0);
    let nodes = doc["certificates"][0]["nodes"].as_array().unwrap().clone();
    let states: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().into(),
                n["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("n1".into(), "installed".into()),
            ("n2".into(), "installed".into())
        ],
        "{doc:#}"
    );
    // `--once` leaves no liveness behind: no agent runs there now.
    assert_eq!(doc["nodes"][1]["alive"], false, "{doc:#}");

    // A second pass has nothing to do and changes nothing.
    let before = every_file(&second.dir.path().join("live"));
    let out = agent_once(&second);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(every_file(&second.dir.path().join("live")), before);
}

#[test]
fn a_node_whose_install_fails_rolls_back_alone_and_reports_why() {
    let etcd = Etcd::start();
    let first = cluster_host(&etcd, Faults::default());
    expect_exit(&first.auto(&["--json"]), 0);
    let broken = ONE_SITE.replace(
        "server_name shop.test www.shop.test;",
        "server_name shop.test www.shop.test;\n        ssl_dhparam {prefix}/missing-dhparam.pem;",
    );
    let second = second_node(&etcd, &first, &broken);
    let conf_before = every_file(second.sb.prefix());

    let out = agent_once(&second);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&first.command(&["status", "--cluster", "--json"]));
    let n2 = &doc["certificates"][0]["nodes"][1];
    assert_eq!(n2["node"], "n2", "{doc:#}");
    assert_eq!(n2["state"], "failed", "{doc:#}");
    assert!(
        n2["reason"]
            .as_str()
            .unwrap()
            .contains("missing-dhparam.pem"),
        "{doc:#}"
    );
    assert_eq!(doc["certificates"][0]["nodes"][0]["state"], "installed");
    // n2's configuration is byte for byte as it was; n1 keeps serving the new certificate.
    let conf_files = |files: Vec<(PathBuf, Vec<u8>)>| -> Vec<(PathBuf, Vec<u8>)> {
        files
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "conf"))
            .collect()
    };
    assert_eq!(
        conf_files(every_file(second.sb.prefix())),
        conf_files(conf_before)
    );
    assert!(common::https_get(second.https, "shop.test", "/").is_err());
    assert_eq!(
        served(&first, "shop.test").fingerprint,
        pem_fingerprint(&first.live("shop.test"))
    );
}

#[test]
fn etcd_over_tls_with_a_client_certificate_works_as_configured() {
    let tls = TlsFiles::new();
    let etcd = Etcd::start_with(Some(&tls));
    let table = format!(
        "\n[cluster]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/t\"\nnode = \"n1\"\nca_file = \"{}\"\ncert_file = \"{}\"\ncert_key_file = \"{}\"\n",
        etcd.endpoint(),
        tls.path("ca.pem"),
        tls.path("client.pem"),
        tls.path("client.key")
    );
    let host = Host::with(Faults::default(), ONE_SITE, &table);
    let out = host.command(&["cluster-key", "--generate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_exit(&host.auto(&["--json"]), 0);
    assert_eq!(etcd.get_json("/t/certs/shop.test")["site"], "shop.test");
    let doc = expect_exit(&host.command(&["status", "--cluster", "--json"]), 0);
    assert_eq!(
        doc["certificates"][0]["nodes"][0]["state"], "installed",
        "{doc:#}"
    );
}
