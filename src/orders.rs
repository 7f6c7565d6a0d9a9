//! The orders we placed, on disk: `<state-dir>/orders/<site>.json` (0600, directory 0700), with the
//! pending private key beside it (`<site>.key`, 0600).
//!
//! A record is written before every side effect it causes — before the CA is asked to create the
//! order (state `creating`), right after the CA answers (`pending`, with the order id; or
//! `created`, with the draft id, for a provider whose order takes a second step), before that
//! step (`committing`) and after it (`pending`), when the certificate arrives (`issued`), when it
//! is installed (`installed`), or cancelled (`cancelled`) — so a run that crashes or is killed at any point is resumed by the
//! next one at the step it stopped before, and never orders twice.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where an order stands, from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// The CA was (or is about to be) asked to create the order; its answer was not saved. The
    /// CA may hold an order we do not know the id of: never re-ordered without the user's word.
    Creating,
    /// The CA answered the first step with a draft (`draft_id`, HowSSL `check_id`); the next
    /// run commits it. Nothing the CA charges for has happened yet.
    Created,
    /// The CA was (or is about to be) asked to commit the draft; its answer was not saved. Like
    /// [`RecordState::Creating`]: never committed again without the user's word.
    Committing,
    /// `reissue` asked (or is about to ask) the CA to reissue order `order_id` with this
    /// record's key and CSR, and the answer was not saved. The CA may have taken it: the key is
    /// kept, and the next `reissue` reads the order's state to finish it or to send it again.
    Reissuing,
    /// Ordered; waiting for validation and issuance.
    Pending,
    /// Issued; the certificate is in the record, not installed yet.
    Issued,
    /// Installed and proven by handshake.
    Installed,
    /// Ended without a certificate: cancelled (`enc365-nginx cancel`), or ended by the CA while
    /// something published for it could not be removed yet. Never resumed: the next run orders
    /// anew (carrying over what is still to be removed).
    Cancelled,
}

impl RecordState {
    /// True while the order is still being placed, validated or installed — not once installed
    /// or cancelled.
    pub fn is_open(self) -> bool {
        !matches!(self, RecordState::Installed | RecordState::Cancelled)
    }
}

/// One site's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The site's name (also the file name).
    pub site: String,
    /// The names ordered, in order.
    pub names: Vec<String>,
    /// The provider (`encryption365`).
    pub provider: String,
    /// The CA's order id, once known.
    pub order_id: Option<String>,
    /// The id of the draft the first step created, for providers whose order takes a second
    /// step (HowSSL `check_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
    /// Where it stands.
    pub state: RecordState,
    /// The CSR sent (PEM).
    pub csr_pem: String,
    /// The issued chain (leaf first), once issued.
    pub fullchain_pem: Option<String>,
    /// When the record was created (Unix seconds).
    pub created_at: i64,
    /// The last error met while working on it, for `status`.
    pub last_error: Option<String>,
    /// Validation files published for the order, each journaled before the self-check and
    /// before the CA is asked to look; removed when the order is finished or abandoned (by the
    /// run that finishes it, or by any later run when that one was killed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published_files: Vec<PathBuf>,
    /// The directories created for them, removed then too when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published_dirs: Vec<PathBuf>,
    /// The order id of the certificate this order renews (Encryption365 `old_vendor_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renews: Option<String>,
    /// The names proven by DNS rather than by HTTP file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// DNS records published for this order, each journaled before it is created; removed
    /// (those we created) when the order is issued or fails. A record whose removal failed stays
    /// here, pending removal, and every later run tries again until it is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_records: Vec<crate::publish::dns::DnsRecord>,
}

pub use crate::paths::{orders_dir, stem};

impl OrderRecord {
    /// The record's path.
    pub fn path(state_dir: &Path, site: &str) -> PathBuf {
        crate::paths::order_record(state_dir, site)
    }

    /// The pending private key's path.
    pub fn key_path(state_dir: &Path, site: &str) -> PathBuf {
        crate::paths::order_key(state_dir, site)
    }

    /// Reads a site's record, if there is one.
    pub fn load(state_dir: &Path, site: &str) -> anyhow::Result<Option<OrderRecord>> {
        crate::store::read_record(
            &Self::path(state_dir, site),
            "move it away to start this site over",
        )
    }

