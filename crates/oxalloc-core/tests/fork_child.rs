//! A fork child never adopts the heap of a thread that did not survive the fork: that
//! heap was copied at whatever instruction its thread was at, maybe mid-update (a block
//! on a free list not yet counted down), and a thread of the child reusing it reported
//! a double free the program never did (2 of 3000 forks of four allocating threads).
//! The blocks of such a heap can still be freed in the child. Alone in its own test
//! binary: it forks, and no other test's threads may hold heaps.

#![cfg(unix)]

use oxalloc_core::{api, tls};
use std::sync::mpsc;

#[test]
fn fork_child_leaves_the_heaps_of_other_threads_alone() {
    // A thread that allocates (and so holds a heap) and stays alive across the fork.
    let (to_main, from_thread) = mpsc::channel::<(usize, Vec<usize>)>();
    let (to_thread, from_main) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let blocks: Vec<usize> = (0..100).map(|i| api::malloc(16 + i * 8) as usize).collect();
        to_main.send((tls::heap() as usize, blocks)).unwrap();
        from_main.recv().unwrap();
    });
    let (worker_heap, blocks) = from_thread.recv().unwrap();
    assert!(blocks.iter().all(|&p| p != 0));

    // SAFETY: the child only allocates, joins its own thread and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(|| {
            let heap_of_new_thread = std::thread::spawn(|| {
                let p = api::malloc(64);
                // SAFETY: a live block, freed once.
                unsafe { api::free(p) };
                tls::heap() as usize
            })
            .join()
            .unwrap();
            for &p in &blocks {
                // SAFETY: live blocks of the worker's heap, freed once.
                unsafe { api::free(p as *mut u8) };
            }
            if heap_of_new_thread == worker_heap {
                1
            } else {
                0
            }
        })
        .unwrap_or(2);
        // SAFETY: ends the child without running the test harness's exit.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    to_thread.send(()).unwrap();
    worker.join().unwrap();
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    match libc::WEXITSTATUS(status) {
        0 => {}
        1 => panic!("a new thread of the fork child took the heap of a thread that is gone"),
        c => panic!("the fork child failed (exit {c})"),
    }
}
