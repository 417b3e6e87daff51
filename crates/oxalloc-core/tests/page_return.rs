//! The page-return policy: memory freed while a pool is active stays resident up to
//! its recent peak demand (no purge, no refault when it is used again), and goes back
//! to the OS once the pool is quiet. Both pools: large spans (central) and huge blocks.
//! Alone in its own test binary: it reads the process-wide counters and sets options.

use oxalloc_core::api;
use oxalloc_core::options;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// 32 MiB a cycle, four times the default cache cap: 64 large spans of 512 KiB, or 8
/// huge blocks of 4 MiB.
const CYCLE: usize = 32 << 20;
const LARGE: usize = 512 << 10;
const HUGE: usize = 4 << 20;

fn allocate_and_write(size: usize) -> Vec<usize> {
    (0..CYCLE / size)
        .map(|i| {
            let p = api::malloc(size);
            assert!(!p.is_null());
            // SAFETY: p has `size` bytes.
            unsafe { std::ptr::write_bytes(p, i as u8, size) };
            p as usize
        })
        .collect()
}

fn free_all(blocks: &[usize]) {
    for &p in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { api::free(p as *mut u8) };
    }
}

/// Bytes given back to the OS so far (purged or unmapped).
fn returned() -> u64 {
    GLOBAL.purged_bytes.load(Relaxed) + GLOBAL.unmapped_bytes.load(Relaxed)
}

/// A cycle freed and allocated again while active keeps its pages, though `pause_ms`
/// is past the purge delay; once the pool is quiet they go back.
fn kept_while_active_returned_when_quiet(size: usize, delay_ms: u64, pause_ms: u64) {
    options::PURGE_DELAY_MS.set(delay_ms);
    let blocks = allocate_and_write(size);
    let mapped = GLOBAL.mapped_bytes.load(Relaxed);
    let before = returned();
    free_all(&blocks);
    std::thread::sleep(Duration::from_millis(pause_ms)); // past the delay, still active
    let again = allocate_and_write(size);
    assert_eq!(
        returned(),
        before,
        "{size} B blocks freed while the pool was active went back to the OS"
    );
    assert_eq!(
        GLOBAL.mapped_bytes.load(Relaxed),
        mapped,
        "the second cycle of {size} B blocks mapped new memory instead of reusing the kept pages"
    );

    // Quiet (a quarter of the window without activity in the pool): it goes back.
    free_all(&again);
    let before = returned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while returned() - before < CYCLE as u64 * 7 / 8 {
        assert!(
            Instant::now() < deadline,
            "quiet for 5 s and only {} of {CYCLE} bytes of {size} B blocks returned",
            returned() - before,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn freed_memory_is_kept_while_active_and_returned_when_quiet() {
    // Start the allocator first: options are read from the environment once.
    let p = api::malloc(1);
    // SAFETY: p is live and freed once.
    unsafe { api::free(p) };
    options::CACHE_MAX_MIB.set(8);
    options::DEMAND_WINDOW_MS.set(2000);

    // Spans go quiet after a quarter of the window (500 ms), huge blocks after two purge
    // delays.
    kept_while_active_returned_when_quiet(LARGE, 1, 20);
    kept_while_active_returned_when_quiet(HUGE, 150, 170);

    // A pause longer than the window but shorter than half a second (spans' quiet) does
    // not age the window: the pages are still kept after it, and when the program goes
    // on (a program that pauses between bursts purged and refaulted them each time).
    options::DEMAND_WINDOW_MS.set(100);
    kept_while_active_returned_when_quiet(LARGE, 1, 300);
    options::DEMAND_WINDOW_MS.set(2000);

    // malloc_trim(0) gives back at once what demand would keep.
    let blocks = [allocate_and_write(LARGE), allocate_and_write(HUGE)];
    blocks.iter().for_each(|b| free_all(b));
    let before = returned();
    api::malloc_trim(0);
    assert!(
        returned() - before >= 2 * CYCLE as u64 * 7 / 8,
        "malloc_trim(0) returned only {} of {} bytes kept for demand",
        returned() - before,
        2 * CYCLE
    );

    // Without a demand window, the cache cap alone rules: a 32 MiB free is purged at once.
    options::DEMAND_WINDOW_MS.set(0);
    let blocks = allocate_and_write(LARGE);
    let before = returned();
    free_all(&blocks);
    assert!(
        returned() - before >= (16 << 20),
        "with DEMAND_WINDOW_MS=0 a free past the cap was not purged at once ({} bytes)",
        returned() - before
    );
}
