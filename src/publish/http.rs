//! HTTP-file validation: writes the file the CA asks for where this nginx serves it for the name
//! (a webroot, or our directory behind a temporary location, as [`crate::dcv`] planned), and
//! fetches it back the way the CA will. Also the preflight probe, which does the same with a
//! file of our own before anything is ordered.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::{Published, Publisher};
use crate::ca::{Challenge, ValidationMethod, is_safe_file_name};
use crate::dcv::{self, Publication};

/// Publishes HTTP files along a site's planned routes.
#[derive(Debug, Clone, Copy)]
pub struct HttpPublisher<'a> {
    /// The site's routes (which directory serves which name, on which port).
    pub publication: &'a Publication,
    /// `--skip-dns-check`: fetch from loopback instead of the address the name resolves to.
    pub skip_dns_check: bool,
}

/// A file written by [`HttpPublisher::write`], to be fetched back by [`HttpPublisher::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The name it proves.
    pub name: String,
    /// Where the fetch connects.
    pub addr: SocketAddr,
    /// The URL path.
    pub path: String,
    /// The bytes that must come back.
    pub content: String,
}

impl HttpPublisher<'_> {
    /// Writes the file `challenge` asks for `name` where this nginx serves it; what was written
    /// (file, directories made) is added to `out`, so the caller can journal it before the
    /// self-check ([`HttpPublisher::check`]) and before the CA is asked to look.
    pub fn write(
        &self,
        name: &str,
        challenge: &Challenge,
        out: &mut Published,
    ) -> anyhow::Result<Written> {
        let Challenge::HttpFile { path, content } = challenge else {
            anyhow::bail!("{name}: not an HTTP file challenge");
        };
        let route = (self.publication.routes.iter())
            .find(|r| r.name == name)
            .ok_or_else(|| anyhow!("no server block answers HTTP for {name}"))?;
        let served = self.publication.served_prefix();
        let (dir, file_name) = target(&route.dir, served, path).ok_or_else(|| {
            anyhow!(
                "the CA asks for {path} on {name}; only files directly under {served} (or, where \
                 the site has a webroot, {}) can be published here",
                crate::ca::acme::ACME_CHALLENGE
            )
        })?;
        out.dirs
            .extend(dcv::write_file(&dir, file_name, content.as_bytes())?);
        out.files.push(dir.join(file_name));
        tracing::info!(file = %dir.join(file_name).display(), name, "published the validation file");
        Ok(Written {
            name: name.to_string(),
            addr: connect_address(self.skip_dns_check, name, route.port),
            path: path.clone(),
            content: content.clone(),
        })
    }

    /// Fetches a written file back the way the CA will.
    pub fn check(&self, written: &Written) -> anyhow::Result<()> {
        dcv::check_served(
            written.addr,
            &written.name,
            &written.path,
            written.content.as_bytes(),
        )
        .map_err(|e| anyhow!("self-check failed: {e}"))
    }
}

impl Publisher for HttpPublisher<'_> {
    fn method(&self) -> ValidationMethod {
        ValidationMethod::HttpFile
    }

    fn publish(
        &self,
        name: &str,
        challenge: &Challenge,
        out: &mut Published,
    ) -> anyhow::Result<()> {
        let written = self.write(name, challenge, out)?;
        self.check(&written)
    }
}

/// The directory and file name for a challenge at URL `path`, given the route's directory for
/// the prefix `served` (the one the routes were planned for): that directory itself, or for an
/// ACME HTTP-01 token on a webroot route planned for `/.well-known/pki-validation/` its sibling
/// `acme-challenge` in the same webroot. `None` for any other path, an unsafe file name, or an
/// ACME token on a temporary location planned for another prefix.
fn target<'p>(route_dir: &Path, served: &str, path: &'p str) -> Option<(PathBuf, &'p str)> {
    if let Some(file) = path.strip_prefix(served) {
        return is_safe_file_name(file).then(|| (route_dir.to_path_buf(), file));
    }
    let file = path.strip_prefix(crate::ca::acme::ACME_CHALLENGE)?;
    let webroot_dir = route_dir.file_name()? == "pki-validation";
    let acme_dir = route_dir.parent()?.join("acme-challenge");
    (webroot_dir && is_safe_file_name(file)).then_some((acme_dir, file))
}

/// The probe of every name one directory serves (under one URL prefix): one probe file, written
/// the way a validation file will be and fetched back under each name. It is left in place: the
/// run removes it (and the directories made for it) when it ends.
struct ProbeFile<'a> {
    /// The directory the file goes into.
    dir: &'a Path,
    /// The URL prefix the directory is served under.
    prefix: &'a str,
    /// The file's random token: its name is `<token>.txt`, its content the token.
    token: String,
    /// The jobs fetching it: their index, name and port.
    names: Vec<(usize, &'a str, u16)>,
}

