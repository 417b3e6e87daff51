//! A span that a heap keeps with a few blocks carved gives back the pages past them that
//! an earlier user of the span wrote: at a thread exit once the span has carved nothing
//! for a purge delay, and at `malloc_trim`. Alone in its own test binary: it sets
//! options and reads the process-wide counters.
#![cfg(target_os = "linux")]

use oxalloc_core::api;
use oxalloc_core::options;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;

/// Blocks of the earlier use: 16 to a one-slice span (class 4096).
const EARLIER: usize = 4000;
/// The blocks kept later: classes 2048 and 3072, also one slice each (a class of their
/// own each, so the second is not carved from the first one's span).
const LATER: usize = 2000;
const LATER_TOO: usize = 3000;
const SLICE: usize = 64 << 10;
const PAGE: usize = 4096;
/// Past the first carve of either class (four blocks: 12 KiB at most), with a page to
/// spare.
const TAIL_OFFSET: usize = 16 << 10;

/// Resident pages of `[from, to)` (page aligned).
fn resident_pages(from: usize, to: usize) -> usize {
    let mut vec = vec![0u8; (to - from) / PAGE];
    // SAFETY: the range lies in a segment of ours, mapped; `vec` has a byte per page.
    let rc = unsafe { libc::mincore(from as *mut libc::c_void, to - from, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore failed");
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap()
}

/// A thread writes whole spans of `EARLIER` blocks and frees them (the spans go back
/// to the central pool dirty); the next thread takes one of them for a single block of
/// `size` bytes and exits keeping it. Returns that block and the tail of its span.
fn keep_a_block_in_a_written_span(size: usize) -> (usize, usize, usize) {
    on_thread(|| {
        let blocks: Vec<usize> = (0..64)
            .map(|i| {
                let p = api::malloc(EARLIER);
                assert!(!p.is_null());
                // SAFETY: p has EARLIER bytes.
                unsafe { std::ptr::write_bytes(p, i as u8 | 1, EARLIER) };
                p as usize
            })
            .collect();
        for p in blocks {
            // SAFETY: live, freed once.
            unsafe { api::free(p as *mut u8) };
        }
    });
    let p = on_thread(move || {
        let p = api::malloc(size);
        assert!(!p.is_null());
        // SAFETY: p has `size` bytes.
        unsafe { std::ptr::write_bytes(p, 7, size) };
        p as usize
    });
    let span = p & !(SLICE - 1);
    (p, span + TAIL_OFFSET, span + SLICE)
}

/// A thread that allocates (so it adopts the abandoned heap) and exits.
fn pass_through() {
    on_thread(|| {
        // SAFETY: a fresh block, freed once.
        unsafe { api::free(api::malloc(16)) };
    });
}

#[test]
fn written_tails_of_kept_spans_go_back_when_idle() {
    options::PURGE_DELAY_MS.set(60_000);
    let (p, from, to) = keep_a_block_in_a_written_span(LATER);
    let before = resident_pages(from, to);
    assert!(
        before >= (to - from) / PAGE / 2,
        "the kept block's span was not one the earlier blocks wrote ({before} pages \
         resident past its first carve): nothing is tested"
    );

    // Exits within the purge delay keep the tail: the next thread may carve it.
    pass_through();
    pass_through();
    assert_eq!(
        resident_pages(from, to),
        before,
        "a tail was purged before its delay"
    );

    // Past the delay (0 here), the next exit gives it back; the kept block is intact.
    let purged = GLOBAL.purged_bytes.load(Relaxed);
    options::PURGE_DELAY_MS.set(0);
    pass_through();
    assert_eq!(
        resident_pages(from, to),
        0,
        "the idle tail is still resident"
    );
    assert!(GLOBAL.purged_bytes.load(Relaxed) >= purged + (to - from) as u64);
    // SAFETY: p is live with LATER bytes.
    let kept = unsafe { std::slice::from_raw_parts(p as *const u8, LATER) };
    assert!(
        kept.iter().all(|&b| b == 7),
        "the purge reached the kept block"
    );

    // `malloc_trim` gives a tail back at once, whatever the delay.
    options::PURGE_DELAY_MS.set(60_000);
    let (q, from, to) = keep_a_block_in_a_written_span(LATER_TOO);
    assert!(resident_pages(from, to) >= (to - from) / PAGE / 2);
    api::malloc_trim(0);
    assert_eq!(
        resident_pages(from, to),
        0,
        "malloc_trim left a written tail resident"
    );

    for b in [p, q] {
        // SAFETY: live, freed once (remote frees into the abandoned heap).
        unsafe { api::free(b as *mut u8) };
    }
}
