//! The JSON values a cluster keeps in etcd (CLUSTER.md's table), one type per kind of key.
//! Private keys appear only sealed ([`super::seal`]).

use serde::{Deserialize, Serialize};

/// `/nodes/<node>`: a node whose agent is alive (the key lives on the agent's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node's name.
    pub node: String,
    /// The tool's version on that node.
    pub version: String,
    /// When its agent started (Unix seconds).
    pub started_at: i64,
}

/// `/certs/<stem>`: a certificate proven installed by the node that ordered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertEntry {
    /// The site.
    pub site: String,
    /// The names it covers (as ordered).
    pub names: Vec<String>,
    /// The leaf's serial number (hex).
    pub serial: String,
    /// SHA-256 of the leaf (hex), as the lineage records it.
    #[serde(default)]
    pub fingerprint: String,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// The chain, leaf first.
    pub fullchain_pem: String,
    /// The private key, sealed for this entry's etcd key.
    pub sealed_key: String,
    /// The node that ordered and first installed it.
    pub issued_by_node: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// `/dcv/<id>`: one HTTP validation file every node must serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcvEntry {
    /// The site it validates.
    pub site: String,
    /// The name (Host) it is fetched for.
    pub host: String,
    /// The URL path (`/.well-known/pki-validation/X.txt`).
    pub path: String,
    /// The exact bytes to serve.
    pub body: String,
}

/// `/dcv-ack/<id>/<node>`: that node serves the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcvAck {
    /// The node.
    pub node: String,
    /// When it checked (Unix seconds).
    pub at: i64,
}

/// Where a certificate stands on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Installed and proven by handshake.
    Installed,
    /// Being installed.
    Verifying,
    /// The install failed and was rolled back (see the reason).
    Failed,
    /// The node has no live agent (shown by `status --cluster`, never stored).
    Unreachable,
}

/// `/status/<stem>/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// The site.
    pub site: String,
    /// Where it stands.
    pub state: NodeState,
    /// The serial it is about (hex).
    pub serial: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (Unix seconds).
    pub at: i64,
}

/// The serial number (hex, lower case) of the first certificate in a PEM chain.
pub fn leaf_serial(fullchain_pem: &str) -> Option<String> {
    let pem = x509_parser::pem::Pem::iter_from_buffer(fullchain_pem.as_bytes())
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
    Some(cert.tbs_certificate.raw_serial_as_string().replace(':', ""))
}

/// Parses a JSON value read from etcd, naming the key when it is not what we wrote.
pub fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("the etcd value at {key} is not what this tool writes: {e}"))
}

/// The value as JSON bytes.
pub fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
