//! `enc365-sim` as a process: it prints where it listens and the pre-created accounts, answers the
//! client, and obeys fault switches flipped at runtime through `/_sim/faults`.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use enc365_nginx::ca::enc365::{ClientOptions, Enc365};
use enc365_nginx::config::Credentials;
use enc365_nginx::secret::Secret;
use serde_json::{Value, json};

struct SimProcess {
    child: Child,
    started: Value,
}

impl SimProcess {
    fn start(extra: &[&str]) -> SimProcess {
        let mut child = Command::new(common::sim_binary())
            .args(["--listen", "127.0.0.1:0", "--recheck-secs", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("enc365-sim starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("startup line");
        let started: Value = serde_json::from_str(&line).expect("startup line is JSON");
        SimProcess { child, started }
    }

    fn base_url(&self) -> String {
        self.started["base_url"]
            .as_str()
            .expect("base_url")
            .to_string()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        read_retries: 1,
        retry_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn the_sim_process_serves_preset_accounts_and_obeys_runtime_fault_switches() {
    let sim = SimProcess::start(&["--account", "panel@example.com:pw"]);
    let account = &sim.started["accounts"][0];
    assert_eq!(account["username"], "panel@example.com");
    assert!(
        sim.started["root_ca"]
            .as_str()
            .expect("root")
            .contains("BEGIN CERTIFICATE")
    );
    let client = Enc365::new(
        &sim.base_url(),
        Some(Credentials {
            client_id: account["client_id"].as_str().expect("id").to_string(),
            access_token: Secret::new(account["access_token"].as_str().expect("token")),
        }),
        options(),
    )
    .expect("client");
    assert_eq!(client.products().await.expect("products").len(), 2);

    let http = reqwest::Client::new();
    let admin = format!("{}/_sim/faults", sim.base_url());
    let set = http
        .post(&admin)
        .json(&json!({"http_status": 503, "paths": ["/account/products"]}))
        .send()
        .await
        .expect("POST faults");
    assert_eq!(set.status(), 200);
    let e = client.products().await.expect_err("503 now");
    assert!(e.to_string().contains("503"), "{e}");
    assert!(
        client.account_details().await.is_ok(),
        "other paths unaffected"
    );

    let counts: Value = http
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .expect("GET requests")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        counts["/account/products"], 3,
        "1 ok + 2 attempts under the fault"
    );

    let bad = http
        .post(&admin)
        .body("{\"no_such_fault\":1}")
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), 400, "unknown fault names are refused");
    let cleared = http.post(&admin).body("{}").send().await.expect("POST");
    assert_eq!(cleared.status(), 200);
    assert_eq!(client.products().await.expect("products again").len(), 2);
}

#[tokio::test]
async fn fault_flags_given_at_start_are_active_from_the_first_request() {
    let sim = SimProcess::start(&["--account", "a@example.com:pw", "--html-error"]);
    let account = &sim.started["accounts"][0];
    let client = Enc365::new(
        &sim.base_url(),
        Some(Credentials {
            client_id: account["client_id"].as_str().expect("id").to_string(),
            access_token: Secret::new(account["access_token"].as_str().expect("token")),
        }),
        options(),
    )
    .expect("client");
    let e = client.account_details().await.expect_err("HTML");
    assert!(e.to_string().contains("HTML page"), "{e}");
}

#[test]
fn the_sim_refuses_to_listen_beyond_loopback() {
    let out = Command::new(common::sim_binary())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn unknown_paths_and_get_requests_are_not_ca_endpoints() {
    let sim = SimProcess::start(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/cert/revoke", sim.base_url()))
            .send()
            .await
            .expect("x");
        assert_eq!(r.status(), 404, "unconfirmed endpoints are off by default");
        let r = http
            .get(format!("{}/account/products", sim.base_url()))
            .send()
            .await
            .expect("x");
        assert_eq!(r.status(), 405);
        let r = http
            .post(format!("{}/account/products", sim.base_url()))
            .body("nope")
            .send();
        let body: Value = r.await.expect("x").json().await.expect("JSON error");
        assert_eq!(body["result"], "error");
    });
}

#[tokio::test]
async fn accounts_and_devices_can_be_created_over_the_admin_endpoints() {
    let sim = SimProcess::start(&[]);
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let r = http
        .post(format!("{base}/_sim/accounts"))
        .json(&json!({"username": "new@example.com", "password": "pw2", "credit": 5}))
        .send()
        .await
        .expect("POST accounts");
    assert_eq!(r.status(), 200);
    let anon = Enc365::new(&base, None, options()).expect("client");
    let reg = anon
        .register("new@example.com", &Secret::new("pw2"), "box")
        .await
        .expect("login");

    let device: Value = http
        .post(format!("{base}/_sim/devices"))
        .json(&json!({"username": "new@example.com"}))
        .send()
        .await
        .expect("POST devices")
        .json()
        .await
        .expect("JSON");
    for (client_id, token) in [
        (reg.account_id.clone(), reg.secret.expose().to_string()),
        (
            device["client_id"].as_str().expect("id").to_string(),
            device["access_token"].as_str().expect("token").to_string(),
        ),
    ] {
        let client = Enc365::new(
            &base,
            Some(Credentials {
                client_id,
                access_token: Secret::new(token),
            }),
            options(),
        )
        .expect("client");
        assert_eq!(
            client.account_details().await.expect("credit").credit,
            Some(5.0)
        );
    }
    let unknown = http
        .post(format!("{base}/_sim/devices"))
        .json(&json!({"username": "nobody@example.com"}))
        .send()
        .await
        .expect("POST devices");
    assert_eq!(unknown.status(), 400);

    let root = http
        .get(format!("{base}/_sim/ca.pem"))
        .send()
        .await
        .expect("GET ca");
    assert_eq!(
        root.text().await.expect("pem"),
        sim.started["root_ca"].as_str().expect("root")
    );
    let recheck = http
        .post(format!("{base}/_sim/recheck"))
        .send()
        .await
        .expect("POST recheck");
    assert_eq!(recheck.status(), 200);
}
