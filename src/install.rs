//! Installing issued certificates as one transaction for the whole batch: store chain and key
//! under `live/<site>/`, check the leaf matches the key and covers the names, splice the server
//! blocks, `nginx -t`, ONE reload, then prove by a TLS handshake with SNI that every name serves
//! the new leaf. Any failure puts every touched file back byte for byte and reloads.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use crate::discovery::{self, Discovery};
use crate::nginx::control::{NginxBinary, NginxPaths, ReloadMethod};
use crate::nginx::edit;
use crate::nginx::https::{self, HttpsTarget};
use crate::site::{self, Site};
use crate::store::{Transaction, TxnKind, write_atomic};
use crate::verify;

/// How many certificates' files are written (and flushed) at once.
pub const WRITE_CONCURRENCY: usize = 16;

/// The shared TLS settings written to `<config-dir>/nginx/ssl-params.conf`.
pub const TLS_SNIPPET: &str = include_str!("../templates/ssl-params.conf");

/// Where nginx and the files live, and how to reload.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The nginx binary.
    pub nginx: NginxBinary,
    /// Main config and prefix.
    pub paths: NginxPaths,
    /// How to reload.
    pub reload: ReloadMethod,
    /// The running master's pid file.
    pub pid_file: PathBuf,
    /// The directory of our config file (`live/` and `nginx/` go under it).
    pub config_dir: PathBuf,
    /// The state directory (backups).
    pub state_dir: PathBuf,
    /// The HTTPS port.
    pub https_port: u16,
    /// How long the handshake check waits for the new certificate after the reload.
    pub verify_timeout: Duration,
    /// `--redirect`: plain HTTP answers with a redirect to HTTPS (validation paths excepted).
    pub redirect: bool,
    /// `--hsts`: the HTTPS side sends `Strict-Transport-Security`.
    pub hsts: bool,
}

/// One site's issued certificate to install.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The site's name.
    pub site: String,
    /// The names it must serve.
    pub names: Vec<String>,
    /// Leaf then chain, PEM.
    pub fullchain_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

/// A certificate of an install once its files are written: what the configuration edit and
/// the handshake checks need of it (its PEMs are in its live files, not held).
#[derive(Debug, Clone)]
struct Written {
    /// The site's name.
    site: String,
    /// The names it must serve.
    names: Vec<String>,
    /// Its leaf's fingerprint ([`verify::pem_leaf_fingerprint`]).
    fingerprint: String,
}

/// Reads a site's installed chain and key back from its live files as an [`Issued`] for `names`.
pub fn read_live(config_dir: &Path, site: &str, names: &[String]) -> anyhow::Result<Issued> {
    let (cert, key) = live_paths(config_dir, site);
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
    };
    Ok(Issued {
        site: site.to_string(),
        names: names.to_vec(),
        fullchain_pem: read(&cert)?,
        key_pem: read(&key)?,
    })
}

/// The stable paths nginx points at for a site.
pub fn live_paths(config_dir: &Path, site: &str) -> (PathBuf, PathBuf) {
    let dir = crate::paths::live_dir(config_dir, site);
    (
        dir.join(crate::paths::FULLCHAIN),
        dir.join(crate::paths::PRIVKEY),
    )
}

/// The shared TLS snippet's path.
pub fn snippet_path(config_dir: &Path) -> PathBuf {
    crate::paths::ssl_params(config_dir)
}

