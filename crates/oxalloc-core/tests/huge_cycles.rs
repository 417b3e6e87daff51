//! The huge pool's quiet time adapts: a program that uses more huge memory than the
//! cache cap in cycles with pauses between them stops having it purged (and faulted in
//! again) after a cycle or two; one that uses a few MiB now and then still has it
//! given back in each pause. Alone in its own test binary: it reads the process-wide
//! counters and sets options.

use oxalloc_core::api;
use oxalloc_core::options;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

const HUGE: usize = 4 << 20;

/// Bytes given back to the OS so far (purged or unmapped).
fn returned() -> u64 {
    GLOBAL.purged_bytes.load(Relaxed) + GLOBAL.unmapped_bytes.load(Relaxed)
}

/// Allocates and writes `count` huge blocks, frees them, and pauses `pause_ms`.
/// Returns the bytes given back during the cycle.
fn cycle(count: usize, pause_ms: u64) -> u64 {
    let before = returned();
    let blocks: Vec<usize> = (0..count)
        .map(|i| {
            let p = api::malloc(HUGE);
            assert!(!p.is_null());
            // SAFETY: p has HUGE bytes.
            unsafe { std::ptr::write_bytes(p, i as u8, HUGE) };
            p as usize
        })
        .collect();
    for p in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { api::free(p as *mut u8) };
    }
    std::thread::sleep(Duration::from_millis(pause_ms));
    returned() - before
}

#[test]
fn cycles_above_the_cache_cap_keep_their_pages_small_ones_do_not() {
    // Start the allocator first: options are read from the environment once.
    let p = api::malloc(1);
    // SAFETY: p is live and freed once.
    unsafe { api::free(p) };
    options::CACHE_MAX_MIB.set(8);
    options::DEMAND_WINDOW_MS.set(2000);
    options::PURGE_DELAY_MS.set(10); // quiet after 20 ms at first

    // One 4 MiB block a cycle (below the cap): given back in every pause.
    for i in 0..4 {
        let back = cycle(1, 300);
        assert!(
            back >= HUGE as u64,
            "cycle {i} of one 4 MiB block: {back} bytes given back in a 300 ms pause"
        );
    }

    // 32 MiB a cycle, 100 ms apart: the first pauses purge it (the pool is quiet after
    // 20 ms), then the pool stays active through them and its pages are kept.
    let back: Vec<u64> = (0..8).map(|_| cycle(8, 100)).collect();
    assert!(
        back[4..].iter().all(|&b| b == 0),
        "32 MiB cycles 100 ms apart were still purged after four cycles: {back:?}"
    );
}
