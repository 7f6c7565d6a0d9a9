//! `register`, `products` and `account` as a user runs them: the real binary against `enc365-sim`
//! on loopback. The password never comes from a flag, the token never reaches stdout, and a failed
//! registration writes nothing.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use enc365_nginx::config::{Config, Encryption365Settings};
use enc365_nginx::secret::Secret;
use enc365_sim::{BackgroundSim, Faults, SimHandle, SimOptions};
use serde_json::Value;

const USER: &str = "ops@example.com";
const PASSWORD: &str = "s3cret pass";

/// A simulator on its own runtime, so the tests can run the binary synchronously.
struct Sim(BackgroundSim);

impl Sim {
    fn start() -> Sim {
        let sim = BackgroundSim::start(SimOptions::default()).expect("simulator");
        sim.handle().add_account(USER, PASSWORD, 1000.0);
        Sim(sim)
    }

    fn handle(&self) -> &SimHandle {
        self.0.handle()
    }

    /// A config file (0600) holding a fresh device's credentials.
    fn registered_config(&self, dir: &Path) -> (std::path::PathBuf, String) {
        let (client_id, token) = self.handle().add_device(USER).expect("device");
        let config = Config {
            encryption365: Encryption365Settings {
                base_url: self.handle().base_url(),
                client_id: Some(client_id),
                access_token: Some(Secret::new(token.clone())),
                ..Encryption365Settings::default()
            },
            ..Config::default()
        };
        let path = dir.join("config.toml");
        config.save(&path).expect("saved");
        (path, token)
    }
}

