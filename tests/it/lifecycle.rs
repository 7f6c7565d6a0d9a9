//! Hooks, `history` and `rollback` end to end: real nginx in a sandbox, the Encryption365
//! simulator in process, the real binary.

use crate::common;
use common::host::ONE_SITE;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::host::{Host, json, pem_fingerprint, served};
use enc365_nginx::lifecycle::Lineage;
use enc365_sim::Faults;

fn ok(out: &Output) -> serde_json::Value {
    let doc = json(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{doc:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    doc
}

/// A hook script that appends its first argument and its ENC365_* environment to `log`.
fn hook_script(dir: &Path, log: &Path) -> std::path::PathBuf {
    let script = dir.join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"== $1\" >> {log}\nenv | grep -E '^ENC365_(LINEAGE|DOMAINS|CERT|KEY|LINEAGES)=' | sort >> {log}\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn hooks_run_around_the_install_with_the_documented_environment() {
    let hooks = tempfile::tempdir().unwrap();
    let log = hooks.path().join("log");
    let script = hook_script(hooks.path(), &log);
    // The deploy hook comes from the config file; pre and post from flags (pre needs a shell).
    let host = Host::with(
        Faults::default(),
        ONE_SITE,
        &format!("deploy_hook = \"{} deploy\"\n", script.display()),
    );
    let pre = format!("echo '== pre' >> {}", log.display());
    let post = format!("{} post", script.display());
    let doc = ok(&host.auto(&["--json", "--pre-hook", &pre, "--post-hook", &post]));
    assert_eq!(doc["hooks"].as_array().unwrap().len(), 3, "{doc:#}");
    assert!(
        doc["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["ok"] == true)
    );

    let live = host.dir.path().join("live/shop.test");
    let text = std::fs::read_to_string(&log).unwrap();
    let expected = format!(
        "== pre\n== deploy\nENC365_CERT={live}/fullchain.pem\nENC365_DOMAINS=shop.test www.shop.test\n\
         ENC365_KEY={live}/privkey.pem\nENC365_LINEAGE={live}\n== post\nENC365_LINEAGES={live}\n",
        live = live.display()
    );
    assert_eq!(text, expected);

    // Nothing due: no hook runs.
    let out = host.renew(&["--pre-hook", &pre, "--post-hook", &post]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);

    // A failing deploy hook is reported (exit 1) and the good install stays.
    let out = host.renew(&["--json", "--force", "--deploy-hook", "false"]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let hook = &doc["hooks"][0];
    assert_eq!(hook["hook"], "deploy");
    assert_eq!(hook["site"], "shop.test");
    assert_eq!(hook["ok"], false);
    assert_eq!(hook["exit_code"], 1);
    assert!(doc["sites"][0]["error"].is_null(), "{doc:#}");
    let renewed = Lineage::load(&host.dir.path().join("state"), "shop.test")
        .unwrap()
        .unwrap();
    assert_eq!(
        pem_fingerprint(&host.live("shop.test")),
        renewed.fingerprint
    );
    assert_eq!(served(&host, "shop.test").fingerprint, renewed.fingerprint);
}

#[test]
fn rollback_restores_every_file_byte_identical_and_history_lists_them() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    let original = std::fs::read(host.sb.conf_path()).unwrap();
    ok(&host.auto(&["--json"]));
    let first = Lineage::load(&host.dir.path().join("state"), "shop.test")
        .unwrap()
        .unwrap();
    let installed_conf = std::fs::read(host.sb.conf_path()).unwrap();
    let first_chain = std::fs::read(host.live("shop.test")).unwrap();
    let first_key = std::fs::read(host.dir.path().join("live/shop.test/privkey.pem")).unwrap();
    ok(&host.renew(&["--json", "--force"]));
    assert_ne!(std::fs::read(host.live("shop.test")).unwrap(), first_chain);

    let history = ok(&host.command(&["history", "--json"]));
    let txns = history["transactions"].as_array().unwrap();
    let installs: Vec<&serde_json::Value> = txns
        .iter()
        .filter(|t| t["label"] == "install: shop.test")
        .collect();
    assert_eq!(installs.len(), 2, "{history:#}");
    let renewal_files: Vec<&str> = installs[1]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        renewal_files.len(),
        4,
        "a renewal touches only the live files (cert, chain, fullchain, key): {history:#}"
    );
    assert!(renewal_files.iter().all(|f| f.contains("/live/shop.test/")));

    // Roll back the renewal: the first certificate and key are back, byte for byte, and served.
    let doc = ok(&host.command(&["rollback", "--json"]));
    assert_eq!(doc["rolled_back"], installs[1]["id"]);
    assert_eq!(std::fs::read(host.live("shop.test")).unwrap(), first_chain);
    assert_eq!(
        std::fs::read(host.dir.path().join("live/shop.test/privkey.pem")).unwrap(),
        first_key
    );
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), installed_conf);
    assert_eq!(served(&host, "shop.test").fingerprint, first.fingerprint);
    let lineage = Lineage::load(&host.dir.path().join("state"), "shop.test")
        .unwrap()
        .unwrap();
    assert_eq!(lineage.fingerprint, first.fingerprint, "the record follows");

    // Roll back the first install: the configuration is the user's again, our files are gone.
    let doc = ok(&host.command(&["rollback", "--json"]));
    assert_eq!(doc["rolled_back"], installs[0]["id"]);
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), original);
    assert!(!host.live("shop.test").exists());
    assert!(
        Lineage::load(&host.dir.path().join("state"), "shop.test")
            .unwrap()
            .is_none()
    );
    let page = common::http_get(host.http, "shop.test", "/").unwrap();
    assert_eq!(page.text(), "shop");

    // Nothing committed is left to roll back by default; a rollback can itself be undone.
    let out = host.command(&["rollback"]);
    assert_eq!(out.status.code(), Some(2));
    let undo = doc["undo"].as_str().unwrap();
    ok(&host.command(&["rollback", undo, "--json"]));
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), installed_conf);
    assert_eq!(std::fs::read(host.live("shop.test")).unwrap(), first_chain);
    assert_eq!(served(&host, "shop.test").fingerprint, first.fingerprint);
}

