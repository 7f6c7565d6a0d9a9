//! `nginx::control` against a real nginx: reload by signal and by a configured command, nginx's
//! own words when it refuses, a reload nginx accepts but cannot apply, the running check, and the
//! HTTP/2 syntax the installed nginx really accepts.

use crate::common;

use std::net::TcpListener;
use std::time::Duration;

use common::{NginxSandbox, TestCert, http_get};
use enc365_nginx::nginx::control::{
    ControlError, Http2Syntax, NginxBinary, NginxPaths, ReloadMethod, master_pid,
};

fn site(body: &str) -> String {
    format!("server {{ listen 127.0.0.1:{{port.0}}; location / {{ return 200 \"{body}\"; }} }}")
}

fn binary(nginx: &NginxSandbox) -> NginxBinary {
    NginxBinary::locate(Some(nginx.nginx_bin().to_path_buf()))
}

fn paths(nginx: &NginxSandbox) -> NginxPaths {
    NginxPaths {
        conf: nginx.conf_path(),
        prefix: Some(nginx.prefix().to_path_buf()),
    }
}

fn started(body: &str) -> (NginxSandbox, u16) {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    nginx.write_http_conf(&site(body));
    nginx.start();
    (nginx, port)
}

const APPLY: Duration = Duration::from_secs(10);

#[test]
fn reload_by_signal_applies_the_new_configuration() {
    let (nginx, port) = started("old");
    nginx.write_http_conf(&site("new"));
    binary(&nginx)
        .reload(
            &paths(&nginx),
            &ReloadMethod::Signal,
            &nginx.pid_file(),
            APPLY,
        )
        .expect("the reload is applied");
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "new");
}

#[test]
fn a_tested_reload_signals_by_the_pid_file_alone_and_applies_the_configuration() {
    let (nginx, port) = started("old");
    nginx.write_http_conf(&site("new"));
    // An nginx that records the configuration file each run is given.
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let args = dir.path().join("args");
    let wrapper = dir.path().join("nginx");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprev=\nfor a; do [ \"$prev\" = -c ] && cat \"$a\" >> {} && printf %s \"$a\" >> {}; prev=$a; done\nexec {} \"$@\"\n",
            seen.display(),
            args.display(),
            nginx.nginx_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    NginxBinary::locate(Some(wrapper))
        .reload_tested_within(
            &paths(&nginx),
            &ReloadMethod::Signal,
            &nginx.pid_file(),
            (APPLY, APPLY),
        )
        .expect("the reload is applied");
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "new");
    // `nginx -s reload` read a file naming the pid file, not the configuration with its sites.
    let read = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        read,
        format!("pid \"{}\";\nevents {{}}\n", nginx.pid_file().display())
    );
    // It was never a file on disk: nothing to leave behind in a shared directory when killed,
    // nothing another process's leftover could stand in the way of.
    let named = std::fs::read_to_string(&args).unwrap();
    assert!(named.starts_with("/proc/self/fd/"), "{named:?}");
}

#[test]
fn reload_reports_nginx_words_when_the_config_is_broken() {
    let (nginx, port) = started("old");
    nginx.write_http_conf("server { listen 127.0.0.1:{port.0}; bogus_directive 1; }");
    let err = binary(&nginx)
        .reload(
            &paths(&nginx),
            &ReloadMethod::Signal,
            &nginx.pid_file(),
            APPLY,
        )
        .unwrap_err();
    assert!(matches!(err, ControlError::ReloadFailed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("unknown directive \"bogus_directive\""),
        "{err}"
    );
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "old");
}

#[test]
fn a_reload_nginx_cannot_apply_is_reported() {
    let (mut nginx, port) = started("old");
    // nginx -s reload accepts this config, but the master cannot bind the port: it keeps the old
    // workers and logs the error.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    nginx.write_http_conf(&format!(
        "{}\nserver {{ listen 127.0.0.1:{taken_port}; }}",
        site("new")
    ));
    let err = binary(&nginx)
        .reload(
            &paths(&nginx),
            &ReloadMethod::Signal,
            &nginx.pid_file(),
            Duration::from_secs(2),
        )
        .unwrap_err();
    assert!(matches!(err, ControlError::NotApplied { .. }), "{err}");
    assert!(err.to_string().contains("error log"), "{err}");
    assert!(
        nginx.error_log().contains("Address already in use"),
        "{}",
        nginx.error_log()
    );
    assert!(nginx.is_running());
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "old");
}