    /// The issued chain: the one this record holds, else (an issued record's chain is dropped
    /// from memory once saved: see [`OrderRecord::without_chain`]) the one its saved record
    /// on disk holds.
    pub fn issued_chain(&self, state_dir: &Path) -> Option<String> {
        (self.fullchain_pem.clone()).or_else(|| {
            let saved = Self::load(state_dir, &self.site).ok().flatten()?;
            (saved.state == RecordState::Issued).then_some(saved.fullchain_pem)?
        })
    }

    /// The record without its issued chain (already saved with it): what a run holds of an
    /// issued order until it installs it, the chain read back by [`OrderRecord::issued_chain`].
    pub fn without_chain(mut self) -> OrderRecord {
        self.fullchain_pem = None;
        self
    }

    /// Writes the record atomically (0600, directory 0700). An open record keeps a spare file
    /// for its next write ([`crate::store::rewrite_record`]); a closed one drops it.
    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(state_dir, &self.site);
        crate::store::rewrite_record(&path, self, self.state.is_open())?;
        // In cluster mode, mirrored to etcd before the side effect the save announces.
        crate::cluster::current().order_saved(state_dir, self)
    }

    /// [`OrderRecord::save`] staged ([`crate::store::StagedFile`]): written and flushed beside
    /// the record, in place only once the caller puts it there. Local state only: a run that
    /// keeps its state in a cluster saves with [`OrderRecord::save`], which mirrors the record.
    pub fn stage_save(&self, state_dir: &Path) -> anyhow::Result<crate::store::StagedFile> {
        let path = Self::path(state_dir, &self.site);
        crate::store::stage_rewrite(&path, self, self.state.is_open())
    }

    /// Removes the record and its pending key (after a failure that created nothing at the CA).
    pub fn discard(state_dir: &Path, site: &str) {
        let _ = std::fs::remove_file(Self::path(state_dir, site));
        crate::store::remove_spare(&Self::path(state_dir, site));
        let _ = std::fs::remove_file(Self::key_path(state_dir, site));
        crate::cluster::current().order_discarded(site);
    }

    /// Every record in the state directory, sorted by site.
    pub fn all(state_dir: &Path) -> anyhow::Result<Vec<OrderRecord>> {
        Self::all_if(state_dir, |_| true)
    }

    /// Every record still open ([`RecordState::is_open`]), sorted by site. A record whose
    /// bytes say it is installed or cancelled ([`says_closed`]) is not parsed: on a host with
    /// thousands of certificates nearly all are.
    pub fn open(state_dir: &Path) -> anyhow::Result<Vec<OrderRecord>> {
        let mut out = Self::all_if(state_dir, |bytes| !says_closed(bytes))?;
        out.retain(|r| r.state.is_open());
        Ok(out)
    }

    /// Every record that journals something published for validation (files, directories or
    /// DNS records), sorted by site; a record whose bytes name none of those fields is not
    /// parsed (they are left out of a record while empty).
    pub fn journaling(state_dir: &Path) -> anyhow::Result<Vec<OrderRecord>> {
        // Not UTF-8: parsed, to be told as damaged.
        let names_one = |bytes: &[u8]| {
            std::str::from_utf8(bytes).map_or(true, |text| {
                [
                    "\"published_files\"",
                    "\"published_dirs\"",
                    "\"dns_records\"",
                ]
                .iter()
                .any(|key| text.contains(key))
            })
        };
        let mut out = Self::all_if(state_dir, names_one)?;
        out.retain(|r| {
            !(r.published_files.is_empty()
                && r.published_dirs.is_empty()
                && r.dns_records.is_empty())
        });
        Ok(out)
    }

    fn all_if(
        state_dir: &Path,
        wanted: impl Fn(&[u8]) -> bool + Sync,
    ) -> anyhow::Result<Vec<Self>> {
        let mut out: Vec<OrderRecord> = crate::store::read_records_if(
            &orders_dir(state_dir),
            "move it away to start its site over (check the CA console first: the CA may hold \
             the order it recorded)",
            wanted,
        )?;
        out.sort_by(|a, b| a.site.cmp(&b.site));
        Ok(out)
    }
}

