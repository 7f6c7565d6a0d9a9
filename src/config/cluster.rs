//! The `[cluster]` table: where a fleet of nodes keeps its shared state (issue 18). Absent, or
//! `backend = "local"`, means today's behaviour: everything in the local state directory. With
//! `backend = "etcd"` the orders, lineages, the run lock and published validation files live in
//! etcd under `prefix` (see [`crate::cluster`]).
//!
//! Not here: connecting to etcd ([`crate::cluster::etcd`]) or reading the cluster key
//! ([`crate::cluster::seal`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the shared state lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterBackend {
    /// The local state directory only (one node; today's behaviour).
    #[default]
    Local,
    /// An etcd v3 cluster shared by every node.
    Etcd,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `local` (the default) or `etcd`.
    #[serde(default)]
    pub backend: ClusterBackend,
    /// The etcd endpoints (`http://127.0.0.1:2379`, `https://etcd1:2379`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Every key of this cluster lives under it (`/enc365/prod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// This node's name (default: the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The cluster key file (32 random bytes, 0600) that seals private keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Seconds: the run lock's and a node's liveness lease (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<u64>,
    /// Seconds the orderer waits for every live node to confirm a validation file (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_timeout: Option<u64>,
    /// The CA certificate etcd's server certificates are checked against (https endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The client certificate presented to etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key_file: Option<PathBuf>,
}

/// The default lease TTL in seconds.
pub const DEFAULT_LEASE_TTL: u64 = 15;
/// The default wait for validation acks, in seconds.
pub const DEFAULT_ACK_TIMEOUT: u64 = 120;

/// The `[cluster]` table checked and completed: what the cluster code works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdCluster {
    /// The etcd endpoints.
    pub endpoints: Vec<String>,
    /// The key prefix, starting with `/`, without a trailing `/`.
    pub prefix: String,
    /// This node's name.
    pub node: String,
    /// The cluster key file.
    pub key_file: PathBuf,
    /// Lease TTL, seconds.
    pub lease_ttl: u64,
    /// Wait for validation acks, seconds.
    pub ack_timeout: u64,
    /// TLS: the CA file, and the client certificate and key (both or neither).
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate.
    pub cert_file: Option<PathBuf>,
    /// TLS client key.
    pub cert_key_file: Option<PathBuf>,
}

impl ClusterSettings {
    /// The checked etcd settings, `Ok(None)` for the local backend. `config_dir` resolves a
    /// relative `key_file` (default `<config-dir>/cluster.key`). Errors name the key and the fix.
    pub fn etcd(&self, config_dir: &std::path::Path) -> Result<Option<EtcdCluster>, String> {
        if self.backend == ClusterBackend::Local {
            return Ok(None);
        }
        if self.endpoints.is_empty() {
            return Err(
                "[cluster] backend = \"etcd\" needs endpoints = [\"http://HOST:2379\", …]".into(),
            );
        }
        for e in &self.endpoints {
            let https = e.starts_with("https://");
            if !https && !e.starts_with("http://") {
                return Err(format!(
                    "[cluster] endpoint {e:?} must start with http:// or https://"
                ));
            }
            if https && self.ca_file.is_none() {
                return Err(format!(
                    "[cluster] endpoint {e:?} is https: set ca_file to the CA that signed etcd's \
                     certificate"
                ));
            }
        }
        if self.cert_file.is_some() != self.cert_key_file.is_some() {
            return Err(
                "[cluster] cert_file and cert_key_file go together: set both or neither".into(),
            );
        }
        let prefix = check_prefix(self.prefix.as_deref().unwrap_or("/enc365"))?;
        let node = match &self.node {
            Some(n) => n.clone(),
            None => host_name()?,
        };
        check_node(&node)?;
        let lease_ttl = self.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
        if !(2..=3600).contains(&lease_ttl) {
            return Err(format!(
                "[cluster] lease_ttl = {lease_ttl}: give a number of seconds from 2 to 3600"
            ));
        }
        let key_file = self
            .key_file
            .clone()
            .unwrap_or_else(|| "cluster.key".into());
        Ok(Some(EtcdCluster {
            endpoints: self.endpoints.clone(),
            prefix,
            node,
            key_file: config_dir.join(key_file),
            lease_ttl,
            ack_timeout: self.ack_timeout.unwrap_or(DEFAULT_ACK_TIMEOUT),
            ca_file: self.ca_file.as_ref().map(|p| config_dir.join(p)),
            cert_file: self.cert_file.as_ref().map(|p| config_dir.join(p)),
            cert_key_file: self.cert_key_file.as_ref().map(|p| config_dir.join(p)),
        }))
    }
}

/// A prefix starts with `/`, has no trailing `/` (unless it is `/` alone, then it becomes empty)
/// and no empty or dot segments.
fn check_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.trim_end_matches('/');
    let ok = prefix.starts_with('/')
        && trimmed
            .split('/')
            .skip(1)
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if !ok {
        return Err(format!(
            "[cluster] prefix {prefix:?} must be a path like \"/enc365/prod\" (starting with /, \
             no empty or dot segments)"
        ));
    }
    Ok(trimmed.to_string())
}

/// A node name is a key segment: `[A-Za-z0-9._-]`, 1 to 64 characters.
fn check_node(node: &str) -> Result<(), String> {
    let ok = !node.is_empty()
        && node.len() <= 64
        && node != "."
        && node != ".."
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "[cluster] node {node:?} must be 1 to 64 characters of letters, digits, '.', '-' or \
             '_'; set node = \"web1\""
        ))
    }
}

/// This host's name, for a node that does not set one.
fn host_name() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .map(|h| h.split('.').next().unwrap_or_default().to_string())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "[cluster] could not read the host name: set node = \"web1\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<EtcdCluster>, String> {
        let s: ClusterSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        s.etcd(std::path::Path::new("/etc/enc365-nginx"))
    }

    #[test]
    fn an_etcd_table_is_completed_with_defaults_relative_to_the_config_dir() {
        let c = parse(
            "backend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/enc365/prod/\"\nnode = \"web1\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.prefix, "/enc365/prod");
        assert_eq!(c.node, "web1");
        assert_eq!(c.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(c.ack_timeout, DEFAULT_ACK_TIMEOUT);
        assert_eq!(c.key_file, PathBuf::from("/etc/enc365-nginx/cluster.key"));
    }

    #[test]
    fn the_local_backend_needs_nothing_else() {
        assert_eq!(parse("backend = \"local\"").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn bad_cluster_tables_are_refused_with_the_fix() {
        for (text, says) in [
            ("backend = \"etcd\"", "needs endpoints"),
            (
                "backend = \"etcd\"\nendpoints = [\"127.0.0.1:2379\"]",
                "http://",
            ),
            (
                "backend = \"etcd\"\nendpoints = [\"https://e:2379\"]",
                "ca_file",
            ),
            (
                "backend = \"etcd\"\nendpoints = [\"http://e:2379\"]\ncert_file = \"c.pem\"",
                "both or neither",
            ),
            (
                "backend = \"etcd\"\nendpoints = [\"http://e:2379\"]\nprefix = \"enc\"",
                "prefix",
            ),
            (
                "backend = \"etcd\"\nendpoints = [\"http://e:2379\"]\nnode = \"a/b\"",
                "node",
            ),
            (
                "backend = \"etcd\"\nendpoints = [\"http://e:2379\"]\nnode = \"a\"\nlease_ttl = 1",
                "lease_ttl",
            ),
            ("backend = \"zookeeper\"", "unknown variant"),
            ("backend = \"etcd\"\nendpoint = \"x\"", "unknown field"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
