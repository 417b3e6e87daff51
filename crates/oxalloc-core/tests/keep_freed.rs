//! A thread that frees another thread's blocks while it needs blocks of their class
//! itself (its own span of the class is used up, and it took fresh memory for the
//! class) keeps them for its next allocations (`heap::foreign::keep`): the block it
//! has just freed, still in its cache, is the one its next `malloc` returns. No block
//! goes to two threads, and the owner's books stay right: everything is freed and
//! reused afterwards without a report.

mod common;
use common::{free_all, malloc_written, use_up_a_span};
use oxalloc_core::api;
use std::collections::HashSet;
use std::sync::mpsc;
use std::thread;

const SIZE: usize = 64;
const THEIRS: usize = 256;

#[test]
fn a_thread_that_needs_the_class_reuses_the_blocks_it_frees() {
    let (to_freer, from_owner) = mpsc::channel::<Vec<usize>>();
    let (to_owner, from_freer) = mpsc::channel::<Vec<usize>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let owner = thread::spawn(move || {
        let theirs: Vec<usize> = (0..THEIRS).map(|_| malloc_written(SIZE)).collect();
        to_freer.send(theirs).unwrap();
        // The blocks the other thread holds now (some of them were ours).
        let held: HashSet<usize> = from_freer.recv().unwrap().into_iter().collect();
        let again: Vec<usize> = (0..4 * THEIRS).map(|_| malloc_written(SIZE)).collect();
        for p in &again {
            assert!(!held.contains(p), "block {p:#x} handed out to both threads");
        }
        free_all(again);
        done_tx.send(()).unwrap();
    });
    let freer = thread::spawn(move || {
        // Use up a span of our own exactly: the class's next block must come from
        // elsewhere (this thread took a fresh span for the class, and has none free).
        let mut mine = use_up_a_span(SIZE);
        let theirs = from_owner.recv().unwrap();
        for &p in &theirs[..THEIRS / 2] {
            // SAFETY: the owner handed the block over; freed once.
            unsafe { api::free(p as *mut u8) };
            let q = malloc_written(SIZE);
            assert_eq!(q, p, "the block just freed was not reused");
            mine.push(q);
        }
        // The rest: kept too, up to a chain's worth, the others gathered for the owner;
        // what is kept goes home when this thread exits.
        free_all(theirs[THEIRS / 2..].iter().copied());
        to_owner.send(mine.clone()).unwrap();
        done_rx.recv().unwrap();
        // Half of these are blocks of the owner's span, handed out here.
        free_all(mine);
    });
    owner.join().unwrap();
    freer.join().unwrap();
    // Both heaps are abandoned now, every block back home: new threads adopt them and
    // reuse the blocks without a report.
    for _ in 0..2 {
        thread::spawn(|| {
            free_all(
                (0..4 * THEIRS)
                    .map(|_| malloc_written(SIZE))
                    .collect::<Vec<_>>(),
            )
        })
        .join()
        .unwrap();
    }
}
