//! Per-class counts stay exact now that small allocations are counted in their span
//! first and folded into the heap's counters when the span goes back: while spans are
//! live, after they are released, and after their thread exits. Alone in its own test
//! binary (and in a class nothing else here uses), so the counts are this test's own.

use oxalloc_core::api;
use oxalloc_core::size_class::SizeClass;
use oxalloc_core::stats::class_totals;

const SIZE: usize = 2800;

fn alloc_many(n: usize) -> Vec<usize> {
    (0..n)
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

#[test]
fn class_counts_are_exact_across_span_release_and_thread_exit() {
    let class = SizeClass::of(SIZE);
    let (a0, f0) = class_totals(class);

    // Live spans: the counts sit in the spans.
    let blocks = alloc_many(1000);
    assert_eq!(class_totals(class), (a0 + 1000, f0));

    // Half freed: spans still live.
    free_all(&blocks[..500]);
    assert_eq!(class_totals(class), (a0 + 1000, f0 + 500));

    // All freed: the spans went back to the pool and their counts to the heap.
    free_all(&blocks[500..]);
    assert_eq!(class_totals(class), (a0 + 1000, f0 + 1000));

    // Another thread allocates, frees half and exits with the rest live.
    let kept = std::thread::spawn(|| {
        let b = alloc_many(300);
        free_all(&b[..100]);
        b[100..].to_vec()
    })
    .join()
    .unwrap();
    assert_eq!(class_totals(class), (a0 + 1300, f0 + 1100));

    // Freed here: remote frees into the exited thread's (abandoned) spans.
    free_all(&kept);
    let (a, f) = class_totals(class);
    assert_eq!(a, a0 + 1300);
    // Remote frees not yet collected by the spans' heap count as in use.
    assert!(f <= f0 + 1300, "frees {f}");
}
