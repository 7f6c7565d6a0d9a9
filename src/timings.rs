//! Where a run's time went, per phase, for `--json` (`timings`) and `bench/auto_bench.py`.
//!
//! The pipeline stages add the wall time of their phases here ([`add`], or [`Phase`] which adds
//! on drop); [`to_json`] reports seconds per phase and the process's peak RSS. Phases overlap
//! where the work does (keys are generated while other sites' orders are placed), so the
//! phases need not add up to the run. Not here: deciding anything — this only measures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static TOTALS: Mutex<BTreeMap<&'static str, Duration>> = Mutex::new(BTreeMap::new());

/// Adds `elapsed` to the phase `name`.
pub fn add(name: &'static str, elapsed: Duration) {
    if let Ok(mut totals) = TOTALS.lock() {
        *totals.entry(name).or_default() += elapsed;
    }
}

/// Instants marked by name ([`mark`]): `to_json` reports the time from each to the report as
/// `after_<name>_ms`.
static MARKS: Mutex<BTreeMap<&'static str, Instant>> = Mutex::new(BTreeMap::new());

/// Marks `at` as the moment `name` happened (the latest mark of a name counts): the report gives
/// the time from it to the report as `after_<name>_ms` — e.g. `after_last_key_ms`, the part of
/// a run no key generation overlaps.
pub fn mark(name: &'static str, at: Instant) {
    if let Ok(mut marks) = MARKS.lock() {
        let mark = marks.entry(name).or_insert(at);
        *mark = (*mark).max(at);
    }
}

/// A phase being timed: its wall time is added when it is dropped.
pub struct Phase {
    name: &'static str,
    start: Instant,
}

impl Phase {
    /// Starts timing the phase `name`.
    pub fn start(name: &'static str) -> Phase {
        Phase {
            name,
            start: Instant::now(),
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        add(self.name, self.start.elapsed());
        if self.name != "keys_wait" {
            note_phase_peak(self.name);
        }
    }
}

/// Per phase, the highest resident set size (KiB) reached since the phase before it ended;
/// and the highest of all phases so far.
static PHASE_PEAKS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Notes the process's peak resident set size since the last phase ended as `name`'s, then
/// starts the count again (writing `5` to `/proc/self/clear_refs` resets `VmHWM`): which phase
/// holds the run's peak memory. Not for phases timed thousands of times (`keys_wait`).
fn note_phase_peak(name: &'static str) {
    let Some(kib) = peak_rss_kib() else {
        return;
    };
    if let Ok(mut peaks) = PHASE_PEAKS.lock() {
        let peak = peaks.entry(name).or_default();
        *peak = (*peak).max(kib);
        let all = peaks.entry("all").or_default();
        *all = (*all).max(kib);
    }
    let _ = std::fs::write("/proc/self/clear_refs", b"5");
}

/// `{"<phase>_ms": milliseconds, …, "after_<mark>_ms": milliseconds, …, "peak_rss_kib": n, "<phase>_peak_rss_kib": n, …}`: the
/// phases timed so far, this process's peak resident set size (its own, from
/// `/proc/self/status`, not its children's) and the peak each phase reached.
pub fn to_json() -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Ok(totals) = TOTALS.lock() {
        for (name, d) in totals.iter() {
            let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            out.insert(format!("{name}_ms"), ms.into());
        }
    }
    if let Ok(marks) = MARKS.lock() {
        for (name, at) in marks.iter() {
            let ms = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
            out.insert(format!("after_{name}_ms"), ms.into());
        }
    }
    let mut peaks = PHASE_PEAKS.lock().map(|p| p.clone()).unwrap_or_default();
    let all = peaks.remove("all").unwrap_or(0);
    if let Some(kib) = peak_rss_kib().map(|now| now.max(all)) {
        out.insert("peak_rss_kib".into(), kib.into());
    }
    for (name, kib) in peaks {
        out.insert(format!("{name}_peak_rss_kib"), kib.into());
    }
    serde_json::Value::Object(out)
}

/// `VmHWM` of this process, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_reported_as_the_time_since_its_latest_instant() {
        let now = Instant::now();
        let earlier = now.checked_sub(Duration::from_millis(400)).unwrap_or(now);
        mark("test_mark", earlier);
        mark(
            "test_mark",
            now.checked_sub(Duration::from_millis(200)).unwrap_or(now),
        );
        mark("test_mark", earlier);
        let ms = to_json()["after_test_mark_ms"].as_u64().expect("reported");
        assert!((200..400).contains(&ms), "{ms} ms since the latest mark");
    }
}
