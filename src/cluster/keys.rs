//! The names of the keys a cluster keeps in etcd, relative to its prefix (CLUSTER.md's table),
//! built here and nowhere else. `<stem>` is a site's [`crate::paths::stem`]; a DCV `<id>` is
//! [`dcv_id`] of the host and URL path.

use sha2::{Digest, Sha256};

/// `/lock`: the orderer's run lock.
pub const LOCK: &str = "/lock";
/// `/nodes/`: one liveness entry per node.
pub const NODES: &str = "/nodes/";
/// `/orders/`: order records and their sealed pending keys.
pub const ORDERS: &str = "/orders/";
/// `/certs/`: issued certificates with their sealed keys.
pub const CERTS: &str = "/certs/";
/// `/dcv/`: HTTP validation files every node serves.
pub const DCV: &str = "/dcv/";
/// `/dcv-ack/`: per file, the nodes that serve it.
pub const DCV_ACK: &str = "/dcv-ack/";
/// `/status/`: per certificate, each node's state.
pub const STATUS: &str = "/status/";

/// The suffix of a sealed pending key beside its order record.
pub const KEY_SUFFIX: &str = ".key";

/// `/nodes/<node>`.
pub fn node(node: &str) -> String {
    format!("{NODES}{node}")
}

/// `/orders/<stem>`.
pub fn order(site: &str) -> String {
    format!("{ORDERS}{}", crate::paths::stem(site))
}

/// `/orders/<stem>.key`.
pub fn order_key(site: &str) -> String {
    format!("{}{KEY_SUFFIX}", order(site))
}

/// `/certs/<stem>`.
pub fn cert(site: &str) -> String {
    format!("{CERTS}{}", crate::paths::stem(site))
}

/// `/dcv/<id>`.
pub fn dcv(id: &str) -> String {
    format!("{DCV}{id}")
}

/// `/dcv-ack/<id>/` (every node's ack of one file).
pub fn dcv_acks(id: &str) -> String {
    format!("{DCV_ACK}{id}/")
}

/// `/dcv-ack/<id>/<node>`.
pub fn dcv_ack(id: &str, node: &str) -> String {
    format!("{}{node}", dcv_acks(id))
}

/// `/status/<stem>/<node>`.
pub fn status(site: &str, node: &str) -> String {
    format!("{STATUS}{}/{node}", crate::paths::stem(site))
}

/// The id of one validation file: 32 hex digits of SHA-256 over host and URL path, so the same
/// file gets the same id however often it is published.
pub fn dcv_id(host: &str, path: &str) -> String {
    let digest = Sha256::digest(format!("{host}\n{path}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract_and_use_the_site_stem() {
        assert_eq!(order("shop.test"), "/orders/shop.test");
        assert_eq!(order_key("*.shop.test"), "/orders/_.shop.test.key");
        assert_eq!(cert("shop.test"), "/certs/shop.test");
        assert_eq!(node("web1"), "/nodes/web1");
        assert_eq!(status("shop.test", "web2"), "/status/shop.test/web2");
        let id = dcv_id("shop.test", "/.well-known/pki-validation/a.txt");
        assert_eq!(id.len(), 32);
        assert_eq!(dcv_ack(&id, "web3"), format!("/dcv-ack/{id}/web3"));
        assert_ne!(
            id,
            dcv_id("www.shop.test", "/.well-known/pki-validation/a.txt")
        );
    }
}