impl ProbeFile<'_> {
    /// The file's path.
    fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.txt", self.token))
    }

    /// Writes the file and fetches it under each name: each name's outcome, by job index. What
    /// was written (the file, the directories made) is added to `out`.
    fn run(&self, skip_dns_check: bool, out: &mut Published) -> Vec<(usize, Result<(), String>)> {
        let file_name = format!("{}.txt", self.token);
        match dcv::write_file(self.dir, &file_name, self.token.as_bytes()) {
            Ok(created) => {
                out.dirs.extend(created);
                out.files.push(self.path());
            }
            Err(e) => {
                let why = format!("{e:#}");
                return (self.names.iter())
                    .map(|&(i, ..)| (i, Err(why.clone())))
                    .collect();
            }
        }
        let path = format!("{}{file_name}", self.prefix);
        (self.names.iter())
            .map(|&(i, name, port)| {
                let addr = connect_address(skip_dns_check, name, port);
                tracing::info!(name, %addr, dir = %self.dir.display(), "preflight: probing the validation path");
                let served = dcv::check_served(addr, name, &path, self.token.as_bytes());
                (i, served.map_err(|e| probe_failure(name, skip_dns_check, e)))
            })
            .collect()
    }
}

/// Why a name's probe failed, told with where the name points when that is not this host.
fn probe_failure(name: &str, skip_dns_check: bool, e: String) -> String {
    let resolved = if skip_dns_check {
        Vec::new()
    } else {
        dcv::resolve(name)
    };
    let local = dcv::local_addresses();
    if !resolved.is_empty() && !resolved.iter().any(|ip| dcv::is_local(*ip, &local)) {
        let ips: Vec<String> = resolved.iter().map(|ip| ip.to_string()).collect();
        format!(
            "resolves to {}, which is not an address of this host (DNS pointing elsewhere, or a CDN or proxy in front?), and the validation probe there failed: {e}",
            ips.join(", ")
        )
    } else {
        format!("validation probe failed: {e}")
    }
}

/// How many preflight probes are in flight at once.
pub const PROBE_CONCURRENCY: usize = 32;

/// One probe for [`probe_all`]: a name, with its site's routes.
#[derive(Debug, Clone, Copy)]
pub struct ProbeJob<'a> {
    /// The site's routes.
    pub publication: &'a Publication,
    /// The name to probe.
    pub name: &'a str,
}

/// The probes of a set of names ([`ProbePlan::new`]), planned before anything is written so the
/// caller can journal every file and directory they will make ([`ProbePlan::paths`]), then run
/// ([`ProbePlan::run`]).
///
/// Each name is probed the way its validation file will be published and fetched: a probe file
/// in the directory its route names, fetched back under the name. The names one directory
/// serves share one probe file (each still fetches it under its own name, so each outcome is
/// the name's own), so a host does not make a file and its directories per name.
pub struct ProbePlan<'a> {
    /// The outcomes known without a probe (no route), by job index.
    known: Vec<(usize, Result<(), String>)>,
    /// One file per directory and URL prefix.
    files: Vec<ProbeFile<'a>>,
    /// Files that would create the same directory (it does not exist yet), one after the other;
    /// files whose directory exists create none and go alone.
    groups: Vec<Vec<usize>>,
}

