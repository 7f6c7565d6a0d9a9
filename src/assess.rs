//! Whether a server block needs a (new) certificate, and why.
//!
//! A block needs one when it has certifiable names and: it serves no TLS for them (and no other
//! block serves TLS for all of them), its TLS has no certificate, the certificate cannot be read,
//! is self-signed, expires within the given number of days, or does not cover all of its names.
//! A port-80 block whose names are all served over TLS by another block (the usual redirect +
//! HTTPS pair) takes that block's verdict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::names::Name;
use crate::nginx::fast_hash::FastMap;
use crate::nginx::sites::Server;
use crate::tlsinfo::{self, CertReadError, CertSummary};

/// The verdict on one server block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Whether the block needs a certificate ordered or replaced.
    pub needs_certificate: bool,
    /// Why, in a few words.
    pub reason: String,
}

impl Assessment {
    fn needs(reason: impl Into<String>) -> Assessment {
        Assessment {
            needs_certificate: true,
            reason: reason.into(),
        }
    }

    fn fine(reason: impl Into<String>) -> Assessment {
        Assessment {
            needs_certificate: false,
            reason: reason.into(),
        }
    }
}

/// What the assessment needs to know besides the servers.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// Relative certificate paths resolve against this directory (nginx's conf prefix).
    pub conf_dir: &'a Path,
    /// "Now", in seconds since the Unix epoch.
    pub now: i64,
    /// Certificates expiring within this many days need renewal.
    pub renew_within_days: i64,
}

/// Assesses every server; `names[i]` are the classified names of `servers[i]`, and
/// `location(i)` how to refer to it in a reason (`file:line`; asked only for the few servers a
/// reason names). Every certificate file read is left in `certs`, by path.
pub fn assess_all(
    servers: &[Server],
    names: &[Vec<Name>],
    location: impl Fn(usize) -> String + Sync,
    policy: &Policy,
    certs: &mut HashMap<PathBuf, Result<CertSummary, CertReadError>>,
) -> Vec<Assessment> {
    // The TLS blocks' own verdicts, on two threads for a large host (a 50,000-site host has
    // some 20,000 TLS blocks). Certificates the caller has not read yet are read here and left
    // in `certs` afterwards.
    let tls_part = |range: std::ops::Range<usize>| {
        let mut read = Vec::new();
        let verdicts: Vec<Option<Assessment>> = range
            .map(|i| {
                let s = &servers[i];
                s.tls
                    .then(|| assess_tls(s, &names[i], policy, certs, &mut read))
            })
            .collect();
        (verdicts, read)
    };
    let mut tls_verdicts = Vec::with_capacity(servers.len());
    let mut read = Vec::new();
    for (verdicts, more) in crate::bounded::halves(servers.len(), 1000, tls_part) {
        tls_verdicts.extend(verdicts);
        read.extend(more);
    }
    certs.extend(read);

    // Which TLS blocks carry each certifiable name.
    let mut tls_by_name: ByName = HashMap::default();
    // Sized once: growing it by doubling would rehash every name several times.
    tls_by_name.reserve(
        (servers.iter().zip(names))
            .filter(|(s, _)| s.tls)
            .map(|(_, n)| n.len())
            .sum(),
    );
    for (i, s) in servers.iter().enumerate() {
        if s.tls {
            for n in names[i].iter().filter(|n| n.certifiable) {
                tls_by_name.entry(n.name.as_str()).or_default().push(i);
            }
        }
    }

    let known = Known {
        names,
        tls_verdicts: &tls_verdicts,
        tls_by_name: &tls_by_name,
        location: &location,
    };
    let judge = |range: std::ops::Range<usize>| -> Vec<Assessment> {
        range.map(|i| known.verdict(i)).collect()
    };
    // A 10,000-site host: half the blocks on another thread.
    (crate::bounded::halves(servers.len(), 1000, judge))
        .into_iter()
        .flatten()
        .collect()
}

/// The TLS blocks carrying each certifiable name (a fast hash: thousands of names, chosen by
/// the host's own configuration).
type ByName<'a> = FastMap<&'a str, Vec<usize>>;

/// What the verdict on one block draws on: the names, the TLS blocks' own verdicts and which TLS
/// blocks carry each name.
struct Known<'a, F> {
    names: &'a [Vec<Name>],
    tls_verdicts: &'a [Option<Assessment>],
    tls_by_name: &'a ByName<'a>,
    location: &'a F,
}

impl<F: Fn(usize) -> String> Known<'_, F> {
    /// The verdict on block `i`.
    fn verdict(&self, i: usize) -> Assessment {
        let certifiable: Vec<&str> = self.names[i]
            .iter()
            .filter(|n| n.certifiable)
            .map(|n| n.name.as_str())
            .collect();
        if certifiable.is_empty() {
            return Assessment::fine("no certifiable names");
        }
        if let Some(verdict) = &self.tls_verdicts[i] {
            return verdict.clone();
        }
        // A plain-HTTP block: is there one TLS block that serves all of its names?
        let by_name = self.tls_by_name;
        let twin = by_name.get(certifiable[0]).and_then(|candidates| {
            candidates.iter().copied().find(|&c| {
                certifiable
                    .iter()
                    .all(|n| by_name.get(n).is_some_and(|v| v.contains(&c)))
            })
        });
        match twin.and_then(|t| self.tls_verdicts[t].as_ref().map(|v| (t, v))) {
            Some((t, verdict)) => Assessment {
                needs_certificate: verdict.needs_certificate,
                reason: format!("HTTPS served by {}: {}", (self.location)(t), verdict.reason),
            },
            None => Assessment::needs("no TLS"),
        }
    }
}

