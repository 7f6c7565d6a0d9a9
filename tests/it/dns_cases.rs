//! DNS validation, the cases beyond the basic wildcard order (see `dns`): the HTTP preflight
//! failing with `[dns]` configured, a wildcard-only site, renewing a wildcard site, the zone walk
//! following a real delegation from a parent BIND to the child's, a DNS record whose removal
//! failed being removed by the next run, and validation files left by a killed run being removed
//! by the rerun. Real BIND, real nginx, the simulator.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::common::host::{Host, expect_exit, pem_fingerprint, served};
use crate::common::named::{KEY_NAME, KEY_SECRET, Named};
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::Faults;

/// A host whose simulator validates DNS at `dns_server`, with `config` appended and `names`
/// resolving to 127.0.0.1.
fn host_at(dns_server: std::net::SocketAddr, sites: &str, config: &str, names: &[&str]) -> Host {
    let host = Host::with_sim_options(Faults::default(), sites, config, |o| {
        o.dns_server = Some(dns_server);
    });
    let path = host.dir.path().join("hosts");
    let mut hosts = std::fs::read_to_string(&path).unwrap();
    for n in names {
        hosts.push_str(&format!("127.0.0.1 {n}\n"));
    }
    std::fs::write(path, hosts).unwrap();
    host
}

fn record(host: &Host, site: &str) -> OrderRecord {
    OrderRecord::load(&host.dir.path().join("state"), site)
        .unwrap()
        .expect("an order record")
}

/// Encryption365's CNAME owner for a name whose registrable domain is `zone` and subdomain
/// `sub`, from the site's order CSR.
fn cname_owner(host: &Host, site: &str, sub: Option<&str>, zone: &str) -> String {
    use base64::Engine as _;
    let body: String = (record(host, site).csr_pem.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let md5 = enc365_sim::dcv::CsrHashes::of_der(&der).md5;
    match sub {
        Some(sub) => format!("_{md5}.{sub}.{zone}"),
        None => format!("_{md5}.{zone}"),
    }
}

/// The `.txt` validation files under `dir`, however deep.
fn txt_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(txt_files(&p));
            } else if p.extension().is_some_and(|x| x == "txt") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_name_http_cannot_prove_falls_back_to_dns_and_plan_says_why() {
    // A proxy block with its own validation location: the HTTP preflight cannot serve the file.
    const SITES: &str = r#"
        server {
            listen 127.0.0.1:{port.0};
            server_name fb.test;
            location /.well-known/pki-validation/ { return 404; }
            location / { proxy_pass http://127.0.0.1:9; }
        }
    "#;
    let named = Named::start(&["fb.test"]);
    let host = host_at(named.addr, SITES, &named.rfc2136_config(15), &["fb.test"]);
    let plan = host
        .pipeline_command("plan", &["--site", "fb.test"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("fb.test: DNS validation (the HTTP preflight would fail: its server block has its own `location /.well-known/pki-validation/`"),
        "{text}\n{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let out = host.auto(&["--json", "--site", "fb.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["sites"][0]["names_issued"][0], "fb.test", "{doc:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fb.test: the HTTP preflight failed (")
            && stderr.contains("it will be proven by DNS"),
        "{stderr}"
    );
    assert_eq!(record(&host, "fb.test").dns_names, vec!["fb.test"]);
    assert_eq!(
        served(&host, "fb.test").fingerprint,
        pem_fingerprint(&host.live("fb.test"))
    );
    let owner = cname_owner(&host, "fb.test", None, "fb.test");
    assert!(named.values(&owner, RecordType::CNAME).is_empty());
}

#[test]
fn a_wildcard_only_site_gets_a_certificate_by_dns() {
    const SITES: &str = r#"
        server {
            listen 127.0.0.1:{port.0};
            server_name *.only.test;
            root {prefix}/www/shop;
        }
    "#;
    let named = Named::start(&["only.test"]);
    let host = host_at(named.addr, SITES, &named.rfc2136_config(15), &[]);
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 0);
    let site = doc["sites"][0]["site"].as_str().unwrap().to_string();
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["*.only.test"]),
        "{doc:#}"
    );
    let live_dir = enc365_nginx::paths::live_dir(host.dir.path(), &site);
    let live = pem_fingerprint(&live_dir.join("fullchain.pem"));
    assert_eq!(served(&host, "a.only.test").fingerprint, live);
    let owner = cname_owner(&host, &site, None, "only.test");
    assert!(named.values(&owner, RecordType::CNAME).is_empty());
    assert!(record(&host, &site).dns_records.is_empty());
}

