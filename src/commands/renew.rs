//! `enc365-nginx renew`: every certificate we manage ([`Lineage`]) that is due — expiring within
//! `--days`, its live files missing, or its site's names changed since it was ordered — goes
//! through `auto`'s pipeline (`auto::execute`) as a renewal of its order (Encryption365:
//! `renew=true`, `old_vendor_id`). Sites whose configuration no longer points at our live files
//! (a panel regenerated them) get the still-valid certificate put back, with no new order.
//!
//! Orders an earlier run left pending are resumed first. Nothing due: no output on stdout (one
//! line on stderr, none with `--quiet`), exit 0 — so a timer can run it twice a day.
//!
//! A renewal writes new bytes to the same `live/<site>/` paths, so the nginx configuration does
//! not change; the install step reloads once and proves the new leaf by handshake, and on any
//! failure puts the old files back.

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::RenewArgs;
use crate::commands::{Context, auto};
use crate::exit::{CommandResult, ExitStatus, Failure};
use crate::lifecycle::{self, Action, Lineage, Planned, Verdict};
use crate::orders::{OrderRecord, RecordState};
use crate::site::{self, Site};

/// A managed certificate that is not due, as `--json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NotDue {
    /// The site.
    pub site: String,
    /// Days of validity left.
    pub days_left: i64,
    /// Why it is not due (or why it was skipped).
    pub reason: String,
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
    pub sites: Vec<auto::SiteResult>,
    /// How many times nginx was reloaded.
    pub reloads: u32,
    /// Managed certificates that are not due.
    pub not_due: Vec<NotDue>,
}

/// One site that is due.
#[derive(Debug, Clone, Serialize)]
pub struct DueSite {
    /// The site.
    pub site: String,
    /// `renew`, `resume` or `reinstall`.
    pub action: String,
    /// Why.
    pub reason: String,
}

