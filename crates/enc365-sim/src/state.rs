//! What the simulator remembers: TrustOcean accounts, device tokens, orders — and, with a state
//! directory, the same after a restart (`state.json`, mode 0600, written atomically after every
//! change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A TrustOcean account (what `/client/create` logs in with).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// The account's password (the simulator's own fake one).
    pub password: String,
    /// Balance in CNY, debited by paid products.
    pub credit: f64,
}

/// A device registered with `/client/create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    /// The account it belongs to.
    pub username: String,
    /// Its access token.
    pub access_token: String,
    /// The label given at registration.
    pub servername: String,
    /// When it was created (API format).
    pub created_at: String,
}

/// One name of an order and its validation state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameState {
    /// The name as ordered.
    pub name: String,
    /// True once the file was fetched and matched.
    pub verified: bool,
    /// The DCV method (`http`, `https`, `dns` or an approver address).
    #[serde(default = "default_method")]
    pub method: String,
    /// The last check's outcome, for messages.
    pub last_check: Option<String>,
}

fn default_method() -> String {
    "http".to_string()
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRecord {
    /// `trustocean_id`.
    pub id: u64,
    /// The device that placed it.
    pub client_id: String,
    /// The product.
    pub pid: u64,
    /// The CSR as sent (PEM).
    pub csr_pem: String,
    /// The CSR's DER, base64 (what the DCV hashes are over).
    pub csr_der_b64: String,
    /// The names ordered, in order.
    pub names: Vec<NameState>,
    /// The `cabNNNNNNNNN` unique value.
    pub unique_id: String,
    /// `cert_status`.
    pub status: String,
    /// Creation time (API format).
    pub created_at: String,
    /// Unix time after which a fully validated order is issued.
    pub issue_after: Option<i64>,
    /// The leaf, once issued.
    pub cert_pem: Option<String>,
    /// The intermediate, once issued.
    pub ca_pem: Option<String>,
    /// The leaf's expiry (API format), once issued.
    pub expire_at: Option<String>,
    /// The leaf's expiry as Unix time, once issued; past it the order reports `expired`.
    #[serde(default)]
    pub not_after: Option<i64>,
    /// Fees charged.
    pub total_fees: f64,
    /// The order this renews.
    pub renews: Option<u64>,
}

impl OrderRecord {
    /// The ordered names as strings.
    pub fn name_list(&self) -> Vec<String> {
        self.names.iter().map(|n| n.name.clone()).collect()
    }
}

/// Everything the simulator remembers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimState {
    /// Accounts by user name.
    pub accounts: BTreeMap<String, Account>,
    /// Devices by client_id.
    pub devices: BTreeMap<String, Device>,
    /// Orders by trustocean_id.
    pub orders: BTreeMap<u64, OrderRecord>,
    /// The next trustocean_id to hand out.
    pub next_id: u64,
}

/// Where the state is kept, if anywhere.
#[derive(Debug, Clone)]
pub struct StateFile(Option<PathBuf>);

impl StateFile {
    /// `dir/state.json`, or nowhere (memory only).
    pub fn new(dir: Option<&Path>) -> StateFile {
        StateFile(dir.map(|d| d.join("state.json")))
    }

    /// Loads the saved state, or a fresh one.
    pub fn load(&self) -> Result<SimState, String> {
        let fresh = SimState {
            next_id: 52295091,
            ..SimState::default()
        };
        let Some(path) = &self.0 else {
            return Ok(fresh);
        };
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not simulator state: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(fresh),
            Err(e) => Err(format!("could not read {}: {e}", path.display())),
        }
    }

    /// Saves the state (no-op without a state directory).
    pub fn save(&self, state: &SimState) -> Result<(), String> {
        let Some(path) = &self.0 else { return Ok(()) };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        crate::files::write_atomic(path, &bytes, 0o600)
    }
}