#[test]
fn renewing_a_wildcard_site_orders_a_new_certificate_and_removes_its_record() {
    const SITES: &str = r#"
        server {
            listen 127.0.0.1:{port.0};
            server_name wild.test *.wild.test;
            root {prefix}/www/shop;
        }
    "#;
    let named = Named::start(&["wild.test"]);
    let host = host_at(named.addr, SITES, &named.rfc2136_config(15), &[]);
    expect_exit(&host.auto(&["--json", "--site", "wild.test"]), 0);
    let old = pem_fingerprint(&host.live("wild.test"));
    let first = cname_owner(&host, "wild.test", None, "wild.test");

    let out = host.renew(&["--json", "--force", "--site", "wild.test"]);
    let doc = expect_exit(&out, 0);
    let new = pem_fingerprint(&host.live("wild.test"));
    assert_ne!(new, old, "{doc:#}");
    assert_eq!(served(&host, "shop.wild.test").fingerprint, new);
    assert_eq!(served(&host, "wild.test").fingerprint, new);
    assert_eq!(host.sim.request_count("/cert/create"), 2);
    let second = cname_owner(&host, "wild.test", None, "wild.test");
    assert_ne!(first, second, "a new key, so a new CNAME");
    for owner in [first, second] {
        assert!(
            named.values(&owner, RecordType::CNAME).is_empty(),
            "{owner}"
        );
    }
    let rec = record(&host, "wild.test");
    assert_eq!(rec.state, RecordState::Installed);
    assert!(rec.dns_records.is_empty());
}

#[test]
fn the_zone_walk_follows_a_delegation_from_the_parent_to_the_child_server() {
    // The parent zone's server delegates child.deleg.test (with glue) to a second named. Only
    // the parent is configured (`resolver`); no check_servers. Both listen on 127.0.0.1, so the
    // servers the walk finds are asked on `authoritative_port` (the child's port).
    let child = Named::start_at(
        [127, 0, 0, 1],
        crate::common::free_port(),
        &[("child.deleg.test", "")],
    );
    let port = child.addr.port();
    let parent = Named::start_at(
        [127, 0, 0, 1],
        crate::common::free_port(),
        &[(
            "deleg.test",
            "child IN NS ns.child\nns.child IN A 127.0.0.1\n",
        )],
    );
    let found =
        enc365_nginx::publish::dns::wire::walk(parent.addr, "_abc.child.deleg.test", port).unwrap();
    assert_eq!(found.zone, "child.deleg.test");
    assert_eq!(found.servers, vec![child.addr]);
    // A name in the parent's own zone: the walk ends at the parent.
    let direct =
        enc365_nginx::publish::dns::wire::walk(parent.addr, "deleg.test", parent.addr.port())
            .unwrap();
    assert_eq!(direct.servers, vec![parent.addr]);

    const SITES: &str = r#"
        server {
            listen 127.0.0.1:{port.0};
            server_name child.deleg.test *.child.deleg.test;
            root {prefix}/www/shop;
        }
    "#;
    let config = format!(
        "\n[dns]\nprovider = \"rfc2136\"\nserver = \"{}\"\ntsig_key_name = \"{KEY_NAME}\"\n\
         tsig_secret = \"{KEY_SECRET}\"\nresolver = \"{}\"\nauthoritative_port = {port}\n\
         propagation_timeout = 15\n",
        child.addr, parent.addr
    );
    let host = host_at(child.addr, SITES, &config, &["child.deleg.test"]);
    let out = host.auto(&["--json", "--site", "child.deleg.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["child.deleg.test", "*.child.deleg.test"]),
        "{doc:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        served(&host, "www.child.deleg.test").fingerprint,
        pem_fingerprint(&host.live("child.deleg.test"))
    );
    // Encryption365's owner is relative to the registrable domain (deleg.test): subdomain child.
    let owner = cname_owner(&host, "child.deleg.test", Some("child"), "deleg.test");
    assert!(child.values(&owner, RecordType::CNAME).is_empty());
}

#[test]
fn a_dns_record_whose_removal_failed_is_removed_by_the_next_run() {
    let named = Named::start(&["wild.test"]);
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("api-down");
    let hook = dir.path().join("dns-hook");
    // A hook that really updates named (with nsupdate), whose removals fail while `marker`
    // exists.
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nif [ \"$ENC365_DNS_ACTION\" = remove ] && [ -e {marker} ]; then\n  \
             echo 'the DNS API is down' >&2; exit 1\nfi\n\
             if [ \"$ENC365_DNS_ACTION\" = add ]; then\n  \
             line=\"update add $ENC365_DNS_NAME. 60 $ENC365_DNS_TYPE $ENC365_DNS_VALUE.\"\nelse\n  \
             line=\"update delete $ENC365_DNS_NAME. $ENC365_DNS_TYPE\"\nfi\n\
             printf 'server 127.0.0.1 {port}\\nzone %s\\n%s\\nsend\\n' \"$ENC365_DNS_ZONE\" \"$line\" \
             | nsupdate -y hmac-sha256:{KEY_NAME}:{KEY_SECRET}\n",
            marker = marker.display(),
            port = named.addr.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&marker, "").unwrap();
    let config = format!(
        "\n[dns]\nprovider = \"hook\"\nhook = \"{}\"\ncheck_servers = [\"{}\"]\n\
         propagation_timeout = 15\n",
        hook.display(),
        named.addr
    );
    const SITES: &str = r#"
        server {
            listen 127.0.0.1:{port.0};
            server_name wild.test *.wild.test;
            root {prefix}/www/shop;
        }
    "#;
    let host = host_at(named.addr, SITES, &config, &[]);
    let out = host.auto(&["--json", "--site", "wild.test"]);
    expect_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not remove the DNS record")
            && stderr.contains("the DNS API is down"),
        "{stderr}"
    );
    let left = record(&host, "wild.test");
    assert_eq!(left.state, RecordState::Installed);
    assert_eq!(
        left.dns_records.len(),
        1,
        "pending removal in the order record"
    );
    let owner = left.dns_records[0].owner.clone();
    assert_eq!(named.values(&owner, RecordType::CNAME).len(), 1);

    // The DNS API is back: the next run, with nothing to order, removes it.
    std::fs::remove_file(&marker).unwrap();
    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    assert!(named.values(&owner, RecordType::CNAME).is_empty());
    assert!(record(&host, "wild.test").dns_records.is_empty());
    assert_eq!(host.sim.request_count("/cert/create"), 1);
}

