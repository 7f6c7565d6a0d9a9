//! `enc365-sim`: an Encryption365 simulator that speaks the documented wire format over real HTTP
//! (providers.md §1), as Pebble is for ACME. Used by the tests, the demo, and panel developers who
//! want to test an integration without an account.
//!
//! [`start`] binds a loopback port and serves every §1.5 endpoint at the root (`POST /client/create`,
//! `/account/products`, `/account/details`, `/cert/create`, `/cert/details`, `/cert/challenge`,
//! `/cert/reissue`, `/client/version`, `/ping`; `/cert/revoke` and `/cert/change_dcv` only with
//! [`SimOptions::unconfirmed_endpoints`]). Validation is real: `/cert/challenge` (and a periodic
//! re-check) fetches `http://<name>/.well-known/pki-validation/<file>` — through
//! [`SimOptions::connect`] when set, with the name as `Host` — and compares the bytes. Issuance is
//! real X.509 from the simulator's own CA ([`issuer`]).
//!
//! Faults ([`Faults`]) are set at start, programmatically ([`SimHandle::set_faults`]) or over HTTP on
//! the same port, under `/_sim/` (never a CA path):
//!
//! * `GET /_sim/faults`, `POST /_sim/faults` (a [`Faults`] JSON object; replaces the current set)
//! * `GET /_sim/requests` (requests per CA path), `GET /_sim/ca.pem` (the root to trust)
//! * `POST /_sim/accounts` `{"username","password","credit"?}` — a TrustOcean account
//! * `POST /_sim/devices` `{"username"}` → `{"client_id","access_token"}` — a device, no password
//! * `POST /_sim/recheck` — run validation of every pending order now
//!
//! With [`SimOptions::provider`] set to [`SimProvider::HowSsl`] (`enc365-sim --provider howssl`)
//! it speaks HowSSL instead ([`howssl`], providers.md §2): `/Home/...` paths, multipart bodies,
//! tokens made with `POST /_sim/howssl/tokens` `{"token","email"?,"amount"?}`, faults set with
//! `GET`/`POST /_sim/howssl/faults` (a [`howssl::HowFaults`] object).
//!
//! With [`SimProvider::HuaweiScm`] (`enc365-sim --provider huawei-scm`) it speaks Huawei Cloud SCM
//! ([`scm`], providers.md §3): AK/SK-signed `/v3/scm/...` (and the v2 revoke) paths, a purchased
//! certificate inventory from [`SimOptions::huawei_scm`], faults set with `GET`/`POST
//! /_sim/scm/faults` (a [`scm_state::ScmFaults`] object), certificates bought with `POST
//! /_sim/scm/certificates` (a [`scm_state::Stock`]).

mod api;
pub mod dcv;
mod dns_check;
mod files;
pub mod howssl;
pub mod huawei_dns;
pub mod issuer;
mod scm;
mod scm_dns;
pub mod scm_state;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::issuer::SimCa;
use self::state::{SimState, StateFile};

