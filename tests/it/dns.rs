//! DNS validation end to end: a real BIND `named` is the authoritative server of the test zones,
//! the simulator checks DNS validation by asking it, records are published by RFC 2136 (TSIG)
//! or a hook, and the result is proven by TLS handshake against the sandboxed nginx.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::common::host::{Host, expect_exit, served};
use crate::common::named::Named;
use enc365_nginx::orders::OrderRecord;
use enc365_sim::Faults;

const WILD: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name wild.test *.wild.test;
        root {prefix}/www/shop;
    }
"#;

const TWO: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name wild.test *.wild.test;
        root {prefix}/www/shop;
    }
    server {
        listen 127.0.0.1:{port.0};
        server_name never.test *.never.test;
        root {prefix}/www/shop;
    }
"#;

/// A host whose simulator validates DNS at `named`, with `dns_config` appended to the config.
fn host(named: &Named, sites: &str, dns_config: &str) -> Host {
    let addr = named.addr;
    let host = Host::with_sim_options(Faults::default(), sites, dns_config, |o| {
        o.dns_server = Some(addr);
    });
    let mut hosts = std::fs::read_to_string(host.dir.path().join("hosts")).unwrap();
    hosts.push_str("127.0.0.1 never.test\n");
    std::fs::write(host.dir.path().join("hosts"), hosts).unwrap();
    host
}

/// The DNS records the site's order record journals.
fn journaled(host: &Host, site: &str) -> Vec<enc365_nginx::publish::dns::DnsRecord> {
    OrderRecord::load(&host.dir.path().join("state"), site)
        .unwrap()
        .map(|r| r.dns_records)
        .unwrap_or_default()
}

