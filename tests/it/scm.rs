//! Huawei Cloud SCM end to end: the real binary with `provider = "huawei-scm"` against a real nginx
//! sandbox and the simulator in its SCM mode (AK/SK-signed `/v3/scm/...` API checking every
//! signature, a purchased-certificate inventory, FILE validation fetched over real HTTP from that
//! nginx, DNS validation asked of a real BIND, real X.509). The signer itself is checked against
//! the published vectors (APIG guide, Go SDK, SCM fixtures) in `src/huawei_sign.rs`'s unit tests;
//! here every request the client signs must pass the simulator's own verification.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::host::{Host, SITES, expect_exit, json, pem_fingerprint, served};
use crate::common::named::Named;
use enc365_sim::scm_state::{ScmFaults, ScmSimOptions, Stock};
use enc365_sim::{Faults, SimProvider};

const AK: &str = "AKSIMSCM00000001";
const SK: &str = "SKSIMSCM0000000000000000000000000000secret";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";

const WILD: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name wild.test *.wild.test;
        root {prefix}/www/shop;
    }
"#;

fn stock(domain_type: &str, count: u64, wildcards: u64) -> Stock {
    Stock {
        domain_type: domain_type.into(),
        domain_count: count,
        wildcard_count: wildcards,
        ..Stock::default()
    }
}

/// A host whose simulator speaks SCM with `inventory` bought, validating DNS at `dns` when given;
/// `extra` is appended to the config (after the `[huawei_scm]` table).
fn host_with(
    sites: &str,
    inventory: Vec<Stock>,
    dns: Option<std::net::SocketAddr>,
    extra: &str,
) -> Host {
    host_with_options(sites, inventory, extra, |o| o.dns_server = dns)
}

/// [`host_with`], with `tweak` applied to the simulator's options.
fn host_with_options(
    sites: &str,
    inventory: Vec<Stock>,
    extra: &str,
    tweak: impl FnOnce(&mut enc365_sim::SimOptions),
) -> Host {
    let host = Host::with_sim_options(Faults::default(), sites, "", |o| {
        tweak(o);
        o.provider = SimProvider::HuaweiScm;
        o.huawei_scm = Some(ScmSimOptions {
            ak: AK.into(),
            sk: SK.into(),
            project_id: PROJECT.into(),
            inventory,
        });
    });
    let config = format!(
        "provider = \"huawei-scm\"\nkey_type = \"ecdsa-p256\"\n\n[huawei_scm]\nbase_url = \"{}\"\n\
         access_key = \"{AK}\"\nsecret_key = \"{SK}\"\nproject_id = \"{PROJECT}\"\n\
         applicant_name = \"Zhang San\"\napplicant_phone = \"13212345678\"\n\
         applicant_email = \"admin@example.com\"\n{extra}",
        host.sim.base_url()
    );
    std::fs::write(host.dir.path().join("config.toml"), config).expect("config");
    host
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn site_error(doc: &serde_json::Value, site: &str) -> String {
    let sites = doc["sites"].as_array().expect("sites");
    let entry = sites.iter().find(|s| s["site"] == site).expect("site");
    entry["error"].as_str().unwrap_or_default().to_string()
}

/// The simulator's certificates with this status.
fn with_status(host: &Host, status: &str) -> Vec<(String, Vec<String>)> {
    (host.sim.scm_certificates().into_iter())
        .filter(|(_, s, _)| s == status)
        .map(|(id, _, names)| (id, names))
        .collect()
}

#[test]
fn scm_auto_applies_to_a_purchased_certificate_validated_by_file_and_proven_by_handshake() {
    let inventory = vec![stock("SINGLE_DOMAIN", 1, 0), stock("MULTI_DOMAIN", 2, 0)];
    let host = host_with(SITES, inventory, None, "");
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["shop.test", "www.shop.test"]),
        "{doc:#}"
    );
    // The two-name certificate was applied to (not the single one), nothing bought.
    let issued = with_status(&host, "ISSUED");
    assert_eq!(issued.len(), 1, "{:?}", host.sim.scm_certificates());
    assert_eq!(issued[0].1, ["shop.test", "www.shop.test"]);
    assert_eq!(with_status(&host, "PAID").len(), 1);
    assert_eq!(
        (host.sim.scm_count("buy"), host.sim.scm_count("apply")),
        (0, 1)
    );
    assert!(host.sim.scm_count("export") >= 1);
    let live = pem_fingerprint(&host.live("shop.test"));
    for name in ["shop.test", "www.shop.test"] {
        assert_eq!(served(&host, name).fingerprint, live, "{name}");
    }
    let lineage = std::fs::read_to_string(host.dir.path().join("state/certs/shop.test.json"))
        .expect("lineage");
    assert!(
        lineage.contains("huawei-scm") && lineage.contains(&issued[0].0),
        "{lineage}"
    );
    // The validation file is gone, and the secret key was never printed.
    assert!(
        !host.sb.path("www/shop/.well-known/pki-validation").exists()
            || std::fs::read_dir(host.sb.path("www/shop/.well-known/pki-validation"))
                .expect("dir")
                .next()
                .is_none()
    );
    assert!(!text(&out).contains(SK));
    // A second run applies nothing.
    expect_exit(&host.auto(&["--json", "--site", "shop.test"]), 0);
    assert_eq!(host.sim.scm_count("apply"), 1);
}