#[test]
fn reissue_gives_the_certificate_a_new_key_on_the_same_order() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    ok(&host.auto(&["--json"]));
    let state = host.dir.path().join("state");
    let before = Lineage::load(&state, "shop.test").unwrap().unwrap();
    let key_path = host.dir.path().join("live/shop.test/privkey.pem");
    let key_before = std::fs::read(&key_path).unwrap();
    let conf_before = std::fs::read(host.sb.conf_path()).unwrap();

    let doc = ok(&host
        .pipeline_command("reissue", &["--json", "--site", "www.shop.test"])
        .output()
        .unwrap());
    assert_eq!(doc["sites"][0]["site"], "shop.test", "{doc:#}");
    assert_eq!(host.sim.request_count("/cert/reissue"), 1);
    assert_eq!(host.sim.request_count("/cert/create"), 1, "no new order");
    let after = Lineage::load(&state, "shop.test").unwrap().unwrap();
    assert_eq!(after.order_id, before.order_id, "same order");
    assert_ne!(after.fingerprint, before.fingerprint);
    assert_ne!(std::fs::read(&key_path).unwrap(), key_before, "a new key");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), conf_before);
    assert_eq!(
        served(&host, "www.shop.test").fingerprint,
        after.fingerprint
    );
}

#[test]
fn revoke_says_where_the_provider_cannot_and_asks_before_it_does() {
    // Without the opt-in, the guessed endpoint is never called.
    let host = Host::with(Faults::default(), ONE_SITE, "");
    ok(&host.auto(&["--json"]));
    let out = host.command(&["revoke", "--site", "shop.test", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("enable_unconfirmed_endpoints = true"),
        "{text}"
    );
    assert!(text.contains("nothing was revoked"), "{text}");
    assert_eq!(host.sim.request_count("/cert/revoke"), 0);
    drop(host);

    // With it: not without --yes when nobody can be asked; then revoked, due, replaced by a new
    // order (not a renewal of the revoked one).
    let host = Host::with_sim_options(
        Faults::default(),
        ONE_SITE,
        "enable_unconfirmed_endpoints = true\n",
        |o| o.unconfirmed_endpoints = true,
    );
    ok(&host.auto(&["--json"]));
    let out = host.command(&["revoke", "--site", "shop.test"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(host.sim.request_count("/cert/revoke"), 0);
    let doc = ok(&host.command(&["revoke", "--site", "shop.test", "--yes", "--json"]));
    assert_eq!(doc["revoked"], true);
    assert_eq!(host.sim.request_count("/cert/revoke"), 1);
    let status = ok(&host.command(&["status", "--json"]));
    assert_eq!(status["certificates"][0]["state"], "revoked", "{status:#}");
    assert_eq!(status["certificates"][0]["due"], "revoked at the CA");

    let doc = ok(&host.renew(&["--json"]));
    assert!(doc["sites"][0].get("renews").is_none(), "{doc:#}");
    assert_eq!(host.sim.request_count("/cert/create"), 2);
    let state = host.dir.path().join("state");
    let fresh = Lineage::load(&state, "shop.test").unwrap().unwrap();
    assert!(fresh.revoked_at.is_none());
    let id: u64 = fresh.order_id.as_deref().unwrap().parse().unwrap();
    assert_eq!(host.sim.renewal_of(id), None);
    assert_eq!(served(&host, "shop.test").fingerprint, fresh.fingerprint);
}

#[test]
fn a_certificate_installed_before_lineages_were_kept_is_adopted_and_renewed_when_due() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    ok(&host.auto(&["--json"]));
    let state = host.dir.path().join("state");
    let installed = Lineage::load(&state, "shop.test").unwrap().unwrap();
    std::fs::remove_file(Lineage::path(&state, "shop.test")).unwrap();

    // 80 days on, the 90-day certificate is due (the clock is moved with ENC365_NOW).
    let later = installed.installed_at + 80 * 86_400;
    let out = host
        .pipeline_command("renew", &["--json"])
        .env("ENC365_NOW", later.to_string())
        .output()
        .unwrap();
    let doc = ok(&out);
    assert_eq!(
        doc["sites"][0]["renews"],
        installed.order_id.as_deref().unwrap(),
        "{doc:#}"
    );
    let renewed = Lineage::load(&state, "shop.test").unwrap().unwrap();
    assert_ne!(renewed.fingerprint, installed.fingerprint);
    assert_eq!(served(&host, "shop.test").fingerprint, renewed.fingerprint);
    assert_eq!(host.sim.request_count("/cert/create"), 2);
}

#[test]
fn a_rollback_nginx_refuses_changes_nothing() {
    // A site on a self-signed certificate; after our install its old files are deleted, so the
    // configuration of before no longer passes nginx -t.
    let host = Host::with(
        Faults::default(),
        r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name legacy.test;
        root {prefix}/www/shop;
    }
    server {
        listen 127.0.0.1:{port.1} ssl;
        server_name legacy.test;
        ssl_certificate {prefix}/old/fullchain.pem;
        ssl_certificate_key {prefix}/old/privkey.pem;
        root {prefix}/www/shop;
    }
"#,
        "",
    );
    ok(&host.auto(&["--json"]));
    let installed = std::fs::read(host.sb.conf_path()).unwrap();
    let ours = pem_fingerprint(&host.live("legacy.test"));
    std::fs::remove_dir_all(host.sb.path("old")).unwrap();

    let out = host.command(&["rollback"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("nginx -t refuses"), "{text}");
    assert!(text.contains("nothing changed"), "{text}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), installed);
    assert_eq!(served(&host, "legacy.test").fingerprint, ours);
    let history = ok(&host.command(&["history", "--json"]));
    let install = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "install: legacy.test")
        .unwrap()
        .clone();
    assert_eq!(install["state"], "committed", "{history:#}");

    // The human history lists each transaction with its files.
    let out = host.command(&["history"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(install["id"].as_str().unwrap()), "{text}");
    assert!(text.contains("install: legacy.test"), "{text}");
    assert!(
        text.contains(&format!("{} (created)", host.live("legacy.test").display())),
        "{text}"
    );
}

#[test]
fn status_shows_a_first_order_still_in_flight() {
    let host = Host::with(
        Faults {
            force_status: Some("enroll_caprocessing".into()),
            paths: vec!["/cert/details".into()],
            ..Faults::default()
        },
        ONE_SITE,
        "",
    );
    let empty = ok(&host.command(&["status", "--json"]));
    assert_eq!(empty["certificates"], serde_json::json!([]));
    let out = host.auto(&["--json", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let status = ok(&host.command(&["status", "--json"]));
    let shop = &status["certificates"][0];
    assert_eq!(shop["site"], "shop.test", "{status:#}");
    assert_eq!(shop["state"], "pending");
    assert_eq!(shop["config"], "n/a");
    assert_eq!(
        shop["names"],
        serde_json::json!(["shop.test", "www.shop.test"])
    );
    assert_eq!(shop["provider"], "encryption365");
    assert!(shop["order_id"].is_string());
    assert!(shop["not_after"].is_null());
    assert_eq!(shop["last_run"]["command"], "auto");
    assert_eq!(shop["last_run"]["result"], "failed");
}

#[test]
fn commands_that_change_things_exit_3_while_another_run_holds_the_lock() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    ok(&host.auto(&["--json"]));
    let held = enc365_nginx::store::RunLock::acquire(&host.dir.path().join("state")).unwrap();
    for out in [
        host.renew(&["--force"]),
        host.command(&["rollback"]),
        host.command(&["revoke", "--site", "shop.test", "--yes"]),
        host.pipeline_command("reissue", &["--site", "shop.test"])
            .output()
            .unwrap(),
    ] {
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Reading needs no lock.
    ok(&host.command(&["status", "--json"]));
    ok(&host.command(&["history", "--json"]));
    drop(held);
    assert_eq!(host.sim.request_count("/cert/create"), 1);
}
