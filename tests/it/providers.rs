//! The provider choice, as a user meets it: every command (auto, plan, renew, reissue, revoke,
//! products, account, register, status) run by the real binary against the simulator, once per
//! `provider` value. Encryption365 reaches the Encryption365 endpoints the command needs (and the
//! records it writes say so); HowSSL is built (its end-to-end tests are in `howssl.rs`): chosen
//! without a token, every command that needs the CA says to register one, and so does Huawei SCM
//! chosen without an access key — before any request: the simulator's request log stays empty.
//! Also:
//! `register` moves the flat keys of the first release into `[encryption365]`, keeping 0600.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::host::{Host, SITES};
use enc365_nginx::config::{Config, Provider};
use enc365_sim::Faults;

const PASSWORD: &str = "pw";

/// Every command, with the arguments the test gives it (pipeline commands get the host's ports
/// from [`Host::pipeline_command`]).
const COMMANDS: [(&str, &[&str]); 9] = [
    ("status", &[]),
    ("plan", &["--site", "shop.test"]),
    ("products", &[]),
    ("account", &[]),
    ("auto", &["--site", "shop.test"]),
    ("renew", &["--force", "--site", "shop.test"]),
    ("reissue", &["--site", "shop.test"]),
    ("revoke", &["--site", "shop.test", "--yes"]),
    (
        "register",
        &["--username", "admin@example.com", "--password-stdin"],
    ),
];

/// A host whose simulator answers the guessed revoke endpoint and whose config allows it.
fn host() -> Host {
    Host::with_sim_options(
        Faults::default(),
        SITES,
        "enable_unconfirmed_endpoints = true\n",
        |options| options.unconfirmed_endpoints = true,
    )
}

/// Runs `command` with `args` (and `--json`) against the host, the password on stdin.
fn run(host: &Host, command: &str, args: &[&str]) -> Output {
    let mut cmd = match command {
        "auto" | "plan" | "renew" | "reissue" => host.pipeline_command(command, args),
        _ => {
            let mut all = vec![command];
            all.extend_from_slice(args);
            host.base_command(&all)
        }
    };
    cmd.arg("--json")
        .env_remove("ENC365_PASSWORD")
        .env_remove("ENC365_BASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("runs");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    child.wait_with_output().expect("finishes")
}

/// The simulator's request log: requests per CA path.
fn request_log(host: &Host) -> BTreeMap<String, u64> {
    let response = common::http_get(host.sim.addr().port(), "127.0.0.1", "/_sim/requests")
        .expect("request log");
    serde_json::from_str(&response.text()).expect("request log is JSON")
}

/// The paths whose count grew between two logs.
fn called(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    after
        .iter()
        .filter(|(path, n)| before.get(*path).copied().unwrap_or(0) < **n)
        .map(|(path, _)| path.clone())
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Puts `provider = "NAME"` at the top of the host's config file (keeping mode 0600).
fn choose(host: &Host, provider: Provider) {
    let path = host.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with("provider ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, format!("provider = \"{provider}\"\n{kept}")).expect("write");
}

/// The `provider` of every JSON record in `dir` (lineages, orders).
fn record_providers(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).expect("record")).expect("JSON");
            doc["provider"].as_str().unwrap_or("(none)").to_string()
        })
        .collect()
}

