//! Domain-control validation over HTTP: where each name's validation files go so that this nginx
//! serves them at `http://<name>/.well-known/pki-validation/<file>` (or under the prefix the CA's
//! challenge names, such as ACME's `/.well-known/acme-challenge/`: [`plan_at`]), the temporary config edits
//! that needs, writing and removing the files, and fetching them back the way a CA would.
//!
//! For each plain-HTTP server block of a site:
//! - a usable webroot (a `root` without variables, and no link nor file where
//!   `.well-known/pki-validation/` or `.well-known/acme-challenge/` go below it; no server-level
//!   `return`, nor an `if` holding one, which would run before any location; no server-level
//!   access control; and the location nginx picks for the path not serving from elsewhere — a
//!   proxy at `location /`, a `^~ /.well-known/` with another root) gets the files in
//!   `<root>/.well-known/pki-validation/`;
//! - any other block (proxy-only, `root` with variables, redirect-only) gets a temporary
//!   `location ^~ /.well-known/pki-validation/ { alias <state>/dcv/; }` — preceded, when the block
//!   has a server-level `return` (or an `if` holding one, or a redirecting `rewrite`), by a
//!   `rewrite … last` that skips it for that path only, and opened to anonymous clients when the
//!   block restricts access (`auth_basic`, `auth_request`, `deny`);
//! - a name no plain-HTTP block answers on the HTTP port (when nginx owns that port) gets a
//!   temporary port-80 server for the validation path;
//! - a block that needs the temporary location but has its own `location
//!   /.well-known/pki-validation/` is not edited (a second location there fails `nginx -t`): its
//!   names are reported as blocked.
//!
//! Every temporary line is marked as ours and goes away when the transaction that added it is
//! restored. Knows file names and contents, nothing of which CA asked for them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::discovery::Discovery;
use crate::nginx::edit;
use crate::nginx::https::FileSplice;
use crate::nginx::sites::Server;
use crate::site::Site;

/// The URL path under which validation files are served.
pub const WELL_KNOWN: &str = "/.well-known/pki-validation/";

/// Where one name's validation files go and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The name.
    pub name: String,
    /// The directory the files are written to.
    pub dir: PathBuf,
    /// The port of the plain-HTTP listen that answers for the name.
    pub port: u16,
}

/// Everything needed to publish a site's validation files.
#[derive(Debug, Clone, Default)]
pub struct Publication {
    /// One route per name.
    pub routes: Vec<Route>,
    /// Temporary config edits (empty when every name is served from a webroot).
    pub splices: Vec<FileSplice>,
    /// Names whose validation path the user's own config claims, so no file of ours can be
    /// served there, with what to do about it.
    pub blocked: Vec<(String, String)>,
    /// Names served from the temporary location although their block has a webroot, because
    /// writing there is not safe (a link or a file where a directory goes), with why.
    pub fallbacks: Vec<(String, String)>,
    /// The URL path prefix the routes serve (empty: [`WELL_KNOWN`]); the CA's challenge decides
    /// it (ACME HTTP-01: `/.well-known/acme-challenge/`).
    pub well_known: String,
}

impl Publication {
    /// The URL path prefix under which this publication's routes serve files.
    pub fn served_prefix(&self) -> &str {
        if self.well_known.is_empty() {
            WELL_KNOWN
        } else {
            &self.well_known
        }
    }
}

/// A request path under [`WELL_KNOWN`], for asking which location would answer it.
const PROBE_URI: &str = "/.well-known/pki-validation/probe.txt";

/// The webroot of a server block, when files written there are served as they are: no
/// server-level `return`, a `root` without variables, and the location nginx picks for the
/// validation path (the longest matching prefix) serving files from that root.
pub fn usable_webroot(server: &Server, prefix: &Path) -> Option<PathBuf> {
    usable_webroot_for(server, prefix, PROBE_URI)
}

/// [`usable_webroot`] for files served under the path of `probe_uri` (a file under the prefix).
fn usable_webroot_for(server: &Server, prefix: &Path, probe_uri: &str) -> Option<PathBuf> {
    if server.server_level_return || server.conditional_return || server.access_restricted.any() {
        return None;
    }
    let longest = server
        .locations
        .iter()
        .filter(|l| l.prefix_of(probe_uri))
        .max_by_key(|l| l.uri.len());
    if longest.is_some_and(|l| l.serves_elsewhere) {
        return None;
    }
    let root = server.root.as_deref()?;
    if root.contains('$') {
        return None;
    }
    let dir = prefix.join(root);
    dir.is_dir().then_some(dir)
}

