//! A sandboxed host for end-to-end tests of `auto`: a real nginx ([`NginxSandbox`]) with a set of
//! sites, the Encryption365 simulator in process validating against that nginx, a config file and a
//! state directory, and the real binary run against all of it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{NginxSandbox, TestCert};
use enc365_nginx::verify;
use enc365_sim::{self as sim, Faults, SimHandle, SimOptions};

/// A sandboxed host: nginx with sites, the simulator, a config and a state dir.
pub struct Host {
    pub sb: NginxSandbox,
    pub sim: SimHandle,
    _runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub https: u16,
}

/// One static site with two names (`shop.test`, `www.shop.test`) served from its webroot: the
/// smallest host most end-to-end tests need.
pub const ONE_SITE: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test www.shop.test;
        root {prefix}/www/shop;
    }
"#;

pub const SITES: &str = r#"
    # static site with two names
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test www.shop.test;
        root {prefix}/www/shop;
    }
    # PHP site: FastCGI for .php, static files (and validation files) from its root
    server {
        listen 127.0.0.1:{port.0};
        server_name php.test;
        root {prefix}/www/php;
        index index.php index.html;
        location ~ \.php$ {
            fastcgi_pass 127.0.0.1:9;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        }
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
    pub fn new(faults: Faults) -> Host {
        Host::with(faults, SITES, "")
    }

    /// A host with other sites (an http block body, see [`NginxSandbox::main_conf`]) and extra
    /// config-file lines.
    pub fn with(faults: Faults, sites: &str, extra_config: &str) -> Host {
        Host::with_sim_options(faults, sites, extra_config, |_| {})
    }

    /// Like [`Host::with`], with the simulator's options adjusted by `tweak`.
    pub fn with_sim_options(
        faults: Faults,
        sites: &str,
        extra_config: &str,
        tweak: impl FnOnce(&mut SimOptions),
    ) -> Host {
        let mut sb = NginxSandbox::new();
        let http = sb.alloc_port();
        let https = sb.alloc_port();
        TestCert::self_signed(&["legacy.test"]).write_into(&sb, "old");
        sb.write_file("www/shop/index.html", "shop");
        sb.write_file("www/php/index.html", "php");
        sb.write_http_conf(sites);
        sb.start();

        let mut options = SimOptions {
            connect: Some(SocketAddr::from(([127, 0, 0, 1], http))),
            faults,
            ..SimOptions::default()
        };
        tweak(&mut options);
        let (runtime, sim, account) = start_sim(options);

        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), &format!("{account}{extra_config}"));
        let hosts: String = [
            "shop.test",
            "www.shop.test",
            "app.test",
            "php.test",
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

    pub fn auto(&self, extra: &[&str]) -> Output {
        self.auto_command(extra).output().unwrap()
    }

    /// The `auto` command line against this host, not yet run.
    pub fn auto_command(&self, extra: &[&str]) -> Command {
        self.pipeline_command("auto", extra)
    }

    /// `renew` (with auto's pipeline options, like [`Host::auto`]), run.
    #[allow(dead_code)]
    pub fn renew(&self, extra: &[&str]) -> Output {
        self.pipeline_command("renew", extra).output().unwrap()
    }

    /// Any command with this host's global options only (`status`, `history`, `rollback`).
    #[allow(dead_code)]
    pub fn command(&self, args: &[&str]) -> Output {
        self.base_command(args).output().unwrap()
    }

    /// The binary with `args` and this host's global options (config, state, nginx, HTTPS port,
    /// hosts file), not yet run.
    pub fn base_command(&self, args: &[&str]) -> Command {
        base_command_at(&self.sb, self.dir.path(), self.https, args)
    }

    /// [`Host::base_command`] with another nginx binary (a test's wrapper that hangs or fails
    /// on purpose), not yet run.
    pub fn command_with_nginx(&self, args: &[&str], nginx_bin: &Path) -> Command {
        command_at(&self.sb, nginx_bin, self.dir.path(), self.https, args)
    }

    /// A command taking auto's pipeline options (`auto`, `plan`, `renew`, `reissue`) against this
    /// host, not yet run.
    pub fn pipeline_command(&self, sub: &str, extra: &[&str]) -> Command {
        let mut command = self.base_command(&[sub]);
        add_pipeline_options(&mut command, sub, extra, self.http);
        command
    }

    pub fn live(&self, site: &str) -> PathBuf {
        self.dir
            .path()
            .join("live")
            .join(site)
            .join("fullchain.pem")
    }
}

