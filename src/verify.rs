//! Proof that a name serves the certificate we installed: a TLS handshake with SNI, reading back
//! the leaf certificate the server sent.
//!
//! [`handshake`] connects to an address (usually `127.0.0.1:443`), sends the host name as SNI and
//! returns the [`ServedCert`] — DER, SHA-256 fingerprint, notAfter, subjectAltName DNS names. It
//! accepts *any* certificate, self-signed, expired or for another name: we are checking *what* is
//! served, not whether a browser would trust it, so chain and name checks are skipped. The
//! handshake's own signature is still checked, so a server that does not hold the certificate's
//! key fails. [`wait_for_leaf`] retries the handshake until the expected certificate appears or a
//! deadline passes, because right after a reload the first handshakes may reach old workers that
//! still serve the old certificate.
//!
//! Blocking I/O (rustls over `std::net::TcpStream`, the aws-lc-rs provider) with timeouts on every
//! socket operation; async callers run it on a blocking thread. Not here: deciding which address a
//! name is served on (the caller knows the listens) or anything about trust stores and OCSP.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The certificate a server sent for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCert {
    /// The leaf certificate, DER.
    pub der: Vec<u8>,
    /// Every certificate the server sent, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// SHA-256 of the leaf's DER, lowercase hex without separators (see [`fingerprint`]).
    pub fingerprint: String,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// The leaf's subjectAltName DNS names, in certificate order.
    pub names: Vec<String>,
}

/// Why a handshake or a wait failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The name cannot be sent as SNI.
    #[error("{name:?} is not a host name that can be sent in a TLS handshake (SNI)")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// Nothing accepted the TCP connection in time.
    #[error(
        "could not connect to {addr} to check {name}: {source} \
         (is nginx running and listening there with ssl?)"
    )]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The name being checked.
        name: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TLS handshake failed or timed out.
    #[error(
        "the TLS handshake with {addr} for {name} failed: {reason} \
         (does that address serve TLS for this name? check the listen … ssl line and nginx's error log)"
    )]
    Handshake {
        /// The address tried.
        addr: SocketAddr,
        /// The name being checked.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The server sent a certificate we cannot read.
    #[error("{addr} served {name} a certificate that cannot be parsed: {reason}")]
    BadCertificate {
        /// The address tried.
        addr: SocketAddr,
        /// The name being checked.
        name: String,
        /// What the parser said.
        reason: String,
    },
    /// The deadline passed before the expected certificate was served.
    #[error(
        "{name} at {addr} still does not serve the new certificate (sha256 {expected}); \
         last seen: {last_seen} — did the reload take effect? check nginx's error log"
    )]
    NotServed {
        /// The address tried.
        addr: SocketAddr,
        /// The name being checked.
        name: String,
        /// The fingerprint we waited for.
        expected: String,
        /// The last fingerprint served, or the last error.
        last_seen: String,
    },
}

/// The SHA-256 fingerprint of a DER certificate: lowercase hex, no separators.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The fingerprint (as [`fingerprint`]) of the first certificate in a PEM file — the leaf of a
/// `fullchain.pem`, the one nginx serves — to compare with what a handshake returns.
pub fn pem_leaf_fingerprint(pem: &[u8]) -> Result<String, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("not a valid PEM file: {e}"))?;
        if block.label == "CERTIFICATE" {
            return Ok(fingerprint(&block.contents));
        }
    }
    Err("the PEM file holds no CERTIFICATE block".to_string())
}

/// Reads the fields we check from a DER certificate: notAfter and the SAN DNS names.
pub fn describe(der: &[u8]) -> Result<(OffsetDateTime, Vec<String>), String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after.to_datetime();
    let mut names = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(name) = general {
                names.push((*name).to_string());
            }
        }
    }
    Ok((not_after, names))
}

