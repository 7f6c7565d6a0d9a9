//! Filesystem safety (issue 16, items 2, 3, 10, 11, 12) through the real binary, a real nginx and
//! the simulator: links and files planted in a webroot are never written through (the site is
//! validated through the temporary location instead), and state dirs, config files and
//! transaction manifests another user could change are refused before anything is written.

use crate::common;
use common::host::ONE_SITE;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use common::host::{Host, expect_exit, pem_fingerprint, served};
use enc365_sim::Faults;

/// A uid that is neither root nor the user running the tests.
const OTHER_UID: u32 = 65534;

fn host() -> Host {
    Host::with(Faults::default(), ONE_SITE, "")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn shop_result(doc: &serde_json::Value) -> &serde_json::Value {
    (doc["sites"].as_array().unwrap().iter())
        .find(|s| s["site"] == "shop.test")
        .unwrap_or_else(|| panic!("no shop.test in {doc:#}"))
}

/// What a site owner plants in their webroot before the run.
enum Plant {
    /// `.well-known` is a link to another directory.
    WellKnownLink,
    /// `.well-known/pki-validation` is a link to another directory.
    ValidationDirLink,
    /// `.well-known` is a file.
    WellKnownFile,
    /// `.well-known/pki-validation` is a file.
    ValidationDirFile,
}

#[test]
fn links_or_files_planted_in_a_webroot_are_never_written_through_and_the_site_still_validates() {
    for plant in [
        Plant::WellKnownLink,
        Plant::ValidationDirLink,
        Plant::WellKnownFile,
        Plant::ValidationDirFile,
    ] {
        let host = host();
        let web = host.sb.path("www/shop");
        let elsewhere = host.dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let (planted, what) = match plant {
            Plant::WellKnownLink => {
                symlink(&elsewhere, web.join(".well-known")).unwrap();
                (web.join(".well-known"), "is a symbolic link")
            }
            Plant::ValidationDirLink => {
                fs::create_dir(web.join(".well-known")).unwrap();
                symlink(&elsewhere, web.join(".well-known/pki-validation")).unwrap();
                (web.join(".well-known/pki-validation"), "is a symbolic link")
            }
            Plant::WellKnownFile => {
                fs::write(web.join(".well-known"), "mine").unwrap();
                (web.join(".well-known"), "is not a directory")
            }
            Plant::ValidationDirFile => {
                fs::create_dir(web.join(".well-known")).unwrap();
                fs::write(web.join(".well-known/pki-validation"), "mine").unwrap();
                (web.join(".well-known/pki-validation"), "is not a directory")
            }
        };
        let note = format!("{} {what}", planted.display());

        // plan says where validation goes and why, in text and JSON.
        let http = host.http.to_string();
        let plan = (host.base_command(&["plan", "--json", "--http-port", &http]))
            .output()
            .unwrap();
        let doc = expect_exit(&plan, 0);
        let notes = shop_result(&doc)["validation_notes"].to_string();
        assert!(notes.contains(&note), "{notes}");
        assert!(notes.contains("temporary location"), "{notes}");

        let out = host.auto(&["--json"]);
        let doc = expect_exit(&out, 0);
        let shop = shop_result(&doc);
        assert!(shop["error"].is_null(), "{shop:#}");
        assert!(
            shop["validation_notes"].to_string().contains(&note),
            "{shop:#}"
        );
        assert!(text(&out).contains(&note), "{}", text(&out));
        let fp = pem_fingerprint(&host.live("shop.test"));
        for name in ["shop.test", "www.shop.test"] {
            assert_eq!(served(&host, name).fingerprint, fp, "{name}");
        }
        assert_eq!(
            fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "nothing was created behind the link"
        );
        let meta = fs::symlink_metadata(&planted).unwrap();
        match plant {
            Plant::WellKnownLink | Plant::ValidationDirLink => {
                assert!(meta.file_type().is_symlink());
                assert_eq!(fs::read_link(&planted).unwrap(), elsewhere);
            }
            Plant::WellKnownFile | Plant::ValidationDirFile => {
                assert_eq!(fs::read_to_string(&planted).unwrap(), "mine");
            }
        }
        let dcv = host.dir.path().join("state/dcv");
        assert_eq!(fs::read_dir(&dcv).unwrap().count(), 0, "no file left");
    }
}

#[test]
fn a_state_dir_others_can_write_is_refused_and_nothing_is_written() {
    for (case, setup) in [
        (
            "0777",
            (|p: &Path| fs::set_permissions(p, fs::Permissions::from_mode(0o777)))
                as fn(&Path) -> std::io::Result<()>,
        ),
        ("other owner", |p: &Path| {
            std::os::unix::fs::chown(p, Some(OTHER_UID), None)
        }),
    ] {
        let host = host();
        let before = fs::read(host.sb.conf_path()).unwrap();
        let state = host.dir.path().join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o711)).unwrap();
        setup(&state).unwrap();
        let doc = expect_exit(&host.auto(&["--json"]), 2);
        let error = doc["error"].as_str().unwrap();
        assert!(
            error.contains(&state.display().to_string()),
            "{case}: {error}"
        );
        let fix = if case == "0777" {
            "chmod go-w"
        } else {
            "chown root"
        };
        assert!(error.contains(fix), "{case}: {error}");
        assert_eq!(fs::read_dir(&state).unwrap().count(), 0, "{case}");
        assert_eq!(fs::read(host.sb.conf_path()).unwrap(), before, "{case}");
        assert!(!host.live("shop.test").exists(), "{case}");
    }
}

