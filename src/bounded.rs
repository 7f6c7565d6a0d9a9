//! Bounded concurrency for per-site work that waits (network round trips, file flushes): [`map`]
//! runs a function over many items on at most a given number of threads, [`each`] does the same
//! for async work; both give the results back in the items' order, so a caller that reports per
//! item reports exactly as it would have one at a time. [`halves`] splits CPU work over many
//! server blocks in two, for the two threads a reading of a large host uses.
//!
//! Not here: what the work is (preflight probes, DNS lookups, CA calls, file writes, judging
//! server blocks).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` applied to every item, on at most `limit` threads at once (at least one; none are
/// started for fewer than two items); the results in the items' order.
pub fn map<T, R, F>(items: &[T], limit: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    if items.len() < 2 || limit < 2 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..limit.min(items.len()) {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    mine.push((i, f(item)));
                }
                done.lock().expect("not poisoned").extend(mine);
            });
        }
    });
    let mut done = done.into_inner().expect("not poisoned");
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// `part` over the first and the second half of `0..count` on two threads when `count` is at
/// least `min` (a large host's thousands of server blocks, each judged on its own), else over
/// all of it on this thread: the parts' results, in order. A half whose thread panicked is
/// done again on this one.
pub fn halves<R, F>(count: usize, min: usize, part: F) -> Vec<R>
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> R + Sync,
{
    if count < min.max(2) {
        return vec![part(0..count)];
    }
    let half = count / 2;
    std::thread::scope(|scope| {
        let second = scope.spawn(|| part(half..count));
        let first = part(0..half);
        let second = second.join().unwrap_or_else(|_| part(half..count));
        vec![first, second]
    })
}

/// The async side of [`map`], by index: `f(i)` for every `i` below `count`, at most `limit` at
/// once when the caller runs on a multi-thread runtime (each on a thread of its own, blocking
/// file writes included), one after the other on any other runtime; the results in index order.
pub async fn each<R, F, Fut>(count: usize, limit: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> Fut + Sync,
    Fut: std::future::Future<Output = R>,
{
    let handle = tokio::runtime::Handle::current();
    let flavor = handle.runtime_flavor();
    if flavor != tokio::runtime::RuntimeFlavor::MultiThread || limit < 2 || count < 2 {
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            out.push(f(i).await);
        }
        return out;
    }
    let indices: Vec<usize> = (0..count).collect();
    tokio::task::block_in_place(|| map(&indices, limit, |&i| handle.block_on(f(i))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_cover_every_index_once_in_order_on_two_threads_only_when_there_are_many() {
        let main = std::thread::current().id();
        for (count, min, parts) in [(0, 10, 1), (9, 10, 1), (10, 10, 2), (1001, 1000, 2)] {
            let done = halves(count, min, |range| (range, std::thread::current().id()));
            assert_eq!(done.len(), parts, "{count} items");
            let covered: Vec<usize> = done.iter().flat_map(|(r, _)| r.clone()).collect();
            assert_eq!(covered, (0..count).collect::<Vec<_>>());
            assert_eq!(
                done[0].1, main,
                "the first part runs on the caller's thread"
            );
            if parts == 2 {
                assert_ne!(done[1].1, main, "the second part runs on another thread");
            }
        }
    }

    #[test]
    fn results_come_back_in_the_items_order_with_at_most_limit_at_once() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u32> = (0..200).collect();
        let out = map(&items, 7, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(u64::from(i % 3)));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..200).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((2..=7).contains(&most), "{most} at once");
    }

    #[test]
    fn each_overlaps_waits_on_a_multi_thread_runtime_and_goes_in_order_on_any_other() {
        use std::time::{Duration, Instant};
        let items: Vec<u64> = (0..16).collect();
        let timed = |runtime: tokio::runtime::Runtime| {
            runtime.block_on(async {
                let start = Instant::now();
                let items = &items;
                let out = each(items.len(), 8, |i| async move {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    items[i] * 3
                })
                .await;
                (out, start.elapsed())
            })
        };
        let builder = || {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(1).enable_all();
            b
        };
        let (out, took) = timed(builder().build().unwrap());
        assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>());
        assert!(took < Duration::from_millis(16 * 60 / 2), "{took:?}");
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let (out, took) = timed(current.unwrap());
        assert_eq!(out, items.iter().map(|i| i * 3).collect::<Vec<_>>());
        assert!(took >= Duration::from_millis(16 * 60), "{took:?}");
    }

    #[test]
    fn no_items_or_a_limit_of_one_runs_in_order_on_the_caller() {
        let none: Vec<u8> = map(&[] as &[u8], 32, |&b| b);
        assert!(none.is_empty());
        let caller = std::thread::current().id();
        let out = map(&[1, 2, 3], 1, |&i| {
            (i, std::thread::current().id() == caller)
        });
        assert_eq!(out, vec![(1, true), (2, true), (3, true)]);
    }
}
