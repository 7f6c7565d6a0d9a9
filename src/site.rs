//! Sites: the server blocks that share names (typically a port-80 block and its TLS twin), which
//! get one certificate between them, and which of their names can go into that certificate.
//!
//! Built on a [`Discovery`]; knows nothing of CAs. Names that cannot be certified are kept with
//! the reason, so they can be reported rather than silently dropped.

use std::collections::HashMap;

use serde::Serialize;

use crate::discovery::Discovery;

/// A name that will not be ordered, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// The name (as ordered would be, or as written when it is not a name).
    pub name: String,
    /// Why it is left out, for the user.
    pub reason: String,
    /// Why it is left out, for the code (not in `--json`: `reason` says it).
    #[serde(skip)]
    pub kind: LeftOutKind,
}

/// The kinds of reason a name is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOutKind {
    /// A wildcard: only DNS validation proves it, and none is configured.
    Wildcard,
    /// Not a name a certificate can hold (a regex, a port, `$hostname`, …).
    NotCertifiable,
    /// It does not resolve in DNS.
    Unresolved,
    /// This nginx does not serve its validation path (the preflight probe failed, or the
    /// configuration claims the path).
    NotServed,
}

impl LeftOut {
    /// A name left out for `kind`, with the reason to show.
    pub fn new(kind: LeftOutKind, name: impl Into<String>, reason: impl Into<String>) -> LeftOut {
        LeftOut {
            name: name.into(),
            reason: reason.into(),
            kind,
        }
    }

    /// Whether leaving it out means a name the site serves failed a check (what
    /// `--require-all` refuses): not for wildcards, which no check was made for.
    pub fn failed_a_check(&self) -> bool {
        self.kind != LeftOutKind::Wildcard && !self.reason.is_empty()
    }
}

/// One site: server blocks sharing names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// The site's name: its first certifiable name. Names files and directories, e.g.
    /// `live/<name>/`.
    pub name: String,
    /// Indexes of its server blocks in [`Discovery::servers`], in nginx's order.
    pub servers: Vec<usize>,
    /// The names to order, in order of appearance.
    pub names: Vec<String>,
    /// The names left out, with reasons.
    pub left_out: Vec<LeftOut>,
    /// Whether any of its blocks needs a certificate.
    pub needs_certificate: bool,
    /// Why (the first block's reason that needs one, else the first block's reason).
    pub reason: String,
    /// The names (among `names`) proven by DNS, with why, as chosen at preflight.
    pub dns_names: Vec<String>,
}

impl Site {
    /// With DNS validation configured: the wildcards left out come back as names proven by DNS.
    pub fn admit_wildcards(&mut self) {
        let (wild, rest): (Vec<LeftOut>, Vec<LeftOut>) = std::mem::take(&mut self.left_out)
            .into_iter()
            .partition(|l| l.kind == LeftOutKind::Wildcard);
        self.left_out = rest;
        for l in wild {
            if !self.names.contains(&l.name) {
                self.names.push(l.name.clone());
            }
            if !self.dns_names.contains(&l.name) {
                self.dns_names.push(l.name);
            }
        }
    }

    /// Marks `name` as proven by DNS.
    pub fn prove_by_dns(&mut self, name: &str) {
        if !self.dns_names.iter().any(|n| n == name) {
            self.dns_names.push(name.to_string());
        }
    }
}

/// Groups the discovered server blocks into sites. Blocks without certifiable names form no site.
/// Wildcards are left out (only DNS validation can prove them, and none is configured).
pub fn group(found: &Discovery) -> Vec<Site> {
    let n = found.servers.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_with: HashMap<&str, usize> = HashMap::new();
    for (i, names) in found.names.iter().enumerate() {
        for name in names.iter().filter(|n| n.certifiable) {
            match first_with.get(name.name.as_str()) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first_with.insert(&name.name, i);
                }
            }
        }
    }
    let mut sites: Vec<Site> = Vec::new();
    let mut site_of_root: HashMap<usize, usize> = HashMap::new();
    for i in 0..n {
        if !found.names[i].iter().any(|n| n.certifiable) {
            continue;
        }
        let r = root(&mut parent, i);
        let index = *site_of_root.entry(r).or_insert_with(|| {
            sites.push(Site {
                name: String::new(),
                servers: Vec::new(),
                names: Vec::new(),
                left_out: Vec::new(),
                needs_certificate: false,
                reason: String::new(),
                dns_names: Vec::new(),
            });
            sites.len() - 1
        });
        let site = &mut sites[index];
        site.servers.push(i);
        for name in &found.names[i] {
            let known = site.names.contains(&name.name)
                || site.left_out.iter().any(|l| l.name == name.name);
            if known {
                continue;
            }
            if name.wildcard {
                site.left_out.push(LeftOut::new(
                    LeftOutKind::Wildcard,
                    &name.name,
                    "wildcard: only DNS validation can prove it, and none is configured",
                ));
            } else if name.certifiable {
                site.names.push(name.name.clone());
            } else {
                site.left_out.push(LeftOut::new(
                    LeftOutKind::NotCertifiable,
                    &name.name,
                    name.reason.clone().unwrap_or_default(),
                ));
            }
        }
        let verdict = &found.assessments[i];
        if verdict.needs_certificate && !site.needs_certificate {
            site.needs_certificate = true;
            site.reason = verdict.reason.clone();
        } else if site.reason.is_empty() {
            site.reason = verdict.reason.clone();
        }
    }
    for site in &mut sites {
        // A site with nothing to order yet is still named for a real name (its wildcard) when
        // it has one, not for a regex.
        site.name = site
            .names
            .first()
            .or_else(|| {
                site.left_out
                    .iter()
                    .find(|l| l.kind == LeftOutKind::Wildcard)
                    .or(site.left_out.first())
                    .map(|l| &l.name)
            })
            .cloned()
            .unwrap_or_default();
    }
    sites.retain(|s| !s.names.is_empty() || !s.left_out.is_empty());
    sites
}

