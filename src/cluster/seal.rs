//! Sealing private keys with the cluster key, so etcd (its operators, its backups) never holds
//! a usable key: AES-256-GCM (aws-lc-rs) with a random 96-bit nonce, the associated data being
//! the absolute etcd key the value is stored at — a sealed key moved to another entry does not
//! open. A sealed value is base64 of `nonce(12) || ciphertext+tag`.
//!
//! The cluster key is 32 random bytes in a 0600 file (base64 text, one line), made by
//! `enc365-nginx cluster-key --generate` and copied to every node. It never appears in argv,
//! output, logs or etcd. Not here: where sealed values are stored ([`super::mirror`]).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{anyhow, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The cluster key (redacted in Debug).
pub struct ClusterKey([u8; 32]);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Not base64, or too short to hold a nonce and a tag.
    #[error("the sealed value at {0} is malformed")]
    Malformed(String),
    /// The tag did not verify: another cluster key, or a value moved from another entry.
    #[error(
        "the sealed value at {0} does not open with this node's cluster key (a different key \
         file, or the value was moved from another entry); copy the cluster key file of the \
         other nodes here"
    )]
    Refused(String),
}

impl ClusterKey {
    /// Makes a new random key.
    pub fn generate() -> anyhow::Result<ClusterKey> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow!("the system random generator failed"))?;
        Ok(ClusterKey(bytes))
    }

    /// The file's text: the key as base64, one line.
    pub fn to_file_text(&self) -> String {
        format!("{}\n", STANDARD.encode(self.0))
    }

    /// Reads the key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> anyhow::Result<ClusterKey> {
        let fix = format!(
            "make one with `enc365-nginx cluster-key --generate` on the first node and copy it \
             (mode 0600) to {} on every other node",
            path.display()
        );
        let meta = std::fs::metadata(path)
            .map_err(|e| anyhow!("cannot read the cluster key {}: {e}; {fix}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "the cluster key {} can be read by group or others (mode {mode:03o}); fix it \
                 with: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
        let text = std::fs::read(path)
            .map_err(|e| anyhow!("cannot read the cluster key {}: {e}", path.display()))?;
        let decoded = STANDARD
            .decode(String::from_utf8_lossy(&text).trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        decoded.map(ClusterKey).ok_or_else(|| {
            anyhow!(
                "{} is not a cluster key (32 bytes as base64); {fix}",
                path.display()
            )
        })
    }

    /// Seals `plain` for the etcd key `aad`.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow!("the system random generator failed"))?;
        let mut data = plain.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(STANDARD.encode(out))
    }

    /// Opens a value [`ClusterKey::seal`] made for the etcd key `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = STANDARD
            .decode(sealed.trim())
            .map_err(|_| SealError::Malformed(aad.to_string()))?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed(aad.to_string()));
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SealError::Malformed(aad.to_string()))?;
        let mut body = body.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
            .map_err(|_| SealError::Refused(aad.to_string()))?;
        Ok(plain.to_vec())
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES-256 key"))
    }
}

/// Writes a new cluster key to `path` (0600), refusing to overwrite an existing file.
pub fn generate_file(path: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        bail!(
            "{} exists; a new cluster key would make every key sealed with the old one \
             unreadable. Move it away first if you really mean to replace it",
            path.display()
        );
    }
    if let Some(dir) = (path.parent()).filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        crate::store::ensure_dir(dir, 0o700)?;
    }
    let key = ClusterKey::generate()?;
    crate::store::write_atomic(path, key.to_file_text().as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_sealed_key_opens_with_the_same_key_and_etcd_key() {
        let key = ClusterKey::generate().unwrap();
        let sealed = key.seal("/enc365/certs/shop.test", PEM).unwrap();
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_eq!(key.open("/enc365/certs/shop.test", &sealed).unwrap(), PEM);
        // A fresh nonce each time.
        assert_ne!(sealed, key.seal("/enc365/certs/shop.test", PEM).unwrap());
    }

    #[test]
    fn another_cluster_key_is_refused() {
        let sealed = ClusterKey::generate()
            .unwrap()
            .seal("/p/certs/a", PEM)
            .unwrap();
        let other = ClusterKey::generate().unwrap();
        assert!(matches!(
            other.open("/p/certs/a", &sealed),
            Err(SealError::Refused(_))
        ));
    }

    #[test]
    fn a_sealed_key_moved_to_another_entry_is_refused() {
        let key = ClusterKey::generate().unwrap();
        let sealed = key.seal("/p/certs/a.test", PEM).unwrap();
        assert!(matches!(
            key.open("/p/certs/b.test", &sealed),
            Err(SealError::Refused(_))
        ));
        assert!(matches!(
            key.open("/p/certs/a.test", "AAAA"),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn the_key_file_is_made_0600_read_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        generate_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = ClusterKey::load(&path).unwrap();
        assert_eq!(format!("{key:?}"), "ClusterKey(<redacted>)");
        let before = std::fs::read(&path).unwrap();
        assert!(
            generate_file(&path)
                .unwrap_err()
                .to_string()
                .contains("exists")
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            ClusterKey::load(&path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
    }
}
