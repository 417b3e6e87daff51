//! `malloc_trim` gives a freed burst back to the OS at once. Alone in its own test
//! binary: it sets the purge options and reads the process-wide counters and RSS, which
//! other tests in the same process would move.

mod common;
use common::emulator;
use oxalloc_core::stats::GLOBAL;
use oxalloc_core::{api, options};
use std::sync::atomic::Ordering::Relaxed;

/// Bytes given back to the OS so far (purged or unmapped).
fn returned() -> u64 {
    GLOBAL.purged_bytes.load(Relaxed) + GLOBAL.unmapped_bytes.load(Relaxed)
}

/// Resident bytes (`VmRSS` of /proc/self/status), where the kernel's own figure can be
/// read: native Linux. Under qemu-user (the CI's aarch64 run) it would be the
/// emulator's, and Windows (wine) has no /proc; there the counters alone are checked.
fn rss() -> Option<u64> {
    if !cfg!(target_os = "linux") || emulator().is_some() {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    Some(kib << 10)
}

#[test]
fn trim_returns_memory_after_a_burst() {
    const BURST: u64 = 20 << 20;
    // The first call reads the options from the environment; then nothing may give the
    // burst back but trim: no delayed purge within a minute, no cache cap, no
    // background thread, no demand window.
    // SAFETY: a block of ours, freed once.
    unsafe { api::free(api::malloc(1)) };
    options::PURGE_DELAY_MS.set(60_000);
    options::CACHE_MAX_MIB.set(1 << 20);
    options::DEMAND_WINDOW_MS.set(0);
    options::BACKGROUND_PURGE.set(0);

    let rss_before_burst = rss();
    let blocks: Vec<usize> = (0..BURST as usize / 1000)
        .map(|i| {
            let p = api::malloc(1000);
            assert!(!p.is_null());
            // SAFETY: p has 1000 bytes.
            unsafe { std::ptr::write_bytes(p, i as u8, 1000) };
            p as usize
        })
        .collect();
    let before = returned();
    for p in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { api::free(p as *mut u8) };
    }
    assert_eq!(
        returned(),
        before,
        "the free itself gave memory back: the test cannot tell what trim does"
    );
    let rss_freed = rss();
    if let (Some(a), Some(b)) = (rss_before_burst, rss_freed) {
        assert!(
            b >= a + BURST * 9 / 10,
            "the freed burst is not resident before trim: RSS {a} -> {b}"
        );
    }

    assert_eq!(api::malloc_trim(0), 1, "malloc_trim released nothing");
    let given = returned() - before;
    assert!(
        given >= BURST * 9 / 10,
        "trim gave back only {given} of the {BURST} bytes freed"
    );
    if let (Some(freed), Some(after)) = (rss_freed, rss()) {
        assert!(
            after + BURST * 9 / 10 <= freed,
            "RSS fell only from {freed} to {after} after malloc_trim"
        );
    }
    // Nothing is left to give back.
    assert_eq!(
        api::malloc_trim(0),
        0,
        "a second trim found more to release"
    );
}
