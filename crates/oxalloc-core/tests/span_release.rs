//! A span whose blocks all come back, some freed by its owner and the rest by other
//! threads, goes back to the central pool at the owner's next slow path, whatever class
//! the owner allocates then; and a chain of blocks another thread gathered for it and
//! then stopped adding to does not keep it from there for long (`heap::remote`).

mod common;
use common::{free_all, malloc_written, use_up_a_span};
use oxalloc_core::segment::{Segment, SpanKind};
use oxalloc_core::tls;
use std::sync::mpsc;
use std::thread;

const SIZE: usize = 64;
/// A class of its own, whose first malloc takes the slow path (and a fresh span).
const OTHER: usize = 128;
const SPAN: usize = 64 << 10;

/// Allocates blocks of SIZE until a span is used up, then one more (which parks that
/// span full and starts the next); returns the used-up span's blocks and the others.
fn fill_a_span() -> (Vec<usize>, Vec<usize>) {
    let before = use_up_a_span(SIZE);
    let last = *before.last().unwrap() / SPAN;
    let (span, other): (Vec<usize>, Vec<usize>) =
        before.into_iter().partition(|p| p / SPAN == last);
    let mut other = other;
    other.push(malloc_written(SIZE));
    (span, other)
}

/// Whether the span at `span` is still this thread's span of SIZE-byte blocks.
fn still_ours(span: usize) -> bool {
    let seg = Segment::of(span);
    // SAFETY: the segment holds other live blocks of this thread, so it stays mapped;
    // the slice record is read while no other thread allocates or frees.
    unsafe {
        let record = &*Segment::span_of(seg, span);
        record.kind == SpanKind::Small
            && record.block_size as usize == SIZE
            && record.owner == tls::heap()
    }
}

/// In a thread: fills a span, frees half of it here and has `free_rest` free the rest
/// on another thread, then allocates OTHER for the first time (the slow path, which
/// takes what other threads gave back). Returns whether the span is still in use then.
fn stays_after(free_rest: impl FnOnce(Vec<usize>) + Send + 'static) -> bool {
    thread::spawn(move || {
        let (span, others) = fill_a_span();
        // Not a multiple of a chain (64 blocks of 64 bytes) on either side.
        let (mine, theirs) = span.split_at(span.len() / 2 + 10);
        let start = span[0] / SPAN * SPAN;
        free_all(mine.iter().copied());
        free_rest(theirs.to_vec());
        assert!(still_ours(start));
        let p = malloc_written(OTHER);
        let stays = still_ours(start);
        free_all([p]);
        free_all(others);
        stays
    })
    .join()
    .unwrap()
}

#[test]
fn spans_freed_partly_by_other_threads_go_back() {
    // Freed by a thread without a heap: every block pushed to the span at once.
    let stays = stays_after(|theirs| {
        thread::spawn(move || free_all(theirs)).join().unwrap();
    });
    assert!(!stays, "the emptied span stayed in use");

    // Freed by a thread with a heap, which gathers them in chains; the last chain is
    // short, and that thread goes on freeing blocks of other spans (blocks a third
    // thread allocated), then waits, alive, while we look. The third thread stays too
    // (a heap it left could be the one the next thread takes, with its blocks).
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<()>();
    let (third_tx, third_rx) = mpsc::channel::<Vec<usize>>();
    let (release_third, third_waits) = mpsc::channel::<()>();
    let third_thread = thread::spawn(move || {
        third_tx
            .send((0..40_000).map(|_| malloc_written(SIZE)).collect())
            .unwrap();
        third_waits.recv().unwrap();
    });
    let third = third_rx.recv().unwrap();
    let stays = stays_after(move |theirs| {
        assert!(theirs.len() % 64 != 0, "the last chain must be short");
        thread::spawn(move || {
            // A heap of our own, so frees of others' blocks are gathered (of another
            // class: one it took fresh memory for would take waiting lists for reuse).
            let own = malloc_written(4 * SIZE);
            free_all(theirs);
            free_all(third);
            done.send(()).unwrap();
            wait.recv().unwrap();
            free_all([own]);
        });
        finished.recv().unwrap();
    });
    go.send(()).unwrap();
    release_third.send(()).unwrap();
    third_thread.join().unwrap();
    assert!(!stays, "a short chain left behind kept the span in use");
}
