//! A heap reuses blocks freed into its other spans before it carves fresh pages of its
//! current span: freed memory is already resident, fresh pages would add to RSS.

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