/// The ports of a block's plain-HTTP listens (nginx's implicit 80 when it has none).
pub fn plain_ports(server: &Server) -> Vec<u16> {
    if server.listens.is_empty() {
        return if server.ssl_on { Vec::new() } else { vec![80] };
    }
    if server.ssl_on {
        return Vec::new();
    }
    let mut ports: Vec<u16> = server
        .listens
        .iter()
        .filter(|l| !l.ssl)
        .filter_map(|l| l.port)
        .collect();
    ports.dedup();
    ports
}

/// Plans how `site`'s names get their validation files served. `dcv_dir` is our own directory for
/// blocks without a usable webroot; `http_port` is where a temporary server listens.
pub fn plan(
    found: &Discovery,
    site: &Site,
    prefix: &Path,
    dcv_dir: &Path,
    http_port: u16,
) -> Publication {
    plan_at(found, site, (prefix, dcv_dir, http_port), WELL_KNOWN)
}

/// [`plan`] for files served under the URL path prefix `well_known` (which ends with `/`): the
/// webroot directory and the temporary location follow it.
pub fn plan_at(
    found: &Discovery,
    site: &Site,
    (prefix, dcv_dir, http_port): (&Path, &Path, u16),
    well_known: &str,
) -> Publication {
    let mut publication = Publication {
        well_known: well_known.to_string(),
        ..Publication::default()
    };
    let probe_uri = format!("{well_known}probe.txt");
    let alias = edit::quote_arg(&format!("{}/", dcv_dir.display()));
    let location = format!("location ^~ {well_known} {{ alias {alias}; }}");
    let mut uncovered: Vec<String> = Vec::new();
    let mut injected: Vec<usize> = Vec::new();
    // When nginx itself answers the HTTP port, a CA's request for a name goes to a block on that
    // port: a block answering the name only on another port is never asked. (When nginx does
    // not, something in front of it forwards, and the block's own port is the best guess.)
    let owns_http_port = found
        .servers
        .iter()
        .any(|s| plain_ports(s).contains(&http_port));
    for name in &site.names {
        let answering: Vec<usize> = site
            .servers
            .iter()
            .copied()
            .filter(|&i| {
                !plain_ports(&found.servers[i]).is_empty()
                    && found.names[i].iter().any(|n| &n.name == name)
            })
            .collect();
        let block = answering
            .iter()
            .copied()
            .find(|&i| plain_ports(&found.servers[i]).contains(&http_port))
            .or_else(|| answering.first().copied().filter(|_| !owns_http_port));
        let Some(i) = block else {
            uncovered.push(name.clone());
            continue;
        };
        let server = &found.servers[i];
        let ports = plain_ports(server);
        let port = if ports.contains(&http_port) {
            http_port
        } else {
            ports[0]
        };
        let webroot = usable_webroot_for(server, prefix, &probe_uri).filter(|root| {
            let obstacle = crate::fs_safe::webroot_obstacle(root);
            if let Some(why) = &obstacle {
                publication.fallbacks.push((
                    name.clone(),
                    format!("{why}: validation goes through the temporary location instead"),
                ));
            }
            obstacle.is_none()
        });
        match webroot {
            Some(root) => publication.routes.push(Route {
                name: name.clone(),
                dir: root.join(well_known.trim_matches('/')),
                port,
            }),
            None => {
                if let Some(own) = server
                    .locations
                    .iter()
                    .find(|l| l.prefix_of(&probe_uri) && l.uri == well_known)
                {
                    // A second location on the same prefix would make nginx -t fail.
                    publication.blocked.push((
                        name.clone(),
                        format!(
                            "its server block has its own `location {}` answering the validation \
                             path; let it serve files from the site's root (or remove it), then \
                             run again",
                            own.uri
                        ),
                    ));
                    continue;
                }
                publication.routes.push(Route {
                    name: name.clone(),
                    dir: dcv_dir.to_path_buf(),
                    port,
                });
                if !injected.contains(&i) {
                    injected.push(i);
                    let mut lines = Vec::new();
                    if server.server_level_return || server.conditional_return {
                        let path = well_known.replace('.', r"\.");
                        lines.push(format!("rewrite ^({path}.+)$ $1 last;"));
                    }
                    lines.push(open_location(&location, server.access_restricted));
                    let bytes = &found.config.files[server.place.file].bytes;
                    publication.splices.push(FileSplice {
                        file: server.place.file,
                        splice: after_open_brace(bytes, server.braces.0 as usize, &lines),
                    });
                }
            }
        }
    }
    if !uncovered.is_empty() {
        let routes = (location.as_str(), dcv_dir, http_port);
        add_temporary_server(&mut publication, found, site, uncovered, routes);
    }
    publication
}

