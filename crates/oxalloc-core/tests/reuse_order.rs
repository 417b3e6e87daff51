//! A heap reuses blocks freed into its other spans before it carves fresh pages of its
//! current span: freed memory is already resident, fresh pages would add to RSS. And a
//! span that comes back with many free blocks hands them out by address, not in the
//! scrambled order they were freed in. Among spans with free blocks, the lowest comes
//! first, so allocation stays packed and high spans can empty.

use oxalloc_core::api;

#[test]
fn freed_blocks_in_other_spans_come_before_fresh_pages() {
    // A thread of its own, so its heap starts empty.
    std::thread::spawn(|| {
        const SIZE: usize = 2048; // 32 blocks per 64 KiB span, carved 2 per 4 KiB page
        let first: Vec<usize> = (0..32).map(|_| api::malloc(SIZE) as usize).collect();
        // The first span is full: the next block opens a second span (and carves a page
        // of it: this block and one more).
        let b0 = api::malloc(SIZE) as usize;
        assert!(first.iter().all(|&p| p != 0) && b0 != 0);
        assert!(
            first.iter().all(|&p| p >> 16 != b0 >> 16),
            "the 33rd block is in a new span"
        );
        // SAFETY: a live block of this thread, freed once.
        unsafe { api::free(first[5] as *mut u8) };
        let b1 = api::malloc(SIZE) as usize; // the rest of the carved page
        assert_eq!(b1 >> 16, b0 >> 16);
        let reused = api::malloc(SIZE) as usize;
        assert_eq!(
            reused, first[5],
            "the freed block should be reused before a fresh page is carved"
        );
        for p in first.iter().chain([&b0, &b1]) {
            // SAFETY: every block is live and freed once (first[5] is live again as `reused`).
            unsafe { api::free(*p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn a_span_with_many_free_blocks_hands_them_out_by_address() {
    std::thread::spawn(|| {
        const SIZE: usize = 256; // 256 blocks per 64 KiB span
        let first: Vec<usize> = (0..256).map(|_| api::malloc(SIZE) as usize).collect();
        let span = first[0] >> 16;
        assert!(first.iter().all(|&p| p >> 16 == span), "one full span");
        let next = api::malloc(SIZE) as usize; // opens a second span
        assert_ne!(next >> 16, span);
        // Free 200 blocks of the full span in a scrambled order (97 is odd, so i * 97
        // mod 256 visits distinct blocks); a LIFO free list would hand them back in the
        // reverse of that order.
        let freed: Vec<usize> = (0..200).map(|i| first[i * 97 % 256]).collect();
        for &p in &freed {
            // SAFETY: live blocks of this thread, each freed once.
            unsafe { api::free(p as *mut u8) };
        }
        let again: Vec<usize> = (0..215).map(|_| api::malloc(SIZE) as usize).collect();
        let reused: Vec<usize> = again.iter().copied().filter(|&p| p >> 16 == span).collect();
        assert_eq!(reused.len(), 200, "every freed block is reused");
        assert!(
            reused.windows(2).all(|w| w[0] < w[1]),
            "freed blocks come back in address order"
        );
        let kept = (0..256).filter(|i| !(0..200).any(|j| j * 97 % 256 == *i));
        for p in kept.map(|i| first[i]).chain([next]).chain(again) {
            // SAFETY: every block is live and freed once.
            unsafe { api::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn spans_with_free_blocks_are_used_lowest_address_first() {
    std::thread::spawn(|| {
        const SIZE: usize = 2048; // 32 blocks per 64 KiB span, carved 2 per 4 KiB page
        const SPANS: usize = 4;
        let full: Vec<usize> = (0..32 * SPANS)
            .map(|_| api::malloc(SIZE) as usize)
            .collect();
        assert!(full.iter().all(|&p| p != 0));
        let mut spans: Vec<usize> = full.iter().map(|&p| p >> 16).collect();
        spans.dedup();
        assert_eq!(spans.len(), SPANS, "{SPANS} full spans");
        // Open a fifth span and use up the page it carved, so the next malloc has to
        // choose among the spans with free blocks.
        let fifth: Vec<usize> = (0..2).map(|_| api::malloc(SIZE) as usize).collect();
        assert!(fifth.iter().all(|&p| p != 0 && !spans.contains(&(p >> 16))));
        // One block freed in each full span, lowest address first: a list that takes
        // the most recently refilled span would hand them back highest first.
        let mut one_per_span: Vec<usize> = spans
            .iter()
            .map(|&s| *full.iter().find(|&&p| p >> 16 == s).unwrap())
            .collect();
        one_per_span.sort_unstable();
        for &p in &one_per_span {
            // SAFETY: live blocks of this thread, each freed once.
            unsafe { api::free(p as *mut u8) };
        }
        let again: Vec<usize> = (0..SPANS).map(|_| api::malloc(SIZE) as usize).collect();
        assert_eq!(again, one_per_span, "lowest span first");
        for p in full.iter().chain(&fifth) {
            // SAFETY: every block is live (the freed ones are live again) and freed once.
            unsafe { api::free(*p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}
