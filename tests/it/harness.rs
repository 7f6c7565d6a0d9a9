//! The test harness itself: a real nginx starts in its own prefix, serves by Host, reloads, refuses a
//! broken configuration without dropping the running one, and leaves no process behind.

use crate::common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::{NginxSandbox, free_port, http_get, nginx_binary_in};

/// Two name-based servers on one port, one serving a file from a root inside the prefix.
fn two_sites(body_a: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{{port.0}};\n    server_name a.test;\n    \
         location / {{ return 200 \"{body_a}\"; }}\n}}\n\
         server {{\n    listen 127.0.0.1:{{port.0}};\n    server_name b.test;\n    \
         root {{prefix}}/www/b;\n}}\n"
    )
}

#[test]
fn sandbox_serves_each_site_by_host_header() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    nginx.write_file("www/b/index.html", "site b\n");
    nginx.write_http_conf(&two_sites("site a"));
    nginx
        .test_config()
        .expect("nginx -t accepts the sandbox config");
    nginx.start();

    let a = http_get(port, "a.test", "/").unwrap();
    assert_eq!((a.status, a.text().as_str()), (200, "site a"));
    let b = http_get(port, "b.test", "/").unwrap();
    assert_eq!((b.status, b.text().as_str()), (200, "site b\n"));
    let missing = http_get(port, "b.test", "/nope").unwrap();
    assert_eq!(missing.status, 404);
    assert!(
        nginx.error_log().contains("nope"),
        "the error log is inside the prefix"
    );
}

#[test]
fn reload_takes_effect_with_new_workers_and_same_master() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    nginx.write_http_conf(&two_sites("before"));
    nginx.start();
    let master = nginx.master_pid().unwrap();
    let workers = nginx.workers();
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "before");

    nginx.write_http_conf(&two_sites("after"));
    nginx.reload();

    assert_eq!(nginx.master_pid(), Some(master));
    let new_workers = nginx.workers();
    assert!(!new_workers.is_empty());
    assert!(
        new_workers.iter().all(|w| !workers.contains(w)),
        "{workers:?} -> {new_workers:?}"
    );
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "after");
}

#[test]
fn refused_reload_is_reported_and_old_config_keeps_serving() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    nginx.write_http_conf(&two_sites("still here"));
    nginx.start();

    nginx.write_http_conf("server { listen 127.0.0.1:{port.0}; no_such_directive on; }");
    let err = nginx
        .test_config()
        .expect_err("nginx -t rejects an unknown directive");
    assert!(err.contains("no_such_directive"), "{err}");
    let err = nginx
        .try_reload()
        .expect_err("the reload cannot take effect");
    assert!(
        err.contains("no_such_directive"),
        "the error quotes nginx: {err}"
    );
    assert!(nginx.is_running());
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "still here");
}

#[test]
fn start_with_a_broken_config_fails_with_nginx_words() {
    let mut nginx = NginxSandbox::new();
    nginx.alloc_port();
    nginx.write_http_conf("server { listen 127.0.0.1:{port.0} }");
    let err = nginx.try_start().expect_err("nginx refuses to start");
    assert!(err.contains("nginx exited at start"), "{err}");
    assert!(err.contains("unexpected \"}\""), "{err}");
    assert!(!nginx.is_running());
}

#[test]
fn drop_stops_master_and_workers_and_frees_the_port() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    nginx.write_http_conf(&two_sites("x"));
    nginx.start();
    let mut pids = nginx.workers();
    pids.push(nginx.master_pid().unwrap());
    let prefix = nginx.prefix().to_path_buf();
    drop(nginx);

    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        let alive = state.is_some_and(|s| s != "Z");
        assert!(!alive, "process {pid} survived the sandbox: {stat}");
    }
    assert!(
        http_get(port, "a.test", "/").is_err(),
        "nothing listens on {port} any more"
    );
    assert!(!prefix.exists(), "the prefix is removed");
}

#[test]
fn free_ports_are_high_and_never_handed_out_twice() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let unique: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(unique.len(), ports.len());
    assert!(ports.iter().all(|p| *p >= 1024 && *p != 80 && *p != 443));
}

#[test]
fn nginx_is_found_when_usr_sbin_is_not_in_path() {
    let found = nginx_binary_in(Some(OsString::from("/nonexistent-dir")));
    assert_eq!(found, PathBuf::from("/usr/sbin/nginx"));
    let found = nginx_binary_in(None);
    assert!(found.is_file());
}

#[test]
fn render_fills_prefix_and_ports() {
    let mut nginx = NginxSandbox::new();
    let p0 = nginx.alloc_port();
    let p1 = nginx.alloc_port();
    let text = nginx.render("root {prefix}/www; listen {port.0}; listen {port.1}; set $x {y};");
    let prefix = nginx.prefix().display().to_string();
    assert_eq!(
        text,
        format!("root {prefix}/www; listen {p0}; listen {p1}; set $x {{y}};")
    );
}

#[test]
fn a_config_without_its_own_pid_file_is_refused_before_nginx_runs() {
    let mut nginx = NginxSandbox::new();
    nginx.alloc_port();
    nginx.write_conf(&nginx.render("events {}\nhttp { server { listen 127.0.0.1:{port.0}; } }\n"));
    let err = nginx.try_start().expect_err("no pid directive");
    assert!(err.contains("pid run/nginx.pid;"), "{err}");
    assert!(nginx.master_pid().is_none());
}