/// Switches that make the simulator misbehave the ways real services and proxies do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay every answer by this many milliseconds.
    pub latency_ms: u64,
    /// Answer with this HTTP status (e.g. 503) and a short text body, after doing the work.
    pub http_status: Option<u16>,
    /// Answer 200 with an HTML error page instead of JSON, after doing the work.
    pub html_error: bool,
    /// Cut the JSON answer in half, after doing the work.
    pub truncated_json: bool,
    /// Break the connection after doing the work: the status line goes out, then the body fails
    /// and the connection is dropped (a reset as the client sees it).
    pub drop_connection: bool,
    /// Do the work, then hold the answer this many milliseconds (a CA that acts and answers too
    /// late: the client's time limit passes first). Unlike [`Faults::latency_ms`], which waits
    /// before the work and is cancelled with the request.
    pub answer_delay_ms: u64,
    /// Use the older `status` envelope: `"status":"success"` with no `result` on success
    /// (`/client/create` keeps `result`), and `"status":"error"` added on errors.
    pub status_envelope: bool,
    /// Send every number as a string (`"trustocean_id":"52295091"`).
    pub string_numbers: bool,
    /// Refuse every call with `{"result":"error","message":<this>}` without doing anything.
    pub reject: Option<String>,
    /// Orders whose names all validate end as `rejected` instead of being issued.
    pub reject_orders: bool,
    /// Issue this many seconds after validation completes (slow issuance).
    pub issuance_delay_secs: u64,
    /// Report this `cert_status` for every order (e.g. `expired`, `revoked`, `enroll_dcv`).
    pub force_status: Option<String>,
    /// Send `cert_code`/`ca_code` with CRLF line endings.
    pub crlf_pem: bool,
    /// Answer with a body of 5 MiB, announced by `Content-Length`.
    pub oversize_body: bool,
    /// Answer with an endless chunked body (no `Content-Length`), 64 KiB at a time, until the
    /// client hangs up or 64 MiB have been sent.
    pub endless_body: bool,
    /// Put this in every `http_filename`/`https_filename` (to test hostile values).
    pub dcv_filename: Option<String>,
    /// Remove this top-level field from successful answers.
    pub drop_field: Option<String>,
    /// Add a `dcv_info` entry for this name, which was never ordered (to test that clients refuse
    /// validation data for foreign names).
    pub foreign_dcv_name: Option<String>,
    /// Issue certificates valid this many seconds (short-lived certificates, to test renewal);
    /// wins over [`SimOptions::validity`].
    pub validity_secs: Option<u64>,
    /// Issue certificates for a key of the simulator's own instead of the CSR's (to test that
    /// clients refuse a certificate that does not match their key).
    pub foreign_key: bool,
    /// Issue certificates without the last name ordered (to test that clients refuse a
    /// certificate that does not cover every name).
    pub drop_issued_name: bool,
    /// Send an unrelated self-signed certificate as the chain (`ca_code`) of issued orders (to
    /// test that clients refuse a chain without the leaf's issuer).
    pub unrelated_chain: bool,
    /// Apply the faults above only to these paths (e.g. `/cert/create`); empty means all CA paths.
    /// `reject_orders`, `issuance_delay_secs`, `validity_secs`, `foreign_key`,
    /// `drop_issued_name` and `unrelated_chain` always apply.
    pub paths: Vec<String>,
}

impl Faults {
    fn applies_to(&self, path: &str) -> bool {
        self.paths.is_empty() || self.paths.iter().any(|p| p == path)
    }
}

/// Which CA API the simulator speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SimProvider {
    /// Encryption365 (providers.md §1).
    #[default]
    Encryption365,
    /// HowSSL (providers.md §2).
    HowSsl,
    /// Huawei Cloud SCM (providers.md §3).
    HuaweiScm,
}

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Which API to speak.
    pub provider: SimProvider,
    /// Where to listen; must be a loopback address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where DCV fetches connect (e.g. nginx on `127.0.0.1:18080`); `None` connects to the name.
    pub connect: Option<SocketAddr>,
    /// Keep accounts, orders and CA keys here across restarts; `None` keeps them in memory.
    pub state_dir: Option<PathBuf>,
    /// Issue certificates valid this long instead of the product's term (90 or 365 days).
    pub validity: Option<Duration>,
    /// Re-check pending orders this often, as a real CA does; `None` only checks on
    /// `/cert/challenge`.
    pub recheck_interval: Option<Duration>,
    /// Answer the guessed endpoints `/cert/revoke` and `/cert/change_dcv`.
    pub unconfirmed_endpoints: bool,
    /// Faults active from the start.
    pub faults: Faults,
    /// Time limit of one DCV fetch.
    pub fetch_timeout: Duration,
    /// Give every new order this `unique_id` (e.g. the docs' `cab202166585`) instead of a random one.
    pub fixed_unique_id: Option<String>,
    /// The authoritative DNS server DNS validation asks (the CNAME of providers.md §1.6.3, or
    /// for HowSSL §2.4);
    /// with one, wildcards are validated by DNS only. `None`: names are validated by HTTP file
    /// only (a wildcard by its base name's file).
    pub dns_server: Option<SocketAddr>,
    /// Also serve Huawei Cloud DNS record sets (`/v2/zones…`) for these credentials and zones.
    pub huawei_dns: Option<huawei_dns::HuaweiDnsOptions>,
    /// The SCM mode's credentials and purchased certificates ([`SimProvider::HuaweiScm`]).
    pub huawei_scm: Option<scm_state::ScmSimOptions>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            provider: SimProvider::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            connect: None,
            state_dir: None,
            validity: None,
            recheck_interval: None,
            unconfirmed_endpoints: false,
            faults: Faults::default(),
            fetch_timeout: Duration::from_secs(10),
            fixed_unique_id: None,
            dns_server: None,
            huawei_dns: None,
            huawei_scm: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address is not loopback.
    #[error("enc365-sim listens on loopback addresses only, not {0}")]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory is unusable.
    #[error("state directory: {0}")]
    State(String),
    /// The CA could not be set up.
    #[error(transparent)]
    Ca(#[from] issuer::IssueError),
    /// An account or device could not be made.
    #[error("{0}")]
    Account(String),
}

