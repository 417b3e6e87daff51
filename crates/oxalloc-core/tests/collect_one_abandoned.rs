//! The periodic collection of abandoned heaps (`tls::collect_one_abandoned`, run every 32
//! fresh spans) takes a different heap each time: n calls collect n heaps, so blocks
//! freed after their threads exited come back to the central pool without a trim. Alone
//! in its own test binary: it reads the process-wide counters.

mod common;

use oxalloc_core::stats::GLOBAL;
use oxalloc_core::{api, tls};
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn each_collection_takes_another_abandoned_heap() {
    const THREADS: usize = 4;
    // 1000 bytes: above the size gathered per span, so each free from this (heapless)
    // thread goes straight to its span's remote list.
    let blocks = common::abandon_heaps_with_live_blocks(THREADS, 500, 1000);
    assert!(GLOBAL.heaps_abandoned.load(Relaxed) >= THREADS as u64);
    for p in blocks {
        // SAFETY: a live block, freed once.
        unsafe { api::free(p as *mut u8) };
    }
    assert!(
        GLOBAL.in_use_bytes.load(Relaxed) > 0,
        "nothing collected yet"
    );
    for _ in 0..THREADS {
        tls::collect_one_abandoned();
    }
    assert_eq!(
        GLOBAL.in_use_bytes.load(Relaxed),
        0,
        "{THREADS} collections left spans of abandoned heaps in use: one heap collected \
         several times?"
    );
}
