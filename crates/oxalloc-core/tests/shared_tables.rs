//! More threads than cores swap blocks through shared tables, so nearly every free is of
//! another thread's block, often one whose owner is not running: the shape in which
//! heaps reuse other heaps' waiting remote lists (`heap::foreign`). Every block carries
//! its size and a pattern made from its address, checked by whoever frees it, so a block
//! handed out twice, or reused while live, shows. Alone in its own binary: it reads the
//! process-wide count of reused blocks.

mod common;
use common::scale_down;
use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const THREADS: usize = 8;
const SLOTS: usize = 4096;

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn pattern(p: usize, i: usize) -> u8 {
    ((p >> 4) ^ (p >> 12) ^ i) as u8
}

fn make(state: &mut u64) -> usize {
    let size = 16 + (rng(state) % 497) as usize;
    let p = api::malloc(size);
    assert!(!p.is_null());
    let a = p as usize;
    // SAFETY: p has `size` bytes: the size in the first 8, then the pattern.
    unsafe {
        (p as *mut u64).write_unaligned(size as u64);
        for i in 8..size {
            *p.add(i) = pattern(a, i);
        }
    }
    a
}

fn check_and_free(a: usize) {
    let p = a as *mut u8;
    // SAFETY: `a` is a live block made by `make`, owned by the caller.
    unsafe {
        let size = (p as *const u64).read_unaligned() as usize;
        assert!((16..=512).contains(&size), "block {a:#x}: size word {size}");
        for i in 8..size {
            assert_eq!(*p.add(i), pattern(a, i), "block {a:#x} byte {i} changed");
        }
        api::free(p);
    }
}

#[test]
fn blocks_swapped_between_more_threads_than_cores_stay_intact() {
    let ops = 200_000 / scale_down();
    let tables: Arc<Vec<Vec<AtomicUsize>>> = Arc::new(
        (0..THREADS)
            .map(|_| (0..SLOTS).map(|_| AtomicUsize::new(0)).collect())
            .collect(),
    );
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let tables = tables.clone();
            thread::spawn(move || {
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                for n in 0..ops {
                    let table = &tables[(t + n / SLOTS) % THREADS];
                    let slot = &table[(rng(&mut state) as usize) % SLOTS];
                    let old = slot.swap(make(&mut state), Ordering::AcqRel);
                    if old != 0 {
                        check_and_free(old);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    for table in tables.iter() {
        for slot in table {
            let a = slot.swap(0, Ordering::AcqRel);
            if a != 0 {
                check_and_free(a);
            }
        }
    }
    // Every span comes back with exact sums (a wrong one is reported and aborts).
    api::malloc_trim(0);
    eprintln!(
        "blocks reused from other heaps' remote lists: {}",
        GLOBAL.remote_reused.load(Ordering::Relaxed)
    );
}
