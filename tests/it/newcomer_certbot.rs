//! Issue 15, what certbot users reach for: `delete`, `certonly`, `status` as `certbot
//! certificates`, `-d NAME`, help that fits each command — and `rollback` of a first install
//! once other sites include the TLS snippet it created. Each through the real binary and a real
//! nginx.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::host::{Host, expect_exit, json, pem_fingerprint, served};
use enc365_sim::Faults;

/// One file per site, included by a glob, as a Debian host has them.
const SHOP: &str = "server {\n    listen 127.0.0.1:{port.0};\n    server_name shop.test www.shop.test;\n    root {prefix}/www/shop;\n}\n";
const PHP: &str = "server {\n    listen 127.0.0.1:{port.0};\n    server_name php.test;\n    root {prefix}/www/php;\n}\n";
const LEGACY: &str = "server {\n    listen 127.0.0.1:{port.0};\n    server_name legacy.test;\n    return 301 https://$host$request_uri;\n}\nserver {\n    listen 127.0.0.1:{port.1} ssl;\n    server_name legacy.test;\n    ssl_certificate {prefix}/old/fullchain.pem; # the old one\n    ssl_certificate_key {prefix}/old/privkey.pem;\n    root {prefix}/www/shop;\n}\n";

/// A host whose sites are `sites/<name>.conf` files (rendered), nginx reloaded to read them.
fn host_with_site_files(files: &[(&str, &str)]) -> Host {
    let host = Host::with(
        Faults::default(),
        "    include {prefix}/sites/*.conf;\n",
        "",
    );
    for (name, body) in files {
        host.sb
            .write_file(&format!("sites/{name}.conf"), host.sb.render(body));
    }
    host.sb.reload();
    host
}

