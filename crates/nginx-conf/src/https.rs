//! Planning the edits that make a server block serve a given certificate over HTTPS.
//!
//! Only bytes that must change are touched, and every line added ends with
//! [`MANAGED_MARK`](crate::edit::MANAGED_MARK):
//!
//! - a block that already speaks TLS keeps everything but its certificate: its own
//!   `ssl_certificate`/`ssl_certificate_key` lines are replaced (extra ones of a dual-certificate
//!   setup removed); a block that inherits its certificate from `http` gets its own two lines;
//!   either gets one more `server_name` line for names of the site only its port-80 twin carries;
//! - a plain-HTTP block gets `listen <port> ssl` for each address it listens on (the IPv6 twin when
//!   it listens on IPv6; `default_server`, `ipv6only`, `reuseport` and `backlog` are never copied,
//!   as nginx allows them once per address; a wildcard is narrowed to the specific addresses
//!   that already hold the port when the wildcard does not, since a reload cannot bind it next
//!   to them; a dual-stack `[::]` listen, `ipv6only=off`, gets an IPv4 twin, as the new `[::]`
//!   listen is IPv6 only), the two certificate lines and an `include` of the shared TLS
//!   settings, right after its last `listen`.
//!
//! Certificate lines set in a file shared by other blocks (an included snippet) are not edited:
//! that would change other sites too; the plan fails with a reason instead.
//!
//! Knows file paths only, nothing of where certificates come from.

use std::ops::Range;
use std::path::Path;

use crate::edit::{self, Splice};
use crate::sites::{Place, Server};
use crate::tree::{Config, FileId};

/// What the edited block should serve.
#[derive(Debug, Clone, Copy)]
pub struct HttpsTarget<'a> {
    /// The certificate chain file (leaf first).
    pub certificate: &'a Path,
    /// The private key file.
    pub key: &'a Path,
    /// The port `listen … ssl` gets on a plain-HTTP block.
    pub https_port: u16,
    /// The shared TLS settings to include into a block that had no TLS before, if any.
    pub tls_snippet: Option<&'a Path>,
    /// Answer plain-HTTP requests with a redirect to HTTPS (validation paths excepted).
    pub redirect: bool,
    /// Send `Strict-Transport-Security` from the block's HTTPS side.
    pub hsts: bool,
    /// The hosts some block already listens on at `https_port` (see [`bound_hosts`]).
    pub bound_hosts: &'a [String],
    /// Whether some block already listens on `[::]:https_port` with `ipv6only=off` (see
    /// [`dual_stack_on`]).
    pub dual_stack_bound: bool,
    /// Names the block must answer for that it does not carry yet (a name only the site's
    /// port-80 block has): added as one more `server_name` line.
    pub add_names: &'a [String],
}

/// Whether a block listens on the IPv6 wildcard at `port` with `ipv6only=off` (that socket takes
/// IPv4 connections too, so nothing may bind the IPv4 wildcard on that port).
pub fn dual_stack_on(servers: &[Server], port: u16) -> bool {
    servers
        .iter()
        .flat_map(|s| &s.listens)
        .any(|l| l.port == Some(port) && l.dual_stack && host_of(&l.address, l.ipv6) == "[::]")
}

/// The hosts a plain block's listen on `host` takes TLS on: [`ssl_hosts`], plus — for a
/// dual-stack IPv6 wildcard (`ipv6only=off`, which nginx never copies) — the IPv4 wildcard, since
/// a new `[::]` listen is IPv6 only, unless a dual-stack socket holds the port already.
fn tls_hosts<'h>(
    host: &'h str,
    ipv6: bool,
    dual_stack: bool,
    bound: &'h [String],
    dual_stack_bound: bool,
) -> Vec<&'h str> {
    let mut out = ssl_hosts(host, ipv6, bound);
    if dual_stack && host == "[::]" && !dual_stack_bound {
        out.extend(ssl_hosts("*", false, bound));
    }
    out
}

/// The hosts (as [`host_of`] gives them: `*`, `[::]`, `127.0.0.1`, `[::1]`) that blocks of the
/// configuration listen on at `port`, in order of appearance.
pub fn bound_hosts(servers: &[Server], port: u16) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for listen in servers.iter().flat_map(|s| &s.listens) {
        if listen.port == Some(port) && !listen.address.starts_with("unix:") {
            let host = host_of(&listen.address, listen.ipv6).to_string();
            if !out.contains(&host) {
                out.push(host);
            }
        }
    }
    out
}

