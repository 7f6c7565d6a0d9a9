//! A lineage's files and what `status` tells about them, as `certbot certificates` does: the four
//! files every lineage holds (`cert.pem`, `chain.pem`, `fullchain.pem`, `privkey.pem`), writing
//! them, the key type of a certificate, and which sites' configuration uses it.
//!
//! Not here: ordering, or editing nginx configuration (only read, to find the sites using a
//! certificate).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::discovery::Discovery;
use crate::site::Site;

/// The four files of a lineage, in `<config-dir>/live/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageFiles {
    /// The leaf certificate alone.
    pub cert: PathBuf,
    /// The intermediates alone.
    pub chain: PathBuf,
    /// Leaf then intermediates: what nginx serves.
    pub fullchain: PathBuf,
    /// The private key (0600).
    pub privkey: PathBuf,
}

impl LineageFiles {
    /// The files of lineage `name`.
    pub fn of(config_dir: &Path, name: &str) -> LineageFiles {
        let dir = crate::paths::live_dir(config_dir, name);
        LineageFiles {
            cert: dir.join(crate::paths::CERT),
            chain: dir.join(crate::paths::CHAIN),
            fullchain: dir.join(crate::paths::FULLCHAIN),
            privkey: dir.join(crate::paths::PRIVKEY),
        }
    }

    /// All four, in the order they are written.
    pub fn all(&self) -> [&PathBuf; 4] {
        [&self.privkey, &self.cert, &self.chain, &self.fullchain]
    }

    /// The lineage directory (`live/<site>`).
    pub fn dir(&self) -> &Path {
        self.fullchain.parent().unwrap_or(Path::new("."))
    }

    /// Creates the lineage directory (0755) when missing.
    pub fn ensure_dir(&self) -> anyhow::Result<()> {
        match self.fullchain.parent() {
            Some(dir) => crate::store::ensure_dir(dir, 0o755),
            None => Ok(()),
        }
    }

    /// Writes all four (each atomically: the key 0600 first, the fullchain last, once all four
    /// are flushed; the directory flushed once). Back them up in the transaction first
    /// ([`LineageFiles::all`]).
    pub fn write(&self, fullchain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let (leaf, chain) = split_chain(fullchain_pem);
        crate::store::write_atomic_group(&[
            (&self.privkey, key_pem.as_bytes(), 0o600),
            (&self.cert, leaf.as_bytes(), 0o644),
            (&self.chain, chain.as_bytes(), 0o644),
            (&self.fullchain, fullchain_pem.as_bytes(), 0o644),
        ])
    }
}

/// The leaf (first PEM block) and the rest of a chain, each as PEM text ending in a newline.
pub fn split_chain(fullchain_pem: &str) -> (String, String) {
    const END: &str = "-----END CERTIFICATE-----";
    match fullchain_pem.find(END) {
        Some(at) => {
            let leaf_end = at + END.len();
            let leaf = format!("{}\n", fullchain_pem[..leaf_end].trim_start());
            let rest = fullchain_pem[leaf_end..].trim();
            let chain = if rest.is_empty() {
                String::new()
            } else {
                format!("{rest}\n")
            };
            (leaf, chain)
        }
        None => (fullchain_pem.to_string(), String::new()),
    }
}

/// The key type of a PEM certificate's public key, as the config names key types (`rsa2048`,
/// `ecdsa-p256`, …), or the algorithm as found.
pub fn key_type(cert_pem: &[u8]) -> Option<String> {
    use x509_parser::public_key::PublicKey;
    let pem = x509_parser::pem::Pem::iter_from_buffer(cert_pem)
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
    let spki = cert.public_key();
    Some(match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => format!("rsa{}", rsa.key_size()),
        PublicKey::EC(point) => match point.key_size() {
            256 => "ecdsa-p256".into(),
            384 => "ecdsa-p384".into(),
            bits => format!("ecdsa-{bits}"),
        },
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("unknown")
            .to_lowercase(),
    })
}

