//! The install as it holds little in memory (issue 17): it reads the configuration afresh when
//! it installs, writes each certificate's files and then holds only their names, and keeps its
//! backup entries on disk. End to end: real nginx in a sandbox, the simulator in process, the
//! real binary.

use crate::common;
use common::host::ONE_SITE;

use common::host::{Host, json, pem_fingerprint, served};
use enc365_sim::Faults;

const HOOK_LINE: &[u8] = b"# changed after discover\n";

#[test]
fn a_file_changed_after_discover_is_edited_as_it_is_then_and_rolled_back_to_that() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    let conf = host.sb.conf_path();
    let before = std::fs::read(&conf).unwrap();
    // The pre hook runs after discover, preflight and ordering, right before the install.
    let pre = format!("printf '# changed after discover\\n' >> {}", conf.display());
    let out = host.auto(&["--json", "--pre-hook", &pre]);
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");

    let as_changed = [&before[..], HOOK_LINE].concat();
    let installed = std::fs::read(&conf).unwrap();
    assert!(
        installed.ends_with(HOOK_LINE),
        "the change made after discover is kept, not overwritten:\n{}",
        String::from_utf8_lossy(&installed)
    );
    assert_ne!(installed, as_changed, "the TLS lines went in");
    let fingerprint = pem_fingerprint(&host.live("shop.test"));
    for name in ["shop.test", "www.shop.test"] {
        assert_eq!(served(&host, name).fingerprint, fingerprint, "{name}");
    }
    // The certificate reported is the one read back from the live files.
    let site = &doc["sites"][0];
    assert_eq!(
        site["names_issued"],
        serde_json::json!(["shop.test", "www.shop.test"])
    );
    assert!(
        site["not_after"].as_str().is_some_and(|t| !t.is_empty()),
        "{site}"
    );

    // The install's backups (kept on disk, folded into its manifest at commit) put the file
    // back byte for byte as the install found it: with the hook's line.
    let out = host.command(&["rollback", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read(&conf).unwrap(), as_changed);
}
