//! Where validation files are served: plans each site's routes ([`crate::dcv::plan`]), applies
//! the temporary config edits some need (one transaction, `nginx -t`, one reload), and publishes
//! a probe file the way a validation file will be, fetching it back as the CA would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::anyhow;

use super::Run;
use crate::dcv::{self, Publication};
use crate::discovery::Discovery;
use crate::exit::Failure;
use crate::nginx::edit;
use crate::site::Site;
use crate::store::Transaction;

/// Plans where every site's validation files go; applies the temporary config edits (one
/// transaction, `nginx -t`, one reload) when any are needed.
pub fn publish_routes<'s>(
    run: &mut Run,
    found: &Discovery,
    sites: impl Iterator<Item = &'s Site>,
) -> Result<(BTreeMap<String, Publication>, Option<Transaction>), Failure> {
    let prefix = (run.env.paths.prefix.clone()).unwrap_or_else(|| PathBuf::from("/"));
    let mut publications = BTreeMap::new();
    let mut splices = Vec::new();
    for site in sites {
        let publication = dcv::plan(found, site, &prefix, &run.dcv_dir, run.args.http_port);
        splices.extend(publication.splices.clone());
        publications.insert(site.name.clone(), publication);
    }
    crate::store::ensure_dir(&run.dcv_dir, 0o755).map_err(Failure::failed)?;
    if splices.is_empty() {
        return Ok((publications, None));
    }
    run.say("Adding temporary validation locations …");
    let mut txn = Transaction::begin(&run.state_dir, "dcv: temporary validation locations")
        .map_err(|e| Failure::failed(anyhow!(e)))?;
    let outcome = (|| -> anyhow::Result<()> {
        for (file, list) in crate::nginx::https::by_file(splices) {
            let f = &found.config.files[file];
            let new = edit::apply(&f.bytes, &list)?;
            txn.backup(&f.path)?;
            let mode = std::fs::metadata(&f.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            crate::store::write_atomic(&f.path, &new, mode)?;
        }
        let test = run.env.nginx.test(&run.env.paths)?;
        if !test.ok {
            anyhow::bail!(
                "nginx -t refused the temporary validation locations: {}",
                test.output.trim()
            );
        }
        run.reload()
    })();
    if let Err(e) = outcome {
        let _ = txn.restore();
        let _ = run.reload();
        return Err(Failure::failed(anyhow!(
            "{e:#}; every file was put back as it was"
        )));
    }
    Ok((publications, Some(txn)))
}

/// Publishes a probe file for `name` the way its validation file will be, and fetches it back.
pub fn probe(run: &Run, publication: &Publication, name: &str, token: &str) -> Result<(), String> {
    if let Some((_, reason)) = publication.blocked.iter().find(|(n, _)| n == name) {
        return Err(reason.clone());
    }
    let route = publication
        .routes
        .iter()
        .find(|r| r.name == name)
        .ok_or("no server block answers HTTP for it")?;
    let file_name = format!("{token}.txt");
    let created =
        dcv::write_file(&route.dir, &file_name, token.as_bytes()).map_err(|e| format!("{e:#}"))?;
    let addr = connect_address(run, name, route.port);
    let result = dcv::check_served(
        addr,
        name,
        &format!("{}{file_name}", dcv::WELL_KNOWN),
        token.as_bytes(),
    );
    dcv::remove_files(&[route.dir.join(&file_name)], &created);
    result.map_err(|e| {
        let resolved = if run.args.skip_dns_check {
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
    })
}

/// Where an HTTP fetch for `name` connects: the address it resolves to (loopback when the DNS
/// check is skipped), on the port of the listen that answers for it.
pub fn connect_address(run: &Run, name: &str, port: u16) -> SocketAddr {
    let ip = if run.args.skip_dns_check {
        None
    } else {
        dcv::resolve(name).into_iter().next()
    };
    SocketAddr::new(ip.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])), port)
}
