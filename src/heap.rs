//! How the C library's allocator is set for `discover`: a short run that builds the tree of every
//! file of a host (over 200 MiB at 50,000 sites) from several threads, prints it and exits.
//!
//! Two things make such a run cheaper. Its memory is taken in large steps and never given back
//! ([`grow_heap_in_large_steps`]). And it lives in transparent huge pages where the kernel gives
//! them on request: a page fault then zeroes 2 MiB at once instead of 4 KiB, and the tree's
//! pointers miss the TLB less. glibc (2.35 and later) asks for them on every heap it makes —
//! the main one, each thread's, each large block — when its `glibc.malloc.hugetlb=1` tunable is
//! set, and that is read only when a program starts: [`run_again_with_huge_pages`] starts
//! `discover` again with it. Measured at 10,000 and 50,000 sites, the run takes some 13% less
//! CPU with it (`bench/discover_bench.py`).
//!
//! Only `discover` calls this; the long commands keep the allocator's defaults (they give memory
//! back between phases, see `pipeline::give_back_freed_memory`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The glibc tunable that makes malloc ask for transparent huge pages.
const HUGE_PAGES_TUNABLE: &str = "glibc.malloc.hugetlb";

/// The first glibc that knows [`HUGE_PAGES_TUNABLE`].
const FIRST_GLIBC_WITH_IT: (u32, u32) = (2, 35);

