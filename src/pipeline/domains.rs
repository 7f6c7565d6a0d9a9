//! `-d NAME` (repeatable): order for just those names of a site, as certbot's `-d` does. Each
//! name must be one the selected site (or, without `--site`, some site) can order; the sites
//! they belong to are selected with only those names.
//!
//! Not here: checking the names are served (the preflight does that as for any name).

use anyhow::anyhow;

use crate::exit::Failure;
use crate::site::Site;

/// The sites the names `domains` belong to, each with only those names: among `selected` when
/// `--site` chose sites, else among `all`. A name no candidate carries is a usage error listing
/// the names there are.
pub fn narrow(
    all: &[Site],
    selected: Vec<Site>,
    by_site: bool,
    domains: &[String],
) -> Result<Vec<Site>, Failure> {
    let candidates = if by_site { selected } else { all.to_vec() };
    let wanted: Vec<String> = domains
        .iter()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    for name in &wanted {
        if candidates.iter().any(|s| s.names.contains(name)) {
            continue;
        }
        let left_out = candidates
            .iter()
            .flat_map(|s| &s.left_out)
            .find(|l| l.name.eq_ignore_ascii_case(name));
        return Err(Failure::usage(match (left_out, by_site) {
            (Some(l), _) => anyhow!("-d {name} cannot be ordered: {}", l.reason),
            (None, true) => anyhow!(
                "-d {name} is not a name of {}; its names: {}",
                site_names(&candidates),
                candidates
                    .iter()
                    .flat_map(|s| s.names.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, false) => anyhow!(
                "-d {name} is not a name of any site; `enc365-nginx discover` lists the names"
            ),
        }));
    }
    Ok(candidates
        .into_iter()
        .filter_map(|mut site| {
            site.names.retain(|n| wanted.contains(n));
            site.dns_names.retain(|n| wanted.contains(n));
            (!site.names.is_empty()).then_some(site)
        })
        .collect())
}

fn site_names(sites: &[Site]) -> String {
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    format!("the site {}", names.join(", "))
}