/// Every certificate file the TLS blocks of `sites` (grouped from `found`) name, by its path as
/// the block names it (joined to nginx's directory), with the indices of the sites serving it, in
/// order, each once.
pub fn files_served(found: &Discovery, sites: &[Site]) -> HashMap<PathBuf, Vec<usize>> {
    let mut served: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    for (j, site) in sites.iter().enumerate() {
        let tls = (site.servers.iter().map(|&i| &found.servers[i])).filter(|s| s.tls);
        for file in tls.flat_map(|s| &s.ssl_certificates) {
            let list = served.entry(found.config.conf_dir.join(file)).or_default();
            if list.last() != Some(&j) {
                list.push(j);
            }
        }
    }
    served
}

/// Which sites' TLS blocks serve which certificate file, for many lineages at once: every file
/// a TLS block names, by its path and by the path it resolves to (a block may name our file
/// through a link), each resolved once — not once per lineage and block, which on a host with
/// ten thousand sites was a hundred million `readlink`s.
pub struct CertificateUsers {
    /// Site indices (in nginx order, each once) by the file's path as the block names it.
    by_path: HashMap<PathBuf, Vec<usize>>,
    /// The same, by the path the file resolves to.
    by_target: HashMap<PathBuf, Vec<usize>>,
    /// Paths resolved so far (every lineage's files share their directories).
    resolved: std::cell::RefCell<Resolver>,
}

impl CertificateUsers {
    /// Indexes the certificate files of every TLS block of `sites` (grouped from `found`).
    pub fn new(found: &Discovery, sites: &[Site]) -> CertificateUsers {
        let by_path = files_served(found, sites);
        let mut resolved = Resolver::default();
        let mut by_target: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (path, users) in &by_path {
            if let Some(target) = resolved.resolve(path) {
                by_target.entry(target).or_default().extend(users);
            }
        }
        for users in by_target.values_mut() {
            users.sort_unstable();
            users.dedup();
        }
        CertificateUsers {
            by_path,
            by_target,
            resolved: std::cell::RefCell::new(resolved),
        }
    }

    /// The sites whose TLS blocks serve this lineage's certificate (its fullchain or cert file,
    /// by that path or through a link to it), by site name, in nginx order.
    pub fn sites_using(&self, sites: &[Site], files: &LineageFiles) -> Vec<String> {
        let ours = [&files.fullchain, &files.cert];
        let mut users: Vec<usize> = (ours.iter())
            .filter_map(|p| self.by_path.get(*p))
            .chain((ours.iter()).filter_map(|p| {
                let target = self.resolved.borrow_mut().resolve(p)?;
                self.by_target.get(&target)
            }))
            .flatten()
            .copied()
            .collect();
        users.sort_unstable();
        users.dedup();
        users.into_iter().map(|j| sites[j].name.clone()).collect()
    }
}

/// [`std::fs::canonicalize`] for many paths that share their directories: each directory is
/// resolved once and remembered, and a path whose last part is not a link costs one `lstat`
/// (canonicalize reads every component of every path again: ten thousand lineages' files were
/// most of `status`'s system calls). A path with a link as its last part, or with `.` or `..`
/// in it, is resolved by `canonicalize` itself.
#[derive(Default)]
struct Resolver {
    done: HashMap<PathBuf, Option<PathBuf>>,
}

impl Resolver {
    /// The path `path` resolves to, every link followed; `None` when it does not exist (or
    /// cannot be resolved), as `canonicalize` fails.
    fn resolve(&mut self, path: &Path) -> Option<PathBuf> {
        if let Some(known) = self.done.get(path) {
            return known.clone();
        }
        let plain = path.is_absolute()
            && (path.components()).all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
        let resolved = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if plain => self.resolve(parent).and_then(|dir| {
                let candidate = dir.join(name);
                match std::fs::symlink_metadata(&candidate) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        std::fs::canonicalize(&candidate).ok()
                    }
                    Ok(_) => Some(candidate),
                    Err(_) => None,
                }
            }),
            _ => std::fs::canonicalize(path).ok(),
        };
        self.done.insert(path.to_path_buf(), resolved.clone());
        resolved
    }
}

