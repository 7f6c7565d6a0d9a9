//! The HTTPS edit plan against a real nginx: after the planned splices, `nginx -t` passes, a reload
//! takes them, a TLS handshake with SNI shows the new certificate for every name, and the only
//! lines that changed are marked as ours (or are the old certificate lines we replaced).

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{NginxSandbox, TestCert};
use enc365_nginx::nginx::control::{NginxBinary, NginxPaths};
use enc365_nginx::nginx::edit::{self, is_managed_line};
use enc365_nginx::nginx::https::{self, HttpsTarget};
use enc365_nginx::nginx::sites;
use enc365_nginx::nginx::tree::Config;
use enc365_nginx::verify;

#[test]
fn planned_edits_give_plain_and_tls_sites_the_new_certificate() {
    let mut sb = NginxSandbox::new();
    let http_port = sb.alloc_port();
    let https_port = sb.alloc_port();
    let old = TestCert::self_signed(&["b.example.com"]);
    old.write_into(&sb, "certs/old");
    sb.write_file(
        "tls.conf",
        "ssl_protocols TLSv1.2 TLSv1.3;\nssl_session_cache shared:T:1m;\n",
    );
    sb.write_http_conf(
        "    server {\n\
         \x20       listen 127.0.0.1:{port.0};\n\
         \x20       server_name a.example.com www.a.example.com;\n\
         \x20       return 200 'plain';\n\
         \x20   }\n\
         \x20   server {\n\
         \x20       listen 127.0.0.1:{port.1} ssl;\n\
         \x20       server_name b.example.com;\n\
         \x20       ssl_certificate {prefix}/certs/old/fullchain.pem; # managed by Certbot\n\
         \x20       ssl_certificate_key {prefix}/certs/old/privkey.pem;\n\
         \x20   }\n",
    );
    sb.start();
    let addr: SocketAddr = format!("127.0.0.1:{https_port}").parse().unwrap();
    let before = verify::handshake(addr, "b.example.com", Duration::from_secs(5)).unwrap();
    assert_eq!(before.der, old.der);

    let new_a = TestCert::self_signed(&["a.example.com", "www.a.example.com"]);
    let (a_cert, a_key) = new_a.write_into(&sb, "live/a");
    let new_b = TestCert::self_signed(&["b.example.com"]);
    let (b_cert, b_key) = new_b.write_into(&sb, "live/b");

    let config = Config::load(&sb.conf_path()).unwrap();
    let servers = sites::servers(&config).unwrap();
    let snippet = sb.path("tls.conf");
    let mut edits = https::plan_server(
        &config,
        &servers[0],
        &HttpsTarget {
            certificate: &a_cert,
            key: &a_key,
            https_port,
            tls_snippet: Some(&snippet),
            redirect: false,
            hsts: false,
            bound_hosts: &https::bound_hosts(&servers, https_port),
            dual_stack_bound: https::dual_stack_on(&servers, https_port),
            add_names: &[],
        },
    )
    .unwrap();
    edits.extend(
        https::plan_server(
            &config,
            &servers[1],
            &HttpsTarget {
                certificate: &b_cert,
                key: &b_key,
                https_port,
                tls_snippet: Some(&snippet),
                redirect: false,
                hsts: false,
                bound_hosts: &https::bound_hosts(&servers, https_port),
                dual_stack_bound: https::dual_stack_on(&servers, https_port),
                add_names: &[],
            },
        )
        .unwrap(),
    );
    let old_bytes = config.files[0].bytes.clone();
    let per_file = https::by_file(edits);
    assert_eq!(per_file.len(), 1);
    let new_bytes = edit::apply(&old_bytes, &per_file[&0]).unwrap();
    std::fs::write(sb.conf_path(), &new_bytes).unwrap();

    let nginx = NginxBinary::locate(Some(sb.nginx_bin().to_path_buf()));
    let paths = NginxPaths {
        conf: sb.conf_path(),
        prefix: Some(sb.prefix().to_path_buf()),
    };
    let outcome = nginx.test(&paths).unwrap();
    assert!(outcome.ok, "nginx -t: {}", outcome.output);
    sb.reload();

    let deadline = Instant::now() + Duration::from_secs(10);
    for (name, cert) in [
        ("a.example.com", &new_a),
        ("www.a.example.com", &new_a),
        ("b.example.com", &new_b),
    ] {
        let served =
            verify::wait_for_leaf(addr, name, &verify::fingerprint(&cert.der), deadline).unwrap();
        assert_eq!(served.der, cert.der, "{name}");
    }
    // Plain HTTP still answers as before.
    let plain = common::http_get(http_port, "a.example.com", "/").unwrap();
    assert_eq!(plain.text(), "plain");

    assert_only_managed_lines_added(&old_bytes, &new_bytes);
}

/// Every line of `new` that is not in `old` is marked as ours; every line of `old` that is gone
/// was a certificate line.
fn assert_only_managed_lines_added(old: &[u8], new: &[u8]) {
    let old_lines: Vec<&[u8]> = old.split_inclusive(|b| *b == b'\n').collect();
    let new_lines: Vec<&[u8]> = new.split_inclusive(|b| *b == b'\n').collect();
    for line in &new_lines {
        assert!(
            old_lines.contains(line) || is_managed_line(line),
            "unmarked new line: {}",
            String::from_utf8_lossy(line)
        );
    }
    for line in &old_lines {
        let text = String::from_utf8_lossy(line);
        assert!(
            new_lines.contains(line) || text.trim_start().starts_with("ssl_certificate"),
            "a line we should not have touched is gone: {text}"
        );
    }
}

#[test]
fn a_certificate_set_in_a_shared_snippet_is_refused_not_edited() {
    let mut sb = NginxSandbox::new();
    sb.alloc_port();
    let old = TestCert::self_signed(&["c.example.com"]);
    old.write_into(&sb, "certs/old");
    sb.write_file(
        "shared-tls.conf",
        sb.render(
            "ssl_certificate {prefix}/certs/old/fullchain.pem;\nssl_certificate_key {prefix}/certs/old/privkey.pem;\n",
        ),
    );
    sb.write_http_conf(
        "server { listen 127.0.0.1:{port.0} ssl; server_name c.example.com; include shared-tls.conf; }",
    );
    let config = Config::load(&sb.conf_path()).unwrap();
    let servers = sites::servers(&config).unwrap();
    let err = https::plan_server(
        &config,
        &servers[0],
        &HttpsTarget {
            certificate: Path::new("/x/fullchain.pem"),
            key: Path::new("/x/privkey.pem"),
            https_port: 443,
            tls_snippet: None,
            redirect: false,
            hsts: false,
            bound_hosts: &https::bound_hosts(&servers, 443),
            dual_stack_bound: https::dual_stack_on(&servers, 443),
            add_names: &[],
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("shared-tls.conf"), "{err}");
}
