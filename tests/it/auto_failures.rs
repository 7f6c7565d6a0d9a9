//! `auto` when things go wrong: each failure ends with every config file byte-identical to before,
//! nginx still serving, and orders kept so a rerun resumes them — never a second order.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cases;
use common::host::{Host, expect_exit, json, pem_fingerprint, served};
use enc365_nginx::lifecycle::Lineage;
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::Faults;

/// Every file under the sandbox's prefix that nginx reads, with its bytes.
fn snapshot(host: &Host) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let conf = host.sb.conf_path();
    vec![(conf.clone(), std::fs::read(&conf).unwrap())]
}

/// Checks that the files of `before` are as they were and nginx still serves the site; failures
/// name `what` (the case).
fn assert_unchanged(host: &Host, what: &str, before: &[(std::path::PathBuf, Vec<u8>)]) {
    for (path, bytes) in before {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{what}: {} changed",
            path.display()
        );
    }
    let page = common::http_get(host.http, "shop.test", "/").unwrap();
    assert_eq!(page.text(), "shop", "{what}: nginx still serves the site");
}

/// Runs `auto --site site`, which must fail (exit 1) with an error naming `cause` and saying every
/// file was put back, leaving the files of `before` as they were and nginx serving. Failures name
/// `what` (the case).
fn expect_rolled_back(
    host: &Host,
    what: &str,
    site: &str,
    cause: &str,
    before: &[(std::path::PathBuf, Vec<u8>)],
) {
    let out = host.auto(&["--json", "--site", site]);
    let doc = expect_exit(&out, 1);
    let err = doc["sites"][0]["error"].as_str().unwrap();
    assert!(
        err.contains(cause) && err.contains("put back"),
        "{what}: {err}"
    );
    assert_unchanged(host, what, before);
}

/// Starts `auto` with `args`, waits (30 s at most) until `reached` says the run got to `stage`,
/// then kills it with SIGKILL, as a crash or `kill -9` would.
fn kill_when(host: &Host, args: &[&str], stage: &str, reached: impl Fn() -> bool) {
    let mut child = host
        .auto_command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reached() {
        assert!(Instant::now() < deadline, "the run never reached {stage}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn ca_timeout_keeps_the_order_and_a_rerun_resumes_it_without_ordering_again() {
    // The CA keeps saying "processing" (as a slow CA does) until the fault is lifted.
    let host = Host::new(Faults {
        force_status: Some("enroll_caprocessing".into()),
        paths: vec!["/cert/details".into()],
        ..Faults::default()
    });
    let before = snapshot(&host);
    let out = host.auto(&["--json", "--site", "shop.test", "--timeout", "1"]);
    let doc = expect_exit(&out, 1);
    assert!(
        doc["sites"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not issued within --timeout"),
        "{doc:#}"
    );
    assert_unchanged(&host, "after the timeout", &before);
    let record = OrderRecord::load(&host.dir.path().join("state"), "shop.test")
        .unwrap()
        .unwrap();
    assert_eq!(record.state, RecordState::Pending);

    host.sim.set_faults(Faults::default());
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        host.sim.request_count("/cert/create"),
        1,
        "one order, resumed"
    );
    assert_eq!(
        doc["sites"][0]["order_id"],
        record.order_id.unwrap().as_str()
    );
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
}

#[test]
fn a_validation_path_that_is_not_served_leaves_the_name_out_before_ordering() {
    let sites = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test;
        root {prefix}/www/shop;
        location ^~ /.well-known/ { return 404; }
    }
"#;
    let host = Host::with(Faults::default(), sites, "");
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    let reason = doc["sites"][0]["names_left_out"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("answered HTTP 404"), "{reason}");
    assert_eq!(host.sim.request_count("/cert/create"), 0, "nothing ordered");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), before);
}

