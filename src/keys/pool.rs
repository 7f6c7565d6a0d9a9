//! Keys off the critical path: [`KeyPool`] generates private keys on worker threads (one per
//! core) from the moment a run knows how many new orders it may place — while it checks nginx,
//! probes the sites, talks to the CA and validates — and each order takes the next one, signing
//! its CSR for its final names ([`KeyPool::take`]).
//!
//! A key names nothing, so keys are interchangeable and can be made before the preflight has
//! decided which names (and which sites) go on. The workers stay at most [`AHEAD`] keys ahead of
//! the orders (a bounded channel: a key is a few KB, so memory stays flat however many sites
//! there are), and stop at the number of keys wanted, which the run lowers once sites are
//! refused ([`KeyPool::limit`]). Keys not taken are dropped with the pool, never written
//! anywhere. Not here: what a key is for (the order step) or how it is made
//! ([`super::new_key`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::KeyPair;

use super::{CsrRequest, KeyAndCsr, KeyError, KeyType};

/// How many keys the workers make ahead of the orders, at most.
pub const AHEAD: usize = 256;

/// Keys being generated in the background, taken one per new order with [`KeyPool::take`].
pub struct KeyPool {
    key_type: KeyType,
    keys: Mutex<Option<Receiver<Result<KeyPair, KeyError>>>>,
    wanted: Arc<AtomicUsize>,
    cpu_nanos: Arc<AtomicU64>,
    last_made: Arc<Mutex<Option<Instant>>>,
    workers: Vec<JoinHandle<()>>,
}

impl KeyPool {
    /// Starts making up to `wanted` keys of `key_type` on `threads` worker threads (at least one,
    /// none when no key is wanted), at most `ahead` (at least one) waiting to be taken.
    pub fn start(key_type: KeyType, wanted: usize, threads: usize, ahead: usize) -> KeyPool {
        let threads = threads.clamp(1, wanted.max(1));
        let (send, keys) = sync_channel(ahead.max(1));
        let wanted = Arc::new(AtomicUsize::new(wanted));
        let cpu_nanos = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let last_made = Arc::new(Mutex::new(None));
        let workers = (0..threads)
            .filter(|_| wanted.load(Ordering::Relaxed) > 0)
            .map(|_| {
                let worker = Worker {
                    key_type,
                    next: next.clone(),
                    wanted: wanted.clone(),
                    cpu_nanos: cpu_nanos.clone(),
                    last_made: last_made.clone(),
                    send: send.clone(),
                };
                std::thread::spawn(move || worker.run())
            })
            .collect();
        KeyPool {
            key_type,
            keys: Mutex::new(Some(keys)),
            wanted,
            cpu_nanos,
            last_made,
            workers,
        }
    }

    /// Lowers the number of keys wanted to `wanted` (sites were refused): the workers make no
    /// more than that; keys already made beyond it are dropped with the pool.
    pub fn limit(&self, wanted: usize) {
        self.wanted.fetch_min(wanted, Ordering::Relaxed);
    }

    /// The next key, with its CSR for `names`: waits for the key when none is made yet. The
    /// names are checked first, so a name that cannot go into a CSR wastes no key.
    pub fn take(&self, names: &[String]) -> Result<KeyAndCsr, KeyError> {
        let request = CsrRequest::new(names)?;
        let key = {
            let keys = self.keys.lock().map_err(|_| KeyError::Stopped)?;
            let received = keys.as_ref().and_then(|k| k.recv().ok());
            received.ok_or(KeyError::Stopped)??
        };
        request.sign(self.key_type, key)
    }

    /// The CPU time the workers spent making keys so far (taken or not).
    pub fn generation_time(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    /// When the workers finished the last key they made (none made yet: `None`): what a run
    /// does after it is the part of its time no key generation overlaps.
    pub fn last_made(&self) -> Option<Instant> {
        self.last_made.lock().ok().and_then(|t| *t)
    }
}

impl Drop for KeyPool {
    /// Stops the workers: keys not taken are dropped, never written anywhere.
    fn drop(&mut self) {
        self.wanted.store(0, Ordering::Relaxed);
        let keys = self.keys.get_mut().map(Option::take);
        drop(keys);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// One worker thread's share of the pool.
struct Worker {
    key_type: KeyType,
    next: Arc<AtomicUsize>,
    wanted: Arc<AtomicUsize>,
    cpu_nanos: Arc<AtomicU64>,
    last_made: Arc<Mutex<Option<Instant>>>,
    send: SyncSender<Result<KeyPair, KeyError>>,
}

impl Worker {
    /// Makes keys until as many as wanted are made or the pool is dropped.
    fn run(self) {
        while self.next.fetch_add(1, Ordering::Relaxed) < self.wanted.load(Ordering::Relaxed) {
            let start = thread_cpu_time();
            let made = super::new_key(self.key_type);
            let took = thread_cpu_time().saturating_sub(start);
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
            if let Ok(mut last) = self.last_made.lock() {
                *last = Some(Instant::now());
            }
            if self.send.send(made).is_err() {
                return; // the pool was dropped
            }
        }
    }
}

/// The CPU time the calling thread has used (not the wall time: the other processes of a busy
/// host do not count as key generation).
fn thread_cpu_time() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_comes_with_a_csr_for_the_names_it_is_taken_for() {
        let pool = KeyPool::start(KeyType::EcdsaP256, 9, 3, 2);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..9 {
            let made = pool.take(&[format!("s{i}.test")]).expect("a key");
            assert_eq!(made.common_name, format!("s{i}.test"));
            assert!(
                seen.insert(made.key.expose().to_string()),
                "a key taken twice"
            );
        }
        assert!(pool.generation_time() > Duration::ZERO);
        assert!(pool.last_made().is_some_and(|t| t <= Instant::now()));
        // All nine were made: there is no tenth.
        assert!(matches!(
            pool.take(&["x.test".into()]),
            Err(KeyError::Stopped)
        ));
    }

    #[test]
    fn a_bad_name_wastes_no_key_and_a_lowered_limit_makes_no_more() {
        let pool = KeyPool::start(KeyType::EcdsaP256, 3, 2, 1);
        assert!(matches!(
            pool.take(&["bad name".into()]),
            Err(KeyError::BadName { .. })
        ));
        assert!(pool.take(&["a.test".into()]).is_ok());
        assert!(pool.take(&["b.test".into()]).is_ok());
        assert!(pool.take(&["c.test".into()]).is_ok());
        let pool = KeyPool::start(KeyType::EcdsaP256, 1000, 2, 1);
        assert!(pool.take(&["a.test".into()]).is_ok());
        pool.limit(1);
        // The workers stop: at most the keys already in hand (one per worker and one queued).
        let mut more = 0;
        while pool.take(&["b.test".into()]).is_ok() {
            more += 1;
            assert!(more <= 3, "the pool went on making keys after its limit");
        }
    }

    #[test]
    fn a_pool_that_wants_no_key_starts_no_worker_and_drops_at_once() {
        let pool = KeyPool::start(KeyType::Rsa2048, 0, 2, 4);
        assert!(pool.workers.is_empty());
        assert_eq!(pool.last_made(), None);
        assert!(matches!(
            pool.take(&["a.test".into()]),
            Err(KeyError::Stopped)
        ));
    }
}
