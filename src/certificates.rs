//! A lineage's files and what `status` tells about them, as `certbot certificates` does: the four
//! files every lineage holds (`cert.pem`, `chain.pem`, `fullchain.pem`, `privkey.pem`), writing
//! them, the key type of a certificate, and which sites' configuration uses it.
//!
//! Not here: ordering, or editing nginx configuration (only read, to find the sites using a
//! certificate).

use std::path::{Path, PathBuf};

use crate::discovery::Discovery;
use crate::site::Site;

/// The four files of a lineage, in `<config-dir>/live/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageFiles {
    /// The leaf certificate alone.
    pub cert: PathBuf,
    /// The intermediates alone.
    pub chain: PathBuf,
    /// Leaf then intermediates: what nginx serves.
    pub fullchain: PathBuf,
    /// The private key (0600).
    pub privkey: PathBuf,
}

impl LineageFiles {
    /// The files of lineage `name`.
    pub fn of(config_dir: &Path, name: &str) -> LineageFiles {
        let dir = crate::paths::live_dir(config_dir, name);
        LineageFiles {
            cert: dir.join(crate::paths::CERT),
            chain: dir.join(crate::paths::CHAIN),
            fullchain: dir.join(crate::paths::FULLCHAIN),
            privkey: dir.join(crate::paths::PRIVKEY),
        }
    }

    /// All four, in the order they are written.
    pub fn all(&self) -> [&PathBuf; 4] {
        [&self.privkey, &self.cert, &self.chain, &self.fullchain]
    }

    /// Creates the lineage directory (0755) when missing.
    pub fn ensure_dir(&self) -> anyhow::Result<()> {
        match self.fullchain.parent() {
            Some(dir) => crate::store::ensure_dir(dir, 0o755),
            None => Ok(()),
        }
    }

    /// Writes all four (each atomically: the key 0600 first, the fullchain last, once all four
    /// are flushed; the directory flushed once). Back them up in the transaction first
    /// ([`LineageFiles::all`]).
    pub fn write(&self, fullchain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let (leaf, chain) = split_chain(fullchain_pem);
        crate::store::write_atomic_group(&[
            (&self.privkey, key_pem.as_bytes(), 0o600),
            (&self.cert, leaf.as_bytes(), 0o644),
            (&self.chain, chain.as_bytes(), 0o644),
            (&self.fullchain, fullchain_pem.as_bytes(), 0o644),
        ])
    }
}

/// The leaf (first PEM block) and the rest of a chain, each as PEM text ending in a newline.
pub fn split_chain(fullchain_pem: &str) -> (String, String) {
    const END: &str = "-----END CERTIFICATE-----";
    match fullchain_pem.find(END) {
        Some(at) => {
            let leaf_end = at + END.len();
            let leaf = format!("{}\n", fullchain_pem[..leaf_end].trim_start());
            let rest = fullchain_pem[leaf_end..].trim();
            let chain = if rest.is_empty() {
                String::new()
            } else {
                format!("{rest}\n")
            };
            (leaf, chain)
        }
        None => (fullchain_pem.to_string(), String::new()),
    }
}

/// The key type of a PEM certificate's public key, as the config names key types (`rsa2048`,
/// `ecdsa-p256`, …), or the algorithm as found.
pub fn key_type(cert_pem: &[u8]) -> Option<String> {
    use x509_parser::public_key::PublicKey;
    let pem = x509_parser::pem::Pem::iter_from_buffer(cert_pem)
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
    let spki = cert.public_key();
    Some(match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => format!("rsa{}", rsa.key_size()),
        PublicKey::EC(point) => match point.key_size() {
            256 => "ecdsa-p256".into(),
            384 => "ecdsa-p384".into(),
            bits => format!("ecdsa-{bits}"),
        },
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("unknown")
            .to_lowercase(),
    })
}

/// The sites whose TLS blocks serve this lineage's certificate (its fullchain or cert file),
/// by site name, in nginx order.
pub fn sites_using(found: &Discovery, sites: &[Site], files: &LineageFiles) -> Vec<String> {
    let ours = [&files.fullchain, &files.cert];
    let canonical: Vec<PathBuf> = ours
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let serves = |i: usize| {
        let server = &found.servers[i];
        server.tls
            && server.ssl_certificates.iter().any(|f| {
                let path = found.config.conf_dir.join(f);
                ours.contains(&&path)
                    || std::fs::canonicalize(&path).is_ok_and(|c| canonical.contains(&c))
            })
    };
    sites
        .iter()
        .filter(|s| s.servers.iter().any(|&i| serves(i)))
        .map(|s| s.name.clone())
        .collect()
}

/// Whether a certificate for `names` covers `name` (exactly, or by a one-label wildcard).
pub fn covers(names: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|n| {
        *n == name
            || n.strip_prefix("*.").is_some_and(|base| {
                name.split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == base)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_splits_into_the_leaf_and_the_rest() {
        let pem = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";
        let (leaf, chain) = split_chain(pem);
        assert_eq!(
            leaf,
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            chain,
            "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(format!("{leaf}{chain}"), pem);
    }

    #[test]
    fn a_wildcard_covers_one_label() {
        let names = vec!["*.example.com".to_string(), "example.com".to_string()];
        assert!(covers(&names, "www.example.com"));
        assert!(covers(&names, "Example.com."));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "other.com"));
    }
}