/// Names each site after a name it covers that already has a lineage or an order (`known`), so
/// its `live/` directory stays the same when its first name changes, is left out, or comes back.
/// A site named after a known name, or covering none, keeps its name.
pub fn keep_known_names(sites: &mut [Site], known: impl Fn(&str) -> bool) {
    for site in sites {
        if known(&site.name) {
            continue;
        }
        if let Some(name) = site.names.iter().find(|n| known(n)) {
            site.name = name.clone();
        }
    }
}

/// The sites `--site` selects: a site matches a selector equal to one of its names (ordered or
/// left out), or to the path of a file holding one of its blocks (as nginx opened it, or the file
/// it links to). Without selectors, every site that needs a certificate. Selectors that match nothing are returned as the error.
pub fn select(
    found: &Discovery,
    sites: Vec<Site>,
    selectors: &[String],
) -> Result<Vec<Site>, Vec<String>> {
    if selectors.is_empty() {
        return Ok(sites.into_iter().filter(|s| s.needs_certificate).collect());
    }
    // A selector that names an existing file, resolved once (a vhost enabled by a link in
    // `sites-enabled/` is selected by its `sites-available/` path too). A selector that is no
    // file (a site name, the usual case) resolves nothing: no block's file is resolved for it,
    // where before every block's file was, for every selector, on a 10,000-site host.
    let targets: Vec<Option<std::path::PathBuf>> = (selectors.iter())
        .map(|sel| std::fs::canonicalize(sel).ok())
        .collect();
    let matches = |site: &Site, (sel, target): (&String, &Option<std::path::PathBuf>)| {
        let sel_lower = sel.trim_end_matches('.').to_ascii_lowercase();
        site.names.contains(&sel_lower)
            || site.left_out.iter().any(|l| l.name == *sel)
            || crate::names::classify(sel)
                .iter()
                .any(|n| site.names.contains(&n.name))
            || site.servers.iter().any(|&i| {
                let path = &found.config.files[found.servers[i].place.file].path;
                path.as_os_str() == sel.as_str()
                    || path.file_name().is_some_and(|f| f == sel.as_str())
                    || target
                        .as_ref()
                        .is_some_and(|t| std::fs::canonicalize(path).is_ok_and(|p| p == *t))
            })
    };
    let unmatched: Vec<String> = (selectors.iter().zip(&targets))
        .filter(|sel| !sites.iter().any(|s| matches(s, *sel)))
        .map(|(sel, _)| sel.clone())
        .collect();
    if !unmatched.is_empty() {
        return Err(unmatched);
    }
    Ok(sites
        .into_iter()
        .filter(|s| selectors.iter().zip(&targets).any(|sel| matches(s, sel)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, names: &[&str]) -> Site {
        Site {
            name: name.into(),
            servers: vec![0],
            names: names.iter().map(|n| n.to_string()).collect(),
            left_out: Vec::new(),
            needs_certificate: true,
            reason: String::new(),
            dns_names: Vec::new(),
        }
    }

    #[test]
    fn a_site_keeps_the_name_it_has_a_lineage_under() {
        let mut sites = vec![
            site("xn--bcher-kva.test", &["xn--bcher-kva.test", "shop.test"]),
            site("a.test", &["a.test", "b.test"]),
        ];
        keep_known_names(&mut sites, |n| {
            ["shop.test", "a.test", "b.test"].contains(&n)
        });
        assert_eq!(sites[0].name, "shop.test");
        assert_eq!(sites[1].name, "a.test", "already known: unchanged");
    }
}
