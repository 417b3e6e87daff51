//! A heap whose live blocks of a class fill several spans gets longer spans for that
//! class (classes above 1 KiB up to 16 KiB): fewer spans, so more of its frees land in
//! the current span, while a class with a few live blocks keeps short spans.

use oxalloc_core::api;
use oxalloc_core::segment::{Segment, SEGMENT_MAP};

/// The slice count of the span holding `p`, a live small block.
fn span_slices(p: *mut u8) -> usize {
    let seg = SEGMENT_MAP
        .normal_segment(p as usize)
        .expect("a small block");
    // SAFETY: the map says the segment is live and `p`, a live block, lies in it.
    unsafe { (*Segment::span_of(seg, p as usize)).slice_count as usize }
}

#[test]
fn a_class_that_needs_more_spans_gets_longer_ones() {
    // A thread of its own, so its heap holds no 8 KiB span yet.
    std::thread::spawn(|| {
        const SIZE: usize = 8192;
        let blocks: Vec<*mut u8> = (0..16 + 32 + 64 + 64).map(|_| api::malloc(SIZE)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        let slices: Vec<usize> = blocks.iter().map(|&p| span_slices(p)).collect();
        // 16 blocks of 8 KiB in 2 slices, then 32 in 4, then 64 in 8 (the most).
        assert!(slices[..16].iter().all(|&n| n == 2), "{slices:?}");
        assert!(slices[16..48].iter().all(|&n| n == 4), "{slices:?}");
        assert!(slices[48..].iter().all(|&n| n == 8), "{slices:?}");
        for p in blocks {
            // SAFETY: each block is live and freed once.
            unsafe { api::free(p) };
        }
        // Every span was given back (an empty span that is not current is released), so
        // the heap holds one again at most: a new block's span is short or the kept
        // current one.
        let p = api::malloc(SIZE);
        assert!(span_slices(p) <= 8);
        // SAFETY: live, freed once.
        unsafe { api::free(p) };
    })
    .join()
    .unwrap();
}

#[test]
fn a_class_with_few_live_blocks_keeps_short_spans() {
    std::thread::spawn(|| {
        const SIZE: usize = 4096;
        // Ten rounds of 16 blocks (one span's worth), all freed each round.
        for _ in 0..10 {
            let blocks: Vec<*mut u8> = (0..16).map(|_| api::malloc(SIZE)).collect();
            assert!(blocks.iter().all(|&p| span_slices(p) == 1));
            for p in blocks {
                // SAFETY: each block is live and freed once.
                unsafe { api::free(p) };
            }
        }
    })
    .join()
    .unwrap();
}