/// Whether a certificate for `names` covers `name` (exactly, or by a one-label wildcard).
pub fn covers(names: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|n| {
        *n == name
            || n.strip_prefix("*.").is_some_and(|base| {
                name.split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == base)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_splits_into_the_leaf_and_the_rest() {
        let pem = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";
        let (leaf, chain) = split_chain(pem);
        assert_eq!(
            leaf,
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            chain,
            "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(format!("{leaf}{chain}"), pem);
    }

    /// A block naming the lineage's file, one naming it through a link, one serving another
    /// file and one without TLS: the index finds the first two, in nginx order.
    #[test]
    fn the_sites_using_a_certificate_are_found_by_path_and_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let config_dir = dir.path().join("enc365");
        let ours = LineageFiles::of(&config_dir, "a.test");
        let other = LineageFiles::of(&config_dir, "c.test");
        for files in [&ours, &other] {
            std::fs::create_dir_all(files.fullchain.parent().unwrap()).unwrap();
            std::fs::write(&files.fullchain, "not read here").unwrap();
        }
        std::os::unix::fs::symlink(&ours.fullchain, dir.path().join("linked.pem")).unwrap();
        let tls = |name: &str, file: &Path| {
            format!(
                "server {{ listen 443 ssl; server_name {name}; ssl_certificate {}; \
                 ssl_certificate_key k.pem; }}\n",
                file.display()
            )
        };
        let conf = format!(
            "events {{}}\nhttp {{\n{}{}{}server {{ listen 80; server_name d.test; }}\n{}}}\n",
            tls("z.test", &dir.path().join("linked.pem")),
            tls("c.test", &other.fullchain),
            tls("a.test", &ours.fullchain),
            tls("e.test", &ours.cert),
        );
        let main = dir.path().join("nginx.conf");
        std::fs::write(&main, conf).unwrap();
        let found = crate::discovery::discover(&main, 0, 30).unwrap();
        let sites = crate::site::group(&found);
        let users = CertificateUsers::new(&found, &sites);
        assert_eq!(
            users.sites_using(&sites, &ours),
            ["z.test", "a.test", "e.test"]
        );
        assert_eq!(users.sites_using(&sites, &other), ["c.test"]);
        let none = LineageFiles::of(&config_dir, "d.test");
        assert!(users.sites_using(&sites, &none).is_empty());
    }

    /// The resolver gives what `canonicalize` gives: through a linked directory, a linked
    /// file (relative target), a path with `..`, and nothing for a missing file.
    #[test]
    fn the_resolver_agrees_with_canonicalize() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("live/a.test")).unwrap();
        std::fs::write(real.join("live/a.test/fullchain.pem"), "x").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("linked-dir")).unwrap();
        std::os::unix::fs::symlink("live/a.test/fullchain.pem", real.join("file-link.pem"))
            .unwrap();
        let mut resolver = Resolver::default();
        for path in [
            real.join("live/a.test/fullchain.pem"),
            dir.path().join("linked-dir/live/a.test/fullchain.pem"),
            dir.path().join("linked-dir/file-link.pem"),
            real.join("live/../live/a.test/fullchain.pem"),
            real.join("live/a.test"),
        ] {
            let expected = std::fs::canonicalize(&path).unwrap();
            assert_eq!(resolver.resolve(&path), Some(expected.clone()), "{path:?}");
            assert_eq!(resolver.resolve(&path), Some(expected), "again: {path:?}");
        }
        assert_eq!(
            resolver.resolve(&real.join("live/b.test/fullchain.pem")),
            None
        );
        assert_eq!(resolver.resolve(&real.join("missing/fullchain.pem")), None);
    }

    #[test]
    fn a_wildcard_covers_one_label() {
        let names = vec!["*.example.com".to_string(), "example.com".to_string()];
        assert!(covers(&names, "www.example.com"));
        assert!(covers(&names, "Example.com."));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "other.com"));
    }
}
