//! The one reporter of a pipeline run: progress lines on stderr (with a spinner on a terminal),
//! the per-site results, and at the end the human summary or the `--json` document on stdout,
//! plus the last-run record `status` reads.
//!
//! Not here: deciding anything. Stages record what happened through [`Run::result`] and
//! [`Run::fail`]; this module only formats.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde::Serialize;

use super::Run;
use super::preview::Preview;
use super::select::{DueSite, NotDue, Renewals};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::hooks::HookRun;
use crate::lifecycle;
use crate::site::{LeftOut, Site};

/// The outcome for one site, as `--json` prints it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SiteResult {
    /// The site's name.
    pub site: String,
    /// The names the certificate covers (empty when none was issued).
    pub names_issued: Vec<String>,
    /// Names left out, with reasons.
    pub names_left_out: Vec<LeftOut>,
    /// The CA's order id.
    pub order_id: Option<String>,
    /// The installed certificate chain.
    pub cert_path: Option<String>,
    /// End of the installed certificate's validity (RFC 3339).
    pub not_after: Option<String>,
    /// Why nothing was ordered for a site that was not asked for by name (every name failed the
    /// preflight checks); not a failure. With `--site` the same is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The order the new certificate renews (renewals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renews: Option<String>,
    /// Names validated through the temporary location although their block has a webroot,
    /// each with why (a link or a file where a validation directory goes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validation_notes: Vec<String>,
    /// Our existing certificate was put back into a regenerated configuration; nothing ordered.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reinstalled: bool,
    /// `--dry-run`: how far the site was tested (nothing was installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<String>,
}

/// The whole `auto --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct AutoJson {
    /// Whether nothing was changed (`--dry-run` / `plan`).
    pub dry_run: bool,
    /// Per-site results.
    pub sites: Vec<SiteResult>,
    /// How many times nginx was reloaded.
    pub reloads: u32,
    /// The config edits a dry run would make, as unified diffs (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<String>,
    /// The hooks run, and how they ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
}

/// The `--json` document at the end of a run: [`AutoJson`]'s fields (its keys sorted, as
/// always), the extra fields, `nginx_tests` and `timings` — written from the report as it is,
/// with no copy of the per-site results (tens of megabytes on a 10,000-site host).
#[derive(Serialize)]
struct FinalJson<'a> {
    dry_run: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    hooks: &'a [HookRun],
    nginx_tests: u32,
    reloads: u32,
    #[serde(serialize_with = "results_in_order")]
    sites: &'a BTreeMap<String, SiteResult>,
    timings: serde_json::Value,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

/// The per-site results as a JSON array, in site order.
fn results_in_order<S: serde::Serializer>(
    results: &&BTreeMap<String, SiteResult>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(results.values())
}

/// What a run did so far.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per site, its result.
    pub results: BTreeMap<String, SiteResult>,
    /// How many times nginx was reloaded.
    pub reloads: u32,
    /// How many times `nginx -t` was run (the install's own check counted once per attempt).
    pub nginx_tests: u32,
    /// The hooks run, and how they ended.
    pub hook_runs: Vec<HookRun>,
    /// More top-level fields for the `--json` document (`renew` adds `due` and `not_due`).
    pub extra_json: serde_json::Map<String, serde_json::Value>,
}

impl Run<'_> {
    /// Prints a progress line on stderr.
    pub fn say(&self, message: impl AsRef<str>) {
        self.spin(0, None);
        eprintln!("{}", message.as_ref());
    }

    /// Redraws the one-line progress view while the CA works: a spinner, what is pending and
    /// for how long. Only on a terminal; `None` clears the line.
    pub fn spin(&self, tick: usize, status: Option<String>) {
        use std::io::{IsTerminal, Write};
        let mut err = std::io::stderr();
        if !err.is_terminal() {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        let _ = match status {
            Some(text) => write!(err, "\r\x1b[2K{} {text}", FRAMES[tick % FRAMES.len()]),
            None => write!(err, "\r\x1b[2K"),
        };
        let _ = err.flush();
    }

    /// The result of `site`, created empty on first use.
    pub fn result(&mut self, site: &str) -> &mut SiteResult {
        self.report
            .results
            .entry(site.to_string())
            .or_insert_with(|| SiteResult {
                site: site.to_string(),
                ..SiteResult::default()
            })
    }

    /// Records (and tells) that `site` failed.
    pub fn fail(&mut self, site: &str, error: impl std::fmt::Display) {
        self.say(format!("  {site}: {error}"));
        self.result(site).error = Some(error.to_string());
    }
}