/// The CNAME owner Encryption365 uses for names under `zone`, from the pending order's CSR.
fn cname_owner(host: &Host, site: &str, zone: &str) -> String {
    use base64::Engine as _;
    let record = OrderRecord::load(&host.dir.path().join("state"), site)
        .unwrap()
        .expect("an order record");
    let body: String = (record.csr_pem.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let md5 = enc365_sim::dcv::CsrHashes::of_der(&der).md5;
    format!("_{md5}.{zone}")
}

#[test]
fn a_wildcard_and_apex_site_is_ordered_by_dns_and_served() {
    let named = Named::start(&["wild.test"]);
    let host = host(&named, WILD, &named.rfc2136_config(15));
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 0);
    let site = &doc["sites"][0];
    assert_eq!(
        site["names_issued"],
        serde_json::json!(["wild.test", "*.wild.test"]),
        "{doc:#}"
    );
    // The handshake for a concrete name under the wildcard gets the new certificate.
    let live = crate::common::host::pem_fingerprint(&host.live("wild.test"));
    for name in ["wild.test", "shop.wild.test"] {
        let cert = served(&host, name);
        assert_eq!(cert.fingerprint, live, "{name}");
    }
    // The validation CNAME was created (the simulator checked it at named) and is gone again.
    assert!(host.sim.request_count("/cert/create") == 1);
    let state = OrderRecord::load(&host.dir.path().join("state"), "wild.test")
        .unwrap()
        .unwrap();
    assert!(state.dns_records.is_empty(), "{:?}", state.dns_records);
    assert!(state.dns_names.contains(&"*.wild.test".to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let published = stderr
        .lines()
        .find(|l| l.contains("publishing _"))
        .unwrap_or_else(|| panic!("no record published:\n{stderr}"));
    let owner = published
        .split("publishing ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(owner.ends_with(".wild.test"), "{owner}");
    assert!(named.values(owner, RecordType::CNAME).is_empty());
}

#[test]
fn plan_shows_the_method_of_every_name() {
    let named = Named::start(&["wild.test"]);
    let host = host(&named, WILD, &named.rfc2136_config(15));
    let out = host
        .pipeline_command("plan", &["--site", "wild.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("*.wild.test: DNS validation (a wildcard: only DNS validation can prove it)"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("wild.test: HTTP file validation ("), "{text}");
}

#[test]
fn a_record_that_never_propagates_fails_its_site_and_others_are_installed() {
    let named = Named::start(&["wild.test", "never.test"]);
    // never.test's records go to a hook that does nothing: they never reach named.
    let config = format!(
        "{}\n[dns.zones.\"never.test\"]\nprovider = \"hook\"\nhook = \"/bin/true\"\n",
        named.rfc2136_config(3)
    );
    let host = host(&named, TWO, &config);
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 1);
    let sites = doc["sites"].as_array().unwrap();
    let by = |name: &str| {
        sites
            .iter()
            .find(|s| s["site"] == name)
            .unwrap_or_else(|| panic!("{name}: {doc:#}"))
    };
    assert_eq!(by("wild.test")["names_issued"][1], "*.wild.test", "{doc:#}");
    let error = by("never.test")["error"].as_str().unwrap();
    assert!(
        error.contains("for *.never.test did not propagate within 3 s"),
        "{error}"
    );
    assert!(error.contains(&named.addr.to_string()), "{error}");
    assert!(host.live("wild.test").exists());
    assert!(!host.live("never.test").exists());
    // The record the hook "created" was removed again (by the hook), so none stays journaled.
    assert!(journaled(&host, "never.test").is_empty());
}

#[test]
fn a_run_killed_after_its_records_were_added_is_finished_by_the_next_with_one_order() {
    let named = Named::start(&["wild.test"]);
    let host = host(&named, WILD, &named.rfc2136_config(60));
    // The propagation check asks a server that never answers, so the run waits after adding.
    let dead = format!("127.0.0.1:{}", crate::common::free_port());
    let mut child = host
        .auto_command(&["--site", "wild.test", "--dns-server", &dead])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let owner = loop {
        assert!(Instant::now() < deadline, "no record was added");
        let added = journaled(&host, "wild.test");
        if let Some(rec) = added.first()
            && !named.values(&rec.owner, RecordType::CNAME).is_empty()
        {
            break rec.owner.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert_eq!(named.values(&owner, RecordType::CNAME).len(), 1);

    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["sites"][0]["names_issued"][1], "*.wild.test", "{doc:#}");
    assert_eq!(host.sim.request_count("/cert/create"), 1);
    assert!(named.values(&owner, RecordType::CNAME).is_empty());
    assert!(journaled(&host, "wild.test").is_empty());
}

#[test]
fn a_failing_hook_fails_the_name_with_its_stderr() {
    let named = Named::start(&["wild.test"]);
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("dns-hook");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"zone API said no to $ENC365_DNS_ACTION $ENC365_DNS_TYPE $ENC365_DNS_NAME in $ENC365_DNS_ZONE\" >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "\n[dns]\nprovider = \"hook\"\nhook = \"{}\"\ncheck_servers = [\"{}\"]\n",
        hook.display(),
        named.addr
    );
    let host = host(&named, WILD, &config);
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 1);
    let error = doc["sites"][0]["error"].as_str().unwrap();
    assert!(error.contains("*.wild.test: the DNS hook"), "{error}");
    assert!(error.contains("(status 3)"), "{error}");
    assert!(
        error.contains("zone API said no to add CNAME _") && error.contains(" in wild.test"),
        "{error}"
    );
    assert!(!host.live("wild.test").exists());
}

#[test]
fn a_record_we_did_not_create_is_left_alone_and_named() {
    let named = Named::start(&["wild.test"]);
    // First run: records go nowhere (a hook that does nothing), so the order stays pending.
    let nowhere = format!(
        "\n[dns]\nprovider = \"hook\"\nhook = \"/bin/true\"\ncheck_servers = [\"{}\"]\npropagation_timeout = 1\n",
        named.addr
    );
    let host = host(&named, WILD, &nowhere);
    let out = host.auto(&["--json", "--site", "wild.test"]);
    expect_exit(&out, 1);
    // Someone else puts a CNAME where ours would go.
    let owner = cname_owner(&host, "wild.test", "wild.test");
    let theirs = enc365_nginx::publish::dns::DnsRecord {
        name: "theirs".into(),
        zone: "wild.test".into(),
        owner: owner.clone(),
        record_type: "CNAME".into(),
        value: "elsewhere.example.net".into(),
        created: true,
    };
    enc365_nginx::publish::dns::rfc2136::Rfc2136::new(
        named.addr,
        crate::common::named::KEY_NAME,
        crate::common::named::KEY_SECRET,
    )
    .unwrap()
    .add("wild.test", &theirs, 60)
    .unwrap();
    std::fs::write(
        host.dir.path().join("config.toml"),
        std::fs::read_to_string(host.dir.path().join("config.toml"))
            .unwrap()
            .replace(&nowhere, &named.rfc2136_config(5)),
    )
    .unwrap();
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 1);
    let error = doc["sites"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "{owner} already holds CNAME elsewhere.example.net which enc365-nginx did not create"
        )),
        "{error}"
    );
    assert_eq!(
        named.values(&owner, RecordType::CNAME),
        vec!["elsewhere.example.net".to_string()]
    );
    assert_eq!(host.sim.request_count("/cert/create"), 1);
}

#[test]
fn the_huaweicloud_publisher_manages_signed_record_sets_at_the_simulator() {
    use enc365_nginx::config::DnsSettings;
    use enc365_nginx::publish::dns::{DnsPublisher, DnsRecord};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let options = enc365_sim::SimOptions {
        huawei_dns: Some(enc365_sim::huawei_dns::HuaweiDnsOptions {
            ak: "AKEXAMPLE0000000".into(),
            sk: "SKEXAMPLE0000000000000000000000000000000".into(),
            zones: vec!["wild.test".into()],
        }),
        ..enc365_sim::SimOptions::default()
    };
    let sim = runtime.block_on(enc365_sim::start(options)).unwrap();
    let publisher = |sk: &str| {
        let settings: DnsSettings = toml::from_str(&format!(
            "provider = \"huaweicloud\"\nendpoint = \"{}\"\naccess_key = \"AKEXAMPLE0000000\"\n\
             secret_key = \"{sk}\"\n",
            sim.base_url()
        ))
        .unwrap();
        DnsPublisher::new(Some(settings), &[]).unwrap()
    };
    let dns = publisher("SKEXAMPLE0000000000000000000000000000000");
    let cname = DnsRecord {
        name: "*.wild.test".into(),
        zone: "wild.test".into(),
        owner: "_abc.wild.test".into(),
        record_type: "CNAME".into(),
        value: "aa.bb.cab1.comodoca.com".into(),
        created: true,
    };
    let txt = DnsRecord {
        owner: "_dnsauth.wild.test".into(),
        record_type: "TXT".into(),
        value: "token-1".into(),
        ..cname.clone()
    };
    dns.create(&cname).unwrap();
    dns.create(&txt).unwrap();
    let mut held: Vec<(String, String, Vec<String>)> = (sim.huawei_records().into_iter())
        .map(|r| (r.name, r.rtype, r.records))
        .collect();
    held.sort();
    assert_eq!(
        held,
        vec![
            (
                "_abc.wild.test.".to_string(),
                "CNAME".to_string(),
                vec!["aa.bb.cab1.comodoca.com.".to_string()]
            ),
            (
                "_dnsauth.wild.test.".to_string(),
                "TXT".to_string(),
                vec!["\"token-1\"".to_string()]
            ),
        ]
    );
    // A wrong secret is refused by the signature check, and changes nothing.
    let e = publisher("SKWRONG").remove(&cname).unwrap_err().to_string();
    assert!(e.contains("HTTP 401 APIGW.0301"), "{e}");
    assert_eq!(sim.huawei_records().len(), 2);
    // A wildcard and its apex share one TXT owner: the second value joins the set, and each
    // removal takes out only its own value.
    let apex_txt = DnsRecord {
        name: "wild.test".into(),
        value: "token-2".into(),
        ..txt.clone()
    };
    dns.create(&apex_txt).unwrap();
    dns.create(&apex_txt).unwrap();
    let txt_values = |sim: &enc365_sim::SimHandle| -> Vec<Vec<String>> {
        (sim.huawei_records().into_iter())
            .filter(|r| r.rtype == "TXT")
            .map(|r| r.records)
            .collect()
    };
    assert_eq!(
        txt_values(&sim),
        vec![vec!["\"token-1\"".to_string(), "\"token-2\"".to_string()]]
    );
    dns.remove(&txt).unwrap();
    assert_eq!(txt_values(&sim), vec![vec!["\"token-2\"".to_string()]]);
    dns.remove(&cname).unwrap();
    dns.remove(&apex_txt).unwrap();
    assert!(sim.huawei_records().is_empty());
}

#[test]
fn validation_dns_proves_every_name_by_dns_and_one_cname_serves_apex_and_wildcard() {
    let named = Named::start(&["wild.test"]);
    let config = format!("{}validation = \"dns\"\n", named.rfc2136_config(15));
    let host = host(&named, WILD, &config);
    // Every name is proven by DNS, and plan says so.
    let plan = host
        .pipeline_command("plan", &["--site", "wild.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("wild.test: DNS validation ([dns] validation = \"dns\")"),
        "{text}"
    );
    let out = host.auto(&["--json", "--site", "wild.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["wild.test", "*.wild.test"]),
        "{doc:#}"
    );
    // Encryption365 gives the apex and its wildcard the same CNAME: published once.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("publishing _").count(), 1, "{stderr}");
    let state = OrderRecord::load(&host.dir.path().join("state"), "wild.test")
        .unwrap()
        .unwrap();
    let mut dns_names = state.dns_names.clone();
    dns_names.sort();
    assert_eq!(dns_names, vec!["*.wild.test", "wild.test"]);
    assert!(state.dns_records.is_empty());
}
