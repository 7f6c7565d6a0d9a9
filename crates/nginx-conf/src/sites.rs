//! The sites of a configuration: every `server { }` block in `http` context, with what nginx makes
//! of it — listens, names, webroot and TLS state.
//!
//! Only `server` blocks directly in `http` (through any includes) count: `upstream`'s `server`
//! lines and anything under `stream` or `mail` do not. Server-level directives are read through
//! includes inside the block; directives inside `location`, `if` and other nested blocks are not
//! server-level and are ignored here. TLS follows nginx: `listen … ssl`, the legacy `ssl on;`, and
//! an address:port marked `ssl` in one block is TLS for every block on it. `ssl_certificate` set at
//! `http` level is inherited by servers that set none.
//!
//! Knows nothing of certificate authorities, and does not judge names (that is enc365-nginx's `names` module).

use std::borrow::Cow;

use crate::fast_hash::FastSet;
use crate::lexer::{Span, Word};
use crate::tree::{Body, Config, Directive, FileId, ParseError};

/// Where a directive is: its file and byte span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The file holding the directive.
    pub file: FileId,
    /// The directive's bytes in that file.
    pub span: Span,
}

/// One `listen` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The arguments, quotes removed, joined by one space (`[::]:443 ssl http2`).
    pub text: String,
    /// The address part, normalised for comparison (`*:80`, `[::]:443`, `127.0.0.1:8080`,
    /// `unix:/run/x.sock`).
    pub address: String,
    /// The port, when the address has one (unix sockets have none).
    pub port: Option<u16>,
    /// Whether the address is IPv6.
    pub ipv6: bool,
    /// Whether this directive says `ssl`.
    pub ssl: bool,
    /// `ipv6only=off`: one IPv6 socket that takes IPv4 connections too.
    pub dual_stack: bool,
    /// Where the directive is (it may come from an include inside the block).
    pub place: Place,
}

/// How a `location` matches a request URI (`location [modifier] uri`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationMatch {
    /// A prefix (no modifier).
    Prefix,
    /// A prefix that, when it is the longest match, skips regex locations (`^~`).
    PrefixNoRegex,
    /// Exactly this URI (`=`).
    Exact,
    /// A regular expression (`~`, `~*`); never evaluated here.
    Regex,
    /// A named location (`@name`), reached only by internal redirects.
    Named,
}

/// One `location` block directly in a server block (through includes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// How it matches.
    pub matching: LocationMatch,
    /// The URI, prefix or regex, as written (quotes removed).
    pub uri: String,
    /// Whether it serves from somewhere other than the server's `root`: it passes requests on
    /// (`proxy_pass`, `fastcgi_pass`, …) or sets its own `root` or `alias`. (A `return` or `deny`
    /// is a refusal, not another source, and does not count.)
    pub serves_elsewhere: bool,
}

impl Location {
    /// Whether this is a prefix location nginx would consider for `uri` (`Prefix` or
    /// `PrefixNoRegex` whose prefix starts `uri`).
    pub fn prefix_of(&self, uri: &str) -> bool {
        matches!(
            self.matching,
            LocationMatch::Prefix | LocationMatch::PrefixNoRegex
        ) && uri.starts_with(self.uri.as_str())
    }
}

/// Server-level access control a request must pass, by the modules that enforce it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessControl {
    /// `auth_basic` other than `off`.
    pub basic: bool,
    /// `auth_request`.
    pub request: bool,
    /// A `deny` (an allow list, or a block).
    pub address: bool,
}

impl AccessControl {
    /// Whether any control applies.
    pub fn any(&self) -> bool {
        self.basic || self.request || self.address
    }
}