/// Whether a record's bytes say it is installed or cancelled, on the top-level `"state"` line
/// [`OrderRecord::save`] writes (pretty JSON: a top-level key is the only one indented by two
/// spaces at the start of a line, and no string holds a raw line break). `false` when there is
/// no such line: the record is parsed then.
pub fn says_closed(bytes: &[u8]) -> bool {
    const KEY: &[u8] = b"\n  \"state\": \"";
    let Some(at) = bytes.windows(KEY.len()).position(|w| w == KEY) else {
        return false;
    };
    let value = &bytes[at + KEY.len()..];
    value.starts_with(b"installed\"") || value.starts_with(b"cancelled\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_record_held_without_its_chain_reads_it_back_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut issued = record("shop.test", RecordState::Issued);
        issued.fullchain_pem = Some("-----BEGIN CERTIFICATE-----\nchain\n".into());
        issued.save(dir.path()).unwrap();
        let held = issued.clone().without_chain();
        assert_eq!(held.fullchain_pem, None);
        assert_eq!(held.issued_chain(dir.path()), issued.fullchain_pem);
        // A record not issued on disk gives no chain.
        let pending = record("pending.test", RecordState::Pending);
        pending.save(dir.path()).unwrap();
        assert_eq!(pending.issued_chain(dir.path()), None);
        assert_eq!(
            record("gone.test", RecordState::Issued).issued_chain(dir.path()),
            None
        );
    }

    fn record(site: &str, state: RecordState) -> OrderRecord {
        OrderRecord {
            site: site.into(),
            names: vec![site.into()],
            provider: "encryption365".into(),
            order_id: Some("1".into()),
            draft_id: None,
            state,
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n".into(),
            fullchain_pem: None,
            created_at: 0,
            // A string holding the very words of a closed state line, escaped as JSON writes it.
            last_error: Some("\n  \"state\": \"installed\",\n".into()),
            published_files: Vec::new(),
            published_dirs: Vec::new(),
            renews: None,
            dns_names: Vec::new(),
            dns_records: Vec::new(),
        }
    }

    const STATES: [RecordState; 8] = [
        RecordState::Creating,
        RecordState::Created,
        RecordState::Committing,
        RecordState::Reissuing,
        RecordState::Pending,
        RecordState::Issued,
        RecordState::Installed,
        RecordState::Cancelled,
    ];

    #[test]
    fn a_record_says_closed_exactly_when_its_state_is_not_open() {
        let dir = tempfile::tempdir().unwrap();
        for (i, state) in STATES.into_iter().enumerate() {
            let site = format!("s{i}.test");
            let path = OrderRecord::path(dir.path(), &site);
            crate::store::write_record(&path, &record(&site, state)).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(says_closed(&bytes), !state.is_open(), "{state:?}");
            // Written another way (compact), the record is parsed instead.
            assert!(!says_closed(
                &serde_json::to_vec(&record(&site, state)).unwrap()
            ));
        }
        let open: Vec<RecordState> = (OrderRecord::open(dir.path()).unwrap().iter())
            .map(|r| r.state)
            .collect();
        assert_eq!(open, &STATES[..6]);
        assert_eq!(OrderRecord::all(dir.path()).unwrap().len(), STATES.len());
    }

    #[test]
    fn journaling_lists_every_record_with_something_published_to_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = record("files.test", RecordState::Installed);
        files.published_files = vec![PathBuf::from("/srv/a/.well-known/x")];
        let mut dirs = record("dirs.test", RecordState::Cancelled);
        dirs.published_dirs = vec![PathBuf::from("/srv/a/.well-known")];
        let mut dns = record("dns.test", RecordState::Issued);
        dns.dns_records = vec![crate::publish::dns::DnsRecord {
            name: "dns.test".into(),
            zone: "dns.test".into(),
            owner: "_x.dns.test".into(),
            record_type: "TXT".into(),
            value: "v".into(),
            created: true,
        }];
        let plain = record("plain.test", RecordState::Installed);
        for r in [&files, &dirs, &dns, &plain] {
            crate::store::write_record(&OrderRecord::path(dir.path(), &r.site), r).unwrap();
        }
        let sites: Vec<String> = (OrderRecord::journaling(dir.path()).unwrap().into_iter())
            .map(|r| r.site)
            .collect();
        assert_eq!(sites, ["dirs.test", "dns.test", "files.test"]);
        // A damaged record that could journal something is told, as before.
        std::fs::write(OrderRecord::path(dir.path(), "bad.test"), b"\xff\xfe").unwrap();
        let e = OrderRecord::journaling(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("is damaged"), "{e:#}");
    }
}
