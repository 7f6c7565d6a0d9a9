//! HowSSL end to end: the real binary with `provider = "howssl"` against a real nginx sandbox and
//! the simulator in its HowSSL mode (multipart `/Home/...` API, validating files over real HTTP
//! against that nginx, issuing real X.509). Orders are counted in the simulator's request log
//! (`createOrder`, `commitOrder`).

use crate::common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::host::{Host, SITES, expect_exit, json, pem_fingerprint, served};
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::howssl::HowFaults;
use enc365_sim::{Faults, SimProvider};

const TOKEN: &str = "howssl-test-token-0123456789";
const CREATE: &str = "/Home/Order/createOrder";
const COMMIT: &str = "/Home/Order/commitOrder";

/// A host whose simulator speaks HowSSL, with a token holding `amount`, and a config choosing
/// HowSSL (`extra` is added to the `[howssl]` table).
fn host_with(amount: f64, extra: &str) -> Host {
    let host = Host::with_sim_options(Faults::default(), SITES, "", |o| {
        o.provider = SimProvider::HowSsl;
    });
    host.sim.add_howssl_token(TOKEN, "ops@example.com", amount);
    let config = format!(
        "provider = \"howssl\"\nkey_type = \"ecdsa-p256\"\n\n[howssl]\nbase_url = \"{}\"\n\
         token = \"{TOKEN}\"\nproduct_code = \"sim-dv-multi\"\nvalidity_period = 12\n{extra}",
        host.sim.base_url()
    );
    std::fs::write(host.dir.path().join("config.toml"), config).expect("config");
    host
}

