//! Issue 15 (items 1, 12, 14) and issue 16 (item 7), through real nginx and the simulator: runs
//! reload nginx only when that serves a purpose, `--dry-run` really tests while touching no live
//! file, and the CA's product words come in the language of the interface.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::host::{Host, expect_exit};
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::Faults;

/// Every file under `dir` (recursively) with its bytes, leaving out `skip` (relative names of
/// directories nginx writes into while it runs: logs, pid, temp files).
fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The nginx configuration and the files it serves: every file of the sandbox's prefix but
/// logs, pid and temp files.
fn nginx_tree(host: &Host) -> BTreeMap<PathBuf, Vec<u8>> {
    tree(host.sb.prefix(), &["logs", "run", "tmp"])
}

/// How many times the sandbox's nginx master was told to reload (its error log's SIGHUP lines).
fn reloads_seen(host: &Host) -> usize {
    host.sb.error_log().matches("(SIGHUP) received").count()
}

/// Waits (20 s at most) until the master has logged `n` reloads in all.
fn wait_for_reloads(host: &Host, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while reloads_seen(host) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sites that are all refused before validation: a webroot site whose validation path answers
/// 403 (a regex location wins over the webroot) and a proxy site — served only through a
/// temporary location — whose name does not resolve.
const REFUSED_SITES: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test;
        root {prefix}/www/shop;
        location ~ \.txt$ { return 403; }
    }
    server {
        listen 127.0.0.1:{port.0};
        server_name ghost.test;
        location / { proxy_pass http://127.0.0.1:9; }
    }
"#;

/// Issue 15 item 1 / issue 16 item 7 (a, c): when every site is refused before validation, no
/// temporary location is added, nginx is not reloaded at all, the configuration is
/// byte-identical and nothing is ordered.
#[test]
fn a_run_whose_sites_are_all_refused_before_validation_adds_no_location_and_reloads_nothing() {
    let host = Host::with(Faults::default(), REFUSED_SITES, "");
    let before = nginx_tree(&host);
    let reloads_before = reloads_seen(&host);
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(doc["reloads"], 0, "{doc:#}");
    assert!(!stderr.contains("temporary validation"), "{stderr}");
    let sites = doc["sites"].as_array().unwrap();
    let site = |name: &str| sites.iter().find(|s| s["site"] == name).unwrap().clone();
    let shop = site("shop.test");
    assert!(
        shop["error"].as_str().unwrap().contains("403"),
        "the wrong answer is named: {doc:#}"
    );
    let ghost = site("ghost.test");
    let left_out = ghost["names_left_out"][0]["reason"].as_str().unwrap();
    assert!(left_out.contains("does not resolve"), "{doc:#}");
    assert_eq!(
        nginx_tree(&host),
        before,
        "the configuration is byte-identical"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        reloads_seen(&host),
        reloads_before,
        "nginx was not reloaded"
    );
    assert_eq!(host.sim.request_count("/cert/create"), 0);
}

/// Issue 15 item 1 (c): a run that adds temporary locations and then installs nothing (the CA
/// refuses the order) ends byte-identical, with exactly the two reloads that add and take out
/// the locations.
#[test]
fn a_run_that_installs_nothing_reloads_only_to_undo_what_it_added() {
    let host = Host::new(Faults {
        reject_orders: true,
        ..Faults::default()
    });
    let before = nginx_tree(&host);
    let reloads_before = reloads_seen(&host);
    let out = host.auto(&["--json", "--site", "app.test"]);
    let doc = expect_exit(&out, 1);
    assert_eq!(doc["reloads"], 2, "add and take out the location: {doc:#}");
    assert_eq!(
        nginx_tree(&host),
        before,
        "the configuration is byte-identical"
    );
    wait_for_reloads(&host, reloads_before + 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reloads_seen(&host), reloads_before + 2);

    // A webroot site needs no location: a refused order costs no reload at all.
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    assert_eq!(doc["reloads"], 0, "{doc:#}");
    assert_eq!(nginx_tree(&host), before);
}

/// Issue 16 item 7 (b): `auto` killed while it polls (the temporary location still in the
/// files), the CA issuing meanwhile: the rerun puts the files back, adds no location, does no
/// validation reload — its one reload is the install's — and orders nothing again.
#[test]
fn a_rerun_after_a_kill_with_every_order_issued_adds_no_location_and_reloads_once() {
    let host = Host::new(Faults {
        force_status: Some("enroll_caprocessing".into()),
        paths: vec!["/cert/details".into()],
        ..Faults::default()
    });
    let state = host.dir.path().join("state");
    let mut child = host
        .auto_command(&["--site", "app.test"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let polling = || {
        OrderRecord::load(&state, "app.test")
            .ok()
            .flatten()
            .is_some_and(|r| r.state == RecordState::Pending)
            && host.sim.request_count("/cert/details") >= 2
    };
    while !polling() {
        assert!(Instant::now() < deadline, "the run never polled");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let conf = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert!(
        conf.contains("pki-validation"),
        "killed with the temporary location in place"
    );
    host.sim.set_faults(Faults::default());
    let reloads_before = reloads_seen(&host);
    let out = host.auto(&["--json", "--site", "app.test"]);
    let doc = expect_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        doc["reloads"], 1,
        "only the install's reload: {doc:#}\n{stderr}"
    );
    assert!(!stderr.contains("Adding temporary validation"), "{stderr}");
    assert!(stderr.contains("was issued since the last run"), "{stderr}");
    let conf = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert!(!conf.contains("pki-validation"), "{conf}");
    wait_for_reloads(&host, reloads_before + 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reloads_seen(&host), reloads_before + 1);
    assert_eq!(
        host.sim.request_count("/cert/create"),
        1,
        "never ordered again"
    );
    let served = common::host::served(&host, "app.test");
    assert_eq!(
        served.fingerprint,
        common::host::pem_fingerprint(&host.live("app.test"))
    );
}

/// Issue 15 item 12: product titles and periods in the language of the interface where the CA
/// gives both (Encryption365's period), otherwise as given and labelled (its titles are Chinese
/// only); `--json` keeps the raw fields whatever the language.
#[test]
fn products_show_the_cas_words_in_the_language_of_the_interface() {
    let host = Host::new(Faults::default());
    let products = |lang: &str, json: bool| {
        let mut command = host.base_command(&["products"]);
        if json {
            command.arg("--json");
        }
        let out = command
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", lang)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let chinese = products("zh_CN.UTF-8", false);
    let row = chinese.lines().find(|l| l.starts_with("100")).unwrap();
    assert!(row.contains("免费版 SSL 证书"), "{chinese}");
    assert!(!row.contains("as given"), "{chinese}");
    assert!(
        row.contains("季度") && !row.contains("quarterly"),
        "{chinese}"
    );
    let english = products("C", false);
    let row = english.lines().find(|l| l.starts_with("100")).unwrap();
    assert!(
        row.contains("免费版 SSL 证书 (as given by the CA)"),
        "{english}"
    );
    assert!(
        row.contains("quarterly") && !row.contains("季度"),
        "{english}"
    );
    for lang in ["zh_CN.UTF-8", "C"] {
        let doc: serde_json::Value = serde_json::from_str(&products(lang, true)).unwrap();
        let free = &doc["products"][0];
        assert_eq!(free["title"], "免费版 SSL 证书", "{lang}");
        assert_eq!(free["period"], "quarterly", "{lang}");
        assert_eq!(free["periodText"], "季度", "{lang}");
    }
}

/// Everything a dry run must leave alone: the nginx tree and the directory of the config file
/// (config, live files, state).
fn live_files(host: &Host) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = nginx_tree(host);
    all.extend(tree(host.dir.path(), &[]));
    all
}

/// Issue 15 item 14: `auto --dry-run` against the simulator runs the whole cycle there (the
/// simulator sees the order and validates the files through nginx), checks the edited
/// configuration on a staged copy, and touches no live file: no config change, no lineage, no
/// order record, no reload. Names served only through a temporary location are reported as
/// not exercised. A later real run orders anew and installs.
#[test]
fn auto_dry_run_tests_the_full_cycle_at_the_simulator_and_touches_no_live_file() {
    let host = Host::new(Faults::default());
    let before = live_files(&host);
    let reloads_before = reloads_seen(&host);
    let out = host.auto(&["--dry-run", "--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["dry_run"], true, "{doc:#}");
    assert_eq!(doc["reloads"], 0, "{doc:#}");
    let exercised = doc["exercised"].to_string();
    assert!(exercised.contains("test endpoint"), "{doc:#}");
    assert!(exercised.contains("staged copy"), "{doc:#}");
    let not = doc["not_exercised"].to_string();
    assert!(not.contains("install, reload"), "{doc:#}");
    let sites = doc["sites"].as_array().unwrap();
    let site = |name: &str| sites.iter().find(|s| s["site"] == name).unwrap().clone();
    let shop = site("shop.test");
    assert!(shop["error"].is_null(), "{doc:#}");
    assert!(
        shop["dry_run"].as_str().unwrap().contains("tested"),
        "{doc:#}"
    );
    assert_eq!(shop["names_issued"][0], "shop.test", "{doc:#}");
    let app = site("app.test");
    assert!(
        app["dry_run"].as_str().unwrap().contains("not exercised"),
        "{doc:#}"
    );
    let creates = host.sim.request_count("/cert/create");
    assert!(creates >= 2, "the simulator saw the orders: {creates}");
    assert_eq!(live_files(&host), before, "no live file changed");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reloads_seen(&host), reloads_before, "no reload");

    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates + 1,
        "a new order, nothing resumed from the dry run: {doc:#}"
    );
    let served = common::host::served(&host, "shop.test");
    assert_eq!(
        served.fingerprint,
        common::host::pem_fingerprint(&host.live("shop.test"))
    );
}

/// `renew --dry-run` renews at the simulator what is due (here: forced) and replaces nothing:
/// the live certificate, the lineage and the configuration stay, nginx is not reloaded.
#[test]
fn renew_dry_run_renews_at_the_simulator_and_replaces_nothing() {
    let host = Host::new(Faults::default());
    expect_exit(&host.auto(&["--json", "--site", "shop.test"]), 0);
    let before = live_files(&host);
    let reloads_before = reloads_seen(&host);
    let creates = host.sim.request_count("/cert/create");
    let out = host.renew(&["--dry-run", "--force", "--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["dry_run"], true, "{doc:#}");
    assert_eq!(doc["due"][0]["site"], "shop.test", "{doc:#}");
    assert!(doc["sites"][0]["dry_run"].is_string(), "{doc:#}");
    assert_eq!(host.sim.request_count("/cert/create"), creates + 1);
    assert_eq!(live_files(&host), before, "no live file changed");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reloads_seen(&host), reloads_before, "no reload");
}

/// Against a commercial endpoint with no test endpoint, the dry run goes up to the order — the
/// probe through nginx, key and CSR, the staged `nginx -t` — never calls the CA, and says which
/// steps were not exercised and why.
#[test]
fn a_dry_run_against_a_commercial_endpoint_stops_before_the_order_and_says_so() {
    let host = Host::new(Faults::default());
    let before = live_files(&host);
    let out = host
        .pipeline_command("auto", &["--dry-run", "--json", "--site", "shop.test"])
        .env("ENC365_BASE_URL", "https://encrypt365.trustocean.com")
        .output()
        .unwrap();
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["dry_run"], true);
    assert!(doc["test_endpoint"].is_null(), "{doc:#}");
    let exercised = doc["exercised"].to_string();
    assert!(exercised.contains("probe file"), "{doc:#}");
    assert!(exercised.contains("key and CSR"), "{doc:#}");
    assert!(exercised.contains("staged copy"), "{doc:#}");
    let not = doc["not_exercised"].to_string();
    assert!(
        not.contains("order, validation by the CA, issuance") && not.contains("no test endpoint"),
        "{doc:#}"
    );
    assert_eq!(host.sim.request_count("/cert/create"), 0);
    assert_eq!(live_files(&host), before);
}