/// The verdict on a TLS block's certificate(s).
fn assess_tls(
    server: &Server,
    names: &[Name],
    policy: &Policy,
    certs: &HashMap<PathBuf, Result<CertSummary, CertReadError>>,
    read: &mut Vec<(PathBuf, Result<CertSummary, CertReadError>)>,
) -> Assessment {
    if server.ssl_certificates.is_empty() {
        return Assessment::needs("TLS without a certificate");
    }
    // Wildcards count only when they could be validated, which needs DNS validation (not
    // configured); otherwise a site with one would need a certificate forever.
    let wanted: Vec<&str> = names
        .iter()
        .filter(|n| n.certifiable && !n.wildcard)
        .map(|n| n.name.as_str())
        .collect();
    let mut verdicts = Vec::new();
    for file in &server.ssl_certificates {
        if file.contains('$') {
            return Assessment::fine("certificate chosen at run time by a variable; not managed");
        }
        if file.starts_with("data:") || file.starts_with("engine:") {
            return Assessment::fine("certificate given inline or by an engine; not managed");
        }
        let path = policy.conf_dir.join(file);
        let summary = match certs.get(&path) {
            Some(known) => known,
            None => match read.iter().position(|(p, _)| *p == path) {
                Some(k) => &read[k].1,
                None => {
                    let summary = tlsinfo::read_certificate(&path);
                    read.push((path, summary));
                    &read[read.len() - 1].1
                }
            },
        };
        verdicts.push(match summary {
            Err(e) => Assessment::needs(format!("certificate unreadable: {e}")),
            Ok(cert) => assess_certificate(cert, &wanted, policy),
        });
    }
    verdicts
        .iter()
        .find(|v| v.needs_certificate)
        .cloned()
        .unwrap_or_else(|| verdicts.remove(0))
}

/// The verdict on one readable certificate for the names it should cover.
fn assess_certificate(cert: &CertSummary, wanted: &[&str], policy: &Policy) -> Assessment {
    if cert.self_signed {
        return Assessment::needs("self-signed certificate");
    }
    let days = cert.days_left(policy.now);
    if policy.now >= cert.not_after {
        return Assessment::needs(format!("certificate expired {} days ago", -days));
    }
    if days < policy.renew_within_days {
        return Assessment::needs(format!("certificate expires in {days} days"));
    }
    let uncovered = cert.uncovered(wanted.iter().copied());
    if !uncovered.is_empty() {
        return Assessment::needs(format!(
            "certificate does not cover {}",
            uncovered.join(", ")
        ));
    }
    Assessment::fine(format!("certificate valid for {days} more days"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::sites;
    use crate::nginx::tree::Config;

    /// A host with over a thousand blocks has its TLS blocks judged on two threads; a
    /// certificate the caller had not read is read there and left in `certs`, readable or not,
    /// and each block gets the verdict of its own certificate.
    #[test]
    fn a_large_host_is_judged_on_two_threads_and_every_certificate_read_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["s0.test".to_string()]).unwrap();
        std::fs::write(dir.path().join("self.pem"), cert.cert.pem()).unwrap();
        let mut conf = String::from("events {}\nhttp {\n");
        for i in 0..700 {
            let file = if i % 3 == 0 {
                "missing.pem"
            } else {
                "self.pem"
            };
            conf += &format!(
                "server {{ listen 443 ssl; server_name s{i}.test; ssl_certificate {file}; \
                 ssl_certificate_key k.pem; }}\nserver {{ listen 80; server_name s{i}.test; }}\n"
            );
        }
        conf += "}\n";
        let main = dir.path().join("nginx.conf");
        std::fs::write(&main, conf).unwrap();
        let config = Config::load(&main).unwrap();
        let servers = sites::servers(&config).unwrap();
        assert_eq!(servers.len(), 1400);
        let names: Vec<Vec<Name>> = (servers.iter())
            .map(|s| crate::names::classify_all(s.server_names.iter().map(String::as_str)))
            .collect();
        let policy = Policy {
            conf_dir: dir.path(),
            now: 0,
            renew_within_days: 30,
        };
        let mut certs = HashMap::new();
        let verdicts = assess_all(&servers, &names, |i| format!("#{i}"), &policy, &mut certs);
        assert_eq!(certs.len(), 2, "each certificate read once and kept");
        assert!(certs[&dir.path().join("missing.pem")].is_err());
        assert!(certs[&dir.path().join("self.pem")].is_ok());
        for (k, v) in verdicts.iter().enumerate() {
            let site = k / 2;
            assert!(v.needs_certificate, "block {k}: {}", v.reason);
            if k % 2 == 1 {
                // The plain-HTTP twin of a TLS block: HTTPS is served there.
                assert!(
                    v.reason.starts_with("HTTPS served by"),
                    "block {k}: {}",
                    v.reason
                );
            } else if site % 3 == 0 {
                assert!(
                    v.reason.starts_with("certificate unreadable"),
                    "block {k}: {}",
                    v.reason
                );
            } else {
                assert_eq!(v.reason, "self-signed certificate", "block {k}");
            }
        }
    }
}
