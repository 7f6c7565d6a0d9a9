//! Contract tests: the Encryption365 client against `enc365-sim` over real loopback HTTP — every
//! endpoint, and the client's behaviour under every fault switch (clear error, no retry of calls
//! that create something, secrets never in errors).

use std::time::Duration;

use enc365_nginx::ca::enc365::{CertStatus, ClientOptions, CreateRequest, Enc365};
use enc365_nginx::ca::{CaError, CertificateAuthority, Created, OrderId, OrderRequest, OrderState};
use enc365_nginx::config::Credentials;
use enc365_nginx::keys::{self, KeyType};
use enc365_nginx::secret::Secret;
use enc365_sim::{self as sim, Faults, SimHandle, SimOptions};

use crate::common::cases;

const USER: &str = "dev@example.com";
const PASSWORD: &str = "correct horse";

fn fast() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        read_retries: 2,
        retry_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    }
}

struct Setup {
    sim: SimHandle,
    client: Enc365,
    token: String,
}

async fn setup_with(options: SimOptions, client_options: ClientOptions) -> Setup {
    let sim = sim::start(options).await.expect("simulator starts");
    sim.add_account(USER, PASSWORD, 1000.0);
    let (client_id, token) = sim.add_device(USER).expect("device");
    let client = Enc365::new(
        &sim.base_url(),
        Some(Credentials {
            client_id,
            access_token: Secret::new(token.clone()),
        }),
        client_options,
    )
    .expect("client");
    Setup { sim, client, token }
}

async fn setup() -> Setup {
    setup_with(SimOptions::default(), fast()).await
}

fn request(names: &[&str]) -> (CreateRequest, keys::KeyAndCsr) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let made = keys::generate(KeyType::EcdsaP256, &names).expect("csr");
    (
        CreateRequest {
            pid: 100,
            csr_pem: made.csr_pem.clone(),
            domains: names,
            period: Some("quarterly".into()),
            renew_of: None,
        },
        made,
    )
}

fn assert_no_secret(e: &CaError, token: &str) {
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains(token),
        "the token leaked into an error: {shown}"
    );
    assert!(
        !shown.contains(PASSWORD),
        "the password leaked into an error: {shown}"
    );
}

#[tokio::test]
async fn register_returns_a_device_token_and_wrong_password_quotes_the_api_message() {
    let s = setup().await;
    let anon = Enc365::new(&s.sim.base_url(), None, fast()).expect("client");
    let reg = anon
        .register(USER, &Secret::new(PASSWORD), "web-01")
        .await
        .expect("registered");
    assert!(!reg.account_id.is_empty());
    assert_eq!(reg.secret.expose().len(), 32);
    assert_eq!(reg.status.as_deref(), Some("active"));
    assert!(!format!("{reg:?}").contains(reg.secret.expose()));

    let e = anon
        .register(USER, &Secret::new("wrong"), "web-01")
        .await
        .expect_err("refused");
    assert!(matches!(e, CaError::Api { .. }), "{e:?}");
    assert!(e.to_string().contains("账户或密码错误"), "{e}");
    assert!(!e.to_string().contains("wrong"), "password in error: {e}");
    assert_eq!(s.sim.request_count("/client/create"), 2);
}

#[tokio::test]
async fn products_lists_the_free_and_the_paid_product_with_prices() {
    let s = setup().await;
    let products = s.client.products().await.expect("products");
    let pids: Vec<u64> = products.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![100, 108]);
    assert!(products[0].is_free);
    assert_eq!(products[0].period, "quarterly");
    assert_eq!(products[1].price_fqdn, 256.0);
    assert_eq!(products[1].price_wildcard, 750.0);
}

