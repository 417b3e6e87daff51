//! Multi-threaded stress: many threads, random sizes, blocks freed by other threads
//! through channels, threads created and exiting in a loop. Every block carries a
//! pattern that is checked by whoever frees it. (Producer/consumer growth is measured
//! in `producer_consumer.rs`, a binary of its own.)

mod common;
use common::scale_down;
use oxalloc_core::api;
use std::sync::mpsc;
use std::thread;

struct Block(*mut u8, usize, u8);
// SAFETY: a block is owned by whoever holds the message; the allocator allows freeing
// from any thread.
unsafe impl Send for Block {}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn make(state: &mut u64) -> Block {
    let r = rng(state);
    let size = match r % 100 {
        0 => (r >> 8) as usize % (4 << 20),
        1..=5 => (r >> 8) as usize % 200_000,
        _ => (r >> 8) as usize % 2048,
    };
    let p = api::malloc(size);
    assert!(!p.is_null());
    let tag = (r >> 32) as u8;
    // SAFETY: p has `size` bytes.
    unsafe { std::ptr::write_bytes(p, tag, size) };
    Block(p, size, tag)
}

fn check_and_free(b: Block) {
    let Block(p, size, tag) = b;
    // SAFETY: the block is live and holds `size` bytes of `tag`.
    let s = unsafe { std::slice::from_raw_parts(p, size) };
    assert!(
        s.iter().all(|&x| x == tag),
        "block {p:p} ({size} bytes) corrupted"
    );
    // SAFETY: live block, freed once.
    unsafe { api::free(p) };
}

fn rounds() -> usize {
    let n = if cfg!(debug_assertions) { 6 } else { 30 };
    (n / scale_down()).max(2)
}

#[test]
fn cross_thread_frees_with_thread_churn() {
    const THREADS: usize = 8;
    for round in 0..rounds() {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(i, rx)| {
                let next = senders[(i + 1) % THREADS].clone();
                thread::spawn(move || {
                    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ ((round * THREADS + i) as u64 + 1);
                    let mut mine = Vec::new();
                    for n in 0..2000 {
                        let b = make(&mut state);
                        if n % 3 == 0 {
                            let _ = next.send(b);
                        } else {
                            mine.push(b);
                        }
                        if mine.len() > 100 {
                            let k = rng(&mut state) as usize % mine.len();
                            check_and_free(mine.swap_remove(k));
                        }
                        while let Ok(b) = rx.try_recv() {
                            check_and_free(b);
                        }
                    }
                    drop(next);
                    for b in mine {
                        check_and_free(b);
                    }
                    rx
                })
            })
            .collect();
        drop(senders);
        let rxs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for rx in rxs {
            while let Ok(b) = rx.try_recv() {
                check_and_free(b);
            }
        }
    }
}
