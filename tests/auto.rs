//! `enc365-nginx auto` end to end: a real nginx in a sandbox, the Encryption365 simulator in
//! process (validating over real HTTP against that nginx, issuing real X.509), the real binary.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{NginxSandbox, TestCert};
use enc365_nginx::nginx::edit::is_managed_line;
use enc365_nginx::sim::{self, Faults, SimHandle, SimOptions};
use enc365_nginx::verify;

/// A sandboxed host: nginx with sites, the simulator, a config and a state dir.
struct Host {
    sb: NginxSandbox,
    sim: SimHandle,
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    http: u16,
    https: u16,
}

const SITES: &str = r#"
    # static site with two names
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test www.shop.test;
        root {prefix}/www/shop;
    }
    # reverse proxy, no root
    server {
        listen 127.0.0.1:{port.0};
        server_name app.test;
        location / { proxy_pass http://127.0.0.1:9; }
    }
    # on a self-signed certificate, with a redirect block
    server {
        listen 127.0.0.1:{port.0};
        server_name legacy.test;
        return 301 https://$host$request_uri;
    }
    server {
        listen 127.0.0.1:{port.1} ssl;
        server_name legacy.test;
        ssl_certificate {prefix}/old/fullchain.pem;
        ssl_certificate_key {prefix}/old/privkey.pem;
        root {prefix}/www/shop;
    }
    # IPv6 and IPv4
    server {
        listen 127.0.0.1:{port.0};
        listen [::1]:{port.0};
        server_name v6.test;
        root {prefix}/www/shop;
    }
    # regex and wildcard names next to a plain one
    server {
        listen 127.0.0.1:{port.0};
        server_name wild.test *.wild.test ~^(?<u>.+)\.users\.wild\.test$;
        root {prefix}/www/shop;
    }
    # a name that does not resolve here
    server {
        listen 127.0.0.1:{port.0};
        server_name nodns.test;
        root {prefix}/www/shop;
    }
"#;

impl Host {
    fn new(faults: Faults) -> Host {
        let mut sb = NginxSandbox::new();
        let http = sb.alloc_port();
        let https = sb.alloc_port();
        TestCert::self_signed(&["legacy.test"]).write_into(&sb, "old");
        sb.write_file("www/shop/index.html", "shop");
        sb.write_http_conf(SITES);
        sb.start();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = SimOptions {
            connect: Some(SocketAddr::from(([127, 0, 0, 1], http))),
            faults,
            ..SimOptions::default()
        };
        let sim = runtime.block_on(sim::start(options)).unwrap();
        sim.add_account("admin@example.com", "pw", 100.0);
        let (client_id, token) = sim.add_device("admin@example.com").unwrap();

        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "base_url = \"{}\"\nclient_id = \"{client_id}\"\naccess_token = \"{token}\"\nkey_type = \"ecdsa-p256\"\n",
            sim.base_url()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        std::fs::set_permissions(
            dir.path().join("config.toml"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let hosts: String = [
            "shop.test",
            "www.shop.test",
            "app.test",
            "legacy.test",
            "v6.test",
            "wild.test",
        ]
        .iter()
        .map(|n| format!("127.0.0.1 {n}\n"))
        .collect();
        std::fs::write(dir.path().join("hosts"), hosts).unwrap();
        Host {
            sb,
            sim,
            _runtime: runtime,
            dir,
            http,
            https,
        }
    }

    fn auto(&self, extra: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
            .arg("auto")
            .arg("--config")
            .arg(d.join("config.toml"))
            .arg("--state-dir")
            .arg(d.join("state"))
            .arg("--nginx-bin")
            .arg(self.sb.nginx_bin())
            .arg("--nginx-conf")
            .arg(self.sb.conf_path())
            .arg("--nginx-prefix")
            .arg(self.sb.prefix())
            .args([
                "--https-port",
                &self.https.to_string(),
                "--http-port",
                &self.http.to_string(),
            ])
            .args(["--poll-interval", "0.1", "--timeout", "30"])
            .args(extra)
            .env("ENC365_HOSTS_FILE", d.join("hosts"))
            .output()
            .unwrap()
    }

    fn live(&self, site: &str) -> PathBuf {
        self.dir
            .path()
            .join("live")
            .join(site)
            .join("fullchain.pem")
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn served(host: &Host, name: &str) -> verify::ServedCert {
    let addr = SocketAddr::from(([127, 0, 0, 1], host.https));
    verify::handshake(addr, name, Duration::from_secs(5)).unwrap()
}

fn pem_fingerprint(path: &Path) -> String {
    verify::pem_leaf_fingerprint(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn auto_gives_every_certifiable_name_a_verified_certificate_and_a_second_run_does_nothing() {
    let host = Host::new(Faults::default());
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.auto(&["--json"]);
    let doc = json(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{doc:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(doc["reloads"].as_u64().unwrap() <= 2, "{doc:#}");

    for (site, names) in [
        ("shop.test", vec!["shop.test", "www.shop.test"]),
        ("app.test", vec!["app.test"]),
        ("legacy.test", vec!["legacy.test"]),
        ("v6.test", vec!["v6.test"]),
        ("wild.test", vec!["wild.test"]),
    ] {
        let fp = pem_fingerprint(&host.live(site));
        for name in names {
            assert_eq!(
                served(&host, name).fingerprint,
                fp,
                "{name} serves the new certificate"
            );
        }
    }
    let sites = doc["sites"].as_array().unwrap();
    let nodns = sites.iter().find(|s| s["site"] == "nodns.test").unwrap();
    assert!(nodns["error"].is_null(), "{nodns}");
    assert!(
        nodns["skipped"]
            .as_str()
            .unwrap()
            .contains("no name passed"),
        "{nodns}"
    );
    assert_eq!(
        nodns["names_left_out"][0]["reason"],
        "does not resolve in DNS"
    );
    let wild = sites.iter().find(|s| s["site"] == "wild.test").unwrap();
    let left: Vec<&str> = wild["names_left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["*.wild.test", "~^(?<u>.+)\\.users\\.wild\\.test$"]);

    // Only marked lines were added; nothing else changed.
    let after = std::fs::read(host.sb.conf_path()).unwrap();
    let old_lines: Vec<&[u8]> = before.split_inclusive(|b| *b == b'\n').collect();
    for line in after.split_inclusive(|b| *b == b'\n') {
        assert!(
            old_lines.contains(&line) || is_managed_line(line),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    assert!(
        !after.windows(11).any(|w| w == b"pki-validat"),
        "temporary locations are gone"
    );
    assert!(
        !host.sb.path("www/shop/.well-known").exists(),
        "validation files and their directory are gone"
    );
    let dcv_left: Vec<_> = std::fs::read_dir(host.dir.path().join("state/dcv"))
        .unwrap()
        .collect();
    assert!(dcv_left.is_empty());
    // The key is private.
    let key = host.dir.path().join("live/shop.test/privkey.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A second run finds nothing to do and orders nothing.
    let creates = host.sim.request_count("/cert/create");
    let again = host.auto(&["--json"]);
    let doc2 = json(&again);
    assert_eq!(again.status.code(), Some(0), "{doc2:#}");
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates,
        "no new order"
    );
    assert_eq!(
        doc2["reloads"],
        0,
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let only_nodns: Vec<&str> = doc2["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(only_nodns, ["nodns.test"]);
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn a_rejected_order_leaves_every_file_as_it_was() {
    let host = Host::new(Faults {
        reject_orders: true,
        ..Faults::default()
    });
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let err = doc["sites"][0]["error"].as_str().unwrap();
    assert!(err.contains("without a certificate"), "{err}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), before);
    assert!(!host.live("shop.test").exists());
    // nginx still serves the old site.
    let page = common::http_get(host.http, "shop.test", "/").unwrap();
    assert_eq!(page.text(), "shop");
}

#[test]
fn plan_shows_the_diff_and_touches_nothing() {
    let host = Host::new(Faults::default());
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let d = host.dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .arg("plan")
        .arg("--config")
        .arg(d.join("config.toml"))
        .arg("--state-dir")
        .arg(d.join("state"))
        .arg("--nginx-conf")
        .arg(host.sb.conf_path())
        .arg("--nginx-prefix")
        .arg(host.sb.prefix())
        .args(["--https-port", &host.https.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("site shop.test"), "{text}");
    assert!(
        text.contains(&format!(
            "+        listen 127.0.0.1:{} ssl; # managed by enc365-nginx",
            host.https
        )),
        "{text}"
    );
    assert!(text.contains("left out: *.wild.test"), "{text}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), before);
    assert!(!d.join("state").exists(), "plan writes no state");
    assert_eq!(host.sim.request_count("/cert/create"), 0);
}