/// Runs `renew`.
pub fn run(args: &RenewArgs, ctx: &Context) -> CommandResult {
    if args.pipeline.one_certificate {
        return Err(Failure::usage(anyhow!(
            "--one-certificate is for `auto`; `renew` keeps each certificate's names"
        )));
    }
    let (mut run, found) = auto::prepare(&args.pipeline, ctx, "renew")?;
    if !args.pipeline.dry_run {
        lifecycle::adopt_installed(&run.state_dir, &run.env.config_dir, ctx.now())
            .map_err(Failure::failed)?;
    }
    let all_sites = site::group(&found);
    let only: Option<Vec<Site>> = if args.pipeline.sites.is_empty() {
        None
    } else {
        Some(
            site::select(&found, all_sites.clone(), &args.pipeline.sites).map_err(|unmatched| {
                Failure::usage(anyhow!(
                    "--site {} matches no server block; `enc365-nginx status` lists the \
                         managed sites",
                    unmatched.join(", --site ")
                ))
            })?,
        )
    };
    let chosen = |site: &Site| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|s| s.servers == site.servers))
    };
    let now = ctx.now();
    let days = i64::from(args.days);
    let mut selection: Vec<Planned> = Vec::new();
    let mut due: Vec<DueSite> = Vec::new();
    let mut not_due: Vec<NotDue> = Vec::new();

    // Pending orders first: they are resumed, never placed again.
    let records = OrderRecord::all(&run.state_dir).map_err(Failure::failed)?;
    for record in records.iter().filter(|r| r.state != RecordState::Installed) {
        match lifecycle::site_of(&record.site, &all_sites, &found, &run.env.config_dir) {
            Some(site) if chosen(&site) => {
                due.push(DueSite {
                    site: record.site.clone(),
                    action: "resume".into(),
                    reason: format!(
                        "order {} left pending by an earlier run",
                        record.order_id.as_deref().unwrap_or("(not yet answered)")
                    ),
                });
                selection.push(Planned {
                    site,
                    action: Action::Order {
                        renews: record.renews.clone(),
                    },
                });
            }
            Some(_) => {}
            None => run.say(format!(
                "  {}: an order is pending for a site no longer in the nginx configuration; \
                 put the site back, or remove {}",
                record.site,
                OrderRecord::path(&run.state_dir, &record.site).display()
            )),
        }
    }

    for lineage in Lineage::all(&run.state_dir).map_err(Failure::failed)? {
        if selection.iter().any(|p| p.site.name == lineage.site) {
            continue;
        }
        let Some(site) = lifecycle::site_of(&lineage.site, &all_sites, &found, &run.env.config_dir)
        else {
            not_due.push(NotDue {
                site: lineage.site.clone(),
                days_left: lineage.days_left(now),
                reason: "no server block carries this site any more; not renewed".into(),
            });
            continue;
        };
        if !chosen(&site) {
            continue;
        }
        let live = lifecycle::live_summary(&run.env.config_dir, &lineage.site);
        match lifecycle::verdict(&lineage, &site, live.as_ref(), now, days, args.force) {
            Verdict::Due(reason) => {
                due.push(DueSite {
                    site: lineage.site.clone(),
                    action: "renew".into(),
                    reason,
                });
                selection.push(Planned {
                    site,
                    action: Action::Order {
                        renews: lineage.renewable_order(),
                    },
                });
            }
            Verdict::Fine(reason) => {
                match lifecycle::config_points_at_live(&found, &site, &run.env.config_dir) {
                    Some(drift) => {
                        due.push(DueSite {
                            site: lineage.site.clone(),
                            action: "reinstall".into(),
                            reason: drift,
                        });
                        selection.push(Planned {
                            site,
                            action: Action::Reinstall,
                        });
                    }
                    None => not_due.push(NotDue {
                        site: lineage.site.clone(),
                        days_left: live.map_or(0, |l| l.days_left(now)),
                        reason,
                    }),
                }
            }
        }
    }

    if selection.is_empty() || args.pipeline.dry_run {
        return report_plan(&run, args, due, not_due);
    }
    for d in &due {
        run.say(format!("  {}: {} ({})", d.site, d.action, d.reason));
    }
    for (key, value) in [
        ("due", serde_json::to_value(&due)),
        ("not_due", serde_json::to_value(&not_due)),
    ] {
        run.extra_json.insert(
            key.to_string(),
            value.map_err(|e| Failure::failed(anyhow!(e)))?,
        );
    }
    auto::execute(run, found, selection)
}

/// Nothing due, or `--dry-run`: says what is (or would be) done, changes nothing.
fn report_plan(
    run: &auto::Run,
    args: &RenewArgs,
    due: Vec<DueSite>,
    not_due: Vec<NotDue>,
) -> CommandResult {
    if run.ctx.global.json {
        let doc = RenewPlan {
            dry_run: args.pipeline.dry_run,
            due,
            sites: Vec::new(),
            reloads: 0,
            not_due,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::failed(anyhow!(e)))?
        );
        return Ok(ExitStatus::Success);
    }
    if !due.is_empty() {
        for d in &due {
            println!("{:<32} would {}: {}", d.site, d.action, d.reason);
        }
        return Ok(ExitStatus::Success);
    }
    if !args.quiet {
        let next = not_due
            .iter()
            .filter(|n| !n.reason.starts_with("no server block"))
            .min_by_key(|n| n.days_left);
        match next {
            Some(n) => run.say(format!(
                "Nothing is due for renewal (within {} days); the next is {} in {} days.",
                args.days, n.site, n.days_left
            )),
            None => run.say("No managed certificate is due; `enc365-nginx auto` adds sites."),
        }
        for n in not_due
            .iter()
            .filter(|n| n.reason.starts_with("no server block"))
        {
            run.say(format!("  {}: {}", n.site, n.reason));
        }
    }
    Ok(ExitStatus::Success)
}
