//! `enc365-nginx renew` end to end: real nginx in a sandbox, the Encryption365 simulator in
//! process (short-lived certificates through its `validity_secs` switch), the real binary.

use crate::common;

use std::path::PathBuf;
use std::process::Output;

use common::host::{Host, json, pem_fingerprint, served};
use enc365_nginx::lifecycle::Lineage;
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::Faults;

/// Two static sites on one port.
const TWO_SITES: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test www.shop.test;
        root {prefix}/www/shop;
    }
    server {
        listen 127.0.0.1:{port.0};
        server_name app.test;
        root {prefix}/www/shop;
    }
"#;

fn state(host: &Host) -> PathBuf {
    host.dir.path().join("state")
}

fn lineage(host: &Host, site: &str) -> Lineage {
    Lineage::load(&state(host), site)
        .unwrap()
        .unwrap_or_else(|| panic!("{site} is managed"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit 0 and returns the JSON document.
fn ok(out: &Output) -> serde_json::Value {
    let doc = json(out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", stderr(out));
    doc
}

fn conf(host: &Host) -> Vec<u8> {
    std::fs::read(host.sb.conf_path()).unwrap()
}

fn edit_conf(host: &Host, from: &str, to: &str) {
    let text = String::from_utf8(conf(host)).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(host.sb.conf_path(), text.replace(from, to)).unwrap();
    host.sb.reload();
}

#[test]
fn renew_renews_only_the_due_certificate_in_place_and_a_second_run_does_nothing() {
    let host = Host::with(
        Faults {
            validity_secs: Some(20 * 86_400),
            ..Faults::default()
        },
        TWO_SITES,
        "",
    );
    ok(&host.auto(&["--json", "--site", "shop.test"]));
    host.sim.set_faults(Faults::default());
    ok(&host.auto(&["--json", "--site", "app.test"]));
    let conf_before = conf(&host);
    let shop_old = lineage(&host, "shop.test");
    let app_old = lineage(&host, "app.test");
    assert!(shop_old.days_left(now()) < 21, "{shop_old:?}");
    let creates = host.sim.request_count("/cert/create");

    let out = host.renew(&["--json"]);
    let doc = ok(&out);
    assert_eq!(host.sim.request_count("/cert/create"), creates + 1);
    let sites = doc["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1, "only the due one: {doc:#}");
    assert_eq!(sites[0]["site"], "shop.test");
    assert_eq!(sites[0]["renews"], shop_old.order_id.as_deref().unwrap());
    assert_eq!(doc["reloads"], 1, "{doc:#}");
    assert_eq!(doc["due"][0]["site"], "shop.test", "{doc:#}");
    assert_eq!(doc["due"][0]["action"], "renew");
    assert_eq!(doc["not_due"][0]["site"], "app.test");

    // The new order is a renewal of the old one at the CA.
    let shop_new = lineage(&host, "shop.test");
    let new_id: u64 = shop_new.order_id.as_deref().unwrap().parse().unwrap();
    let old_id: u64 = shop_old.order_id.as_deref().unwrap().parse().unwrap();
    assert_eq!(host.sim.renewal_of(new_id), Some(old_id));
    assert_ne!(shop_new.fingerprint, shop_old.fingerprint);
    assert_eq!(
        shop_new.previous.as_ref().unwrap().order_id,
        shop_old.order_id
    );
    assert!(shop_new.days_left(now()) > 80, "{shop_new:?}");

    // Same paths, same configuration bytes; nginx serves the new leaf for every name.
    assert_eq!(
        conf(&host),
        conf_before,
        "renewal does not change nginx config"
    );
    assert_eq!(
        pem_fingerprint(&host.live("shop.test")),
        shop_new.fingerprint
    );
    for name in ["shop.test", "www.shop.test"] {
        assert_eq!(
            served(&host, name).fingerprint,
            shop_new.fingerprint,
            "{name}"
        );
    }
    assert_eq!(served(&host, "app.test").fingerprint, app_old.fingerprint);
    assert_eq!(lineage(&host, "app.test"), app_old, "app.test untouched");

    // Nothing is due now: exit 0, nothing on stdout, one line on stderr; -q says nothing.
    let again = host.renew(&[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        again.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert!(
        stderr(&again).contains("Nothing is due"),
        "{}",
        stderr(&again)
    );
    assert_eq!(stderr(&again).lines().count(), 1, "{}", stderr(&again));
    let quiet = host.renew(&["-q"]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{}",
        stderr(&quiet)
    );
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates + 1,
        "one renewal"
    );

    // --days widens what is due; --force renews now. A dry run (issue 15 item 14) renews what
    // is due at the simulator for real — both sites — and installs nothing.
    let wide = ok(&host.renew(&["--json", "--days", "100", "--dry-run"]));
    let due: Vec<&str> = wide["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["site"].as_str().unwrap())
        .collect();
    assert_eq!(due, ["app.test", "shop.test"], "{wide:#}");
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates + 3,
        "dry run: both renewed at the simulator"
    );
    assert_eq!(
        lineage(&host, "app.test"),
        app_old,
        "a dry run installs nothing"
    );
    assert_eq!(
        lineage(&host, "shop.test"),
        shop_new,
        "a dry run installs nothing"
    );
    let forced = ok(&host.renew(&["--json", "--force", "--site", "app.test"]));
    assert_eq!(forced["sites"][0]["site"], "app.test");
    assert_eq!(host.sim.request_count("/cert/create"), creates + 4);
    assert_ne!(lineage(&host, "app.test").fingerprint, app_old.fingerprint);
    assert_eq!(conf(&host), conf_before);
}

#[test]
fn renew_orders_again_with_the_names_the_site_has_now() {
    let host = Host::with(Faults::default(), TWO_SITES, "");
    ok(&host.auto(&["--json", "--site", "shop.test"]));
    let first = lineage(&host, "shop.test");

    // A name is added to the server block (and resolves here).
    let hosts = host.dir.path().join("hosts");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    text.push_str("127.0.0.1 new.shop.test\n");
    std::fs::write(&hosts, text).unwrap();
    edit_conf(
        &host,
        "server_name shop.test www.shop.test;",
        "server_name shop.test www.shop.test new.shop.test;",
    );
    let edited = conf(&host);
    let doc = ok(&host.renew(&["--json"]));
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["shop.test", "www.shop.test", "new.shop.test"]),
        "{doc:#}"
    );
    assert_eq!(
        doc["sites"][0]["renews"],
        first.order_id.as_deref().unwrap()
    );
    let second = lineage(&host, "shop.test");
    assert_eq!(
        served(&host, "new.shop.test").fingerprint,
        second.fingerprint
    );
    assert_eq!(conf(&host), edited, "only the certificate changed");

    // A name is removed.
    edit_conf(
        &host,
        "server_name shop.test www.shop.test new.shop.test;",
        "server_name shop.test new.shop.test;",
    );
    let doc = ok(&host.renew(&["--json"]));
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["shop.test", "new.shop.test"]),
        "{doc:#}"
    );
    let cert = enc365_nginx::tlsinfo::read_certificate(&host.live("shop.test")).unwrap();
    assert!(
        !cert.names.iter().any(|n| n == "www.shop.test"),
        "{:?}",
        cert.names
    );
    let creates = host.sim.request_count("/cert/create");
    assert_eq!(creates, 3);
    ok(&host.renew(&["--json"]));
    assert_eq!(host.sim.request_count("/cert/create"), creates, "settled");
}

#[test]
fn a_renewal_that_fails_keeps_the_old_certificate_served() {
    let host = Host::with(Faults::default(), TWO_SITES, "");
    ok(&host.auto(&["--json", "--site", "shop.test"]));
    let old = lineage(&host, "shop.test");
    let live_before = std::fs::read(host.live("shop.test")).unwrap();

    // The CA refuses the renewal after validation.
    host.sim.set_faults(Faults {
        reject_orders: true,
        ..Faults::default()
    });
    let conf_before = conf(&host);
    let out = host.renew(&["--json", "--force"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let error = doc["sites"][0]["error"].as_str().unwrap();
    assert!(error.contains("without a certificate"), "{error}");
    assert_eq!(std::fs::read(host.live("shop.test")).unwrap(), live_before);
    assert_eq!(conf(&host), conf_before);
    assert_eq!(served(&host, "shop.test").fingerprint, old.fingerprint);
    assert_eq!(lineage(&host, "shop.test"), old);

    // The validation path stops being served (a deny rule): our own check fails before the
    // CA is asked, and the renewal is a failure, not a skip.
    host.sim.set_faults(Faults::default());
    edit_conf(
        &host,
        "server_name shop.test www.shop.test;",
        "server_name shop.test www.shop.test;\n        location /.well-known/ { return 404; }",
    );
    let creates = host.sim.request_count("/cert/create");
    let out = host.renew(&["--json", "--force"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}\n{}", stderr(&out));
    assert!(doc["sites"][0]["error"].is_string(), "{doc:#}");
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates,
        "nothing ordered"
    );
    assert_eq!(std::fs::read(host.live("shop.test")).unwrap(), live_before);
    assert_eq!(served(&host, "shop.test").fingerprint, old.fingerprint);
}

#[test]
fn a_renewal_left_pending_is_resumed_without_ordering_again() {
    let host = Host::with(Faults::default(), TWO_SITES, "");
    ok(&host.auto(&["--json", "--site", "shop.test"]));
    let old = lineage(&host, "shop.test");
    host.sim.set_faults(Faults {
        force_status: Some("enroll_caprocessing".into()),
        paths: vec!["/cert/details".into()],
        ..Faults::default()
    });
    let out = host.renew(&["--json", "--force", "--timeout", "1"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let record = OrderRecord::load(&state(&host), "shop.test")
        .unwrap()
        .unwrap();
    assert_eq!(record.state, RecordState::Pending);
    assert_eq!(record.renews, old.order_id);
    assert_eq!(served(&host, "shop.test").fingerprint, old.fingerprint);

    // status shows the installed certificate and the renewal in flight.
    let status = ok(&host.command(&["status", "--json"]));
    let shop = &status["certificates"][0];
    assert_eq!(shop["site"], "shop.test", "{status:#}");
    assert_eq!(shop["state"], "installed");
    assert_eq!(shop["pending_order"]["state"], "pending", "{status:#}");
    assert_eq!(
        shop["pending_order"]["order_id"],
        record.order_id.as_deref().unwrap()
    );
    assert_eq!(shop["last_run"]["result"], "failed");
    assert!(
        shop["last_run"]["error"]
            .as_str()
            .unwrap()
            .contains("--timeout")
    );

    host.sim.set_faults(Faults::default());
    let doc = ok(&host.renew(&["--json"]));
    assert_eq!(
        doc["sites"][0]["order_id"],
        record.order_id.as_deref().unwrap()
    );
    assert_eq!(
        host.sim.request_count("/cert/create"),
        2,
        "auto + one renewal"
    );
    let new = lineage(&host, "shop.test");
    assert_eq!(new.order_id, record.order_id);
    assert_eq!(served(&host, "shop.test").fingerprint, new.fingerprint);
    let status = ok(&host.command(&["status", "--json"]));
    assert!(
        status["certificates"][0]["pending_order"].is_null(),
        "{status:#}"
    );
    assert_eq!(status["certificates"][0]["last_run"]["result"], "ok");
}

#[test]
fn a_regenerated_site_gets_our_certificate_back_without_a_new_order() {
    let host = Host::with(Faults::default(), TWO_SITES, "");
    let original = conf(&host);
    ok(&host.auto(&["--json", "--site", "shop.test"]));
    let managed = conf(&host);
    let ours = lineage(&host, "shop.test");
    let creates = host.sim.request_count("/cert/create");

    // A panel rewrites the vhost file as it was before we touched it.
    std::fs::write(host.sb.conf_path(), &original).unwrap();
    host.sb.reload();
    let status = ok(&host.command(&["status", "--json"]));
    let shop = &status["certificates"][0];
    assert_eq!(shop["config"], "regenerated", "{status:#}");
    assert!(shop["days_left"].as_i64().unwrap() > 80);

    let doc = ok(&host.renew(&["--json"]));
    assert_eq!(doc["sites"][0]["reinstalled"], true, "{doc:#}");
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates,
        "no new order"
    );
    assert_eq!(conf(&host), managed, "the same edits as the first install");
    assert_eq!(served(&host, "shop.test").fingerprint, ours.fingerprint);
    assert_eq!(lineage(&host, "shop.test"), ours);

    // `auto` does the same.
    std::fs::write(host.sb.conf_path(), &original).unwrap();
    host.sb.reload();
    let doc = ok(&host.auto(&["--json"]));
    let shop = doc["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "shop.test")
        .unwrap()
        .clone();
    assert_eq!(shop["reinstalled"], true, "{doc:#}");
    assert_eq!(served(&host, "shop.test").fingerprint, ours.fingerprint);
    let status = ok(&host.command(&["status", "--json"]));
    let shop = status["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "shop.test")
        .unwrap()
        .clone();
    assert_eq!(shop["config"], "ok", "{status:#}");

    // Asked for by name while all is well (a panel's post-deploy hook): nothing ordered or
    // reloaded.
    let creates = host.sim.request_count("/cert/create");
    let doc = ok(&host.auto(&["--json", "--site", "shop.test"]));
    assert_eq!(doc["reloads"], 0, "{doc:#}");
    assert!(
        doc["sites"][0]["skipped"]
            .as_str()
            .unwrap()
            .contains("nothing to do"),
        "{doc:#}"
    );
    assert_eq!(host.sim.request_count("/cert/create"), creates);

    // The human table names every managed site with its state.
    let out = host.command(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(table.starts_with("SITE "), "{table}");
    let row = table.lines().find(|l| l.starts_with("shop.test ")).unwrap();
    assert!(row.contains("installed") && row.contains(" ok "), "{table}");
    assert!(row.ends_with("shop.test www.shop.test"), "{table}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn renewing_a_proxy_site_leaves_its_configuration_byte_identical() {
    // No root: validation goes through a temporary location, added and removed again.
    let host = Host::with(
        Faults::default(),
        r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name app.test;
        location / { proxy_pass http://127.0.0.1:9; }
    }
"#,
        "",
    );
    ok(&host.auto(&["--json"]));
    let before = conf(&host);
    let old = lineage(&host, "app.test");
    let doc = ok(&host.renew(&["--json", "--force"]));
    assert_eq!(
        doc["reloads"], 2,
        "one for the temporary location, one for the install"
    );
    assert_eq!(conf(&host), before);
    let new = lineage(&host, "app.test");
    assert_ne!(new.fingerprint, old.fingerprint);
    assert_eq!(served(&host, "app.test").fingerprint, new.fingerprint);
}

#[test]
fn a_renewal_the_ca_refuses_becomes_a_new_order() {
    let host = Host::with(Faults::default(), TWO_SITES, "");
    ok(&host.auto(&["--json", "--site", "shop.test"]));
    // The CA does not know the old order (here: an id it never issued).
    let mut old = lineage(&host, "shop.test");
    old.order_id = Some("999999".into());
    old.save(&state(&host)).unwrap();
    let out = host.renew(&["--json", "--force"]);
    let doc = ok(&out);
    assert!(
        stderr(&out).contains("refused to renew order 999999"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        host.sim.request_count("/cert/create"),
        3,
        "auto, the refused renewal, the new order"
    );
    let new = lineage(&host, "shop.test");
    let id: u64 = new.order_id.as_deref().unwrap().parse().unwrap();
    assert_eq!(host.sim.renewal_of(id), None);
    assert_eq!(
        doc["sites"][0]["order_id"],
        new.order_id.as_deref().unwrap()
    );
    assert!(doc["sites"][0].get("renews").is_none(), "{doc:#}");
    assert_eq!(served(&host, "shop.test").fingerprint, new.fingerprint);
}

#[test]
fn a_certificate_shared_by_several_sites_is_renewed_for_all_of_them() {
    let host = Host::with(Faults::default(), TWO_SITES, "");
    let doc = ok(&host.auto(&["--json", "--one-certificate"]));
    assert_eq!(doc["sites"].as_array().unwrap().len(), 1, "{doc:#}");
    let shared = lineage(&host, "shop.test");
    assert_eq!(shared.names, ["shop.test", "www.shop.test", "app.test"]);
    let text = String::from_utf8(conf(&host)).unwrap();
    assert_eq!(
        text.matches("live/shop.test/fullchain.pem").count(),
        2,
        "both server blocks serve the shared certificate: {text}"
    );

    let out = host.renew(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Nothing is due"), "{}", stderr(&out));
    assert_eq!(host.sim.request_count("/cert/create"), 1);

    let before = conf(&host);
    let doc = ok(&host.renew(&["--json", "--force"]));
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["shop.test", "www.shop.test", "app.test"]),
        "{doc:#}"
    );
    let renewed = lineage(&host, "shop.test");
    for name in ["shop.test", "www.shop.test", "app.test"] {
        assert_eq!(
            served(&host, name).fingerprint,
            renewed.fingerprint,
            "{name}"
        );
    }
    assert_eq!(conf(&host), before);
}
