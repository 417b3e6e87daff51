//! A large block freed by another thread goes back to the heap that allocated it: a
//! producer that hands its buffers to a consumer gets their spans back for its next
//! buffers (from its own cache, not through the central pool, whose lock both threads
//! would otherwise take for every buffer).

use oxalloc_core::api;
use oxalloc_core::heap::RETURNED_MAX;
use oxalloc_core::tls;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Mutex};

/// The tests of this file run one at a time: `malloc_trim` in one would take the
/// spans handed back in the other.
static SERIAL: Mutex<()> = Mutex::new(());

const SIZE: usize = 128 << 10;
const COUNT: usize = 4;

#[test]
fn large_blocks_freed_by_another_thread_go_back_to_their_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (to_consumer, blocks) = mpsc::channel::<Vec<usize>>();
    let (to_producer, freed) = mpsc::channel::<()>();
    let (done, finish) = mpsc::channel::<()>();
    // The consumer stays alive (its heap in use) until the producer has allocated again.
    // Its own cache for the size has room: it churned blocks of the size itself (so it
    // keeps that many), then took them out again. Kept there, the producer's spans
    // would be out of the producer's reach.
    let consumer = std::thread::spawn(move || {
        let free_all = |v: Vec<usize>| {
            for p in v {
                // SAFETY: each block is live and freed once.
                unsafe { api::free(p as *mut u8) };
            }
        };
        for _ in 0..8 {
            free_all((0..COUNT).map(|_| api::malloc(SIZE) as usize).collect());
        }
        let held: Vec<usize> = (0..COUNT).map(|_| api::malloc(SIZE) as usize).collect();
        free_all(blocks.recv().unwrap());
        to_producer.send(()).unwrap();
        finish.recv().unwrap();
        free_all(held);
    });
    let first: Vec<usize> = (0..COUNT).map(|_| api::malloc(SIZE) as usize).collect();
    assert!(first.iter().all(|&p| p != 0));
    to_consumer.send(first.clone()).unwrap();
    freed.recv().unwrap();
    let again: Vec<usize> = (0..COUNT).map(|_| api::malloc(SIZE) as usize).collect();
    done.send(()).unwrap();
    consumer.join().unwrap();
    assert_eq!(
        again.iter().copied().collect::<BTreeSet<_>>(),
        first.iter().copied().collect::<BTreeSet<_>>(),
        "the producer's next large blocks are not the spans the consumer freed"
    );
    for p in again {
        // SAFETY: as above.
        unsafe { api::free(p as *mut u8) };
    }
}

/// Bytes handed back to this thread's heap and not taken yet.
fn returned_here() -> usize {
    // SAFETY: this thread's heap; the field is only accessed atomically.
    unsafe { AtomicUsize::from_ptr(&raw mut (*tls::heap()).returned_large_bytes).load(Relaxed) }
}

#[test]
fn an_idle_heap_holds_at_most_its_cap_of_handed_back_spans_until_a_trim() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Twice the cap, allocated here, freed by another thread while this one allocates
    // no more large blocks.
    let blocks: Vec<usize> = (0..2 * RETURNED_MAX / SIZE)
        .map(|_| api::malloc(SIZE) as usize)
        .collect();
    assert!(blocks.iter().all(|&p| p != 0));
    std::thread::spawn(move || {
        for p in blocks {
            // SAFETY: each block is live and freed once.
            unsafe { api::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    let held = returned_here();
    assert!(held > 0, "nothing was handed back");
    assert!(
        held <= RETURNED_MAX,
        "{held} bytes handed back, cap {RETURNED_MAX}"
    );
    // malloc_trim from any thread gives them back.
    std::thread::spawn(|| api::malloc_trim(0)).join().unwrap();
    assert_eq!(returned_here(), 0, "malloc_trim left handed-back spans");
}