/// The config edits that make every server block of `sites` serve its live certificate, per file.
pub fn plan_edits(
    found: &Discovery,
    sites: &[&Site],
    env: &Environment,
) -> anyhow::Result<BTreeMap<usize, Vec<edit::Splice>>> {
    let snippet = snippet_path(&env.config_dir);
    let bound = https::bound_hosts(&found.servers, env.https_port);
    let dual_stack_bound = https::dual_stack_on(&found.servers, env.https_port);
    let mut all = Vec::new();
    for site in sites {
        let (cert, key) = live_paths(&env.config_dir, &site.name);
        let target = HttpsTarget {
            certificate: &cert,
            key: &key,
            https_port: env.https_port,
            tls_snippet: Some(&snippet),
            redirect: env.redirect,
            hsts: env.hsts,
            bound_hosts: &bound,
            dual_stack_bound,
            add_names: &[],
        };
        // The port-80 block of a site whose TLS twin exists keeps its certificate-less self; it
        // only gets the redirect when asked for.
        let has_tls = site.servers.iter().any(|&i| found.servers[i].tls);
        // Names only a port-80 block carries: the first TLS block answers for them too, or
        // their TLS handshakes would land on another site.
        let carried_over_tls = |name: &String| {
            site.servers
                .iter()
                .filter(|&&i| found.servers[i].tls)
                .any(|&i| found.names[i].iter().any(|n| &n.name == name))
        };
        let missing: Vec<String> = if has_tls {
            site.names
                .iter()
                .filter(|n| !carried_over_tls(n))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let first_tls = site.servers.iter().copied().find(|&i| found.servers[i].tls);
        for &i in &site.servers {
            let server = &found.servers[i];
            if has_tls && !server.tls {
                if env.redirect {
                    all.extend(https::plan_redirect(&found.config, server, env.https_port));
                }
                continue;
            }
            let target = HttpsTarget {
                add_names: if Some(i) == first_tls { &missing } else { &[] },
                ..target
            };
            let planned = https::plan_server(&found.config, server, &target).map_err(|e| {
                anyhow!(
                    "{}: cannot give {} HTTPS: {e}",
                    site.name,
                    location(found, i)
                )
            })?;
            all.extend(planned);
        }
    }
    Ok(https::by_file(all))
}

fn location(found: &Discovery, i: usize) -> String {
    let (file, line) = found.location(i);
    format!("{}:{line}", file.display())
}

/// Installs every issued certificate in one transaction (see the module doc). Returns the
/// transaction id.
pub fn install_batch(env: &Environment, batch: &[Issued], now: i64) -> anyhow::Result<String> {
    install_owned(env, batch.to_vec(), now)
}

/// [`install_batch`] taking the batch: each certificate's PEMs are dropped once its files are
/// written, before the configuration is read and edited (on a 10,000-site install, tens of
/// megabytes not held at once with the configuration). Read them back with [`read_live`].
pub fn install_owned(env: &Environment, batch: Vec<Issued>, now: i64) -> anyhow::Result<String> {
    install_owned_alongside(env, batch, now, || ()).0
}

/// [`install_owned`] with `alongside` run on another thread from the moment nginx starts
/// checking the edited configuration (every certificate's files are written by then) until the
/// install is proven or has failed: work that needs the files but not the proof can wait on the
/// disk while nginx reads, reloads and answers the handshakes (a 10,000-site `nginx -t` alone
/// takes seconds). Returns the install's outcome and what `alongside` returned (`None` when the
/// install failed before `nginx -t`, or `alongside` panicked); on failure the caller undoes
/// whatever `alongside` did.
pub fn install_owned_alongside<R: Send>(
    env: &Environment,
    batch: Vec<Issued>,
    now: i64,
    alongside: impl FnOnce() -> R + Send,
) -> (anyhow::Result<String>, Option<R>) {
    // Each certificate against its key, on every core (parsing an RSA key checks it: about a
    // millisecond each, a second for a 1,000-site batch on one core). Part of the preparation's
    // time: it is on the way from the last certificate to the reload.
    let checking = crate::timings::Phase::start("pair_check");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let paired = crate::bounded::map(&batch, cores, check_pair);
    drop(checking);
    if let Some(Err(e)) = paired.into_iter().find(Result::is_err) {
        return (Err(e), None);
    }
    let sites = batch.iter().map(|b| b.site.clone()).collect();
    let mut txn = match Transaction::begin_kind(&env.state_dir, TxnKind::Install { sites }) {
        Ok(txn) => txn,
        Err(e) => return (Err(e.into()), None),
    };
    let (result, returned) = apply_and_prove(env, batch, now, &mut txn, alongside);
    let outcome = match result {
        Ok(()) => txn
            .commit()
            .map(|()| txn.id().to_string())
            .map_err(anyhow::Error::from),
        Err(error) => {
            let restored = txn.restore();
            let reload = env.nginx.reload(
                &env.paths,
                &env.reload,
                &env.pid_file,
                Duration::from_secs(20),
            );
            let mut message = format!("{error:#}; every file was put back as it was");
            if let Err(e) = restored {
                message = format!(
                    "{error:#}; RESTORING FAILED: {e} (backups in {})",
                    txn.dir().display()
                );
            }
            if let Err(e) = reload {
                message.push_str(&format!(" (the reload after restoring failed too: {e})"));
            }
            Err(anyhow!(message))
        }
    };
    (outcome, returned)
}

/// Writes the batch's files and edits into `txn` ([`prepare`]), then proves them ([`prove`])
/// with `alongside` running on another thread meanwhile; returns what `alongside` returned
/// (`None` when the preparation failed and it never ran).
fn apply_and_prove<R: Send>(
    env: &Environment,
    batch: Vec<Issued>,
    now: i64,
    txn: &mut Transaction,
    alongside: impl FnOnce() -> R + Send,
) -> (anyhow::Result<()>, Option<R>) {
    let checks = match prepare(env, batch, now, txn) {
        Ok(checks) => checks,
        Err(e) => return (Err(e), None),
    };
    std::thread::scope(|scope| {
        let work = scope.spawn(alongside);
        let proven = prove(env, &checks);
        (proven, work.join().ok())
    })
}

/// Writes every certificate's files and points the configuration at them (each file backed up
/// in `txn` first); returns the handshake checks that prove the install.
fn prepare(
    env: &Environment,
    batch: Vec<Issued>,
    now: i64,
    txn: &mut Transaction,
) -> anyhow::Result<Vec<verify::LeafCheck>> {
    let prep = crate::timings::Phase::start("install_prep");
    // The certificates' files first, then their PEMs are dropped: the configuration is read
    // and edited holding only their names and fingerprints, so the two never weigh on memory
    // at once (nothing reads either before the `nginx -t` below; every file is backed up
    // before it is written).
    let live_files = crate::timings::Phase::start("live_files");
    write_live_files(env, &batch, txn)?;
    drop(live_files);
    let written = batch
        .into_iter()
        .map(|item| {
            let fingerprint = verify::pem_leaf_fingerprint(item.fullchain_pem.as_bytes())
                .map_err(|e| anyhow!("{}: {e}", item.site))?;
            Ok(Written {
                site: item.site,
                names: item.names,
                fingerprint,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    crate::pipeline::give_back_freed_memory();
    let addresses = edit_config(env, &written, now, txn)?;
    let checks = handshake_checks(&written, &addresses);
    drop(addresses);
    drop(written);
    drop(prep);
    Ok(checks)
}

/// `nginx -t` on the edited configuration, the reload, and the handshake checks.
fn prove(env: &Environment, checks: &[verify::LeafCheck]) -> anyhow::Result<()> {
    let phase = crate::timings::Phase::start("nginx_t");
    let tested = Instant::now();
    let test = env.nginx.test(&env.paths)?;
    let test_took = tested.elapsed();
    drop(phase);
    let _reload_verify = crate::timings::Phase::start("reload_verify");
    tracing::info!(ok = test.ok, "nginx -t on the installed configuration");
    if !test.ok {
        bail!(
            "nginx -t refused the edited configuration: {}",
            test.output.trim()
        );
    }
    tracing::info!(method = ?env.reload, "reloading nginx");
    env.nginx
        .reload_tested_within(
            &env.paths,
            &env.reload,
            &env.pid_file,
            reload_waits(test_took),
        )
        .context("the reload failed")?;
    // The deadline grows with the batch; the checks run concurrently, bounded.
    let deadline = Instant::now() + verify::batch_deadline(env.verify_timeout, checks.len());
    let verifying = crate::timings::Phase::start("verify");
    let wrong = verify::check_all(checks, deadline, verify::CHECK_CONCURRENCY);
    drop(verifying);
    if !wrong.is_empty() {
        bail!(
            "after the reload, the new certificate is not served: {}",
            wrong.join("; ")
        );
    }
    Ok(())
}

/// How many configuration files are edited, backed up and written per step of
/// [`write_edits`]: the new bytes of a step are all that is held at once.
pub const EDIT_CHUNK: usize = 256;

/// Reads the configuration afresh, points every server block of the batch at its live files
/// (each changed file backed up before it is written) and returns, per certificate, the TLS
/// addresses its handshake checks go to ([`check_addresses`]).
fn edit_config(
    env: &Environment,
    batch: &[Written],
    now: i64,
    txn: &mut Transaction,
) -> anyhow::Result<Vec<Vec<SocketAddr>>> {
    let found = discovery::discover(&env.paths.conf, now, 30).map_err(|e| anyhow!("{e}"))?;
    let sites = site::group(&found);
    let by_name = index_by_name(&sites);
    let chosen: Vec<Site> = batch
        .iter()
        .map(|item| {
            site_for(&sites, &by_name, &item.site, &item.names)
                .map(|mut site| {
                    // What this install serves: the names the certificate covers.
                    site.names.retain(|n| item.names.contains(n));
                    site
                })
                .ok_or_else(|| anyhow!("{}: no server block carries this name any more", item.site))
        })
        .collect::<anyhow::Result<_>>()?;
    drop(by_name);
    drop(sites);
    let refs: Vec<&Site> = chosen.iter().collect();
    let edits = plan_edits(&found, &refs, env)?;
    let addresses = check_addresses(env, &found, &chosen);
    drop(refs);
    drop(chosen);
    let files = (edits.iter()).map(|(file, splices)| {
        let f = &found.config.files[*file];
        (f.path.as_path(), &f.bytes[..], &splices[..])
    });
    write_edits(files, EDIT_CHUNK, txn)?;
    Ok(addresses)
}

/// Splices every file's edits into its bytes (path, bytes as read, edits) and writes the files that changed, `chunk` files
/// at a time: each step's files are backed up in `txn` (one journal append), then written (each
/// atomically); only one step's new bytes are held at once. A file its edits leave as it was
/// (a renewal into a block already pointing at the live files) is neither backed up nor written.
pub fn write_edits<'a>(
    files: impl Iterator<Item = (&'a Path, &'a [u8], &'a [edit::Splice])>,
    chunk: usize,
    txn: &mut Transaction,
) -> anyhow::Result<()> {
    let mut files = files.peekable();
    while files.peek().is_some() {
        let mut changed = Vec::new();
        for (path, bytes, splices) in files.by_ref().take(chunk.max(1)) {
            let new = edit::apply(bytes, splices)?;
            if new != bytes {
                changed.push((path, new));
            }
        }
        txn.backup_all(&changed.iter().map(|(path, _)| path).collect::<Vec<_>>())?;
        let writes: Vec<(&Path, &[u8], u32)> = (changed.iter())
            .map(|(path, new)| (*path, &new[..], file_mode(path)))
            .collect();
        crate::store::write_atomic_all(&writes)?;
    }
    Ok(())
}

/// How long a reload may take — its command (60 s), then nginx to apply it (20 s) — or more
/// where `nginx -t` on the same configuration took long: `nginx -s reload` and the master read
/// what `nginx -t` read (every certificate of thousands of sites).
pub fn reload_waits(test_took: Duration) -> (Duration, Duration) {
    let scaled = test_took.saturating_mul(4);
    (
        Duration::from_secs(60).max(scaled),
        Duration::from_secs(20).max(scaled),
    )
}

/// The permission bits of the file at `path` (0644 when it cannot be read).
pub fn file_mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644)
}

/// Writes every certificate's four lineage files (cert, chain, fullchain, key: see
/// [`crate::certificates::LineageFiles`]), each backed up first (nginx -t reads them), and the
/// shared TLS snippet when missing. The snippet is not part of the transaction: other sites come
/// to include it, so it outlives the install that created it (a rollback of that install must
/// not take it from them).
fn write_live_files(
    env: &Environment,
    batch: &[Issued],
    txn: &mut Transaction,
) -> anyhow::Result<()> {
    // A chunk of certificates at a time: backed up (one journal append and fsync per chunk),
    // then written, so the bookkeeping of a large batch is never held whole.
    for chunk in batch.chunks(EDIT_CHUNK) {
        let files: Vec<crate::certificates::LineageFiles> = chunk
            .iter()
            .map(|item| crate::certificates::LineageFiles::of(&env.config_dir, &item.site))
            .collect();
        for f in &files {
            f.ensure_dir()?;
        }
        txn.backup_all(&files.iter().flat_map(|f| f.all()).collect::<Vec<_>>())?;
        // Each file is written atomically and flushed on its own; many at once, so the
        // flushes overlap instead of queueing one behind the other.
        let pairs: Vec<_> = chunk.iter().zip(&files).collect();
        let written = crate::bounded::map(&pairs, WRITE_CONCURRENCY, |(item, f)| {
            f.write(&item.fullchain_pem, &item.key_pem)
        });
        written.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        // The lineage directories made above are entries of `live/`: flushed once per chunk, so
        // a crash after the configuration names them never finds them gone.
        crate::store::sync_dirs(files.iter().filter_map(|f| f.dir().parent()))?;
    }
    ensure_snippet(&env.config_dir)
}

/// Writes the shared TLS snippet when it is missing (outside any transaction: it is shared).
pub fn ensure_snippet(config_dir: &Path) -> anyhow::Result<()> {
    let snippet = snippet_path(config_dir);
    if !snippet.exists() {
        crate::store::ensure_dir(snippet.parent().expect("snippet dir"), 0o755)?;
        write_atomic(&snippet, TLS_SNIPPET.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Per chosen site (same order), the TLS addresses its blocks listen on: where its handshake
/// checks go.
fn check_addresses(env: &Environment, found: &Discovery, chosen: &[Site]) -> Vec<Vec<SocketAddr>> {
    let bound = https::bound_hosts(&found.servers, env.https_port);
    let dual_stack_bound = https::dual_stack_on(&found.servers, env.https_port);
    let mut all = Vec::with_capacity(chosen.len());
    for site in chosen {
        let has_tls = site.servers.iter().any(|&i| found.servers[i].tls);
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for &i in &site.servers {
            let server = &found.servers[i];
            if has_tls && !server.tls {
                continue;
            }
            for a in https::tls_addresses(server, env.https_port, &bound, dual_stack_bound) {
                if !addresses.contains(&a) {
                    addresses.push(a);
                }
            }
        }
        all.push(addresses);
    }
    all
}

/// One handshake check per name (a concrete name under a wildcard) and per TLS address of the
/// certificate's sites (`addresses`, same order as `batch`), each expecting the new leaf.
fn handshake_checks(batch: &[Written], addresses: &[Vec<SocketAddr>]) -> Vec<verify::LeafCheck> {
    let mut checks = Vec::new();
    for (item, addresses) in batch.iter().zip(addresses) {
        for &addr in addresses {
            for name in item.names.iter().map(|n| handshake_name(n)) {
                checks.push(verify::LeafCheck {
                    addr,
                    name,
                    fingerprint: item.fingerprint.clone(),
                });
            }
        }
    }
    checks
}

/// Per name (a site's own name and each of its names), the sites carrying it, in order.
fn index_by_name(sites: &[Site]) -> HashMap<&str, Vec<usize>> {
    let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, site) in sites.iter().enumerate() {
        for name in std::iter::once(&site.name).chain(&site.names) {
            let list = index.entry(name.as_str()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    index
}

/// The server blocks a certificate goes into: every site carrying one of its names (one
/// certificate may cover several sites), named as the certificate is (`name`, covering
/// `names`), so the live paths are its. `by_name`: [`index_by_name`] of `sites`.
fn site_for(
    sites: &[Site],
    by_name: &HashMap<&str, Vec<usize>>,
    name: &str,
    names: &[String],
) -> Option<Site> {
    let mut found: Vec<usize> = std::iter::once(name)
        .chain(names.iter().map(String::as_str))
        .filter_map(|n| by_name.get(n))
        .flatten()
        .copied()
        .collect();
    found.sort_unstable();
    found.dedup();
    // The site named `name` counts only when it is that site's name or one of its names.
    let mut matching = found
        .into_iter()
        .map(|i| &sites[i])
        .filter(|s| s.name == name || s.names.iter().any(|n| n == name || names.contains(n)));
    let mut site = matching.next()?.clone();
    site.name = name.to_string();
    for other in matching {
        site.servers.extend(&other.servers);
    }
    Some(site)
}

/// The leaf must match the key and cover every name.
fn check_pair(item: &Issued) -> anyhow::Result<()> {
    let pem = x509_parser::pem::Pem::iter_from_buffer(item.fullchain_pem.as_bytes())
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"))
        .ok_or_else(|| anyhow!("{}: the issued chain holds no certificate", item.site))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&pem.contents)
        .map_err(|e| anyhow!("{}: the issued certificate does not parse: {e}", item.site))?;
    if !crate::keys::pair::holds_public_key(&item.key_pem, leaf.public_key())? {
        bail!(
            "{}: the issued certificate does not match our private key; it is not installed",
            item.site
        );
    }
    let summary = crate::tlsinfo::summarize_der(&pem.contents).map_err(|e| anyhow!(e))?;
    let missing = summary.uncovered(item.names.iter().map(String::as_str));
    if !missing.is_empty() {
        bail!(
            "{}: the issued certificate does not cover {}",
            item.site,
            missing.join(", ")
        );
    }
    Ok(())
}

/// The name a handshake asks for to prove `name` is served: a concrete name under a wildcard
/// (`*.example.com` → `enc365-check.example.com`), else the name itself.
pub fn handshake_name(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(base) => format!("enc365-check.{base}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edit::Splice;

    /// `n` files under `dir`, each with an insertion; the third one's edit changes nothing.
    fn tree(dir: &Path, n: usize) -> Vec<(PathBuf, Vec<u8>, Vec<Splice>)> {
        (0..n)
            .map(|i| {
                let path = dir.join(format!("site{i}.conf"));
                let bytes = format!("server {{ server_name s{i}.example; }}\n").into_bytes();
                std::fs::write(&path, &bytes).unwrap();
                let splices = if i == 2 {
                    vec![Splice::remove(0..0)]
                } else {
                    vec![Splice::insert(9, format!("listen 443 ssl; # {i}\n"))]
                };
                (path, bytes, splices)
            })
            .collect()
    }

    #[test]
    fn edits_written_in_chunks_are_the_spliced_bytes_and_restore_byte_for_byte() {
        for chunk in [1, 2, 3, EDIT_CHUNK] {
            let dir = tempfile::tempdir().unwrap();
            let files = tree(dir.path(), 7);
            let mut txn = Transaction::begin(&dir.path().join("state"), "test").unwrap();
            let items = (files.iter()).map(|(p, b, s)| (p.as_path(), &b[..], &s[..]));
            write_edits(items, chunk, &mut txn).unwrap();
            for (path, bytes, splices) in &files {
                let want = edit::apply(bytes, splices).unwrap();
                assert_eq!(std::fs::read(path).unwrap(), want, "chunk {chunk}");
            }
            // The file its edit leaves as it was is neither backed up nor written.
            let entries = txn.entries().unwrap();
            let backed_up: Vec<&PathBuf> = entries.iter().map(|e| &e.path).collect();
            assert_eq!(backed_up.len(), 6, "chunk {chunk}");
            assert!(!backed_up.contains(&&files[2].0));
            txn.restore().unwrap();
            for (path, bytes, _) in &files {
                assert_eq!(&std::fs::read(path).unwrap(), bytes, "chunk {chunk}");
            }
        }
    }

    #[test]
    fn an_edit_failing_in_a_later_chunk_leaves_every_earlier_file_restorable() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = tree(dir.path(), 5);
        files[4].2 = vec![Splice::insert(10_000, "out of bounds")];
        let mut txn = Transaction::begin(&dir.path().join("state"), "test").unwrap();
        let items = (files.iter()).map(|(p, b, s)| (p.as_path(), &b[..], &s[..]));
        assert!(write_edits(items, 2, &mut txn).is_err());
        // The first two chunks were written, each backed up first.
        assert_ne!(std::fs::read(&files[0].0).unwrap(), files[0].1);
        assert_eq!(txn.entries().unwrap().len(), 3);
        txn.restore().unwrap();
        for (path, bytes, _) in &files {
            assert_eq!(&std::fs::read(path).unwrap(), bytes);
        }
    }
}
