//! The periodic collection of abandoned heaps (`tls::collect_one_abandoned`, run every 32
//! fresh spans) takes a different heap each time: n calls collect n heaps, so blocks
//! freed after their threads exited come back to the central pool without a trim. Alone
//! in its own test binary: it reads the process-wide counters.

use oxalloc_core::stats::GLOBAL;
use oxalloc_core::{api, tls};
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn each_collection_takes_another_abandoned_heap() {
    const THREADS: usize = 4;
    // Each thread allocates blocks and exits with them live (its heap is abandoned);
    // the barrier keeps them alive together, so each has a heap of its own.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // 1000 bytes: above the size gathered per span, so each free from this
                // (heapless) thread goes straight to its span's remote list.
                let mine: Vec<usize> = (0..500)
                    .map(|_| {
                        let p = api::malloc(1000);
                        assert!(!p.is_null());
                        p as usize
                    })
                    .collect();
                barrier.wait();
                mine
            })
        })
        .collect();
    let blocks: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(GLOBAL.heaps_abandoned.load(Relaxed) >= THREADS as u64);
    for p in blocks.into_iter().flatten() {
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