/// A way the install can fail after the configuration was edited.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// A broken shared TLS snippet: the edited configuration fails `nginx -t`.
    SnippetNginxRefuses,
    /// The configured reload command fails.
    ReloadCommandFails,
    /// Another program holds the HTTPS port on the site's address: `nginx -t` (which binds
    /// nothing) passes, but the reload cannot bind the new listen, so nginx keeps its old
    /// workers — a reload that "succeeds" but does not apply.
    HttpsPortTaken,
    /// A reload that really reloads, but after swapping the old certificate into our live
    /// files: nginx then serves something other than what was issued.
    OldCertificateSwappedIn,
}

/// One install failure: how the install is broken, the site run, and the cause the error names.
struct RollbackCase {
    breakage: Breakage,
    site: &'static str,
    cause: &'static str,
}

/// The site of [`Breakage::HttpsPortTaken`]: plain HTTP only, so its HTTPS listen is new.
const HTTP_ONLY_SHOP: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name shop.test;
        root {prefix}/www/shop;
    }
"#;

/// Sets up a host whose install will fail as `breakage` says; returns it with whatever must stay
/// alive for the breakage to last (the port squatter).
fn broken_host(breakage: Breakage) -> (Host, Option<std::net::TcpListener>) {
    match breakage {
        Breakage::SnippetNginxRefuses => {
            let host = Host::new(Faults::default());
            std::fs::create_dir_all(host.dir.path().join("nginx")).unwrap();
            std::fs::write(
                host.dir.path().join("nginx/ssl-params.conf"),
                "no_such_directive on;\n",
            )
            .unwrap();
            (host, None)
        }
        Breakage::ReloadCommandFails => {
            let config = "reload_command = \"false\"\n";
            let host = Host::with(Faults::default(), common::host::SITES, config);
            (host, None)
        }
        Breakage::HttpsPortTaken => {
            let host = Host::with(Faults::default(), HTTP_ONLY_SHOP, "");
            let squatter = std::net::TcpListener::bind(("127.0.0.1", host.https)).unwrap();
            (host, Some(squatter))
        }
        Breakage::OldCertificateSwappedIn => {
            let host = Host::new(Faults::default());
            let old_dir = host.sb.path("old");
            let script = reload_script(
                &host,
                &format!(
                    "if [ -e {{live}}/legacy.test/fullchain.pem ]; then cp {0}/fullchain.pem {{live}}/legacy.test/fullchain.pem; cp {0}/privkey.pem {{live}}/legacy.test/privkey.pem; fi",
                    old_dir.display()
                ),
            );
            set_reload_command(&host, Some(&script));
            (host, None)
        }
    }
}

/// Runs `auto` on a host broken as `case` says: the install fails, every file is put back and
/// nginx keeps serving what it served.
fn rolls_back(case: RollbackCase) {
    let name = format!("{:?}", case.breakage);
    let (host, _squatter) = broken_host(case.breakage);
    let old = matches!(case.breakage, Breakage::OldCertificateSwappedIn)
        .then(|| served(&host, case.site).fingerprint);
    let before = snapshot(&host);
    expect_rolled_back(&host, &name, case.site, case.cause, &before);
    // Nothing of the failed install is on record: the run wrote its records beside the ones
    // they replace while nginx checked, and drops them when the proof fails.
    let state = host.dir.path().join("state");
    assert!(
        Lineage::load(&state, case.site).unwrap().is_none(),
        "{name}: no lineage for a failed install"
    );
    for dir in ["orders", "certs"] {
        for entry in std::fs::read_dir(state.join(dir)).into_iter().flatten() {
            let path = entry.unwrap().path();
            let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                dir == "orders" || !file_name.contains(case.site),
                "{name}: {file_name} left in state/certs"
            );
            let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
            assert!(
                !text.contains("\"installed\""),
                "{name}: {} says installed:\n{text}",
                path.display()
            );
        }
    }
    match case.breakage {
        Breakage::SnippetNginxRefuses => {
            assert!(
                !host.live(case.site).exists(),
                "{name}: the live files the run created are removed again"
            );
            // The certificate stays on record as issued: fixing the snippet and rerunning installs
            // it without a new order. Its validation files went when it was issued (the sandbox
            // is as before); the record still lists them until a run clears the list.
            let state = host.dir.path().join("state");
            let load = || OrderRecord::load(&state, case.site).unwrap().unwrap();
            let issued = load();
            assert_eq!(issued.state, RecordState::Issued, "{name}");
            assert!(!issued.published_files.is_empty(), "{name}: {issued:?}");
            assert!(issued.published_files.iter().all(|f| !f.exists()), "{name}");
            std::fs::remove_file(host.dir.path().join("nginx/ssl-params.conf")).unwrap();
            let out = host.auto(&["--json", "--site", case.site]);
            assert_eq!(out.status.code(), Some(0), "{name}: {:#}", json(&out));
            assert_eq!(host.sim.request_count("/cert/create"), 1, "{name}");
            let installed = load();
            assert_eq!(
                installed.state,
                enc365_nginx::orders::RecordState::Installed,
                "{name}"
            );
            assert!(
                installed.published_files.is_empty(),
                "{name}: {installed:?}"
            );
        }
        Breakage::OldCertificateSwappedIn => {
            assert!(
                !host.live(case.site).exists(),
                "{name}: live files removed again"
            );
            assert_eq!(
                Some(served(&host, case.site).fingerprint),
                old,
                "{name}: old certificate still served"
            );
        }
        Breakage::ReloadCommandFails | Breakage::HttpsPortTaken => {}
    }
}