#[test]
fn a_configured_reload_command_runs_as_argv_without_a_shell() {
    let (nginx, port) = started("old");
    nginx.write_http_conf(&site("new"));
    let mut argv = vec![nginx.nginx_bin().display().to_string()];
    for arg in nginx.nginx_args() {
        argv.push(arg.to_string_lossy().into_owned());
    }
    argv.extend(["-s".to_string(), "reload".to_string()]);
    let method = ReloadMethod::Command(argv);
    binary(&nginx)
        .reload(&paths(&nginx), &method, &nginx.pid_file(), APPLY)
        .unwrap();
    assert_eq!(http_get(port, "a.test", "/").unwrap().text(), "new");

    // A command that fails is reported with its own words and exit status.
    let failing = ReloadMethod::Command(vec![
        "sh".into(),
        "-c".into(),
        "echo panel says no >&2; exit 3".into(),
    ]);
    let err = binary(&nginx)
        .reload(&paths(&nginx), &failing, &nginx.pid_file(), APPLY)
        .unwrap_err();
    assert!(matches!(err, ControlError::ReloadFailed { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("panel says no") && text.contains("exit status: 3"),
        "{text}"
    );

    let missing = ReloadMethod::Command(vec!["/nonexistent/reload-web".into()]);
    let err = binary(&nginx)
        .reload(&paths(&nginx), &missing, &nginx.pid_file(), APPLY)
        .unwrap_err();
    assert!(matches!(err, ControlError::Spawn { .. }), "{err}");
}

#[test]
fn master_pid_tells_whether_nginx_runs() {
    let (mut nginx, _) = started("x");
    assert_eq!(master_pid(&nginx.pid_file()), nginx.master_pid());
    // A hand-started nginx is reloaded by signal, whatever systemd runs on this host.
    assert_eq!(
        ReloadMethod::detect(None, &nginx.pid_file()),
        ReloadMethod::Signal
    );
    let argv = vec!["/usr/local/bin/reload-web".to_string()];
    assert_eq!(
        ReloadMethod::detect(Some(&argv), &nginx.pid_file()),
        ReloadMethod::Command(argv)
    );

    let pid_file = nginx.pid_file();
    nginx.stop();
    assert_eq!(master_pid(&pid_file), None);
    let err = binary(&nginx)
        .reload(&paths(&nginx), &ReloadMethod::Signal, &pid_file, APPLY)
        .unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
    // A configured command may reload an nginx we cannot see: it still runs.
    let marker = nginx.path("reload-ran");
    let touch = ReloadMethod::Command(vec!["touch".into(), marker.display().to_string()]);
    binary(&nginx)
        .reload(&paths(&nginx), &touch, &pid_file, APPLY)
        .unwrap();
    assert!(marker.exists());

    // A stale pid file whose pid now belongs to another program is not a running nginx.
    let stale = nginx.write_file("run/stale.pid", format!("{}\n", std::process::id()));
    assert_eq!(master_pid(&stale), None);
    let garbage = nginx.write_file("run/garbage.pid", "not a pid\n");
    assert_eq!(master_pid(&garbage), None);
}

#[test]
fn http2_syntax_matches_what_the_installed_nginx_accepts() {
    let mut nginx = NginxSandbox::new();
    nginx.alloc_port();
    TestCert::self_signed(&["h2.test"]).write_into(&nginx, "certs");
    let version = binary(&nginx).version().unwrap();
    let syntax = version.http2_syntax();
    let conf = |listen_extra: &str, directive: &str| {
        format!(
            "server {{ listen 127.0.0.1:{{port.0}} ssl{listen_extra}; {directive} server_name h2.test; \
             ssl_certificate certs/fullchain.pem; ssl_certificate_key certs/privkey.pem; }}"
        )
    };
    let (ours, other) = match syntax {
        Http2Syntax::Directive => (conf("", "http2 on;"), conf(" http2", "")),
        Http2Syntax::ListenParameter => (conf(" http2", ""), conf("", "http2 on;")),
    };
    nginx.write_http_conf(&ours);
    let out = nginx
        .test_config()
        .expect("the syntax we choose passes nginx -t");
    assert!(
        !out.contains("deprecated"),
        "no deprecation warning with our choice: {out}"
    );
    nginx.write_http_conf(&other);
    match (syntax, nginx.test_config()) {
        (Http2Syntax::ListenParameter, Err(e)) => {
            assert!(e.contains("unknown directive \"http2\""), "{e}")
        }
        (Http2Syntax::Directive, Ok(out)) => assert!(out.contains("deprecated"), "{out}"),
        (s, r) => {
            panic!("nginx {version}: unexpected result for the other syntax than {s:?}: {r:?}")
        }
    }
}
