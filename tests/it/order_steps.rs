//! Orders placed in persisted steps: with a provider whose order takes two calls (create answers a
//! draft, commit places it, as HowSSL's `createOrder` → `check_id`, `commitOrder` → `order_id`),
//! the order record on disk holds each step's id as soon as the CA answers, so a run that dies
//! between the steps is resumed at the commit — the create is never sent again.
//!
//! The provider is defined here, counts its calls, and is used by nothing else.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use enc365_nginx::ca::{
    BoxFuture, CaError, Capabilities, CertificateAuthority, Created, Order, OrderId, OrderRequest,
    OrderState, PollPolicy,
};
use enc365_nginx::orders::{OrderRecord, RecordState};
use enc365_nginx::pipeline::order::{Next, StepFailure, advance, next, take_step};

/// A two-step provider that counts its calls; `lose_commit` makes the commit's answer get lost.
#[derive(Default)]
struct TwoStep {
    creates: AtomicUsize,
    commits: AtomicUsize,
    lose_commit: bool,
}

fn not_here<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, CaError>> {
    Box::pin(async { Err(CaError::Unsupported("not used by this test".into())) })
}

impl CertificateAuthority for TwoStep {
    fn name(&self) -> &'static str {
        "two-step-test"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            explicit_recheck: false,
            reissue: false,
            cancel: false,
            revoke: false,
        }
    }

    fn create<'a>(&'a self, _request: &'a OrderRequest) -> BoxFuture<'a, Result<Created, CaError>> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(Created::Draft(OrderId("check-41".into()))) })
    }

    fn commit<'a>(
        &'a self,
        draft: &'a OrderId,
        request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            assert_eq!(draft.0, "check-41", "the commit names the saved draft");
            if self.lose_commit {
                return Err(CaError::Transport {
                    endpoint: "commitOrder".into(),
                    detail: "the connection dropped before the answer".into(),
                });
            }
            Ok(Order {
                id: OrderId("order-9".into()),
                names: request.names.clone(),
                state: OrderState::Pending {
                    detail: "waiting".into(),
                },
                validations: Vec::new(),
            })
        })
    }

    fn order_status<'a>(
        &'a self,
        _id: &'a OrderId,
        _names: &'a [String],
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        not_here()
    }

    fn poll_policy(&self) -> PollPolicy {
        PollPolicy {
            interval: Duration::from_secs(60),
            backoff: 1.0,
            max_backoff: 1.0,
            timeout: Duration::from_secs(600),
            rechecks_per_run: 0,
        }
    }

    fn request_validation<'a>(&'a self, _id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        not_here()
    }

    fn reissue<'a>(
        &'a self,
        _id: &'a OrderId,
        _request: &'a OrderRequest,
    ) -> BoxFuture<'a, Result<Order, CaError>> {
        not_here()
    }

    fn cancel<'a>(&'a self, _id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        not_here()
    }

    fn revoke<'a>(&'a self, _id: &'a OrderId) -> BoxFuture<'a, Result<(), CaError>> {
        not_here()
    }
}

const SITE: &str = "shop.test";

/// The record a run saves before it asks the CA anything.
fn first_record(state: &Path) -> (OrderRecord, OrderRequest) {
    let record = OrderRecord {
        site: SITE.into(),
        names: vec![SITE.into(), "www.shop.test".into()],
        provider: "two-step-test".into(),
        order_id: None,
        draft_id: None,
        state: RecordState::Creating,
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n".into(),
        fullchain_pem: None,
        created_at: 1_700_000_000,
        last_error: None,
        published_files: Vec::new(),
        published_dirs: Vec::new(),
        renews: None,
        dns_names: Vec::new(),
        dns_records: Vec::new(),
    };
    record.save(state).expect("saved");
    let request = OrderRequest {
        product: "dv".into(),
        names: record.names.clone(),
        csr_pem: record.csr_pem.clone(),
        period: None,
        renews: None,
        existing_id: None,
        methods: Default::default(),
    };
    (record, request)
}

fn on_disk(state: &Path) -> OrderRecord {
    OrderRecord::load(state, SITE)
        .expect("readable")
        .expect("a record")
}

#[tokio::test]
async fn a_run_that_dies_between_create_and_commit_is_resumed_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ca = TwoStep::default();
    let (mut record, request) = first_record(&state);

    // The first run: create is answered and saved, then the run "dies" (returns after the save).
    take_step(&ca, &state, &mut record, &request)
        .await
        .expect("create");
    drop(record);
    assert_eq!(ca.creates.load(Ordering::SeqCst), 1);
    assert_eq!(ca.commits.load(Ordering::SeqCst), 0);
    let saved = on_disk(&state);
    assert_eq!(saved.state, RecordState::Created);
    assert_eq!(saved.draft_id.as_deref(), Some("check-41"));
    assert_eq!(saved.order_id, None);
    assert_eq!(next(&saved), Next::Commit);

    // The next run reads the record back and finishes the order: commit once, no new create.
    let mut resumed = saved;
    advance(&ca, &state, &mut resumed, &request)
        .await
        .expect("commit");
    assert_eq!(ca.creates.load(Ordering::SeqCst), 1, "create sent again");
    assert_eq!(ca.commits.load(Ordering::SeqCst), 1);
    let done = on_disk(&state);
    assert_eq!(done.state, RecordState::Pending);
    assert_eq!(done.order_id.as_deref(), Some("order-9"));
    assert_eq!(done.draft_id.as_deref(), Some("check-41"));
    assert_eq!(next(&done), Next::Placed);

    // A further run has nothing left to place.
    let mut again = done;
    advance(&ca, &state, &mut again, &request)
        .await
        .expect("nothing to do");
    assert_eq!(ca.creates.load(Ordering::SeqCst), 1);
    assert_eq!(ca.commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_never_sent_again_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ca = TwoStep {
        lose_commit: true,
        ..TwoStep::default()
    };
    let (mut record, request) = first_record(&state);

    let failure = advance(&ca, &state, &mut record, &request)
        .await
        .expect_err("the commit's answer is lost");
    assert!(matches!(failure, StepFailure::Lost(..)), "{failure:?}");
    let saved = on_disk(&state);
    assert_eq!(saved.state, RecordState::Committing);
    assert_eq!(saved.draft_id.as_deref(), Some("check-41"));
    assert!(saved.last_error.unwrap().contains("dropped"));

    let mut resumed = on_disk(&state);
    let failure = advance(&ca, &state, &mut resumed, &request)
        .await
        .expect_err("interrupted");
    assert!(matches!(failure, StepFailure::Interrupted), "{failure:?}");
    assert_eq!(ca.creates.load(Ordering::SeqCst), 1);
    assert_eq!(ca.commits.load(Ordering::SeqCst), 1, "commit sent twice");
}
