//! Blocks freed by another thread go back to their owner and are reused: full spans
//! come back through the remote stack, and the freeing thread's gathered chains are
//! handed over when it exits. Alone in its own test binary: it reads the process-wide
//! counters.

use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;

const N: usize = 20_000;

fn fill(size: usize) -> Vec<usize> {
    (0..N)
        .map(|i| {
            let p = api::malloc(size);
            assert!(!p.is_null());
            // SAFETY: p has `size` bytes.
            unsafe { std::ptr::write_bytes(p, i as u8, size) };
            p as usize
        })
        .collect()
}

#[test]
fn blocks_freed_by_another_thread_are_reused_by_their_owner() {
    for size in [48, 400, 3000] {
        // Every span these fill is parked full: only remote frees can bring it back.
        let first = fill(size);
        let mapped = GLOBAL.mapped_bytes.load(Relaxed);
        let ours = first.clone();
        thread::spawn(move || {
            for p in ours {
                // SAFETY: each block is live and freed once, by this thread.
                unsafe { api::free(p as *mut u8) };
            }
        })
        .join()
        .unwrap();
        let second = fill(size);
        // The same memory serves the second round: the blocks themselves (spans that
        // stayed with the heap) or their spans, released and taken again.
        assert!(
            GLOBAL.mapped_bytes.load(Relaxed) <= mapped,
            "size {size}: the second round mapped new memory"
        );
        let old: HashSet<usize> = first.into_iter().collect();
        assert!(
            second.iter().any(|p| old.contains(p)),
            "size {size}: no block reused"
        );
        for p in second {
            // SAFETY: live blocks of this thread.
            unsafe { api::free(p as *mut u8) };
        }
    }
}