fn run(args: &[&str], config: &Path, stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("ENC365_PASSWORD")
        .env_remove("ENC365_BASE_URL")
        .env_remove("ENC365_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("runs");
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn register_with_password_stdin_saves_the_token_0600_and_never_prints_it() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("conf/config.toml");
    let base = sim.handle().base_url();
    let out = run(
        &[
            "register",
            "--username",
            USER,
            "--servername",
            "web-01",
            "--password-stdin",
            "--json",
        ],
        &config,
        Some(&format!("{PASSWORD}\n")),
        &[("ENC365_BASE_URL", &base)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let json: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["registered"], true);
    let saved = Config::load(&config).expect("config saved");
    let token = saved.encryption365.access_token.clone().expect("token");
    assert_eq!(
        saved.encryption365.client_id.as_deref(),
        json["client_id"].as_str()
    );
    assert_eq!(
        saved.encryption365.base_url, base,
        "the token is kept with the service that issued it"
    );
    assert_eq!(
        std::fs::metadata(&config).expect("m").permissions().mode() & 0o777,
        0o600
    );
    for shown in [&stdout, &text(&out.stderr)] {
        assert!(!shown.contains(token.expose()), "token printed: {shown}");
        assert!(!shown.contains(PASSWORD), "password printed: {shown}");
    }
    assert_eq!(json["replaced_client_id"], Value::Null);
    // The saved token works, without the override.
    let out = run(&["account", "--json"], &config, None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn register_takes_the_password_from_the_environment() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let base = sim.handle().base_url();
    let out = run(
        &["register", "--username", USER],
        &config,
        None,
        &[("ENC365_BASE_URL", &base), ("ENC365_PASSWORD", PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Saved the device token"));
    assert!(Config::load(&config).expect("saved").holds_credentials());
}

#[test]
fn a_failed_registration_exits_1_quotes_the_ca_and_leaves_the_config_untouched() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let base = sim.handle().base_url();
    let before = "# hand-written\npid = 108\n";
    std::fs::write(&config, before).expect("write");
    let out = run(
        &["register", "--username", USER, "--password-stdin"],
        &config,
        Some("wrong-password\n"),
        &[("ENC365_BASE_URL", &base)],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("账户或密码错误"), "{stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).expect("read"), before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");

    let absent = dir.path().join("new/config.toml");
    let out = run(
        &["register", "--username", USER, "--password-stdin"],
        &absent,
        Some("wrong-password\n"),
        &[("ENC365_BASE_URL", &base)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !absent.exists() && !absent.parent().expect("p").exists(),
        "nothing created"
    );
}

#[test]
fn register_without_any_password_source_exits_2_before_calling_the_ca() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let base = sim.handle().base_url();
    let out = run(
        &["register", "--username", USER],
        &config,
        None,
        &[("ENC365_BASE_URL", &base)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--password-stdin"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(sim.handle().request_count("/client/create"), 0);
    let out = run(
        &["register", "--username", USER, "--password", "x"],
        &config,
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "there is no --password flag");
}

#[test]
fn products_prints_a_table_or_exactly_one_json_object() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, token) = sim.registered_config(dir.path());
    let out = run(&["products"], &config, None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("PID"), "{table}");
    assert!(table.contains("100*") && table.contains("108"), "{table}");
    assert!(
        table.contains("256.00 CNY") && table.contains("free"),
        "{table}"
    );

    let out = run(&["products", "--json"], &config, None, &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object: {stdout}"
    );
    let json: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(json["products"][0]["pid"], 100);
    assert_eq!(json["products"][1]["price_wildcard"], 750.0);
    assert_eq!(json["configured_pid"], 100);
    assert!(!stdout.contains(&token));
}

#[test]
fn account_shows_the_balance_and_never_the_token() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, token) = sim.registered_config(dir.path());
    let out = run(&["account"], &config, None, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1000.00 CNY"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["account", "--json"], &config, None, &[]);
    let stdout = text(&out.stdout);
    let json: Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(json["credit"], 1000.0);
    assert!(json.get("access_token").is_none());
    assert!(!stdout.contains(&token) && !text(&out.stderr).contains(&token));
}

#[test]
fn a_ca_error_exits_1_with_the_ca_message_on_stderr_and_a_json_error_object() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, token) = sim.registered_config(dir.path());
    sim.handle().set_faults(Faults {
        reject: Some("维护中 maintenance".into()),
        ..Faults::default()
    });
    for cmd in [&["products", "--json"][..], &["account"][..]] {
        let out = run(cmd, &config, None, &[]);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("维护中 maintenance"), "{stderr}");
        assert!(!stderr.contains(&token));
        let stdout = text(&out.stdout);
        assert!(!stdout.contains(&token));
        if cmd.contains(&"--json") {
            // --json: exactly one JSON object, saying what went wrong.
            let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
            assert_eq!(doc["exit_code"], 1, "{doc}");
            assert!(
                doc["error"]
                    .as_str()
                    .unwrap()
                    .contains("维护中 maintenance"),
                "{doc}"
            );
        } else {
            assert!(stdout.is_empty(), "nothing on stdout on failure");
        }
    }
}

#[test]
fn the_base_url_from_the_environment_wins_over_the_config() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = sim.registered_config(dir.path());
    let mut saved = Config::load(&config).expect("load");
    saved.encryption365.base_url = "https://ca.invalid".into();
    saved.save(&config).expect("save");
    let base = sim.handle().base_url();
    let out = run(
        &["account", "--json"],
        &config,
        None,
        &[("ENC365_BASE_URL", &base)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn the_config_path_can_come_from_enc365_config() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = sim.registered_config(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["account", "--json"])
        .env("ENC365_CONFIG", &config)
        .env_remove("ENC365_BASE_URL")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["credit"], 1000.0);
}

#[test]
fn registering_again_replaces_the_device_and_says_which_one() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, old_token) = sim.registered_config(dir.path());
    let old_id = Config::load(&config)
        .expect("load")
        .encryption365
        .client_id
        .expect("id");
    let out = run(
        &["register", "--username", USER, "--password-stdin", "--json"],
        &config,
        Some(PASSWORD),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["replaced_client_id"], old_id.as_str());
    let saved = Config::load(&config).expect("load");
    assert_ne!(
        saved.encryption365.access_token.expect("token").expose(),
        old_token
    );
}
