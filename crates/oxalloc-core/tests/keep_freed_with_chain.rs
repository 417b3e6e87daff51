//! A block another heap owns is kept for this thread's next allocation of its class as
//! it is freed (`heap::free::keep_or_gather`), even when this thread already gathers a
//! pending chain for its span. Alone in its process: a thread that adopted another
//! test's abandoned heap, with a span of the class kept or partly free, would take its
//! next block from there (`use_up_a_span` assumes a fresh span).

mod common;
use common::{free_all, malloc_written, use_up_a_span};
use std::sync::mpsc;
use std::thread;

const SIZE: usize = 64;

/// A block is kept as it is freed even when this thread already gathers a chain for its
/// span (freed there before the thread needed the class): it is the block freed last,
/// and the next `malloc` returns it, not the chain's older blocks nor a fresh span's.
#[test]
fn a_block_of_a_span_with_a_chain_pending_is_kept_too() {
    let (to_freer, from_owner) = mpsc::channel::<Vec<usize>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let owner = thread::spawn(move || {
        // Consecutive blocks of one fresh span.
        let theirs: Vec<usize> = (0..8).map(|_| malloc_written(SIZE)).collect();
        to_freer.send(theirs).unwrap();
        done_rx.recv().unwrap();
    });
    let freer = thread::spawn(move || {
        // A heap of our own (a thread without one hands each block home at once).
        let other_class = malloc_written(4 * SIZE);
        let theirs = from_owner.recv().unwrap();
        // The class is not this thread's yet: the block goes on a pending chain for
        // the owner's span.
        free_all([theirs[0]]);
        let mut mine = use_up_a_span(SIZE);
        for &p in &theirs[1..] {
            free_all([p]);
            let q = malloc_written(SIZE);
            assert_eq!(q, p, "the block just freed was not reused");
            mine.push(q);
        }
        done_tx.send(()).unwrap();
        mine.push(other_class);
        free_all(mine);
    });
    freer.join().unwrap();
    owner.join().unwrap();
}