#[test]
fn a_run_killed_while_polling_leaves_no_validation_file_after_the_rerun() {
    let host = Host::new(Faults {
        issuance_delay_secs: 8,
        ..Faults::default()
    });
    let mut child = host
        .auto_command(&["--site", "shop.test"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(host.dir.path().join("run1.log")).unwrap())
        .spawn()
        .unwrap();
    // Killed once the CA has validated and the run polls for issuance.
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.sim.request_count("/cert/details") < 3 {
        let log = || std::fs::read_to_string(host.dir.path().join("run1.log")).unwrap();
        assert!(Instant::now() < deadline, "the run never polled: {}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let left = txt_files(&host.sb.path("www/shop"));
    assert!(!left.is_empty(), "the killed run left its file");
    // Validation files are journaled in the order record; the preflight's probe file, left in
    // place until the run ends, in the state directory's probe journal.
    let journaled = record(&host, "shop.test").published_files;
    let probes = std::fs::read_to_string(host.dir.path().join("state/probes.json")).unwrap();
    let (probe_files, validation_files): (Vec<_>, Vec<_>) =
        left.iter().partition(|f| f.contains("enc365-probe-"));
    assert!(!validation_files.is_empty(), "{left:?}");
    for f in validation_files {
        assert!(
            journaled.iter().any(|j| j.display().to_string() == *f),
            "{f} journaled"
        );
    }
    for f in probe_files {
        let quoted = serde_json::to_string(f).unwrap();
        assert!(probes.contains(&quoted), "{f} journaled in {probes}");
    }

    let out = host.auto(&["--json", "--site", "shop.test"]);
    expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/cert/create"), 1);
    assert_eq!(
        served(&host, "www.shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
    for dir in ["www/shop", "www/php"] {
        assert!(txt_files(&host.sb.path(dir)).is_empty(), "{dir}");
    }
    assert!(txt_files(&host.dir.path().join("state")).is_empty());
    assert!(!host.sb.path("www/shop/.well-known").exists());
    assert!(!host.dir.path().join("state/probes.json").exists());
}