#[tokio::test]
async fn a_bad_token_is_an_api_error_that_does_not_show_the_token() {
    let s = setup().await;
    let bad = Enc365::new(
        &s.sim.base_url(),
        Some(Credentials {
            client_id: "nope".into(),
            access_token: Secret::new("bad-token-value"),
        }),
        fast(),
    )
    .expect("client");
    let e = bad.products().await.expect_err("refused");
    assert!(matches!(e, CaError::Api { .. }), "{e:?}");
    assert!(e.to_string().contains("access_token"), "{e}");
    assert_no_secret(&e, "bad-token-value");
    // API errors are never retried.
    assert_eq!(s.sim.request_count("/account/products"), 1);
}

#[tokio::test]
async fn account_credit_drops_by_the_price_of_a_paid_order_and_overspending_is_refused() {
    let s = setup().await;
    assert_eq!(
        s.client.account_details().await.expect("details").credit,
        Some(1000.0)
    );
    let (mut req, _) = request(&["shop.example.com"]);
    req.pid = 108;
    let order = s.client.create(&req).await.expect("order");
    assert_eq!(order.total_fees, Some(256.0));
    assert_eq!(
        s.client.account_details().await.expect("details").credit,
        Some(744.0)
    );
    let (mut req, _) = request(&["*.example.com"]);
    req.pid = 108;
    let e = s.client.create(&req).await.expect_err("750 > 744");
    assert!(e.to_string().contains("余额不足"), "{e}");
    assert_eq!(
        s.client.account_details().await.expect("details").credit,
        Some(744.0)
    );
}

#[tokio::test]
async fn create_returns_dcv_data_for_every_name_derived_from_the_csr() {
    let s = setup().await;
    let (req, made) = request(&["example.com", "www.example.com", "203.0.113.7"]);
    let order = s.client.create(&req).await.expect("order");
    assert_eq!(order.status, CertStatus::Processing);
    assert_eq!(order.dcv.len(), 3);
    let unique = order.unique_id.clone().expect("unique_id");
    let hashes = enc365_sim::dcv::CsrHashes::of_der(&made.csr_der);
    for entry in &order.dcv {
        assert!(req.domains.contains(&entry.domain));
        assert_eq!(
            entry.http_filename.as_deref(),
            Some(hashes.file_name().as_str())
        );
        let content = entry.http_filecontent.clone().expect("content");
        assert_eq!(
            content,
            format!("{}\r\ncomodoca.com\r\n{unique}", hashes.sha256)
        );
        assert_eq!(entry.status, "needverification");
    }
    let ip = order
        .dcv
        .iter()
        .find(|d| d.domain == "203.0.113.7")
        .expect("ip entry");
    assert!(ip.is_ip);
    assert_eq!(ip.dns_host, None, "no DNS validation for IPs");
    let www = order
        .dcv
        .iter()
        .find(|d| d.domain == "www.example.com")
        .expect("www");
    assert_eq!(
        www.dns_host.as_deref(),
        Some(format!("_{}.www", hashes.md5).as_str())
    );

    // The provider-neutral view: a file to publish for each name, pending.
    let neutral = order.to_order();
    assert!(matches!(neutral.state, OrderState::Pending { .. }));
    assert!(
        neutral
            .validations
            .iter()
            .all(|v| v.challenges.iter().any(|c| c.http_path().is_some()))
    );
}

