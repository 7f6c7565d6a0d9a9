//! What an installed certificate file says: who issued it, until when, and for which names.
//!
//! Used to decide whether a site needs a (new) certificate. Reads PEM files; the first certificate
//! in the file is the leaf, as nginx uses it.

use std::path::Path;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

/// The facts about a leaf certificate that decide whether it must be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Issuer and subject are the same: nobody vouches for it.
    pub self_signed: bool,
    /// End of validity, in seconds since the Unix epoch.
    pub not_after: i64,
    /// DNS names and IP addresses it is valid for (SANs; the subject CN when there are none).
    pub names: Vec<String>,
}

/// Why a certificate file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertReadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The file holds no parseable PEM certificate.
    #[error("{path} holds no valid PEM certificate: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What the parser said.
        reason: String,
    },
}

/// The largest certificate file read (a chain of a few certificates is a few KiB).
const MAX_CERT_FILE: u64 = 1024 * 1024;

/// Reads the leaf (first) certificate of a PEM file. Only a regular file of at most 1 MiB is read:
/// a path in the nginx configuration naming a device, a FIFO or a huge file gives an error, never
/// a hang.
pub fn read_certificate(path: &Path) -> Result<CertSummary, CertReadError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let unreadable = |reason: String| CertReadError::Unreadable {
        path: shown.clone(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("it is not a regular file".into()));
    }
    // Room for the whole file and one byte more: one read, and one that finds the end.
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_CERT_FILE) as usize + 1);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CERT_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_CERT_FILE {
        return Err(unreadable(
            "it is larger than 1 MiB, too large for a certificate".into(),
        ));
    }
    summarize_pem(&bytes).map_err(|reason| CertReadError::Invalid {
        path: shown,
        reason,
    })
}

/// Summarizes the first certificate of PEM bytes.
pub fn summarize_pem(bytes: &[u8]) -> Result<CertSummary, String> {
    let pem = Pem::iter_from_buffer(bytes)
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"))
        .ok_or_else(|| "no \"BEGIN CERTIFICATE\" block".to_string())?;
    summarize_der(&pem.contents)
}

/// Summarizes a DER certificate.
pub fn summarize_der(der: &[u8]) -> Result<CertSummary, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(|cn| cn.to_ascii_lowercase()),
        );
    }
    Ok(CertSummary {
        self_signed: cert.issuer() == cert.subject(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

fn ip_from_bytes(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

impl CertSummary {
    /// Whole days from `now` (Unix seconds) until the certificate expires (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// The names of `wanted` that this certificate does not cover.
    pub fn uncovered<'a>(&self, wanted: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        wanted
            .into_iter()
            .filter(|w| !self.names.iter().any(|c| crate::names::covers(c, w)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_self_signed_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["a.example.com".into(), "*.b.example.com".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "a.example.com");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let s = summarize_pem(cert.pem().as_bytes()).unwrap();
        assert!(s.self_signed);
        assert_eq!(s.names, ["a.example.com", "*.b.example.com"]);
        assert_eq!(
            s.uncovered(["a.example.com", "x.b.example.com", "b.example.com"]),
            ["b.example.com"]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(summarize_pem(b"not a certificate").is_err());
        assert!(matches!(
            read_certificate(Path::new("/nonexistent/cert.pem")),
            Err(CertReadError::Unreadable { .. })
        ));
    }
}