#[test]
fn scm_a_wildcard_and_apex_site_is_validated_by_dns_through_bind() {
    let named = Named::start(&["wild.test"]);
    let dns = format!("{}validation = \"dns\"\n", named.rfc2136_config(15));
    let host = host_with(
        WILD,
        vec![stock("MULTI_DOMAIN", 2, 1)],
        Some(named.addr),
        &dns,
    );
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["wild.test", "*.wild.test"]),
        "{doc:#}"
    );
    let live = pem_fingerprint(&host.live("wild.test"));
    for name in ["wild.test", "shop.wild.test"] {
        assert_eq!(served(&host, name).fingerprint, live, "{name}");
    }
    assert_eq!(with_status(&host, "ISSUED").len(), 1);
    // The TXT record was removed once issued.
    let left = named.values("_dnsauth.wild.test", hickory_proto::rr::RecordType::TXT);
    assert!(left.is_empty(), "{left:?}");
}

/// `sites` with every name proven by DNS through Huawei Cloud DNS (the simulator's, holding
/// `zone`) and one two-name certificate bought (with a wildcard slot); `extra_scm` goes into
/// `[huawei_scm]`, `check` becomes `check_servers`.
fn huawei_dns_host(
    sites: &str,
    zone: &str,
    extra_scm: &str,
    check: Option<std::net::SocketAddr>,
) -> Host {
    let sim_dns = enc365_sim::huawei_dns::HuaweiDnsOptions {
        ak: AK.into(),
        sk: SK.into(),
        zones: vec![zone.into()],
    };
    let host = host_with_options(sites, vec![stock("MULTI_DOMAIN", 2, 1)], extra_scm, |o| {
        o.huawei_dns = Some(sim_dns)
    });
    // The [dns] table needs the simulator's URL, known only once it runs: appended now.
    let check = check
        .map(|a| format!("check_servers = [\"{a}\"]\npropagation_timeout = 2\n"))
        .unwrap_or_default();
    let dns = format!(
        "\n[dns]\nprovider = \"huaweicloud\"\nendpoint = \"{}\"\naccess_key = \"{AK}\"\n\
         secret_key = \"{SK}\"\nvalidation = \"dns\"\n{check}",
        host.sim.base_url()
    );
    let path = host.dir.path().join("config.toml");
    let config = std::fs::read_to_string(&path).expect("config") + &dns;
    std::fs::write(&path, config).expect("config");
    host
}

#[test]
fn scm_pushes_the_dns_records_itself_when_the_names_are_at_huawei_cloud_dns() {
    let host = huawei_dns_host(WILD, "wild.test", "", None);
    // Issued a moment after the pushed records validate: the run sees the order pending first.
    host.sim.set_scm_faults(ScmFaults {
        issuance_delay_secs: 1,
        ..ScmFaults::default()
    });
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["wild.test", "*.wild.test"]),
        "{doc:#}"
    );
    let live = pem_fingerprint(&host.live("wild.test"));
    for name in ["wild.test", "shop.wild.test"] {
        assert_eq!(served(&host, name).fingerprint, live, "{name}");
    }
    let issued = with_status(&host, "ISSUED");
    assert_eq!(issued.len(), 1);
    // The application asked SCM to push; SCM's record is in Huawei Cloud DNS, and the client
    // made no record-set call of its own.
    assert_eq!(host.sim.scm_auto_dns_auth(&issued[0].0), Some(true));
    let held: Vec<(String, String)> = (host.sim.huawei_records().into_iter())
        .map(|r| (r.name, r.rtype))
        .collect();
    assert_eq!(held, [("_dnsauth.wild.test.".into(), "TXT".into())]);
    for method in ["GET", "POST", "DELETE"] {
        let calls = host.sim.request_count(&format!("huawei-dns:{method}"));
        assert_eq!(calls, 0, "{method}");
    }
    let said = text(&out);
    assert!(
        said.contains("publishes the DNS validation records itself (auto_dns_auth)"),
        "{said}"
    );
}

