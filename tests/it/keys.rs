//! Keys and CSRs: every key type, parsed back and checked with openssl; SANs for DNS names,
//! wildcards and IPs; the IP-CN placeholder; the key file written 0600.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use enc365_nginx::keys::{self, IP_CN_PLACEHOLDER, KeyType};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn openssl(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn every_key_type_makes_a_csr_with_the_ordered_names_that_openssl_verifies() {
    let wanted = names(&[
        "example.com",
        "*.example.com",
        "www.example.com",
        "198.51.100.4",
        "2001:db8::1",
    ]);
    for key_type in KeyType::ALL {
        let made = keys::generate(key_type, &wanted).expect("generated");
        assert_eq!(made.key_type, key_type);
        assert_eq!(made.common_name, "example.com");
        assert!(
            made.key
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "PKCS#8 PEM"
        );
        assert!(
            !format!("{made:?}").contains(made.key.expose()),
            "Debug must hide the key"
        );

        let (_, csr) = X509CertificationRequest::from_der(&made.csr_der).expect("CSR parses");
        csr.verify_signature().expect("self-signature verifies");
        let info = &csr.certification_request_info;
        let cn: Vec<_> = info
            .subject
            .iter_common_name()
            .filter_map(|c| c.as_str().ok())
            .collect();
        assert_eq!(cn, vec!["example.com"]);
        let mut sans = Vec::new();
        for ext in csr.requested_extensions().expect("extensions") {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    sans.push(match name {
                        GeneralName::DNSName(d) => d.to_string(),
                        GeneralName::IPAddress(b) if b.len() == 4 => {
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).expect("v4"))
                                .to_string()
                        }
                        GeneralName::IPAddress(b) => {
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).expect("v6"))
                                .to_string()
                        }
                        other => panic!("unexpected SAN {other:?}"),
                    });
                }
            }
        }
        assert_eq!(sans, wanted, "{key_type}: SANs in order");
        match (key_type, info.subject_pki.parsed().expect("public key")) {
            (KeyType::Rsa2048, PublicKey::RSA(k)) => assert_eq!(k.key_size(), 2048),
            (KeyType::Rsa3072, PublicKey::RSA(k)) => assert_eq!(k.key_size(), 3072),
            (KeyType::Rsa4096, PublicKey::RSA(k)) => assert_eq!(k.key_size(), 4096),
            (KeyType::EcdsaP256, PublicKey::EC(p)) => assert_eq!(p.key_size(), 256),
            (KeyType::EcdsaP384, PublicKey::EC(p)) => assert_eq!(p.key_size(), 384),
            (k, other) => panic!("{k}: wrong key {other:?}"),
        }

        // openssl agrees: the CSR verifies, and the key belongs to it.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("req.csr"), &made.csr_pem).expect("csr");
        keys::write_private_key(&dir.path().join("key.pem"), &made.key).expect("key");
        openssl(&["req", "-in", "req.csr", "-noout", "-verify"], dir.path());
        let from_csr = openssl(&["req", "-in", "req.csr", "-noout", "-pubkey"], dir.path());
        let from_key = openssl(&["pkey", "-in", "key.pem", "-pubout"], dir.path());
        assert_eq!(from_csr, from_key, "{key_type}: key and CSR match");
    }
}

#[test]
fn a_first_name_that_is_an_ip_gets_the_placeholder_common_name() {
    let made =
        keys::generate(KeyType::EcdsaP256, &names(&["203.0.113.9", "example.com"])).expect("csr");
    assert_eq!(made.common_name, IP_CN_PLACEHOLDER);
    let (_, csr) = X509CertificationRequest::from_der(&made.csr_der).expect("parses");
    let cn: Vec<_> = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .filter_map(|c| c.as_str().ok())
        .collect();
    assert_eq!(cn, vec![IP_CN_PLACEHOLDER]);
}

#[test]
fn the_private_key_file_is_written_0600_even_over_an_open_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("privkey.pem");
    std::fs::write(&path, "old").expect("old");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let made = keys::generate(KeyType::EcdsaP384, &names(&["example.com"])).expect("csr");
    keys::write_private_key(&path, &made.key).expect("written");
    let meta = std::fs::metadata(&path).expect("meta");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        made.key.expose()
    );
}

#[test]
fn names_that_cannot_be_in_a_certificate_are_refused_with_the_reason() {
    let e = keys::generate(KeyType::EcdsaP256, &[]).expect_err("no names");
    assert!(e.to_string().contains("at least one name"), "{e}");
    let e = keys::generate(KeyType::EcdsaP256, &names(&["bücher.example"])).expect_err("IDN");
    assert!(e.to_string().contains("punycode"), "{e}");
    let e =
        keys::generate(KeyType::EcdsaP256, &names(&["a..example.com"])).expect_err("empty label");
    assert!(e.to_string().contains("label"), "{e}");
    let e = "dsa1024".parse::<KeyType>().expect_err("unknown");
    assert!(e.to_string().contains("rsa2048"), "{e}");
}
