//! A thread takes the blocks that wait on another heap's span for its owner, to hand
//! them out itself, only for a class it allocates lately (`heap::foreign`): one that
//! took a fresh span of the class once and then went on allocating other sizes leaves
//! the lists to their owners (it held them before, pinning the owners' spans).

mod common;
use common::{free_all, malloc_written, use_up_a_span};
use oxalloc_core::segment::{RemoteList, Segment};
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::thread;

const SIZE: usize = 64;
/// Blocks of a page each: every fourth allocation runs the slow path (a carve of four).
const PAGE_BLOCK: usize = 4096;
/// Allocations of `PAGE_BLOCK` that run more slow-path calls than two of the heap's
/// windows (`foreign::SLOW_WINDOW`).
const OTHER_CALLS: usize = 4800;

/// Blocks waiting on the remote list of the span holding `block`.
fn waiting(block: usize) -> u32 {
    // SAFETY: the span holds live blocks of an idle owner, so its segment stays mapped.
    let remote = unsafe { &(*Segment::span_of(Segment::of(block), block)).remote };
    RemoteList(remote.load(Relaxed)).count()
}

/// An owner thread allocates 200 blocks of SIZE (one fresh span) and then waits; a
/// thread without a heap frees 100 of them (they wait on the span's remote list, more
/// than a steal takes); then a thread with a heap runs `before` and frees the other
/// 100 (a chain's worth and more, so it hands one over), then what `before` allocated.
/// Returns how many blocks other
/// heaps took for reuse meanwhile, and how many wait on the span then.
fn freed_by_a_thread_that(before: fn() -> Vec<usize>) -> (u64, u32) {
    let (blocks_tx, blocks_rx) = mpsc::channel::<Vec<usize>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let owner = thread::spawn(move || {
        blocks_tx
            .send((0..200).map(|_| malloc_written(SIZE)).collect())
            .unwrap();
        done_rx.recv().unwrap();
    });
    let blocks = blocks_rx.recv().unwrap();
    let first = blocks[0];
    assert!(
        blocks.iter().all(|p| p / (64 << 10) == first / (64 << 10)),
        "the owner's blocks must share one span"
    );
    let (pushed, rest) = blocks.split_at(100);
    let pushed = pushed.to_vec();
    thread::spawn(move || free_all(pushed)).join().unwrap();
    assert_eq!(waiting(first), 100);

    let reused_before = GLOBAL.remote_reused.load(Relaxed);
    let rest = rest.to_vec();
    let (reused, left) = thread::spawn(move || {
        let mine = before();
        free_all(rest);
        // Measured before this thread exits (and gives back what it took).
        let reused = GLOBAL.remote_reused.load(Relaxed) - reused_before;
        let left = waiting(first);
        free_all(mine);
        (reused, left)
    })
    .join()
    .unwrap();
    done_tx.send(()).unwrap();
    owner.join().unwrap();
    (reused, left)
}

#[test]
fn a_thread_leaves_waiting_lists_of_a_class_it_stopped_allocating() {
    // Control: a thread that allocates the class now (it used up a span of it just
    // before) and does not keep the blocks of it that it frees takes the waiting list.
    // (It would keep them, `heap::foreign::keep`, but it handed out a kept block and
    // freed it again: a short-lived block of its own, and the keeping stops.)
    let (reused, left) = freed_by_a_thread_that(|| {
        let mut mine: Vec<usize> = (0..OTHER_CALLS)
            .map(|_| malloc_written(PAGE_BLOCK))
            .collect();
        mine.extend(use_up_a_span(SIZE));
        let theirs = thread::spawn(|| malloc_written(SIZE)).join().unwrap();
        free_all([theirs]);
        assert_eq!(malloc_written(SIZE), theirs, "the block was not kept");
        free_all([theirs]);
        mine
    });
    assert!(
        reused >= 100,
        "the control did not take the list ({reused})"
    );
    assert!(left < 100, "the control left the list ({left})");

    // A thread that took a fresh span of the class and then only allocated other sizes.
    let (reused, left) = freed_by_a_thread_that(|| {
        let mut mine = vec![malloc_written(SIZE)];
        mine.extend((0..OTHER_CALLS).map(|_| malloc_written(PAGE_BLOCK)));
        mine
    });
    assert_eq!(
        reused, 0,
        "a thread that stopped allocating the class took its list"
    );
    assert!(
        left >= 164,
        "blocks went missing from the span's list ({left})"
    );
}