/// Adds a temporary port-`http_port` server (with the validation `location` aliasing `dcv_dir`)
/// for the names no plain-HTTP block answers, after the site's first block.
fn add_temporary_server(
    publication: &mut Publication,
    found: &Discovery,
    site: &Site,
    uncovered: Vec<String>,
    (location, dcv_dir, http_port): (&str, &Path, u16),
) {
    let first = &found.servers[site.servers[0]];
    let bytes = &found.config.files[first.place.file].bytes;
    let listens: String = temporary_listens(found, http_port)
        .iter()
        .map(|l| format!("listen {l}; "))
        .collect();
    let text = format!(
        "server {{ {listens}server_name {}; {location} }}",
        uncovered.join(" ")
    );
    let close = first.braces.1 as usize;
    let line = edit::line_at(bytes, close);
    let reference = &bytes[edit::line_at(bytes, first.place.span.start as usize)];
    let mut insert = Vec::new();
    if !bytes[line.clone()].ends_with(b"\n") {
        insert.extend_from_slice(b"\n");
    }
    insert.extend(edit::managed_line(reference, &text).expect("one line"));
    publication.splices.push(FileSplice {
        file: first.place.file,
        splice: edit::Splice::insert(line.end, insert),
    });
    for name in uncovered {
        publication.routes.push(Route {
            name,
            dir: dcv_dir.to_path_buf(),
            port: http_port,
        });
    }
}

/// The addresses a temporary port-`http_port` server listens on: nginx's wildcard when nothing
/// listens on that port yet or something listens there on the wildcard, else every address
/// already bound on it — a new wildcard listen next to `127.0.0.1:80` would make the reload fail
/// to bind, as the old workers hold the specific address.
fn temporary_listens(found: &Discovery, http_port: u16) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for server in &found.servers {
        if server.listens.is_empty() && http_port == 80 {
            return vec![http_port.to_string()];
        }
        for listen in server.listens.iter().filter(|l| l.port == Some(http_port)) {
            let host = crate::nginx::https::host_of(&listen.address, listen.ipv6);
            if host == "*" {
                return vec![http_port.to_string()];
            }
            let address = format!("{host}:{http_port}");
            if !hosts.contains(&address) {
                hosts.push(address);
            }
        }
    }
    if hosts.is_empty() {
        hosts.push(http_port.to_string());
    }
    hosts
}

/// The temporary location, opened to anonymous clients (the CA) when the block restricts
/// access: the location's own access settings replace the server's for that path only.
fn open_location(location: &str, access: crate::nginx::sites::AccessControl) -> String {
    let mut open = String::new();
    if access.basic {
        open.push_str("auth_basic off; ");
    }
    if access.request {
        open.push_str("auth_request off; ");
    }
    if access.address {
        open.push_str("allow all; ");
    }
    location.replacen("{ ", &format!("{{ {open}"), 1)
}

/// Inserts managed lines right after the line holding a block's `{`, indented like the block's
/// first line inside (or four spaces deeper than the brace's line when the block is on one line).
fn after_open_brace(bytes: &[u8], open: usize, lines: &[String]) -> edit::Splice {
    let brace_line = edit::line_at(bytes, open);
    let rest_of_line = &bytes[open + 1..brace_line.end];
    let own_line =
        rest_of_line.trim_ascii().is_empty() || rest_of_line.trim_ascii_start().starts_with(b"#");
    let next = edit::line_at(bytes, brace_line.end);
    let mut reference: Vec<u8> = if own_line && !bytes[next.clone()].trim_ascii().is_empty() {
        bytes[next].to_vec()
    } else {
        let mut r = edit::indentation(&bytes[brace_line.clone()]).to_vec();
        r.extend_from_slice(b"    x\n");
        r
    };
    if edit::indentation(&reference).is_empty() && own_line {
        reference = b"    x\n".to_vec();
    }
    let mut text = Vec::new();
    for l in lines {
        text.extend(edit::managed_line(&reference, l).expect("one line"));
    }
    if own_line {
        edit::Splice::insert(brace_line.end, text)
    } else {
        let mut with_newline = b"\n".to_vec();
        with_newline.extend(text);
        edit::Splice::insert(open + 1, with_newline)
    }
}

