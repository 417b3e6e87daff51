//! Large and huge blocks count as allocations and frees even when they are a thread's
//! first allocations (issue 22: a program whose first requests were ten 256 KiB blocks
//! and a 4 MiB one showed "allocations 1"). Alone in its own test binary: it reads the
//! process-wide totals.

use oxalloc_core::{api, stats};

#[test]
fn a_threads_first_allocations_count_when_they_are_large_or_huge() {
    let before = stats::totals();
    // A fresh thread: no heap until its first allocation, which is large.
    std::thread::spawn(|| {
        let blocks: Vec<usize> = (0..10)
            .map(|_| api::malloc(256 << 10) as usize)
            .chain([api::malloc(4 << 20) as usize])
            .collect();
        assert!(blocks.iter().all(|&p| p != 0));
        for p in blocks {
            // SAFETY: each block is live and freed once.
            unsafe { api::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    let after = stats::totals();
    assert_eq!(after.allocs - before.allocs, 11, "allocations");
    assert_eq!(after.frees - before.frees, 11, "frees");
}