/// Connects to `addr`, does a TLS handshake sending `name` as SNI, and returns the certificate
/// the server sent. `timeout` bounds the connect and each read and write.
///
/// `name` must be in the form nginx matches on: an IDN as its A-label (`xn--…`). An IP address
/// is accepted but sends no SNI (TLS has none for addresses).
pub fn handshake(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<ServedCert, VerifyError> {
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|_| VerifyError::InvalidName {
            name: name.to_string(),
        })?;
    let handshake_error = |reason: String| VerifyError::Handshake {
        addr,
        name: name.to_string(),
        reason,
    };

    let mut tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|source| VerifyError::Connect {
            addr,
            name: name.to_string(),
            source,
        })?;
    tcp.set_read_timeout(Some(timeout))
        .and_then(|()| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| handshake_error(e.to_string()))?;

    let config = client_config().map_err(|e| handshake_error(e.to_string()))?;
    let mut conn =
        ClientConnection::new(config, server_name).map_err(|e| handshake_error(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        if Instant::now() > deadline {
            return Err(handshake_error(format!("no answer within {timeout:?}")));
        }
        conn.complete_io(&mut tcp)
            .map_err(|e| handshake_error(e.to_string()))?;
    }
    let chain: Vec<Vec<u8>> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    // Be polite: tell the server we are done (errors here change nothing).
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();

    let der = chain
        .first()
        .cloned()
        .ok_or_else(|| handshake_error("the server sent no certificate".to_string()))?;
    let (not_after, names) = describe(&der).map_err(|reason| VerifyError::BadCertificate {
        addr,
        name: name.to_string(),
        reason,
    })?;
    Ok(ServedCert {
        fingerprint: fingerprint(&der),
        der,
        chain,
        not_after,
        names,
    })
}

