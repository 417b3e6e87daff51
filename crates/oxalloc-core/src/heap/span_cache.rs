//! A heap's cache of whole spans, by slice count, kept for its next spans of that count
//! instead of going back to the central pool: the spans of the large blocks its thread
//! frees (`Heap::large`, see `large`) and the small spans it empties (`Heap::emptied`,
//! see `free::keep_or_release`). How many a count keeps follows its churn: a count
//! that takes a span from the pool after one was refused for lack of room keeps one
//! more from then on ([`take`]); what sat unused through a whole window goes back
//! ([`roll_window`]), and everything at thread exit and `malloc_trim` ([`release_all`]).
//!
//! A cached small span stays its heap's, its blocks off the grid (`Span::clear_grid`),
//! so a free of one of them is reported as a double free; it is set up for its next
//! class when taken. A span that a racing free from another thread (of a block freed
//! twice) put on its heap's remote stack meanwhile is left out ([`may_release`]), for
//! the drain to report.
#![allow(unsafe_code)]

use super::*;
use core::sync::atomic::AtomicUsize;

/// Slice counts a cache keeps: 1 to 8 (blocks up to 512 KiB); indexed by count - 1.
/// Bigger spans go to the pool and come from it: a block that big costs its user more
/// than the lock (writing it, or faulting it in), and kept, each held memory other
/// sizes could use. For the large blocks', all 16 counts kept: `random_sizes.c 2
/// 600000 524288` the same (0.13 s; 0.38-0.40 without the cache), peak RSS of `large`
/// 159.8 against 157.5 MiB (154.3 without), of `power-law/t8` 22.1 against 21.8
/// (21.2); up to 4 (256 KiB, as tcmalloc's thread cache): that `random_sizes.c` run
/// 0.26-0.27 s.
pub(super) const KEPT_COUNTS: usize = 8;

/// Bytes of spans a cache keeps per slice count, at most (at least one span). For the
/// large blocks' cache: with 1 MiB (and 2 MiB in all) `random_sizes.c` (see `large`) ran
/// 0.11-0.12 s, and the suite's `random-sizes/t2` 0.266 s against 0.247 (7 alternating
/// runs); `large` peaked 2% lower.
const KEEP_BYTES: usize = 2 << 20;

/// Bytes of spans a cache keeps in all, at most: tcmalloc's default cap on one thread's
/// cache. For the large blocks': with 1 MiB, `random_sizes.c` lost half the gain (0.48
/// s against 0.24 in the same slow hour). For the emptied spans': with half these
/// limits, the glibc-simple-like rounds of `free::keep_or_release` took 118K of
/// their 166K spans from the pool, with these 47K; the suite's rows the same.
pub(super) const KEEP_TOTAL: usize = 4 << 20;

/// Spans kept by slice count, with the limits that follow their churn.
#[repr(C)]
pub struct SpanCache {
    /// Per slice count: the spans kept, linked by `next`.
    spans: [*mut Span; KEPT_COUNTS],
    /// Per slice count: how many `spans` holds.
    len: [u8; KEPT_COUNTS],
    /// Per slice count: how many it may hold (see [`take`]).
    limit: [u8; KEPT_COUNTS],
    /// Bit per slice count: a span was given back for lack of room since the count
    /// last took one from the pool.
    refused: u8,
    /// Bit per slice count: a span of the count was taken in the current window.
    recent: u8,
    /// Per slice count: the fewest spans `spans` held in the current window.
    low: [u8; KEPT_COUNTS],
    /// Bytes of the spans kept (written by the owner only, atomically: reports read
    /// it).
    bytes: usize,
}

impl SpanCache {
    /// No spans kept, none wanted (all zeros: a heap starts zeroed).
    pub const EMPTY: SpanCache = SpanCache {
        spans: [ptr::null_mut(); KEPT_COUNTS],
        len: [0; KEPT_COUNTS],
        limit: [0; KEPT_COUNTS],
        refused: 0,
        recent: 0,
        low: [0; KEPT_COUNTS],
        bytes: 0,
    };

    /// Spans kept, of every slice count.
    pub fn spans_kept(&self) -> usize {
        self.len.iter().map(|&n| n as usize).sum()
    }

    /// Bytes of the spans kept (free memory, counted as cached, not in use), read from
    /// any thread.
    ///
    /// # Safety
    /// `cache` is a heap's cache (heaps are never freed).
    pub unsafe fn kept_bytes(cache: *mut SpanCache) -> usize {
        // SAFETY: caller's contract; the owner writes the field atomically.
        unsafe { AtomicUsize::from_ptr(&raw mut (*cache).bytes) }.load(Ordering::Relaxed)
    }

    /// Adds `delta` (wrapping: a negative one as its two's complement) to `bytes`; the
    /// owner's write, a plain load and store.
    ///
    /// # Safety
    /// `cache` is the calling thread's heap's cache.
    unsafe fn add_bytes(cache: *mut SpanCache, delta: usize) {
        // SAFETY: caller's contract; only this thread writes the field.
        let b = unsafe { AtomicUsize::from_ptr(&raw mut (*cache).bytes) };
        b.store(
            b.load(Ordering::Relaxed).wrapping_add(delta),
            Ordering::Relaxed,
        );
    }
}

