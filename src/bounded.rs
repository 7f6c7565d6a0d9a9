//! Bounded concurrency for per-site work that waits (network round trips, file flushes): [`map`]
//! runs a function over many items on at most a given number of threads, [`each`] does the same
//! for async work; both give the results back in the items' order, so a caller that reports per
//! item reports exactly as it would have one at a time. [`halves`] splits CPU work over many
//! server blocks in two, for the two threads a reading of a large host uses. [`reads`] reads
//! many small files on one thread per core, and on more while the reads wait on the disk.
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

/// The most threads [`reads`] runs: enough reads in flight to keep a disk busy.
pub const MOST_READERS: usize = 16;

/// `part` over consecutive runs of `run` indices of `0..count` (a host's records or certificate
/// files, read and judged); the runs' results, in order.
///
/// The runs are taken one at a time by one thread per core (the caller's among them). On a
/// cold cache (a timer's run, hours after the last one) most reads wait on the disk and the
/// cores stay idle: a run that had to read an eighth of its files' worth of pages or more from
/// the disk starts one more thread, up to [`MOST_READERS`], so the reads overlap. On a warm
/// cache nothing is read from the disk and no thread is added.
pub fn reads<R, F>(count: usize, run: usize, part: F) -> Vec<R>
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> R + Sync,
{
    let run = run.max(1);
    if count <= run {
        return vec![part(0..count)];
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let shared = Reads {
        part: &part,
        count,
        run,
        next: AtomicUsize::new(0),
        threads: AtomicUsize::new(cores.clamp(1, MOST_READERS)),
        done: Mutex::new(Vec::with_capacity(count.div_ceil(run))),
    };
    std::thread::scope(|scope| {
        for _ in 1..shared.threads.load(Ordering::Relaxed) {
            scope.spawn(|| shared.work(scope));
        }
        shared.work(scope);
    });
    let mut done = shared.done.into_inner().expect("not poisoned");
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// What the threads of one [`reads`] share.
struct Reads<'a, R, F> {
    part: &'a F,
    count: usize,
    run: usize,
    next: AtomicUsize,
    threads: AtomicUsize,
    done: Mutex<Vec<(usize, R)>>,
}

impl<'a, R, F> Reads<'a, R, F>
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> R + Sync,
{
    /// Takes runs until none is left; after a run read from the disk, starts one more thread.
    fn work<'scope>(&'scope self, scope: &'scope std::thread::Scope<'scope, '_>) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let start = i.saturating_mul(self.run);
            if start >= self.count {
                return;
            }
            let before = disk_reads();
            let result = (self.part)(start..(start + self.run).min(self.count));
            let read = disk_reads().saturating_sub(before);
            self.done.lock().expect("not poisoned").push((i, result));
            let more_left = (i + 1).saturating_mul(self.run) < self.count;
            if more_left
                && read >= (self.run as u64 / 8).max(1) * PAGE_BLOCKS
                && (self.threads)
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < MOST_READERS).then_some(n + 1)
                    })
                    .is_ok()
            {
                scope.spawn(move || self.work(scope));
            }
        }
    }
}

/// 512-byte blocks in a page: what one small file's read from the disk costs at least.
const PAGE_BLOCKS: u64 = 8;

/// How many 512-byte blocks the calling thread has had read from the disk (what the page cache
/// did not hold, file contents and the inodes and directories leading to them).
fn disk_reads() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_THREAD)
        .map_or(0, |usage| u64::try_from(usage.block_reads()).unwrap_or(0))
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
    fn reads_cover_every_index_once_in_order_and_a_small_count_stays_on_the_caller() {
        let caller = std::thread::current().id();
        let done = reads(10, 64, |run| (run, std::thread::current().id()));
        assert_eq!(done, vec![(0..10, caller)]);
        let done = reads(1000, 64, |run| run);
        assert_eq!(done.len(), 1000_usize.div_ceil(64));
        let covered: Vec<usize> = done.into_iter().flatten().collect();
        assert_eq!(covered, (0..1000).collect::<Vec<_>>());
    }

    /// Files not in the page cache (dropped from it with `POSIX_FADV_DONTNEED`) are read on
    /// more threads than there are cores; the same files, cached, on no more than the cores.
    /// Where the files are not on a disk (a tmpfs: nothing is ever read from a disk), no
    /// thread is added either way.
    #[test]
    fn reads_from_the_disk_add_threads_and_cached_reads_do_not() {
        use std::collections::HashSet;
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<std::path::PathBuf> = (0..512)
            .map(|i| {
                let path = dir.path().join(format!("{i:03}.json"));
                let mut file = std::fs::File::create(&path).unwrap();
                file.write_all(&[b'x'; 4096]).unwrap();
                file.sync_all().unwrap();
                path
            })
            .collect();
        let drop_from_cache = || {
            for path in &paths {
                let file = std::fs::File::open(path).unwrap();
                nix::fcntl::posix_fadvise(
                    &file,
                    0,
                    0,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                )
                .unwrap();
            }
        };
        let read_all = || {
            let threads = Mutex::new(HashSet::new());
            let lens = reads(paths.len(), 8, |run| {
                threads.lock().unwrap().insert(std::thread::current().id());
                (paths[run].iter())
                    .map(|p| std::fs::read(p).unwrap().len())
                    .sum::<usize>()
            });
            assert_eq!(lens.iter().sum::<usize>(), 512 * 4096);
            threads.into_inner().unwrap().len()
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let process_disk_reads = || {
            use nix::sys::resource::{UsageWho, getrusage};
            getrusage(UsageWho::RUSAGE_SELF).unwrap().block_reads()
        };
        drop_from_cache();
        let before = process_disk_reads();
        let cold = read_all();
        let from_disk = process_disk_reads() - before;
        let warm = read_all();
        assert!(warm <= cores, "{warm} threads read cached files");
        if from_disk >= 512 * 8 / 2 {
            assert!(
                cold > cores.min(MOST_READERS - 1),
                "{cold} threads read {from_disk} blocks from the disk"
            );
        } else {
            assert!(
                cold <= cores,
                "{cold} threads, {from_disk} blocks from the disk"
            );
        }
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