/// Prints the summary (or the JSON document) and picks the exit status.
pub fn finish(run: &mut Run) -> CommandResult {
    run.settle_reload();
    let report = &run.report;
    let failed = report.results.values().any(|r| r.error.is_some())
        || report.hook_runs.iter().any(|h| !h.ok);
    if !run.args.dry_run {
        note_results(run);
    }
    let report = &run.report;
    if run.ctx.global.json {
        print_json(&FinalJson {
            dry_run: run.args.dry_run,
            hooks: &report.hook_runs,
            nginx_tests: report.nginx_tests,
            reloads: report.reloads,
            sites: &report.results,
            timings: crate::timings::to_json(),
            extra: &report.extra_json,
        })?;
    } else {
        for r in report.results.values() {
            println!("{:<32} {}", r.site, summary_line(r));
            for l in &r.names_left_out {
                println!("{:<32}   left out {}: {}", "", l.name, l.reason);
            }
        }
        println!("{} reload(s) of nginx.", report.reloads);
    }
    Ok(if failed {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    })
}

/// One site's line in the human summary.
fn summary_line(r: &SiteResult) -> String {
    match (&r.error, r.names_issued.is_empty()) {
        (Some(e), _) => format!("FAILED: {e}"),
        (None, _) if r.dry_run.is_some() => {
            format!("dry run: {}", r.dry_run.as_deref().unwrap_or(""))
        }
        (None, true) if r.skipped.is_some() => {
            format!("skipped: {}", r.skipped.as_deref().unwrap_or(""))
        }
        (None, false) => format!(
            "HTTPS for {} (until {})",
            r.names_issued.join(", "),
            r.not_after.as_deref().unwrap_or("?")
        ),
        (None, true) => "nothing issued".to_string(),
    }
}

/// Prints one pretty JSON value on stdout, written as it is serialized (never whole in memory).
fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(anyhow::Error::from)
        .and_then(|()| writeln!(out).and_then(|()| out.flush()).map_err(Into::into))
        .map_err(|e| Failure::failed(anyhow!("could not write the JSON document: {e}")))
}

/// `plan` / `--dry-run`: prints what would happen (see [`Preview`]).
pub fn print_preview(run: &Run, selected: &[Site], preview: Preview) -> CommandResult {
    let report = &run.report;
    if run.ctx.global.json {
        return print_json(&AutoJson {
            dry_run: true,
            sites: report.results.values().cloned().collect(),
            reloads: 0,
            diffs: preview.diffs,
            hooks: Vec::new(),
        })
        .map(|()| ExitStatus::Success);
    }
    let mut out = String::new();
    for site in selected {
        out.push_str(&format!("site {} ({})\n", site.name, site.reason));
        out.push_str(&format!("  order: {}\n", site.names.join(", ")));
        for l in &site.left_out {
            out.push_str(&format!("  left out: {} — {}\n", l.name, l.reason));
        }
    }
    for r in report.results.values() {
        if let Some(why) = r.skipped.as_ref().or(r.error.as_ref()) {
            out.push_str(&format!("site {}: not ordered: {why}\n", r.site));
            for l in &r.names_left_out {
                out.push_str(&format!("  left out: {} — {}\n", l.name, l.reason));
            }
        }
    }
    out.push_str(
        "\nvalidation (before the DNS and HTTP preflight checks, which a real run makes):\n",
    );
    for t in &preview.validation {
        out.push_str(&format!("  {t}\n"));
    }
    out.push_str("\nconfiguration changes after issuance:\n");
    for d in &preview.diffs {
        out.push_str(d);
    }
    print!("{out}");
    Ok(ExitStatus::Success)
}

/// The `renew --json` document when nothing is done (nothing due, or `--dry-run`). When
/// something is done it is `auto`'s document with `due` and `not_due` added, so both shapes share
/// `dry_run`, `due`, `sites`, `reloads` and `not_due`.
#[derive(Debug, Clone, Serialize)]
pub struct RenewPlan {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Sites that would be (or were) worked on: `renew`, `resume` or `reinstall`, with why.
    pub due: Vec<DueSite>,
    /// The per-site results (empty when nothing was done).
    pub sites: Vec<SiteResult>,
    /// How many times nginx was reloaded.
    pub reloads: u32,
    /// Managed certificates that are not due.
    pub not_due: Vec<NotDue>,
}