/// What the running simulator shares between requests.
pub(crate) struct Shared {
    options: SimOptions,
    state: Mutex<SimState>,
    file: StateFile,
    faults: Mutex<Faults>,
    counts: Mutex<BTreeMap<String, u64>>,
    howssl: Mutex<howssl::HowState>,
    scm: Mutex<scm_state::ScmState>,
    ca: SimCa,
    fetcher: reqwest::Client,
    huawei_records: huawei_dns::Store,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn save(&self, state: &SimState) {
        if let Err(e) = self.file.save(state) {
            tracing::error!("could not save simulator state: {e}");
        }
    }

    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    recheck: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the simulator on the current tokio runtime.
pub async fn start(options: SimOptions) -> Result<SimHandle, SimError> {
    if !options.listen.ip().is_loopback() {
        return Err(SimError::NotLoopback(options.listen));
    }
    if let Some(dir) = options.state_dir.as_ref().filter(|d| !d.exists()) {
        // Created private; an existing directory keeps the mode its owner gave it.
        files::ensure_dir(dir, 0o700).map_err(SimError::State)?;
    }
    let file = StateFile::new(options.state_dir.as_deref());
    let state = file.load().map_err(SimError::State)?;
    let ca = SimCa::open(options.state_dir.as_deref())?;
    let fetcher = reqwest::Client::builder()
        .timeout(options.fetch_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("enc365-sim DCV check")
        .no_proxy()
        .build()
        .map_err(|e| SimError::State(format!("HTTP client: {e}")))?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: options.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        faults: Mutex::new(options.faults.clone()),
        options,
        state: Mutex::new(state),
        file,
        counts: Mutex::new(BTreeMap::new()),
        howssl: Mutex::new(howssl::HowState::default()),
        scm: Mutex::new(scm_state::ScmState::default()),
        ca,
        fetcher,
        huawei_records: Mutex::new(BTreeMap::new()),
    });
    let app = Router::new()
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route("/_sim/requests", get(get_requests))
        .route("/_sim/ca.pem", get(get_ca))
        .route("/_sim/accounts", post(add_account))
        .route("/_sim/devices", post(add_device))
        .route("/_sim/recheck", post(recheck_now))
        .route(
            "/_sim/howssl/faults",
            get(get_howssl_faults).post(set_howssl_faults),
        )
        .route("/_sim/howssl/tokens", post(add_howssl_token))
        .route(
            "/_sim/scm/faults",
            get(scm::get_faults).post(scm::set_faults),
        )
        .route("/_sim/scm/certificates", post(scm::add_certificate))
        .route("/v2/zones", get(huawei_dns::list_zones))
        .route(
            "/v2/zones/{zone}/recordsets",
            get(huawei_dns::recordsets).post(huawei_dns::recordsets),
        )
        .route(
            "/v2/zones/{zone}/recordsets/{id}",
            axum::routing::delete(huawei_dns::recordset).put(huawei_dns::recordset),
        )
        .fallback(ca_endpoint)
        .with_state(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("enc365-sim stopped: {e}");
        }
    });
    if let Some(scm) = &shared.options.huawei_scm {
        let mut st = lock(&shared.scm);
        for stock in &scm.inventory {
            st.add(stock.clone());
        }
    }
    let recheck = shared.options.recheck_interval.map(|every| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                api::recheck_all(&shared).await;
            }
        })
    });
    Ok(SimHandle {
        addr,
        shared,
        shutdown: Some(tx),
        server,
        recheck,
    })
}

