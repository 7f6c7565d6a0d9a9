//! Certificate PEM from a CA, checked and put in canonical form.
//!
//! CAs send PEM with CRLF or LF line endings, with or without a final newline, sometimes with
//! several certificates glued together. [`normalize_certificates`] parses every block as X.509 and
//! re-encodes it: `-----BEGIN CERTIFICATE-----`, 64-column base64, LF, a final newline. Anything that
//! is not a certificate is refused, so nothing unparsed reaches the disk.

use std::net::IpAddr;

use base64::Engine as _;
use x509_parser::extensions::GeneralName;

/// Why certificate PEM was refused.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// No certificate block was found.
    #[error("no PEM certificate found")]
    Empty,
    /// A block is not PEM, not a certificate, or does not parse as X.509.
    #[error("certificate {index} is not valid: {reason}")]
    Invalid {
        /// 1-based position in the text.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Parses every certificate in `text` and returns them as canonical PEM (LF, final newline).
/// With `allow_empty`, text holding no certificate gives an empty string instead of an error.
pub fn normalize_certificates(text: &str, allow_empty: bool) -> Result<String, PemError> {
    Ok(certificate_list(text, allow_empty)?.concat())
}

/// Like [`normalize_certificates`], one canonical PEM block per certificate, in order.
pub fn certificate_list(text: &str, allow_empty: bool) -> Result<Vec<String>, PemError> {
    // CRLF to LF, and blocks glued without a newline between them pulled apart.
    let unix = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace("-----BEGIN ", "\n-----BEGIN ");
    let mut out = Vec::new();
    if !unix.trim().is_empty() {
        for (i, block) in x509_parser::pem::Pem::iter_from_buffer(unix.as_bytes()).enumerate() {
            let index = i + 1;
            let invalid = |reason: String| PemError::Invalid { index, reason };
            let pem = block.map_err(|e| invalid(e.to_string()))?;
            if pem.label != "CERTIFICATE" {
                return Err(invalid(format!(
                    "expected a CERTIFICATE block, got {:?}",
                    pem.label
                )));
            }
            pem.parse_x509().map_err(|e| invalid(e.to_string()))?;
            out.push(encode_pem("CERTIFICATE", &pem.contents));
        }
    }
    if out.is_empty() && !allow_empty {
        return Err(PemError::Empty);
    }
    let headers = unix.matches("-----BEGIN ").count();
    if headers != out.len() {
        return Err(PemError::Invalid {
            index: out.len() + 1,
            reason: format!("{headers} PEM blocks, only {} readable", out.len()),
        });
    }
    Ok(out)
}

/// The names of `names` that the certificate in `leaf_pem` does not cover by a subject
/// alternative name (exact DNS name, case-insensitive, or the same IP address).
pub fn uncovered_names(leaf_pem: &str, names: &[String]) -> Result<Vec<String>, PemError> {
    let invalid = |reason: String| PemError::Invalid { index: 1, reason };
    let der = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes())
        .map_err(|e| invalid(e.to_string()))?
        .1
        .contents;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(e.to_string()))?;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| invalid(e.to_string()))?
    {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => ips.push(bytes.to_vec()),
                _ => {}
            }
        }
    }
    Ok(names
        .iter()
        .filter(|name| match name.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => !ips.iter().any(|b| b[..] == ip.octets()),
            Ok(IpAddr::V6(ip)) => !ips.iter().any(|b| b[..] == ip.octets()),
            Err(_) => !dns.contains(&name.to_ascii_lowercase()),
        })
        .cloned()
        .collect())
}

/// `chain_pem` (canonical PEM, any order) put in the order a TLS server sends it: the issuer of
/// `leaf_pem` first, then its issuer, and so on; certificates off that path follow in their
/// original order. A chain that does not hold the leaf's issuer is refused: served, it would not
/// let clients verify the leaf.
pub fn order_chain(leaf_pem: &str, chain_pem: &str) -> Result<String, PemError> {
    let invalid = |index: usize, reason: String| PemError::Invalid { index, reason };
    let leaf_der = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes())
        .map_err(|e| invalid(1, e.to_string()))?
        .1
        .contents;
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&leaf_der).map_err(|e| invalid(1, e.to_string()))?;
    let blocks = certificate_list(chain_pem, true)?;
    let mut ders = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let der = x509_parser::pem::parse_x509_pem(block.as_bytes())
            .map_err(|e| invalid(i + 1, e.to_string()))?
            .1
            .contents;
        ders.push(der);
    }
    let mut parsed = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| invalid(i + 1, e.to_string()))?;
        parsed.push(cert);
    }
    let mut used = vec![false; parsed.len()];
    let mut ordered = Vec::new();
    let mut issuer = leaf.issuer().as_raw();
    while let Some(i) =
        (0..parsed.len()).find(|&i| !used[i] && parsed[i].subject().as_raw() == issuer)
    {
        used[i] = true;
        ordered.push(blocks[i].clone());
        if parsed[i].subject().as_raw() == parsed[i].issuer().as_raw() {
            break;
        }
        issuer = parsed[i].issuer().as_raw();
    }
    if ordered.is_empty() {
        return Err(PemError::Invalid {
            index: 1,
            reason: format!(
                "the chain does not hold the certificate's issuer ({})",
                leaf.issuer()
            ),
        });
    }
    for (i, block) in blocks.iter().enumerate() {
        if !used[i] {
            ordered.push(block.clone());
        }
    }
    Ok(ordered.concat())
}

