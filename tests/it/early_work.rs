//! Issue 17's overlap of work, end to end through the real binary, real nginx and the simulator:
//! a run that adds temporary validation locations lets their own `nginx -t` check the
//! configuration (one `nginx -t` less) yet still reports a configuration that failed before it
//! was touched exactly as the check before any change does; keys made ahead (RSA, ordered and
//! validated in batches) each go to one certificate.

use crate::common;

use std::collections::BTreeSet;
use std::process::Output;

use common::host::{Host, json};
use enc365_sim::Faults;

/// One site served only by a proxy: its validation needs a temporary location.
const PROXY_ONLY: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name app.test;
        location / { proxy_pass http://127.0.0.1:9; }
    }
"#;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn temporary_locations_test_nginx_once_before_ordering_and_once_for_the_install() {
    let host = Host::with(Faults::default(), PROXY_ONLY, "");
    let out = host.auto(&["--json", "--site", "app.test"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", text(&out));
    assert!(
        text(&out).contains("Adding temporary validation"),
        "{}",
        text(&out)
    );
    // The temporary locations' own test (before any order) and the install's: no third.
    assert_eq!(doc["nginx_tests"], 2, "{doc:#}");
    assert_eq!(doc["reloads"], 2, "{doc:#}");
    assert_eq!(host.sim.request_count("/cert/create"), 1);
}

#[test]
fn a_configuration_failing_before_the_temporary_locations_is_reported_as_before() {
    let host = Host::with(Faults::default(), PROXY_ONLY, "");
    let conf = host.sb.conf_path();
    let good = std::fs::read_to_string(&conf).unwrap();
    let broken = good.replacen(
        "server_name app.test;",
        "server_name app.test;\n        no_such_directive x;",
        1,
    );
    assert_ne!(broken, good);
    std::fs::write(&conf, &broken).unwrap();
    let files_before = host.sb.prefix().read_dir().unwrap().count();
    let out = host.auto(&["--json", "--site", "app.test"]);
    let doc = json(&out);
    // Exit 2 and the words of the check before any change; nothing ordered, every byte back.
    assert_eq!(out.status.code(), Some(2), "{doc:#}\n{}", text(&out));
    let error = doc["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("nginx -t fails before anything was changed; fix that first"),
        "{doc:#}"
    );
    assert!(error.contains("no_such_directive"), "{doc:#}");
    assert!(!error.contains("temporary validation"), "{doc:#}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), broken);
    assert_eq!(host.sb.prefix().read_dir().unwrap().count(), files_before);
    assert_eq!(host.sim.request_count("/cert/create"), 0);
    // Fixed, the next run goes through.
    std::fs::write(&conf, &good).unwrap();
    let out = host.auto(&["--json", "--site", "app.test"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Sites with a webroot for two: more than one batch of orders with RSA keys (34 sites are two
/// batches of 17).
const BATCHED: usize = 34;

/// Site `i`'s webroot: shared by one site of each batch.
fn batched_root(i: usize) -> String {
    format!("www/s{}", i % (BATCHED / 2))
}

#[test]
fn rsa_keys_made_ahead_go_one_to_each_certificate_over_several_batches() {
    let mut body = String::new();
    for i in 0..BATCHED {
        let root = batched_root(i);
        body += &format!(
            "server {{\n    listen 127.0.0.1:{{port.0}};\n    server_name b{i}.batch.test;\n    \
             root {{prefix}}/{root};\n}}\n"
        );
    }
    let host = Host::with(Faults::default(), &body, "");
    let hosts = host.dir.path().join("hosts");
    let mut text_hosts = std::fs::read_to_string(&hosts).unwrap();
    for i in 0..BATCHED {
        host.sb
            .write_file(&format!("{}/index.html", batched_root(i)), "site");
        text_hosts += &format!("127.0.0.1 b{i}.batch.test\n");
    }
    std::fs::write(&hosts, text_hosts).unwrap();
    // A --dns-server that is no address turns DNS validation off for the run (these sites
    // validate by file): said once, not once per batch.
    let out = host.auto(&[
        "--json",
        "--key-type",
        "rsa2048",
        "--dns-server",
        "no address",
    ]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", text(&out));
    let said = text(&out);
    assert_eq!(
        said.matches("DNS validation is off for this run").count(),
        1,
        "{said}"
    );
    let mut keys = BTreeSet::new();
    for i in 0..BATCHED {
        let name = format!("b{i}.batch.test");
        let site = (doc["sites"].as_array().unwrap().iter())
            .find(|s| s["site"] == name.as_str())
            .unwrap_or_else(|| panic!("no result for {name}: {doc:#}"));
        assert_eq!(site["names_issued"][0], name.as_str(), "{doc:#}");
        let key = std::fs::read_to_string(host.live(&name).with_file_name("privkey.pem")).unwrap();
        let parsed = rcgen::KeyPair::from_pem(&key).expect("a private key");
        assert!(
            parsed.is_compatible(&rcgen::PKCS_RSA_SHA256),
            "{name}: not RSA"
        );
        assert!(keys.insert(key), "{name} got a key another site has");
    }
    assert_eq!(host.sim.request_count("/cert/create"), BATCHED as u64);
    // The probe files (kept until the run ended) and the validation files of both batches are
    // gone, with the directories made for them, and so is the probes' journal.
    for i in 0..BATCHED / 2 {
        let root = host.sb.path(&batched_root(i));
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(left, [root.join("index.html")], "{}", text(&out));
    }
    assert!(!host.dir.path().join("state/probes.json").exists());
    // The files went when each order was issued; its record, saved as installed, lists none.
    let state = host.dir.path().join("state");
    for i in 0..BATCHED {
        let site = format!("b{i}.batch.test");
        let record = enc365_nginx::orders::OrderRecord::load(&state, &site)
            .unwrap()
            .unwrap();
        assert_eq!(
            record.state,
            enc365_nginx::orders::RecordState::Installed,
            "{site}"
        );
        assert!(record.published_files.is_empty(), "{site}: {record:?}");
        assert!(record.published_dirs.is_empty(), "{site}: {record:?}");
    }
}