impl SimHandle {
    /// The Huawei Cloud DNS record sets the simulator holds.
    pub fn huawei_records(&self) -> Vec<huawei_dns::RecordSet> {
        lock(&self.shared.huawei_records)
            .values()
            .cloned()
            .collect()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// The active faults.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// How many requests reached a CA path (e.g. `/cert/create`).
    pub fn request_count(&self, path: &str) -> u64 {
        lock(&self.shared.counts).get(path).copied().unwrap_or(0)
    }

    /// The order that order `id` renews (sent as `renew` + `old_vendor_id`), if any.
    pub fn renewal_of(&self, id: u64) -> Option<u64> {
        lock(&self.shared.state)
            .orders
            .get(&id)
            .and_then(|o| o.renews)
    }

    /// The root certificate that issued certificates chain to.
    pub fn root_ca_pem(&self) -> String {
        self.shared.ca.root_pem().to_string()
    }

    /// Creates (or replaces) a TrustOcean account.
    pub fn add_account(&self, username: &str, password: &str, credit: f64) {
        api::add_account(&self.shared, username, password, credit);
    }

    /// Registers a device for an existing account; returns `(client_id, access_token)`.
    pub fn add_device(&self, username: &str) -> Result<(String, String), SimError> {
        api::add_device(&self.shared, username, "enc365-sim").map_err(SimError::Account)
    }

    /// HowSSL mode: adds (or replaces) an API token whose account has `email` and `amount`.
    pub fn add_howssl_token(&self, token: &str, email: &str, amount: f64) {
        lock(&self.shared.howssl).add_token(token, email, amount);
    }

    /// HowSSL mode: the balance of `token`'s account.
    pub fn howssl_balance(&self, token: &str) -> Option<f64> {
        lock(&self.shared.howssl).balance(token)
    }

    /// HowSSL mode: replaces the faults.
    pub fn set_howssl_faults(&self, faults: howssl::HowFaults) {
        lock(&self.shared.howssl).set_faults(faults);
    }

    /// SCM mode: adds an unused purchased certificate; its id.
    pub fn add_scm_certificate(&self, stock: scm_state::Stock) -> String {
        lock(&self.shared.scm).add(stock)
    }

    /// SCM mode: every certificate as `(id, status, names)`.
    pub fn scm_certificates(&self) -> Vec<(String, String, Vec<String>)> {
        (lock(&self.shared.scm).certs.values())
            .map(|c| (c.id.clone(), c.status.clone(), c.names.clone()))
            .collect()
    }

    /// SCM mode: whether the application to certificate `id` asked for the automatic DNS push
    /// (`auto_dns_auth: true`); `None` for an unknown certificate.
    pub fn scm_auto_dns_auth(&self, id: &str) -> Option<bool> {
        lock(&self.shared.scm)
            .certs
            .get(id)
            .map(|c| c.auto_dns_auth)
    }

    /// SCM mode: how many requests reached an operation (`buy`, `apply`, `show`, `export`,
    /// `revoke`, `cancel`, `list`), signatures checked.
    pub fn scm_count(&self, op: &str) -> u64 {
        lock(&self.shared.scm).counts.get(op).copied().unwrap_or(0)
    }

    /// SCM mode: replaces the faults.
    pub fn set_scm_faults(&self, faults: scm_state::ScmFaults) {
        lock(&self.shared.scm).faults = faults;
    }

    /// Runs validation of every pending order now.
    pub async fn recheck(&self) {
        api::recheck_all(&self.shared).await;
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.recheck.take() {
            task.abort();
        }
        let _ = (&mut self.server).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.recheck.take() {
            task.abort();
        }
    }
}

/// A simulator on a runtime of its own, for synchronous callers (tests that run the `enc365-nginx`
/// binary, demos). Stops when dropped.
pub struct BackgroundSim {
    handle: SimHandle,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for BackgroundSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSim")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl BackgroundSim {
    /// Starts a simulator on a one-thread runtime owned by the returned value.
    pub fn start(options: SimOptions) -> Result<BackgroundSim, SimError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| SimError::State(format!("could not start a runtime: {e}")))?;
        let handle = runtime.block_on(start(options))?;
        Ok(BackgroundSim { handle, runtime })
    }

    /// The running simulator.
    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// Runs validation of every pending order now, waiting for it.
    pub fn recheck(&self) {
        self.runtime.block_on(self.handle().recheck());
    }
}

