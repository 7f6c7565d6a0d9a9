//! The groundwork pieces in the order the `auto` pipeline uses them, against a real nginx: lock,
//! transaction backup, splices, `nginx -t`, one reload, handshake proof, commit — and the failure
//! paths, where restore must leave every file byte-identical and nginx serving as before.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{NginxSandbox, TestCert, http_get};
use enc365_nginx::nginx::control::{ControlError, NginxBinary, NginxPaths, ReloadMethod};
use enc365_nginx::nginx::edit::{self, Splice};
use enc365_nginx::store::{RunLock, Transaction, TxnState, write_atomic};
use enc365_nginx::verify::{handshake, pem_leaf_fingerprint, wait_for_leaf};

/// A site file the way hosts have them: CRLF, a Latin-1 comment, plain HTTP only.
const SITE: &[u8] = b"# boutique caf\xe9\r\nserver {\r\n    listen 127.0.0.1:{port.0};\r\n    \
    server_name shop.test;\r\n    location / { return 200 \"shop\"; }\r\n}\r\n";

struct Host {
    nginx: NginxSandbox,
    http: u16,
    https: u16,
    site: std::path::PathBuf,
    state: std::path::PathBuf,
}

fn host() -> Host {
    let mut nginx = NginxSandbox::new();
    let http = nginx.alloc_port();
    let https = nginx.alloc_port();
    // Not render(): that goes through UTF-8. The exact bytes, with the port filled in.
    let site = nginx.write_file(
        "sites/shop.conf",
        replace_bytes(SITE, b"{port.0}", http.to_string().as_bytes()),
    );
    nginx.write_http_conf("include sites/*.conf;");
    nginx.start();
    let state = nginx.path("state");
    Host {
        nginx,
        http,
        https,
        site,
        state,
    }
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .unwrap();
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

fn binary(h: &Host) -> NginxBinary {
    NginxBinary::locate(Some(h.nginx.nginx_bin().to_path_buf()))
}

fn paths(h: &Host) -> NginxPaths {
    NginxPaths {
        conf: h.nginx.conf_path(),
        prefix: Some(h.nginx.prefix().to_path_buf()),
    }
}

/// The splices that turn the site into an HTTPS site with the certificate in `live_dir`.
fn tls_splices(bytes: &[u8], https: u16, live_dir: &str) -> Vec<Splice> {
    let at = bytes.windows(11).position(|w| w == b"server_name").unwrap();
    let lines = [
        format!("listen 127.0.0.1:{https} ssl;"),
        format!("ssl_certificate {live_dir}/fullchain.pem;"),
        format!("ssl_certificate_key {live_dir}/privkey.pem;"),
    ];
    lines
        .iter()
        .map(|line| Splice::after_line(bytes, at, line).unwrap())
        .collect()
}

/// Writes a certificate + key under the prefix through the transaction.
fn install_cert(h: &Host, txn: &mut Transaction, live_dir: &str, cert: &TestCert) {
    for (name, bytes, mode) in [
        ("fullchain.pem", &cert.cert_pem, 0o644),
        ("privkey.pem", &cert.key_pem, 0o600),
    ] {
        let path = h.nginx.path(&format!("{live_dir}/{name}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        txn.backup(&path).unwrap();
        write_atomic(&path, bytes.as_bytes(), mode).unwrap();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn install_reload_and_prove_then_commit() {
    let h = host();
    let _lock = RunLock::acquire(&h.state).unwrap();
    let original = read(&h.site);
    let cert = TestCert::self_signed(&["shop.test"]);

    let mut txn = Transaction::begin(&h.state, "auto: shop.test").unwrap();
    install_cert(&h, &mut txn, "live/shop.test", &cert);
    txn.backup(&h.site).unwrap();
    let edited = edit::apply(
        &original,
        &tls_splices(&original, h.https, "live/shop.test"),
    )
    .unwrap();
    let diff = edit::unified_diff(&original, &edited, "a/shop.conf", "b/shop.conf");
    let diff_lines: Vec<&[u8]> = diff.split_inclusive(|b| *b == b'\n').collect();
    let added = diff_lines
        .iter()
        .filter(|l| l.starts_with(b"+") && !l.starts_with(b"+++"));
    let removed = diff_lines
        .iter()
        .filter(|l| l.starts_with(b"-") && !l.starts_with(b"---"));
    assert_eq!(
        (added.count(), removed.count()),
        (3, 0),
        "{}",
        String::from_utf8_lossy(&diff)
    );
    write_atomic(&h.site, &edited, 0o644).unwrap();

    let tested = binary(&h).test(&paths(&h)).unwrap();
    assert!(tested.ok, "{}", tested.output);
    binary(&h)
        .reload(
            &paths(&h),
            &ReloadMethod::Signal,
            &h.nginx.pid_file(),
            Duration::from_secs(10),
        )
        .unwrap();
    let expected = pem_leaf_fingerprint(cert.cert_pem.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    wait_for_leaf(addr(h.https), "shop.test", &expected, deadline).unwrap();
    txn.commit().unwrap();

    assert_eq!(
        http_get(h.http, "shop.test", "/").unwrap().text(),
        "shop",
        "HTTP still served"
    );
    let lines: Vec<&[u8]> = edited.split_inclusive(|b| *b == b'\n').collect();
    assert_eq!(lines.iter().filter(|l| edit::is_managed_line(l)).count(), 3);
    assert!(
        lines.iter().all(|l| l.ends_with(b"\r\n")),
        "CRLF kept on every line"
    );
    let unmanaged: Vec<u8> = lines
        .iter()
        .filter(|l| !edit::is_managed_line(l))
        .flat_map(|l| l.to_vec())
        .collect();
    assert_eq!(unmanaged, original, "every original byte is where it was");
    assert_eq!(
        Transaction::list(&h.state).unwrap()[0].state,
        TxnState::Committed
    );
}

#[test]
fn nginx_t_failure_restores_every_file_byte_identical() {
    let h = host();
    let original = read(&h.site);
    let mut txn = Transaction::begin(&h.state, "auto: shop.test").unwrap();
    // The key does not match the certificate: nginx -t refuses.
    let cert = TestCert::self_signed(&["shop.test"]);
    let wrong_key = TestCert::self_signed(&["shop.test"]).key_pem;
    install_cert(
        &h,
        &mut txn,
        "live/shop.test",
        &TestCert {
            key_pem: wrong_key,
            ..cert
        },
    );
    txn.backup(&h.site).unwrap();
    let edited = edit::apply(
        &original,
        &tls_splices(&original, h.https, "live/shop.test"),
    )
    .unwrap();
    write_atomic(&h.site, &edited, 0o644).unwrap();

    let tested = binary(&h).test(&paths(&h)).unwrap();
    assert!(!tested.ok);
    assert!(
        tested.output.contains("key values mismatch"),
        "{}",
        tested.output
    );
    txn.restore().unwrap();

    assert_eq!(read(&h.site), original);
    assert!(!h.nginx.path("live/shop.test/fullchain.pem").exists());
    assert!(!h.nginx.path("live/shop.test/privkey.pem").exists());
    assert!(binary(&h).test(&paths(&h)).unwrap().ok);
    assert_eq!(http_get(h.http, "shop.test", "/").unwrap().text(), "shop");
}

#[test]
fn a_reload_nginx_cannot_apply_is_rolled_back_and_the_old_certificate_keeps_serving() {
    let h = host();
    // First install succeeds.
    let first = TestCert::self_signed(&["shop.test"]);
    let mut txn = Transaction::begin(&h.state, "first").unwrap();
    install_cert(&h, &mut txn, "live/shop.test", &first);
    txn.backup(&h.site).unwrap();
    let original = read(&h.site);
    let edited = edit::apply(
        &original,
        &tls_splices(&original, h.https, "live/shop.test"),
    )
    .unwrap();
    write_atomic(&h.site, &edited, 0o644).unwrap();
    let reload = |h: &Host| {
        binary(h).reload(
            &paths(h),
            &ReloadMethod::Signal,
            &h.nginx.pid_file(),
            Duration::from_secs(3),
        )
    };
    reload(&h).unwrap();
    txn.commit().unwrap();
    let installed = read(&h.site);

    // Second change: a new certificate plus a listen on a port something else holds. nginx -t
    // passes (it does not bind), the reload cannot be applied.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let mut txn = Transaction::begin(&h.state, "second").unwrap();
    install_cert(
        &h,
        &mut txn,
        "live/shop.test",
        &TestCert::self_signed(&["shop.test"]),
    );
    txn.backup(&h.site).unwrap();
    let at = installed
        .windows(11)
        .position(|w| w == b"server_name")
        .unwrap();
    let splice = Splice::after_line(&installed, at, &format!("listen 127.0.0.1:{taken};")).unwrap();
    write_atomic(&h.site, &edit::apply(&installed, &[splice]).unwrap(), 0o644).unwrap();
    assert!(binary(&h).test(&paths(&h)).unwrap().ok);
    let err = reload(&h).unwrap_err();
    assert!(matches!(err, ControlError::NotApplied { .. }), "{err}");

    txn.restore().unwrap();
    reload(&h).unwrap();
    assert_eq!(read(&h.site), installed);
    assert_eq!(
        read(&h.nginx.path("live/shop.test/fullchain.pem")),
        first.cert_pem.as_bytes()
    );
    let served = handshake(addr(h.https), "shop.test", Duration::from_secs(5)).unwrap();
    assert_eq!(
        served.der, first.der,
        "the first certificate is still served"
    );
}
