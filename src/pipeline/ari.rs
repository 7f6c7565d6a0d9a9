//! ACME Renewal Information (RFC 9773) for `renew`: asks the CA, for each managed certificate an
//! ACME CA issued, which window it suggests renewing in. The decision itself is
//! [`crate::lifecycle::renewal_verdict`]; a certificate the CA gives no window for (no
//! `renewalInfo` in its directory, a failed call) is decided by `--days`.
//!
//! Not here: the `replaces` field of the new order ([`crate::ca::acme`] adds it).

use std::collections::BTreeMap;

use super::Run;
use crate::ca::acme::{self, Acme, RenewalWindow};
use crate::config::Provider;
use crate::lifecycle::Lineage;

/// The renewal window the configured ACME CA suggests for each managed ACME certificate, by site
/// (empty when the provider is not ACME).
pub fn windows(run: &Run) -> BTreeMap<String, RenewalWindow> {
    let mut out = BTreeMap::new();
    if run.config.provider != Provider::Acme {
        return out;
    }
    let settings = run.config.acme.clone().unwrap_or_default();
    let Ok(client) = Acme::new(&settings, &run.env.config_dir) else {
        return out;
    };
    if !client.has_account() {
        return out;
    }
    let Ok(lineages) = Lineage::all(&run.state_dir) else {
        return out;
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return out;
    };
    for lineage in lineages.iter().filter(|l| l.provider == "acme") {
        let (cert, _) = crate::install::live_paths(&run.env.config_dir, &lineage.site);
        let Ok(pem) = std::fs::read_to_string(&cert) else {
            continue;
        };
        if let Some(window) = runtime.block_on(acme::renewal_window(&client, &pem)) {
            out.insert(lineage.site.clone(), window);
        }
    }
    out
}