/// Handshakes with `addr` for `name` until the leaf's fingerprint is `expected_fingerprint`
/// (compared case-insensitively, `:` separators ignored) or `deadline` passes.
///
/// Retries every 50 ms, backing off to 500 ms; connection and handshake errors are retried too
/// (nginx may be between reload steps). On timeout the error says what was served last.
pub fn wait_for_leaf(
    addr: SocketAddr,
    name: &str,
    expected_fingerprint: &str,
    deadline: Instant,
) -> Result<ServedCert, VerifyError> {
    let expected = expected_fingerprint.replace(':', "").to_ascii_lowercase();
    let mut pause = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = left.clamp(Duration::from_millis(200), Duration::from_secs(5));
        let last_seen = match handshake(addr, name, timeout) {
            Ok(served) if served.fingerprint == expected => return Ok(served),
            Ok(served) => format!("sha256 {}", served.fingerprint),
            Err(VerifyError::InvalidName { name }) => {
                return Err(VerifyError::InvalidName { name });
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() + pause > deadline {
            return Err(VerifyError::NotServed {
                addr,
                name: name.to_string(),
                expected,
                last_seen,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// One check of a batch: `name` at `addr` must serve the leaf with `fingerprint`.
#[derive(Debug, Clone)]
pub struct LeafCheck {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The SNI name.
    pub name: String,
    /// The expected leaf fingerprint (as [`pem_leaf_fingerprint`] gives it).
    pub fingerprint: String,
}

/// How long a batch of `checks` handshake checks may take after a reload: `base` (the time
/// nginx's old workers may keep answering) plus 20 ms per check, so a large batch is never
/// rolled back because checking it took time.
pub fn batch_deadline(base: Duration, checks: usize) -> Duration {
    base + Duration::from_millis(20).saturating_mul(u32::try_from(checks).unwrap_or(u32::MAX))
}

/// How many handshake checks run at once.
pub const CHECK_CONCURRENCY: usize = 8;

/// Runs every check ([`wait_for_leaf`]) on at most `concurrency` threads, all against one
/// `deadline`; returns one message per check that failed, in the checks' order.
pub fn check_all(checks: &[LeafCheck], deadline: Instant, concurrency: usize) -> Vec<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, checks.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = checks.get(i) else { break };
                    tracing::info!(addr = %c.addr, name = %c.name, "TLS handshake: is the new certificate served");
                    if let Err(e) = wait_for_leaf(c.addr, &c.name, &c.fingerprint, deadline) {
                        let message = format!("{} at {}: {e}", c.name, c.addr);
                        failures.lock().expect("not poisoned").push((i, message));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().expect("not poisoned");
    failures.sort();
    failures.into_iter().map(|(_, m)| m).collect()
}

/// The client configuration: aws-lc-rs, TLS 1.2 and 1.3, any server certificate accepted, no
/// session resumption (a resumed handshake would show the certificate of an earlier one, not
/// what the server holds now). Built once and shared by every handshake of the process.
fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    static CONFIG: std::sync::OnceLock<Result<Arc<ClientConfig>, rustls::Error>> =
        std::sync::OnceLock::new();
    CONFIG.get_or_init(build_client_config).clone()
}

/// [`client_config`], built. Its first key share is X25519 and its first TLS 1.3 suite
/// AES-128-GCM-SHA256: a check needs no post-quantum secrecy, and the default first share
/// (X25519MLKEM768, sent beside an X25519 one) made every handshake also generate an ML-KEM key
/// that nginx without ML-KEM never uses — a 10,000-name batch makes 10,000 handshakes. A server
/// that takes only ML-KEM groups still completes the handshake: it asks for that share (a
/// HelloRetryRequest), and the group is offered.
fn build_client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![
        kx_group::X25519,
        kx_group::SECP256R1,
        kx_group::SECP384R1,
        kx_group::X25519MLKEM768,
    ];
    let first = cipher_suite::TLS13_AES_128_GCM_SHA256;
    provider
        .cipher_suites
        .retain(|s| s.suite() != first.suite());
    provider.cipher_suites.insert(0, first);
    let provider = Arc::new(provider);
    let verifier = Arc::new(AcceptAnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Accepts any server certificate (we inspect it, we do not trust it) but still checks that the
/// server signed the handshake with the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_deadline_grows_with_the_checks() {
        let base = Duration::from_secs(15);
        assert_eq!(batch_deadline(base, 0), base);
        assert_eq!(batch_deadline(base, 2000), Duration::from_secs(55));
    }

    #[test]
    fn checks_share_x25519_first_and_still_offer_ml_kem() {
        use rustls::NamedGroup;
        let config = client_config().unwrap();
        let provider = config.crypto_provider();
        let groups: Vec<NamedGroup> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups[0], NamedGroup::X25519);
        assert!(groups.contains(&NamedGroup::X25519MLKEM768), "{groups:?}");
        let first = provider.cipher_suites[0].suite();
        assert_eq!(first, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }

    #[test]
    fn check_all_reports_every_failed_check_in_order() {
        // A port nothing listens on: every check fails once the deadline passes.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let checks: Vec<LeafCheck> = (0..5)
            .map(|i| LeafCheck {
                addr,
                name: format!("s{i}.test"),
                fingerprint: "00".into(),
            })
            .collect();
        let deadline = Instant::now() + Duration::from_millis(300);
        let wrong = check_all(&checks, deadline, 3);
        assert_eq!(wrong.len(), 5);
        for (i, message) in wrong.iter().enumerate() {
            assert!(
                message.starts_with(&format!("s{i}.test at {addr}")),
                "{message}"
            );
        }
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn describe_reads_not_after_and_san_names() {
        let mut params =
            rcgen::CertificateParams::new(vec!["a.test".to_string(), "*.b.test".to_string()])
                .unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 6);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (not_after, names) = describe(cert.der()).unwrap();
        assert_eq!(
            not_after.date(),
            time::Date::from_calendar_date(2031, time::Month::May, 6).unwrap()
        );
        assert_eq!(names, ["a.test", "*.b.test"]);
        assert!(describe(b"not a certificate").is_err());
    }

    #[test]
    fn invalid_sni_name_is_rejected_before_connecting() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = handshake(addr, "bad name", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, VerifyError::InvalidName { .. }), "{err}");
    }

    #[test]
    fn pem_leaf_fingerprint_takes_the_first_certificate() {
        let leaf = rcgen::generate_simple_self_signed(vec!["leaf.test".to_string()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let chain = format!("{}{}", leaf.cert.pem(), other.cert.pem());
        let key_first = format!("{}{}", leaf.signing_key.serialize_pem(), chain);
        assert_eq!(
            pem_leaf_fingerprint(chain.as_bytes()).unwrap(),
            fingerprint(leaf.cert.der())
        );
        assert_eq!(
            pem_leaf_fingerprint(key_first.as_bytes()).unwrap(),
            fingerprint(leaf.cert.der())
        );
        assert!(pem_leaf_fingerprint(b"").is_err());
        assert!(pem_leaf_fingerprint(leaf.signing_key.serialize_pem().as_bytes()).is_err());
    }
}
