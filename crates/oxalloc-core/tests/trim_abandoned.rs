//! `malloc_trim` collects every abandoned heap, not only one: blocks freed after their
//! threads exited come back to the central pool. Alone in its own test binary: it
//! reads the process-wide counters.

mod common;

use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn trim_collects_every_abandoned_heap() {
    const THREADS: usize = 4;
    let blocks = common::abandon_heaps_with_live_blocks(THREADS, 2000, 200);
    assert!(GLOBAL.heaps_abandoned.load(Relaxed) >= THREADS as u64);
    // Freed from here: remote frees into the abandoned heaps' spans.
    for p in blocks {
        // SAFETY: a live block, freed once.
        unsafe { api::free(p as *mut u8) };
    }
    api::malloc_trim(0);
    assert_eq!(
        GLOBAL.in_use_bytes.load(Relaxed),
        0,
        "spans of abandoned heaps still in use after everything was freed and trimmed"
    );
}
