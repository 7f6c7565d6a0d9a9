//! `verify`: a real TLS handshake with SNI against a real nginx reads back the certificate each name
//! serves — self-signed and expired ones included — and `wait_for_leaf` sees a certificate swapped
//! in by a reload.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{NginxSandbox, TestCert, free_port};
use enc365_nginx::verify::{
    VerifyError, fingerprint, handshake, pem_leaf_fingerprint, wait_for_leaf,
};

/// One TLS server block per (name, cert dir) on `{port.0}`.
fn tls_sites(sites: &[(&str, &str)]) -> String {
    sites
        .iter()
        .map(|(name, dir)| {
            format!(
                "server {{\n    listen 127.0.0.1:{{port.0}} ssl;\n    server_name {name};\n    \
                 ssl_certificate {dir}/fullchain.pem;\n    ssl_certificate_key {dir}/privkey.pem;\n    \
                 location / {{ return 200 \"{name}\"; }}\n}}\n"
            )
        })
        .collect()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn handshake_reads_the_certificate_served_for_each_name() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    let a = TestCert::self_signed(&["a.test", "www.a.test"]);
    let b = TestCert::expired(&["b.test"]);
    a.write_into(&nginx, "certs/a");
    b.write_into(&nginx, "certs/b");
    nginx.write_http_conf(&tls_sites(&[("a.test", "certs/a"), ("b.test", "certs/b")]));
    nginx.start();

    let served = handshake(addr(port), "www.a.test", Duration::from_secs(5)).unwrap();
    assert_eq!(served.der, a.der);
    assert_eq!(served.fingerprint, fingerprint(&a.der));
    assert_eq!(
        served.fingerprint,
        pem_leaf_fingerprint(a.cert_pem.as_bytes()).unwrap()
    );
    assert_eq!(served.names, ["a.test", "www.a.test"]);
    assert_eq!(served.chain, vec![a.der.clone()]);

    let served = handshake(addr(port), "b.test", Duration::from_secs(5)).unwrap();
    assert_eq!(
        served.der, b.der,
        "an expired certificate is read, not refused"
    );
    assert_eq!(served.not_after.year(), 2020);
    assert!(served.not_after < time::OffsetDateTime::now_utc());

    // An unknown name gets the default server (the first block): that is what we must detect.
    let served = handshake(addr(port), "other.test", Duration::from_secs(5)).unwrap();
    assert_eq!(served.der, a.der);
}

#[test]
fn wait_for_leaf_sees_the_certificate_swapped_in_by_a_reload() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    let old = TestCert::self_signed(&["shop.test"]);
    let new = TestCert::self_signed(&["shop.test"]);
    old.write_into(&nginx, "live/shop.test");
    nginx.write_http_conf(&tls_sites(&[("shop.test", "live/shop.test")]));
    nginx.start();
    let before = handshake(addr(port), "shop.test", Duration::from_secs(5)).unwrap();
    assert_eq!(before.der, old.der);

    new.write_into(&nginx, "live/shop.test");
    let expected = fingerprint(&new.der);
    std::thread::scope(|s| {
        // Wait first, reload a moment later: the first handshakes must see the old certificate
        // and be retried.
        let waiter = s.spawn(|| {
            let started = Instant::now();
            let deadline = started + Duration::from_secs(15);
            wait_for_leaf(addr(port), "shop.test", &expected, deadline)
                .map(|c| (c, started.elapsed()))
        });
        std::thread::sleep(Duration::from_millis(300));
        nginx.reload();
        let (served, waited) = waiter.join().unwrap().unwrap();
        assert_eq!(served.der, new.der);
        assert!(
            waited >= Duration::from_millis(250),
            "the old certificate was seen and retried"
        );
    });
    // Colon-separated upper-case fingerprints (openssl's style) are accepted too.
    let openssl_style: Vec<String> = expected
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect();
    let served = wait_for_leaf(
        addr(port),
        "shop.test",
        &openssl_style.join(":"),
        Instant::now() + Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(served.der, new.der);
}

#[test]
fn wait_for_leaf_reports_what_is_served_when_the_new_one_never_comes() {
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    let old = TestCert::self_signed(&["shop.test"]);
    old.write_into(&nginx, "live/shop.test");
    nginx.write_http_conf(&tls_sites(&[("shop.test", "live/shop.test")]));
    nginx.start();

    let wanted = "00".repeat(32);
    let started = Instant::now();
    let err = wait_for_leaf(
        addr(port),
        "shop.test",
        &wanted,
        started + Duration::from_millis(800),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline is kept"
    );
    match &err {
        VerifyError::NotServed {
            expected,
            last_seen,
            ..
        } => {
            assert_eq!(expected, &wanted);
            assert_eq!(last_seen, &format!("sha256 {}", fingerprint(&old.der)));
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(
        err.to_string().contains("did the reload take effect"),
        "{err}"
    );
}

#[test]
fn handshake_fails_clearly_on_closed_port_and_plain_http() {
    let closed = free_port();
    let err = handshake(addr(closed), "a.test", Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, VerifyError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("is nginx running"), "{err}");

    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    nginx.write_http_conf("server { listen 127.0.0.1:{port.0}; return 200 plain; }");
    nginx.start();
    let started = Instant::now();
    let err = handshake(addr(port), "a.test", Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, VerifyError::Handshake { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a plain HTTP port does not hang us"
    );
}

#[test]
fn a_server_that_takes_neither_the_first_group_nor_the_first_suite_still_answers() {
    // The check offers X25519 and AES-128-GCM first; a server taking only P-384 and AES-256-GCM
    // asks for that share (a HelloRetryRequest) and picks the suite it takes.
    let mut nginx = NginxSandbox::new();
    let port = nginx.alloc_port();
    let cert = TestCert::self_signed(&["strict.test"]);
    cert.write_into(&nginx, "certs/strict");
    let site = tls_sites(&[("strict.test", "certs/strict")]).replacen(
        "ssl_certificate ",
        "ssl_ecdh_curve secp384r1;\n    \
         ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;\n    ssl_certificate ",
        1,
    );
    nginx.write_http_conf(&site);
    nginx.start();
    let served = handshake(addr(port), "strict.test", Duration::from_secs(5)).unwrap();
    assert_eq!(served.der, cert.der);
}
