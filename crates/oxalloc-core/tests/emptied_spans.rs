//! A heap keeps the small spans it empties (`Heap::emptied`), by slice count, for its
//! next spans of any class, as many as its churn of spans needs: a program that fills
//! and empties spans in rounds stays off the central pool. They go back at thread exit.
//! Alone in its own test binary: it reads the process-wide counters.

mod common;
use common::{free_all, malloc_written};
use oxalloc_core::stats::{self, GLOBAL};
use oxalloc_core::tls;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;

/// Blocks of a page: 16 to a one-slice span.
const PAGE_BLOCK: usize = 4096;
/// Another class of one-slice spans.
const OTHER: usize = 2048;
const SLICE: u64 = 64 << 10;
/// A class of 256 blocks a one-slice span.
const DENSE: usize = 256;

/// Spans this thread's heap keeps.
fn kept() -> usize {
    // SAFETY: this thread's heap, read by this thread.
    unsafe { (*tls::heap()).emptied.spans_kept() }
}

#[test]
fn emptied_spans_are_kept_for_any_class_then_given_back() {
    let in_use_before = GLOBAL.in_use_bytes.load(Relaxed);
    thread::spawn(|| {
        // Rounds of four spans' worth of blocks, each freed at the end of its round:
        // every round takes spans after the last one gave some back for lack of room,
        // so the heap keeps more of them.
        let mut spans = Vec::new();
        for _ in 0..6 {
            let blocks: Vec<usize> = (0..64).map(|_| malloc_written(PAGE_BLOCK)).collect();
            spans = blocks.iter().map(|&p| p as u64 / SLICE).collect();
            free_all(blocks);
        }
        spans.dedup();
        let n = kept();
        assert!(n >= 2, "the heap kept {n} of the spans its rounds empty");
        // Cached, not in use, in the statistics.
        assert!(stats::kept_span_bytes() >= n as u64 * SLICE);

        // Another class's next span is one of them.
        let p = malloc_written(OTHER);
        assert_eq!(kept(), n - 1, "the other class took a span from the pool");
        assert!(
            spans.contains(&(p as u64 / SLICE)),
            "the span taken is not one the rounds emptied"
        );
        free_all([p]);

        // Spans of a class of 1 KiB or less (many blocks a span, so the pool's trip
        // costs little a block) go back to the pool.
        let before = kept();
        for _ in 0..6 {
            free_all((0..1024).map(|_| malloc_written(DENSE)).collect::<Vec<_>>());
        }
        assert!(kept() <= before, "a dense class's emptied spans were kept");
    })
    .join()
    .unwrap();
    assert_eq!(
        GLOBAL.in_use_bytes.load(Relaxed),
        in_use_before,
        "kept spans stayed in use after the thread exited"
    );
}
