//! What an order published for validation, removed once the order no longer needs it: the HTTP
//! files and directories and the DNS records its record journals (each journaled before it was
//! written or created). The run that finishes an order removes them; [`sweep`], at the start of
//! every run, removes what a killed run or a failed removal left behind for orders that are
//! installed, issued or cancelled. A DNS record whose removal fails stays journaled, pending
//! removal, and every later run tries again.
//!
//! Not here: publishing (that is [`super::validate`]) or choosing what to publish.

use std::path::{Path, PathBuf};

use crate::dcv;
use crate::orders::{OrderRecord, RecordState};
use crate::publish::dns::DnsPublisher;

/// Removes every file and directory (directories only when empty) and every DNS record we
/// created that `record` journals, and saves the record when its file still exists. DNS records
/// whose removal fails stay journaled; each failure is told through `say`.
pub fn remove_all(
    state_dir: &Path,
    dns: &DnsPublisher,
    record: &mut OrderRecord,
    say: &dyn Fn(String),
) {
    if record.published_files.is_empty()
        && record.published_dirs.is_empty()
        && record.dns_records.is_empty()
    {
        return;
    }
    let files = std::mem::take(&mut record.published_files);
    let dirs = std::mem::take(&mut record.published_dirs);
    remove_paths(&files, dirs);
    remove_records(dns, record, say);
    save_if_kept(state_dir, record);
}

/// Removes the files and directories `record` journals but leaves them journaled (the record is
/// not saved): for an order just saved as issued, whose next save, as installed, clears the
/// list — one save (two flushes) fewer per order. A run killed in between leaves a list whose
/// files are gone, which the next run's [`sweep`] clears.
pub fn remove_files_keeping_the_list(record: &OrderRecord) {
    remove_paths(&record.published_files, record.published_dirs.clone());
}

/// Removes the DNS records we created that `record` journals; those a removal fails for stay.
pub fn remove_records(dns: &DnsPublisher, record: &mut OrderRecord, say: &dyn Fn(String)) {
    let mut kept = Vec::new();
    for rec in std::mem::take(&mut record.dns_records) {
        if !rec.created {
            continue;
        }
        if let Err(e) = dns.remove(&rec) {
            say(format!(
                "  {}: could not remove the DNS record {rec}: {e:#}; it stays in the order \
                 record of {} and every later run tries again",
                rec.name, record.site
            ));
            kept.push(rec);
        }
    }
    record.dns_records = kept;
}

/// Removes the journaled files under `dir` (our directory behind the temporary location, which
/// goes when the run ends) and keeps the rest journaled.
pub fn remove_under(state_dir: &Path, dir: &Path, record: &mut OrderRecord) {
    let (gone, kept): (Vec<PathBuf>, Vec<PathBuf>) = std::mem::take(&mut record.published_files)
        .into_iter()
        .partition(|f| f.starts_with(dir));
    record.published_files = kept;
    if !gone.is_empty() {
        dcv::remove_files(&gone, &[]);
        save_if_kept(state_dir, record);
    }
}

/// At the start of a run: what orders that are installed, issued or cancelled still journal
/// (a run killed before its clean-up, or a removal that failed) is removed now. Orders still
/// waiting keep what they published: the CA may look again.
pub fn sweep(state_dir: &Path, dns: &DnsPublisher, say: &dyn Fn(String)) {
    let Ok(records) = OrderRecord::journaling(state_dir) else {
        return;
    };
    for mut record in records {
        let done = matches!(
            record.state,
            RecordState::Installed | RecordState::Issued | RecordState::Cancelled
        );
        if done {
            remove_all(state_dir, dns, &mut record, say);
        }
    }
}

/// Appends what `from` still journals to `into` (a new order of the same site takes over what
/// the old one could not remove yet).
pub fn carry_over(from: OrderRecord, into: &mut OrderRecord) {
    into.published_files.extend(from.published_files);
    into.published_dirs.extend(from.published_dirs);
    into.dns_records
        .extend(from.dns_records.into_iter().filter(|r| r.created));
}

/// Removes files, then directories innermost first, each only when empty.
fn remove_paths(files: &[PathBuf], mut dirs: Vec<PathBuf>) {
    dirs.sort_by_key(|d| d.components().count());
    dirs.dedup();
    dcv::remove_files(files, &dirs);
}

fn save_if_kept(state_dir: &Path, record: &OrderRecord) {
    if OrderRecord::path(state_dir, &record.site).exists() {
        let _ = record.save(state_dir);
    }
}