#[test]
fn scm_auto_dns_auth_false_publishes_through_the_clients_own_huawei_dns_record_sets() {
    // No DNS server serves the simulated Huawei Cloud DNS, so the propagation check (asked of
    // an empty BIND) fails: what matters is that the client itself created and removed the
    // record sets, and the application did not ask SCM to push.
    let named = Named::start(&["shop.test"]);
    let host = huawei_dns_host(
        SITES,
        "shop.test",
        "auto_dns_auth = false\n",
        Some(named.addr),
    );
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    let error = site_error(&doc, "shop.test");
    assert!(error.contains("did not propagate"), "{error}");
    let (id, _, _) = host.sim.scm_certificates().remove(0);
    assert_eq!(host.sim.scm_auto_dns_auth(&id), Some(false));
    assert_eq!(host.sim.request_count("huawei-dns:POST"), 2);
    assert!(host.sim.request_count("huawei-dns:DELETE") >= 2);
    assert!(host.sim.huawei_records().is_empty());
}

#[test]
fn scm_a_wildcard_site_with_file_validation_is_refused_before_anything_is_applied() {
    let named = Named::start(&["wild.test"]);
    // [dns] is configured but validation stays "http": the apex would be proven by file.
    let host = host_with(
        WILD,
        vec![stock("MULTI_DOMAIN", 2, 1)],
        Some(named.addr),
        &named.rfc2136_config(5),
    );
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 1);
    let error = site_error(&doc, "wild.test");
    assert!(
        error.contains("one validation method") && error.contains("validation = \"dns\""),
        "{error}"
    );
    assert_eq!(
        (host.sim.scm_count("buy"), host.sim.scm_count("apply")),
        (0, 0)
    );
}

#[test]
fn scm_no_fitting_certificate_applies_nothing_and_says_what_to_buy() {
    let host = host_with(SITES, vec![stock("SINGLE_DOMAIN", 1, 0)], None, "");
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    let error = site_error(&doc, "shop.test");
    assert!(
        error.contains("no purchased Huawei SCM certificate fits 2 name(s)")
            && error.contains("MULTI_DOMAIN")
            && error.contains("[huawei_scm.buy]"),
        "{error}"
    );
    assert_eq!(
        (host.sim.scm_count("buy"), host.sim.scm_count("apply")),
        (0, 0)
    );
    assert_eq!(with_status(&host, "PAID").len(), 1);
    assert!(!host.live("shop.test").exists());
}

