//! The simulator's own certificate authority: a root and an intermediate (ECDSA P-256), and real
//! X.509 leaves signed by the intermediate.
//!
//! [`SimCa::issue`] verifies the CSR's self-signature (as a real CA does), takes its public key and
//! CN, and issues a leaf for exactly the names ordered (DNS names, wildcards, IPs) with the given
//! validity. `cert_code` is the leaf, `ca_code` the intermediate; the root is what a client would have
//! to trust ([`SimCa::root_pem`]). With a state directory the CA keys persist across restarts.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

/// Why the CA could not be set up or could not issue.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The CSR is not a valid, correctly self-signed PKCS#10 request.
    #[error("CSR 无效 (invalid CSR): {0}")]
    BadCsr(String),
    /// A name cannot go into a certificate.
    #[error("域名无效 (invalid name) {0:?}")]
    BadName(String),
    /// rcgen failed.
    #[error("signing failed: {0}")]
    Crypto(#[from] rcgen::Error),
    /// The CA files in the state directory could not be read or written.
    #[error("CA files: {0}")]
    Files(String),
}

/// A leaf just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf, PEM.
    pub cert_pem: String,
    /// The intermediate, PEM.
    pub ca_pem: String,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
}

/// The simulator CA.
pub struct SimCa {
    root_pem: String,
    intermediate_pem: String,
    intermediate: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for SimCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCa").finish_non_exhaustive()
    }
}

/// The longest validity issued, whatever is asked (keeps date arithmetic in range).
const MAX_VALIDITY: Duration = Duration::from_secs(100 * 365 * 86400);

const ROOT_CERT: &str = "ca-root.pem";
const INTER_CERT: &str = "ca-intermediate.pem";
const INTER_KEY: &str = "ca-intermediate.key";

impl SimCa {
    /// A fresh CA, or the one saved in `dir` (created and saved there when absent).
    pub fn open(dir: Option<&Path>) -> Result<SimCa, IssueError> {
        if let Some(dir) = dir
            && dir.join(INTER_KEY).exists()
        {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|e| IssueError::Files(format!("{}: {e}", dir.join(name).display())))
            };
            let key = KeyPair::from_pem(&read(INTER_KEY)?)?;
            let intermediate_pem = read(INTER_CERT)?;
            let intermediate = Issuer::from_ca_cert_pem(&intermediate_pem, key)?;
            return Ok(SimCa {
                root_pem: read(ROOT_CERT)?,
                intermediate_pem,
                intermediate,
            });
        }
        let ca = SimCa::generate()?;
        if let Some(dir) = dir {
            let write = |name: &str, text: &str, mode: u32| {
                crate::files::write_atomic(&dir.join(name), text.as_bytes(), mode)
                    .map_err(IssueError::Files)
            };
            write(ROOT_CERT, &ca.root_pem, 0o644)?;
            write(INTER_CERT, &ca.intermediate_pem, 0o644)?;
            write(INTER_KEY, &ca.intermediate.key().serialize_pem(), 0o600)?;
        }
        Ok(ca)
    }

    fn generate() -> Result<SimCa, IssueError> {
        let now = OffsetDateTime::now_utc();
        let ca_params = |cn: &str, path_len: u8| {
            let mut p = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::OrganizationName, "enc365-sim");
            dn.push(DnType::CommonName, cn);
            p.distinguished_name = dn;
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p.not_before = now - Duration::from_secs(3600);
            p.not_after = now + Duration::from_secs(20 * 365 * 86400);
            p.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
            p
        };
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let root_params = ca_params("enc365-sim Root CA", 1);
        let root_cert = root_params.self_signed(&root_key)?;
        let root = Issuer::new(root_params, root_key);
        let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut inter_params = ca_params("enc365-sim DV Intermediate CA", 0);
        inter_params.use_authority_key_identifier_extension = true;
        let inter_cert = inter_params.signed_by(&inter_key, &root)?;
        Ok(SimCa {
            root_pem: root_cert.pem(),
            intermediate_pem: inter_cert.pem(),
            intermediate: Issuer::new(inter_params, inter_key),
        })
    }

    /// The root certificate, PEM (what a client must trust to verify issued leaves).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Issues a leaf for `names` with the CSR's public key, valid for `validity` from now.
    pub fn issue(
        &self,
        csr_der: &[u8],
        names: &[String],
        validity: Duration,
    ) -> Result<Issued, IssueError> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|e| IssueError::BadCsr(e.to_string()))?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let cn = csr
            .params
            .distinguished_name
            .get(&DnType::CommonName)
            .and_then(dn_text)
            .filter(|s| !s.is_empty())
            .or_else(|| names.first().cloned())
            .unwrap_or_default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        params.not_before = now - Duration::from_secs(60);
        params.not_after = now + validity.min(MAX_VALIDITY);
        let cert = params.signed_by(&csr.public_key, &self.intermediate)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            ca_pem: self.intermediate_pem.clone(),
            not_after: params.not_after,
        })
    }
}

/// The text of a DN value, for the string types a CSR's CN uses.
fn dn_text(v: &rcgen::DnValue) -> Option<String> {
    match v {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        rcgen::DnValue::Ia5String(s) => Some(s.as_str().to_string()),
        rcgen::DnValue::TeletexString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

fn san(name: &str) -> Result<SanType, IssueError> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| IssueError::BadName(name.to_string()))
}