#[test]
fn a_link_planted_in_the_state_dir_is_refused_and_never_chmodded_through() {
    let host = host();
    let before = fs::read(host.sb.conf_path()).unwrap();
    let state = host.dir.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o711)).unwrap();
    let victim = host.dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    symlink(&victim, state.join("dcv")).unwrap();

    let doc = expect_exit(&host.auto(&["--json"]), 2);
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "{} is a symbolic link",
            state.join("dcv").display()
        )),
        "{error}"
    );
    assert_eq!(fs::metadata(&victim).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(fs::read(host.sb.conf_path()).unwrap(), before);
    assert!(!host.live("shop.test").exists());
    // rollback and revoke take the same lock, and refuse the same way.
    let out = host.command(&["rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a symbolic link"), "{}", text(&out));
}

#[test]
fn a_config_file_another_user_could_change_is_refused() {
    let host = host();
    let config = host.dir.path().join("config.toml");
    let before = fs::read(host.sb.conf_path()).unwrap();

    std::os::unix::fs::chown(&config, Some(OTHER_UID), None).unwrap();
    let doc = expect_exit(&host.auto(&["--json"]), 2);
    let error = doc["error"].as_str().unwrap();
    assert!(error.contains(&config.display().to_string()), "{error}");
    assert!(error.contains("chown root"), "{error}");
    std::os::unix::fs::chown(&config, Some(0), None).unwrap();

    fs::set_permissions(host.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let doc = expect_exit(&host.auto(&["--json"]), 2);
    fs::set_permissions(host.dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.contains(&host.dir.path().display().to_string()),
        "{error}"
    );
    assert!(error.contains("chmod go-w"), "{error}");

    assert_eq!(fs::read(host.sb.conf_path()).unwrap(), before);
    assert!(
        !host.dir.path().join("state").exists(),
        "nothing was written"
    );
    // The harness's own layout passes: the same host now runs.
    expect_exit(&host.auto(&["--json"]), 0);
}

/// The newest transaction's manifest after a successful `auto`.
fn install_manifest(host: &Host) -> std::path::PathBuf {
    let backups = host.dir.path().join("state/backups");
    let mut ids: Vec<_> = fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ids.sort();
    let manifest = ids.last().unwrap().join("manifest.json");
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(doc["state"], "committed", "{doc:#}");
    assert_eq!(doc["kind"]["type"], "install", "{doc:#}");
    manifest
}

#[test]
fn rollback_refuses_a_forged_manifest_and_leaves_its_target_untouched() {
    let host = host();
    expect_exit(&host.auto(&["--json"]), 0);
    let installed = fs::read(host.sb.conf_path()).unwrap();
    let manifest = install_manifest(&host);
    let victim = host.dir.path().join("victim.txt");
    fs::write(&victim, "precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();

    // An entry for a file the transaction never touched: rolling back would delete it.
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    doc["entries"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "path": victim, "target": victim, "symlink": null, "existed": false,
            "mode": null, "uid": null, "gid": null, "sha256": null, "copy": null
        }));
    fs::write(&manifest, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = host.command(&["rollback", "--json"]);
    let error = expect_exit(&out, 1)["error"].as_str().unwrap().to_string();
    assert!(error.contains(&victim.display().to_string()), "{error}");
    assert!(error.contains("not a file this tool changes"), "{error}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        fs::read(host.sb.conf_path()).unwrap(),
        installed,
        "nothing rolled back"
    );

    // The same manifest written by another user is not even read.
    doc["entries"].as_array_mut().unwrap().pop();
    fs::write(&manifest, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    std::os::unix::fs::chown(&manifest, Some(OTHER_UID), None).unwrap();
    let out = host.command(&["rollback", "--json"]);
    let error = json_error(&out);
    assert!(error.contains(&manifest.display().to_string()), "{error}");
    assert!(error.contains("chown root"), "{error}");
    assert_eq!(fs::read(host.sb.conf_path()).unwrap(), installed);

    // Given back to root, the genuine manifest rolls back.
    std::os::unix::fs::chown(&manifest, Some(0), None).unwrap();
    let out = host.command(&["rollback", "--json"]);
    expect_exit(&out, 0);
    assert_ne!(fs::read(host.sb.conf_path()).unwrap(), installed);
}

/// The `error` of a failed `--json` run (any non-zero exit).
fn json_error(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", text(out));
    let doc = common::host::json(out);
    doc["error"].as_str().unwrap_or_default().to_string()
}