impl<'a> ProbePlan<'a> {
    /// Plans the probes of `jobs`: which file goes where, for which names.
    pub fn new(jobs: &[ProbeJob<'a>]) -> ProbePlan<'a> {
        let mut known: Vec<(usize, Result<(), String>)> = Vec::new();
        let mut files: Vec<ProbeFile> = Vec::new();
        let mut file_of: std::collections::HashMap<(&Path, &str), usize> = Default::default();
        for (i, job) in jobs.iter().enumerate() {
            let publication = job.publication;
            if let Some((_, reason)) = publication.blocked.iter().find(|(n, _)| n == job.name) {
                known.push((i, Err(reason.clone())));
                continue;
            }
            let Some(route) = publication.routes.iter().find(|r| r.name == job.name) else {
                known.push((i, Err("no server block answers HTTP for it".to_string())));
                continue;
            };
            let key = (route.dir.as_path(), publication.served_prefix());
            let f = *file_of.entry(key).or_insert_with(|| {
                files.push(ProbeFile {
                    dir: key.0,
                    prefix: key.1,
                    token: format!("enc365-probe-{:032x}", rand::random::<u128>()),
                    names: Vec::new(),
                });
                files.len() - 1
            });
            files[f].names.push((i, job.name, route.port));
        }
        let mut shared: std::collections::BTreeMap<PathBuf, usize> = Default::default();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (f, file) in files.iter().enumerate() {
            match outermost_missing(file.dir) {
                Some(top) => match shared.get(&top) {
                    Some(&g) => groups[g].push(f),
                    None => {
                        shared.insert(top, groups.len());
                        groups.push(vec![f]);
                    }
                },
                None => groups.push(vec![f]),
            }
        }
        ProbePlan {
            known,
            files,
            groups,
        }
    }

    /// Every file the probes will write, and every directory they may make for them (those
    /// missing now, outermost first).
    pub fn paths(&self) -> Published {
        let mut out = Published::default();
        let mut seen = std::collections::HashSet::new();
        for file in &self.files {
            out.files.push(file.path());
            for dir in missing_dirs(file.dir) {
                if seen.insert(dir.clone()) {
                    out.dirs.push(dir);
                }
            }
        }
        out
    }

    /// Runs the probes, at most `concurrency` files at once: each job's outcome, in the jobs'
    /// order, and what was written (files, directories made). Nothing is removed here.
    pub fn run(
        self,
        skip_dns_check: bool,
        concurrency: usize,
    ) -> (Vec<Result<(), String>>, Published) {
        let files = &self.files;
        let done = crate::bounded::map(&self.groups, concurrency, |group| {
            let mut out = Published::default();
            let outcomes = (group.iter())
                .flat_map(|&f| files[f].run(skip_dns_check, &mut out))
                .collect::<Vec<_>>();
            (outcomes, out)
        });
        let mut outcomes = self.known;
        let mut written = Published::default();
        for (done, out) in done {
            outcomes.extend(done);
            written.files.extend(out.files);
            written.dirs.extend(out.dirs);
        }
        outcomes.sort_unstable_by_key(|(i, _)| *i);
        (outcomes.into_iter().map(|(_, o)| o).collect(), written)
    }
}

/// The directories missing on the way to `dir` (`dir` included), outermost first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let Some(top) = outermost_missing(dir) else {
        return Vec::new();
    };
    let mut chain: Vec<PathBuf> = (dir.ancestors())
        .take_while(|d| *d != top)
        .map(Path::to_path_buf)
        .collect();
    chain.push(top);
    chain.reverse();
    chain
}

/// The outermost directory on the way to `dir` that does not exist (`dir` itself at the
/// deepest); `None` when `dir` exists.
pub fn outermost_missing(dir: &Path) -> Option<PathBuf> {
    let mut missing = None;
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && d.symlink_metadata().is_err()) {
        missing = Some(d.to_path_buf());
        at = d.parent();
    }
    missing
}

/// Where an HTTP fetch for `name` connects: the address it resolves to (loopback when the DNS
/// check is skipped), on the port of the listen that answers for it.
pub fn connect_address(skip_dns_check: bool, name: &str, port: u16) -> SocketAddr {
    let ip = if skip_dns_check {
        None
    } else {
        dcv::resolve(name).into_iter().next()
    };
    SocketAddr::new(ip.unwrap_or(IpAddr::from([127, 0, 0, 1])), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcv::Route;

    #[test]
    fn only_safe_files_under_the_served_directory_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let publication = Publication {
            routes: vec![Route {
                name: "shop.test".into(),
                dir: dir.path().join("dcv"),
                port: 9,
            }],
            ..Publication::default()
        };
        let http = HttpPublisher {
            publication: &publication,
            skip_dns_check: true,
        };
        for path in [
            "/.well-known/acme-challenge/token",
            "/.well-known/pki-validation/../x.txt",
            "/.well-known/pki-validation/a/b.txt",
            "/elsewhere.txt",
        ] {
            let file = Challenge::HttpFile {
                path: path.into(),
                content: "x".into(),
            };
            let mut out = Published::default();
            let e = http.publish("shop.test", &file, &mut out).unwrap_err();
            assert!(
                e.to_string().contains("only files directly under"),
                "{path}: {e}"
            );
            assert_eq!(out, Published::default(), "{path}");
        }
        assert!(!dir.path().join("dcv").exists());
        let other = Challenge::HttpFile {
            path: "/.well-known/pki-validation/A.txt".into(),
            content: "x".into(),
        };
        let e = http.publish("other.test", &other, &mut Published::default());
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("no server block answers HTTP")
        );
    }

    #[test]
    fn a_temporary_location_planned_for_acme_takes_the_token_itself() {
        let dir = tempfile::tempdir().unwrap();
        let dcv_dir = dir.path().join("dcv");
        let served = crate::ca::acme::ACME_CHALLENGE;
        let (to, file) = target(&dcv_dir, served, "/.well-known/acme-challenge/tok-1").unwrap();
        assert_eq!((to, file), (dcv_dir.clone(), "tok-1"));
        assert!(target(&dcv_dir, served, "/.well-known/pki-validation/a.txt").is_none());
        assert!(target(&dcv_dir, served, "/.well-known/acme-challenge/../x").is_none());
        // A webroot route planned for pki-validation still takes a token in its sibling.
        let webroot = dir.path().join("www/.well-known/pki-validation");
        let (to, _) = target(&webroot, dcv::WELL_KNOWN, "/.well-known/acme-challenge/t").unwrap();
        assert_eq!(to, dir.path().join("www/.well-known/acme-challenge"));
    }
}
