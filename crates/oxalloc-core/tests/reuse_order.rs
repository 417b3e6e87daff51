//! A heap reuses blocks freed into its other spans before it carves fresh pages of its
//! current span: freed memory is already resident, fresh pages would add to RSS. A span
//! that was full comes back once it has gathered a few free blocks (a sixteenth of the
//! span, at most 8 blocks: two of the 32 blocks of 2 KiB in a 64 KiB span), not at the
//! first: one block freed into a full span waits for more frees. And a
//! span that comes back with many free blocks hands them out by address, not in the
//! scrambled order they were freed in (unless the list starts in address order). Spans that come back from full queue up in the
//! order of their first free, so each waits a round and gathers more freed blocks.
//! Blocks other threads freed are handed out in the order they came back: sorting them
//! would read a line another core wrote per block. Nor are the free blocks of a span
//! mostly in use sorted: they are scattered among live ones.

use oxalloc_core::api;

/// Blocks of a 256-block (single-slice) span.
const SIZE_256: usize = 256;

/// Fills a span of 256-byte blocks, opens a second one (so the next mallocs have to
/// choose), and frees `n` blocks of the first in a scrambled order (97 is odd, so
/// `i * 97 mod 256` visits distinct blocks) with `free_them`. Returns the blocks, the
/// second span's block and the freed ones, in freeing order.
fn full_span_with_scrambled_frees(
    n: usize,
    free_them: impl FnOnce(Vec<usize>),
) -> (Vec<usize>, usize, Vec<usize>) {
    let first: Vec<usize> = (0..256).map(|_| api::malloc(SIZE_256) as usize).collect();
    let span = first[0] >> 16;
    assert!(first.iter().all(|&p| p >> 16 == span), "one full span");
    let next = api::malloc(SIZE_256) as usize; // opens a second span
    assert_ne!(next >> 16, span);
    let freed: Vec<usize> = (0..n).map(|i| first[i * 97 % 256]).collect();
    free_them(freed.clone());
    (first, next, freed)
}

/// Takes `n` blocks of 256 bytes and returns them with those that lie in `span`.
fn malloc_256(n: usize, span: usize) -> (Vec<usize>, Vec<usize>) {
    let again: Vec<usize> = (0..n).map(|_| api::malloc(SIZE_256) as usize).collect();
    let reused = again.iter().copied().filter(|&p| p >> 16 == span).collect();
    (again, reused)
}

/// Frees every block of [`full_span_with_scrambled_frees`] and of `again`, but the
/// `n` freed there (which `again` holds again).
fn free_rest(first: &[usize], n: usize, next: usize, again: Vec<usize>) {
    let kept = (0..256).filter(|i| !(0..n).any(|j| j * 97 % 256 == *i));
    for p in kept.map(|i| first[i]).chain([next]).chain(again) {
        // SAFETY: every block is live and freed once.
        unsafe { api::free(p as *mut u8) };
    }
}

/// Frees blocks on this thread.
fn free_here(blocks: Vec<usize>) {
    for p in blocks {
        // SAFETY: live blocks of this thread, each freed once.
        unsafe { api::free(p as *mut u8) };
    }
}

/// Blocks of 2 KiB: 32 in a 64 KiB span, carved [`CARVED`] at a time; a full span of
/// them comes back with its second free block.
const SIZE_2K: usize = 2048;
/// Blocks of [`SIZE_2K`] a carve links: four (the fewest a carve takes), two pages.
const CARVED: usize = 4;

/// Fills a span of 2 KiB blocks, then opens a second one and uses up the blocks it
/// carved (so the next malloc would carve fresh pages). Returns the two spans' blocks.
fn full_span_and_a_used_page() -> (Vec<usize>, Vec<usize>) {
    let first: Vec<usize> = (0..32).map(|_| api::malloc(SIZE_2K) as usize).collect();
    let page: Vec<usize> = (0..CARVED).map(|_| api::malloc(SIZE_2K) as usize).collect();
    assert!(first.iter().chain(&page).all(|&p| p != 0));
    assert!(
        first.iter().all(|&p| p >> 16 == first[0] >> 16),
        "one full span"
    );
    assert!(
        page.iter().all(|&p| p >> 16 != first[0] >> 16),
        "a second span"
    );
    (first, page)
}

