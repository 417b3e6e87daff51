//! `malloc_trim` collects every abandoned heap, not only one: blocks freed after their
//! threads exited come back to the central pool. Alone in its own test binary: it
//! reads the process-wide counters.

use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn trim_collects_every_abandoned_heap() {
    const THREADS: usize = 4;
    // Each thread allocates blocks and exits (its heap is abandoned with them live);
    // the barrier keeps them alive together, so each has a heap of its own.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mine: Vec<usize> = (0..2000)
                    .map(|_| {
                        let p = api::malloc(200);
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
    // Freed from here: remote frees into the abandoned heaps' spans.
    for p in blocks.into_iter().flatten() {
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
