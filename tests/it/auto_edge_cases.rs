//! `auto`, `plan` and `renew` on configurations production hosts have (symlinked vhosts, CRLF
//! files, one-line blocks, `default_server` flags, shared snippets, user validation locations,
//! redirect-only blocks…), end to end: real nginx, the simulator in process, the real binary.
//!
//! Each case checks what a host admin expects: exit 0, every certifiable name serving the new
//! leaf by handshake, untouched files byte-identical, only managed lines added, and a second run
//! doing nothing — or a clear error with nothing changed.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::host::{Host, expect_exit, json, pem_fingerprint, served};
use enc365_nginx::nginx::edit::is_managed_line;
use enc365_sim::Faults;

/// A host whose http block is `body`, with `files` (prefix-relative path, template) written and
/// rendered before nginx is reloaded onto them, and `names` resolving to 127.0.0.1.
fn host_with(body: &str, files: &[(&str, &[u8])], names: &[&str]) -> Host {
    let host = Host::with(Faults::default(), body, "");
    for (rel, bytes) in files {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        host.sb.write_file(rel, host.sb.render(&text));
    }
    add_names(&host, names);
    host.sb.reload();
    host
}

fn add_names(host: &Host, names: &[&str]) {
    let hosts = host.dir.path().join("hosts");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    for n in names {
        text.push_str(&format!("127.0.0.1 {n}\n"));
    }
    std::fs::write(hosts, text).unwrap();
}

/// Every regular file under the prefix nginx may read (logs and temp paths aside), with its
/// bytes; symlinks are recorded by their target.
fn snapshot(host: &Host) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                let mut v = b"symlink -> ".to_vec();
                v.extend(target.as_os_str().as_encoded_bytes());
                out.insert(path, v);
            } else if meta.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(host.sb.prefix()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if ["logs", "tmp", "run"].contains(&name.as_str()) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, &mut out);
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Asserts that every file of `after` is the same as in `before` except `changed`, which only
/// gained managed lines; returns the changed files' new bytes.
fn assert_only_managed_lines_added(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    changed: &[PathBuf],
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no file appears or disappears"
    );
    for (path, old) in before {
        let new = &after[path];
        if !changed.contains(path) {
            assert_eq!(
                String::from_utf8_lossy(old),
                String::from_utf8_lossy(new),
                "{} is untouched",
                path.display()
            );
            continue;
        }
        // A certificate line of a block that had TLS is replaced by ours: certificate lines
        // are compared apart from the rest (see `certificate_lines_only_replaced`).
        let is_cert = |l: &[u8]| l.trim_ascii_start().starts_with(b"ssl_certificate");
        let old_lines: Vec<&[u8]> = old
            .split_inclusive(|b| *b == b'\n')
            .filter(|l| !is_cert(l))
            .collect();
        let mut kept = Vec::new();
        for line in new.split_inclusive(|b| *b == b'\n') {
            if is_managed_line(line) || is_cert(line) {
                continue;
            }
            kept.push(line);
        }
        // What remains once our lines are taken out is the old file, line for line — except
        // that a line we inserted into the middle of (a one-line block) is split.
        let rest: Vec<u8> = kept.concat();
        let old_joined: Vec<u8> = old_lines.concat();
        if rest != old_joined {
            let norm = |b: &[u8]| -> Vec<u8> {
                b.iter()
                    .copied()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect()
            };
            assert_eq!(
                String::from_utf8_lossy(&norm(&rest)),
                String::from_utf8_lossy(&norm(&old_joined)),
                "{}: only managed lines were added\n--- new ---\n{}",
                path.display(),
                String::from_utf8_lossy(new)
            );
        }
        assert_ne!(old, new, "{} was edited", path.display());
        certificate_lines_only_replaced(old, new, path);
    }
}

/// Every certificate line of `new` is either one of `old` or managed; there are no more of
/// them than before plus ours.
fn certificate_lines_only_replaced(old: &[u8], new: &[u8], path: &Path) {
    let is_cert = |l: &&[u8]| l.trim_ascii_start().starts_with(b"ssl_certificate");
    let old_lines: Vec<&[u8]> = old
        .split_inclusive(|b| *b == b'\n')
        .filter(is_cert)
        .collect();
    for line in new.split_inclusive(|b| *b == b'\n').filter(is_cert) {
        assert!(
            is_managed_line(line) || old_lines.contains(&line),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(line)
        );
    }
}

/// Runs `auto --json` (plus `extra`), which must succeed; every name of `sites` (site, names)
/// serves the site's new leaf; a second run orders nothing and reloads nothing.
fn auto_and_check(host: &Host, extra: &[&str], sites: &[(&str, &[&str])]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = host.auto(&args);
    let doc = expect_exit(&out, 0);
    for (site, names) in sites {
        let live = host.live(site);
        assert!(live.exists(), "{site} has a certificate: {doc:#}");
        let fp = pem_fingerprint(&live);
        for name in *names {
            assert_eq!(
                served(host, name).fingerprint,
                fp,
                "{name} serves its new leaf"
            );
        }
    }
    for site in doc["sites"].as_array().unwrap() {
        assert!(site["error"].is_null(), "{site}");
    }
    let creates = host.sim.request_count("/cert/create");
    let again = host.auto(&args);
    let doc2 = expect_exit(&again, 0);
    assert_eq!(
        host.sim.request_count("/cert/create"),
        creates,
        "a second run orders nothing: {doc2:#}"
    );
    assert_eq!(doc2["reloads"], 0, "a second run reloads nothing: {doc2:#}");
    doc
}

