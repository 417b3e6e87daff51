//! Each segment serves one heap first: a span one thread gave back is not handed to
//! another thread that has room in its own segments (its lines would have to come
//! from the first thread's core; see `Central::in_home`). Alone in its own test
//! binary: it depends on which thread mapped which segment.

use oxalloc_core::api;
use oxalloc_core::segment::SEGMENT_SIZE;
use std::sync::mpsc;
use std::thread;

const BLOCK: usize = 256 << 10;

fn segment(p: usize) -> usize {
    p & !(SEGMENT_SIZE - 1)
}

fn alloc() -> usize {
    let p = api::malloc(BLOCK);
    assert!(!p.is_null());
    // SAFETY: p has BLOCK bytes.
    unsafe { std::ptr::write_bytes(p, 0xA5, BLOCK) };
    p as usize
}

#[test]
fn a_span_freed_by_one_thread_goes_back_to_it_not_to_a_thread_with_room_of_its_own() {
    // Thread A maps the first segment of large blocks.
    let a_block = alloc();
    let a_segment = segment(a_block);
    let (to_b, from_a) = mpsc::channel::<usize>();
    let (to_a, from_b) = mpsc::channel::<usize>();
    let b = thread::spawn(move || {
        // B allocates until it has a segment of its own (it takes room in A's segment
        // first, while there is some), then gives back what it took in A's.
        let mut taken = Vec::new();
        let home = loop {
            let p = alloc();
            if segment(p) != a_segment {
                break segment(p);
            }
            taken.push(p);
        };
        for p in taken {
            // SAFETY: live blocks of ours, freed once.
            unsafe { api::free(p as *mut u8) };
        }
        to_a.send(home).unwrap();
        // A has freed its block now: B's next large block comes from its own segment.
        let freed = from_a.recv().unwrap();
        let p = alloc();
        assert_ne!(p, freed, "B got the span A just freed");
        assert_eq!(segment(p), home, "B's block is not in its own segment");
    });
    let b_home = from_b.recv().unwrap();
    assert_ne!(b_home, a_segment);
    // SAFETY: A's live block, freed once.
    unsafe { api::free(a_block as *mut u8) };
    to_b.send(a_block).unwrap();
    b.join().unwrap();
    // A's next block reuses its own segment.
    assert_eq!(segment(alloc()), a_segment);
}
