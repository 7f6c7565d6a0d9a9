//! Certificate PEM from a CA, checked and put in canonical form.
//!
//! CAs send PEM with CRLF or LF line endings, with or without a final newline, sometimes with
//! several certificates glued together. [`normalize_certificates`] parses every block as X.509 and
//! re-encodes it: `-----BEGIN CERTIFICATE-----`, 64-column base64, LF, a final newline. Anything that
//! is not a certificate is refused, so nothing unparsed reaches the disk.

use base64::Engine as _;

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
    let unix = text.replace("\r\n", "\n").replace('\r', "\n");
    if unix.trim().is_empty() {
        return if allow_empty {
            Ok(String::new())
        } else {
            Err(PemError::Empty)
        };
    }
    let mut out = String::new();
    let mut count = 0;
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(unix.as_bytes()).enumerate() {
        let index = i + 1;
        let pem = block.map_err(|e| PemError::Invalid {
            index,
            reason: e.to_string(),
        })?;
        if pem.label != "CERTIFICATE" {
            return Err(PemError::Invalid {
                index,
                reason: format!("expected a CERTIFICATE block, got {:?}", pem.label),
            });
        }
        pem.parse_x509().map_err(|e| PemError::Invalid {
            index,
            reason: e.to_string(),
        })?;
        out.push_str(&encode_pem("CERTIFICATE", &pem.contents));
        count += 1;
    }
    if count == 0 {
        return if allow_empty {
            Ok(String::new())
        } else {
            Err(PemError::Empty)
        };
    }
    Ok(out)
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
