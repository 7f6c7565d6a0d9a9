//! `auto`'s options end to end (real nginx, the simulator in process, the real binary):
//! `--no-wait`, `--one-certificate`, `--require-all`, and validation for a TLS-only site.

use crate::common;

use common::host::{Host, expect_exit, json, pem_fingerprint, served};
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::Faults;

#[test]
fn no_wait_returns_with_the_order_pending_and_its_files_published_then_a_rerun_installs() {
    // The CA takes its time: every status answer says "processing" until the fault is lifted.
    let host = Host::new(Faults {
        force_status: Some("enroll_caprocessing".into()),
        paths: vec!["/cert/details".into()],
        ..Faults::default()
    });
    let conf_before = std::fs::read(host.sb.conf_path()).unwrap();
    // Two sites sharing one webroot: the validation directories are made by one of them.
    let out = host.auto(&[
        "--json",
        "--site",
        "shop.test",
        "--site",
        "v6.test",
        "--no-wait",
    ]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["sites"][0]["error"], serde_json::Value::Null, "{doc:#}");
    let state = host.dir.path().join("state");
    let record = OrderRecord::load(&state, "shop.test").unwrap().unwrap();
    assert_eq!(record.state, RecordState::Pending);
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), conf_before);
    // The CA may look again after the run: the files stay served from the webroot.
    let dir = host.sb.path("www/shop/.well-known/pki-validation");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    // The file's name and content derive from the CSR: one file serves every name of an order.
    assert_eq!(files.len(), 2, "{files:?}");
    for entry in files {
        let path = entry.unwrap().path();
        let content = std::fs::read_to_string(&path).unwrap();
        assert!(content.contains("comodoca.com"), "{content}");
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        for name in ["shop.test", "www.shop.test"] {
            let got = common::http_get(
                host.http,
                name,
                &format!("/.well-known/pki-validation/{file}"),
            )
            .unwrap();
            assert_eq!((got.status, got.text()), (200, content.clone()), "{name}");
        }
    }

    host.sim.set_faults(Faults::default());
    // Asking for one site resumes every pending order.
    let out = host.auto(&["--json", "--site", "shop.test"]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
    assert_eq!(
        host.sim.request_count("/cert/create"),
        2,
        "resumed, not re-ordered"
    );
    for (name, site) in [("www.shop.test", "shop.test"), ("v6.test", "v6.test")] {
        assert_eq!(
            served(&host, name).fingerprint,
            pem_fingerprint(&host.live(site))
        );
    }
    assert!(
        !host.sb.path("www/shop/.well-known").exists(),
        "the files and the directories made for them are gone once installed"
    );
}

#[test]
fn one_certificate_covers_every_selected_site_with_one_order() {
    let host = Host::new(Faults::default());
    let out = host.auto(&[
        "--json",
        "--one-certificate",
        "--site",
        "shop.test",
        "--site",
        "php.test",
    ]);
    let doc = expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/cert/create"), 1);
    let fp = pem_fingerprint(&host.live("shop.test"));
    for name in ["shop.test", "www.shop.test", "php.test"] {
        assert_eq!(served(&host, name).fingerprint, fp, "{name}");
    }
    let issued = &doc["sites"][0]["names_issued"];
    assert_eq!(issued.as_array().unwrap().len(), 3, "{doc:#}");
}

const PARTLY_RESOLVING: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name wild.test nodns.test;
        root {prefix}/www/shop;
    }
"#;

#[test]
fn require_all_refuses_a_site_whose_names_do_not_all_pass_the_preflight() {
    let host = Host::with(Faults::default(), PARTLY_RESOLVING, "");
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.auto(&["--json", "--require-all"]);
    let doc = expect_exit(&out, 1);
    assert!(
        doc["sites"][0]["error"]
            .as_str()
            .unwrap()
            .contains("--require-all"),
        "{doc:#}"
    );
    assert_eq!(host.sim.request_count("/cert/create"), 0);
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), before);

    // Without it, the name that fails is left out and reported; the rest is issued.
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["wild.test"])
    );
    assert_eq!(doc["sites"][0]["names_left_out"][0]["name"], "nodns.test");
    assert_eq!(
        served(&host, "wild.test").fingerprint,
        pem_fingerprint(&host.live("wild.test"))
    );
}

const TLS_ONLY: &str = r#"
    server {
        listen 127.0.0.1:{port.1} ssl;
        server_name legacy.test;
        ssl_certificate {prefix}/old/fullchain.pem;
        ssl_certificate_key {prefix}/old/privkey.pem;
        root {prefix}/www/shop;
    }
"#;

#[test]
fn a_tls_only_site_validates_through_a_temporary_port_80_server_that_is_gone_afterwards() {
    let host = Host::with(Faults::default(), TLS_ONLY, "");
    let before = String::from_utf8(std::fs::read(host.sb.conf_path()).unwrap()).unwrap();
    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    assert_eq!(
        served(&host, "legacy.test").fingerprint,
        pem_fingerprint(&host.live("legacy.test"))
    );
    let after = String::from_utf8(std::fs::read(host.sb.conf_path()).unwrap()).unwrap();
    assert!(!after.contains("pki-validation"), "{after}");
    assert_eq!(after.lines().count(), before.lines().count(), "{after}");
    // Nothing listens on the temporary port any more.
    assert!(common::http_get(host.http, "legacy.test", "/").is_err());
}