/// One `server { }` block in `http` context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Where the `server` block is.
    pub place: Place,
    /// The `listen` directives, in order; empty means nginx listens on port 80.
    pub listens: Vec<Listen>,
    /// Every `server_name` argument, quotes removed, in order.
    pub server_names: Vec<String>,
    /// The first server-level `root`, as written.
    pub root: Option<String>,
    /// The effective `ssl_certificate` files (server level, else inherited from `http`).
    pub ssl_certificates: Vec<String>,
    /// The effective `ssl_certificate_key` files.
    pub ssl_certificate_keys: Vec<String>,
    /// `ssl on;` (legacy TLS switch) at server level.
    pub ssl_on: bool,
    /// Whether nginx speaks TLS on at least one of this block's addresses.
    pub tls: bool,
    /// Offsets of the block's `{` and `}` in its file.
    pub braces: (u32, u32),
    /// The block's own `ssl_certificate` directives (not inherited ones), in order.
    pub certificate_directives: Vec<Place>,
    /// The block's own `ssl_certificate_key` directives, in order.
    pub certificate_key_directives: Vec<Place>,
    /// A server-level `return` (it runs before any `location` is chosen).
    pub server_level_return: bool,
    /// A server-level `if` holding a `return` or a redirecting `rewrite` (not our own
    /// redirect's), or a server-level `rewrite` that redirects: like a server-level `return`, it
    /// may answer before any `location` is chosen.
    pub conditional_return: bool,
    /// Server-level access control that refuses anonymous clients: `auth_basic` (not `off`),
    /// `auth_request`, or a `deny`.
    pub access_restricted: AccessControl,
    /// A server-level `add_header Strict-Transport-Security …`.
    pub hsts_header: bool,
    /// A server-level `set $enc365_redirect …`: the HTTPS redirect we add is there already.
    pub https_redirect: bool,
    /// The block's own `location` blocks (not nested ones), in order.
    pub locations: Vec<Location>,
}

impl Server {
    /// The listens, or nginx's implicit `*:80` when the block has none.
    pub fn effective_ports(&self) -> Vec<Option<u16>> {
        if self.listens.is_empty() {
            vec![Some(80)]
        } else {
            self.listens.iter().map(|l| l.port).collect()
        }
    }
}

/// Finds every server block of a loaded configuration, in nginx's order.
pub fn servers(config: &Config) -> Result<Vec<Server>, ParseError> {
    let mut walker = Walker {
        config,
        blocks: Vec::new(),
        http_certs: Vec::new(),
        http_keys: Vec::new(),
    };
    walker.walk(0, config.main().directives(), Context::Main)?;
    let Walker {
        blocks,
        http_certs,
        http_keys,
        ..
    } = walker;
    let mut servers = read_servers(config, &blocks, &http_certs, &http_keys);
    // An address:port marked ssl anywhere is TLS for every server on it.
    let ssl_addresses: FastSet<&str> = servers
        .iter()
        .flat_map(|s| &s.listens)
        .filter(|l| l.ssl)
        .map(|l| l.address.as_str())
        .collect();
    let tls: Vec<bool> = on_two_threads(&servers, |part| {
        part.iter()
            .map(|s| {
                s.ssl_on
                    || s.listens
                        .iter()
                        .any(|l| l.ssl || ssl_addresses.contains(l.address.as_str()))
            })
            .collect()
    });
    for (s, tls) in servers.iter_mut().zip(tls) {
        s.tls = tls;
    }
    Ok(servers)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Main,
    Http,
}

/// Finds the `server` blocks in `http` context (and `http`'s certificates), in nginx's order.
struct Walker<'a> {
    config: &'a Config,
    /// Each `server` block: its file and directive.
    blocks: Vec<(FileId, Directive)>,
    http_certs: Vec<String>,
    http_keys: Vec<String>,
}

/// `f` over the first and second half of `items` on two threads when there are many (a
/// 50,000-site host has some 70,000 server blocks), on this one otherwise; the results in order.
fn on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    if items.len() < 1000 {
        return f(items);
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| f(second));
        let mut all = f(first);
        all.extend(other.join().unwrap_or_else(|_| f(second)));
        all
    })
}

/// Reads every server block of `blocks`, in order: on every core when there are many (a
/// 10,000-site host has over 10,000 blocks, each read independently of the others). A block
/// without certificates of its own inherits `http`'s (`http_certs`, `http_keys`).
fn read_servers(
    config: &Config,
    blocks: &[(FileId, Directive)],
    http_certs: &[String],
    http_keys: &[String],
) -> Vec<Server> {
    let reader = ServerReader { config };
    let read = |part: &[(FileId, Directive)]| -> Vec<Server> {
        part.iter()
            .map(|(f, d)| {
                let mut s = reader.server(*f, d);
                if s.ssl_certificates.is_empty() {
                    s.ssl_certificates = http_certs.to_vec();
                }
                if s.ssl_certificate_keys.is_empty() {
                    s.ssl_certificate_keys = http_keys.to_vec();
                }
                s
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if blocks.len() < 1000 || threads < 2 {
        return read(blocks);
    }
    let chunk = blocks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = blocks.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|p| (p, scope.spawn(move || read(p)))).collect();
        let mut servers = Vec::with_capacity(blocks.len());
        servers.extend(read(first));
        for (part, handle) in others {
            servers.extend(handle.join().unwrap_or_else(|_| read(part)));
        }
        servers
    })
}

/// Reads what nginx makes of one `server` block.
struct ServerReader<'a> {
    config: &'a Config,
}