/// DER bytes as PEM with the given label, 64-column lines, LF, final newline.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A downloaded certificate checked like every certificate: `cert` holds the leaf (perhaps
/// followed by intermediates), `chain` the rest of the chain; both parse, the chain is put in
/// order and must not be empty, and the leaf covers every ordered name. `fields` names the answer
/// fields `cert` and `chain` came from, for the message.
pub fn check_downloaded(
    cert: &str,
    chain: &str,
    names: &[String],
    fields: (&str, &str),
) -> Result<super::IssuedCertificate, String> {
    let (cert_field, chain_field) = fields;
    let mut blocks = certificate_list(cert, false)
        .map_err(|e| format!("{cert_field}: {e}"))?
        .into_iter();
    let leaf_pem = blocks.next().unwrap_or_default();
    let mut rest: String = blocks.collect();
    rest.push_str(&normalize_certificates(chain, true).map_err(|e| format!("{chain_field}: {e}"))?);
    if rest.trim().is_empty() {
        return Err(format!(
            "the certificate comes without its chain ({chain_field} is empty); it is not installed"
        ));
    }
    let chain_pem = order_chain(&leaf_pem, &rest).map_err(|e| format!("{chain_field}: {e}"))?;
    let missing = uncovered_names(&leaf_pem, names).map_err(|e| format!("{cert_field}: {e}"))?;
    if !missing.is_empty() {
        return Err(format!(
            "the certificate does not cover {}",
            missing.join(", ")
        ));
    }
    Ok(super::IssuedCertificate {
        leaf_pem,
        chain_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.self_signed(&key).expect("cert").pem()
    }

    #[test]
    fn crlf_and_glued_certificates_come_out_canonical() {
        let a = cert(&["a.example"]);
        let b = cert(&["b.example"]);
        let glued = format!("{}{}", a.trim_end().replace('\n', "\r\n"), b.trim_end());
        let list = certificate_list(&glued, false).expect("parses");
        assert_eq!(list.len(), 2);
        assert!(
            list.iter()
                .all(|c| !c.contains('\r') && c.ends_with("-----\n"))
        );
    }

    #[test]
    fn things_that_are_not_certificates_are_refused() {
        assert!(matches!(
            normalize_certificates("", false),
            Err(PemError::Empty)
        ));
        assert_eq!(
            normalize_certificates(" \r\n", true).ok(),
            Some(String::new())
        );
        let key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        assert!(
            normalize_certificates(&key, false).is_err(),
            "a private key is not a certificate"
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(normalize_certificates(broken, false).is_err());
        assert!(normalize_certificates("<html>oops</html>", false).is_err());
    }

    /// A root, an intermediate under it and a leaf under that, as PEM.
    fn hierarchy() -> (String, String, String) {
        let ca = |cn: &str| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p
        };
        let root_key = rcgen::KeyPair::generate().expect("key");
        let root_params = ca("Root");
        let root = root_params.self_signed(&root_key).expect("root");
        let root_issuer = rcgen::Issuer::new(root_params, root_key);
        let inter_key = rcgen::KeyPair::generate().expect("key");
        let inter_params = ca("Intermediate");
        let inter = inter_params
            .signed_by(&inter_key, &root_issuer)
            .expect("intermediate");
        let inter_issuer = rcgen::Issuer::new(inter_params, inter_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .expect("params")
            .signed_by(&leaf_key, &inter_issuer)
            .expect("leaf");
        (root.pem(), inter.pem(), leaf.pem())
    }

    #[test]
    fn a_chain_is_put_in_path_order_and_a_chain_without_the_issuer_is_refused() {
        let (root, inter, leaf) = hierarchy();
        let canonical = |p: &str| normalize_certificates(p, false).expect("parses");
        let expected = format!("{}{}", canonical(&inter), canonical(&root));
        let reversed = format!("{root}{inter}");
        assert_eq!(order_chain(&leaf, &reversed).expect("orders"), expected);
        assert_eq!(order_chain(&leaf, &expected).expect("orders"), expected);
        let unrelated = cert(&["other.example"]);
        let extra = format!("{unrelated}{inter}");
        assert_eq!(
            order_chain(&leaf, &extra).expect("orders"),
            format!("{}{}", canonical(&inter), canonical(&unrelated))
        );
        let err = order_chain(&leaf, &format!("{root}{unrelated}")).expect_err("no issuer");
        assert!(err.to_string().contains("does not hold"), "{err}");
    }

    #[test]
    fn coverage_compares_dns_names_and_ip_addresses() {
        let leaf = cert(&["www.example.com", "*.example.com", "192.0.2.1"]);
        let wanted: Vec<String> = [
            "WWW.example.com",
            "*.example.com",
            "192.0.2.1",
            "192.0.2.2",
            "example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            uncovered_names(&leaf, &wanted).expect("parses"),
            vec!["192.0.2.2", "example.com"]
        );
    }
}