fn site_file(host: &Host, name: &str) -> PathBuf {
    host.sb.path(&format!("sites/{name}.conf"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The bug: a site's first install creates the shared TLS snippet, a second site's
/// install includes it, and rolling back the first install must not take the snippet from the
/// second (nginx -t refused "the configuration of before" as ssl-params.conf was gone).
#[test]
fn rollback_of_a_first_install_keeps_the_tls_snippet_other_sites_include() {
    let host = host_with_site_files(&[("shop", SHOP), ("php", PHP)]);
    let shop_before = std::fs::read(site_file(&host, "shop")).unwrap();
    expect_exit(&host.auto(&["--site", "shop.test", "--json"]), 0);
    expect_exit(&host.auto(&["--site", "php.test", "--json"]), 0);
    let history = json(&host.command(&["history", "--json"]));
    let first = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "install: shop.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = host.command(&["rollback", &first, "--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["rolled_back"], first.as_str());
    assert_eq!(
        std::fs::read(site_file(&host, "shop")).unwrap(),
        shop_before
    );
    assert!(host.dir.path().join("nginx/ssl-params.conf").is_file());
    // php.test still serves its certificate, through the snippet.
    assert_eq!(
        served(&host, "php.test").fingerprint,
        pem_fingerprint(&host.live("php.test"))
    );
    let php = std::fs::read_to_string(site_file(&host, "php")).unwrap();
    assert!(
        php.contains("ssl-params.conf; # managed by enc365-nginx"),
        "{php}"
    );
}

/// `delete --site`: our lines go, replaced certificate lines come back, the file is byte for
/// byte what it was before our first install; nginx serves what it served before; `rollback`
/// undoes the delete.
#[test]
fn delete_takes_our_lines_out_byte_for_byte_and_rollback_undoes_it() {
    let host = host_with_site_files(&[("shop", SHOP), ("legacy", LEGACY)]);
    let shop_before = std::fs::read(site_file(&host, "shop")).unwrap();
    let legacy_before = std::fs::read(site_file(&host, "legacy")).unwrap();
    let old_cert = pem_fingerprint(&host.sb.path("old/fullchain.pem"));
    assert_eq!(served(&host, "legacy.test").fingerprint, old_cert);
    let args = ["--site", "shop.test", "--site", "legacy.test", "--json"];
    expect_exit(&host.auto(&args), 0);
    let ours = pem_fingerprint(&host.live("legacy.test"));
    assert_eq!(served(&host, "legacy.test").fingerprint, ours);
    assert_ne!(
        std::fs::read(site_file(&host, "legacy")).unwrap(),
        legacy_before
    );

    // The plain site: our listen, certificate and include lines go; its files stay.
    let doc = expect_exit(
        &host.command(&["delete", "--site", "www.shop.test", "--json"]),
        0,
    );
    assert_eq!(doc["site"], "shop.test");
    assert_eq!(doc["reloaded"], true);
    assert!(doc["lines_removed"].as_u64().unwrap() >= 4, "{doc:#}");
    assert_eq!(
        std::fs::read(site_file(&host, "shop")).unwrap(),
        shop_before
    );
    assert!(
        host.live("shop.test").is_file(),
        "--keep-files is the default"
    );
    let page = common::http_get(host.http, "shop.test", "/").unwrap();
    assert_eq!((page.status, page.text()), (200, "shop".to_string()));
    let status = json(&host.command(&["status", "--json"]));
    let managed: Vec<&str> = (status["certificates"].as_array().unwrap().iter())
        .map(|c| c["site"].as_str().unwrap())
        .collect();
    assert_eq!(managed, ["legacy.test"], "{status:#}");

    // The TLS site: its old certificate lines come back from the backup, files removed.
    let out = host.command(&["delete", "--site", "legacy.test", "--remove-files"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("enc365-nginx rollback "), "{text}");
    assert_eq!(
        std::fs::read(site_file(&host, "legacy")).unwrap(),
        legacy_before
    );
    assert_eq!(served(&host, "legacy.test").fingerprint, old_cert);
    for f in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"] {
        assert!(
            !host.dir.path().join("live/legacy.test").join(f).exists(),
            "{f}"
        );
    }

    // `rollback` (the newest change: that delete) puts lines, files and the record back.
    let doc = expect_exit(&host.command(&["rollback", "--json"]), 0);
    assert!(doc["rolled_back"].is_string(), "{doc:#}");
    assert_eq!(served(&host, "legacy.test").fingerprint, ours);
    assert_eq!(pem_fingerprint(&host.live("legacy.test")), ours);
    let status = json(&host.command(&["status", "--json", "--site", "legacy.test"]));
    assert_eq!(
        status["certificates"][0]["site"], "legacy.test",
        "{status:#}"
    );
}

/// `delete` of a site without any line of ours changes nothing and says why (exit 2).
#[test]
fn delete_refuses_a_site_without_our_lines() {
    let host = host_with_site_files(&[("shop", SHOP), ("php", PHP)]);
    let before = std::fs::read(site_file(&host, "php")).unwrap();
    let out = host.command(&["delete", "--site", "php.test", "--json"]);
    let doc = expect_exit(&out, 2);
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains("none of our lines"), "{error}");
    assert_eq!(std::fs::read(site_file(&host, "php")).unwrap(), before);
    let out = host.command(&["delete", "--site", "nosuch.test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("matches no server block"),
        "{}",
        stderr(&out)
    );
    let history = json(&host.command(&["history", "--json"]));
    assert!(history["transactions"].as_array().unwrap().is_empty());
}

/// The option names a command's `--help` lists (long names, and `-d`).
fn options(command: &str) -> (Vec<String>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args([command, "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let names = text
        .split_whitespace()
        .filter(|w| w.starts_with("--") || *w == "-d,")
        .map(|w| w.trim_end_matches(',').to_string())
        .collect();
    (names, text)
}

/// Each command's `--help` lists the options it uses and none it does not (issue 15, item 8).
#[test]
fn each_command_help_lists_only_the_options_it_uses() {
    let cases: [(&str, &[&str], &[&str]); 9] = [
        (
            "plan",
            &[
                "--site",
                "-d",
                "--one-certificate",
                "--https-port",
                "--redirect",
                "--hsts",
            ],
            &[
                "--pre-hook",
                "--post-hook",
                "--deploy-hook",
                "--no-wait",
                "--timeout",
                "--poll-interval",
                "--dry-run",
            ],
        ),
        (
            "renew",
            &[
                "--days",
                "--force",
                "--site",
                "--deploy-hook",
                "--timeout",
                "--dry-run",
                "--https-port",
            ],
            &["--redirect", "--hsts", "--one-certificate"],
        ),
        (
            "auto",
            &[
                "--site",
                "-d",
                "--redirect",
                "--hsts",
                "--deploy-hook",
                "--https-port",
                "--timeout",
            ],
            &[],
        ),
        (
            "reissue",
            &["--site", "--key-type"],
            &["--redirect", "--hsts", "--one-certificate", "--dry-run"],
        ),
        ("status", &["--site", "--name", "--json"], &["--https-port"]),
        ("history", &["--json"], &["--https-port"]),
        ("products", &["--json"], &["--https-port"]),
        ("account", &["--json"], &["--https-port"]),
        (
            "certonly",
            &["--webroot", "-d", "--deploy-hook", "--http-port"],
            &[
                "--https-port",
                "--redirect",
                "--pre-hook",
                "--site",
                "--require-all",
                "--dns-server",
            ],
        ),
    ];
    for (command, present, absent) in cases {
        let (names, text) = options(command);
        for o in present {
            assert!(
                names.iter().any(|n| n == o),
                "{command} --help lacks {o}:\n{text}"
            );
        }
        for o in absent {
            assert!(
                !names.iter().any(|n| n == o),
                "{command} --help lists {o}:\n{text}"
            );
        }
        // Global options stay grouped apart.
        let (own, global) = text.split_once("Global options:").unwrap();
        assert!(
            !own.contains("--state-dir") && global.contains("--state-dir"),
            "{text}"
        );
    }
    // `register` without --username: the reason, not a usage line that makes the options the
    // environment provides look required.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["register", "--config"])
        .arg(dir.path().join("config.toml"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--username"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Usage:"), "{}", stderr(&out));
}

/// `status` as `certbot certificates`: names, key type, expiry and days left, the four files,
/// the sites using each certificate; `--site` and `--name` narrow it.
#[test]
fn status_lists_each_certificate_with_key_type_files_and_sites_like_certbot_certificates() {
    let host = host_with_site_files(&[("shop", SHOP), ("php", PHP)]);
    expect_exit(
        &host.auto(&["--site", "shop.test", "--site", "php.test", "--json"]),
        0,
    );
    let doc = json(&host.command(&["status", "--json"]));
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2, "{doc:#}");
    for c in certs {
        let site = c["site"].as_str().unwrap();
        assert_eq!(c["key_type"], "ecdsa-p256", "{c:#}");
        assert_eq!(c["kind"], "nginx");
        assert!(c["days_left"].as_i64().unwrap() > 30, "{c:#}");
        assert!(c["not_after"].as_str().unwrap().ends_with('Z'));
        assert_eq!(c["used_by"], serde_json::json!([site]), "{c:#}");
        for f in ["cert", "chain", "fullchain", "privkey"] {
            let path = Path::new(c["files"][f].as_str().unwrap());
            assert!(path.is_file(), "{f}: {}", path.display());
        }
        let leaf = std::fs::read_to_string(c["files"]["cert"].as_str().unwrap()).unwrap();
        let chain = std::fs::read_to_string(c["files"]["chain"].as_str().unwrap()).unwrap();
        let full = std::fs::read_to_string(c["files"]["fullchain"].as_str().unwrap()).unwrap();
        assert_eq!(format!("{leaf}{chain}"), full);
    }
    let shop = certs.iter().find(|c| c["site"] == "shop.test").unwrap();
    assert_eq!(
        shop["names"],
        serde_json::json!(["shop.test", "www.shop.test"])
    );

    let only = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["status", "--json"];
        all.extend(args);
        let doc = json(&host.command(&all));
        (doc["certificates"].as_array().unwrap().iter())
            .map(|c| c["site"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(only(&["--site", "php.test"]), ["php.test"]);
    assert_eq!(only(&["--name", "www.shop.test"]), ["shop.test"]);
    assert!(only(&["--name", "other.test"]).is_empty());

    let out = host.command(&["status", "--site", "shop.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("key type: ecdsa-p256"), "{text}");
    assert!(text.contains("used by: shop.test"), "{text}");
    assert!(text.contains("live/shop.test/privkey.pem"), "{text}");
    assert!(!text.contains("php.test"), "{text}");
}

/// `-d NAME` orders just that name of the site; a name the site does not have is exit 2 with
/// the site's names.
#[test]
fn auto_with_d_orders_only_the_names_given_and_refuses_one_the_site_lacks() {
    let host = host_with_site_files(&[("shop", SHOP), ("php", PHP)]);
    let out = host.auto(&["--site", "shop.test", "-d", "nope.test", "--json"]);
    let doc = expect_exit(&out, 2);
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains("-d nope.test is not a name of the site shop.test"),
        "{error}"
    );
    assert!(error.contains("shop.test, www.shop.test"), "{error}");
    assert_eq!(host.sim.request_count("/cert/create"), 0);

    let plan = json(
        &host
            .pipeline_command("plan", &["-d", "www.shop.test", "--json"])
            .output()
            .unwrap(),
    );
    let text = plan.to_string();
    assert!(
        text.contains("www.shop.test") && !text.contains("php.test"),
        "{plan:#}"
    );

    let doc = expect_exit(&host.auto(&["-d", "www.shop.test", "--json"]), 0);
    let sites = doc["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1, "{doc:#}");
    assert_eq!(
        sites[0]["names_issued"],
        serde_json::json!(["www.shop.test"])
    );
    // The lineage is named after a name the certificate covers (shop.test itself was not asked).
    let leaf = common::host::served(&host, "www.shop.test");
    assert_eq!(
        leaf.fingerprint,
        pem_fingerprint(&host.live("www.shop.test"))
    );
    assert!(!host.live("shop.test").exists());
}

/// Every file under the nginx prefix but logs, temp paths and the webroots: path → bytes.
fn nginx_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap();
            let skip = ["logs", "tmp", "run", "www"]
                .iter()
                .any(|s| rel.starts_with(s));
            if skip {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// `certonly --webroot DIR -d …`: ordered, validated through DIR (served by this nginx), the four
/// files saved, the deploy hook run — and no nginx file changed, no `nginx -t`, no reload. A
/// rerun orders nothing.
#[test]
fn certonly_saves_four_files_through_a_webroot_without_touching_nginx() {
    let host = host_with_site_files(&[("shop", SHOP)]);
    let before = nginx_files(host.sb.prefix());
    let workers = host.sb.workers();
    let hook_out = host.dir.path().join("hook.out");
    let hook = host.dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$ENC365_DOMAINS $ENC365_LINEAGE\" > {}\n",
            hook_out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let webroot = host.sb.path("www/shop");
    let http = host.http.to_string();
    let certonly = |extra: &[&str]| {
        let mut args = vec!["certonly", "--webroot", webroot.to_str().unwrap()];
        args.extend(["-d", "shop.test", "-d", "www.shop.test", "--json"]);
        args.extend(["--http-port", http.as_str()]);
        args.extend(["--poll-interval", "0.1", "--timeout", "30"]);
        args.extend(extra);
        host.base_command(&args).output().unwrap()
    };
    let doc = expect_exit(&certonly(&["--deploy-hook", hook.to_str().unwrap()]), 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["shop.test", "www.shop.test"])
    );
    assert_eq!(doc["reloads"], 0, "{doc:#}");

    let live = host.dir.path().join("live/shop.test");
    for f in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"] {
        assert!(live.join(f).is_file(), "{f}");
    }
    let mode = std::fs::metadata(live.join("privkey.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-partial_chain", "-CAfile"])
        .arg(live.join("chain.pem"))
        .arg(live.join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let leaf = std::fs::read_to_string(live.join("cert.pem")).unwrap();
    let chain = std::fs::read_to_string(live.join("chain.pem")).unwrap();
    assert_eq!(
        format!("{leaf}{chain}"),
        std::fs::read_to_string(live.join("fullchain.pem")).unwrap()
    );
    let hook_said = std::fs::read_to_string(&hook_out).unwrap();
    assert_eq!(
        hook_said.trim(),
        format!("shop.test www.shop.test {}", live.display())
    );

    // nginx: every file as it was, the same workers (no reload), no validation file left.
    assert_eq!(nginx_files(host.sb.prefix()), before);
    assert_eq!(host.sb.workers(), workers);
    let left = std::fs::read_dir(webroot.join(".well-known/pki-validation"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);

    // A rerun keeps the certificate: nothing ordered.
    let creates = host.sim.request_count("/cert/create");
    let doc = expect_exit(&certonly(&[]), 0);
    assert_eq!(doc["ordered"], false, "{doc:#}");
    assert_eq!(host.sim.request_count("/cert/create"), creates);
    // It is listed by `status`, as files only.
    let status = json(&host.command(&["status", "--json", "--name", "www.shop.test"]));
    let c = &status["certificates"][0];
    assert_eq!(c["kind"], "certonly", "{status:#}");
    assert_eq!(c["used_by"], serde_json::json!([]));
}