/// The hosts a new `listen … ssl` takes for a block listening on `host`: the host itself, except
/// that a wildcard (`*`, `[::]`) is narrowed to the specific addresses of its family already
/// listening on the port (`bound`) when the wildcard itself is not — a reload cannot bind the
/// wildcard while the running workers hold a specific address on the same port.
fn ssl_hosts<'h>(host: &'h str, ipv6: bool, bound: &'h [String]) -> Vec<&'h str> {
    let wildcard = if ipv6 { "[::]" } else { "*" };
    if host != wildcard {
        return vec![host];
    }
    let same_family: Vec<&str> = bound
        .iter()
        .map(String::as_str)
        .filter(|h| h.starts_with('[') == ipv6)
        .collect();
    if same_family.is_empty() || same_family.contains(&wildcard) {
        vec![host]
    } else {
        same_family
    }
}

/// The HSTS header line `--hsts` adds (one year; subdomains are the user's call, not ours).
pub const HSTS_LINE: &str = "add_header Strict-Transport-Security \"max-age=31536000\" always;";

/// The lines `--redirect` adds to a block that answers plain HTTP: every request made over plain
/// HTTP is sent to HTTPS, except the domain-validation path, which must stay reachable over HTTP
/// for renewals. `$scheme` is `https` on the block's TLS listens, so a block serving both keeps
/// answering HTTPS itself.
pub fn redirect_lines(https_port: u16) -> Vec<String> {
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    vec![
        "set $enc365_redirect $scheme;".to_string(),
        "if ($uri ~ \"^/\\.well-known/pki-validation/\") { set $enc365_redirect \"\"; }"
            .to_string(),
        format!("if ($enc365_redirect = http) {{ return 301 https://$host{port}$request_uri; }}"),
    ]
}

/// Plans `--redirect` for a plain-HTTP block whose site is served over TLS by another block:
/// the redirect lines after its last listen. Nothing for a block that already ends in a
/// server-level `return` (it redirects, or answers, already).
pub fn plan_redirect(config: &Config, server: &Server, https_port: u16) -> Vec<FileSplice> {
    if server.tls || server.server_level_return || server.https_redirect {
        return Vec::new();
    }
    let file = server.place.file;
    let bytes = &config.files[file].bytes;
    vec![FileSplice {
        file,
        splice: insert_after(
            bytes,
            last_listen_end(server),
            server.braces.1,
            &redirect_lines(https_port),
        ),
    }]
}

/// The end of the block's last own `listen`, else the offset right after its opening brace.
fn last_listen_end(server: &Server) -> u32 {
    server
        .listens
        .iter()
        .filter(|l| l.place.file == server.place.file)
        .map(|l| l.place.span.end)
        .max()
        .unwrap_or(server.braces.0 + 1)
}

/// One splice in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSplice {
    /// The file to edit.
    pub file: FileId,
    /// The change.
    pub splice: Splice,
}

/// Why a block cannot be edited safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The certificate lines live in a file other blocks may include too.
    #[error(
        "its certificate is set in {file}, which other server blocks may share; set the \
         certificate in the server block itself, then run again"
    )]
    SharedCertificateFile {
        /// The shared file.
        file: String,
    },
    /// The block listens only on unix sockets, so there is no address to add HTTPS to.
    #[error("it listens only on unix sockets; add an IP listen to give it HTTPS")]
    NoIpListen,
}

/// Plans the edits that make `server` serve `target`.
pub fn plan_server(
    config: &Config,
    server: &Server,
    target: &HttpsTarget,
) -> Result<Vec<FileSplice>, PlanError> {
    let file = server.place.file;
    let bytes = &config.files[file].bytes;
    let cert_line = format!("ssl_certificate {};", quote_path(target.certificate));
    let key_line = format!("ssl_certificate_key {};", quote_path(target.key));
    if server.tls && !server.certificate_directives.is_empty() {
        return replace_certificate(config, server, target, cert_line, key_line);
    }
    let mut lines = Vec::new();
    if !server.tls {
        lines.extend(tls_listens(server, target)?);
    }
    lines.push(cert_line);
    lines.push(key_line);
    if !target.add_names.is_empty() {
        lines.push(format!("server_name {};", target.add_names.join(" ")));
    }
    if !server.tls
        && let Some(snippet) = target.tls_snippet
    {
        lines.push(format!("include {};", quote_path(snippet)));
    }
    if target.hsts && !server.hsts_header {
        lines.push(HSTS_LINE.to_string());
    }
    if target.redirect && !server.server_level_return && !server.https_redirect {
        lines.extend(redirect_lines(target.https_port));
    }

    // After the block's last own listen, else right after its opening brace.
    Ok(vec![FileSplice {
        file,
        splice: insert_after(bytes, last_listen_end(server), server.braces.1, &lines),
    }])
}

