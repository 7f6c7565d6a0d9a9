//! `auto --dry-run` and `renew --dry-run`: the run for real as far as it can go without
//! touching a live file, as certbot's dry run does.
//!
//! - Against a test endpoint — a CA simulator on this host (`--server` / `ENC365_BASE_URL` at
//!   `enc365-sim`), an ACME staging directory — the full cycle: preflight probe files
//!   published in the webroots and fetched through nginx, key and CSR, order, validation files
//!   published and checked by the CA, issuance; then the edited configuration, with the test
//!   certificates, checked by `nginx -t` on a staged copy ([`super::staged`]).
//! - Against a commercial endpoint with no test endpoint (Encryption365 documents none,
//!   providers.md §1.1: every order there is real and may be charged): the same up to the
//!   order — probes, key and CSR, the staged `nginx -t` with a placeholder certificate — and the
//!   CA's steps are reported as not exercised, with why.
//!
//! Orders and keys go to a scratch state directory that is removed at the end: no lineage, no
//! order record a later run would resume, no backup, no config change, no reload, no hook.
//! Names served only through a temporary validation location are not exercised (adding one
//! means editing the live configuration and reloading). `--json` says `dry_run: true`,
//! `exercised` and `not_exercised`.

use std::collections::BTreeSet;

use anyhow::anyhow;

use super::staged::{self, Scratch};
use super::{Run, check_nginx, order, preflight, report, select, validate};
use crate::config::ProviderSettings;
use crate::discovery::Discovery;
use crate::exit::{CommandResult, Failure};
use crate::install::Issued;
use crate::lifecycle::Planned;
use crate::orders::OrderRecord;
use crate::site::Site;

/// Loads the configuration as a real run does (a dry run talks to the CA: credentials, `--server`
/// and `ENC365_BASE_URL` apply), with `--key-type`.
pub fn load_config(run: &mut Run) -> Result<(), Failure> {
    let mut config = run.ctx.load_config()?;
    if let Some(key_type) = run.args.key_type {
        config.key_type = key_type;
    }
    run.config = config;
    Ok(())
}

/// The CA's test endpoint, when the configured one is: a loopback host (the simulator, Pebble)
/// or an ACME staging directory. `None` for a production endpoint.
pub fn test_endpoint(settings: &ProviderSettings) -> Option<String> {
    let url = match settings {
        ProviderSettings::Encryption365(s) => s.base_url.clone(),
        ProviderSettings::HowSsl(s) => s.base_url().to_string(),
        ProviderSettings::HuaweiScm(_) => return None,
        ProviderSettings::Acme(s) => s.directory_url(),
    };
    let parsed = reqwest::Url::parse(&url).ok()?;
    let host = parsed.host_str()?.trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let staging = matches!(settings, ProviderSettings::Acme(_)) && url.contains("staging");
    (loopback || staging).then_some(url)
}

/// What a dry run did and did not do, for the report.
#[derive(Debug, Default)]
struct Exercised {
    done: Vec<String>,
    not: Vec<(String, String)>,
}

/// Runs the selection as a dry run (see the module doc); prints the report.
pub fn execute(mut run: Run, found: Discovery, selection: Vec<Planned>) -> CommandResult {
    let work = select::split(&mut run, selection);
    if work.order.is_empty() {
        return report::finish(&mut run);
    }
    check_nginx(&mut run)?;
    let scratch = Scratch::new("enc365-dry-run")
        .map_err(|e| Failure::failed(anyhow!("could not make a scratch state directory: {e}")))?;
    run.state_dir = scratch.path().to_path_buf();
    run.dcv_dir = crate::paths::dcv_dir(scratch.path());
    run.env.state_dir = scratch.path().to_path_buf();
    let mut seen = Exercised::default();
    seen.done.push("nginx -t on the live configuration".into());
    let worker = super::worker_access::worker_user(&found.config);
    let settled = BTreeSet::new();
    let ready = preflight::run(&mut run, &found, work.order, (&settled, worker.as_ref()))?;
    seen.done.push(
        "preflight: DNS, and a probe file published in each webroot and fetched through nginx"
            .into(),
    );
    let endpoint = test_endpoint(&run.config.provider_settings());
    let certs = match &endpoint {
        Some(url) => full_cycle(&mut run, ready, url, &mut seen)?,
        None => up_to_the_order(&mut run, ready, &mut seen),
    };
    staged_check(&mut run, &found, &certs, &mut seen);
    seen.not.push((
        "install, reload, handshake".into(),
        "a dry run changes no live file and does not reload nginx".into(),
    ));
    note(&mut run, endpoint, seen);
    drop(scratch);
    report::finish(&mut run)
}