#[test]
fn huawei_scm_is_available_and_without_keys_every_ca_command_says_to_register_them() {
    // (Every provider is built now; HowSSL, Huawei SCM and ACME have their end-to-end tests in
    // howssl.rs, scm.rs and acme.rs.) Nothing managed yet, no keys: nothing reaches the CA.
    let host = host();
    choose(&host, Provider::HuaweiScm);
    for (command, args) in COMMANDS {
        let out = run(&host, command, args);
        let all = text(&out);
        assert!(!all.contains("is not available"), "{command}: {all}");
        if matches!(command, "status" | "plan" | "renew") {
            assert_eq!(out.status.code(), Some(0), "{command}: {all}");
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{command}: {all}");
        if matches!(command, "reissue" | "revoke") {
            assert!(all.contains("no certificate managed"), "{command}: {all}");
            continue;
        }
        assert!(all.contains("--access-key"), "{command}: {all}");
    }
    assert!(request_log(&host).is_empty(), "{:?}", request_log(&host));
    assert!(
        !host.dir.path().join("state/certs").exists(),
        "nothing recorded"
    );
}

#[test]
fn encryption365_serves_every_command_through_its_own_endpoints() {
    let host = host();
    let expected: [(&str, &[&str]); 9] = [
        ("status", &[]),
        ("plan", &[]),
        ("products", &["/account/products"]),
        ("account", &["/account/details"]),
        ("auto", &["/cert/create", "/cert/details"]),
        ("renew", &["/cert/create", "/cert/details"]),
        ("reissue", &["/cert/reissue", "/cert/details"]),
        ("revoke", &["/cert/revoke"]),
        ("register", &["/client/create"]),
    ];
    for ((command, args), (name, paths)) in COMMANDS.iter().zip(expected) {
        assert_eq!(*command, name);
        let before = request_log(&host);
        let out = run(&host, command, args);
        assert_eq!(out.status.code(), Some(0), "{command}\n{}", text(&out));
        let called = called(&before, &request_log(&host));
        for path in paths {
            assert!(called.contains(&path.to_string()), "{command}: {called:?}");
        }
        if paths.is_empty() {
            assert!(called.is_empty(), "{command} called the CA: {called:?}");
        }
        assert!(
            called.iter().all(|p| p.starts_with("/cert/")
                || p.starts_with("/account/")
                || p == "/client/create"),
            "{command}: {called:?}"
        );
        if *command == "auto" {
            let state = host.dir.path().join("state");
            assert_eq!(record_providers(&state.join("certs")), ["encryption365"]);
            assert_eq!(record_providers(&state.join("orders")), ["encryption365"]);
        }
    }
    // After the renewal and the reissue, the records still name Encryption365.
    let state = host.dir.path().join("state");
    assert_eq!(record_providers(&state.join("certs")), ["encryption365"]);
    // With a certificate managed, choosing another provider stops renew --force before the CA.
    let before = request_log(&host);
    choose(&host, Provider::HuaweiScm);
    let out = run(&host, "renew", &["--force", "--site", "shop.test"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(request_log(&host), before);
}

#[test]
fn register_moves_flat_keys_into_the_encryption365_table_and_keeps_0600() {
    let host = host();
    let path = host.dir.path().join("config.toml");
    let before = std::fs::read_to_string(&path).expect("config");
    assert!(
        before.starts_with("base_url = "),
        "the host writes flat keys: {before}"
    );
    let out = run(
        &host,
        "register",
        &["--username", "admin@example.com", "--password-stdin"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        doc["migrated_keys"],
        serde_json::json!([
            "base_url",
            "client_id",
            "access_token",
            "enable_unconfirmed_endpoints"
        ])
    );
    let after = std::fs::read_to_string(&path).expect("config");
    let table: toml::Table = after.parse().expect("TOML");
    for key in ["base_url", "client_id", "access_token", "pid"] {
        assert!(!table.contains_key(key), "{key} still flat:\n{after}");
    }
    let e365 = table["encryption365"].as_table().expect("[encryption365]");
    assert_eq!(
        e365["base_url"].as_str(),
        Some(host.sim.base_url().as_str())
    );
    assert_eq!(e365["client_id"].as_str(), doc["client_id"].as_str());
    assert_eq!(e365["enable_unconfirmed_endpoints"].as_bool(), Some(true));
    assert_eq!(
        table["key_type"].as_str(),
        Some("ecdsa-p256"),
        "shared keys stay"
    );
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let token = e365["access_token"].as_str().expect("token");
    assert!(!text(&out).contains(token), "token printed");
    // The migrated file works as it is.
    let config = Config::load(&path).expect("loads");
    assert!(config.holds_credentials());
    let out = run(&host, "account", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn howssl_is_available_and_without_a_token_every_ca_command_says_to_register_one() {
    let host = host();
    choose(&host, Provider::HowSsl);
    for (command, args) in COMMANDS {
        let out = run(&host, command, args);
        let all = text(&out);
        assert!(!all.contains("is not available"), "{command}: {all}");
        if matches!(command, "status" | "plan" | "renew") {
            // Nothing needs the CA: nothing is managed yet.
            assert_eq!(out.status.code(), Some(0), "{command}: {all}");
            continue;
        }
        assert_eq!(out.status.code(), Some(2), "{command}: {all}");
        if matches!(command, "reissue" | "revoke") {
            // Nothing is managed, so there is nothing to reissue or revoke.
            assert!(all.contains("no certificate managed"), "{command}: {all}");
            continue;
        }
        assert!(all.contains("--token-stdin"), "{command}: {all}");
    }
    assert!(request_log(&host).is_empty(), "{:?}", request_log(&host));
}
