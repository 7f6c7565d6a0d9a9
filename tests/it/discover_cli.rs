//! `enc365-nginx discover` as users and panels run it: exit codes, JSON on stdout only, errors that
//! name `file:line:column`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn discover(conf: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .arg("discover")
        .arg("--nginx-conf")
        .arg(conf)
        .args(extra)
        .env("ENC365_NOW", "2109110400")
        .output()
        .unwrap()
}

#[test]
fn json_output_is_one_object_with_the_documented_fields() {
    let out = discover(&fixture("tls-states/nginx.conf"), &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["nginx_conf"],
        fixture("tls-states/nginx.conf").display().to_string()
    );
    assert_eq!(doc["errors"], serde_json::json!([]));
    let first = &doc["servers"][0];
    for key in [
        "file",
        "line",
        "listen",
        "server_name",
        "root",
        "ssl_certificate",
        "ssl_certificate_key",
        "names",
        "needs_certificate",
        "reason",
    ] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
    let needs: Vec<bool> = doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["needs_certificate"].as_bool().unwrap())
        .collect();
    assert_eq!(needs, [false, false, true, true, true, false]);
}

#[test]
fn the_table_names_every_server_and_the_verdict() {
    let out = discover(&fixture("tls-states/nginx.conf"), &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("SERVER"), "{text}");
    assert!(text.contains("nginx.conf:23"), "{text}");
    assert!(
        text.contains("NEEDS CERT: certificate expires in 18 days"),
        "{text}"
    );
    assert!(
        text.contains("6 server blocks, 3 need a certificate."),
        "{text}"
    );
}

#[test]
fn a_malformed_config_exits_2_and_names_the_place() {
    let conf = fixture("bad-missing-semicolon/nginx.conf");
    let out = discover(&conf, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "error: {}:5:5: unexpected \"}}\": expected \";\" to end the directive before it\n",
            conf.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = discover(&conf, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["line"], 5);
    assert_eq!(doc["errors"][0]["column"], 5);
    assert_eq!(doc["servers"], serde_json::json!([]));
}

#[test]
fn a_missing_main_file_exits_2() {
    let out = discover(Path::new("/nonexistent/nginx.conf"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("could not read the main configuration file"),
        "{err}"
    );
}

#[test]
fn a_bad_flag_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["discover", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_relative_nginx_conf_resolves_against_the_working_directory() {
    let out = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["discover", "--json", "--nginx-conf", "symlinks/nginx.conf"])
        .current_dir(fixture(""))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["servers"].as_array().unwrap().len(), 3);
}

/// A main file whose `http` block includes `target` on line 3 (the path at column 11).
fn main_including(dir: &Path, target: &str) -> PathBuf {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!("events {{}}\nhttp {{\n  include {target};\n}}\n"),
    )
    .unwrap();
    conf
}

#[test]
fn an_included_fifo_exits_2_naming_the_include_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.conf");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let conf = main_including(dir.path(), "pipe.conf");
    let out = discover(&conf, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["file"], conf.display().to_string());
    assert_eq!(
        (
            doc["errors"][0]["line"].as_u64(),
            doc["errors"][0]["column"].as_u64()
        ),
        (Some(3), Some(11))
    );
    let message = doc["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("it is a FIFO (named pipe), not a regular file"),
        "{message}"
    );
}

#[test]
fn an_included_dev_zero_exits_2_naming_the_include_instead_of_reading_forever() {
    let dir = tempfile::tempdir().unwrap();
    let conf = main_including(dir.path(), "/dev/zero");
    let out = discover(&conf, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "error: {}:3:11: could not read included file /dev/zero: it is a character device, \
             not a regular file",
            conf.display()
        )),
        "{err}"
    );
}

/// The `GLIBC_TUNABLES` a `discover -vv` run said it ran with, read from its debug line.
fn tunables_of_run(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = (stderr.lines())
        .find(|l| l.contains("malloc settings (GLIBC_TUNABLES)"))
        .unwrap_or_else(|| panic!("no malloc settings line in:\n{stderr}"));
    let value = line.split("tunables=").nth(1).unwrap_or_default();
    value.trim().to_string()
}

#[test]
fn discover_starts_again_with_malloc_in_huge_pages_and_prints_the_same_document() {
    let conf = fixture("tls-states/nginx.conf");
    let run = |tunables: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
        command
            .args(["discover", "--json", "-vv", "--nginx-conf"])
            .arg(&conf)
            .env("ENC365_NOW", "2109110400")
            .env_remove("GLIBC_TUNABLES")
            .env_remove("ENC365_LOG")
            .env_remove("RUST_LOG");
        if let Some(t) = tunables {
            command.env("GLIBC_TUNABLES", t);
        }
        let out = command.output().unwrap();
        crate::common::host::expect_exit(&out, 0);
        out
    };
    let started_again = run(None);
    let on_request = enc365_nginx::heap::huge_pages_on_request();
    let expected = if on_request {
        "glibc.malloc.hugetlb=1"
    } else {
        ""
    };
    assert_eq!(tunables_of_run(&started_again), expected);
    // Started again from its own file, the process keeps its name (`ps`, `pgrep enc365-nginx`).
    let stderr = String::from_utf8_lossy(&started_again.stderr);
    assert!(stderr.contains("process=\"enc365-nginx\""), "{stderr}");
    // Other tunables are kept beside it.
    let with_other = run(Some("glibc.malloc.arena_test=4"));
    let expected = if on_request {
        "glibc.malloc.arena_test=4:glibc.malloc.hugetlb=1"
    } else {
        "glibc.malloc.arena_test=4"
    };
    assert_eq!(tunables_of_run(&with_other), expected);
    // A user's own choice is kept, and the program is not started again.
    let declined = run(Some("glibc.malloc.hugetlb=0"));
    assert_eq!(tunables_of_run(&declined), "glibc.malloc.hugetlb=0");
    assert_eq!(started_again.stdout, declined.stdout);
    assert_eq!(with_other.stdout, declined.stdout);
}