/// `renew` with nothing due, or `--dry-run`: says what is (or would be) done, changes nothing.
/// `quiet` silences the "nothing is due" lines; `days` is the `--days` they quote.
pub fn print_renew_plan(run: &mut Run, chosen: Renewals, quiet: bool, days: u32) -> CommandResult {
    let Renewals { due, not_due, .. } = chosen;
    run.settle_reload();
    if run.ctx.global.json {
        return print_json(&RenewPlan {
            dry_run: run.args.dry_run,
            due,
            sites: Vec::new(),
            reloads: 0,
            not_due,
        })
        .map(|()| ExitStatus::Success);
    }
    if !due.is_empty() {
        for d in &due {
            println!("{:<32} would {}: {}", d.site, d.action, d.reason);
        }
        return Ok(ExitStatus::Success);
    }
    if !quiet {
        let next = (not_due.iter())
            .filter(|n| !n.orphaned)
            .min_by_key(|n| n.days_left);
        match next {
            Some(n) => run.say(format!(
                "Nothing is due for renewal (within {days} days); the next is {} in {} days.",
                n.site, n.days_left
            )),
            None => run.say("No managed certificate is due; `enc365-nginx auto` adds sites."),
        }
        for n in not_due.iter().filter(|n| n.orphaned) {
            run.say(format!("  {}: {}", n.site, n.reason));
        }
    }
    Ok(ExitStatus::Success)
}

/// Saves each site's outcome for `status`.
fn note_results(run: &Run) {
    let runs = run
        .report
        .results
        .values()
        .map(|r| {
            let result = match (&r.error, &r.skipped) {
                (Some(_), _) => "failed",
                (None, Some(_)) => "skipped",
                (None, None) => "ok",
            };
            let last = lifecycle::LastRun {
                at: run.ctx.now(),
                command: run.command.to_string(),
                result: result.to_string(),
                error: r.error.clone(),
            };
            (r.site.clone(), last)
        })
        .collect();
    if let Err(e) = lifecycle::note_runs(&run.state_dir, runs) {
        run.say(format!("could not record the results for `status`: {e:#}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::HookKind;

    /// The document as it was built before it was streamed: [`AutoJson`] as a JSON value, the
    /// extra fields, `nginx_tests` and `timings` added.
    fn as_built_before(report: &Report, timings: &serde_json::Value) -> serde_json::Value {
        let doc = AutoJson {
            dry_run: false,
            sites: report.results.values().cloned().collect(),
            reloads: report.reloads,
            diffs: Vec::new(),
            hooks: report.hook_runs.clone(),
        };
        let mut value = serde_json::to_value(&doc).unwrap();
        let object = value.as_object_mut().unwrap();
        object.extend(report.extra_json.clone());
        object.insert("nginx_tests".into(), report.nginx_tests.into());
        object.insert("timings".into(), timings.clone());
        value
    }

    #[test]
    fn the_streamed_document_is_the_one_built_before() {
        let mut report = Report {
            reloads: 2,
            nginx_tests: 3,
            ..Report::default()
        };
        for name in ["b.test", "a.test"] {
            let result = SiteResult {
                site: name.into(),
                names_issued: vec![name.into(), format!("www.{name}")],
                ..SiteResult::default()
            };
            report.results.insert(name.into(), result);
        }
        report
            .extra_json
            .insert("due".into(), serde_json::json!(["a.test"]));
        let timings = serde_json::json!({"install_prep_ms": 5, "peak_rss_kib": 1024});
        for hooks in [
            Vec::new(),
            vec![HookRun {
                hook: HookKind::Pre,
                site: None,
                ok: true,
                exit_code: Some(0),
                error: None,
            }],
        ] {
            report.hook_runs = hooks;
            let streamed = FinalJson {
                dry_run: false,
                hooks: &report.hook_runs,
                nginx_tests: report.nginx_tests,
                reloads: report.reloads,
                sites: &report.results,
                timings: timings.clone(),
                extra: &report.extra_json,
            };
            let text = serde_json::to_string_pretty(&streamed).unwrap();
            let read: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(read, as_built_before(&report, &timings));
            assert!(text.find("a.test").unwrap() < text.find("b.test").unwrap());
        }
    }
}