impl Walker<'_> {
    fn walk(&mut self, file: FileId, list: &[Directive], ctx: Context) -> Result<(), ParseError> {
        let cf = &self.config.files[file];
        let src = &cf.bytes;
        for d in list {
            let config = self.config;
            for &inc in cf.included(d) {
                self.walk(inc, config.files[inc].directives(), ctx)?;
            }
            match ctx {
                Context::Main if d.is("http", src) => {
                    self.walk(file, cf.children(d), Context::Http)?
                }
                Context::Http if d.is("server", src) => {
                    if !matches!(d.body, Body::Block { .. }) {
                        return Err(self.config.files[file].error_at(
                            d.span.start,
                            "expected \"{\" after \"server\" in http context",
                        ));
                    }
                    self.blocks.push((file, *d));
                }
                Context::Http if d.is("ssl_certificate", src) => {
                    self.http_certs
                        .extend(cf.args(d).first().map(|w| w.text(src)));
                }
                Context::Http if d.is("ssl_certificate_key", src) => {
                    self.http_keys
                        .extend(cf.args(d).first().map(|w| w.text(src)));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl ServerReader<'_> {
    fn server(&self, file: FileId, block: &Directive) -> Server {
        let braces = match block.body {
            Body::Block { open, close, .. } => (open, close),
            _ => (block.span.start, block.span.end),
        };
        let mut server = Server {
            place: Place {
                file,
                span: block.span,
            },
            listens: Vec::new(),
            server_names: Vec::new(),
            root: None,
            ssl_certificates: Vec::new(),
            ssl_certificate_keys: Vec::new(),
            ssl_on: false,
            tls: false,
            braces,
            certificate_directives: Vec::new(),
            certificate_key_directives: Vec::new(),
            server_level_return: false,
            conditional_return: false,
            access_restricted: AccessControl::default(),
            hsts_header: false,
            https_redirect: false,
            locations: Vec::new(),
        };
        self.server_level(file, self.config.files[file].children(block), &mut server);
        server
    }

    /// Reads server-level directives of `list` (following includes, not entering nested blocks).
    fn server_level(&self, file: FileId, list: &[Directive], server: &mut Server) {
        let cf = &self.config.files[file];
        let src = &cf.bytes;
        for d in list {
            for &inc in cf.included(d) {
                self.server_level(inc, self.config.files[inc].directives(), server);
            }
            let name = d.name.span.slice(src);
            let args = cf.args(d);
            let first = || args.first().map(|w| text_of(w, src));
            match name {
                b"listen" => {
                    let args: Vec<Cow<str>> = args.iter().map(|w| text_of(w, src)).collect();
                    server
                        .listens
                        .push(parse_listen(&args, Place { file, span: d.span }));
                }
                b"server_name" => {
                    server.server_names.reserve(args.len());
                    server.server_names.extend(args.iter().map(|w| w.text(src)));
                }
                b"root" if server.root.is_none() => server.root = first().map(Cow::into_owned),
                b"ssl_certificate" => {
                    server.ssl_certificates.extend(first().map(Cow::into_owned));
                    server
                        .certificate_directives
                        .push(Place { file, span: d.span });
                }
                b"ssl_certificate_key" => {
                    server
                        .ssl_certificate_keys
                        .extend(first().map(Cow::into_owned));
                    server
                        .certificate_key_directives
                        .push(Place { file, span: d.span });
                }
                b"return" => server.server_level_return = true,
                b"add_header"
                    if first()
                        .is_some_and(|h| h.eq_ignore_ascii_case("strict-transport-security")) =>
                {
                    server.hsts_header = true
                }
                b"set" if first().is_some_and(|v| v == "$enc365_redirect") => {
                    server.https_redirect = true
                }
                b"ssl" => server.ssl_on = first().is_some_and(|v| v.eq_ignore_ascii_case("on")),
                b"if"
                    if !args.iter().any(|w| {
                        w.span
                            .slice(src)
                            .windows(b"$enc365_redirect".len())
                            .any(|x| x == b"$enc365_redirect")
                    }) =>
                {
                    server.conditional_return |=
                        cf.children(d).iter().any(|c| match c.name.span.slice(src) {
                            b"return" => true,
                            b"rewrite" => {
                                let words: Vec<String> =
                                    cf.args(c).iter().map(|w| w.text(src)).collect();
                                redirecting_rewrite(&words)
                            }
                            _ => false,
                        });
                }
                b"rewrite" => {
                    let v: Vec<std::borrow::Cow<[u8]>> = match args {
                        [_, _] | [_, _, _] => args.iter().map(|w| w.value(src)).collect(),
                        _ => Vec::new(),
                    };
                    let words: Vec<std::borrow::Cow<str>> =
                        v.iter().map(|v| String::from_utf8_lossy(v)).collect();
                    server.conditional_return |= redirecting_rewrite(&words);
                }
                b"auth_basic" if first().is_some_and(|v| v != "off") => {
                    server.access_restricted.basic = true
                }
                b"auth_request" if first().is_some_and(|v| v != "off") => {
                    server.access_restricted.request = true
                }
                b"deny" => server.access_restricted.address = true,
                b"location" => {
                    // No allocation but the URI kept: thousands of sites have many locations
                    // each, and discovery must stay fast.
                    let parsed = match args {
                        [a] => parse_location(&[&a.value(src)]),
                        [a, b] => parse_location(&[&a.value(src), &b.value(src)]),
                        _ => None,
                    };
                    if let Some((matching, uri)) = parsed {
                        let serves_elsewhere = cf.children(d).iter().any(|c| {
                            ELSEWHERE.contains(&c.name.span.slice(src))
                                || c.name.span.slice(src).ends_with(b"_pass")
                        });
                        server.locations.push(Location {
                            matching,
                            uri,
                            serves_elsewhere,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether a `rewrite`'s arguments (`regex replacement [flag]`) answer with a redirect: the
/// `permanent`/`redirect` flag, or a replacement that is an absolute URL.
fn redirecting_rewrite<S: AsRef<str>>(args: &[S]) -> bool {
    let flag = args.get(2).map(AsRef::as_ref);
    let absolute = args.get(1).is_some_and(|r| {
        ["http://", "https://", "$scheme://"]
            .iter()
            .any(|p| r.as_ref().starts_with(p))
    });
    matches!(flag, Some("permanent" | "redirect")) || absolute
}

/// Directives that make a location serve from somewhere other than the server's `root`
/// (besides every `*_pass`).
const ELSEWHERE: [&[u8]; 2] = [b"root", b"alias"];

/// Reads a `location` directive's arguments: `[modifier] uri`, the modifier possibly glued to
/// the URI (`location =/x`, `location ~\.php$`) as nginx allows.
fn parse_location(args: &[&[u8]]) -> Option<(LocationMatch, String)> {
    let modifier = |m: &[u8]| match m {
        b"=" => Some(LocationMatch::Exact),
        b"^~" => Some(LocationMatch::PrefixNoRegex),
        b"~" | b"~*" => Some(LocationMatch::Regex),
        _ => None,
    };
    let owned = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match args {
        [m, uri] => modifier(m).map(|k| (k, owned(uri))),
        [one] => {
            if one.starts_with(b"@") {
                return Some((LocationMatch::Named, owned(one)));
            }
            for m in [&b"^~"[..], b"~*", b"=", b"~"] {
                if let Some(rest) = one.strip_prefix(m)
                    && !rest.is_empty()
                {
                    return modifier(m).map(|k| (k, owned(rest)));
                }
            }
            Some((LocationMatch::Prefix, owned(one)))
        }
        _ => None,
    }
}

/// A word's value as text, borrowed from the file when it can be (nearly always).
fn text_of<'a>(word: &Word, src: &'a [u8]) -> Cow<'a, str> {
    match word.value(src) {
        Cow::Borrowed(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        },
        Cow::Owned(_) => Cow::Owned(word.text(src)),
    }
}

/// Reads a `listen` directive's arguments.
fn parse_listen(args: &[Cow<str>], place: Place) -> Listen {
    let mut text = String::with_capacity(args.iter().map(|a| a.len() + 1).sum());
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(a);
    }
    let addr = args.first().map_or("", |a| a.as_ref());
    let ssl = args.iter().skip(1).any(|a| a == "ssl");
    let dual_stack = args.iter().skip(1).any(|a| a == "ipv6only=off");
    let (address, port, ipv6) = normalise_address(addr);
    Listen {
        text,
        address,
        port,
        ipv6,
        ssl,
        dual_stack,
        place,
    }
}

/// `80` → `*:80`; `0.0.0.0:80` → `*:80`; `[::]:443` stays; a host without port gets `:80`.
fn normalise_address(addr: &str) -> (String, Option<u16>, bool) {
    if addr.starts_with("unix:") {
        return (addr.to_string(), None, false);
    }
    if let Ok(port) = addr.parse::<u16>() {
        return (host_port("*", "", Some(port)), Some(port), false);
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').unwrap_or((rest, ""));
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse::<u16>().ok(),
            None => Some(80),
        };
        return (host_port("[", host, port), port, true);
    }
    fn wildcard(host: &str) -> &str {
        if host == "0.0.0.0" || host == "*" {
            "*"
        } else {
            host
        }
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().ok();
            (host_port(wildcard(host), "", port), port, false)
        }
        None => (host_port(wildcard(addr), "", Some(80)), Some(80), false),
    }
}

/// `{host}:{port}` (nothing after the colon without a port); with `host` `[`, `[{inner}]:{port}`.
/// Built by hand: a 10,000-site host has some 20,000 listens.
fn host_port(host: &str, inner: &str, port: Option<u16>) -> String {
    let mut out = String::with_capacity(host.len() + inner.len() + 8);
    out.push_str(host);
    if host == "[" {
        out.push_str(inner);
        out.push(']');
    }
    out.push(':');
    if let Some(mut p) = port {
        let mut digits = [0u8; 5];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (p % 10) as u8;
            p /= 10;
            if p == 0 {
                break;
            }
        }
        out.extend(digits[at..].iter().map(|&d| char::from(d)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_level_if_that_returns_is_noted_but_not_our_own_redirect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(
            &path,
            "http { server { if ($scheme = http) { return 301 https://$host$request_uri; } } \
             server { if ($enc365_redirect = http) { return 301 https://$host; } \
             if ($bad) { set $x 1; } } }\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let found = servers(&config).unwrap();
        assert!(found[0].conditional_return);
        assert!(!found[1].conditional_return);
        assert!(!found[0].server_level_return);
    }

    #[test]
    fn redirecting_rewrites_and_access_control_at_server_level_are_noted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(
            &path,
            "http { server { rewrite ^(.*)$ https://$host$1; auth_basic \"x\"; } \
             server { rewrite ^/old$ /new permanent; deny all; } \
             server { rewrite ^/a$ /b last; auth_basic off; \
             if (!-e $request_filename) { rewrite ^(.+)$ /index.php?q=$1 last; } } }\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let found = servers(&config).unwrap();
        assert!(found[0].conditional_return && found[1].conditional_return);
        assert!(!found[2].conditional_return);
        assert!(found[0].access_restricted.basic && !found[0].access_restricted.address);
        assert!(found[1].access_restricted.address);
        assert!(!found[2].access_restricted.any());
    }

    #[test]
    fn locations_are_read_with_their_modifier_and_whether_they_answer_themselves() {
        let args = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        assert_eq!(
            parse_location(&args(&["^~", "/.well-known/"])),
            Some((LocationMatch::PrefixNoRegex, "/.well-known/".into()))
        );
        assert_eq!(
            parse_location(&args(&["=/x"])),
            Some((LocationMatch::Exact, "/x".into()))
        );
        assert_eq!(
            parse_location(&args(&["~*\\.php$"])),
            Some((LocationMatch::Regex, "\\.php$".into()))
        );
        assert_eq!(
            parse_location(&args(&["@app"])),
            Some((LocationMatch::Named, "@app".into()))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(
            &path,
            "http { server { root /w; location / { try_files $uri @app; } \
             location /api/ { proxy_pass http://u; } location ^~ /.well-known/ { root /o; } } }\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let found = servers(&config).unwrap();
        let got: Vec<(&str, bool)> = found[0]
            .locations
            .iter()
            .map(|l| (l.uri.as_str(), l.serves_elsewhere))
            .collect();
        assert_eq!(
            got,
            [("/", false), ("/api/", true), ("/.well-known/", true)]
        );
        assert!(found[0].locations[2].prefix_of("/.well-known/pki-validation/x"));
        assert!(!found[0].locations[1].prefix_of("/.well-known/pki-validation/x"));
    }

    #[test]
    fn addresses_normalise_like_nginx_binds_them() {
        assert_eq!(normalise_address("443"), ("*:443".into(), Some(443), false));
        assert_eq!(
            normalise_address("0.0.0.0:443"),
            ("*:443".into(), Some(443), false)
        );
        assert_eq!(
            normalise_address("*:8080"),
            ("*:8080".into(), Some(8080), false)
        );
        assert_eq!(
            normalise_address("[::]:443"),
            ("[::]:443".into(), Some(443), true)
        );
        assert_eq!(
            normalise_address("[::1]"),
            ("[::1]:80".into(), Some(80), true)
        );
        assert_eq!(
            normalise_address("127.0.0.1"),
            ("127.0.0.1:80".into(), Some(80), false)
        );
        assert_eq!(
            normalise_address("unix:/run/a.sock"),
            ("unix:/run/a.sock".into(), None, false)
        );
    }
}
