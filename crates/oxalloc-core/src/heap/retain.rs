//! Spans kept when they empty: a span of a class with few blocks a span, which the
//! heap allocates lately (`recent`), goes on its bin's list of retained spans when its
//! last block is freed, instead of back to the central pool, and the class's next span
//! comes from there before the pool. How many a class keeps follows its churn
//! ([`grow_limit`]), up to [`RETAIN_BYTES`].
//!
//! Why: spans of the classes above 16 KiB hold one to four blocks, so a program that
//! replaces such blocks at random empties a span on most frees and needs a new one on
//! most mallocs: each a trip through the pool's lock, its page-return books and the
//! clock. `examples/programs/random_sizes.c 1 3000000 65536` (1 B-64 KiB requests, each
//! replacing a random one of 1024 live blocks): 0.42-0.47 s, tcmalloc 0.05, mimalloc
//! 0.13-0.14; with this 0.20-0.21 s. mimalloc's pages go back to segments its thread
//! owns, without a lock; tcmalloc's thread cache keeps objects up to 256 KiB.
//!
//! The spans go back when the class stops being allocated (`recent::note_slow`, at
//! most two windows of slow-path calls later; its limit halves then), and at every
//! collection (thread exit, trim): a thread that frees all it had after a burst keeps
//! none of them.
#![allow(unsafe_code)]

use super::*;

/// Bytes of emptied spans a heap keeps per class, at most (at least one span). With a
/// fixed 256 KiB instead of the adaptive limit, `random_sizes.c` above ran 0.26 s; with
/// a fixed 1 MiB, 0.20 s but `realloc` peaked 10% higher and `realloc-threads/t2` 14%
/// (the spans its classes kept at the end of each round of growth).
const RETAIN_BYTES: usize = 1 << 20;

/// The class's limit on retained spans, in spans.
///
/// # Safety
/// `heap` is a real heap and `c` a valid class.
#[inline]
unsafe fn limit(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract: the index is below NUM_CLASSES.
    unsafe { (&raw mut (*heap).retain_limit).cast::<u8>().add(c.index()) }
}

/// How many spans the class's `Bin::retained` holds.
///
/// # Safety
/// `heap` is a real heap and `c` a valid class.
#[inline]
unsafe fn retained_len(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract: the index is below NUM_CLASSES.
    unsafe { (&raw mut (*heap).retained_len).cast::<u8>().add(c.index()) }
}

/// The class is about to take a fresh span from the central pool: if it gave one back
/// since its last take for lack of room among its retained spans, it keeps one more
/// from now on (up to [`RETAIN_BYTES`]). The limit follows what the class's churn
/// needs: a class whose blocks are replaced at random gives back and takes spans in
/// turn, in runs as long as the swings of its count of live blocks; a class that only
/// empties spans at the end of a phase keeps few.
///
/// # Safety
/// `heap` is the calling thread's heap and `c` a valid class.
pub(super) unsafe fn grow_limit(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract.
    unsafe {
        let bit = 1u64 << c.0;
        if (*heap).retain_refused & bit != 0 {
            (*heap).retain_refused &= !bit;
            let max = (RETAIN_BYTES / (c.span_slices() * SLICE_SIZE)).max(1) as u8;
            let l = limit(heap, c);
            *l = (*l + 1).min(max);
        }
    }
}

/// The classes whose emptied spans are kept, a bit each: those with few blocks a span.
/// The others empty a span only when the program frees most of what it held of the
/// class (a phase ends), and keeping their spans then only held memory other classes
/// could use (`batch-ring/t4`, a new size each batch: peak RSS 11.3 -> 15.9 MiB with
/// a fixed 256 KiB kept for every class; `realloc` +6%).
const RETAINED_CLASSES: u64 = {
    let mut m = 0u64;
    let mut c = 0;
    while c < NUM_CLASSES {
        if SizeClass(c as u8).few_blocks_per_span() {
            m |= 1 << c;
        }
        c += 1;
    }
    m
};

/// Keeps `span`, of class `c`, just emptied (`used == 0`) and in no list, for the
/// class's next span, if the class is in use lately and its retained spans leave room.
/// Returns whether it did.
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively), owning `span`; nothing
/// else may release or list the span.
pub(super) unsafe fn retain(heap: *mut Heap, c: SizeClass, span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let bit = 1u64 << c.0;
        if recent_classes(heap) & RETAINED_CLASSES & bit == 0 {
            return false;
        }
        let len = retained_len(heap, c);
        if *len >= *limit(heap, c) {
            // Full: if the class takes a fresh span before one of these is used, it
            // needed more (`grow_limit`).
            (*heap).retain_refused |= bit;
            return false;
        }
        *len += 1;
        let bin = bin(heap, c.index());
        (*span).prev = ptr::null_mut();
        (*span).next = (*bin).retained;
        (*bin).retained = span;
        true
    }
}

/// Takes a retained span of class `c` (null if none), made current in its count.
///
/// # Safety
/// `heap` is the calling thread's heap and `c` a valid class.
pub(super) unsafe fn take_retained(heap: *mut Heap, c: SizeClass) -> *mut Span {
    // SAFETY: caller's contract.
    unsafe {
        let bin = bin(heap, c.index());
        let span = (*bin).retained;
        if span.is_null() {
            return span;
        }
        (*bin).retained = (*span).next;
        *retained_len(heap, c) -= 1;
        (*span).next = ptr::null_mut();
        (*span).used = USED_CURRENT;
        span
    }
}

/// Gives back the retained spans of the classes no longer in use lately.
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively).
pub(super) unsafe fn release_unwanted(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe { release_retained(heap, !recent_classes(heap)) }
}

/// Gives back the retained spans of the classes in `classes` (a bit each).
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively).
pub(super) unsafe fn release_retained(heap: *mut Heap, classes: u64) {
    // SAFETY: caller's contract; retained spans have no block out and are in no other
    // list.
    unsafe {
        let mut m = RETAINED_CLASSES & classes;
        while m != 0 {
            let c = SizeClass(m.trailing_zeros() as u8);
            m &= m - 1;
            if (*bin(heap, c.index())).retained.is_null() {
                continue;
            }
            // Not used for two windows: the class needs fewer.
            *limit(heap, c) /= 2;
            while let Some(span) = ptr::NonNull::new(take_retained(heap, c)) {
                let span = span.as_ptr();
                (*span).used = 0;
                if may_release(span) {
                    release_span(span);
                }
                // else: another thread freed a block of it (freed twice), and the
                // drain reports it; the span is left out of every list.
            }
        }
    }
}