/// Starts the Encryption365 simulator in process on a runtime of its own, with the account every
/// test host uses; returns the runtime (keep it alive as long as the simulator), the simulator and
/// the config-file lines (`base_url`, `client_id`, `access_token`, `key_type`) for that account.
pub fn start_sim(options: SimOptions) -> (tokio::runtime::Runtime, SimHandle, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(sim::start(options)).unwrap();
    sim.add_account("admin@example.com", "pw", 100.0);
    let (client_id, token) = sim.add_device("admin@example.com").unwrap();
    let account = format!(
        "base_url = \"{}\"\nclient_id = \"{client_id}\"\naccess_token = \"{token}\"\nkey_type = \"ecdsa-p256\"\n",
        sim.base_url()
    );
    (runtime, sim, account)
}

/// Writes `dir/config.toml` (mode 0600, as it holds the access token).
pub fn write_config(dir: &Path, text: &str) {
    std::fs::write(dir.join("config.toml"), text).unwrap();
    std::fs::set_permissions(
        dir.join("config.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

/// The binary with `args` and the global options of a host made of the nginx `sb` and the config
/// directory `dir` (`config.toml`, `state/`, `hosts` as the hosts file), adding TLS on `https`;
/// not yet run.
pub fn base_command_at(sb: &NginxSandbox, dir: &Path, https: u16, args: &[&str]) -> Command {
    command_at(sb, sb.nginx_bin(), dir, https, args)
}

/// [`base_command_at`] with another nginx binary than the sandbox's.
fn command_at(
    sb: &NginxSandbox,
    nginx_bin: &Path,
    dir: &Path,
    https: u16,
    args: &[&str],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
    command
        .args(args)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--nginx-bin")
        .arg(nginx_bin)
        .arg("--nginx-conf")
        .arg(sb.conf_path())
        .arg("--nginx-prefix")
        .arg(sb.prefix())
        .args(["--https-port", &https.to_string()])
        .env("ENC365_HOSTS_FILE", dir.join("hosts"));
    command
}

/// Adds auto's pipeline options for the subcommand `sub` to `command`: the HTTP port, a short poll
/// interval and (unless `extra` sets one) a 30-second timeout; then `extra`.
pub fn add_pipeline_options(command: &mut Command, sub: &str, extra: &[&str], http: u16) {
    command.args(["--http-port", &http.to_string()]);
    // `plan` waits for no CA: it takes no poll interval or timeout.
    if sub != "plan" {
        command
            .args(["--poll-interval", "0.1"])
            .args(if extra.contains(&"--timeout") {
                &[][..]
            } else {
                &["--timeout", "30"][..]
            });
    }
    command.args(extra);
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The run's JSON document, after checking its exit code (the document and stderr are shown
/// when the code is not `code`).
pub fn expect_exit(out: &Output, code: i32) -> serde_json::Value {
    let doc = json(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{doc:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    doc
}

pub fn served(host: &Host, name: &str) -> verify::ServedCert {
    let addr = SocketAddr::from(([127, 0, 0, 1], host.https));
    verify::handshake(addr, name, Duration::from_secs(5)).unwrap()
}

pub fn pem_fingerprint(path: &Path) -> String {
    verify::pem_leaf_fingerprint(&std::fs::read(path).unwrap()).unwrap()
}
