//! Private keys and certificate signing requests, made locally with rcgen (aws-lc-rs backend).
//!
//! The private key never leaves the host: [`generate`] makes a key of the configured [`KeyType`] and a
//! PKCS#10 CSR whose subject alternative names are exactly the names to be ordered (DNS names,
//! wildcards, IP addresses). The CN is the first name, except that a first name which is an IP address
//! is replaced by [`IP_CN_PLACEHOLDER`], because Encryption365 refuses a CSR whose CN is an IP
//! (providers.md §1.8). [`write_private_key`] stores the key as PKCS#8 PEM with mode 0600.
//!
//! Not here: deciding which names are certifiable (that is the names module's job); names arrive
//! already in A-label (punycode) form.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

pub mod pair;
pub mod pool;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, RsaKeySize, SanType};
use serde::{Deserialize, Serialize};

/// The CN Encryption365 clients put in a CSR whose first name is an IP address.
pub const IP_CN_PLACEHOLDER: &str = "common-name-for-public-ip-address.com";

/// The key algorithms and sizes we can order certificates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KeyType {
    /// RSA, 2048-bit modulus (accepted everywhere; ~30× slower to generate than ECDSA).
    #[serde(rename = "rsa2048")]
    Rsa2048,
    /// RSA, 3072-bit modulus.
    #[serde(rename = "rsa3072")]
    Rsa3072,
    /// RSA, 4096-bit modulus.
    #[serde(rename = "rsa4096")]
    Rsa4096,
    /// ECDSA on NIST P-256 (the default, as certbot's: every provider we order from takes it).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
}

impl KeyType {
    /// Every key type, in the order the docs list them.
    pub const ALL: [KeyType; 5] = [
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
    ];

    /// The name used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<KeyType, KeyError> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| KeyError::UnknownKeyType(s.to_string()))
    }
}

/// Why a key or CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key type name is not one we know.
    #[error("unknown key type {0:?}: use one of rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384")]
    UnknownKeyType(String),
    /// No names were given.
    #[error("a CSR needs at least one name")]
    NoNames,
    /// A name cannot go into a certificate as given.
    #[error("{name:?} cannot go into a CSR: {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The background key generator stopped before making this key.
    #[error("the key generator stopped before making this key; run again")]
    Stopped,
    /// The crypto library failed.
    #[error("could not generate the key or CSR: {0}")]
    Crypto(#[from] rcgen::Error),
}

/// A private key in PKCS#8 PEM. Its `Debug` does not print the key.
#[derive(Clone)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The PEM text (`-----BEGIN PRIVATE KEY-----`), for writing to a 0600 file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem([redacted])")
    }
}

/// A fresh private key and the CSR made with it.
#[derive(Debug, Clone)]
pub struct KeyAndCsr {
    /// The key type used.
    pub key_type: KeyType,
    /// The private key, PKCS#8 PEM.
    pub key: PrivateKeyPem,
    /// The CSR, PEM (`-----BEGIN CERTIFICATE REQUEST-----`, LF line endings, final newline).
    pub csr_pem: String,
    /// The CSR, DER (what the DCV hashes are computed over).
    pub csr_der: Vec<u8>,
    /// The CN put in the subject.
    pub common_name: String,
}

/// Makes a key of `key_type` and a CSR for `names` (DNS names, `*.` wildcards, IPv4/IPv6 addresses),
/// SANs in the given order; the CN is the first name, or [`IP_CN_PLACEHOLDER`] when that is an IP.
pub fn generate(key_type: KeyType, names: &[String]) -> Result<KeyAndCsr, KeyError> {
    let request = CsrRequest::new(names)?;
    request.sign(key_type, new_key(key_type)?)
}

/// Makes a fresh private key of `key_type` (the slow part of [`generate`]: an RSA key takes tens
/// of milliseconds; it names nothing, so it can be made before the names are known).
pub fn new_key(key_type: KeyType) -> Result<KeyPair, KeyError> {
    Ok(match key_type {
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?,
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?,
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)?,
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
    })
}

/// The names of a CSR, checked (see [`generate`]): signed with a key by [`CsrRequest::sign`].
pub struct CsrRequest {
    sans: Vec<SanType>,
    common_name: String,
}

impl CsrRequest {
    /// Checks `names` can go into a CSR (at least one; each a host name, wildcard or address).
    pub fn new(names: &[String]) -> Result<CsrRequest, KeyError> {
        let first = names.first().ok_or(KeyError::NoNames)?;
        let sans = names
            .iter()
            .map(|n| san_for(n))
            .collect::<Result<Vec<_>, _>>()?;
        let common_name = if first.parse::<IpAddr>().is_ok() {
            IP_CN_PLACEHOLDER.to_string()
        } else {
            first.clone()
        };
        Ok(CsrRequest { sans, common_name })
    }

    /// The CSR for these names signed with `key_pair` (a `key_type` key), and the key.
    pub fn sign(self, key_type: KeyType, key_pair: KeyPair) -> Result<KeyAndCsr, KeyError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.common_name.clone());
        params.distinguished_name = dn;
        params.subject_alt_names = self.sans;
        let csr = params.serialize_request(&key_pair)?;
        let csr_pem = csr.pem()?;
        Ok(KeyAndCsr {
            key_type,
            key: PrivateKeyPem(key_pair.serialize_pem()),
            csr_der: csr.der().to_vec(),
            csr_pem,
            common_name: self.common_name,
        })
    }
}

/// The SAN entry for one name, refusing anything that is not a plain ASCII host name, a `*.`
/// wildcard or an IP address.
fn san_for(name: &str) -> Result<SanType, KeyError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |reason| KeyError::BadName {
        name: name.to_string(),
        reason,
    };
    let host = name.strip_prefix("*.").unwrap_or(name);
    if host.is_empty() || host.len() > 253 {
        return Err(bad("a host name must be 1 to 253 characters"));
    }
    if !host.is_ascii() {
        return Err(bad(
            "internationalised names must be given as punycode (xn--…)",
        ));
    }
    for label in host.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(bad(
                "each label must be 1 to 63 letters, digits, '-' or '_'",
            ));
        }
    }
    Ok(SanType::DnsName(name.to_string().try_into()?))
}

/// Writes the private key to `path` as PKCS#8 PEM with mode 0600, atomically.
pub fn write_private_key(path: &Path, key: &PrivateKeyPem) -> anyhow::Result<()> {
    crate::store::write_atomic(path, key.expose().as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_ecdsa_p256_unless_rsa_is_asked_for() {
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
        let made = generate(KeyType::default(), &["a.test".to_string()]).unwrap();
        assert_eq!(made.key_type, KeyType::EcdsaP256);
    }

    #[test]
    fn key_type_names_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(k.as_str().parse::<KeyType>().ok(), Some(k));
        }
        assert!("rsa1024".parse::<KeyType>().is_err());
    }

    #[test]
    fn names_that_cannot_be_sans_are_refused() {
        for bad in ["", "a..b", "bücher.de", "a b.com", "x/y.com", "*."] {
            assert!(san_for(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "example.com",
            "*.example.com",
            "xn--bcher-kva.de",
            "10.0.0.1",
            "::1",
        ] {
            assert!(san_for(good).is_ok(), "{good:?} refused");
        }
    }
}