fn path(host: &Host, rel: &str) -> PathBuf {
    host.sb.path(rel)
}

#[test]
fn a_vhost_enabled_by_symlink_is_edited_in_its_target_and_the_link_stays_a_link() {
    let host = Host::with(Faults::default(), "include {prefix}/sites-enabled/*;", "");
    host.sb.write_file(
        "sites-available/sym.conf",
        host.sb.render(
            "server {\n    listen 127.0.0.1:{port.0};\n    server_name sym.test;\n    root {prefix}/www/shop;\n}\n",
        ),
    );
    std::fs::create_dir_all(path(&host, "sites-enabled")).unwrap();
    std::os::unix::fs::symlink(
        "../sites-available/sym.conf",
        path(&host, "sites-enabled/sym.conf"),
    )
    .unwrap();
    add_names(&host, &["sym.test"]);
    host.sb.reload();
    let before = snapshot(&host);
    auto_and_check(&host, &[], &[("sym.test", &["sym.test"])]);
    let link = path(&host, "sites-enabled/sym.conf");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../sites-available/sym.conf")
    );
    let after = snapshot(&host);
    assert_only_managed_lines_added(&before, &after, &[path(&host, "sites-available/sym.conf")]);
}

#[test]
fn auto_site_selects_by_the_path_of_a_symlinked_vhost() {
    let host = Host::with(Faults::default(), "include {prefix}/sites-enabled/*;", "");
    for (file, name) in [("a.conf", "a.test"), ("b.conf", "b.test")] {
        host.sb.write_file(
            &format!("sites-available/{file}"),
            host.sb.render(&format!(
                "server {{\n    listen 127.0.0.1:{{port.0}};\n    server_name {name};\n    root {{prefix}}/www/shop;\n}}\n"
            )),
        );
        std::fs::create_dir_all(path(&host, "sites-enabled")).unwrap();
        std::os::unix::fs::symlink(
            format!("../sites-available/{file}"),
            path(&host, &format!("sites-enabled/{file}")),
        )
        .unwrap();
    }
    add_names(&host, &["a.test", "b.test"]);
    host.sb.reload();
    let selector = path(&host, "sites-enabled/b.conf");
    let out = host.auto(&["--json", "--site", selector.to_str().unwrap()]);
    let doc = expect_exit(&out, 0);
    assert!(host.live("b.test").exists(), "{doc:#}");
    assert!(!host.live("a.test").exists(), "{doc:#}");
    // The target's path selects it too.
    let selector = path(&host, "sites-available/a.conf");
    let out = host.auto(&["--json", "--site", selector.to_str().unwrap()]);
    let doc = expect_exit(&out, 0);
    assert!(host.live("a.test").exists(), "{doc:#}");
}

#[test]
fn crlf_no_final_newline_and_tabs_are_kept_and_our_lines_match_them() {
    let body = "include {prefix}/conf.d/*.conf;";
    let crlf: &[u8] = b"server {\r\n\tlisten 127.0.0.1:{port.0};\r\n\tserver_name crlf.test;\r\n\troot {prefix}/www/shop;\r\n}\r\n";
    let nonl: &[u8] = b"server {\n    listen 127.0.0.1:{port.0};\n    server_name nonl.test;\n    root {prefix}/www/shop;\n}";
    let oneline: &[u8] =
        b"server { listen 127.0.0.1:{port.0}; server_name one.test; root {prefix}/www/shop; }\n";
    let host = host_with(
        body,
        &[
            ("conf.d/crlf.conf", crlf),
            ("conf.d/nonl.conf", nonl),
            ("conf.d/one.conf", oneline),
        ],
        &["crlf.test", "nonl.test", "one.test"],
    );
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("crlf.test", &["crlf.test"]),
            ("nonl.test", &["nonl.test"]),
            ("one.test", &["one.test"]),
        ],
    );
    let after = snapshot(&host);
    assert_only_managed_lines_added(
        &before,
        &after,
        &[
            path(&host, "conf.d/crlf.conf"),
            path(&host, "conf.d/nonl.conf"),
            path(&host, "conf.d/one.conf"),
        ],
    );
    let crlf = &after[&path(&host, "conf.d/crlf.conf")];
    for line in crlf.split_inclusive(|b| *b == b'\n') {
        assert!(
            line.ends_with(b"\r\n"),
            "CRLF kept: {:?}",
            String::from_utf8_lossy(line)
        );
        if is_managed_line(line) {
            assert!(line.starts_with(b"\t"), "tab-indented like its neighbours");
        }
    }
}

