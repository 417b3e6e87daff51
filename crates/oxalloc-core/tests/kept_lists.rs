//! Blocks of other threads that a thread frees while it needs their class itself are
//! kept for its own next allocations (`heap::foreign::keep`), in a list the direct
//! table names while it has blocks, so `malloc`'s fast path hands them out
//! (`foreign::serve_kept`). They come back last freed first, count as allocations in
//! the statistics, and when the list runs dry the thread's own span serves again.
//! Each test uses a class of its own (the counts are its own), one whose blocks fill a
//! span exactly (`use_up_a_span`).

mod common;
use common::{free_all, malloc_written, use_up_a_span};
use oxalloc_core::heap::kept_by_this_thread;
use oxalloc_core::size_class::SizeClass;
use oxalloc_core::stats::class_totals;
use std::collections::HashSet;
use std::sync::mpsc;
use std::thread;

const THEIRS: usize = 16;

/// Runs `f` on a thread that receives `THEIRS` blocks of `size` bytes allocated by
/// another thread, which stays alive (its heap is not this thread's to adopt) until
/// `f` has returned, having freed everything.
fn with_their_blocks(size: usize, f: impl FnOnce(Vec<usize>) + Send + 'static) {
    with_n_of_their_blocks(size, THEIRS, f)
}

/// [`with_their_blocks`] with `n` blocks.
fn with_n_of_their_blocks(size: usize, n: usize, f: impl FnOnce(Vec<usize>) + Send + 'static) {
    let (to_freer, from_owner) = mpsc::channel::<Vec<usize>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let owner = thread::spawn(move || {
        let theirs: Vec<usize> = (0..n).map(|_| malloc_written(size)).collect();
        to_freer.send(theirs).unwrap();
        done_rx.recv().unwrap();
    });
    let freer = thread::spawn(move || {
        f(from_owner.recv().unwrap());
        done_tx.send(()).unwrap();
    });
    freer.join().unwrap();
    owner.join().unwrap();
}

#[test]
fn kept_blocks_come_back_last_freed_first_and_count_as_allocations() {
    const SIZE: usize = 128;
    with_their_blocks(SIZE, |theirs| {
        let class = SizeClass::of(SIZE);
        // This thread took a fresh span for the class and has no block of it free.
        let mut mine = use_up_a_span(SIZE);
        free_all(theirs.iter().copied());
        let (a0, f0) = class_totals(class);
        let again: Vec<usize> = (0..THEIRS).map(|_| malloc_written(SIZE)).collect();
        let expected: Vec<usize> = theirs.iter().rev().copied().collect();
        assert_eq!(again, expected, "the kept blocks, last freed first");
        // Handed out by the kept list: allocations. A kept block counts as in use in
        // its owner's span until it is handed out again: its free shows now.
        let theirs_n = THEIRS as u64;
        assert_eq!(class_totals(class), (a0 + theirs_n, f0 + theirs_n));
        // The list is dry: the class's own memory serves again, never a block twice.
        let theirs: HashSet<usize> = theirs.into_iter().collect();
        let mut seen = HashSet::new();
        for _ in 0..256 {
            let p = malloc_written(SIZE);
            assert!(!theirs.contains(&p), "kept block {p:#x} handed out twice");
            assert!(seen.insert(p), "block {p:#x} handed out twice");
            mine.push(p);
        }
        assert_eq!(class_totals(class), (a0 + theirs_n + 256, f0 + theirs_n));
        free_all(again);
        free_all(mine);
    });
}

#[test]
fn a_block_of_its_own_freed_in_between_does_not_stop_the_keeping() {
    const SIZE: usize = 256;
    with_their_blocks(SIZE, |theirs| {
        let mut mine = use_up_a_span(SIZE);
        // One of this thread's own blocks goes back to its current span, then another
        // thread's block is freed: kept all the same (a thread that frees its own
        // blocks and others' in turn), and handed out once the span's block is.
        let own = mine.pop().unwrap();
        free_all([own]);
        free_all([theirs[0]]);
        assert_eq!(malloc_written(SIZE), own, "the span's own free block first");
        assert_eq!(malloc_written(SIZE), theirs[0], "then the kept one");
        free_all([own, theirs[0]]);
        free_all(theirs[1..].iter().copied());
        free_all(mine);
    });
}

#[test]
fn a_kept_block_handed_out_and_freed_again_goes_home() {
    const SIZE: usize = 512;
    with_their_blocks(SIZE, |theirs| {
        let mut mine = use_up_a_span(SIZE);
        free_all([theirs[0]]);
        assert_eq!(malloc_written(SIZE), theirs[0], "kept, and handed out");
        // Freed again by this thread (a short-lived block): this thread allocated it,
        // so it goes home rather than round the keep path, and the class is not kept
        // any more until this thread takes memory from elsewhere.
        free_all([theirs[0], theirs[1]]);
        for _ in 0..4 {
            let p = malloc_written(SIZE);
            assert!(p != theirs[0] && p != theirs[1], "{p:#x} was kept");
            mine.push(p);
        }
        free_all(theirs[2..].iter().copied());
        free_all(mine);
    });
}

#[test]
fn a_thread_that_frees_a_class_it_does_not_allocate_gives_the_kept_blocks_back() {
    const SIZE: usize = 64;
    // A chain of 64 blocks fills a kept list that has handed nothing out yet; one more
    // free finds it full with nothing handed out.
    const FILL: usize = 64;
    with_n_of_their_blocks(SIZE, FILL + 2, |theirs| {
        let class = SizeClass::of(SIZE);
        let mine = use_up_a_span(SIZE);
        free_all(theirs[..FILL].iter().copied());
        assert_eq!(kept_by_this_thread(class), FILL);
        free_all(theirs[FILL..].iter().copied());
        assert_eq!(
            kept_by_this_thread(class),
            0,
            "the kept blocks did not go home"
        );
        free_all(mine);
    });
}