#[tokio::test]
async fn details_and_challenge_report_a_pending_order_whose_files_are_not_served() {
    let s = setup().await;
    let (req, _) = request(&["unserved.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    let message = s
        .client
        .challenge(order.trustocean_id)
        .await
        .expect("challenge accepted");
    assert!(message.contains("0/1"), "{message}");
    let details = s
        .client
        .details(order.trustocean_id)
        .await
        .expect("details");
    assert_eq!(details.status, CertStatus::Processing);
    assert_eq!(details.trustocean_id, order.trustocean_id);
    assert!(details.certificate.is_none());
    let e = s
        .client
        .details(order.trustocean_id + 1000)
        .await
        .expect_err("unknown order");
    assert!(e.to_string().contains("订单不存在"), "{e}");
}

#[tokio::test]
async fn reissue_keeps_the_order_id_and_derives_new_dcv_values_from_the_new_csr() {
    let s = setup().await;
    let (req, _) = request(&["a.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    let (req2, made2) = request(&["a.example.com", "b.example.com"]);
    let again = s
        .client
        .reissue(order.trustocean_id, &req2.csr_pem, &req2.domains)
        .await
        .expect("reissued");
    assert_eq!(again.trustocean_id, order.trustocean_id);
    assert_eq!(again.dcv.len(), 2);
    let hashes = enc365_sim::dcv::CsrHashes::of_der(&made2.csr_der);
    assert_eq!(
        again.dcv[0].http_filename.as_deref(),
        Some(hashes.file_name().as_str())
    );
    assert_ne!(again.dcv[0].http_filename, order.dcv[0].http_filename);
    assert_eq!(s.sim.request_count("/cert/reissue"), 1);
}

#[tokio::test]
async fn renewal_is_a_new_order_and_an_unknown_old_order_is_refused() {
    let s = setup().await;
    let (req, _) = request(&["renew.example.com"]);
    let first = s.client.create(&req).await.expect("order");
    let (mut renew, _) = request(&["renew.example.com"]);
    renew.renew_of = Some(first.trustocean_id);
    let second = s.client.create(&renew).await.expect("renewal");
    assert_ne!(second.trustocean_id, first.trustocean_id);
    renew.renew_of = Some(999);
    let e = s
        .client
        .create(&renew)
        .await
        .expect_err("unknown old order");
    assert!(matches!(e, CaError::Api { .. }), "{e:?}");
}

#[tokio::test]
async fn a_csr_that_is_not_a_valid_request_is_refused_by_the_ca() {
    let s = setup().await;
    let (mut req, _) = request(&["x.example.com"]);
    // Change one character of the signed body: the self-signature no longer verifies.
    let mut lines: Vec<String> = req.csr_pem.lines().map(String::from).collect();
    let line = &mut lines[2];
    let flipped = if line.starts_with('A') { "B" } else { "A" };
    line.replace_range(0..1, flipped);
    req.csr_pem = lines.join("\n");
    let e = s.client.create(&req).await.expect_err("bad csr");
    assert!(e.to_string().contains("CSR"), "{e}");
}

#[tokio::test]
async fn unconfirmed_endpoints_are_not_called_unless_enabled() {
    let s = setup().await;
    let e = s.client.revoke(1).await.expect_err("off");
    assert!(matches!(e, CaError::Unsupported(_)), "{e:?}");
    assert!(
        e.to_string().contains("enable_unconfirmed_endpoints"),
        "{e}"
    );
    let e = s
        .client
        .change_dcv(1, "a.example.com", "dns")
        .await
        .expect_err("off");
    assert!(matches!(e, CaError::Unsupported(_)), "{e:?}");
    assert_eq!(s.sim.request_count("/cert/revoke"), 0);
    assert!(!s.client.capabilities().revoke);
}

#[tokio::test]
async fn unconfirmed_endpoints_work_against_a_simulator_that_answers_them() {
    let options = SimOptions {
        unconfirmed_endpoints: true,
        ..SimOptions::default()
    };
    let s = setup_with(
        options,
        ClientOptions {
            unconfirmed_endpoints: true,
            ..fast()
        },
    )
    .await;
    let (req, _) = request(&["c.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    s.client
        .change_dcv(order.trustocean_id, "c.example.com", "dns")
        .await
        .expect("changed");
    let details = s
        .client
        .details(order.trustocean_id)
        .await
        .expect("details");
    assert_eq!(details.dcv[0].method, "dns");
    let e = s
        .client
        .revoke(order.trustocean_id)
        .await
        .expect_err("not issued yet");
    assert!(e.to_string().contains("only issued"), "{e}");
}

#[tokio::test]
async fn an_endpoint_the_ca_does_not_have_is_a_clear_transport_error() {
    // The simulator answers /cert/revoke only when asked to, like a CA without the endpoint.
    let s = setup_with(
        SimOptions::default(),
        ClientOptions {
            unconfirmed_endpoints: true,
            ..fast()
        },
    )
    .await;
    let e = s.client.revoke(52295091).await.expect_err("404");
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert!(e.to_string().contains("no /cert/revoke endpoint"), "{e}");
}

/// A fault switched on for every path, and what the client must make of it.
struct FaultCase {
    faults: Faults,
    /// The kind of error every call fails with.
    kind: fn(&CaError) -> bool,
    /// What the error must say.
    says: &'static [&'static str],
    /// What the error of `create` must say besides.
    create_says: &'static [&'static str],
    /// How many times a read-only call is sent: retried only when a retry may pass.
    read_attempts: u64,
}

fn http_503() -> FaultCase {
    FaultCase {
        faults: Faults {
            http_status: Some(503),
            ..Faults::default()
        },
        kind: |e| matches!(e, CaError::Transport { .. }),
        says: &["503"],
        create_says: &["not repeated"],
        read_attempts: 3,
    }
}

fn html_error_page() -> FaultCase {
    FaultCase {
        faults: Faults {
            html_error: true,
            ..Faults::default()
        },
        kind: |e| matches!(e, CaError::Malformed { .. }),
        says: &["HTML page"],
        create_says: &[],
        read_attempts: 1,
    }
}

fn truncated_json() -> FaultCase {
    FaultCase {
        faults: Faults {
            truncated_json: true,
            ..Faults::default()
        },
        kind: |e| matches!(e, CaError::Malformed { .. }),
        says: &["malformed JSON"],
        create_says: &[],
        read_attempts: 1,
    }
}

fn rejection() -> FaultCase {
    FaultCase {
        faults: Faults {
            reject: Some("账户已被锁定 account locked".into()),
            ..Faults::default()
        },
        kind: |e| matches!(e, CaError::Api { .. }),
        says: &["账户已被锁定 account locked"],
        create_says: &[],
        read_attempts: 1,
    }
}

/// `create` under the fault of `case`: a clear error, sent once (it creates an order, so it is
/// never repeated), no secret in it.
async fn create_fails_once(case: FaultCase) {
    let s = setup().await;
    s.sim.set_faults(case.faults);
    let (req, _) = request(&["d.example.com"]);
    let e = s.client.create(&req).await.expect_err("fault");
    assert!((case.kind)(&e), "{e:?}");
    for says in case.says.iter().chain(case.create_says) {
        assert!(e.to_string().contains(says), "{e}");
    }
    assert_eq!(
        s.sim.request_count("/cert/create"),
        1,
        "cert/create must never be retried"
    );
    assert_no_secret(&e, &s.token);
}

/// Read-only calls (`products`, `details`) under the fault of `case`: a clear error, after as many
/// attempts as the case says, no secret in it.
async fn read_fails_after_attempts(case: FaultCase) {
    let s = setup().await;
    s.sim.set_faults(case.faults);
    let e = s.client.products().await.expect_err("fault");
    assert!((case.kind)(&e), "{e:?}");
    for says in case.says {
        assert!(e.to_string().contains(says), "{e}");
    }
    if case.read_attempts > 1 {
        let gave_up = format!("gave up after {} attempts", case.read_attempts);
        assert!(e.to_string().contains(&gave_up), "{e}");
    }
    assert_eq!(s.sim.request_count("/account/products"), case.read_attempts);
    assert_no_secret(&e, &s.token);
    s.client.details(1).await.expect_err("fault");
    assert_eq!(s.sim.request_count("/cert/details"), case.read_attempts);
}

cases! {
    async fn create_fails_once;
    http_5xx_on_create_is_reported_once_and_never_retried => http_503();
    an_html_error_page_on_create_is_named_as_such_and_not_retried => html_error_page();
    truncated_json_on_create_is_a_clear_error => truncated_json();
    a_rejection_quotes_the_ca_message_and_does_not_leak_the_token => rejection();
}

cases! {
    async fn read_fails_after_attempts;
    http_5xx_on_read_only_calls_is_retried_with_backoff_then_reported => http_503();
    an_html_error_page_is_named_as_such_and_not_retried => html_error_page();
    truncated_json_on_a_read_only_call_is_a_clear_error_and_not_retried => truncated_json();
    a_rejection_of_a_read_only_call_is_not_retried => rejection();
}

#[tokio::test]
async fn http_5xx_on_reissue_and_register_is_never_retried() {
    let s = setup().await;
    let (req, _) = request(&["e.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    s.sim.set_faults(Faults {
        http_status: Some(502),
        ..Faults::default()
    });
    s.client
        .reissue(order.trustocean_id, &req.csr_pem, &req.domains)
        .await
        .expect_err("502");
    assert_eq!(s.sim.request_count("/cert/reissue"), 1);
    let anon = Enc365::new(&s.sim.base_url(), None, fast()).expect("client");
    let e = anon
        .register(USER, &Secret::new(PASSWORD), "x")
        .await
        .expect_err("502");
    assert_eq!(s.sim.request_count("/client/create"), 1);
    assert_no_secret(&e, &s.token);
}

#[tokio::test]
async fn a_read_only_call_succeeds_when_the_fault_is_scoped_to_another_path() {
    let s = setup().await;
    s.sim.set_faults(Faults {
        http_status: Some(500),
        paths: vec!["/cert/details".into()],
        ..Faults::default()
    });
    assert_eq!(s.client.products().await.expect("products").len(), 2);
    assert_eq!(s.sim.request_count("/account/products"), 1);
}

#[tokio::test]
async fn latency_beyond_the_timeout_fails_create_once_and_retries_details() {
    let options = ClientOptions {
        timeout: Duration::from_millis(300),
        ..fast()
    };
    let s = setup_with(SimOptions::default(), options).await;
    s.sim.set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let (req, _) = request(&["f.example.com"]);
    let e = s.client.create(&req).await.expect_err("timeout");
    assert!(e.to_string().contains("no answer in time"), "{e}");
    assert!(e.to_string().contains("not repeated"), "{e}");
    s.client.details(1).await.expect_err("timeout");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(s.sim.request_count("/cert/create"), 1);
    assert_eq!(s.sim.request_count("/cert/details"), 3);
}

#[tokio::test]
async fn latency_within_the_timeout_is_just_slow() {
    let s = setup().await;
    s.sim.set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    assert_eq!(s.client.products().await.expect("slow but fine").len(), 2);
}

#[tokio::test]
async fn the_status_style_envelope_is_understood_for_success_and_error() {
    let s = setup().await;
    s.sim.set_faults(Faults {
        status_envelope: true,
        ..Faults::default()
    });
    assert_eq!(s.client.products().await.expect("products").len(), 2);
    let (req, _) = request(&["i.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    s.client
        .challenge(order.trustocean_id)
        .await
        .expect("challenge");
    let e = s
        .client
        .details(order.trustocean_id + 77)
        .await
        .expect_err("unknown");
    assert!(e.to_string().contains("订单不存在"), "{e}");
}

#[tokio::test]
async fn numbers_sent_as_strings_are_accepted() {
    let s = setup().await;
    s.sim.set_faults(Faults {
        string_numbers: true,
        ..Faults::default()
    });
    let (req, _) = request(&["j.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    assert!(order.trustocean_id >= 52295091);
    assert_eq!(order.total_fees, Some(0.0));
    let products = s.client.products().await.expect("products");
    assert_eq!(products[1].price_fqdn, 256.0);
    assert_eq!(
        s.client.account_details().await.expect("credit").credit,
        Some(1000.0)
    );
}

#[tokio::test]
async fn terminal_statuses_end_the_order_and_unknown_ones_stay_pending() {
    let s = setup().await;
    let (req, _) = request(&["l.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    let id = OrderId(order.trustocean_id.to_string());
    for status in ["expired", "revoked", "rejected", "cancelled"] {
        s.sim.set_faults(Faults {
            force_status: Some(status.into()),
            ..Faults::default()
        });
        let neutral = s
            .client
            .order_status(&id, &req.domains)
            .await
            .expect("status");
        assert_eq!(
            neutral.state,
            OrderState::Failed {
                reason: status.into()
            }
        );
    }
    s.sim.set_faults(Faults {
        force_status: Some("enroll_dcv".into()),
        ..Faults::default()
    });
    let neutral = s
        .client
        .order_status(&id, &req.domains)
        .await
        .expect("status");
    assert_eq!(
        neutral.state,
        OrderState::Pending {
            detail: "enroll_dcv".into()
        }
    );
}

#[tokio::test]
async fn an_issued_status_without_a_certificate_is_malformed() {
    let s = setup().await;
    let (req, _) = request(&["m.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    s.sim.set_faults(Faults {
        force_status: Some("issued_active".into()),
        ..Faults::default()
    });
    let e = s
        .client
        .details(order.trustocean_id)
        .await
        .expect_err("no cert_code");
    assert!(e.to_string().contains("cert_code"), "{e}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_unread() {
    let s = setup().await;
    s.sim.set_faults(Faults {
        oversize_body: true,
        ..Faults::default()
    });
    let e = s.client.products().await.expect_err("too big");
    assert!(e.to_string().contains("larger than"), "{e}");
    let small = ClientOptions {
        body_limit: 1024,
        ..fast()
    };
    let s2 = setup_with(SimOptions::default(), small).await;
    let (req, _) = request(&["n.example.com"]);
    let e = s2
        .client
        .create(&req)
        .await
        .expect_err("create answer > 1 KiB");
    assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
}

#[tokio::test]
async fn hostile_dcv_file_names_are_refused_before_anything_uses_them() {
    let s = setup().await;
    for hostile in [
        "../../etc/passwd",
        "a/b.txt",
        "..",
        "x y.txt",
        "",
        "a\\b.txt",
        "é.txt",
    ] {
        s.sim.set_faults(Faults {
            dcv_filename: Some(hostile.into()),
            ..Faults::default()
        });
        let (req, _) = request(&["o.example.com"]);
        match s.client.create(&req).await {
            Err(e) => {
                assert!(matches!(e, CaError::Malformed { .. }), "{hostile:?}: {e:?}");
                assert!(
                    e.to_string().contains("safe file name") || e.to_string().contains("only one"),
                    "{hostile:?}: {e}"
                );
            }
            Ok(order) => panic!("{hostile:?} accepted: {:?}", order.dcv),
        }
    }
}

#[tokio::test]
async fn missing_fields_are_named_in_the_error() {
    let s = setup().await;
    for field in ["dcv_info", "trustocean_id", "cert_status"] {
        s.sim.set_faults(Faults {
            drop_field: Some(field.into()),
            ..Faults::default()
        });
        let (req, _) = request(&["p.example.com"]);
        let e = s.client.create(&req).await.expect_err("missing field");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    s.sim.set_faults(Faults {
        drop_field: Some("products".into()),
        ..Faults::default()
    });
    let e = s.client.products().await.expect_err("missing products");
    assert!(e.to_string().contains("products"), "{e}");
}

#[tokio::test]
async fn the_trait_places_an_order_through_the_same_wire_calls() {
    let s = setup().await;
    let made = keys::generate(KeyType::Rsa2048, &["q.example.com".to_string()]).expect("csr");
    let ca: &dyn CertificateAuthority = &s.client;
    let created = ca
        .create(&OrderRequest {
            product: "100".into(),
            names: vec!["q.example.com".into()],
            csr_pem: made.csr_pem,
            period: None,
            renews: None,
            existing_id: None,
            methods: Default::default(),
        })
        .await
        .expect("order");
    let Created::Placed(order) = created else {
        panic!("Encryption365 places the order in one call: {created:?}");
    };
    assert_eq!(order.validations.len(), 1);
    ca.request_validation(&order.id).await.expect("challenge");
    let e = ca.cancel(&order.id).await.expect_err("no cancel");
    assert!(matches!(e, CaError::Unsupported(_)));
    let e = ca
        .create(&OrderRequest {
            product: "free".into(),
            names: vec!["q.example.com".into()],
            csr_pem: String::new(),
            period: None,
            renews: None,
            existing_id: None,
            methods: Default::default(),
        })
        .await
        .expect_err("bad pid");
    assert!(e.to_string().contains("products"), "{e}");
    assert_eq!(s.sim.request_count("/cert/create"), 1);
}

#[tokio::test]
async fn a_ca_that_is_down_is_a_connect_error_naming_the_host() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = Enc365::new(
        &format!("http://{addr}"),
        Some(Credentials {
            client_id: "c".into(),
            access_token: Secret::new("t0ken-xyz"),
        }),
        fast(),
    )
    .expect("client");
    let e = client.products().await.expect_err("down");
    assert!(e.to_string().contains("could not connect"), "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert_no_secret(&e, "t0ken-xyz");
}

#[tokio::test]
async fn dcv_data_for_a_name_that_was_never_ordered_is_refused() {
    let s = setup().await;
    s.sim.set_faults(Faults {
        foreign_dcv_name: Some("victim.example.org".into()),
        ..Faults::default()
    });
    let (req, _) = request(&["mine.example.com"]);
    let e = s.client.create(&req).await.expect_err("foreign name");
    assert!(matches!(e, CaError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("victim.example.org"), "{e}");
    assert!(e.to_string().contains("not among the names ordered"), "{e}");
}

#[test]
fn the_ca_module_never_imports_the_nginx_model() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ca");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/ca") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            assert!(
                !line.contains("nginx::") && !line.contains("nginx_conf"),
                "{}: {line}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 4,
        "expected the ca module files, found {checked}"
    );
}

#[tokio::test]
async fn details_checked_against_our_names_refuse_a_name_the_ca_added() {
    let s = setup().await;
    let (req, _) = request(&["ours.example.com", "theirs.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    // Our stored order only knows one of the names: the CA's own list is not trusted.
    let ours = vec!["ours.example.com".to_string()];
    let e = s
        .client
        .details_for(order.trustocean_id, &ours)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("theirs.example.com"), "{e}");
    let id = OrderId(order.trustocean_id.to_string());
    assert!(s.client.order_status(&id, &ours).await.is_err());
    assert!(s.client.order_status(&id, &req.domains).await.is_ok());
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_cap() {
    let small = ClientOptions {
        body_limit: 256 * 1024,
        ..fast()
    };
    let s = setup_with(SimOptions::default(), small).await;
    s.sim.set_faults(Faults {
        endless_body: true,
        ..Faults::default()
    });
    let e = s.client.account_details().await.expect_err("endless");
    assert!(matches!(e, CaError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("larger than 262144 bytes"), "{e}");
    assert_eq!(
        s.sim.request_count("/account/details"),
        1,
        "a too-large answer is not retried"
    );
}

#[tokio::test]
async fn details_without_a_name_list_only_pass_when_we_supply_our_names() {
    let s = setup().await;
    let (req, _) = request(&["listed.example.com"]);
    let order = s.client.create(&req).await.expect("order");
    s.sim.set_faults(Faults {
        drop_field: Some("domains".into()),
        ..Faults::default()
    });
    let e = s
        .client
        .details(order.trustocean_id)
        .await
        .expect_err("nothing to check against");
    assert!(e.to_string().contains("lists no domains"), "{e}");
    let ok = s
        .client
        .details_for(order.trustocean_id, &req.domains)
        .await
        .expect("checked");
    assert_eq!(ok.domains, req.domains);
}