#[test]
fn default_server_ipv6only_reuseport_and_backlog_are_not_copied_into_the_ssl_listens() {
    let body = "server {\n        listen 127.0.0.1:{port.0} default_server reuseport backlog=511;\n        listen [::1]:{port.0} default_server ipv6only=on;\n        server_name flags.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        listen [::1]:{port.0};\n        server_name other.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["flags.test", "other.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("flags.test", &["flags.test"]),
            ("other.test", &["other.test"]),
        ],
    );
    let after = snapshot(&host);
    assert_only_managed_lines_added(&before, &after, &[host.sb.conf_path()]);
    let text = String::from_utf8_lossy(&after[&host.sb.conf_path()]).to_string();
    for line in text
        .lines()
        .filter(|l| l.contains("managed by") && l.contains("listen"))
    {
        for flag in ["default_server", "ipv6only", "reuseport", "backlog"] {
            assert!(!line.contains(flag), "{line}");
        }
    }
    // Both names answer TLS on IPv6 too.
    for name in ["flags.test", "other.test"] {
        let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, host.https));
        let got =
            enc365_nginx::verify::handshake(addr, name, std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(got.fingerprint, pem_fingerprint(&host.live(name)), "{name}");
    }
}

#[test]
fn two_default_servers_on_different_addresses_each_get_their_certificate() {
    let body = "server {\n        listen 127.0.0.1:{port.0} default_server;\n        server_name d1.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen [::1]:{port.0} default_server;\n        listen 127.0.0.1:{port.0};\n        server_name d2.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["d1.test", "d2.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[("d1.test", &["d1.test"]), ("d2.test", &["d2.test"])],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn listen_and_names_from_a_shared_snippet_and_an_inherited_certificate() {
    // Both sites take their listen from one snippet; the http level sets a (self-signed)
    // certificate every TLS block inherits.
    let body = "ssl_certificate {prefix}/old/fullchain.pem;\n    ssl_certificate_key {prefix}/old/privkey.pem;\n    server {\n        include {prefix}/snippets/listen.conf;\n        server_name s1.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        include {prefix}/snippets/listen.conf;\n        include {prefix}/snippets/s2-names.conf;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name inh.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = Host::with(Faults::default(), "", "");
    host.sb.write_file(
        "snippets/listen.conf",
        host.sb.render("listen 127.0.0.1:{port.0};\n"),
    );
    host.sb.write_file(
        "snippets/s2-names.conf",
        "server_name s2.test www.s2.test;\n",
    );
    host.sb.write_http_conf(body);
    add_names(&host, &["s1.test", "s2.test", "www.s2.test", "inh.test"]);
    host.sb.reload();
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("s1.test", &["s1.test"]),
            ("s2.test", &["s2.test", "www.s2.test"]),
            ("inh.test", &["inh.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn a_self_signed_tls_block_and_a_plain_site_share_the_https_port() {
    let body = "server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name selfs.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name selfs.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name plain.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["selfs.test", "plain.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("selfs.test", &["selfs.test"]),
            ("plain.test", &["plain.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn uppercase_trailing_dot_idn_and_duplicate_names_are_ordered_once_in_canonical_form() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name Upper.TEST case.test. пример.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name upper.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["upper.test", "case.test", "xn--e1afmkfd.test"]);
    let before = snapshot(&host);
    let doc = auto_and_check(
        &host,
        &[],
        &[(
            "upper.test",
            &["upper.test", "case.test", "xn--e1afmkfd.test"],
        )],
    );
    assert_eq!(doc["sites"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn relative_and_variable_roots_validate() {
    // `root www/shop` is relative to the prefix; `root {prefix}/www/$host` has a variable.
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name rel.test;\n        root www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name var.test;\n        root {prefix}/www/$host;\n    }\n";
    let host = host_with(body, &[], &["rel.test", "var.test"]);
    host.sb.write_file("www/var.test/index.html", "var");
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[("rel.test", &["rel.test"]), ("var.test", &["var.test"])],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn a_redirect_only_port_80_block_of_a_tls_site_still_validates() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name redir.test www.redir.test;\n        return 301 https://$host$request_uri;\n    }\n    server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name redir.test www.redir.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["redir.test", "www.redir.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[("redir.test", &["redir.test", "www.redir.test"])],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let plain = common::http_get(host.http, "redir.test", "/x").unwrap();
    assert_eq!(plain.status, 301, "the redirect is kept");
}

#[test]
fn auto_redirect_then_renew_force_adds_no_line_twice() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name rr.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["rr.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &["--redirect", "--hsts"],
        &[("rr.test", &["rr.test"])],
    );
    let first = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host.renew(&["--json", "--force"]);
    let doc = expect_exit(&out, 0);
    let second = std::fs::read(host.sb.conf_path()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second),
        "renewal changes no config line: {doc:#}"
    );
    assert_eq!(
        served(&host, "rr.test").fingerprint,
        pem_fingerprint(&host.live("rr.test"))
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let out = host.auto(&["--json", "--redirect", "--hsts"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["reloads"], 0, "{doc:#}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), second);
    let _ = json(&out);
}

#[test]
fn a_tls_only_site_validates_when_the_other_sites_listen_on_a_specific_address() {
    // Every plain site binds 127.0.0.1:{port.0}; the temporary server for the TLS-only site
    // must not ask for the wildcard on that port (the reload could not bind it).
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name plainip.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name tlsonly.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["plainip.test", "tlsonly.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("plainip.test", &["plainip.test"]),
            ("tlsonly.test", &["tlsonly.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let after = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert!(
        !after.contains("pki-validation"),
        "the temporary server is gone: {after}"
    );
}
#[test]
fn a_users_well_known_locations_do_not_break_validation_or_config() {
    // certbot's acme-challenge location, a `^~ /.well-known/` serving from elsewhere, and a
    // proxy at `location /` next to a server-level root: the validation path must reach our
    // files anyway.
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name certbot.test;\n        root {prefix}/www/shop;\n        location ^~ /.well-known/acme-challenge/ { root {prefix}/www/acme; }\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name wk.test;\n        root {prefix}/www/shop;\n        location ^~ /.well-known/ { root {prefix}/www/wk; }\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name proxied.test;\n        root {prefix}/www/shop;\n        location / { proxy_pass http://127.0.0.1:9; }\n    }\n";
    let host = host_with(body, &[], &["certbot.test", "wk.test", "proxied.test"]);
    host.sb
        .write_file("www/wk/.well-known/security.txt", "contact");
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("certbot.test", &["certbot.test"]),
            ("wk.test", &["wk.test"]),
            ("proxied.test", &["proxied.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let page = common::http_get(host.http, "wk.test", "/.well-known/security.txt").unwrap();
    assert_eq!(page.text(), "contact", "the user's location still serves");
}

#[test]
fn a_users_own_validation_location_is_reported_and_the_config_left_alone() {
    // A location on the very validation prefix: a second one (ours) would fail nginx -t, and
    // files in the root are not served through it. The name is left out with the reason; the
    // other site is certified and the run succeeds.
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name deny.test;\n        root {prefix}/www/$host;\n        location /.well-known/pki-validation/ { return 404; }\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name fine.test;\n        root {prefix}/www/$host;\n    }\n";
    let host = host_with(body, &[], &["deny.test", "fine.test"]);
    let before = snapshot(&host);
    let doc = auto_and_check(&host, &[], &[("fine.test", &["fine.test"])]);
    let deny = doc["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "deny.test")
        .unwrap();
    let reason = deny["names_left_out"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("location /.well-known/pki-validation/"),
        "{reason}"
    );
    assert!(!host.live("deny.test").exists());
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn a_block_serving_plain_and_self_signed_tls_gets_its_certificate_lines_replaced_only() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        listen 127.0.0.1:{port.1} ssl;\n        server_name mixed.test www.mixed.test;\n        ssl_certificate {prefix}/old/fullchain.pem; # self-signed\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["mixed.test", "www.mixed.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[("mixed.test", &["mixed.test", "www.mixed.test"])],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let text = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert_eq!(text.matches("listen").count(), 2, "no listen added: {text}");
}

#[test]
fn a_certificate_set_in_a_snippet_shared_by_two_sites_is_a_clear_error_with_nothing_changed() {
    let body = "server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name sh1.test;\n        include {prefix}/snippets/ssl.conf;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name sh2.test;\n        include {prefix}/snippets/ssl.conf;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name sh1.test sh2.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = Host::with(Faults::default(), "", "");
    host.sb.write_file(
        "snippets/ssl.conf",
        host.sb.render(
            "ssl_certificate {prefix}/old/fullchain.pem;\nssl_certificate_key {prefix}/old/privkey.pem;\n",
        ),
    );
    host.sb.write_http_conf(body);
    add_names(&host, &["sh1.test", "sh2.test"]);
    host.sb.reload();
    let before = snapshot(&host);
    let out = host.auto(&["--json"]);
    let doc = json(&out);
    assert_ne!(out.status.code(), Some(0), "{doc:#}");
    let text = doc.to_string();
    assert!(
        text.contains("snippets/ssl.conf"),
        "names the file: {doc:#}"
    );
    assert_eq!(before, snapshot(&host), "nothing changed");
    let page = common::http_get(host.http, "sh1.test", "/").unwrap();
    assert_eq!(page.text(), "shop");
}

#[test]
fn a_vhost_regenerated_by_a_panel_gets_the_certificate_back_without_a_new_order() {
    let body = "include {prefix}/conf.d/*.conf;";
    let vhost: &[u8] = b"server {\n    listen 127.0.0.1:{port.0};\n    server_name panel.test;\n    root {prefix}/www/shop;\n}\n";
    let host = host_with(body, &[("conf.d/panel.conf", vhost)], &["panel.test"]);
    let original = std::fs::read(path(&host, "conf.d/panel.conf")).unwrap();
    auto_and_check(&host, &[], &[("panel.test", &["panel.test"])]);
    let installed = std::fs::read(path(&host, "conf.d/panel.conf")).unwrap();
    // The panel writes its own file again and reloads.
    std::fs::write(path(&host, "conf.d/panel.conf"), &original).unwrap();
    host.sb.reload();
    let creates = host.sim.request_count("/cert/create");
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/cert/create"), creates, "{doc:#}");
    assert_eq!(
        served(&host, "panel.test").fingerprint,
        pem_fingerprint(&host.live("panel.test"))
    );
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(path(&host, "conf.d/panel.conf")).unwrap()),
        String::from_utf8_lossy(&installed)
    );
}

#[test]
fn quoted_roots_with_spaces_quoted_names_and_non_utf8_comments() {
    let body = "include {prefix}/conf.d/*.conf;";
    let mut vhost: Vec<u8> = b"# caf\xe9 (latin-1)\nserver {\n    listen 127.0.0.1:{port.0};\n    server_name \"quoted.test\";\n    root \"{prefix}/www/my site\";\n}\n".to_vec();
    vhost.extend_from_slice(b"# end\n");
    let host = host_with(body, &[], &["quoted.test"]);
    // Not rendered through UTF-8: write the bytes with the prefix spliced in.
    let rendered = String::from_utf8_lossy(&vhost)
        .replace('\u{fffd}', "\u{1}")
        .to_string();
    let rendered = host.sb.render(&rendered).into_bytes();
    let rendered: Vec<u8> = rendered
        .into_iter()
        .map(|b| if b == 1 { 0xe9 } else { b })
        .collect();
    host.sb.write_file("conf.d/q.conf", &rendered);
    host.sb.write_file("www/my site/index.html", "spaced");
    host.sb.reload();
    let before = snapshot(&host);
    auto_and_check(&host, &[], &[("quoted.test", &["quoted.test"])]);
    let after = snapshot(&host);
    assert_only_managed_lines_added(&before, &after, &[path(&host, "conf.d/q.conf")]);
    assert!(after[&path(&host, "conf.d/q.conf")].starts_with(b"# caf\xe9 (latin-1)\n"));
    let page = common::https_get(host.https, "quoted.test", "/").unwrap();
    assert_eq!(page.text(), "spaced");
}

#[test]
fn plan_on_a_symlinked_crlf_vhost_shows_the_target_and_touches_nothing() {
    let host = Host::with(Faults::default(), "include {prefix}/sites-enabled/*;", "");
    host.sb.write_file(
        "sites-available/p.conf",
        host.sb.render(
            "server {\r\n\tlisten 127.0.0.1:{port.0};\r\n\tserver_name plan.test;\r\n\troot {prefix}/www/shop;\r\n}\r\n",
        ),
    );
    std::fs::create_dir_all(path(&host, "sites-enabled")).unwrap();
    std::os::unix::fs::symlink(
        path(&host, "sites-available/p.conf"),
        path(&host, "sites-enabled/p.conf"),
    )
    .unwrap();
    add_names(&host, &["plan.test"]);
    host.sb.reload();
    let before = snapshot(&host);
    let out = host.command(&["plan"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("p.conf"), "{text}");
    assert!(
        text.contains(&format!(
            "listen 127.0.0.1:{} ssl; # managed by enc365-nginx",
            host.https
        )),
        "{text}"
    );
    assert_eq!(before, snapshot(&host));
    assert!(
        !host.dir.path().join("state").exists(),
        "plan writes no state"
    );
}

#[test]
fn a_wildcard_plain_site_next_to_a_tls_site_on_a_specific_address() {
    // One site takes TLS on 127.0.0.1:{port.1}; the other listens on the wildcard. A wildcard
    // `listen {port.1} ssl` could not be bound by a reload while the old workers hold
    // 127.0.0.1:{port.1}.
    let body = "server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name ip.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name ip.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen {port.0};\n        server_name anyaddr.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["ip.test", "anyaddr.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("ip.test", &["ip.test"]),
            ("anyaddr.test", &["anyaddr.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    // Surprising but right: the wildcard site's TLS listen is on the address that already
    // holds the port, not on the wildcard (a reload could not bind it).
    let text = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    assert!(
        !text.contains(&format!("listen {} ssl;", host.https)),
        "{text}"
    );
}

#[test]
fn a_lone_redirect_only_block_gets_https_and_keeps_redirecting() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name www.lone.test;\n        return 301 http://lone.test$request_uri;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name lone.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["www.lone.test", "lone.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &["--redirect"],
        &[
            ("www.lone.test", &["www.lone.test"]),
            ("lone.test", &["lone.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let got = common::https_get(host.https, "www.lone.test", "/x").unwrap();
    assert_eq!(got.status, 301);
    assert_eq!(got.header("location"), Some("http://lone.test/x"));
}

#[test]
fn redirect_on_crlf_and_one_line_blocks_then_renew_force_changes_nothing() {
    let body = "include {prefix}/conf.d/*.conf;";
    let crlf: &[u8] = b"server {\r\n\tlisten 127.0.0.1:{port.0};\r\n\tserver_name crr.test;\r\n\troot {prefix}/www/shop;\r\n}";
    let oneline: &[u8] =
        b"server { listen 127.0.0.1:{port.0}; server_name oner.test; root {prefix}/www/$host; }";
    let host = host_with(
        body,
        &[("conf.d/crr.conf", crlf), ("conf.d/oner.conf", oneline)],
        &["crr.test", "oner.test"],
    );
    host.sb.write_file("www/oner.test/index.html", "one");
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &["--redirect", "--hsts"],
        &[("crr.test", &["crr.test"]), ("oner.test", &["oner.test"])],
    );
    let first = snapshot(&host);
    assert_only_managed_lines_added(
        &before,
        &first,
        &[
            path(&host, "conf.d/crr.conf"),
            path(&host, "conf.d/oner.conf"),
        ],
    );
    for line in first[&path(&host, "conf.d/crr.conf")].split_inclusive(|b| *b == b'\n') {
        assert!(
            line.ends_with(b"\r\n") || !line.ends_with(b"\n"),
            "CRLF kept: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    let out = host.renew(&["--json", "--force"]);
    expect_exit(&out, 0);
    let second = snapshot(&host);
    for p in [
        path(&host, "conf.d/crr.conf"),
        path(&host, "conf.d/oner.conf"),
    ] {
        assert_eq!(
            String::from_utf8_lossy(&first[&p]),
            String::from_utf8_lossy(&second[&p]),
            "renewal changes no config line"
        );
    }
    for name in ["crr.test", "oner.test"] {
        assert_eq!(
            served(&host, name).fingerprint,
            pem_fingerprint(&host.live(name))
        );
        let plain = common::http_get(host.http, name, "/a").unwrap();
        assert_eq!(plain.status, 301, "{name}");
    }
}

#[test]
fn legacy_ssl_on_block_gets_its_certificate_replaced() {
    let body = "server {\n        listen 127.0.0.1:{port.1};\n        ssl on;\n        server_name sslon.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name sslon.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["sslon.test"]);
    let before = snapshot(&host);
    auto_and_check(&host, &[], &[("sslon.test", &["sslon.test"])]);
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn a_site_certbot_managed_before_validates_and_gets_our_certificate() {
    // certbot's layout: the TLS block carries the old certificate, the port-80 block redirects
    // by an `if` and answers 404 by a server-level return.
    let body = "server {\n        root {prefix}/www/shop;\n        server_name cb.test;\n        listen 127.0.0.1:{port.1} ssl; # managed by Certbot\n        ssl_certificate {prefix}/old/fullchain.pem; # managed by Certbot\n        ssl_certificate_key {prefix}/old/privkey.pem; # managed by Certbot\n    }\n    server {\n        if ($host = cb.test) {\n            return 301 https://$host$request_uri;\n        } # managed by Certbot\n        listen 127.0.0.1:{port.0};\n        server_name cb.test;\n        return 404; # managed by Certbot\n    }\n";
    let host = host_with(body, &[], &["cb.test"]);
    let before = snapshot(&host);
    auto_and_check(&host, &["--redirect"], &[("cb.test", &["cb.test"])]);
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let plain = common::http_get(host.http, "cb.test", "/x").unwrap();
    assert_eq!(plain.status, 301);
}

#[test]
fn a_port_80_block_redirecting_by_a_server_level_if_still_validates() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        listen 127.0.0.1:{port.1} ssl;\n        server_name ifr.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n        if ($scheme = http) {\n            return 301 https://$host$request_uri;\n        }\n    }\n";
    let host = host_with(body, &[], &["ifr.test"]);
    let before = snapshot(&host);
    auto_and_check(&host, &[], &[("ifr.test", &["ifr.test"])]);
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let plain = common::http_get(host.http, "ifr.test", "/x").unwrap();
    assert_eq!(plain.status, 301);
}

#[test]
fn a_dual_stack_ipv6_listen_gets_https_for_ipv4_clients_too() {
    // `ipv6only=off` makes one [::] socket take IPv4 too: the only listen of the block.
    let body = "server {\n        listen [::]:{port.0} ipv6only=off;\n        server_name dual.test;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["dual.test"]);
    let before = snapshot(&host);
    auto_and_check(&host, &[], &[("dual.test", &["dual.test"])]);
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, host.https));
    let got = enc365_nginx::verify::handshake(addr, "dual.test", std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(got.fingerprint, pem_fingerprint(&host.live("dual.test")));
}

#[test]
fn a_site_behind_basic_auth_or_an_ip_allow_list_still_validates() {
    // A staging site: server-level basic auth; an intranet site: an allow list. The CA fetches
    // the validation file without credentials, from outside.
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name staging.test;\n        root {prefix}/www/shop;\n        auth_basic \"staging\";\n        auth_basic_user_file {prefix}/htpasswd;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name intra.test;\n        root {prefix}/www/shop;\n        allow 10.0.0.0/8;\n        deny all;\n    }\n";
    let host = host_with(
        body,
        &[("htpasswd", b"u:$apr1$x$y\n")],
        &["staging.test", "intra.test"],
    );
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &[],
        &[
            ("staging.test", &["staging.test"]),
            ("intra.test", &["intra.test"]),
        ],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    assert_eq!(
        common::http_get(host.http, "staging.test", "/")
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        common::http_get(host.http, "intra.test", "/")
            .unwrap()
            .status,
        403
    );
}

#[test]
fn a_port_80_block_redirecting_by_a_server_level_rewrite_still_validates() {
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name rw.test;\n        root {prefix}/www/shop;\n        rewrite ^(.*)$ https://$host$1 permanent;\n    }\n    server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name rw.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["rw.test"]);
    let before = snapshot(&host);
    auto_and_check(&host, &[], &[("rw.test", &["rw.test"])]);
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    assert_eq!(
        common::http_get(host.http, "rw.test", "/").unwrap().status,
        301
    );
}

#[test]
fn a_failed_install_into_a_symlinked_vhost_puts_the_target_back_and_keeps_the_link() {
    let host = Host::with(Faults::default(), "include {prefix}/sites-enabled/*;", "");
    host.sb.write_file(
        "sites-available/rb.conf",
        host.sb.render(
            "server {\r\n\tlisten 127.0.0.1:{port.0};\r\n\tserver_name rb.test;\r\n\troot {prefix}/www/shop;\r\n}",
        ),
    );
    std::fs::set_permissions(
        path(&host, "sites-available/rb.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    std::fs::create_dir_all(path(&host, "sites-enabled")).unwrap();
    std::os::unix::fs::symlink(
        "../sites-available/rb.conf",
        path(&host, "sites-enabled/rb.conf"),
    )
    .unwrap();
    add_names(&host, &["rb.test"]);
    host.sb.reload();
    // A broken shared TLS snippet makes the edited configuration fail `nginx -t`.
    std::fs::create_dir_all(host.dir.path().join("nginx")).unwrap();
    std::fs::write(
        host.dir.path().join("nginx/ssl-params.conf"),
        "no_such_directive on;\n",
    )
    .unwrap();
    let before = snapshot(&host);
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 1);
    assert!(doc.to_string().contains("put back"), "{doc:#}");
    assert_eq!(before, snapshot(&host), "every file and link as it was");
    let meta = std::fs::metadata(path(&host, "sites-available/rb.conf")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640
    );
    // Fixed, a rerun installs into the target, keeping its mode and the link.
    std::fs::remove_file(host.dir.path().join("nginx/ssl-params.conf")).unwrap();
    auto_and_check(&host, &[], &[("rb.test", &["rb.test"])]);
    let link = path(&host, "sites-enabled/rb.conf");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let meta = std::fs::metadata(path(&host, "sites-available/rb.conf")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640
    );
}

#[test]
fn renew_after_a_vhost_was_removed_says_so_and_changes_nothing() {
    let body = "include {prefix}/conf.d/*.conf;";
    let vhost: &[u8] = b"server {\n    listen 127.0.0.1:{port.0};\n    server_name gone.test;\n    root {prefix}/www/shop;\n}\n";
    let keep: &[u8] = b"server {\n    listen 127.0.0.1:{port.0};\n    server_name kept.test;\n    root {prefix}/www/shop;\n}\n";
    let host = host_with(
        body,
        &[("conf.d/gone.conf", vhost), ("conf.d/kept.conf", keep)],
        &["gone.test", "kept.test"],
    );
    auto_and_check(
        &host,
        &[],
        &[("gone.test", &["gone.test"]), ("kept.test", &["kept.test"])],
    );
    std::fs::remove_file(path(&host, "conf.d/gone.conf")).unwrap();
    host.sb.reload();
    let before = snapshot(&host);
    let creates = host.sim.request_count("/cert/create");
    let out = host.renew(&["--json", "--force"]);
    let doc = json(&out);
    let text = format!("{doc:#}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("gone.test"), "{text}");
    assert!(out.status.code().is_some(), "no crash: {text}");
    assert_eq!(before, snapshot(&host), "{text}");
    // kept.test is renewed all the same.
    assert!(host.sim.request_count("/cert/create") > creates, "{text}");
    assert_eq!(
        served(&host, "kept.test").fingerprint,
        pem_fingerprint(&host.live("kept.test"))
    );
    eprintln!("{text}");
}

#[test]
fn a_name_only_the_plain_block_carries_is_served_by_the_tls_block_too() {
    // www.part.test is in the port-80 block only; the TLS twin names part.test, and another
    // site is the default server of the HTTPS port.
    let body = "server {\n        listen 127.0.0.1:{port.1} ssl default_server;\n        server_name first.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name first.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.0};\n        server_name part.test www.part.test;\n        root {prefix}/www/shop;\n    }\n    server {\n        listen 127.0.0.1:{port.1} ssl;\n        server_name part.test;\n        ssl_certificate {prefix}/old/fullchain.pem;\n        ssl_certificate_key {prefix}/old/privkey.pem;\n        root {prefix}/www/shop;\n    }\n";
    let host = host_with(body, &[], &["first.test", "part.test", "www.part.test"]);
    let before = snapshot(&host);
    auto_and_check(
        &host,
        &["--site", "part.test"],
        &[("part.test", &["part.test", "www.part.test"])],
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
}

#[test]
fn a_tls_block_on_another_port_than_the_https_port_gets_its_certificate_proven() {
    let alt = common::free_port();
    let body = format!(
        "server {{\n        listen 127.0.0.1:{{port.0}};\n        server_name alt.test;\n        root {{prefix}}/www/shop;\n    }}\n    server {{\n        listen 127.0.0.1:{alt} ssl;\n        server_name alt.test;\n        ssl_certificate {{prefix}}/old/fullchain.pem;\n        ssl_certificate_key {{prefix}}/old/privkey.pem;\n        root {{prefix}}/www/shop;\n    }}\n"
    );
    let host = host_with(&body, &[], &["alt.test"]);
    let before = snapshot(&host);
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 0);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], alt));
    let got = enc365_nginx::verify::handshake(addr, "alt.test", std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        got.fingerprint,
        pem_fingerprint(&host.live("alt.test")),
        "{doc:#}"
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
}

#[test]
fn a_front_controller_if_rewrite_keeps_validating_from_the_webroot() {
    // The classic CMS rule: unknown paths go to index.php. Validation files exist, so they are
    // served from the root as they are; no temporary location is needed.
    let body = "server {\n        listen 127.0.0.1:{port.0};\n        server_name cms.test;\n        root {prefix}/www/shop;\n        if (!-e $request_filename) {\n            rewrite ^(.+)$ /index.php?q=$1 last;\n        }\n    }\n";
    let host = host_with(body, &[], &["cms.test"]);
    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("temporary validation"), "{stderr}");
    assert_eq!(
        served(&host, "cms.test").fingerprint,
        pem_fingerprint(&host.live("cms.test"))
    );
}

#[test]
fn a_site_answering_plain_http_only_on_another_port_validates_on_the_http_port() {
    // alt8080.test listens on another port only; port {port.0} (where the CA connects) belongs
    // to a catch-all that drops the connection.
    let alt = common::free_port();
    let body = format!(
        "server {{\n        listen 127.0.0.1:{{port.0}} default_server;\n        server_name _;\n        return 444;\n    }}\n    server {{\n        listen 127.0.0.1:{alt};\n        server_name alt8080.test;\n        root {{prefix}}/www/shop;\n    }}\n"
    );
    let host = host_with(&body, &[], &["alt8080.test"]);
    let before = snapshot(&host);
    let doc = auto_and_check(&host, &[], &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host.https));
    let got =
        enc365_nginx::verify::handshake(addr, "alt8080.test", std::time::Duration::from_secs(5))
            .unwrap();
    assert_eq!(
        got.fingerprint,
        pem_fingerprint(&host.live("alt8080.test")),
        "{doc:#}"
    );
    assert_only_managed_lines_added(&before, &snapshot(&host), &[host.sb.conf_path()]);
    // The catch-all still drops plain requests for the name on the HTTP port.
    assert!(common::http_get(host.http, "alt8080.test", "/").is_err());
}

#[test]
fn temporary_validation_lines_in_a_crlf_one_line_block_keep_crlf() {
    // With --no-wait the temporary location stays until the rerun: it must look like the file.
    let body = "include {prefix}/conf.d/*.conf;";
    let vhost: &[u8] = b"# crlf\r\nserver { listen 127.0.0.1:{port.0}; server_name tmpcrlf.test; root {prefix}/www/$host; }\r\n";
    let host = Host::with(
        Faults {
            force_status: Some("enroll_caprocessing".into()),
            paths: vec!["/cert/details".into()],
            ..Faults::default()
        },
        body,
        "",
    );
    host.sb.write_file(
        "conf.d/t.conf",
        host.sb.render(&String::from_utf8_lossy(vhost)),
    );
    add_names(&host, &["tmpcrlf.test"]);
    host.sb.reload();
    let out = host.auto(&["--json", "--no-wait"]);
    expect_exit(&out, 0);
    let during = std::fs::read(path(&host, "conf.d/t.conf")).unwrap();
    for line in during.split_inclusive(|b| *b == b'\n') {
        assert!(
            line.ends_with(b"\r\n"),
            "CRLF kept: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    host.sim.set_faults(Faults::default());
    let out = host.auto(&["--json"]);
    expect_exit(&out, 0);
    assert_eq!(
        served(&host, "tmpcrlf.test").fingerprint,
        pem_fingerprint(&host.live("tmpcrlf.test"))
    );
}