cases! {
    fn rolls_back;
    nginx_t_failing_after_our_edit_restores_every_file => RollbackCase {
        breakage: Breakage::SnippetNginxRefuses,
        site: "shop.test",
        cause: "nginx -t refused",
    };
    a_failing_reload_restores_every_file => RollbackCase {
        breakage: Breakage::ReloadCommandFails,
        site: "shop.test",
        cause: "reload failed",
    };
    a_listen_nginx_cannot_take_on_reload_rolls_back => RollbackCase {
        breakage: Breakage::HttpsPortTaken,
        site: "shop.test",
        cause: "did not apply",
    };
    a_handshake_showing_another_certificate_rolls_back_and_the_old_one_stays_served => RollbackCase {
        breakage: Breakage::OldCertificateSwappedIn,
        site: "legacy.test",
        cause: "new certificate is not served",
    };
}

#[test]
fn killed_mid_validation_a_rerun_finishes_with_exactly_one_order_per_site() {
    // The CA answers /cert/challenge slowly: the run is killed while it waits.
    let host = Host::new(Faults {
        latency_ms: 20_000,
        paths: vec!["/cert/challenge".into()],
        ..Faults::default()
    });
    let before = snapshot(&host);
    kill_when(&host, &["--json"], "validation", || {
        host.sim.request_count("/cert/challenge") > 0
    });
    let state = host.dir.path().join("state");
    let pending: Vec<_> = OrderRecord::all(&state).unwrap();
    assert!(!pending.is_empty());
    assert!(
        pending.iter().all(|r| r.state == RecordState::Pending),
        "{pending:?}"
    );
    let created = host.sim.request_count("/cert/create");

    host.sim.set_faults(Faults::default());
    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    assert_eq!(
        host.sim.request_count("/cert/create"),
        created,
        "no second order"
    );
    assert_eq!(created as usize, pending.len(), "one order per site");
    for site in [
        "shop.test",
        "app.test",
        "php.test",
        "legacy.test",
        "v6.test",
        "wild.test",
    ] {
        assert_eq!(
            served(&host, site).fingerprint,
            pem_fingerprint(&host.live(site)),
            "{site}"
        );
    }
    // The temporary validation edits of the killed run are gone.
    let after = std::fs::read(host.sb.conf_path()).unwrap();
    assert!(!after.windows(11).any(|w| w == b"pki-validat"));
    let _ = before;
}

