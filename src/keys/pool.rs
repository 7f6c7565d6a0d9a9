//! Keys off the critical path: [`KeyPool`] generates the keys and CSRs of many orders on worker
//! threads (one per core) while the caller talks to the CA about the orders before them.
//!
//! Workers take the jobs in order and stay at most a few keys ahead of the caller (a bounded
//! channel), so memory stays flat however many sites there are. Not here: what a key is for
//! (the order step) or how it is made ([`super::generate`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{KeyAndCsr, KeyError, KeyType};

type Made = (usize, Result<KeyAndCsr, KeyError>, Duration);

/// Keys being generated in the background, taken in job order with [`KeyPool::take`].
pub struct KeyPool {
    results: Option<Receiver<Made>>,
    early: BTreeMap<usize, Result<KeyAndCsr, KeyError>>,
    workers: Vec<JoinHandle<()>>,
    made: Duration,
}

impl KeyPool {
    /// Starts generating a `key_type` key and CSR for each job (the names of one order) on
    /// `threads` worker threads (at least one).
    pub fn start(key_type: KeyType, jobs: Vec<Vec<String>>, threads: usize) -> KeyPool {
        let threads = threads.clamp(1, jobs.len().max(1));
        let jobs = Arc::new(jobs);
        let next = Arc::new(AtomicUsize::new(0));
        let (send, results) = sync_channel(threads * 2);
        let workers = (0..threads)
            .map(|_| {
                let (jobs, next, send) = (jobs.clone(), next.clone(), send.clone());
                std::thread::spawn(move || work(key_type, &jobs, &next, &send))
            })
            .collect();
        KeyPool {
            results: Some(results),
            early: BTreeMap::new(),
            workers,
            made: Duration::ZERO,
        }
    }

    /// The key of job `index`, waiting for it when it is not made yet. Each index is taken
    /// once, in increasing order.
    pub fn take(&mut self, index: usize) -> Result<KeyAndCsr, KeyError> {
        loop {
            if let Some(made) = self.early.remove(&index) {
                return made;
            }
            let received = self.results.as_ref().and_then(|r| r.recv().ok());
            let Some((i, made, took)) = received else {
                return Err(KeyError::Stopped);
            };
            self.made += took;
            self.early.insert(i, made);
        }
    }

    /// The CPU time the workers spent making the keys taken so far.
    pub fn generation_time(&self) -> Duration {
        self.made
    }
}

impl Drop for KeyPool {
    /// Stops the workers: keys not taken are dropped, never written anywhere.
    fn drop(&mut self) {
        drop(self.results.take());
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(key_type: KeyType, jobs: &[Vec<String>], next: &AtomicUsize, send: &SyncSender<Made>) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(names) = jobs.get(i) else { return };
        let start = Instant::now();
        let made = super::generate(key_type, names);
        if send.send((i, made, start.elapsed())).is_err() {
            return; // the pool was dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_in_job_order_each_for_its_own_names() {
        let jobs: Vec<Vec<String>> = (0..9).map(|i| vec![format!("s{i}.test")]).collect();
        let mut pool = KeyPool::start(KeyType::EcdsaP256, jobs, 3);
        for i in 0..9 {
            let made = pool.take(i).expect("a key");
            assert_eq!(made.common_name, format!("s{i}.test"));
        }
        assert!(pool.generation_time() > Duration::ZERO);
    }

    #[test]
    fn a_job_that_fails_fails_alone_and_a_pool_dropped_early_stops() {
        let jobs = vec![
            vec!["a.test".into()],
            vec!["bad name".into()],
            vec!["c.test".into()],
        ];
        let mut pool = KeyPool::start(KeyType::EcdsaP256, jobs, 2);
        assert!(pool.take(0).is_ok());
        assert!(matches!(pool.take(1), Err(KeyError::BadName { .. })));
        drop(pool); // job 2 never taken: the workers end
    }
}
