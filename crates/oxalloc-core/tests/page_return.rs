//! The page-return policy: memory freed while the program is active stays resident up
//! to its recent peak demand (no purge, no refault when it is used again), and goes
//! back to the OS once the program is quiet. Alone in its own test binary: it reads the
//! process-wide counters and sets options.

use oxalloc_core::api;
use oxalloc_core::options;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// 64 blocks of 512 KiB: 32 MiB of large spans, four times the default cache cap.
const BLOCKS: usize = 64;
const SIZE: usize = 512 << 10;

fn allocate_and_write() -> Vec<usize> {
    (0..BLOCKS)
        .map(|i| {
            let p = api::malloc(SIZE);
            assert!(!p.is_null());
            // SAFETY: p has SIZE bytes.
            unsafe { std::ptr::write_bytes(p, i as u8, SIZE) };
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

#[test]
fn freed_memory_is_kept_while_active_and_returned_when_quiet() {
    // Start the allocator first: options are read from the environment once.
    let p = api::malloc(1);
    // SAFETY: p is live and freed once.
    unsafe { api::free(p) };
    options::PURGE_DELAY_MS.set(1);
    options::CACHE_MAX_MIB.set(8);
    options::DEMAND_WINDOW_MS.set(2000);

    // Active: a cycle of 32 MiB freed and allocated again keeps its pages.
    let blocks = allocate_and_write();
    let mapped = GLOBAL.mapped_bytes.load(Relaxed);
    let before = returned();
    free_all(&blocks);
    std::thread::sleep(Duration::from_millis(20)); // 20 purge delays, still active
    let again = allocate_and_write();
    assert_eq!(
        returned(),
        before,
        "memory freed while the program was active went back to the OS"
    );
    assert_eq!(
        GLOBAL.mapped_bytes.load(Relaxed),
        mapped,
        "the second cycle mapped new memory instead of reusing the kept pages"
    );

    // Quiet (a quarter of the window without allocator activity): it goes back.
    free_all(&again);
    let before = returned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while returned() - before < (BLOCKS * SIZE) as u64 * 7 / 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "quiet for 5 s and only {} of {} bytes returned",
            returned() - before,
            BLOCKS * SIZE
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Without a demand window, the cache cap alone rules: a 32 MiB free is purged at once.
    options::DEMAND_WINDOW_MS.set(0);
    let blocks = allocate_and_write();
    let before = returned();
    free_all(&blocks);
    assert!(
        returned() - before >= (16 << 20),
        "with DEMAND_WINDOW_MS=0 a free past the cap was not purged at once ({} bytes)",
        returned() - before
    );
}