#[test]
fn a_second_concurrent_run_exits_3() {
    let host = Host::new(Faults {
        latency_ms: 3_000,
        paths: vec!["/cert/create".into()],
        ..Faults::default()
    });
    let mut first = host
        .auto_command(&["--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while host.sim.request_count("/cert/create") == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = host.auto(&["--json"]);
    assert_eq!(
        second.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    first.wait().unwrap();
}

/// Writes an executable reload script into the host's directory and returns its path.
fn reload_script(host: &Host, body: &str) -> std::path::PathBuf {
    let path = host.dir.path().join("reload.sh");
    let nginx = format!(
        "{} -p {} -c {} -s reload",
        host.sb.nginx_bin().display(),
        host.sb.prefix().display(),
        host.sb.conf_path().display()
    );
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n{}\nexec {nginx}\n",
            body.replace(
                "{live}",
                &host.dir.path().join("live").display().to_string()
            )
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// Rewrites the host's config file with `reload_command` set (or removed, with `None`).
fn set_reload_command(host: &Host, command: Option<&std::path::Path>) {
    let path = host.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut kept: String = text
        .lines()
        .filter(|l| !l.starts_with("reload_command"))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(command) = command {
        kept.push_str(&format!("reload_command = \"{}\"\n", command.display()));
    }
    std::fs::write(&path, kept).unwrap();
}

#[test]
fn killed_during_the_install_a_rerun_puts_the_files_back_and_installs_once() {
    let host = Host::new(Faults::default());
    // The install's reload hangs; the run is killed while it waits.
    let script = reload_script(&host, "sleep 30");
    set_reload_command(&host, Some(&script));
    let before = std::fs::read(host.sb.conf_path()).unwrap();
    kill_when(
        &host,
        &["--json", "--site", "shop.test"],
        "the install",
        || {
            let edited = String::from_utf8_lossy(&std::fs::read(host.sb.conf_path()).unwrap())
                .contains("managed by enc365-nginx");
            if edited {
                std::thread::sleep(Duration::from_millis(300)); // into the hanging reload
            }
            edited
        },
    );
    let records = OrderRecord::all(&host.dir.path().join("state")).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Issued, "{records:?}");

    set_reload_command(&host, None);
    let out = host.auto(&["--json", "--site", "shop.test"]);
    expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/cert/create"), 1, "one order");
    let fp = pem_fingerprint(&host.live("shop.test"));
    assert_eq!(served(&host, "shop.test").fingerprint, fp);
    assert_eq!(served(&host, "www.shop.test").fingerprint, fp);
    // The half install was undone before the new one: our lines are there once.
    let after = String::from_utf8(std::fs::read(host.sb.conf_path()).unwrap()).unwrap();
    assert_eq!(after.matches("ssl_certificate_key").count(), 2, "{after}");
    let managed = after
        .lines()
        .filter(|l| l.ends_with("# managed by enc365-nginx"))
        .count();
    let before_text = String::from_utf8(before).unwrap();
    assert_eq!(
        after.lines().count(),
        before_text.lines().count() + managed,
        "only our lines were added"
    );
}

#[test]
fn killed_while_ordering_a_rerun_does_not_order_again_until_told_to() {
    let host = Host::new(Faults {
        latency_ms: 20_000,
        paths: vec!["/cert/create".into()],
        ..Faults::default()
    });
    let before = snapshot(&host);
    // Killed while the CA's answer to /cert/create is on its way: it is never read.
    kill_when(
        &host,
        &["--json", "--site", "shop.test"],
        "ordering",
        || host.sim.request_count("/cert/create") > 0,
    );
    let state = host.dir.path().join("state");
    let records = OrderRecord::all(&state).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Creating);

    host.sim.set_faults(Faults::default());
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let doc = expect_exit(&out, 1);
    let err = doc["sites"][0]["error"].as_str().unwrap();
    assert!(
        err.contains("interrupted while ordering") && err.contains("--discard-interrupted-order"),
        "{err}"
    );
    assert_eq!(
        host.sim.request_count("/cert/create"),
        1,
        "not ordered again"
    );
    assert_unchanged(&host, "after the interrupted order", &before);

    let out = host.auto(&[
        "--json",
        "--site",
        "shop.test",
        "--discard-interrupted-order",
    ]);
    assert_eq!(out.status.code(), Some(0), "{:#}", json(&out));
    assert_eq!(host.sim.request_count("/cert/create"), 2);
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
}