#[test]
fn freed_blocks_in_other_spans_come_before_fresh_pages() {
    // A thread of its own, so its heap starts empty.
    std::thread::spawn(|| {
        let (first, page) = full_span_and_a_used_page();
        // SAFETY: live blocks of this thread, each freed once.
        unsafe {
            api::free(first[5] as *mut u8);
            api::free(first[9] as *mut u8);
        }
        let reused = [api::malloc(SIZE_2K) as usize, api::malloc(SIZE_2K) as usize];
        assert_eq!(
            reused,
            [first[9], first[5]],
            "the freed blocks should be reused (last freed first) before a fresh page is carved"
        );
        for p in first.iter().chain(&page) {
            // SAFETY: every block is live (the freed ones are live again) and freed once.
            unsafe { api::free(*p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn one_block_freed_into_a_full_span_waits_for_another() {
    std::thread::spawn(|| {
        let (first, page) = full_span_and_a_used_page();
        // SAFETY: a live block of this thread, freed once.
        unsafe { api::free(first[5] as *mut u8) };
        // The full span stays parked: a fresh carve of the second span comes first (and
        // is used up). (It came back at once before: a class whose spans are full of
        // long-lived blocks then switched spans at nearly every malloc and free.)
        let fresh: Vec<usize> = (0..CARVED).map(|_| api::malloc(SIZE_2K) as usize).collect();
        assert!(
            fresh.iter().all(|&f| f >> 16 == page[0] >> 16),
            "fresh blocks of the current span"
        );
        // A second free brings the span back, with both blocks.
        // SAFETY: as above.
        unsafe { api::free(first[9] as *mut u8) };
        let reused = [api::malloc(SIZE_2K) as usize, api::malloc(SIZE_2K) as usize];
        assert_eq!(reused, [first[9], first[5]]);
        for p in first.iter().chain(&page).chain(&fresh) {
            // SAFETY: every block is live (the freed ones are live again) and freed once.
            unsafe { api::free(*p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn a_span_with_many_free_blocks_hands_them_out_by_address() {
    std::thread::spawn(|| {
        // 200 blocks freed in a scrambled order: a LIFO free list would hand them back
        // in the reverse of that order.
        let (first, next, _) = full_span_with_scrambled_frees(200, free_here);
        let (again, reused) = malloc_256(215, first[0] >> 16);
        assert_eq!(reused.len(), 200, "every freed block is reused");
        assert!(
            reused.windows(2).all(|w| w[0] < w[1]),
            "freed blocks come back in address order"
        );
        free_rest(&first, 200, next, again);
    })
    .join()
    .unwrap();
}

#[test]
fn a_list_that_starts_in_address_order_is_not_sorted() {
    std::thread::spawn(|| {
        // The first 192 blocks freed scrambled, the last 8 from the highest address
        // down: the list then starts with 8 blocks in address order, which says it
        // needs no sorting pass (a program freeing what it allocated, last first).
        let order = std::cell::RefCell::new(Vec::new());
        let (first, next, _) = full_span_with_scrambled_frees(200, |mut freed| {
            freed[192..].sort_unstable_by(|a, b| b.cmp(a));
            order.borrow_mut().clone_from(&freed);
            free_here(freed);
        });
        let (again, reused) = malloc_256(215, first[0] >> 16);
        let mut lifo = order.into_inner();
        lifo.reverse();
        assert_eq!(reused, lifo, "handed out last freed first, unsorted");
        free_rest(&first, 200, next, again);
    })
    .join()
    .unwrap();
}

#[test]
fn spans_coming_back_from_full_are_used_in_the_order_they_came_back() {
    std::thread::spawn(|| {
        const SPANS: usize = 4;
        let full: Vec<usize> = (0..32 * SPANS)
            .map(|_| api::malloc(SIZE_2K) as usize)
            .collect();
        assert!(full.iter().all(|&p| p != 0));
        let mut spans: Vec<usize> = full.iter().map(|&p| p >> 16).collect();
        spans.dedup();
        assert_eq!(spans.len(), SPANS, "{SPANS} full spans");
        // Open a fifth span and use up the blocks it carved, so the next malloc has to
        // choose among the spans with free blocks.
        let fifth: Vec<usize> = (0..CARVED).map(|_| api::malloc(SIZE_2K) as usize).collect();
        assert!(fifth.iter().all(|&p| p != 0 && !spans.contains(&(p >> 16))));
        // Two blocks freed in each full span (each comes back with its second), the
        // spans not in address order: a list that takes the most recently refilled
        // span, or the lowest, would hand them back in another order.
        let mut order = spans.clone();
        order.swap(0, 2);
        order.swap(1, 3);
        for &s in &order {
            for p in full.iter().filter(|&&p| p >> 16 == s).take(2) {
                // SAFETY: live blocks of this thread, each freed once.
                unsafe { api::free(*p as *mut u8) };
            }
        }
        let again: Vec<usize> = (0..2 * SPANS)
            .map(|_| api::malloc(SIZE_2K) as usize)
            .collect();
        let again_spans: Vec<usize> = again.iter().map(|&p| p >> 16).collect();
        let expected: Vec<usize> = order.iter().flat_map(|&s| [s, s]).collect();
        assert_eq!(again_spans, expected, "first come back, first used");
        for p in full.iter().chain(&fifth) {
            // SAFETY: every block is live (the freed ones are live again) and freed once.
            unsafe { api::free(*p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn a_span_back_from_full_comes_before_one_set_aside_for_its_fresh_pages() {
    std::thread::spawn(|| {
        // Two full spans, A and B, then a third, C, with its first carve used up.
        let full: Vec<usize> = (0..64).map(|_| api::malloc(SIZE_2K) as usize).collect();
        let c: Vec<usize> = (0..CARVED).map(|_| api::malloc(SIZE_2K) as usize).collect();
        assert!(full.iter().chain(&c).all(|&p| p != 0));
        let (a, b) = (full[0] >> 16, full[32] >> 16);
        assert!(full[..32].iter().all(|&p| p >> 16 == a));
        assert!(full[32..].iter().all(|&p| p >> 16 == b));
        assert!(c.iter().all(|&p| p >> 16 != a && p >> 16 != b));
        // Two blocks freed in A: the next mallocs take them and set C aside (its
        // never-used pages wait).
        // SAFETY: live blocks of this thread, each freed once.
        unsafe {
            api::free(full[3] as *mut u8);
            api::free(full[4] as *mut u8);
        }
        assert_eq!(api::malloc(SIZE_2K) as usize, full[4]);
        assert_eq!(api::malloc(SIZE_2K) as usize, full[3]);
        // Two blocks freed in B: B queues in front of C, so its blocks come next, not a
        // fresh page of C.
        // SAFETY: as above.
        unsafe {
            api::free(full[40] as *mut u8);
            api::free(full[41] as *mut u8);
        }
        assert_eq!(
            api::malloc(SIZE_2K) as usize,
            full[41],
            "a freed block before a fresh page"
        );
        assert_eq!(api::malloc(SIZE_2K) as usize, full[40]);
        for p in full.iter().chain(&c) {
            // SAFETY: every block is live (the freed ones are live again) and freed once.
            unsafe { api::free(*p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn a_two_slice_span_with_many_free_blocks_hands_them_out_by_address() {
    std::thread::spawn(|| {
        const SIZE: usize = 1024; // 128 blocks per two-slice (128 KiB) span
        let first: Vec<usize> = (0..128).map(|_| api::malloc(SIZE) as usize).collect();
        let start = first[0];
        assert!(
            first.iter().all(|&p| p >= start && p < start + (128 << 10)),
            "one full span of 128 KiB"
        );
        let next = api::malloc(SIZE) as usize; // opens a second span
        assert!(next < start || next >= start + (128 << 10));
        // 100 blocks freed in a scrambled order (37 is odd: i * 37 mod 128 is distinct).
        let freed: Vec<usize> = (0..100).map(|i| first[i * 37 % 128]).collect();
        for &p in &freed {
            // SAFETY: live blocks of this thread, each freed once.
            unsafe { api::free(p as *mut u8) };
        }
        let again: Vec<usize> = (0..110).map(|_| api::malloc(SIZE) as usize).collect();
        let reused: Vec<usize> = again
            .iter()
            .copied()
            .filter(|&p| p >= start && p < start + (128 << 10))
            .collect();
        assert_eq!(reused.len(), 100, "every freed block is reused");
        assert!(
            reused.windows(2).all(|w| w[0] < w[1]),
            "freed blocks come back in address order"
        );
        let mut sorted = freed.clone();
        sorted.sort_unstable();
        assert_eq!(reused, sorted, "the same blocks");
        let kept = (0..128).filter(|i| !(0..100).any(|j| j * 37 % 128 == *i));
        for p in kept.map(|i| first[i]).chain([next]).chain(again) {
            // SAFETY: every block is live and freed once.
            unsafe { api::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn blocks_other_threads_freed_are_not_sorted() {
    std::thread::spawn(|| {
        // The same scrambled 200 blocks, freed by a thread that allocates nothing (so it
        // keeps none for itself): they come home on the span's remote list, all of them
        // by the time the thread has exited.
        let (first, next, freed) = full_span_with_scrambled_frees(200, |blocks| {
            std::thread::spawn(move || free_here(blocks))
                .join()
                .unwrap()
        });
        let (again, reused) = malloc_256(215, first[0] >> 16);
        assert_eq!(reused.len(), 200, "every freed block is reused");
        assert!(
            !reused.windows(2).all(|w| w[0] < w[1]),
            "blocks freed by another thread come back in the order they were returned"
        );
        let mut sorted = reused.clone();
        sorted.sort_unstable();
        let mut expected = freed;
        expected.sort_unstable();
        assert_eq!(sorted, expected, "the same blocks");
        free_rest(&first, 200, next, again);
    })
    .join()
    .unwrap();
}

#[test]
fn a_span_mostly_in_use_hands_its_free_blocks_out_as_freed() {
    std::thread::spawn(|| {
        // 80 blocks: more than the 64 worth sorting, less than half the span.
        let (first, next, freed) = full_span_with_scrambled_frees(80, free_here);
        let (again, reused) = malloc_256(95, first[0] >> 16);
        assert_eq!(reused.len(), 80, "every freed block is reused");
        let lifo: Vec<usize> = freed.iter().rev().copied().collect();
        assert_eq!(reused, lifo, "last freed, first handed out");
        free_rest(&first, 80, next, again);
    })
    .join()
    .unwrap();
}