#[test]
fn scm_buy_killed_after_the_purchase_buys_once_across_the_rerun() {
    let buy = "[huawei_scm.buy]\ncert_brand = \"GEOTRUST\"\ncert_type = \"DV_SSL_CERT\"\neffective_time = 1\n";
    let host = host_with(SITES, Vec::new(), None, buy);
    // The purchase is made, then its answer is slow: the run is killed while it waits.
    host.sim.set_scm_faults(ScmFaults {
        latency_ops: vec!["buy".into()],
        latency_ms: 30_000,
        ..ScmFaults::default()
    });
    let mut child = (host.auto_command(&["--json", "--site", "shop.test"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.sim.scm_certificates().is_empty() {
        assert!(Instant::now() < deadline, "the run never bought");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    host.sim.set_scm_faults(ScmFaults::default());
    // The next run does not buy blindly: it says the purchase may have happened.
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    assert!(
        site_error(&doc, "shop.test").contains("--discard-interrupted-order"),
        "{doc:#}"
    );
    assert_eq!(host.sim.scm_count("buy"), 1);
    // Told to go on, it finds the certificate bought before and applies to it: one purchase.
    let out = host.auto(&[
        "--json",
        "--site",
        "shop.test",
        "--discard-interrupted-order",
    ]);
    expect_exit(&out, 0);
    assert_eq!(host.sim.scm_count("buy"), 1);
    assert_eq!(host.sim.scm_certificates().len(), 1);
    assert_eq!(with_status(&host, "ISSUED").len(), 1);
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
}

#[test]
fn scm_a_clock_twenty_minutes_off_is_named_in_the_message_and_nothing_is_applied() {
    let host = host_with(SITES, vec![stock("MULTI_DOMAIN", 2, 0)], None, "");
    let out = (host.auto_command(&["--json", "--site", "shop.test"]))
        .env("ENC365_TEST_CLOCK_OFFSET_SECS", "1200")
        .output()
        .expect("runs");
    let doc = expect_exit(&out, 1);
    let error = site_error(&doc, "shop.test");
    assert!(
        error.contains("X-Sdk-Date")
            && error.contains("clock")
            && error.contains("20 minutes ahead"),
        "{error}"
    );
    assert!(error.contains("APIGW.0301"), "{error}");
    assert_eq!(host.sim.scm_count("apply"), 0);
    assert!(!text(&out).contains(SK));
}

/// Runs `register --provider huawei-scm` with `sk` on standard input.
fn register(host: &Host, sk: &str) -> Output {
    let mut child = (host.base_command(&["register", "--provider", "huawei-scm", "--json"]))
        .args([
            "--access-key",
            AK,
            "--secret-key-stdin",
            "--project-id",
            PROJECT,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write as _;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{sk}\n").as_bytes())
        .expect("write");
    drop(stdin);
    child.wait_with_output().expect("output")
}

#[test]
fn scm_register_checks_the_key_pair_and_products_lists_the_certificates() {
    let host = host_with(SITES, vec![stock("MULTI_DOMAIN", 2, 0)], None, "");
    let path = host.dir.path().join("config.toml");
    // Start from a config without keys, pointing at the simulator.
    let bare = format!(
        "provider = \"huawei-scm\"\n[huawei_scm]\nbase_url = \"{}\"\n",
        host.sim.base_url()
    );
    std::fs::write(&path, &bare).expect("config");
    let out = register(&host, "SKwrong000000000000000000000000000000000");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("signature does not match"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("SKwrong"));
    assert_eq!(std::fs::read_to_string(&path).expect("config"), bare);

    let out = register(&host, SK);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["certificates"], 1, "{doc:#}");
    assert!(!text(&out).contains(SK));
    let table: toml::Table = std::fs::read_to_string(&path)
        .expect("config")
        .parse()
        .expect("TOML");
    assert_eq!(table["huawei_scm"]["access_key"].as_str(), Some(AK));
    assert_eq!(table["huawei_scm"]["secret_key"].as_str(), Some(SK));
    assert_eq!(table["huawei_scm"]["project_id"].as_str(), Some(PROJECT));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = host.command(&["products", "--json"]);
    let listed = serde_json::to_string(&expect_exit(&out, 0)).expect("json");
    let (id, _, _) = host.sim.scm_certificates().remove(0);
    for want in [
        id.as_str(),
        "PAID",
        "MULTI_DOMAIN",
        "DV_SSL_CERT",
        "\"domain_count\":2",
    ] {
        assert!(listed.contains(want), "{want}: {listed}");
    }
    assert!(!listed.contains(SK));
}

#[test]
fn scm_renew_applies_to_another_purchased_certificate_then_says_what_to_buy_and_revoke_uses_v2() {
    let inventory = vec![stock("MULTI_DOMAIN", 2, 0), stock("MULTI_DOMAIN", 2, 0)];
    let host = host_with(SITES, inventory, None, "");
    expect_exit(&host.auto(&["--json", "--site", "shop.test"]), 0);
    let first = pem_fingerprint(&host.live("shop.test"));
    let out = host.renew(&["--json", "--force", "--site", "shop.test"]);
    expect_exit(&out, 0);
    let second = pem_fingerprint(&host.live("shop.test"));
    assert_ne!(first, second);
    assert_eq!(served(&host, "www.shop.test").fingerprint, second);
    assert_eq!(with_status(&host, "ISSUED").len(), 2);
    assert_eq!(host.sim.scm_count("apply"), 2);
    // No unused certificate left: the renewal says what to buy and keeps the installed one.
    let out = host.renew(&["--json", "--force", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    assert!(
        site_error(&doc, "shop.test").contains("Buy a DV certificate"),
        "{doc:#}"
    );
    assert_eq!(served(&host, "shop.test").fingerprint, second);

    let out = host.command(&["revoke", "--site", "shop.test", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(host.sim.scm_count("revoke"), 1);
    let revoking: Vec<_> = (host.sim.scm_certificates().into_iter())
        .filter(|(_, s, _)| s == "REVOKING" || s == "REVOKED")
        .collect();
    assert_eq!(revoking.len(), 1, "{:?}", host.sim.scm_certificates());
    let _ = json(&out);
}

#[test]
fn scm_sim_refuses_unsigned_requests_and_unknown_paths_with_huaweis_error_shape() {
    let host = host_with(SITES, vec![stock("MULTI_DOMAIN", 2, 0)], None, "");
    let port = host.sim.addr().port();
    let unsigned =
        crate::common::http_get(port, "127.0.0.1", "/v3/scm/certificates").expect("answer");
    assert!(
        unsigned.text().contains("\"error_code\":\"APIGW.0301\""),
        "{}",
        unsigned.text()
    );
    assert!(
        unsigned.text().contains("no Authorization header"),
        "{}",
        unsigned.text()
    );
    // Signed by the client, an unknown certificate is SCM's own 404 error, quoted in the message.
    use enc365_nginx::ca::huawei_scm::{HuaweiScm, ScmOptions};
    let settings: enc365_nginx::config::HuaweiScmSettings = toml::from_str(&format!(
        "base_url = \"{}\"\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n",
        host.sim.base_url()
    ))
    .expect("settings");
    let client = HuaweiScm::new(ScmOptions {
        settings,
        clock_offset: 0,
    })
    .expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let e = runtime
        .block_on(client.show("scs0000000000000"))
        .expect_err("no such certificate");
    assert!(
        e.to_string().contains("SCM.0404") && e.to_string().contains("HTTP 404"),
        "{e}"
    );
    let listed = runtime
        .block_on(client.list_certificates())
        .expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].status.as_str(), listed[0].domain_count),
        ("PAID", 2)
    );
}

#[test]
fn scm_records_missing_from_show_certificate_are_read_from_the_v2_domain_verify_call() {
    let host = host_with(SITES, vec![stock("SINGLE_DOMAIN", 1, 0)], None, "");
    host.sim.set_scm_faults(ScmFaults {
        hide_authentification: true,
        ..ScmFaults::default()
    });
    let out = host.auto(&["--json", "--site", "php.test"]);
    expect_exit(&out, 0);
    assert!(host.sim.scm_count("domain-verify") >= 1);
    assert_eq!(
        served(&host, "php.test").fingerprint,
        pem_fingerprint(&host.live("php.test"))
    );
}

#[test]
fn scm_sim_binary_serves_the_inventory_to_signed_requests() {
    use enc365_nginx::ca::huawei_scm::{HuaweiScm, ScmOptions};
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(crate::common::sim_binary())
        .args(["--listen", "127.0.0.1:0", "--recheck-secs", "0"])
        .args([
            "--provider",
            "huawei-scm",
            "--scm-key",
            &format!("{AK}:{SK}"),
        ])
        .args(["--scm-stock", "DV_SSL_CERT:WILDCARD:1:1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("enc365-sim starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("startup line");
    let started: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(started["provider"], "huawei-scm");
    let base = started["base_url"].as_str().expect("base_url");
    let client = |sk: &str| {
        let settings: enc365_nginx::config::HuaweiScmSettings = toml::from_str(&format!(
            "base_url = \"{base}\"\naccess_key = \"{AK}\"\nsecret_key = \"{sk}\"\n"
        ))
        .expect("settings");
        HuaweiScm::new(ScmOptions {
            settings,
            clock_offset: 0,
        })
        .expect("client")
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listed = runtime
        .block_on(client(SK).list_certificates())
        .expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].domain_type.as_str(), listed[0].wildcard_count),
        ("WILDCARD", 1)
    );
    assert!(listed[0].id.starts_with("scs") && listed[0].id.len() == 16);
    let e = runtime
        .block_on(client("not-the-secret").list_certificates())
        .expect_err("bad signature");
    assert!(e.to_string().contains("APIGW.0301"), "{e}");
    let _ = child.kill();
    let _ = child.wait();
}
