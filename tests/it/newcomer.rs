//! Issue 15, a newcomer's first hour: what a new user runs into with the README open, each
//! through the real binary (and a real nginx where it touches nginx).

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::host::{Host, expect_exit};
use enc365_sim::Faults;

/// A webroot nginx's workers (`nobody` under a root master) cannot enter: the site fails (exit
/// 1, the reason in `--json`) with the permission and the fix named, not a guess at a CDN.
#[test]
fn a_webroot_the_workers_cannot_read_fails_the_site_with_the_permission_and_the_fix() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: only a root master switches its workers to another user"
    );
    let host = Host::new(Faults::default());
    let php = host.sb.path("www/php");
    std::fs::set_permissions(&php, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 1);
    let sites = doc["sites"].as_array().unwrap();
    let site = |name: &str| sites.iter().find(|s| s["site"] == name).unwrap().clone();
    let error = site("php.test")["error"].as_str().unwrap().to_string();
    assert!(error.contains("cannot enter"), "{error}");
    assert!(
        error.contains(&format!("chmod o+x {}", php.display())),
        "{error}"
    );
    assert!(!error.contains("CDN"), "{error}");
    assert!(site("shop.test")["error"].is_null(), "{doc:#}");
    assert!(
        !site("shop.test")["names_issued"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