/// Order, validation and issuance at the test endpoint `url`; the issued certificates.
fn full_cycle(
    run: &mut Run,
    mut ready: preflight::Ready,
    url: &str,
    seen: &mut Exercised,
) -> Result<Vec<(Site, Issued)>, Failure> {
    let ca = run.ctx.certificate_authority(&run.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow!("could not start the async runtime: {e}")))?;
    let ordered = runtime.block_on(order::place_all(run, ca.as_ref(), ready.sites));
    let dns = validate::dns_publisher(run);
    let mut dirs = validate::DirsMade::after_probes(ready.probes.take_made_dirs());
    let issued = runtime.block_on(validate::run(
        run,
        ca.as_ref(),
        ordered,
        &ready.publications,
        &dns,
        &mut dirs,
    ));
    seen.done.push(format!(
        "key and CSR, order, validation files published and checked by the CA, issuance, at \
         the test endpoint {url}"
    ));
    let mut certs = Vec::new();
    for (site, record) in issued {
        let key = std::fs::read_to_string(OrderRecord::key_path(&run.state_dir, &site.name));
        let (Ok(key_pem), Some(chain)) = (key, record.issued_chain(&run.state_dir)) else {
            run.fail(&site.name, "the test certificate or its key went missing");
            continue;
        };
        run.result(&site.name).names_issued = record.names.clone();
        certs.push((
            site.clone(),
            Issued {
                site: site.name.clone(),
                names: record.names.clone(),
                fullchain_pem: chain,
                key_pem,
            },
        ));
    }
    Ok(certs)
}

/// A commercial endpoint: key and CSR per site and a placeholder certificate for the staged
/// check; the CA's steps are not exercised.
fn up_to_the_order(
    run: &mut Run,
    ready: preflight::Ready,
    seen: &mut Exercised,
) -> Vec<(Site, Issued)> {
    let mut certs = Vec::new();
    for site in ready.sites {
        match placeholder(run, &site) {
            Ok(issued) => certs.push((site, issued)),
            Err(e) => run.fail(&site.name, format!("{e:#}")),
        }
    }
    seen.done.push("key and CSR for each site".into());
    let provider = run.config.provider.table();
    seen.not.push((
        "order, validation by the CA, issuance".into(),
        format!(
            "the [{provider}] endpoint has no test endpoint (Encryption365 documents none): every \
             order there is real and may be charged. Point --server (or ENC365_BASE_URL) at \
             enc365-sim to test the full cycle"
        ),
    ));
    certs
}

/// A new key and CSR for the site's names, and a certificate for the key signed by itself,
/// standing in for the CA's in the staged check.
fn placeholder(run: &Run, site: &Site) -> anyhow::Result<Issued> {
    let made = crate::keys::generate(run.config.key_type, &site.names)?;
    let key_pair = rcgen::KeyPair::from_pem(made.key.expose())?;
    let cert = rcgen::CertificateParams::new(site.names.clone())?.self_signed(&key_pair)?;
    Ok(Issued {
        site: site.name.clone(),
        names: site.names.clone(),
        fullchain_pem: cert.pem(),
        key_pem: made.key.expose().to_string(),
    })
}

/// `nginx -t` on a staged copy of the configuration with `certs` installed.
fn staged_check(run: &mut Run, found: &Discovery, certs: &[(Site, Issued)], seen: &mut Exercised) {
    if certs.is_empty() {
        return;
    }
    let sites: Vec<&Site> = certs.iter().map(|(s, _)| s).collect();
    let issued: Vec<Issued> = certs.iter().map(|(_, i)| i.clone()).collect();
    match staged::check(run, found, &sites, &issued) {
        Ok(test) if test.ok => {
            seen.done
                .push("the edited configuration checked with nginx -t on a staged copy".into());
            for (site, _) in certs {
                run.result(&site.name).dry_run = Some(format!(
                    "{} tested; nothing was installed",
                    site.names.join(", ")
                ));
            }
        }
        Ok(test) => {
            for (site, _) in certs {
                let why = format!(
                    "nginx -t refuses the configuration as the install would leave it (staged \
                     copy): {}",
                    test.output.trim()
                );
                run.fail(&site.name, why);
            }
        }
        Err(e) => {
            for (site, _) in certs {
                run.fail(
                    &site.name,
                    format!("could not check the staged configuration: {e:#}"),
                );
            }
        }
    }
}

/// Adds what was and was not exercised to the report.
fn note(run: &mut Run, endpoint: Option<String>, seen: Exercised) {
    if !run.ctx.global.json {
        run.say("Dry run: nothing was installed, no live file changed, nginx was not reloaded.");
        for step in &seen.done {
            run.say(format!("  exercised: {step}"));
        }
        for (step, why) in &seen.not {
            run.say(format!("  not exercised: {step}: {why}"));
        }
    }
    let not: Vec<serde_json::Value> = (seen.not.iter())
        .map(|(step, why)| serde_json::json!({"step": step, "why": why}))
        .collect();
    let extra = &mut run.report.extra_json;
    extra.insert("exercised".into(), seen.done.into());
    extra.insert("not_exercised".into(), not.into());
    extra.insert("test_endpoint".into(), endpoint.into());
}