/// A TLS block that already names a certificate: its first `ssl_certificate` and
/// `ssl_certificate_key` lines are replaced, any further ones removed, and what is missing (the key
/// line, added names, HSTS, the redirect) goes right after the certificate line.
fn replace_certificate(
    config: &Config,
    server: &Server,
    target: &HttpsTarget,
    cert_line: String,
    key_line: String,
) -> Result<Vec<FileSplice>, PlanError> {
    let file = server.place.file;
    let bytes = &config.files[file].bytes;
    let own: Vec<&Place> = server
        .certificate_directives
        .iter()
        .chain(&server.certificate_key_directives)
        .collect();
    if let Some(shared) = own.iter().find(|p| p.file != file) {
        return Err(PlanError::SharedCertificateFile {
            file: config.files[shared.file].path.display().to_string(),
        });
    }
    let mut out = Vec::new();
    for (list, text) in [
        (&server.certificate_directives, &cert_line),
        (&server.certificate_key_directives, &key_line),
    ] {
        for (i, place) in list.iter().enumerate() {
            let splice = if i == 0 {
                replace_directive(bytes, place, text)
            } else {
                remove_directive(bytes, place)
            };
            out.push(FileSplice { file, splice });
        }
    }
    let mut extra = Vec::new();
    if server.certificate_key_directives.is_empty() {
        extra.push(key_line);
    }
    if !target.add_names.is_empty() {
        extra.push(format!("server_name {};", target.add_names.join(" ")));
    }
    if target.hsts && !server.hsts_header {
        extra.push(HSTS_LINE.to_string());
    }
    // Harmless on TLS listens (`$scheme` is https there); redirects any plain one.
    if target.redirect && !server.server_level_return && !server.https_redirect {
        extra.extend(redirect_lines(target.https_port));
    }
    if !extra.is_empty() {
        let anchor = server.certificate_directives[0];
        out.push(FileSplice {
            file,
            splice: insert_after(bytes, anchor.span.end, server.braces.1, &extra),
        });
    }
    Ok(out)
}

/// The `listen … ssl;` lines a plain block gets: one per host it listens on (`*:80` when it has
/// no listen), on the HTTPS port, without duplicates; unix sockets get none.
fn tls_listens(server: &Server, target: &HttpsTarget) -> Result<Vec<String>, PlanError> {
    let mut addresses: Vec<String> = Vec::new();
    let listens: Vec<(&str, bool, bool)> = if server.listens.is_empty() {
        vec![("*:80", false, false)]
    } else {
        server
            .listens
            .iter()
            .map(|l| (l.address.as_str(), l.ipv6, l.dual_stack))
            .collect()
    };
    for (address, ipv6, dual_stack) in listens {
        if address.starts_with("unix:") {
            continue;
        }
        let host = host_of(address, ipv6);
        for host in tls_hosts(
            host,
            ipv6,
            dual_stack,
            target.bound_hosts,
            target.dual_stack_bound,
        ) {
            let listen = match host {
                "*" => format!("listen {} ssl;", target.https_port),
                h => format!("listen {h}:{} ssl;", target.https_port),
            };
            if !addresses.contains(&listen) {
                addresses.push(listen);
            }
        }
    }
    if addresses.is_empty() {
        return Err(PlanError::NoIpListen);
    }
    Ok(addresses)
}

/// The host part of a normalised address (`*:80` → `*`, `[::]:80` → `[::]`, `1.2.3.4:80` →
/// `1.2.3.4`).
pub fn host_of(address: &str, ipv6: bool) -> &str {
    if ipv6 {
        return address
            .rsplit_once("]:")
            .map_or(address, |(h, _)| &address[..h.len() + 1]);
    }
    address.rsplit_once(':').map_or(address, |(h, _)| h)
}

