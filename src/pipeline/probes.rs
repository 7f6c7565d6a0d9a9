//! The preflight's probe files, left where they were fetched until the run ends: the run's
//! validation files then go into the directories the probes made instead of making (and
//! freeing) them again, and nothing is removed while the run still creates files.
//!
//! Every file and directory a probe may make is journaled in `probes.json` in the state
//! directory before it is made. [`ProbeLeftovers`] removes them — the files, then the
//! directories innermost first, each only when empty — and the journal when it is dropped (the
//! end of the run, or any error before it); [`sweep`], at the start of every run, does the same
//! for a run that was killed.
//!
//! Why not remove each probe at once: ext4 without a journal will not reuse an inode freed in
//! the last minute, and finds that out by looking at each such inode, one by one, every time it
//! allocates one. A host's probes free a file and two directories per webroot; every file the
//! run then created (keys, records, validation files, the install's) scanned past all of them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::publish::Published;

/// The journal's file name in the state directory.
pub const JOURNAL: &str = "probes.json";

/// What the journal holds: every probe file and directory made (or about to be made).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

/// The probe files (and directories made for them) of this run, removed when dropped.
#[derive(Debug)]
pub struct ProbeLeftovers {
    /// Where the journal is.
    journal: PathBuf,
    /// What the journal lists, while probes may still be added ([`ProbeLeftovers::settle`]).
    planned: Journal,
    /// Whether the journal was written: what to remove is read back from it.
    written: bool,
    /// Directories the probes made (a subset of the planned ones).
    made_dirs: Vec<PathBuf>,
}

impl ProbeLeftovers {
    /// None yet, journaled in `state_dir`.
    pub fn new(state_dir: &Path) -> ProbeLeftovers {
        ProbeLeftovers {
            journal: state_dir.join(JOURNAL),
            planned: Journal::default(),
            written: false,
            made_dirs: Vec::new(),
        }
    }

    /// Journals `paths` (the files and directories probes are about to make), flushed, before
    /// any of them is made.
    pub fn journal(&mut self, paths: &Published) -> anyhow::Result<()> {
        if paths.files.is_empty() && paths.dirs.is_empty() {
            return Ok(());
        }
        self.planned.files.extend(paths.files.iter().cloned());
        self.planned.dirs.extend(paths.dirs.iter().cloned());
        // Not `write_record`: that makes its directory 0700, and nginx's workers must still
        // enter the state directory to reach the temporary locations' files.
        let bytes = serde_json::to_vec_pretty(&self.planned)?;
        crate::store::write_atomic(&self.journal, &bytes, 0o600)?;
        self.written = true;
        Ok(())
    }

    /// No more probes: the list is no longer held in memory (on a 10,000-site host, megabytes
    /// of paths kept through the install's peak); it is read back from the journal when the
    /// probes are removed.
    pub fn settle(&mut self) {
        self.planned = Journal::default();
        self.made_dirs.shrink_to_fit();
    }

    /// Notes what the probes wrote: the directories they made.
    pub fn made(&mut self, written: Published) {
        self.made_dirs.extend(written.dirs);
    }

    /// The directories the probes made (taken: asked for once): a validation file written
    /// under one journals it in its order record (a pending order's file keeps it from being
    /// removed with the probes).
    pub fn take_made_dirs(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.made_dirs)
    }

    /// Removes every probe file, then the directories made for them (when empty), then the
    /// journal.
    fn remove(&mut self) {
        if !std::mem::take(&mut self.written) {
            return;
        }
        let what_to_do = "remove it by hand with the probe files it lists";
        match crate::store::read_record::<Journal>(&self.journal, what_to_do) {
            Ok(Some(journal)) => remove_journaled(&self.journal, journal),
            Ok(None) => {}
            // Kept: the next run's sweep says so.
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
}

impl Drop for ProbeLeftovers {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes `journal`'s files, then its directories (innermost first, when empty), then the
/// journal file at `path`.
fn remove_journaled(path: &Path, journal: Journal) {
    let mut dirs = journal.dirs;
    dirs.sort_by_key(|d| d.components().count());
    dirs.dedup();
    crate::dcv::remove_files(&journal.files, &dirs);
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {e}", path.display());
    }
}

/// At the start of a run: the probe files (and their directories) a killed run left behind.
/// A journal that cannot be read is reported through `say` and kept.
pub fn sweep(state_dir: &Path, say: &dyn Fn(String)) {
    let path = state_dir.join(JOURNAL);
    let what_to_do = "remove it; the probe files it lists (enc365-probe-*.txt) may be left in \
                      webroots";
    match crate::store::read_record::<Journal>(&path, what_to_do) {
        Ok(Some(journal)) => remove_journaled(&path, journal),
        Ok(None) => {}
        Err(e) => say(format!("  {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe file and its directories: journaled before they exist, removed with the
    /// leftovers (a directory that holds anything else stays), and swept after a killed run.
    #[test]
    fn probes_are_journaled_before_they_are_made_and_removed_at_the_end_or_by_the_next_run() {
        let state = tempfile::tempdir().unwrap();
        let www = tempfile::tempdir().unwrap();
        let dir = www.path().join(".well-known/pki-validation");
        let file = dir.join("enc365-probe-1.txt");
        let planned = Published {
            files: vec![file.clone()],
            dirs: vec![www.path().join(".well-known"), dir.clone()],
            records: Vec::new(),
        };
        let mut probes = ProbeLeftovers::new(state.path());
        probes.journal(&planned).unwrap();
        let journaled = std::fs::read_to_string(state.path().join(JOURNAL)).unwrap();
        assert!(journaled.contains("enc365-probe-1.txt"), "{journaled}");
        let made = crate::dcv::write_file(&dir, "enc365-probe-1.txt", b"x").unwrap();
        assert_eq!(made, planned.dirs);
        probes.made(Published {
            files: vec![file.clone()],
            dirs: made,
            records: Vec::new(),
        });
        assert_eq!(probes.take_made_dirs(), planned.dirs);
        assert!(probes.take_made_dirs().is_empty());
        // Settled, it removes what the journal on disk lists.
        probes.settle();
        drop(probes);
        assert!(!www.path().join(".well-known").exists());
        assert!(!state.path().join(JOURNAL).exists());

        // A killed run: the journal stays; the next run's sweep removes what it lists, but not
        // a directory that holds someone else's file.
        let mut probes = ProbeLeftovers::new(state.path());
        probes.journal(&planned).unwrap();
        crate::dcv::write_file(&dir, "enc365-probe-1.txt", b"x").unwrap();
        std::fs::write(www.path().join(".well-known/security.txt"), "x").unwrap();
        std::mem::forget(probes);
        sweep(state.path(), &|m| panic!("{m}"));
        assert!(!file.exists());
        assert!(!dir.exists());
        assert!(www.path().join(".well-known/security.txt").exists());
        assert!(!state.path().join(JOURNAL).exists());

        // A damaged journal is told and kept.
        std::fs::write(state.path().join(JOURNAL), "{").unwrap();
        let told = std::cell::RefCell::new(Vec::new());
        sweep(state.path(), &|m| told.borrow_mut().push(m));
        assert!(
            told.borrow()[0].contains("is damaged"),
            "{:?}",
            told.borrow()
        );
        assert!(state.path().join(JOURNAL).exists());
    }
}