/// Takes a kept span of `slices` slices (null if none) and notes that the count is
/// taken. If the count has none but gave one back for lack of room since it last took
/// one from the pool, it keeps one more from now on (up to [`KEEP_BYTES`]): the limit
/// follows the swings of the count's spans in use, as `retain::grow_limit`.
///
/// # Safety
/// `cache` is the calling thread's heap's; `slices` is 1..=KEPT_COUNTS.
pub(super) unsafe fn take(cache: *mut SpanCache, slices: usize) -> *mut Span {
    // SAFETY: caller's contract.
    unsafe {
        let i = slices - 1;
        let bit = 1u8 << i;
        (*cache).recent |= bit;
        loop {
            let span = (*cache).spans[i];
            if span.is_null() {
                if (*cache).refused & bit != 0 {
                    (*cache).refused &= !bit;
                    let max = (KEEP_BYTES / (slices * SLICE_SIZE)).max(1) as u8;
                    (*cache).limit[i] = ((*cache).limit[i] + 1).min(max);
                }
                return span;
            }
            (*cache).spans[i] = (*span).next;
            (*cache).len[i] -= 1;
            (*cache).low[i] = (*cache).low[i].min((*cache).len[i]);
            SpanCache::add_bytes(cache, (slices * SLICE_SIZE).wrapping_neg());
            (*span).next = ptr::null_mut();
            if may_release(span) {
                return span;
            }
        }
    }
}

/// Keeps `span` (ours alone: a claimed large span, or an emptied small span in no
/// list) if its slice count has room. Returns whether it did.
///
/// # Safety
/// `cache` is the calling thread's heap's; `span` as above.
pub(super) unsafe fn keep(cache: *mut SpanCache, span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let count = (*span).slice_count as usize;
        if count > KEPT_COUNTS {
            return false;
        }
        let i = count - 1;
        let bit = 1u8 << i;
        let bytes = (i + 1) * SLICE_SIZE;
        if (*cache).len[i] >= (*cache).limit[i] || SpanCache::kept_bytes(cache) + bytes > KEEP_TOTAL
        {
            // Full: if the count takes a span from the pool before one of these is
            // used, it needed more (`take`).
            (*cache).refused |= bit;
            return false;
        }
        // Its blocks were written: its memory no longer reads as zero.
        (*span).zero = false;
        (*span).next = (*cache).spans[i];
        (*cache).spans[i] = span;
        (*cache).len[i] += 1;
        SpanCache::add_bytes(cache, bytes);
        true
    }
}

/// Whether a kept span may be used again or given back: not a small span that a free
/// from another thread (of a block freed twice) put on its heap's remote stack, which
/// the drain reports.
///
/// # Safety
/// `span` was kept by the calling thread's heap.
unsafe fn may_release(span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe { (*span).kind != SpanKind::Small || remote::may_release(span) }
}

/// Moves the window on: gives back, of each count, the spans that stayed kept through
/// the whole window (its low-water mark: more than its churn needed), and halves the
/// limit of the counts not taken in it.
///
/// # Safety
/// `cache` is the calling thread's heap's (or one held exclusively).
pub(super) unsafe fn roll_window(cache: *mut SpanCache) {
    // SAFETY: caller's contract.
    unsafe {
        for i in 0..KEPT_COUNTS {
            if (*cache).recent & (1 << i) == 0 {
                (*cache).limit[i] /= 2;
            }
        }
        (*cache).recent = 0;
        (*cache).refused = 0;
        release(cache, (*cache).low);
        (*cache).low = (*cache).len;
    }
}

/// Gives back, of each count, as many of its kept spans as `counts` says (those kept
/// longest).
///
/// # Safety
/// `cache` is the calling thread's heap's (or one held exclusively).
pub(super) unsafe fn release(cache: *mut SpanCache, counts: [u8; KEPT_COUNTS]) {
    // SAFETY: caller's contract; kept spans are ours, in no other list.
    unsafe {
        let mut central = None;
        for (i, &n) in counts.iter().enumerate() {
            let n = n.min((*cache).len[i]);
            if n == 0 {
                continue;
            }
            // The list runs from the latest kept: keep its first `len - n`.
            let keep = (*cache).len[i] - n;
            let mut link = &raw mut (*cache).spans[i];
            for _ in 0..keep {
                link = &raw mut (**link).next;
            }
            let mut span = *link;
            *link = ptr::null_mut();
            (*cache).len[i] = keep;
            SpanCache::add_bytes(cache, (n as usize * (i + 1) * SLICE_SIZE).wrapping_neg());
            let central = central.get_or_insert_with(|| {
                // Before the lock: starting the thread allocates.
                crate::purger::ensure_started();
                CENTRAL.lock()
            });
            while !span.is_null() {
                let next = (*span).next;
                (*span).next = ptr::null_mut();
                if may_release(span) {
                    // A small span's, as `free::release_span` leaves them.
                    (*span).owner = ptr::null_mut();
                    (*span).free = ptr::null_mut();
                    central.give(span);
                }
                span = next;
            }
        }
    }
}

/// Gives back every kept span (thread exit, trim), and forgets the limits: the next
/// thread to adopt the heap starts from none, as a new one, rather than keep spans for
/// the churn of a thread that is gone (`calloc-churn/t4`, threads spawned afresh each
/// round: peak RSS 34.0 -> 37.6 MiB with the limits kept, 5 alternating runs).
///
/// # Safety
/// `cache` is the calling thread's heap's (or one held exclusively).
pub(super) unsafe fn release_all(cache: *mut SpanCache) {
    // SAFETY: caller's contract.
    unsafe {
        release(cache, [u8::MAX; KEPT_COUNTS]);
        (*cache).limit = [0; KEPT_COUNTS];
        (*cache).refused = 0;
    }
}
