//! HowSSL with DNS validation, end to end: the simulator's HowSSL mode checks the CNAME
//! (`DCVdnsHost.<name>` → `DCVdnsValue`) at a real BIND `named`, records are published by RFC 2136
//! (TSIG) to that named, each name's method is switched at the CA (`batchUpdateDCV` /
//! `updateDCV`) where it differs from the one chosen, and the result is proven by TLS handshake
//! against the sandboxed nginx.

use hickory_proto::rr::RecordType;

use crate::common::host::{Host, expect_exit, pem_fingerprint, served};
use crate::common::named::Named;
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_sim::{Faults, SimProvider};

const TOKEN: &str = "howssl-dns-token-0123456789";
const BATCH: &str = "/Home/Order/batchUpdateDCV";
const UPDATE: &str = "/Home/Order/updateDCV";

const WILD_APEX: &str = r#"
    server {
        listen 127.0.0.1:{port.0};
        server_name x.test *.x.test;
        root {prefix}/www/shop;
    }
"#;

/// A HowSSL host whose simulator checks DNS at `named`, with `dns` (a `[dns]` table) configured.
fn host(named: &Named, dns: &str) -> Host {
    let addr = named.addr;
    let host = Host::with_sim_options(Faults::default(), WILD_APEX, "", |o| {
        o.provider = SimProvider::HowSsl;
        o.dns_server = Some(addr);
    });
    host.sim.add_howssl_token(TOKEN, "ops@example.com", 1000.0);
    let config = format!(
        "provider = \"howssl\"\nkey_type = \"ecdsa-p256\"\n\n[howssl]\nbase_url = \"{}\"\n\
         token = \"{TOKEN}\"\nproduct_code = \"sim-dv-multi\"\nvalidity_period = 12\n{dns}",
        host.sim.base_url()
    );
    std::fs::write(host.dir.path().join("config.toml"), config).unwrap();
    let hosts = host.dir.path().join("hosts");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    text.push_str("127.0.0.1 x.test\n");
    std::fs::write(hosts, text).unwrap();
    host
}

/// HowSSL's CNAME owner for `name` (`_md5` of the order's CSR, then the name without `*.`).
fn howssl_owner(host: &Host, name: &str) -> String {
    use base64::Engine as _;
    let record = OrderRecord::load(&host.dir.path().join("state"), "x.test")
        .unwrap()
        .expect("an order record");
    let body: String = (record.csr_pem.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let md5 = enc365_sim::dcv::CsrHashes::of_der(&der).md5;
    format!("_{md5}.{}", name.trim_start_matches("*."))
}

/// The checks every run here ends with: both names (and a concrete name under the wildcard)
/// serve the new certificate, the order is installed, and its CNAME is gone from named.
fn assert_installed_and_clean(host: &Host, named: &Named) {
    let live = pem_fingerprint(&host.live("x.test"));
    for name in ["x.test", "www.x.test"] {
        assert_eq!(served(host, name).fingerprint, live, "{name}");
    }
    let record = OrderRecord::load(&host.dir.path().join("state"), "x.test")
        .unwrap()
        .unwrap();
    assert_eq!(record.state, RecordState::Installed);
    assert!(record.dns_records.is_empty(), "{:?}", record.dns_records);
    let owner = howssl_owner(host, "*.x.test");
    assert!(
        named.values(&owner, RecordType::CNAME).is_empty(),
        "{owner}"
    );
    assert!(!host.sb.path("www/shop/.well-known/pki-validation").exists());
}

#[test]
fn howssl_orders_a_wildcard_and_apex_site_by_dns_switching_every_name_in_one_batch() {
    let named = Named::start(&["x.test"]);
    let dns = format!("{}validation = \"dns\"\n", named.rfc2136_config(15));
    let host = host(&named, &dns);
    let out = host.auto(&["--json", "--site", "x.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["x.test", "*.x.test"]),
        "{doc:#}"
    );
    // The order starts on FILE at the CA: both names were switched to DNS in one call.
    assert_eq!(host.sim.request_count(BATCH), 1);
    assert_eq!(host.sim.request_count(UPDATE), 0);
    // HowSSL's owner is relative to each name: apex and wildcard share one CNAME, published once.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("publishing _").count(), 1, "{stderr}");
    assert_installed_and_clean(&host, &named);
    assert_eq!(host.sim.request_count("/Home/Order/commitOrder"), 1);
}

#[test]
fn howssl_proves_the_apex_by_file_and_switches_only_the_wildcard_to_dns() {
    let named = Named::start(&["x.test"]);
    let host = host(&named, &named.rfc2136_config(15));
    let out = host.auto(&["--json", "--site", "x.test"]);
    let doc = expect_exit(&out, 0);
    assert_eq!(
        doc["sites"][0]["names_issued"],
        serde_json::json!(["x.test", "*.x.test"]),
        "{doc:#}"
    );
    // Only the wildcard differs from the order's FILE: one updateDCV, no batch.
    assert_eq!(host.sim.request_count(UPDATE), 1);
    assert_eq!(host.sim.request_count(BATCH), 0);
    assert_installed_and_clean(&host, &named);
}

#[test]
fn howssl_without_a_dns_switch_the_wildcard_is_not_validated_by_its_file() {
    // The simulator validates a wildcard left on FILE only by DNS when it has a DNS server:
    // what makes the switch above necessary. Checked directly against the simulator's API.
    use enc365_nginx::ca::howssl::{HowSsl, HowSslOptions};
    use enc365_nginx::ca::{CertificateAuthority, Created, OrderRequest, ValidationMethod};
    use enc365_nginx::keys::{self, KeyType};
    use enc365_nginx::secret::Secret;

    let named = Named::start(&["x.test"]);
    let host = host(&named, "");
    let names = vec!["*.x.test".to_string()];
    let made = keys::generate(KeyType::EcdsaP256, &names).unwrap();
    let mut request = OrderRequest {
        product: "sim-dv-multi".into(),
        names: names.clone(),
        csr_pem: made.csr_pem,
        period: None,
        renews: None,
        existing_id: None,
        methods: Default::default(),
    };
    let options = HowSslOptions {
        token: Some(Secret::new(TOKEN)),
        product_code: Some("sim-dv-multi".into()),
        validity_months: Some(12),
    };
    let ca = HowSsl::new(&host.sim.base_url(), options).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Created::Draft(draft) = rt.block_on(ca.create(&request)).unwrap() else {
        panic!("a draft");
    };
    let order = rt.block_on(ca.commit(&draft, &request)).unwrap();
    // Asked for FILE (as the order already is): nothing is switched.
    request
        .methods
        .insert(names[0].clone(), ValidationMethod::HttpFile);
    rt.block_on(ca.use_methods(&order.id, &request)).unwrap();
    assert_eq!(host.sim.request_count(UPDATE), 0);
    rt.block_on(ca.request_validation(&order.id)).unwrap();
    let status = rt.block_on(ca.order_status(&order.id, &names)).unwrap();
    assert!(!status.validations[0].validated, "{status:?}");
    // Asked for DNS: switched with one updateDCV (a single name), and a second ask changes
    // nothing more.
    request
        .methods
        .insert(names[0].clone(), ValidationMethod::Dns);
    rt.block_on(ca.use_methods(&order.id, &request)).unwrap();
    rt.block_on(ca.use_methods(&order.id, &request)).unwrap();
    assert_eq!(host.sim.request_count(UPDATE), 1);
    assert_eq!(host.sim.request_count(BATCH), 0);
}
