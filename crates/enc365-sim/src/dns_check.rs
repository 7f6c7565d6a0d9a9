//! DNS validation the way the CA does it: the CNAME of providers.md §1.6.3
//! (`_md5[.subdomain].topdomain` → `sha[0..32].sha[32..64].unique_id.comodoca.com`) asked for
//! at the authoritative server the simulator is pointed at (`--dns-server`), over UDP.
//!
//! Not here: the HTTP-file check (that is in `api`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// Checks that `server` answers `owner` CNAME `target` (case-insensitive, trailing dot ignored).
pub async fn check_cname(server: SocketAddr, owner: &str, target: &str) -> Result<(), String> {
    let mut qname = Name::from_ascii(owner).map_err(|e| format!("bad owner {owner}: {e}"))?;
    qname.set_fqdn(true);
    let mut message = Message::query();
    message.metadata.id = rand::random();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(qname.clone(), RecordType::CNAME));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf))
        .await
        .map_err(|_| format!("the DNS server {server} did not answer"))?
        .map_err(|e| e.to_string())?;
    let answer = Message::from_vec(&buf[..n]).map_err(|e| e.to_string())?;
    let found: Vec<String> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let want = target.trim_end_matches('.').to_ascii_lowercase();
    if found.contains(&want) {
        Ok(())
    } else if found.is_empty() {
        Err(format!("no CNAME at {owner} (asked {server})"))
    } else {
        Err(format!(
            "the CNAME at {owner} points at {}, not {want}",
            found.join(", ")
        ))
    }
}