/// Where the kernel says when it gives transparent huge pages.
const THP_MODE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Readies the allocator for one large tree: [`run_again_with_huge_pages`] (which returns only
/// when it did not start the program again), then [`grow_heap_in_large_steps`]. Says at debug
/// level (`-vv`) what `GLIBC_TUNABLES` the run has, and its process name.
pub fn ready_for_one_large_tree() {
    run_again_with_huge_pages();
    if tracing::enabled!(tracing::Level::DEBUG) {
        let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
        let name = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        tracing::debug!(
            process = name.trim(),
            tunables = %tunables.to_string_lossy(),
            "malloc settings (GLIBC_TUNABLES)"
        );
    }
    grow_heap_in_large_steps();
}

/// Whether starting again with [`HUGE_PAGES_TUNABLE`] changes anything on this machine: the
/// kernel gives transparent huge pages on request and glibc knows the tunable.
pub fn huge_pages_on_request() -> bool {
    let on_request = std::fs::read_to_string(THP_MODE).is_ok_and(|m| given_on_request(&m));
    on_request && glibc_at_least(FIRST_GLIBC_WITH_IT)
}

/// Starts this program again, same arguments, with glibc's allocator asking for transparent huge
/// pages (`GLIBC_TUNABLES`, any other tunables kept), when that changes anything: the kernel
/// gives them only on request (`madvise` mode), glibc knows the tunable, and no
/// `glibc.malloc.hugetlb` is set already (the user's choice, or this very call's — so it runs
/// once). Returns when it did not, or when starting again failed (the run goes on as it is).
/// Costs about 2 ms.
pub fn run_again_with_huge_pages() {
    let current = std::env::var_os("GLIBC_TUNABLES");
    let Some(tunables) = tunables_with_huge_pages(current.as_deref()) else {
        return;
    };
    if !huge_pages_on_request() {
        return;
    }
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else {
        return;
    };
    // The file's own path, not `/proc/self/exe`: the process keeps its name (`ps`, `pgrep`).
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(program)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    tracing::debug!(%error, "could not start again with malloc in huge pages; going on without");
}

/// `GLIBC_TUNABLES` (its value now: `current`) with malloc asking for transparent huge pages;
/// `None` when it names [`HUGE_PAGES_TUNABLE`] already, whatever the value.
pub fn tunables_with_huge_pages(current: Option<&OsStr>) -> Option<OsString> {
    let setting = format!("{HUGE_PAGES_TUNABLE}=1");
    let Some(current) = current.filter(|c| !c.is_empty()) else {
        return Some(OsString::from(setting));
    };
    let named = (current.as_bytes().split(|&b| b == b':'))
        .any(|t| t.split(|&b| b == b'=').next() == Some(HUGE_PAGES_TUNABLE.as_bytes()));
    if named {
        return None;
    }
    let mut value = current.to_owned();
    value.push(":");
    value.push(setting);
    Some(value)
}

/// Whether the kernel's transparent huge page mode (the text of [`THP_MODE`], the chosen one in
/// brackets) gives them only on request: `always` gives them anyway, `never` not at all.
pub fn given_on_request(mode: &str) -> bool {
    mode.split_whitespace().any(|m| m == "[madvise]")
}

/// Whether the running glibc is `wanted` (major, minor) or later.
fn glibc_at_least(wanted: (u32, u32)) -> bool {
    // SAFETY: gnu_get_libc_version returns a pointer to a static NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(nix::libc::gnu_get_libc_version()) };
    text.to_str()
        .ok()
        .and_then(version)
        .is_some_and(|v| v >= wanted)
}

/// The major and minor number of a glibc version (`2.36`, `2.41.9000`).
fn version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// How much heap a large-tree run takes ahead, in huge pages: the whole tree of a 10,000-site
/// host (some 50 MiB) and then some. Only what is touched is ever backed by memory.
const HEAP_AHEAD: usize = 128 << 20;

/// Makes the C library's allocator cheap for a short run that allocates a large tree from
/// several threads: at most two heaps (M_ARENA_MAX 2: no per-thread heaps grown a page at a
/// time with `mprotect`; with one, the two parsing threads wait on its lock — at 50,000 sites
/// that made discover slower than without these settings), the main one taken [`HEAP_AHEAD`]
/// at a time and never given back (the process ends right after), blocks up to 4 MiB included,
/// its first stretch in transparent huge pages where the kernel allows them on request
/// (`madvise`, which [`run_again_with_huge_pages`] extends to every heap): a tree of 10,000
/// files otherwise costs some 14,000 page faults, a sixth of the run.
pub fn grow_heap_in_large_steps() {
    const HUGE: usize = 2 << 20;
    // SAFETY: mallopt only changes allocator parameters; sbrk(0) only reads the break; the
    // madvise covers whole pages of the heap that were just taken and not yet used, and
    // MADV_HUGEPAGE changes only how they are backed, never their contents.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
        nix::libc::mallopt(nix::libc::M_TOP_PAD, HEAP_AHEAD as nix::libc::c_int);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, nix::libc::c_int::MAX);
        // Blocks up to 4 MiB from the heap too (so the probe below is taken from it).
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 4 << 20);
        let before = nix::libc::sbrk(0) as usize;
        // An allocation larger than the heap's free top makes it grow now, by HEAP_AHEAD.
        let probe = std::hint::black_box(nix::libc::malloc(2 << 20));
        nix::libc::free(probe);
        let after = nix::libc::sbrk(0) as usize;
        let start = before.next_multiple_of(HUGE);
        let end = after - after % HUGE;
        if before != usize::MAX && end > start {
            nix::libc::madvise(
                start as *mut nix::libc::c_void,
                end - start,
                nix::libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_to_others_and_never_set_twice() {
        let add = |current: Option<&str>| {
            tunables_with_huge_pages(current.map(OsStr::new)).map(|v| v.into_string().unwrap())
        };
        assert_eq!(add(None).as_deref(), Some("glibc.malloc.hugetlb=1"));
        assert_eq!(add(Some("")).as_deref(), Some("glibc.malloc.hugetlb=1"));
        assert_eq!(
            add(Some("glibc.malloc.arena_max=4")).as_deref(),
            Some("glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1")
        );
        // Set already, by the user (to anything) or by the run that started this one.
        assert_eq!(add(Some("glibc.malloc.hugetlb=0")), None);
        assert_eq!(
            add(Some("glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1")),
            None
        );
        // A longer name that starts the same is another tunable.
        assert_eq!(
            add(Some("glibc.malloc.hugetlbx=2")).as_deref(),
            Some("glibc.malloc.hugetlbx=2:glibc.malloc.hugetlb=1")
        );
    }

    #[test]
    fn only_the_on_request_mode_is_worth_starting_again() {
        assert!(given_on_request("always [madvise] never\n"));
        assert!(!given_on_request("[always] madvise never\n"));
        assert!(!given_on_request("always madvise [never]\n"));
        assert!(!given_on_request(""));
    }

    #[test]
    fn glibc_versions_compare_by_major_and_minor() {
        assert_eq!(version("2.36"), Some((2, 36)));
        assert_eq!(version("2.41.9000"), Some((2, 41)));
        assert_eq!(version("2"), None);
        assert_eq!(version("x.y"), None);
        assert!(version("2.36").unwrap() >= FIRST_GLIBC_WITH_IT);
        assert!(version("2.31").unwrap() < FIRST_GLIBC_WITH_IT);
        assert!(version("3.0").unwrap() >= FIRST_GLIBC_WITH_IT);
    }
}