fn host() -> Host {
    host_with(1000.0, "")
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn counts(host: &Host) -> (u64, u64) {
    (
        host.sim.request_count(CREATE),
        host.sim.request_count(COMMIT),
    )
}

fn site_error(doc: &serde_json::Value, site: &str) -> String {
    let sites = doc["sites"].as_array().expect("sites");
    let entry = sites.iter().find(|s| s["site"] == site).expect("site");
    entry["error"].as_str().unwrap_or_default().to_string()
}

/// Starts `auto` with `args`, kills it with SIGKILL once `reached` is true (30 s at most).
fn kill_when(host: &Host, args: &[&str], reached: impl Fn() -> bool) {
    let mut child = (host.auto_command(args))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reached() {
        assert!(Instant::now() < deadline, "the run never got there");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

#[test]
fn howssl_auto_gives_every_site_a_certificate_verified_by_handshake() {
    let host = host();
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 0);
    for (site, names) in [
        ("shop.test", vec!["shop.test", "www.shop.test"]),
        ("app.test", vec!["app.test"]),
        ("php.test", vec!["php.test"]),
        ("legacy.test", vec!["legacy.test"]),
        ("v6.test", vec!["v6.test"]),
        ("wild.test", vec!["wild.test"]),
    ] {
        let fp = pem_fingerprint(&host.live(site));
        for name in names {
            assert_eq!(served(&host, name).fingerprint, fp, "{name}: {doc:#}");
        }
    }
    // One draft and one commit per site; the balance paid 10 per order and 2 per extra name.
    assert_eq!(counts(&host), (6, 6));
    let balance = host.sim.howssl_balance(TOKEN).expect("balance");
    assert!((balance - (1000.0 - 62.0)).abs() < 1e-6, "{balance}");
    let record = std::fs::read_to_string(host.dir.path().join("state/certs/shop.test.json"))
        .expect("lineage");
    assert!(record.contains("\"howssl\""), "{record}");
    // The validation files are gone.
    assert!(!host.sb.path("www/shop/.well-known").exists());
    // A second run orders nothing.
    let again = host.auto(&["--json"]);
    expect_exit(&again, 0);
    assert_eq!(counts(&host), (6, 6));
    assert!(!text(&out).contains(TOKEN) && !text(&again).contains(TOKEN));
}

#[test]
fn howssl_renew_is_a_new_order_and_keeps_the_old_certificate_until_the_new_one_is_verified() {
    let host = host();
    expect_exit(&host.auto(&["--json", "--site", "shop.test"]), 0);
    let old = pem_fingerprint(&host.live("shop.test"));
    // The CA is slow: the renewal times out, and the old certificate is still what is served.
    host.sim.set_howssl_faults(HowFaults {
        issuance_delay_secs: 3600,
        ..HowFaults::default()
    });
    let out = host.renew(&["--json", "--force", "--site", "shop.test", "--timeout", "2"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(counts(&host), (2, 2), "a new order, not a renew call");
    assert_eq!(pem_fingerprint(&host.live("shop.test")), old);
    assert_eq!(served(&host, "shop.test").fingerprint, old);
    // Once the CA issues, the next run resumes that order (no third one) and installs it.
    host.sim.set_howssl_faults(HowFaults::default());
    let out = host.renew(&["--json", "--force", "--site", "shop.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(counts(&host), (2, 2), "{doc:#}");
    let new = pem_fingerprint(&host.live("shop.test"));
    assert_ne!(new, old);
    assert_eq!(served(&host, "www.shop.test").fingerprint, new);
}

#[test]
fn howssl_killed_between_create_and_commit_a_rerun_commits_the_saved_check_id() {
    let host = host();
    // The balance check before the commit is slow: the run is killed there, draft saved.
    host.sim.set_howssl_faults(HowFaults {
        latency_paths: vec!["/Home/User/AccountInfo".into()],
        latency_ms: 3000,
        ..HowFaults::default()
    });
    kill_when(&host, &["--json", "--site", "shop.test"], || {
        host.sim.request_count("/Home/User/AccountInfo") >= 2
    });
    assert_eq!(counts(&host), (1, 0));
    let records = OrderRecord::all(&host.dir.path().join("state")).expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Created);
    assert!(records[0].draft_id.is_some());

    host.sim.set_howssl_faults(HowFaults::default());
    let doc = expect_exit(&host.auto(&["--json", "--site", "shop.test"]), 0);
    assert_eq!(counts(&host), (1, 1), "{doc:#}");
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
}

#[test]
fn howssl_killed_between_commit_and_its_saved_answer_a_rerun_names_the_check_id_and_orders_nothing()
{
    let host = host();
    host.sim.set_howssl_faults(HowFaults {
        latency_paths: vec![COMMIT.into()],
        latency_ms: 20_000,
        ..HowFaults::default()
    });
    kill_when(&host, &["--json", "--site", "shop.test"], || {
        host.sim.request_count(COMMIT) > 0
    });
    let records = OrderRecord::all(&host.dir.path().join("state")).expect("records");
    assert_eq!(records[0].state, RecordState::Committing);
    let check_id = records[0].draft_id.clone().expect("draft");

    host.sim.set_howssl_faults(HowFaults::default());
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    let err = site_error(&doc, "shop.test");
    assert!(
        err.contains(&check_id)
            && err.contains("CA console")
            && err.contains("HowSSL console")
            && err.contains("--discard-interrupted-order"),
        "{err}"
    );
    assert_eq!(counts(&host), (1, 1), "nothing ordered or committed again");
}

#[test]
fn howssl_short_balance_orders_nothing_and_says_so() {
    let host = host_with(15.0, "");
    // shop.test (2 names) costs 12, php.test 10: the first fits, the second no longer does.
    let out = host.auto(&["--json", "--site", "shop.test", "--site", "php.test"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let err = site_error(&doc, "php.test");
    assert!(
        err.contains("balance") && err.contains("nothing was ordered") && err.contains("Top up"),
        "{err}"
    );
    assert_eq!(counts(&host), (1, 1), "only shop.test was ordered");
    assert!(host.live("shop.test").exists());
    assert!(!host.live("php.test").exists());
    let balance = host.sim.howssl_balance(TOKEN).expect("balance");
    assert!((balance - 3.0).abs() < 1e-6, "{balance}");
}

#[test]
fn howssl_every_documented_error_envelope_is_reported_with_its_msg_and_code() {
    let host = host();
    for path in [
        "/Home/Product_info/lists",
        "/Home/User/AccountInfo",
        CREATE,
        COMMIT,
        "/Home/Order/getOrderInfo",
    ] {
        let mut faults = HowFaults {
            error_code: Some(4031),
            ..HowFaults::default()
        };
        faults
            .errors
            .insert(path.into(), format!("refused at {path}"));
        host.sim.set_howssl_faults(faults);
        let out = host.auto(&["--json", "--site", "shop.test", "--timeout", "2"]);
        let doc = json(&out);
        assert_ne!(out.status.code(), Some(0), "{path}: {doc:#}");
        let all = format!("{doc}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            all.contains(&format!("refused at {path}")) && all.contains("4031"),
            "{path}: {all}"
        );
    }
    // Numbers and JSON sent as strings are read; the pending order is finished.
    host.sim.set_howssl_faults(HowFaults {
        string_numbers: true,
        ..HowFaults::default()
    });
    let out = host.auto(&["--json", "--site", "shop.test"]);
    expect_exit(&out, 0);
    // The request log counts refused calls too: one createOrder refused, one draft whose first
    // commitOrder was refused and whose second (on the saved check_id) went through.
    assert_eq!(counts(&host), (2, 2));
    // An HTML 404 (a wrong path) and a cut-off answer are named as such.
    for (faults, expected) in [
        (
            HowFaults {
                html_404: vec!["/Home/User/AccountInfo".into()],
                ..HowFaults::default()
            },
            "HTML page",
        ),
        (
            HowFaults {
                truncated: vec!["/Home/User/AccountInfo".into()],
                ..HowFaults::default()
            },
            "cut-off JSON",
        ),
    ] {
        host.sim.set_howssl_faults(faults);
        let out = host.command(&["account", "--json"]);
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains(expected) && text(&out).contains("base_url"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn howssl_a_name_the_ca_refuses_is_reported_and_the_rest_installed() {
    let host = host();
    host.sim.set_howssl_faults(HowFaults {
        reject_names: vec!["php.test".into()],
        ..HowFaults::default()
    });
    let out = host.auto(&["--json", "--site", "shop.test", "--site", "php.test"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let err = site_error(&doc, "php.test");
    // The CA's msg and code, and the undocumented field the names went in.
    assert!(
        err.contains("php.test is not allowed") && err.contains("400") && err.contains("`domains`"),
        "{err}"
    );
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
    assert!(!host.live("php.test").exists());
    assert_eq!(
        counts(&host),
        (2, 1),
        "the refused draft was never committed"
    );
}

#[test]
fn howssl_products_account_and_a_validity_the_product_does_not_offer() {
    let host = host();
    let out = host.command(&["products", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("sim-dv-multi") && all.contains("\"validity_period\":24"),
        "{all}"
    );
    let out = host.command(&["account", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("ops@example.com") && text(&out).contains("1000"));

    let bad = host_with(1000.0, "");
    let path = bad.dir.path().join("config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        config.replace("validity_period = 12", "validity_period = 36"),
    )
    .expect("write");
    let out = bad.auto(&["--json", "--site", "shop.test"]);
    let err = site_error(&json(&out), "shop.test");
    assert!(
        err.contains("validity_period = 36") && err.contains("12, 24"),
        "{err}"
    );
    assert_eq!(counts(&bad), (0, 0));
}

#[test]
fn howssl_register_checks_the_token_and_a_bad_one_leaves_the_config_untouched() {
    let host = host();
    let path = host.dir.path().join("config.toml");
    let register = |token: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
            .args([
                "register",
                "--provider",
                "howssl",
                "--token-stdin",
                "--json",
            ])
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{token}\n").as_bytes())
            .expect("write");
        drop(stdin);
        child.wait_with_output().expect("output")
    };
    let before = std::fs::read(&path).expect("config");
    let out = register("not-a-token");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("did not accept the token"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("not-a-token"));
    assert_eq!(std::fs::read(&path).expect("config"), before);

    host.sim
        .add_howssl_token("second-token-abc", "ops@example.com", 5.0);
    let out = register("second-token-abc");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("second-token-abc"));
    let table: toml::Table = std::fs::read_to_string(&path)
        .expect("config")
        .parse()
        .expect("TOML");
    assert_eq!(table["howssl"]["token"].as_str(), Some("second-token-abc"));
    assert_eq!(
        table["howssl"]["product_code"].as_str(),
        Some("sim-dv-multi")
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn howssl_reissue_and_revoke_say_the_api_has_neither_and_name_the_order() {
    let host = host();
    expect_exit(&host.auto(&["--json", "--site", "shop.test"]), 0);
    let lineage: serde_json::Value = serde_json::from_slice(
        &std::fs::read(host.dir.path().join("state/certs/shop.test.json")).expect("lineage"),
    )
    .expect("JSON");
    let order_id = lineage["order_id"].as_str().expect("order id").to_string();
    let before = host.sim.request_count(CREATE);
    for command in ["revoke", "reissue"] {
        let out = if command == "reissue" {
            (host.pipeline_command("reissue", &["--site", "shop.test", "--json"]))
                .output()
                .expect("runs")
        } else {
            host.command(&["revoke", "--site", "shop.test", "--yes", "--json"])
        };
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = json(&out)["error"].as_str().expect("error").to_string();
        assert!(
            err.contains("HowSSL console")
                && err.contains(&order_id)
                && err.contains(&format!("no {command} call")),
            "{err}"
        );
    }
    assert_eq!(host.sim.request_count(CREATE), before, "nothing ordered");
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
}

#[test]
fn howssl_sim_binary_serves_the_token_balance_and_products_over_multipart() {
    use enc365_nginx::ca::howssl::{HowSsl, HowSslOptions};
    use enc365_nginx::secret::Secret;
    use std::io::BufRead as _;

    let mut child = std::process::Command::new(common::sim_binary())
        .args(["--listen", "127.0.0.1:0", "--recheck-secs", "0"])
        .args(["--provider", "howssl", "--howssl-token", "bin-token:42.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("enc365-sim starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("startup line");
    let started: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(started["provider"], "howssl");
    let base = started["base_url"].as_str().expect("base_url").to_string();
    let client = |token: &str| {
        let options = HowSslOptions {
            token: Some(Secret::new(token)),
            product_code: Some("sim-dv-multi".into()),
            validity_months: Some(24),
        };
        HowSsl::new(&base, options).expect("client")
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (email, amount) = runtime
        .block_on(client("bin-token").account_info())
        .expect("account");
    assert_eq!((email.as_deref(), amount), (Some("dev@example.com"), 42.5));
    let (product, price) = runtime
        .block_on(client("bin-token").chosen_price())
        .expect("price");
    assert_eq!((product.code.as_str(), price.months), ("sim-dv-multi", 24));
    assert!(price.extra_wildcard > price.extra_name, "{price:?}");
    let e = runtime
        .block_on(client("wrong").account_info())
        .expect_err("bad token");
    assert!(
        e.to_string().contains("Invalid token") && e.to_string().contains("401"),
        "{e}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn howssl_through_the_trait_create_drafts_commit_pays_and_cancel_refunds() {
    use enc365_nginx::ca::howssl::{HowSsl, HowSslOptions};
    use enc365_nginx::ca::{CertificateAuthority, Challenge, Created, OrderRequest, OrderState};
    use enc365_nginx::keys::{self, KeyType};
    use enc365_nginx::secret::Secret;

    let host = host();
    let names = vec!["shop.test".to_string(), "*.shop.test".to_string()];
    let made = keys::generate(KeyType::EcdsaP256, &names).expect("csr");
    let request = OrderRequest {
        product: "sim-dv-multi".into(),
        names: names.clone(),
        csr_pem: made.csr_pem,
        period: None,
        renews: None,
        existing_id: None,
        methods: Default::default(),
    };
    let options = HowSslOptions {
        token: Some(Secret::new(TOKEN)),
        product_code: Some("sim-dv-multi".into()),
        validity_months: Some(12),
    };
    let ca = HowSsl::new(&host.sim.base_url(), options).expect("client");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Created::Draft(check_id) = runtime.block_on(ca.create(&request)).expect("create") else {
        panic!("HowSSL answers a draft");
    };
    assert_eq!(
        host.sim.howssl_balance(TOKEN),
        Some(1000.0),
        "a draft costs nothing"
    );
    runtime
        .block_on(ca.before_commit(&request))
        .expect("balance");
    let order = runtime
        .block_on(ca.commit(&check_id, &request))
        .expect("commit");
    // 10 for the order, 8 for the extra wildcard name.
    assert_eq!(host.sim.howssl_balance(TOKEN), Some(982.0));
    let status = runtime
        .block_on(ca.order_status(&order.id, &names))
        .expect("status");
    assert!(
        matches!(status.state, OrderState::Pending { .. }),
        "{status:?}"
    );
    // One set of values for the order: the file for the plain name, the CNAME (DNS first) for
    // the wildcard, relative to its base name.
    let wildcard = &status.validations[1];
    match &wildcard.challenges[0] {
        Challenge::DnsRecord {
            host: owner,
            record_type,
            value,
        } => {
            assert!(
                owner.starts_with('_') && owner.ends_with(".shop.test"),
                "{owner}"
            );
            assert_eq!(record_type, "CNAME");
            assert!(value.ends_with(".comodoca.com"), "{value}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &status.validations[0].challenges[0],
        Challenge::HttpFile { path, content }
            if path.starts_with("/.well-known/pki-validation/") && content.ends_with("\ncomodoca.com")
    ));
    // A second commit of the same draft is refused by the CA: never two orders.
    let again = runtime.block_on(ca.commit(&check_id, &request));
    assert!(again.is_err());
    runtime.block_on(ca.cancel(&order.id)).expect("cancel");
    assert_eq!(host.sim.howssl_balance(TOKEN), Some(1000.0), "refunded");
    let e = runtime
        .block_on(ca.revoke(&order.id))
        .expect_err("no revoke");
    assert!(e.to_string().contains(&order.id.0), "{e}");
}
