//! A heap keeps the spans of the large blocks its thread frees, by slice count, for its
//! next large blocks of that count (`heap::large`): a block that churns comes back to
//! the same span without the central pool. How many a count keeps grows with its churn;
//! the spans go back when the count is no longer allocated and when the thread exits.
//! Blocks another thread frees come back to the heap that allocated them.

mod common;
use common::{free_all, malloc_written};
use oxalloc_core::stats::{self, GLOBAL};
use oxalloc_core::tls;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;

/// Three slices.
const LARGE: usize = 150 << 10;
/// Its span.
const SPAN: u64 = 192 << 10;
/// Two slices.
const OTHER: usize = 100 << 10;

/// Spans this thread's heap keeps.
fn kept() -> usize {
    // SAFETY: this thread's heap, read by this thread.
    unsafe { (*tls::heap()).large.spans_kept() }
}

#[test]
fn freed_large_spans_are_kept_for_the_next_block_then_given_back() {
    let in_use_before = GLOBAL.in_use_bytes.load(Relaxed);
    thread::spawn(|| {
        // The first free of a count has no room (nothing kept yet); the count's next
        // block then comes from the pool, and from then on one span is kept.
        free_all([malloc_written(LARGE)]);
        assert_eq!(kept(), 0, "kept before the count churned");
        let p = malloc_written(LARGE);
        let in_use_live = stats::in_use_bytes_now();
        free_all([p]);
        assert_eq!(kept(), 1, "the churning count's span was given back");
        // Free memory: cached, not in use, in the statistics.
        assert_eq!(
            stats::in_use_bytes_now(),
            in_use_live - SPAN,
            "a kept span counts as in use"
        );
        assert!(stats::kept_span_bytes() >= SPAN);
        let in_use = GLOBAL.in_use_bytes.load(Relaxed);
        let q = malloc_written(LARGE);
        assert_eq!(q, p, "the kept span was not reused");
        assert_eq!(kept(), 0);
        assert_eq!(
            GLOBAL.in_use_bytes.load(Relaxed),
            in_use,
            "went to the pool"
        );

        // Replacing 8 blocks at random-ish order: the limit grows with the swings.
        let mut live: Vec<usize> = (0..8).map(|_| malloc_written(LARGE)).collect();
        for round in 0..20 {
            let n = if round % 2 == 0 { 8 } else { 2 };
            free_all(live.drain(..n.min(live.len())));
            while live.len() < 8 {
                live.push(malloc_written(LARGE));
            }
        }
        free_all(live.drain(..));
        assert!(kept() > 1, "the limit did not grow: {}", kept());

        // Another count churns, this one is no longer allocated: after two windows of
        // large calls its spans go back.
        free_all([q]);
        let before = kept();
        for _ in 0..600 {
            free_all([malloc_written(OTHER)]);
        }
        assert!(
            kept() <= 1,
            "an unused count's spans stayed kept: {before} -> {}",
            kept()
        );

        // Blocks freed by another thread are not kept there (it does not allocate
        // them): they go back to this heap, whose next blocks they serve without the
        // pool.
        let theirs: Vec<usize> = (0..4).map(|_| malloc_written(LARGE)).collect();
        let mut sorted = theirs.clone();
        sorted.sort_unstable();
        let in_use = GLOBAL.in_use_bytes.load(Relaxed);
        thread::spawn(move || {
            free_all(theirs);
            assert_eq!(
                kept(),
                0,
                "a thread kept blocks of a count it never allocates"
            );
        })
        .join()
        .unwrap();
        let mut again: Vec<usize> = (0..4).map(|_| malloc_written(LARGE)).collect();
        again.sort_unstable();
        assert_eq!(
            again, sorted,
            "the blocks another thread freed did not come back to their heap"
        );
        assert_eq!(
            GLOBAL.in_use_bytes.load(Relaxed),
            in_use,
            "the other thread's frees went through the pool"
        );
        free_all(again);
        // Handed back and not taken yet when the thread exits: given back then (the
        // check after the join).
        let theirs: Vec<usize> = (0..2).map(|_| malloc_written(LARGE)).collect();
        thread::spawn(move || free_all(theirs)).join().unwrap();
        // Kept spans go back when the thread exits.
        let p = malloc_written(OTHER);
        free_all([p]);
        assert!(kept() >= 1);
    })
    .join()
    .unwrap();
    assert_eq!(
        GLOBAL.in_use_bytes.load(Relaxed),
        in_use_before,
        "kept spans stayed in use after the thread exited"
    );
}
