//! DNS on the wire: one query (or TSIG-signed update) to one server over UDP, falling back to
//! TCP when the answer is truncated; the zone a name is in (SOA walk); a zone's authoritative
//! servers; the walk from a resolver or parent server down the delegations to the zone and its
//! servers ([`walk`]); the values a server holds for a name and type.
//!
//! Not here: deciding what to publish, or waiting for propagation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType, TSigner};

/// How long one exchange waits for its answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Parses `ADDR` or `ADDR:PORT` (port 53 when left out).
pub fn server_addr(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    let with_port = if text.contains(':') {
        text.to_string()
    } else {
        format!("{text}:53")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| anyhow!("{text:?} is not a DNS server address (use ADDR or ADDR:PORT)"))
}

/// A DNS name from text, fully qualified.
pub fn name(text: &str) -> anyhow::Result<Name> {
    let mut n = Name::from_ascii(text).map_err(|e| anyhow!("{text:?} is not a DNS name: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

/// Sends `message` to `server` and returns the answer (signed with `tsig` when given, and the
/// answer's signature checked).
pub fn exchange(
    server: SocketAddr,
    mut message: Message,
    tsig: Option<&TSigner>,
) -> anyhow::Result<Message> {
    let mut verifier = None;
    if let Some(signer) = tsig {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        verifier = message.finalize(signer, now)?;
    }
    let bytes = message.to_vec()?;
    let mut answer = udp(server, &bytes)?;
    if Message::from_vec(&answer)?.metadata.truncation {
        answer = tcp(server, &bytes)?;
    }
    let reply = match verifier.as_mut() {
        Some(v) => {
            let checked = v.verify(&answer).map_err(|e| {
                anyhow!("{server} answered without a valid TSIG signature ({e}); check the key")
            });
            match checked {
                Ok(response) => response.into_message(),
                // A refusal (bad key name, bad signature) comes back unsigned: report its code.
                Err(e) => {
                    let m = Message::from_vec(&answer)?;
                    if m.metadata.response_code != ResponseCode::NoError {
                        m
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        None => Message::from_vec(&answer)?,
    };
    if reply.metadata.id != message.metadata.id {
        bail!("{server} answered another query");
    }
    Ok(reply)
}

fn udp(server: SocketAddr, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.connect(server)?;
    let mut buf = vec![0u8; 65535];
    for _ in 0..2 {
        socket.send(bytes)?;
        if let Ok(n) = socket.recv(&mut buf) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
    bail!(
        "{server} did not answer over UDP within {} s",
        TIMEOUT.as_secs() * 2
    )
}

fn tcp(server: SocketAddr, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT)
        .with_context(|| format!("could not connect to {server} over TCP"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let len = u16::try_from(bytes.len())?.to_be_bytes();
    stream.write_all(&len)?;
    stream.write_all(bytes)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// Asks `server` for `owner`/`rtype` (no recursion wanted unless `recurse`).
pub fn query(
    server: SocketAddr,
    owner: &str,
    rtype: RecordType,
    recurse: bool,
) -> anyhow::Result<Message> {
    let mut message = Message::query();
    message.metadata.id = rand::random();
    message.metadata.recursion_desired = recurse;
    message.add_query(Query::query(name(owner)?, rtype));
    exchange(server, message, None)
}

/// The values `server` holds for `owner`/`rtype`: CNAME targets lower-cased without the
/// trailing dot, TXT strings joined. A CNAME found when asking for TXT is returned as
/// `CNAME <target>` so callers can name it.
pub fn values(server: SocketAddr, owner: &str, rtype: RecordType) -> anyhow::Result<Vec<String>> {
    let answer = query(server, owner, rtype, false)?;
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        code => bail!("{server} answered {code} for {owner} {rtype}"),
    }
    let wanted = name(owner)?;
    Ok(answer
        .answers
        .iter()
        .filter(|r| r.name.eq_case(&wanted) || r.name == wanted)
        .filter_map(|r| match &r.data {
            RData::CNAME(target) if rtype == RecordType::CNAME => Some(plain(&target.0)),
            RData::CNAME(target) => Some(format!("CNAME {}", plain(&target.0))),
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// A name as text, lower-case, without the trailing dot.
pub fn plain(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// The zone `owner` is in, asking `server` (a resolver, or an authoritative server of a parent):
/// the owner of the SOA record in the answer or the authority section.
pub fn find_zone(server: SocketAddr, owner: &str, recurse: bool) -> anyhow::Result<String> {
    let mut current = owner.trim_end_matches('.').to_string();
    loop {
        let answer = query(server, &current, RecordType::SOA, recurse)?;
        let soa = (answer.answers.iter().chain(&answer.authorities))
            .find(|r| r.record_type() == RecordType::SOA);
        if let Some(soa) = soa {
            return Ok(plain(&soa.name));
        }
        // No SOA in the answer: walk up one label.
        match current.split_once('.') {
            Some((_, parent)) if parent.contains('.') => current = parent.to_string(),
            _ => bail!(
                "{server} knows no zone holding {owner} (no SOA record found walking up the \
                 name); check the name, or give the DNS server with --dns-server"
            ),
        }
    }
}

/// The authoritative servers of `zone`, from its NS records as `resolver` answers them, each
/// resolved to an address on port 53.
pub fn authoritative_servers(resolver: SocketAddr, zone: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let answer = query(resolver, zone, RecordType::NS, true)?;
    let mut out = Vec::new();
    for record in &answer.answers {
        if let RData::NS(ns) = &record.data {
            let host = plain(&ns.0);
            if let Ok(addrs) = (host.as_str(), 53).to_socket_addrs() {
                out.extend(addrs.filter(|a| !out.contains(a)).collect::<Vec<_>>());
            }
        }
    }
    if out.is_empty() {
        bail!(
            "found no authoritative server for {zone} (no NS record resolves); give the servers \
             to check with --dns-server or [dns] check_servers"
        );
    }
    Ok(out)
}

/// A zone and the servers authoritative for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneServers {
    /// The zone (no trailing dot).
    pub zone: String,
    /// Its authoritative servers, each on `port`.
    pub servers: Vec<SocketAddr>,
}

/// How many delegations [`walk`] follows before giving up.
const MAX_HOPS: usize = 16;

/// Finds the zone holding `owner` and its authoritative servers, starting at `start` (a
/// recursive resolver, which answers at once, or an authoritative server of a parent zone, which
/// refers to the child's servers): referrals are followed (glue first, else the name servers'
/// addresses as `start` answers them) until a server answers with the zone's SOA; then its NS
/// records are asked for. Servers found are asked on `port` (53 on the Internet).
pub fn walk(start: SocketAddr, owner: &str, port: u16) -> anyhow::Result<ZoneServers> {
    let mut server = start;
    for _ in 0..MAX_HOPS {
        let answer = query(server, owner, RecordType::SOA, true)?;
        let soa = (answer.answers.iter().chain(&answer.authorities))
            .find(|r| r.record_type() == RecordType::SOA);
        if let Some(soa) = soa {
            let zone = plain(&soa.name);
            let ns = query(server, &zone, RecordType::NS, true)?;
            let servers = name_server_addrs(start, &ns, port);
            if servers.is_empty() {
                bail!(
                    "{server} answers for zone {zone} but no address of its name servers was \
                     found; give the servers to check with --dns-server or [dns] check_servers"
                );
            }
            return Ok(ZoneServers { zone, servers });
        }
        let next = name_server_addrs(start, &answer, port);
        match next.first() {
            Some(addr) if *addr != server => server = *addr,
            _ => bail!(
                "{server} neither holds the zone of {owner} nor refers to its servers (walking \
                 from {start}); check [dns] resolver, or give the DNS server with --dns-server"
            ),
        }
    }
    bail!("more than {MAX_HOPS} delegations walking from {start} to {owner}")
}

/// The addresses (on `port`) of the name servers an answer names (NS records in its answer or
/// authority section): its glue, else their A/AAAA records as `resolver` answers them, else the
/// system's lookup.
fn name_server_addrs(resolver: SocketAddr, answer: &Message, port: u16) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let targets =
        (answer.answers.iter().chain(&answer.authorities)).filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.clone()),
            _ => None,
        });
    for target in targets {
        let glue: Vec<std::net::IpAddr> = (answer.additionals.iter())
            .filter(|r| r.name.eq_case(&target) || r.name == target)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        let ips = if glue.is_empty() {
            addresses_of(resolver, &plain(&target))
        } else {
            glue
        };
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// The IPv4 addresses of `host` as `resolver` answers them, else the system's lookup.
fn addresses_of(resolver: SocketAddr, host: &str) -> Vec<std::net::IpAddr> {
    let asked: Vec<std::net::IpAddr> = query(resolver, host, RecordType::A, true)
        .map(|m| {
            (m.answers.iter())
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !asked.is_empty() {
        return asked;
    }
    (host, 53)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

/// The first name server of `/etc/resolv.conf` (127.0.0.1 when there is none).
pub fn system_resolver() -> SocketAddr {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 53)))
}
