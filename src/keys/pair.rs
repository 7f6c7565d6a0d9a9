//! Whether a stored private key belongs to a certificate: the check nginx's OpenSSL makes when
//! it loads a pair (`X509_check_private_key`), on the public parts only.
//!
//! An RSA key in PKCS#8 (as [`super::write_private_key`] stores it) is compared by the modulus
//! and public exponent read from its structure. Parsing it for signing would also validate the
//! whole key — about 1 ms per 2048-bit key, a second of CPU per thousand certificates, spent on
//! keys this host made moments before. A private part that does not fit its public one cannot
//! sign: the handshake check after the reload fails, and the install is rolled back. Any other
//! key (ECDSA, whose full parse costs some 30 µs) is parsed whole and its public key compared.
//!
//! Not here: making keys ([`super::new_key`]) or reading certificates ([`crate::tlsinfo`]).

use anyhow::Context;
use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::der_parser::parse_der;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Whether the private key `key_pem` holds the public key `spki` (a certificate's, as parsed
/// with it). An error when the key does not parse.
pub fn holds_public_key(key_pem: &str, spki: &SubjectPublicKeyInfo<'_>) -> anyhow::Result<bool> {
    let pkcs8 = x509_parser::pem::Pem::iter_from_buffer(key_pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .filter(|pem| pem.label == "PRIVATE KEY");
    if let Some((modulus, exponent)) = pkcs8.as_ref().and_then(|p| rsa_public_parts(&p.contents)) {
        if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
            return Ok(false);
        }
        return Ok(match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                unsigned(rsa.modulus) == unsigned(modulus)
                    && unsigned(rsa.exponent) == unsigned(exponent)
            }
            _ => false,
        });
    }
    let key = rcgen::KeyPair::from_pem(key_pem).context("the stored private key does not parse")?;
    Ok(spki.raw == rcgen::PublicKeyData::subject_public_key_info(&key).as_slice())
}

/// The modulus and public exponent (DER integer contents) of an RSA key in PKCS#8 DER with its
/// two primes (RFC 8017 `RSAPrivateKey`, version 0, nine integers); `None` for anything else.
fn rsa_public_parts(pkcs8: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, info) = parse_der(pkcs8).ok()?;
    let info = info.as_sequence().ok()?;
    let algorithm = info.get(1)?.as_sequence().ok()?;
    if *algorithm.first()?.as_oid().ok()? != OID_PKCS1_RSAENCRYPTION {
        return None;
    }
    let (_, key) = parse_der(info.get(2)?.as_slice().ok()?).ok()?;
    let fields = key.as_sequence().ok()?;
    let integers = (fields.iter())
        .map(|f| match f.content {
            BerObjectContent::Integer(bytes) => Some(bytes),
            _ => None,
        })
        .collect::<Option<Vec<&[u8]>>>()?;
    if integers.len() != 9 || !unsigned(integers[0]).is_empty() {
        return None;
    }
    Some((integers[1], integers[2]))
}

/// A DER integer's content without its leading zero bytes.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    &bytes[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyType, new_key};

    /// Whether `key_pem` holds the public key of a self-signed certificate made with `key`.
    fn holds(key_pem: &str, key: &rcgen::KeyPair) -> anyhow::Result<bool> {
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(key)
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        holds_public_key(key_pem, parsed.public_key())
    }

    #[test]
    fn a_key_holds_its_own_public_key_and_no_other() {
        let rsa = new_key(KeyType::Rsa2048).unwrap();
        let other_rsa = new_key(KeyType::Rsa2048).unwrap();
        let ec = new_key(KeyType::EcdsaP256).unwrap();
        let other_ec = new_key(KeyType::EcdsaP256).unwrap();
        let (rsa_pem, ec_pem) = (rsa.serialize_pem(), ec.serialize_pem());
        assert!(holds(&rsa_pem, &rsa).unwrap());
        assert!(!holds(&rsa_pem, &other_rsa).unwrap());
        assert!(!holds(&rsa_pem, &ec).unwrap());
        assert!(holds(&ec_pem, &ec).unwrap());
        assert!(!holds(&ec_pem, &other_ec).unwrap());
        assert!(!holds(&ec_pem, &rsa).unwrap());
        assert!(holds("not a key", &ec).is_err());
    }

    /// An RSA key is compared by its structure (modulus and exponent read in place), an ECDSA
    /// key is not: it is parsed whole.
    #[test]
    fn the_public_parts_of_an_rsa_key_are_read_from_its_structure() {
        let rsa = new_key(KeyType::Rsa2048).unwrap();
        let der = rsa.serialize_der();
        let (modulus, exponent) = rsa_public_parts(&der).expect("an RSA PKCS#8 key");
        assert_eq!(unsigned(modulus).len(), 256);
        assert_eq!(unsigned(exponent), [1, 0, 1]);
        let ec = new_key(KeyType::EcdsaP256).unwrap();
        assert!(rsa_public_parts(&ec.serialize_der()).is_none());
        assert!(rsa_public_parts(b"\x30\x03\x02\x01\x00").is_none());
    }
}