/// Where this host answers TLS for `server` once the plan is applied: a block that speaks TLS
/// already, on its TLS listens (on the HTTPS port, marked `ssl` on any port, or every listen with
/// `ssl on`); a plain block, on `https_port`, its hosts as [`plan_server`] gives them from the
/// same `bound` hosts and `dual_stack_bound`. A connectable address per distinct listen host
/// (`*` → 127.0.0.1, `[::]` → ::1, a specific address as it is). Unix sockets are skipped.
pub fn tls_addresses(
    server: &Server,
    https_port: u16,
    bound: &[String],
    dual_stack_bound: bool,
) -> Vec<std::net::SocketAddr> {
    let mut hosts: Vec<(&str, u16)> = Vec::new();
    if !server.tls && server.listens.is_empty() {
        hosts.push(("*", https_port));
    }
    for l in &server.listens {
        if l.address.starts_with("unix:") {
            continue;
        }
        let host = host_of(&l.address, l.ipv6);
        if !server.tls {
            for h in tls_hosts(host, l.ipv6, l.dual_stack, bound, dual_stack_bound) {
                hosts.push((h, https_port));
            }
        } else if l.port == Some(https_port) || l.ssl || server.ssl_on {
            hosts.push((host, l.port.unwrap_or(https_port)));
        }
    }
    let mut out = Vec::new();
    for (host, port) in hosts {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = match host {
            "*" => std::net::IpAddr::from([127, 0, 0, 1]),
            "::" => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            h => match h.parse() {
                Ok(ip) => ip,
                Err(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            },
        };
        let addr = std::net::SocketAddr::new(ip, port);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// A path as an nginx argument (see [`edit::quote_arg`]).
fn quote_path(path: &Path) -> String {
    edit::quote_arg(&path.display().to_string())
}

/// Whether the directive at `span` is the only thing on its line (besides blanks and a trailing
/// comment), and that line's range.
fn own_line(bytes: &[u8], span: Range<usize>) -> Option<Range<usize>> {
    let line = edit::line_at(bytes, span.start);
    let before = &bytes[line.start..span.start];
    let after = &bytes[span.end..line.end];
    let after = after.trim_ascii_start();
    let alone = before.iter().all(|b| *b == b' ' || *b == b'\t')
        && (after.is_empty() || after.starts_with(b"#"));
    alone.then_some(line)
}

fn span_range(place: &Place) -> Range<usize> {
    place.span.start as usize..place.span.end as usize
}

/// Replaces a directive by `text`: the whole line (marked as ours) when the directive is alone on
/// it, else just the directive's bytes.
fn replace_directive(bytes: &[u8], place: &Place, text: &str) -> Splice {
    let span = span_range(place);
    match own_line(bytes, span.clone()) {
        Some(line) => Splice::replace(
            line.clone(),
            edit::managed_line(&bytes[line], text).expect("directive text is one line"),
        ),
        None => Splice::replace(span, text.as_bytes().to_vec()),
    }
}

/// Removes a directive: its whole line when it is alone on it, else just its bytes.
fn remove_directive(bytes: &[u8], place: &Place) -> Splice {
    let span = span_range(place);
    Splice::remove(own_line(bytes, span.clone()).unwrap_or(span))
}

/// Inserts `directives` as managed lines after the line holding offset `after` (indented like
/// the line after it, or like that line), or — when that line also closes the block at `close` —
/// right after `after`, starting a new line.
fn insert_after(bytes: &[u8], after: u32, close: u32, directives: &[String]) -> Splice {
    let after = after as usize;
    let line = edit::line_at(bytes, after.saturating_sub(1));
    let reference = {
        let next = edit::line_at(bytes, line.end);
        let next_bytes = &bytes[next.clone()];
        if line.end < close as usize
            && !next_bytes.trim_ascii().is_empty()
            && !next_bytes.trim_ascii().starts_with(b"}")
        {
            next_bytes.to_vec()
        } else {
            bytes[line.clone()].to_vec()
        }
    };
    let mut text = Vec::new();
    for d in directives {
        text.extend(edit::managed_line(&reference, d).expect("directive text is one line"));
    }
    if line.end <= close as usize && bytes[line.clone()].ends_with(b"\n") {
        Splice::insert(line.end, text)
    } else {
        let mut with_newline = edit::line_ending(&bytes[line]).to_vec();
        with_newline.extend(text);
        Splice::insert(after, with_newline)
    }
}

/// Groups splices by file, in file order.
pub fn by_file(splices: Vec<FileSplice>) -> std::collections::BTreeMap<FileId, Vec<Splice>> {
    let mut map: std::collections::BTreeMap<FileId, Vec<Splice>> =
        std::collections::BTreeMap::new();
    for s in splices {
        map.entry(s.file).or_default().push(s.splice);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites;
    use std::path::PathBuf;

    /// Plans `target` for every block of `conf` (a TLS block or a lone block gets
    /// [`plan_server`], a plain twin [`plan_redirect`]) and returns the edited file.
    fn apply_plan(conf: &str, target: &HttpsTarget) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let config = Config::load(&path).unwrap();
        let servers = sites::servers(&config).unwrap();
        let mut splices = Vec::new();
        for server in &servers {
            let edits = if server.tls || servers.len() == 1 {
                plan_server(&config, server, target).unwrap()
            } else {
                plan_redirect(&config, server, target.https_port)
            };
            splices.extend(edits.into_iter().map(|e| e.splice));
        }
        String::from_utf8(edit::apply(&config.files[0].bytes, &splices).unwrap()).unwrap()
    }

    fn plan(conf: &str) -> String {
        apply_plan(
            conf,
            &HttpsTarget {
                certificate: Path::new("/etc/enc365-nginx/live/a.example.com/fullchain.pem"),
                key: Path::new("/etc/enc365-nginx/live/a.example.com/privkey.pem"),
                https_port: 443,
                tls_snippet: Some(Path::new("/etc/enc365-nginx/nginx/ssl-params.conf")),
                redirect: false,
                hsts: false,
                bound_hosts: &[],
                dual_stack_bound: false,
                add_names: &[],
            },
        )
    }

    #[test]
    fn plain_block_gets_listens_certificate_and_snippet_after_its_last_listen() {
        let got = plan(
            "http {\n    server {\n        listen 80 default_server;\n        listen [::]:80 ipv6only=on;\n        server_name a.example.com;\n    }\n}\n",
        );
        assert_eq!(
            got,
            "http {\n    server {\n        listen 80 default_server;\n        listen [::]:80 ipv6only=on;\n\
             \x20       listen 443 ssl; # managed by enc365-nginx\n\
             \x20       listen [::]:443 ssl; # managed by enc365-nginx\n\
             \x20       ssl_certificate /etc/enc365-nginx/live/a.example.com/fullchain.pem; # managed by enc365-nginx\n\
             \x20       ssl_certificate_key /etc/enc365-nginx/live/a.example.com/privkey.pem; # managed by enc365-nginx\n\
             \x20       include /etc/enc365-nginx/nginx/ssl-params.conf; # managed by enc365-nginx\n\
             \x20       server_name a.example.com;\n    }\n}\n"
        );
    }

    #[test]
    fn tls_block_gets_only_its_certificate_lines_replaced() {
        let got = plan(
            "server {\n\tlisten 443 ssl;\n\tssl_certificate /old/cert.pem; # managed by Certbot\n\tssl_certificate /old/rsa.pem;\n\tssl_certificate_key /old/key.pem;\n\tssl_certificate_key /old/rsa.key;\n}\n"
                .replace("server {", "http { server {")
                .replace("}\n", "} }\n")
                .as_str(),
        );
        assert_eq!(
            got,
            "http { server {\n\tlisten 443 ssl;\n\
             \tssl_certificate /etc/enc365-nginx/live/a.example.com/fullchain.pem; # managed by enc365-nginx\n\
             \tssl_certificate_key /etc/enc365-nginx/live/a.example.com/privkey.pem; # managed by enc365-nginx\n} }\n"
        );
    }

    #[test]
    fn one_line_blocks_and_addresses_are_handled() {
        let got = plan("http { server { listen 127.0.0.1:8080; server_name a.example.com; } }\n");
        assert!(
            got.starts_with("http { server { listen 127.0.0.1:8080;\n"),
            "{got}"
        );
        assert!(
            got.contains("listen 127.0.0.1:443 ssl; # managed by enc365-nginx\n"),
            "{got}"
        );
        assert!(got.ends_with(" server_name a.example.com; } }\n"), "{got}");
    }

    fn plan_with(conf: &str, redirect: bool, hsts: bool, https_port: u16) -> String {
        apply_plan(
            conf,
            &HttpsTarget {
                certificate: Path::new("/c.pem"),
                key: Path::new("/k.pem"),
                https_port,
                tls_snippet: None,
                redirect,
                hsts,
                bound_hosts: &[],
                dual_stack_bound: false,
                add_names: &[],
            },
        )
    }

    #[test]
    fn redirect_and_hsts_lines_follow_the_certificate_lines() {
        let got = plan_with(
            "http {\n  server {\n    listen 80;\n    server_name a.example.com;\n  }\n}\n",
            true,
            true,
            8443,
        );
        assert_eq!(
            got,
            "http {\n  server {\n    listen 80;\n\
             \x20   listen 8443 ssl; # managed by enc365-nginx\n\
             \x20   ssl_certificate /c.pem; # managed by enc365-nginx\n\
             \x20   ssl_certificate_key /k.pem; # managed by enc365-nginx\n\
             \x20   add_header Strict-Transport-Security \"max-age=31536000\" always; # managed by enc365-nginx\n\
             \x20   set $enc365_redirect $scheme; # managed by enc365-nginx\n\
             \x20   if ($uri ~ \"^/\\.well-known/pki-validation/\") { set $enc365_redirect \"\"; } # managed by enc365-nginx\n\
             \x20   if ($enc365_redirect = http) { return 301 https://$host:8443$request_uri; } # managed by enc365-nginx\n\
             \x20   server_name a.example.com;\n  }\n}\n"
        );
    }

    #[test]
    fn redirect_goes_into_a_plain_twin_unless_it_returns_already_and_hsts_is_not_doubled() {
        let conf = "http {\n  server {\n    listen 80;\n    server_name a.example.com;\n  }\n  \
                    server {\n    listen 443 ssl;\n    server_name a.example.com;\n    \
                    ssl_certificate /old.pem;\n    ssl_certificate_key /old.key;\n    \
                    add_header strict-transport-security max-age=60;\n  }\n}\n";
        let got = plan_with(conf, true, true, 443);
        assert!(
            got.starts_with(
                "http {\n  server {\n    listen 80;\n    set $enc365_redirect $scheme; # managed by enc365-nginx\n"
            ),
            "{got}"
        );
        assert!(
            got.contains("return 301 https://$host$request_uri; } # managed"),
            "{got}"
        );
        assert_eq!(got.matches("trict-transport-security").count(), 1, "{got}");
        let returning = conf.replace(
            "server_name a.example.com;\n  }\n  server",
            "server_name a.example.com;\n    return 301 https://$host$request_uri;\n  }\n  server",
        );
        let got = plan_with(&returning, true, false, 443);
        assert_eq!(got.matches("managed by enc365-nginx").count(), 5, "{got}");
        // Planning again over our own lines adds nothing (a renewal or reinstall with --redirect).
        let again = plan_with(&plan_with(conf, true, true, 443), true, true, 443);
        assert_eq!(again, plan_with(conf, true, true, 443));
    }

    #[test]
    fn a_wildcard_listen_is_narrowed_to_the_addresses_already_holding_the_https_port() {
        let bound = vec!["127.0.0.1".to_string(), "[::1]".to_string()];
        assert_eq!(ssl_hosts("*", false, &bound), ["127.0.0.1"]);
        assert_eq!(ssl_hosts("[::]", true, &bound), ["[::1]"]);
        assert_eq!(ssl_hosts("10.0.0.1", false, &bound), ["10.0.0.1"]);
        let with_wildcard = vec!["127.0.0.1".to_string(), "*".to_string()];
        assert_eq!(ssl_hosts("*", false, &with_wildcard), ["*"]);
        assert_eq!(ssl_hosts("*", false, &[]), ["*"]);
        assert_eq!(ssl_hosts("[::]", true, &with_wildcard), ["[::]"]);
    }

    #[test]
    fn a_dual_stack_listen_gets_an_ipv4_twin_unless_a_dual_stack_socket_holds_the_port() {
        assert_eq!(tls_hosts("[::]", true, true, &[], false), ["[::]", "*"]);
        assert_eq!(tls_hosts("[::]", true, true, &[], true), ["[::]"]);
        assert_eq!(tls_hosts("[::]", true, false, &[], false), ["[::]"]);
        let bound = vec!["127.0.0.1".to_string()];
        assert_eq!(
            tls_hosts("[::]", true, true, &bound, false),
            ["[::]", "127.0.0.1"]
        );
    }

    #[test]
    fn a_tls_block_is_proven_on_its_own_tls_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(
            &path,
            "http { server { listen 127.0.0.1:80; listen 127.0.0.1:8443 ssl; ssl_certificate /c; } \
             server { listen 127.0.0.1:80; } }\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let servers = sites::servers(&config).unwrap();
        let addr = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(tls_addresses(&servers[0], 443, &[], false), [addr(8443)]);
        assert_eq!(tls_addresses(&servers[1], 443, &[], false), [addr(443)]);
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        assert_eq!(quote_path(&PathBuf::from("/a b/c")), "\"/a b/c\"");
        assert_eq!(quote_path(&PathBuf::from("/a/b")), "/a/b");
    }
}