/// Writes a validation file (`dir/file_name`, mode 0644; directories missing on the way created
/// 0755). Returns the directories it created, outermost first, for [`remove_files`].
///
/// Webroots belong to site owners: below the webroot every directory is opened without following
/// links and the file is created, never written through one (see [`crate::fs_safe`]); a link
/// planted on the way fails the write.
pub fn write_file(dir: &Path, file_name: &str, content: &[u8]) -> anyhow::Result<Vec<PathBuf>> {
    crate::fs_safe::write_file(&dir.join(file_name), content, 0o644)
}

/// Removes validation files and then the directories [`write_file`] created (when empty), each
/// through a handle on its parent: nothing is removed through a link.
pub fn remove_files(files: &[PathBuf], created_dirs: &[PathBuf]) {
    for f in files {
        if let Err(e) = crate::fs_safe::remove(f, false) {
            tracing::warn!("{e:#}");
        }
    }
    for d in created_dirs.iter().rev() {
        if let Err(e) = crate::fs_safe::remove(d, true) {
            tracing::debug!("{e:#}");
        }
    }
}

/// Resolves `name` to addresses, as the CA would: the system resolver, or — when
/// `ENC365_HOSTS_FILE` names a hosts-format file — that file alone (for tests and staging setups
/// that must not touch /etc/hosts).
pub fn resolve(name: &str) -> Vec<std::net::IpAddr> {
    if let Some(file) = std::env::var_os("ENC365_HOSTS_FILE") {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        return text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let ip = parts.next()?.parse().ok()?;
                parts.any(|h| h.eq_ignore_ascii_case(name)).then_some(ip)
            })
            .collect();
    }
    (name, 0)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

/// The IP addresses on this host's network interfaces (empty when they cannot be listed).
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|i| i.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .collect()
}

/// Whether `ip` is an address of this host: loopback, or on one of `local`'s interfaces. A
/// public address that a NAT forwards here is not; the HTTP probe decides for those.
pub fn is_local(ip: std::net::IpAddr, local: &[std::net::IpAddr]) -> bool {
    ip.is_loopback() || local.contains(&ip)
}

/// What an HTTP fetch of a validation file returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// GETs `path` from `addr` with `Host: host` (HTTP/1.0, no redirects followed: a CA that gets a
/// redirect may not follow it, so a redirect is a failure here too). Bodies over 64 KiB are cut.
pub fn fetch(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<Fetched> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: enc365-nginx\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(64 * 1024 + 8192).read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header in the answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status in the answer"))?;
    Ok(Fetched {
        status,
        body: raw[split + 4..].to_vec(),
    })
}

/// Checks that `http://name{path}` served through `addr` returns exactly `content`; the error
/// says what came instead.
pub fn check_served(
    addr: SocketAddr,
    name: &str,
    path: &str,
    content: &[u8],
) -> Result<(), String> {
    match fetch(addr, name, path, Duration::from_secs(10)) {
        Err(e) => Err(format!(
            "http://{name}{path} could not be fetched through {addr}: {e}"
        )),
        Ok(f) if f.status != 200 => Err(format!(
            "http://{name}{path} answered HTTP {} instead of the file (a redirect, a CDN or \
             another server in front?)",
            f.status
        )),
        Ok(f) if f.body != content => Err(format!(
            "http://{name}{path} served other content than the file we published"
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_hosts_addresses_include_loopback_and_exclude_documentation_addresses() {
        let local = local_addresses();
        assert!(
            local.contains(&std::net::IpAddr::from([127, 0, 0, 1])),
            "{local:?}"
        );
        assert!(is_local(std::net::IpAddr::from([127, 0, 0, 9]), &local));
        assert!(!is_local(std::net::IpAddr::from([192, 0, 2, 10]), &local));
        assert!(!is_local("2001:db8::1".parse().unwrap(), &local));
    }
}
