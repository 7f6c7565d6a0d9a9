//! The ACME provider against a real ACME server nobody on this team wrote: Debian's `pebble`,
//! started here on loopback high ports with its own listener certificate (trusted through
//! `ENC365_CA_BUNDLE`, never by switching verification off), `pebble-challtestsrv` as its DNS
//! (every name resolves to 127.0.0.1), `PEBBLE_VA_NOSLEEP=1`, and its HTTP-01 port pointed at
//! the sandbox nginx. Certificates are checked by a TLS handshake verified against Pebble's root
//! (fetched from its management endpoint) with openssl, not by our own code.
//!
//! Skipped (with a message) when pebble is not installed; `scripts/deps.sh` installs it in CI.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::host::{Host, expect_exit, pem_fingerprint};
use common::named::Named;
use enc365_sim::Faults;

/// Sites with webroots (HTTP-01 files go to `<root>/.well-known/acme-challenge/`).
const SITES: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test www.shop.test;
        root {prefix}/www/shop;
    }
    server {
        listen 127.0.0.1:{port.0};
        server_name php.test;
        root {prefix}/www/php;
    }
"#;

/// Sites without a webroot: a proxy and a redirect-only block (HTTP-01 through the temporary
/// `location ^~ /.well-known/acme-challenge/`).
const PROXY_SITES: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name api.test;
        location / {
            proxy_pass http://127.0.0.1:9;
        }
    }
    server {
        listen 127.0.0.1:{port.0};
        server_name go.test;
        return 301 https://example.com$request_uri;
    }
"#;

