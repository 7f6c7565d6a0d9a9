//! The nginx model against real configuration trees: every directory under tests/fixtures with an
//! `nginx.conf` is a case. A valid case has `expected.json` (what `discover --json` says, paths
//! relative to the case); a malformed one (`bad-*`) has `expected-error.txt` (the exact message,
//! `{dir}` standing for the case's directory). Each case is also checked against the real nginx:
//! `nginx -t` must agree on valid/invalid, and `nginx -T` must list the same files in the same order.
//!
//! `UPDATE_EXPECTED=1 cargo test --test it fixtures::` rewrites the expected files (review the diff!).

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use enc365_nginx::commands::discover::{to_json, write_json};
use enc365_nginx::discovery;
use enc365_nginx::nginx::tree::Config;

/// 2036-11-01T00:00:00Z: fixed, so certificate ages in the fixtures never drift.
const NOW: i64 = 2_109_110_400;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("nginx.conf").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "fixture directories are missing: {dirs:?}"
    );
    dirs
}

fn is_malformed(dir: &Path) -> bool {
    dir.file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("bad-")
}

fn update() -> bool {
    std::env::var_os("UPDATE_EXPECTED").is_some()
}

#[test]
fn discovery_of_every_valid_fixture_matches_its_expected_json() {
    let mut failures = Vec::new();
    for dir in cases().into_iter().filter(|d| !is_malformed(d)) {
        let conf = dir.join("nginx.conf");
        let found = discovery::discover(&conf, NOW, 30)
            .unwrap_or_else(|e| panic!("{} should parse: {e}", dir.display()));
        let mut got = serde_json::to_value(to_json(conf.display().to_string(), &found)).unwrap();
        got.as_object_mut().unwrap().remove("nginx_conf");
        common::relativize(&mut got, &dir.display().to_string());
        let expected_path = dir.join("expected.json");
        if update() {
            fs::write(
                &expected_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: serde_json::Value =
            serde_json::from_slice(&fs::read(&expected_path).unwrap()).unwrap();
        if got != expected {
            failures.push(format!(
                "{}:\n{}",
                dir.display(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "discovery differs from expected.json:\n{}",
        failures.join("\n")
    );
}

/// `discover --json` writes its document by hand; on every fixture it is serde_json's pretty
/// printing of the same document, byte for byte.
#[test]
fn the_written_json_is_serde_json_byte_for_byte_on_every_fixture() {
    let mut checked = 0;
    for dir in cases().into_iter().filter(|d| !is_malformed(d)) {
        let conf = dir.join("nginx.conf");
        let found = discovery::discover(&conf, NOW, 30).unwrap();
        let name = conf.display().to_string();
        let mut written = Vec::new();
        write_json(&name, &found, &mut written).unwrap();
        let expected = serde_json::to_string_pretty(&to_json(name, &found)).unwrap() + "\n";
        assert_eq!(
            String::from_utf8(written).unwrap(),
            expected,
            "{}",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked > 10, "only {checked} fixtures");
}

#[test]
fn every_malformed_fixture_fails_with_the_exact_message() {
    for dir in cases().into_iter().filter(|d| is_malformed(d)) {
        let err = discovery::discover(&dir.join("nginx.conf"), NOW, 30)
            .map(|_| ())
            .expect_err(&format!("{} must not parse", dir.display()));
        let message = err.to_string().replace(&dir.display().to_string(), "{dir}");
        let expected_path = dir.join("expected-error.txt");
        if update() {
            fs::write(&expected_path, format!("{message}\n")).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap();
        assert_eq!(message, expected.trim_end(), "{}", dir.display());
    }
}

#[test]
fn nginx_t_agrees_on_which_fixtures_are_valid() {
    for dir in cases() {
        let out = common::run_nginx(&dir, &dir.join("nginx.conf"), &["-t", "-q"]);
        assert_eq!(
            out.status.success(),
            !is_malformed(&dir),
            "nginx -t and the fixture name disagree on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn file_lists_equal_the_files_nginx_dumps() {
    for dir in cases().into_iter().filter(|d| !is_malformed(d)) {
        let conf = dir.join("nginx.conf");
        let config = Config::load(&conf).unwrap();
        let ours: Vec<String> = config.paths().map(|p| p.display().to_string()).collect();
        assert_eq!(
            ours,
            common::nginx_dump_files(&dir, &conf),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn untouched_files_render_byte_identical() {
    for dir in cases().into_iter().filter(|d| !is_malformed(d)) {
        let config = Config::load(&dir.join("nginx.conf")).unwrap();
        for file in &config.files {
            assert_eq!(file.render(), file.bytes, "{}", file.path.display());
        }
    }
}

/// The tree the Debian package installed on this machine (the tests' setup installs it).
#[test]
fn the_installed_debian_tree_reads_like_nginx_reads_it() {
    let conf = Path::new("/etc/nginx/nginx.conf");
    assert!(
        conf.is_file(),
        "nginx is not installed; run scripts/deps.sh"
    );
    let config = Config::load(conf).unwrap();
    let ours: Vec<String> = config.paths().map(|p| p.display().to_string()).collect();
    assert_eq!(
        ours,
        common::nginx_dump_files(Path::new("/usr/share/nginx"), conf)
    );
    let found = discovery::discover(conf, NOW, 30).unwrap();
    assert!(found.servers.iter().any(|s| s.server_names == ["_"]));
}

/// An unreadable certificate file cannot be a fixture (nginx -t rejects it), so this case builds
/// its own tree: a certificate that is not PEM, and one that does not exist.
#[test]
fn an_unreadable_certificate_needs_replacing() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("garbage.crt"), b"not a certificate\n").unwrap();
    fs::write(
        tmp.path().join("nginx.conf"),
        "events {}\nhttp {\n\
         server { listen 443 ssl; server_name a.example.com; ssl_certificate garbage.crt; }\n\
         server { listen 443 ssl; server_name b.example.com; ssl_certificate missing.crt; }\n}\n",
    )
    .unwrap();
    let found = discovery::discover(&tmp.path().join("nginx.conf"), NOW, 30).unwrap();
    let reasons: Vec<&str> = found
        .assessments
        .iter()
        .map(|a| a.reason.as_str())
        .collect();
    assert!(found.assessments.iter().all(|a| a.needs_certificate));
    assert!(
        reasons[0].starts_with("certificate unreadable: ") && reasons[0].contains("no valid PEM")
    );
    assert!(
        reasons[1].starts_with("certificate unreadable: ") && reasons[1].contains("No such file")
    );
}
