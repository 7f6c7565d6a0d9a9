//! The SCM mode's DNS check: the TXT record `_dnsauth.<name>` (providers.md §3.5) asked for at the
//! authoritative server the simulator is pointed at (`--dns-server`), over UDP.
//!
//! Not here: the CNAME check of the other modes (`dns_check`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// Checks that `server` answers `owner` TXT holding `value`.
pub async fn check_txt(server: SocketAddr, owner: &str, value: &str) -> Result<(), String> {
    let mut qname = Name::from_ascii(owner).map_err(|e| format!("bad owner {owner}: {e}"))?;
    qname.set_fqdn(true);
    let mut message = Message::query();
    message.metadata.id = rand::random();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(qname, RecordType::TXT));
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
    let found: Vec<String> = (answer.answers.iter())
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect();
    if found.iter().any(|v| v == value) {
        Ok(())
    } else {
        Err(format!(
            "no TXT {value:?} at {owner} (asked {server}; found {found:?})"
        ))
    }
}
