//! `enc365-nginx auto` end to end: a real nginx in a sandbox, the Encryption365 simulator in
//! process (validating over real HTTP against that nginx, issuing real X.509), the real binary.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::host::{Host, expect_exit, json, pem_fingerprint, served};
use enc365_nginx::nginx::edit::is_managed_line;
use enc365_sim::Faults;

#[test]
fn auto_gives_every_certifiable_name_a_verified_certificate_and_a_second_run_does_nothing() {
    let host = Host::new(Faults::default());
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 0);
    assert!(doc["reloads"].as_u64().unwrap() <= 2, "{doc:#}");

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
            assert_eq!(
                served(&host, name).fingerprint,
                fp,
                "{name} serves the new certificate"
            );
        }
    }
    let sites = doc["sites"].as_array().unwrap();
    let nodns = sites.iter().find(|s| s["site"] == "nodns.test").unwrap();
    assert!(nodns["error"].is_null(), "{nodns}");
    assert!(
        nodns["skipped"]
            .as_str()
            .unwrap()
            .contains("no name passed"),
        "{nodns}"
    );
    assert_eq!(
        nodns["names_left_out"][0]["reason"],
        "does not resolve in DNS"
    );
    let wild = sites.iter().find(|s| s["site"] == "wild.test").unwrap();
    let left: Vec<&str> = wild["names_left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["*.wild.test", "~^(?<u>.+)\\.users\\.wild\\.test$"]);

    // Only marked lines were added; nothing else changed.
    let after = std::fs::read(host.sb.conf_path()).unwrap();
    let old_lines: Vec<&[u8]> = before.split_inclusive(|b| *b == b'\n').collect();
    for line in after.split_inclusive(|b| *b == b'\n') {
        assert!(
            old_lines.contains(&line) || is_managed_line(line),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    assert!(
        !after.windows(11).any(|w| w == b"pki-validat"),
        "temporary locations are gone"
    );
    assert!(
        !host.sb.path("www/shop/.well-known").exists(),
        "validation files and their directory are gone"
    );
    let dcv_left: Vec<_> = std::fs::read_dir(host.dir.path().join("state/dcv"))
        .unwrap()
        .collect();
    assert!(dcv_left.is_empty());
    // The key is private.
    let key = host.dir.path().join("live/shop.test/privkey.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A second run finds nothing to do and orders nothing.
    let creates = host.sim.request_count("/cert/create");
    let again = host.auto(&["--json"]);
    let doc2 = expect_exit(&again, 0);
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates,
        "no new order"
    );
    assert_eq!(
        doc2["reloads"],
        0,
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let only_nodns: Vec<&str> = doc2["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(only_nodns, ["nodns.test"]);
}

#[test]
fn a_rejected_order_leaves_every_file_as_it_was() {
    let host = Host::new(Faults {
        reject_orders: true,
        ..Faults::default()
    });
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    let err = doc["sites"][0]["error"].as_str().unwrap();
    assert!(err.contains("without a certificate"), "{err}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), before);
    assert!(!host.live("shop.test").exists());
    // nginx still serves the old site.
    let page = common::http_get(host.http, "shop.test", "/").unwrap();
    assert_eq!(page.text(), "shop");
}

#[test]
fn redirect_and_hsts_send_plain_http_to_https_and_keep_the_validation_path_open() {
    let host = Host::new(Faults::default());
    let out = host.auto(&[
        "--json",
        "--site",
        "shop.test",
        "--site",
        "legacy.test",
        "--redirect",
        "--hsts",
    ]);
    expect_exit(&out, 0);
    let plain = common::http_get(host.http, "shop.test", "/a/b?c=1").unwrap();
    assert_eq!(plain.status, 301);
    assert_eq!(
        plain.header("location"),
        Some(format!("https://shop.test:{}/a/b?c=1", host.https).as_str())
    );
    // The validation path is not redirected: renewals validate over plain HTTP.
    host.sb.write_file(
        "www/shop/.well-known/pki-validation/check.txt",
        "still here",
    );
    let dcv = common::http_get(
        host.http,
        "www.shop.test",
        "/.well-known/pki-validation/check.txt",
    )
    .unwrap();
    assert_eq!((dcv.status, dcv.text().as_str()), (200, "still here"));
    for name in ["shop.test", "legacy.test"] {
        let page = common::https_get(host.https, name, "/").unwrap();
        assert_eq!(page.status, 200, "{name}");
        assert_eq!(page.text(), "shop", "{name}");
        assert_eq!(
            page.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{name}"
        );
    }
    // legacy.test's port-80 block redirected by itself already and is left alone.
    let legacy = common::http_get(host.http, "legacy.test", "/x").unwrap();
    assert_eq!(legacy.status, 301);
    assert_eq!(legacy.header("location"), Some("https://legacy.test/x"));
    // A site given a certificate without --redirect keeps answering plain HTTP.
    let out = host.auto(&["--json", "--site", "v6.test"]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
    let page = common::http_get(host.http, "v6.test", "/").unwrap();
    assert_eq!((page.status, page.text().as_str()), (200, "shop"));
}

#[test]
fn plan_shows_the_diff_and_touches_nothing() {
    let host = Host::new(Faults::default());
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let d = host.dir.path();
    let out = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .arg("plan")
        .arg("--config")
        .arg(d.join("config.toml"))
        .arg("--state-dir")
        .arg(d.join("state"))
        .arg("--nginx-conf")
        .arg(host.sb.conf_path())
        .arg("--nginx-prefix")
        .arg(host.sb.prefix())
        .args(["--https-port", &host.https.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("site shop.test"), "{text}");
    assert!(
        text.contains(&format!(
            "+        listen 127.0.0.1:{} ssl; # managed by enc365-nginx",
            host.https
        )),
        "{text}"
    );
    assert!(text.contains("left out: *.wild.test"), "{text}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), before);
    assert!(!d.join("state").exists(), "plan writes no state");
    assert_eq!(host.sim.request_count("/cert/create"), 0);
}

#[test]
fn a_name_asked_for_with_d_that_fails_the_preflight_fails_the_run_not_skipped() {
    let host = Host::new(Faults::default());
    let out = host.auto(&["--json", "-d", "nodns.test"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "asked for by name: {doc:#}");
    let site = &doc["sites"][0];
    assert_eq!(site["site"], "nodns.test", "{doc:#}");
    assert!(site["skipped"].is_null(), "{site}");
    assert!(
        site["error"].as_str().unwrap().contains("no name passed"),
        "{site}"
    );
    assert_eq!(host.sim.request_count("/cert/create"), 0);
}

#[test]
fn a_site_with_only_wildcard_and_regex_names_is_reported_never_planned_or_ordered() {
    let sites = format!(
        "{}\n    server {{\n        listen 127.0.0.1:{{port.0}};\n        server_name ~^(?<u>.+)\\.only\\.test$ *.only.test;\n        root {{prefix}}/www/shop;\n    }}\n",
        common::host::SITES
    );
    let host = Host::with(Faults::default(), &sites, "");
    let plan = host.pipeline_command("plan", &["--json"]).output().unwrap();
    let doc = expect_exit(&plan, 0);
    let only = doc["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "*.only.test")
        .unwrap_or_else(|| panic!("named for its wildcard: {doc:#}"));
    assert!(
        only["skipped"]
            .as_str()
            .unwrap()
            .contains("none of its names"),
        "{only}"
    );
    let diffs = doc["diffs"].to_string();
    assert!(!diffs.contains("only.test"), "never planned: {diffs}");
    assert!(diffs.contains("shop.test"), "{diffs}");

    let out = host.auto(&["--json", "--site", "*.only.test"]);
    let doc = json(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "asked for by name, it fails: {doc:#}"
    );
    assert_eq!(host.sim.request_count("/cert/create"), 0);
}
