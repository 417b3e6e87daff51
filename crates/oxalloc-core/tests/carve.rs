//! A span whose pages an earlier user wrote is carved four blocks at a time (they are
//! resident already); a clean one a page at a time, so its pages are touched only as
//! blocks are needed.

mod common;
use common::{free_all, malloc_written};
use oxalloc_core::tls;
use std::thread;

/// Blocks of a page each, 16 to a one-slice span.
const PAGE_BLOCK: usize = 4096;

/// Slow-path calls of this thread's heap so far.
fn slow_calls() -> u32 {
    // SAFETY: this thread's heap, read by this thread.
    unsafe { (*tls::heap()).slow_calls }
}

/// Slow-path calls of 16 allocations of `PAGE_BLOCK` in a thread of its own (a span's
/// worth), after the heap is set up.
fn slow_calls_for_a_span() -> u32 {
    thread::spawn(|| {
        free_all([malloc_written(16)]);
        let before = slow_calls();
        let blocks: Vec<usize> = (0..16).map(|_| malloc_written(PAGE_BLOCK)).collect();
        let calls = slow_calls() - before;
        free_all(blocks);
        calls
    })
    .join()
    .unwrap()
}

#[test]
fn a_written_span_is_carved_four_blocks_at_a_time() {
    // Nothing written yet in this process's pool: a clean span, a carve per block.
    assert_eq!(slow_calls_for_a_span(), 16, "a clean span carved ahead");
    // Four spans written and given back (the thread exits): the next thread's span is
    // one of them.
    thread::spawn(|| {
        free_all(
            (0..64)
                .map(|_| malloc_written(PAGE_BLOCK))
                .collect::<Vec<_>>(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(
        slow_calls_for_a_span(),
        4,
        "a written span carved one block at a time"
    );
}
