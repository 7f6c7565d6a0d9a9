//! `plan` / `--dry-run`: what a run would do for a selection — the validation routes and the
//! configuration edits after issuance as unified diffs — touching nothing.

use std::path::PathBuf;

use super::Run;
use crate::ca::ValidationMethod;
use crate::dcv;
use crate::discovery::Discovery;
use crate::install;
use crate::nginx::edit;
use crate::site::Site;

/// What a dry run found.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// One line per name: where its validation files would go.
    pub validation: Vec<String>,
    /// The config edits after issuance, as unified diffs.
    pub diffs: Vec<String>,
}

/// Works out the preview and records each site's names in the report.
pub fn preview(run: &mut Run, found: &Discovery, selected: &[Site]) -> anyhow::Result<Preview> {
    let prefix = (run.env.paths.prefix.clone()).unwrap_or_else(|| PathBuf::from("/"));
    let refs: Vec<&Site> = selected.iter().collect();
    let mut out = Preview::default();
    match install::plan_edits(found, &refs, &run.env) {
        Ok(edits) => {
            for (file, splices) in edits {
                let f = &found.config.files[file];
                let new = edit::apply(&f.bytes, &splices)?;
                let name = f.path.display().to_string();
                out.diffs.push(
                    String::from_utf8_lossy(&edit::unified_diff(&f.bytes, &new, &name, &name))
                        .into_owned(),
                );
            }
        }
        Err(e) => run.say(format!("  {e:#}")),
    }
    for site in selected {
        let at = (prefix.as_path(), run.dcv_dir.as_path(), run.args.http_port);
        let well_known = super::routes::validation_prefix(&run.config);
        let publication = dcv::plan_at(found, site, at, well_known);
        for r in &publication.routes {
            out.validation.push(format!(
                "{}: validation files in {} (port {})",
                r.name,
                r.dir.display(),
                r.port
            ));
        }
        out.validation
            .extend(super::routes::note_fallbacks(run, &site.name, &publication));
        let dns = run.config.dns.as_ref().filter(|d| d.configured());
        for name in &site.names {
            let (method, why) = crate::publish::choose(name, &site.name, run.config.dns.as_ref());
            // A name HTTP cannot serve here (the preflight would fail) falls back to DNS.
            let blocked = (publication.blocked.iter()).find(|(n, _)| n == name);
            let line = match blocked {
                Some((_, reason)) if dns.is_some() && method != ValidationMethod::Dns => format!(
                    "{name}: {} validation (the HTTP preflight would fail: {reason})",
                    ValidationMethod::Dns
                ),
                _ => format!("{name}: {method} validation ({why})"),
            };
            out.validation.push(line);
        }
        let result = run.result(&site.name);
        result.names_issued = site.names.clone();
        result.names_left_out = site.left_out.clone();
    }
    Ok(out)
}
