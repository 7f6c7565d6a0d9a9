//! `enc365-nginx cancel`: a pending order cancelled through the provider's cancel call (HowSSL
//! `cancelOrder`, counted in the simulator), what was published for it removed, the record marked
//! cancelled and the next run ordering anew; a provider without a cancel call says so and
//! changes nothing unless `--forget`.

use std::path::Path;

use crate::common::host::{Host, SITES, expect_exit, json, pem_fingerprint, served};
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::howssl::HowFaults;
use enc365_sim::{Faults, SimProvider};

const TOKEN: &str = "howssl-cancel-token-0123456789";
const CANCEL: &str = "/Home/Order/cancelOrder";

fn howssl_host() -> Host {
    let host = Host::with_sim_options(Faults::default(), SITES, "", |o| {
        o.provider = SimProvider::HowSsl;
    });
    host.sim.add_howssl_token(TOKEN, "ops@example.com", 100.0);
    let config = format!(
        "provider = \"howssl\"\nkey_type = \"ecdsa-p256\"\n\n[howssl]\nbase_url = \"{}\"\n\
         token = \"{TOKEN}\"\nproduct_code = \"sim-dv-multi\"\nvalidity_period = 12\n",
        host.sim.base_url()
    );
    std::fs::write(host.dir.path().join("config.toml"), config).unwrap();
    host
}

fn record(host: &Host, site: &str) -> OrderRecord {
    OrderRecord::load(&host.dir.path().join("state"), site)
        .unwrap()
        .expect("an order record")
}

/// The `.txt` validation files under `dir`, however deep.
fn txt_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(txt_files(&p));
            } else if p.extension().is_some_and(|x| x == "txt") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn cancel_calls_cancel_order_removes_the_files_and_the_next_run_orders_anew() {
    let host = howssl_host();
    host.sim.set_howssl_faults(HowFaults {
        issuance_delay_secs: 3600,
        ..HowFaults::default()
    });
    let out = host.auto(&["--json", "--site", "shop.test", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", json(&out));
    let pending = record(&host, "shop.test");
    assert_eq!(pending.state, RecordState::Pending);
    assert!(!pending.published_files.is_empty());
    assert!(!txt_files(&host.sb.path("www/shop")).is_empty());
    let paid = host.sim.howssl_balance(TOKEN).unwrap();

    let out = host.command(&["cancel", "--site", "www.shop.test", "--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["site"], "shop.test");
    assert_eq!(doc["cancelled_at_ca"], true);
    assert_eq!(doc["order_id"].as_str(), pending.order_id.as_deref());
    assert_eq!(host.sim.request_count(CANCEL), 1);
    assert!(host.sim.howssl_balance(TOKEN).unwrap() > paid, "refunded");
    assert_eq!(record(&host, "shop.test").state, RecordState::Cancelled);
    assert!(txt_files(&host.sb.path("www/shop")).is_empty());
    // Cancelled is not pending: status lists no pending order, a second cancel is refused.
    let again = host.command(&["cancel", "--site", "shop.test", "--json"]);
    let err = expect_exit(&again, 2)["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("already cancelled"), "{err}");
    assert_eq!(host.sim.request_count(CANCEL), 1);

    host.sim.set_howssl_faults(HowFaults::default());
    let out = host.auto(&["--json", "--site", "shop.test"]);
    expect_exit(&out, 0);
    assert_eq!(host.sim.request_count("/Home/Order/createOrder"), 2);
    assert_eq!(
        served(&host, "shop.test").fingerprint,
        pem_fingerprint(&host.live("shop.test"))
    );
    assert_ne!(record(&host, "shop.test").order_id, pending.order_id);
}

#[test]
fn cancel_with_a_provider_that_cannot_says_so_and_forget_drops_the_order_here() {
    let host = Host::new(Faults {
        issuance_delay_secs: 3600,
        ..Faults::default()
    });
    let out = host.auto(&["--json", "--site", "shop.test", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", json(&out));
    let pending = record(&host, "shop.test");
    let id = pending.order_id.clone().expect("an order id");

    let out = host.command(&["cancel", "--site", "shop.test", "--json"]);
    let err = expect_exit(&out, 2)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("encryption365 cannot cancel order")
            && err.contains("TrustOcean console")
            && err.contains("--forget"),
        "{err}"
    );
    assert_eq!(record(&host, "shop.test"), pending, "nothing changed");
    assert!(!txt_files(&host.sb.path("www/shop")).is_empty());

    let out = host.command(&["cancel", "--order", &id, "--forget", "--json"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(doc["cancelled_at_ca"], false);
    assert_eq!(record(&host, "shop.test").state, RecordState::Cancelled);
    assert!(txt_files(&host.sb.path("www/shop")).is_empty());

    let out = host.command(&["cancel", "--site", "nothing.test", "--json"]);
    let err = expect_exit(&out, 2)["error"].as_str().unwrap().to_string();
    assert!(err.contains("nothing.test has no order pending"), "{err}");
}
