//! A thread that starts takes the abandoned heap that has waited longest, so with
//! threads that come and go every heap comes round in turn (none waits at the back of
//! the list holding its spans). Alone in its own test binary: it counts on no other
//! thread exiting or starting meanwhile.

use oxalloc_core::{api, tls};

/// Runs a thread that allocates (so it takes a heap) and returns the heap it used.
fn heap_of_a_thread() -> usize {
    std::thread::spawn(|| {
        // SAFETY: a fresh block, freed once.
        unsafe { api::free(api::malloc(64)) };
        tls::heap() as usize
    })
    .join()
    .unwrap()
}

#[test]
fn threads_take_abandoned_heaps_in_the_order_they_were_left() {
    // Two threads alive at once get two heaps; they exit in a known order.
    let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<usize>();
    let older = std::thread::spawn(move || {
        // SAFETY: a fresh block, freed once.
        unsafe { api::free(api::malloc(64)) };
        ready_tx.send(tls::heap() as usize).unwrap();
        first_rx.recv().unwrap();
        tls::heap() as usize
    });
    let a = ready_rx.recv().unwrap();
    let b = heap_of_a_thread(); // another heap, abandoned first
    assert_ne!(a, b);
    first_tx.send(()).unwrap();
    assert_eq!(older.join().unwrap(), a); // abandoned second

    // The list now holds b, then a: the next threads take them in that order, and a
    // heap left again goes behind the others.
    assert_eq!(heap_of_a_thread(), b, "not the heap that waited longest");
    assert_eq!(heap_of_a_thread(), a);
    assert_eq!(heap_of_a_thread(), b);
}