/// A running Pebble (with its DNS), killed on drop.
struct Pebble {
    pebble: Child,
    dns: Child,
    log: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
    directory: String,
    management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn installed() -> bool {
    let found = ["pebble", "pebble-challtestsrv"].iter().all(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        eprintln!("pebble is not installed (scripts/deps.sh installs it): ACME test skipped");
    }
    found
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port`, with `env` (fault switches) added.
    fn start(http_port: u16, env: &[(&str, &str)]) -> Pebble {
        Pebble::start_with_dns(http_port, env, None)
    }

    /// [`Pebble::start`], resolving names (and DNS-01 TXT records) at `dns` instead of
    /// `pebble-challtestsrv` when given.
    fn start_with_dns(
        http_port: u16,
        env: &[(&str, &str)],
        dns_server: Option<std::net::SocketAddr>,
    ) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert_pem, key_pem) = listener_certificate();
        let d = dir.path();
        std::fs::write(d.join("ca.pem"), ca_pem).unwrap();
        std::fs::write(d.join("cert.pem"), cert_pem).unwrap();
        std::fs::write(d.join("key.pem"), key_pem).unwrap();
        let [listen, management, dns, dns_management, tls] = [(); 5].map(|_| common::free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": d.join("cert.pem"),
            "privateKey": d.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }});
        std::fs::write(d.join("pebble.json"), config.to_string()).unwrap();
        let dns_child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pebble = Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble.json"))
            .args([
                "-dnsserver",
                &dns_server.map_or_else(|| format!("127.0.0.1:{dns}"), |a| a.to_string()),
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stdout = pebble.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "pebble did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Pebble {
            pebble,
            dns: dns_child,
            log,
            dir,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
        }
    }

    /// The CA bundle for Pebble's listener.
    fn bundle(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Pebble's issuing root, from its management endpoint, in a file.
    fn root(&self) -> PathBuf {
        let path = self.dir.path().join("pebble-root.pem");
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.bundle())
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&path, out.stdout).unwrap();
        path
    }

    /// Pebble's `n`th issuing root (`PEBBLE_ALTERNATE_ROOTS`), in a file, with its common name.
    fn root_n(&self, n: usize) -> (PathBuf, String) {
        let path = self.dir.path().join(format!("pebble-root-{n}.pem"));
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(self.bundle())
            .arg(format!("https://127.0.0.1:{}/roots/{n}", self.management))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&path, &out.stdout).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(&out.stdout).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        (path, cn.as_str().unwrap().to_string())
    }

    /// How many orders Pebble has created.
    /// The orders Pebble logged, once its log has been quiet for 300 ms (the log is read by
    /// another thread and trails the requests a little on a loaded machine).
    fn orders(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = self.log.lock().unwrap().len();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.log.lock().unwrap().len();
            if now == seen {
                break;
            }
            seen = now;
        }
        self.log.lock().unwrap().matches("Added order").count()
    }
}

/// A CA and a `127.0.0.1`/`localhost` certificate it signed, for Pebble's listener.
fn listener_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "enc365 test pebble listener CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

/// The sandbox host switched to ACME at `pebble`, with an account registered.
fn acme_host(pebble_env: &[(&str, &str)]) -> (Host, Pebble) {
    acme_host_with(SITES, pebble_env)
}

/// [`acme_host`] with other sites.
fn acme_host_with(sites: &str, pebble_env: &[(&str, &str)]) -> (Host, Pebble) {
    acme_host_at(sites, pebble_env, None, "")
}

/// [`acme_host_with`], Pebble resolving at `named` when given, with `extra` config lines.
fn acme_host_at(
    sites: &str,
    pebble_env: &[(&str, &str)],
    named: Option<&Named>,
    extra: &str,
) -> (Host, Pebble) {
    let host = Host::with(Faults::default(), sites, "");
    let pebble = Pebble::start_with_dns(host.http, pebble_env, named.map(|n| n.addr));
    let config = host.dir.path().join("config.toml");
    let dns = named.map(|n| n.rfc2136_config(15)).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "provider = \"acme\"\nkey_type = \"ecdsa-p256\"\n{dns}[acme]\ndirectory = \"{}\"\n{extra}",
            pebble.directory
        ),
    )
    .unwrap();
    let out = with_bundle(&mut host_command(&host, &pebble, &["register"]), &pebble)
        .args(["--email", "admin@example.com", "--agree-tos", "--json"])
        .output()
        .unwrap();
    let doc = expect_exit(&out, 0);
    assert!(
        doc["account_url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1")
    );
    (host, pebble)
}

fn host_command(host: &Host, _pebble: &Pebble, args: &[&str]) -> Command {
    let d = host.dir.path();
    let mut command = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
    command
        .args(args)
        .arg("--config")
        .arg(d.join("config.toml"))
        .arg("--state-dir")
        .arg(d.join("state"));
    command
}

fn with_bundle<'a>(command: &'a mut Command, pebble: &Pebble) -> &'a mut Command {
    command.env("ENC365_CA_BUNDLE", pebble.bundle())
}

/// `auto`/`renew` against the host and Pebble.
fn pipeline(host: &Host, pebble: &Pebble, sub: &str, extra: &[&str]) -> Command {
    let mut command = host.pipeline_command(sub, extra);
    command.env("ENC365_CA_BUNDLE", pebble.bundle());
    command
}

/// True when openssl, trusting only `root`, verifies the chain `name` serves on `port`.
fn verified_by(root: &Path, port: u16, name: &str) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            name,
            "-verify_return_error",
            "-verify_hostname",
            name,
        ])
        .arg("-CAfile")
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("Verify return code: 0 (ok)")
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

#[test]
fn register_refuses_without_agreement_and_shows_the_terms() {
    if !installed() {
        return;
    }
    let host = Host::with(Faults::default(), SITES, "");
    let pebble = Pebble::start(host.http, &[]);
    std::fs::write(host.dir.path().join("config.toml"), "").unwrap();
    let out = run(with_bundle(
        host_command(&host, &pebble, &["register", "--provider", "acme"]).args([
            "--server",
            &pebble.directory,
            "--email",
            "a@example.com",
        ]),
        &pebble,
    ));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--agree-tos"), "{err}");
    assert!(err.contains("terms"), "{err}");
    assert!(!host.dir.path().join("acme").exists(), "nothing saved");

    // Without the CA bundle, Pebble's listener is not trusted: refused, not bypassed.
    let out = run(
        host_command(&host, &pebble, &["register", "--provider", "acme"]).args([
            "--server",
            &pebble.directory,
            "--email",
            "a@example.com",
            "--agree-tos",
        ]),
    );
    assert_ne!(out.status.code(), Some(0));

    let register = || {
        run(with_bundle(
            host_command(
                &host,
                &pebble,
                &["register", "--provider", "acme", "--json"],
            )
            .args([
                "--server",
                &pebble.directory,
                "--email",
                "a@example.com",
                "--agree-tos",
            ]),
            &pebble,
        ))
    };
    let first = expect_exit(&register(), 0);
    assert_eq!(first["created"], true);
    let key = PathBuf::from(first["account_key"].as_str().unwrap());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let again = expect_exit(&register(), 0);
    assert_eq!(again["created"], false, "the saved key is reused");
    assert_eq!(again["account_url"], first["account_url"]);

    let account = run(with_bundle(
        &mut host_command(&host, &pebble, &["account"]),
        &pebble,
    ));
    let text = String::from_utf8_lossy(&account.stdout);
    assert!(account.status.success(), "{text}");
    assert!(
        text.contains(first["account_url"].as_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("mailto:a@example.com"), "{text}");
    let products = run(with_bundle(
        &mut host_command(&host, &pebble, &["products"]),
        &pebble,
    ));
    assert_eq!(products.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&products.stderr).contains("ACME has no products"));
}

#[test]
fn auto_with_bad_nonces_issues_verified_certificates_then_renews() {
    if !installed() {
        return;
    }
    let (host, pebble) = acme_host(&[("PEBBLE_WFE_NONCEREJECT", "20")]);
    let out = run(&mut pipeline(&host, &pebble, "auto", &["--json"]));
    let doc = expect_exit(&out, 0);
    assert!(doc["reloads"].as_u64().unwrap() <= 2, "{doc:#}");
    assert_eq!(pebble.orders(), 2, "one order per site");
    let root = pebble.root();
    for name in ["shop.test", "www.shop.test", "php.test"] {
        assert!(
            verified_by(&root, host.https, name),
            "{name} verified by Pebble's root"
        );
    }
    let before = pem_fingerprint(&host.live("shop.test"));
    assert!(
        !host.sb.path("www/shop/.well-known/acme-challenge").exists()
            || std::fs::read_dir(host.sb.path("www/shop/.well-known/acme-challenge"))
                .unwrap()
                .next()
                .is_none(),
        "challenge files removed"
    );

    let out = run(&mut pipeline(
        &host,
        &pebble,
        "renew",
        &["--force", "--site", "shop.test", "--json"],
    ));
    expect_exit(&out, 0);
    assert_eq!(pebble.orders(), 3, "the renewal is one new order");
    assert_ne!(pem_fingerprint(&host.live("shop.test")), before);
    for name in ["shop.test", "www.shop.test"] {
        assert!(
            verified_by(&root, host.https, name),
            "{name} renewed, verified"
        );
    }

    let out = run(with_bundle(
        host_command(&host, &pebble, &["revoke", "--site", "php.test", "--yes"])
            .args(["--reason", "superseded"]),
        &pebble,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        pebble.log.lock().unwrap().contains("evok"),
        "Pebble saw a revocation"
    );
}

#[test]
fn a_run_killed_mid_order_is_resumed_without_a_second_order() {
    if !installed() {
        return;
    }
    let (host, pebble) = acme_host(&[]);
    let record = host.dir.path().join("state/orders/php.test.json");
    // Like `pipeline`, but polling every 2 s, so the order stays open long enough to be killed.
    let mut slow = host_command(&host, &pebble, &["auto", "--site", "php.test"]);
    slow.arg("--nginx-bin")
        .arg(host.sb.nginx_bin())
        .arg("--nginx-conf")
        .arg(host.sb.conf_path())
        .arg("--nginx-prefix")
        .arg(host.sb.prefix())
        .args(["--https-port", &host.https.to_string()])
        .args([
            "--http-port",
            &host.http.to_string(),
            "--poll-interval",
            "2",
        ])
        .env("ENC365_HOSTS_FILE", host.dir.path().join("hosts"))
        .env("ENC365_CA_BUNDLE", pebble.bundle());
    let mut child = slow
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        if text.contains("\"state\": \"pending\"") || text.contains("\"state\":\"pending\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no order placed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "killed while the order is open"
    );
    nix_kill(child.id());
    child.wait().unwrap();
    assert_eq!(pebble.orders(), 1);

    let out = run(&mut pipeline(
        &host,
        &pebble,
        "auto",
        &["--site", "php.test", "--json"],
    ));
    expect_exit(&out, 0);
    assert_eq!(pebble.orders(), 1, "the same order was resumed");
    assert!(verified_by(&pebble.root(), host.https, "php.test"));
}

fn nix_kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_wildcard_order_hands_out_the_dns_01_record_as_data() {
    // DNS-01 publishing belongs to the DNS-validation work; here the order level: Pebble's
    // challenges for a wildcard become the `_acme-challenge` TXT record the DNS publisher needs.
    use enc365_nginx::ca::acme::{self, Acme, AcmeRegistration};
    use enc365_nginx::ca::{CertificateAuthority, Challenge, Created, OrderRequest};
    use enc365_nginx::config::AcmeSettings;
    if !installed() {
        return;
    }
    let pebble = Pebble::start(common::free_port(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let settings = AcmeSettings {
        directory: Some(pebble.directory.clone()),
        ca_bundle: Some(pebble.bundle()),
        ..AcmeSettings::default()
    };
    let client = Acme::new(&settings, dir.path()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registration = AcmeRegistration {
        email: "a@example.com".into(),
        agree_tos: true,
        eab: None,
    };
    runtime
        .block_on(acme::register(&client, &registration))
        .unwrap();
    let names = vec!["*.wild.test".to_string(), "wild.test".to_string()];
    let request = OrderRequest {
        product: String::new(),
        names: names.clone(),
        csr_pem: String::new(),
        period: None,
        renews: None,
        existing_id: None,
        methods: Default::default(),
    };
    let Created::Placed(order) = runtime.block_on(client.create(&request)).unwrap() else {
        panic!("ACME orders are placed in one step");
    };
    assert!(order.id.0.starts_with("https://127.0.0.1"), "{}", order.id);
    assert_eq!(pebble.orders(), 1);
    let status = runtime
        .block_on(client.order_status(&order.id, &names))
        .unwrap();
    let wildcard = status
        .validations
        .iter()
        .find(|v| v.name == "*.wild.test")
        .unwrap();
    let dns: Vec<&Challenge> = (wildcard.challenges.iter())
        .filter(|c| matches!(c, Challenge::DnsRecord { .. }))
        .collect();
    let [
        Challenge::DnsRecord {
            host,
            record_type,
            value,
        },
    ] = dns[..]
    else {
        panic!("one DNS-01 record: {:?}", wildcard.challenges);
    };
    assert_eq!(host, "_acme-challenge.wild.test");
    assert_eq!(record_type, "TXT");
    assert_eq!(value.len(), 43, "base64url SHA-256: {value}");
    assert!(
        wildcard.challenges.iter().all(|c| c.http_path().is_none()),
        "no HTTP-01 for a wildcard"
    );
    let plain = status
        .validations
        .iter()
        .find(|v| v.name == "wild.test")
        .unwrap();
    assert!(plain.challenges.iter().any(|c| {
        c.http_path()
            .is_some_and(|p| p.starts_with("/.well-known/acme-challenge/"))
    }));
    // Asking again reads the same order: no second newOrder.
    runtime
        .block_on(client.order_status(&order.id, &names))
        .unwrap();
    assert_eq!(pebble.orders(), 1);
}

/// Every configuration file under the sandbox, as text, with the lines we manage left out.
fn config_without_managed_lines(host: &Host) -> String {
    let text = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    text.lines()
        .filter(|l| !l.ends_with("# managed by enc365-nginx"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn proxy_and_redirect_sites_get_http_01_through_a_temporary_location() {
    if !installed() {
        return;
    }
    let (host, pebble) = acme_host_with(PROXY_SITES, &[]);
    let mut hosts = std::fs::read_to_string(host.dir.path().join("hosts")).unwrap();
    hosts.push_str("127.0.0.1 api.test\n127.0.0.1 go.test\n");
    std::fs::write(host.dir.path().join("hosts"), hosts).unwrap();
    let before = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert!(!before.contains("managed by enc365-nginx"));

    let out = run(&mut pipeline(&host, &pebble, "auto", &["--json"]));
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["reloads"], 2,
        "one for the locations, one for the install: {doc:#}"
    );
    assert_eq!(pebble.orders(), 2, "one order per site");
    let root = pebble.root();
    for name in ["api.test", "go.test"] {
        assert!(
            verified_by(&root, host.https, name),
            "{name} verified by Pebble's root"
        );
    }
    let after = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert!(
        !after.contains("acme-challenge"),
        "temporary location removed: {after}"
    );
    assert!(after.contains("managed by enc365-nginx"), "{after}");
    assert_eq!(
        config_without_managed_lines(&host),
        before,
        "only our lines were added"
    );
    let dcv = host.dir.path().join("state/dcv");
    assert_eq!(
        std::fs::read_dir(&dcv).unwrap().count(),
        0,
        "challenge files removed"
    );

    // Pebble 2.4 offers no renewal information (no `renewalInfo` in its directory): `--days`
    // decides, and `renew --json` says so.
    let out = run(&mut pipeline(&host, &pebble, "renew", &["--json"]));
    let doc = expect_exit(&out, 0);
    let not_due = doc["not_due"].as_array().unwrap();
    assert_eq!(not_due.len(), 2, "{doc:#}");
    assert!(not_due.iter().all(|n| n["rule"] == "days"), "{doc:#}");
    let out = run(&mut pipeline(
        &host,
        &pebble,
        "renew",
        &["--json", "--days", "3650"],
    ));
    let doc = expect_exit(&out, 0);
    // Pebble's certificates are valid for about five years.
    let due = doc["due"].as_array().unwrap();
    assert_eq!(due.len(), 2, "{doc:#}");
    assert!(due.iter().all(|d| d["rule"] == "days"), "{doc:#}");
    assert_eq!(pebble.orders(), 4, "renewed by --days");
}

#[test]
fn a_wildcard_is_proven_by_dns_01_at_a_real_bind_and_served() {
    if !installed() {
        return;
    }
    const WILD: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name w.test *.w.test;
        root {prefix}/www/shop;
    }
"#;
    let named = Named::start(&["w.test"]);
    let (host, pebble) = acme_host_at(WILD, &[], Some(&named), "");
    let mut hosts = std::fs::read_to_string(host.dir.path().join("hosts")).unwrap();
    hosts.push_str("127.0.0.1 w.test\n");
    std::fs::write(host.dir.path().join("hosts"), hosts).unwrap();

    let out = run(&mut pipeline(&host, &pebble, "auto", &["--json"]));
    let doc = expect_exit(&out, 0);
    assert_eq!(
        pebble.orders(),
        1,
        "one order for apex and wildcard: {doc:#}"
    );
    let issued = &doc["sites"][0]["names_issued"];
    assert!(
        (issued.as_array().unwrap().iter()).any(|n| n == "*.w.test"),
        "{doc:#}"
    );
    let root = pebble.root();
    for name in ["w.test", "x.w.test", "deep-name.w.test"] {
        assert!(
            verified_by(&root, host.https, name),
            "{name} verified by Pebble's root"
        );
    }
    let txt = named.values("_acme-challenge.w.test", hickory_proto::rr::RecordType::TXT);
    assert!(txt.is_empty(), "the TXT records were removed: {txt:?}");
    assert!(
        named.log().contains("_acme-challenge.w.test"),
        "the record went through named's RFC 2136 updates"
    );
}

#[test]
fn the_preferred_chain_is_the_one_installed() {
    if !installed() {
        return;
    }
    let (host, pebble) = acme_host(&[("PEBBLE_ALTERNATE_ROOTS", "2")]);
    let (root0, _) = pebble.root_n(0);
    let (root1, cn1) = pebble.root_n(1);
    let (root2, cn2) = pebble.root_n(2);
    let site = ["--site", "php.test", "--json"];
    let mut auto = pipeline(&host, &pebble, "auto", &site);
    expect_exit(&run(auto.args(["--preferred-chain", &cn1])), 0);
    let chain = std::fs::read_to_string(host.live("php.test")).unwrap();
    assert_eq!(
        enc365_nginx::ca::acme::top_issuer_cn(&chain),
        Some(cn1.clone())
    );
    assert!(
        verified_by(&root1, host.https, "php.test"),
        "served chain ends at {cn1}"
    );
    assert!(
        !verified_by(&root0, host.https, "php.test"),
        "not the default chain"
    );

    // `[acme] preferred_chain` in the config, for a renewal.
    let config = host.dir.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("preferred_chain = \"{cn2}\"\n"));
    std::fs::write(&config, text).unwrap();
    let renew = ["--force", "--site", "php.test", "--json"];
    expect_exit(&run(&mut pipeline(&host, &pebble, "renew", &renew)), 0);
    let chain = std::fs::read_to_string(host.live("php.test")).unwrap();
    assert_eq!(
        enc365_nginx::ca::acme::top_issuer_cn(&chain),
        Some(cn2.clone())
    );
    assert!(
        verified_by(&root2, host.https, "php.test"),
        "served chain ends at {cn2}"
    );

    // A name no chain has: the default chain.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&cn2, "No Such Root")).unwrap();
    expect_exit(&run(&mut pipeline(&host, &pebble, "renew", &renew)), 0);
    assert!(
        verified_by(&root0, host.https, "php.test"),
        "the default chain"
    );
}

#[test]
fn with_validation_dns_a_plain_name_is_proven_by_dns_01_too() {
    if !installed() {
        return;
    }
    const PLAIN: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name d.test;
        root {prefix}/www/shop;
    }
"#;
    let named = Named::start(&["d.test"]);
    let (host, pebble) = acme_host_at(PLAIN, &[], Some(&named), "");
    let config = host.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("validation = \"auto\""), "{text}");
    std::fs::write(
        &config,
        text.replace("validation = \"auto\"", "validation = \"dns\""),
    )
    .unwrap();
    let mut hosts = std::fs::read_to_string(host.dir.path().join("hosts")).unwrap();
    hosts.push_str("127.0.0.1 d.test\n");
    std::fs::write(host.dir.path().join("hosts"), hosts).unwrap();

    let out = run(&mut pipeline(&host, &pebble, "auto", &["--json"]));
    let doc = expect_exit(&out, 0);
    assert_eq!(pebble.orders(), 1, "{doc:#}");
    assert!(verified_by(&pebble.root(), host.https, "d.test"));
    // No HTTP file was published: only the DNS-01 answer can have proven the name.
    assert!(!host.sb.path("www/shop/.well-known/acme-challenge").exists());
    assert!(named.log().contains("_acme-challenge.d.test"));
    let txt = named.values("_acme-challenge.d.test", hickory_proto::rr::RecordType::TXT);
    assert!(txt.is_empty(), "removed: {txt:?}");
}