impl Drop for BackgroundSim {
    fn drop(&mut self) {
        self.runtime.block_on(self.handle.halt());
    }
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.faults())
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            *lock(&shared.faults) = faults.clone();
            Json(faults).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not a faults object: {e}\n"),
        )
            .into_response(),
    }
}

async fn get_requests(State(shared): State<Arc<Shared>>) -> Json<BTreeMap<String, u64>> {
    Json(lock(&shared.counts).clone())
}

async fn get_ca(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        shared.ca.root_pem().to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewAccount {
    username: String,
    password: String,
    #[serde(default = "default_credit")]
    credit: f64,
}

fn default_credit() -> f64 {
    1000.0
}

async fn add_account(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<NewAccount>(&body) {
        Ok(a) => {
            api::add_account(&shared, &a.username, &a.password, a.credit);
            Json(json!({"username": a.username})).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("expected {{username,password}}: {e}\n"),
        )
            .into_response(),
    }
}

async fn add_device(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let username = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("username").and_then(Value::as_str).map(String::from));
    let Some(username) = username else {
        return (StatusCode::BAD_REQUEST, "expected {\"username\":...}\n").into_response();
    };
    match api::add_device(&shared, &username, "enc365-sim") {
        Ok((client_id, access_token)) => {
            Json(json!({"client_id": client_id, "access_token": access_token})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn recheck_now(State(shared): State<Arc<Shared>>) -> Json<Value> {
    api::recheck_all(&shared).await;
    Json(json!({"result": "success"}))
}

async fn get_howssl_faults(State(shared): State<Arc<Shared>>) -> Json<howssl::HowFaults> {
    Json(lock(&shared.howssl).faults())
}

async fn set_howssl_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<howssl::HowFaults>(&body) {
        Ok(faults) => {
            lock(&shared.howssl).set_faults(faults.clone());
            Json(faults).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not a HowSSL faults object: {e}\n"),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct NewToken {
    token: String,
    #[serde(default)]
    email: String,
    #[serde(default = "default_credit")]
    amount: f64,
}

async fn add_howssl_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<NewToken>(&body) {
        Ok(t) => {
            lock(&shared.howssl).add_token(&t.token, &t.email, t.amount);
            Json(json!({"token": t.token})).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("expected {{token}}: {e}\n"),
        )
            .into_response(),
    }
}

/// Every CA path, with fault handling around [`api::handle`] (or the HowSSL mode's own).
async fn ca_endpoint(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if shared.options.provider == SimProvider::HowSsl {
        return howssl::endpoint(&shared, &method, &headers, &path, &body).await;
    }
    if shared.options.provider == SimProvider::HuaweiScm {
        return scm::endpoint(&shared, &method, &uri, &headers, &body).await;
    }
    if !api::is_endpoint(&path, shared.options.unconfirmed_endpoints) {
        return (StatusCode::NOT_FOUND, "404 Not Found\n").into_response();
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n").into_response();
    }
    *lock(&shared.counts).entry(path.clone()).or_insert(0) += 1;
    let all = shared.faults();
    let faults = if all.applies_to(&path) {
        all
    } else {
        Faults::default()
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let outcome = match &faults.reject {
        Some(message) => Err(message.clone()),
        None => {
            // The work runs on its own task, so a client that hangs up does not cancel it.
            let work = shared.clone();
            let at = path.clone();
            tokio::spawn(async move { api::handle(&work, &at, &body).await })
                .await
                .unwrap_or_else(|e| Err(format!("simulator task failed: {e}")))
        }
    };
    if faults.answer_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.answer_delay_ms)).await;
    }
    shape(&path, outcome, &faults)
}

/// Turns an endpoint's outcome into the HTTP answer, applying the faults.
fn shape(path: &str, outcome: Result<Value, String>, faults: &Faults) -> Response {
    let mut value = match outcome {
        Ok(mut v) => {
            if let Value::Object(map) = &mut v {
                map.insert("result".into(), json!("success"));
                if let Some(field) = &faults.drop_field {
                    map.remove(field);
                }
                if let Some(status) = &faults.force_status
                    && map.contains_key("cert_status")
                {
                    map.insert("cert_status".into(), json!(status));
                }
                if let Some(name) = &faults.dcv_filename
                    && let Some(Value::Object(entries)) = map.get_mut("dcv_info")
                {
                    for entry in entries.values_mut() {
                        entry["http_filename"] = json!(name);
                        entry["https_filename"] = json!(name);
                    }
                }
                if let Some(foreign) = &faults.foreign_dcv_name
                    && let Some(Value::Object(entries)) = map.get_mut("dcv_info")
                    && let Some(mut entry) = entries.values().next().cloned()
                {
                    entry["domain"] = json!(foreign);
                    entries.insert(foreign.clone(), entry);
                }
                if faults.crlf_pem {
                    for key in ["cert_code", "ca_code"] {
                        if let Some(Value::String(pem)) = map.get_mut(key) {
                            *pem = pem.replace("\r\n", "\n").replace('\n', "\r\n");
                        }
                    }
                }
                if faults.status_envelope && path != "/client/create" {
                    map.remove("result");
                    map.insert("status".into(), json!("success"));
                }
            }
            v
        }
        Err(message) => {
            let mut v = json!({"result": "error", "message": message});
            if faults.status_envelope {
                v["status"] = json!("error");
            }
            v
        }
    };
    if faults.string_numbers {
        stringify_numbers(&mut value);
    }
    if let Some(code) = faults.http_status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        return (status, format!("{status}\n")).into_response();
    }
    if faults.html_error {
        let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\
                    <center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>\n\
                    </body></html>\n";
        return ([(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    let mut bytes = value.to_string().into_bytes();
    if faults.truncated_json {
        bytes.truncate(bytes.len() / 2);
    }
    if faults.drop_connection {
        let body = axum::body::Body::new(Broken);
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    if faults.endless_body {
        let body = axum::body::Body::new(Endless { left: 1024 });
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    if faults.oversize_body {
        let mut big = br#"{"result":"success","padding":""#.to_vec();
        big.resize(5 * 1024 * 1024, b'x');
        big.extend_from_slice(b"\"}");
        bytes = big;
    }
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        bytes,
    )
        .into_response()
}

fn stringify_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => *v = Value::String(n.to_string()),
        Value::Array(items) => items.iter_mut().for_each(stringify_numbers),
        Value::Object(map) => map.values_mut().for_each(stringify_numbers),
        _ => {}
    }
}

/// A body that fails at once, so the server drops the connection (the `drop_connection` fault).
struct Broken;

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "drop_connection fault",
        ))))
    }
}

/// A chunked body that does not end for a long time (the `endless_body` fault).
struct Endless {
    left: usize,
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        let chunk = if self.left == 1023 {
            Bytes::from_static(b"{\"result\":\"success\",\"padding\":\"")
        } else {
            Bytes::from(vec![b'x'; 64 * 1024])
        };
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }
}
