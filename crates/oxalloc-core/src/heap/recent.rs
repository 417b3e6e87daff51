//! Which size classes a heap allocates lately: those whose allocation slow path ran in
//! the current window of [`WINDOW`] slow-path calls or in the one before. Two policies
//! ask: taking other heaps' waiting lists (`foreign::reuse_instead`), and keeping
//! emptied spans for reuse (`retain`). The frees' slow path moves the windows on too,
//! so a thread that only frees for a while stops counting its classes as in use.
#![allow(unsafe_code)]

use super::*;

/// Slow-path calls (of malloc and of free) in a window. A class whose malloc slow path
/// did not run in the last one or two windows is one the thread stopped allocating (or
/// allocates from its own spans without running dry).
///
/// Without it, a thread that once took a fresh span of a class took that class's
/// waiting lists for good, and held them, pinning their owners' spans, until it
/// allocated the class again (`batch-ring/t4`: 13.3 MiB peak RSS, 10.8 with it, in one
/// suite run).
pub(super) const WINDOW: u32 = 256;

/// Notes that the allocation slow path runs for class `c`.
///
/// # Safety
/// `heap` is the calling thread's real heap and `c` a valid class.
#[inline]
pub(super) unsafe fn note_alloc_slow(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract.
    unsafe {
        note_slow(heap);
        (*heap).slow_classes[0] |= 1 << c.0;
    }
}

/// Notes a slow-path call: every [`WINDOW`] of them the windows move on, and spans kept
/// for classes no longer in use go back (`retain::release_unwanted`), as do the blocks
/// of other heaps kept for them (`foreign::flush_idle_kept`) and the large and emptied
/// spans kept beyond the churn of their counts (`span_cache::roll_window`).
///
/// # Safety
/// `heap` is the calling thread's real heap.
#[inline]
pub(super) unsafe fn note_slow(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        (*heap).slow_calls = (*heap).slow_calls.wrapping_add(1);
        if (*heap).slow_calls.is_multiple_of(WINDOW) {
            (*heap).slow_classes = [0, (*heap).slow_classes[0]];
            release_unwanted(heap);
            flush_idle_kept(heap);
            span_cache::roll_window(&raw mut (*heap).large);
            span_cache::roll_window(&raw mut (*heap).emptied);
        }
    }
}

/// The classes in use lately, a bit each.
///
/// # Safety
/// `heap` is a real heap.
#[inline]
pub(super) unsafe fn recent_classes(heap: *mut Heap) -> u64 {
    // SAFETY: caller's contract.
    unsafe { (*heap).slow_classes[0] | (*heap).slow_classes[1] }
}
