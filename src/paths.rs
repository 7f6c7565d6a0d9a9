//! Every path under the config directory and the state directory (design §3.4), built here and
//! nowhere else: the other modules ask this one.
//!
//! ```text
//! <config-dir>/live/<site>/fullchain.pem, privkey.pem   what nginx points at
//! <config-dir>/nginx/ssl-params.conf                    the shared TLS snippet
//! <state-dir>/orders/<site>.json, <site>.key            orders in flight and their keys
//! <state-dir>/certs/<site>.json                         lineages (managed certificates)
//! <state-dir>/last-run.json                             the last run's outcome per site
//! <state-dir>/backups/<txn>/manifest.json, journal, files/, finished  transactions
//! <state-dir>/dcv/                                      files behind the temporary location
//! <state-dir>/lock                                      one run at a time
//! ```
//!
//! `<site>` is always the site's [`stem`], so a wildcard or an IPv6 address makes a safe name.
//! Not here: the defaults of the two directories themselves (the command context resolves
//! `--config` and `--state-dir`).

use std::path::{Path, PathBuf};

/// The chain file's name in a live directory.
pub const FULLCHAIN: &str = "fullchain.pem";
/// The private key's name in a live directory.
pub const PRIVKEY: &str = "privkey.pem";
/// The leaf certificate alone, in a live directory.
pub const CERT: &str = "cert.pem";
/// The intermediates alone (no leaf), in a live directory.
pub const CHAIN: &str = "chain.pem";
/// A transaction's manifest, inside its directory.
pub const MANIFEST: &str = "manifest.json";
/// A transaction's append-only journal of entries (folded into the manifest when it ends).
pub const JOURNAL: &str = "journal";
/// A transaction's marker that its manifest says it is finished (committed or restored), so a
/// run looking for open transactions need not read the manifest.
pub const TXN_FINISHED: &str = "finished";
/// The byte copies, inside a transaction's directory.
pub const BACKUP_FILES: &str = "files";
/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// The file name stem for a site: its name with anything but `[A-Za-z0-9._-]` replaced, so a
/// wildcard or an IPv6 address makes a safe file name.
pub fn stem(site: &str) -> String {
    site.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `<config-dir>/live/<site>/`.
pub fn live_dir(config_dir: &Path, site: &str) -> PathBuf {
    config_dir.join("live").join(stem(site))
}

/// `<config-dir>/nginx/ssl-params.conf`.
pub fn ssl_params(config_dir: &Path) -> PathBuf {
    config_dir.join("nginx").join("ssl-params.conf")
}

/// `<config-dir>/acme/<directory host and path>.json`: the ACME account (URL and key, 0600) for
/// one directory, so accounts at two CAs (or staging and production) never mix.
pub fn acme_account(config_dir: &Path, directory_url: &str) -> PathBuf {
    let without_scheme = directory_url
        .split_once("://")
        .map_or(directory_url, |(_, rest)| rest);
    config_dir.join("acme").join(format!(
        "{}.json",
        stem(without_scheme.trim_end_matches('/'))
    ))
}

/// `<state-dir>/orders/`.
pub fn orders_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("orders")
}

/// `<state-dir>/orders/<site>.json`.
pub fn order_record(state_dir: &Path, site: &str) -> PathBuf {
    orders_dir(state_dir).join(format!("{}.json", stem(site)))
}

/// `<state-dir>/orders/<site>.key`: the key of an order in flight.
pub fn order_key(state_dir: &Path, site: &str) -> PathBuf {
    orders_dir(state_dir).join(format!("{}.key", stem(site)))
}

/// `<state-dir>/certs/`.
pub fn certs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("certs")
}

/// `<state-dir>/certs/<site>.json`.
pub fn lineage(state_dir: &Path, site: &str) -> PathBuf {
    certs_dir(state_dir).join(format!("{}.json", stem(site)))
}

/// `<state-dir>/certonly/`: the lineages `certonly` saved (no nginx site uses them).
pub fn certonly_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("certonly")
}

/// `<state-dir>/certonly/<name>.json`.
pub fn certonly_lineage(state_dir: &Path, name: &str) -> PathBuf {
    certonly_dir(state_dir).join(format!("{}.json", stem(name)))
}

/// `<state-dir>/last-run.json`.
pub fn last_run(state_dir: &Path) -> PathBuf {
    state_dir.join("last-run.json")
}

/// `<state-dir>/backups/`.
pub fn backups_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("backups")
}

/// `<state-dir>/dcv/`.
pub fn dcv_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dcv")
}

/// `<state-dir>/cluster-dcv.json`: the validation files a cluster agent wrote for each `/dcv/`
/// entry, removed when the entry goes.
pub fn cluster_dcv_ledger(state_dir: &Path) -> PathBuf {
    state_dir.join("cluster-dcv.json")
}

/// `<state-dir>/lock`.
pub fn lock(state_dir: &Path) -> PathBuf {
    state_dir.join(LOCK_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_path_uses_the_safe_stem() {
        let (config, state) = (Path::new("/etc/x"), Path::new("/var/lib/x"));
        assert_eq!(stem("*.shop.test"), "_.shop.test");
        assert_eq!(stem("2001:db8::1"), "2001_db8__1");
        assert_eq!(
            live_dir(config, "*.a.test"),
            Path::new("/etc/x/live/_.a.test")
        );
        assert_eq!(
            order_record(state, "*.a.test"),
            Path::new("/var/lib/x/orders/_.a.test.json")
        );
        assert_eq!(
            order_key(state, "a.test"),
            Path::new("/var/lib/x/orders/a.test.key")
        );
        assert_eq!(
            lineage(state, "a.test"),
            Path::new("/var/lib/x/certs/a.test.json")
        );
        assert_eq!(
            ssl_params(config),
            Path::new("/etc/x/nginx/ssl-params.conf")
        );
    }
}
