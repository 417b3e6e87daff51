//! A heap keeps the spans that empty while it replaces blocks of a class with few
//! blocks a span (`heap::retain`): the next block of the class comes from the kept
//! span, not from the central pool. The spans go back once the class is no longer
//! allocated, and when the thread exits (also those its exit empties).

mod common;
use common::{free_all, malloc_written};
use oxalloc_core::size_class::SizeClass;
use oxalloc_core::stats::GLOBAL;
use oxalloc_core::tls;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;

/// One block a span.
const BIG: usize = 64 << 10;
/// Blocks of a page each: every fourth allocation runs the slow path (a carve of four).
const PAGE_BLOCK: usize = 4096;

/// Spans of BIG's class this thread's heap keeps.
fn retained() -> u8 {
    assert!(SizeClass::of(BIG).few_blocks_per_span());
    // SAFETY: this thread's heap, read by this thread.
    unsafe { (*tls::heap()).retained_len[SizeClass::of(BIG).index()] }
}

/// Replaces `live`'s blocks one at a time, `rounds` times over.
fn churn(live: &mut [usize], rounds: usize) {
    for i in 0..rounds * live.len() {
        let k = i % live.len();
        free_all([live[k]]);
        live[k] = malloc_written(BIG);
    }
}

#[test]
fn emptied_spans_of_a_churning_class_are_kept_then_given_back() {
    let in_use_before = GLOBAL.in_use_bytes.load(Relaxed);
    thread::spawn(|| {
        let mut live: Vec<usize> = (0..8).map(|_| malloc_written(BIG)).collect();
        churn(&mut live, 4);

        // A freed block's span is kept, and the class's next block comes from it.
        let old = live[0];
        free_all([old]);
        assert_eq!(retained(), 1, "the emptied span was given back");
        let in_use = GLOBAL.in_use_bytes.load(Relaxed);
        live[0] = malloc_written(BIG);
        assert_eq!(live[0], old, "the kept span was not reused");
        assert_eq!(retained(), 0);
        assert_eq!(GLOBAL.in_use_bytes.load(Relaxed), in_use);

        // The class is no longer allocated: after two windows of other slow-path
        // calls, what is kept goes back.
        free_all(live);
        assert!(retained() >= 1);
        let other: Vec<usize> = (0..4800).map(|_| malloc_written(PAGE_BLOCK)).collect();
        assert_eq!(retained(), 0, "spans of an unused class stayed kept");
        free_all(other);

        // Kept spans at thread exit go back with the rest of the heap, and so do the
        // spans emptied at exit by blocks other threads freed meanwhile (a thread
        // without a heap: each block waits on its span's remote list).
        // One block stays live (a span in use after the exit), taking a kept span, so
        // there is room to keep one of those the exit empties.
        let mut live: Vec<usize> = (0..8).map(|_| malloc_written(BIG)).collect();
        churn(&mut live, 4);
        let theirs = live.split_off(4);
        free_all(live);
        assert!(retained() >= 1);
        let _leaked = malloc_written(BIG);
        thread::spawn(move || free_all(theirs)).join().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(
        GLOBAL.in_use_bytes.load(Relaxed),
        in_use_before + BIG as u64,
        "a span other than the live block's stayed in use after the thread exited"
    );
}
