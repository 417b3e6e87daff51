//! Large blocks (above 64 KiB, below 1 MiB): each is a whole span of the central pool
//! (huge ones have mappings of their own: `huge.rs`). A heap keeps the spans of large
//! blocks its thread frees, by slice count, for its next large blocks of that count
//! (`Heap::large`, a `span_cache`); how many it keeps of a count follows its churn.
//!
//! Why: a program that replaces large blocks at random otherwise takes and gives a span
//! under the central lock on every malloc and free. `examples/programs/random_sizes.c
//! 2 1000000 262144` (two threads, 1 B-256 KiB, three in four large): 0.53-0.79 s
//! against mimalloc's 0.22-0.33 and tcmalloc's 0.16-0.31, most of it waiting for the
//! lock (31% of the samples) and searching the pool (22%); with the cache 0.08-0.09 s.
//! The rest of that gain came from counting large blocks per heap (`HeapStats`): three
//! process-wide counters bumped on every large malloc and free were a cache line both
//! threads fought over (0.14 -> 0.11 s).
//!
//! What it costs: the spans kept hold memory other sizes cannot use. The cache's limits,
//! blocks up to 512 KiB only (`span_cache::KEPT_COUNTS`), and the spans that sat unused through a
//! whole window going back keep that small: `power-law/t8` (8 threads, rare large
//! blocks of every size) peaks 21.2 -> 21.8 MiB, `large` 154.3 -> 157.5 MiB (5
//! alternating runs each). A thread that stops calling the allocator keeps what it has
//! until it exits or calls `malloc_trim`.
//!
//! A span freed by another thread goes back to the heap that allocated the block
//! (`Span::large_home`), on a stack of its own that other threads push to
//! (`Heap::returned_large`), and the heap takes them into its cache when it misses
//! there. Kept by the freeing thread instead, a thread that only frees large blocks
//! (a consumer of another's buffers) filled its cache and sent the rest to the central
//! pool, from which the producer took every block: both threads on the central lock
//! for every block (64 KiB-1 MiB buffers passed from one thread to another: 0.10-0.21 s
//! against mimalloc's 0.07-0.13, `lock_contended` 18% of the samples).
//!
//! A live large block is claimed by its free with one compare-and-swap on its span's
//! `grid_base` (the block's address tagged with [`LIVE`] while it is live), so two
//! threads freeing one block cannot both have it, with or without the lock. The tag is
//! what a small span's `grid_base` (a block address: even) never has, so a free of a
//! block whose span was given back and reused for small blocks fails the swap too.
#![allow(unsafe_code)]

use super::span_cache::{self, KEPT_COUNTS};
use super::*;
use crate::atomic_stack;
use core::sync::atomic::{AtomicU8, AtomicUsize};

/// Tag in a large span's `grid_base`: set while its block is live.
const LIVE: usize = 1;

/// Most bytes of spans handed back to one heap and not taken yet: as much as its cache
/// keeps in all, so a thread that stopped allocating large blocks holds no more there
/// than in its cache (past it, the freeing thread keeps the span or gives it back).
pub const RETURNED_MAX: usize = span_cache::KEEP_TOTAL;

/// Allocates a large block of `slices` slices at alignment `align` (up to the slices'
/// room): a span the heap kept, or one from the central pool. Null when the OS refuses
/// memory.
pub(super) fn alloc(slices: usize, align: usize) -> *mut u8 {
    debug_assert!((1..=HUGE_THRESHOLD / SLICE_SIZE).contains(&slices));
    // The heap whose segments serve this thread first (set up now if the thread has
    // none: its first blocks may all be large); null for a thread that exited.
    let heap = counting_heap();
    let mut span = ptr::null_mut();
    if !heap.is_null() && slices <= KEPT_COUNTS {
        // SAFETY: `heap` is this thread's real heap.
        span = unsafe {
            note_call(heap);
            let mut span = span_cache::take(&raw mut (*heap).large, slices);
            if span.is_null()
                && !AtomicPtr::from_ptr(&raw mut (*heap).returned_large)
                    .load(Ordering::Relaxed)
                    .is_null()
            {
                take_returned(heap);
                span = span_cache::take(&raw mut (*heap).large, slices);
            }
            span
        };
    }
    if span.is_null() {
        match CENTRAL.lock().take(slices, SpanKind::Large, heap as usize) {
            Some(s) => span = s,
            None => return ptr::null_mut(),
        }
    }
    let start = Segment::span_start(span) as usize;
    let p = (start + align - 1) & !(align - 1);
    // SAFETY: the span was just taken from the cache or the pool; it is ours alone.
    unsafe {
        (*span).owner = ptr::null_mut();
        (*span).large_home = heap;
        // What `free` accepts for this span: exactly this pointer.
        (*span).grid_base = p | LIVE;
    }
    if heap.is_null() {
        stats::add(&GLOBAL.large_allocs, 1);
        stats::add(&GLOBAL.large_huge_bytes, slices * SLICE_SIZE);
    } else {
        // SAFETY: `heap` is this thread's real heap; only this thread writes its
        // counters.
        unsafe {
            stats::bump(&raw mut (*heap).stats.allocs[LARGE_SLOT]);
            stats::bump_by(
                &raw mut (*heap).stats.large_bytes,
                (slices * SLICE_SIZE) as u64,
            );
        }
    }
    p as *mut u8
}

/// Whether `p` is the live block of the large span `span`.
///
/// # Safety
/// `span` is a slice record of a live segment.
#[inline]
pub(super) unsafe fn is_live(span: *mut Span, p: usize) -> bool {
    // SAFETY: caller's contract; a live block's record is stable (a racy read of a
    // dead one only makes the answer false).
    unsafe { ptr::read_volatile(&raw const (*span).grid_base) == p | LIVE }
}

/// Usable bytes of the live large block `p` of `span`: to the end of its span.
///
/// # Safety
/// `p` is the live block of the large span `span`.
pub(super) unsafe fn usable(span: *mut Span, p: usize) -> usize {
    // SAFETY: caller's contract: a live large span's record is stable.
    Segment::span_start(span) as usize + unsafe { (*span).slice_count } as usize * SLICE_SIZE - p
}

/// Frees the large block `p` of `span` (a large or free span of a live segment):
/// claims it, then keeps its span or gives it back. Anything but a live block's start
/// is reported.
///
/// Out of line: inlined into `free_other`, whose common case (another heap's small
/// block) runs without a stack frame, it would make that case save and restore
/// registers (`xmalloc/t1` 1.4x slower, `prodcons` 1.1x).
///
/// # Safety
/// `span` is the head record `p`'s slice names, in a live segment, and not small.
#[inline(never)]
pub(super) unsafe fn free(p: *mut u8, span: *mut Span, op: Op) {
    let addr = p as usize;
    // SAFETY: caller's contract; a successful claim makes the span ours alone.
    unsafe {
        let claimed = (*span).kind == SpanKind::Large
            && AtomicUsize::from_ptr(&raw mut (*span).grid_base)
                .compare_exchange(addr | LIVE, 0, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        if !claimed {
            bad_large(span, addr, op);
        }
        let heap = counting_heap();
        if heap.is_null() {
            stats::add(&GLOBAL.large_frees, 1);
        } else {
            stats::bump(&raw mut (*heap).stats.frees[LARGE_SLOT]);
            note_call(heap);
            if hand_back(span, heap) || span_cache::keep(&raw mut (*heap).large, span) {
                return;
            }
        }
        // Before the lock: starting the purger thread allocates (glibc's thread
        // records).
        crate::purger::ensure_started();
        CENTRAL.lock().give(span);
    }
}

/// Hands a span freed by `heap`'s thread back to the heap that allocated its block, if
/// that is another heap, still in use by its thread, and the span one it can keep.
/// Returns whether it did (the span is no longer ours then).
///
/// # Safety
/// `span` is a large span just claimed by a free on this thread; `heap` this thread's
/// real heap.
unsafe fn hand_back(span: *mut Span, heap: *mut Heap) -> bool {
    // SAFETY: caller's contract; heaps are never freed, so `home` may be read (and
    // pushed to) even if its thread exited since: an abandoned heap's stack is emptied
    // by its next collection.
    unsafe {
        let home = (*span).large_home;
        if home.is_null()
            || home == heap
            || (*span).slice_count as usize > KEPT_COUNTS
            || AtomicU8::from_ptr(&raw mut (*home).abandoned).load(Ordering::Relaxed) != 0
        {
            return false;
        }
        let bytes = (*span).slice_count as usize * SLICE_SIZE;
        let held = AtomicUsize::from_ptr(&raw mut (*home).returned_large_bytes);
        if held.fetch_add(bytes, Ordering::Relaxed) + bytes > RETURNED_MAX {
            held.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        atomic_stack::push(
            AtomicPtr::from_ptr(&raw mut (*home).returned_large),
            span,
            |top| (*span).remote_next.store(top, Ordering::Relaxed),
        );
        true
    }
}

/// Takes the spans other threads handed back into the heap's cache (those it has no
/// room for go to the central pool).
///
/// # Safety
/// `heap` is the calling thread's real heap.
unsafe fn take_returned(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        for_each_returned(heap, |s| {
            if !span_cache::keep(&raw mut (*heap).large, s) {
                crate::purger::ensure_started();
                CENTRAL.lock().give(s);
            }
        })
    }
}

/// Gives every span handed back to `heap` to the central pool (its collection, and
/// `malloc_trim` for every heap: the stack is atomic, so any thread may take it).
///
/// # Safety
/// `heap` is a registered heap.
pub(super) unsafe fn give_back_returned(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe { for_each_returned(heap, |s| CENTRAL.lock().give(s)) }
}

/// Takes `heap`'s stack of handed-back spans whole and passes each span to `f`.
///
/// # Safety
/// `heap` is a registered heap.
unsafe fn for_each_returned(heap: *mut Heap, mut f: impl FnMut(*mut Span)) {
    // SAFETY: caller's contract; the stack's spans were claimed by their frees and
    // pushed whole, so each is ours once taken, and its link is read before `f` keeps
    // or gives it back.
    unsafe {
        let mut s = atomic_stack::take_all(AtomicPtr::from_ptr(&raw mut (*heap).returned_large));
        let mut bytes = 0;
        while !s.is_null() {
            let next = (*s).remote_next.load(Ordering::Relaxed);
            bytes += (*s).slice_count as usize * SLICE_SIZE;
            f(s);
            s = next;
        }
        if bytes > 0 {
            AtomicUsize::from_ptr(&raw mut (*heap).returned_large_bytes)
                .fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// Counts a large allocation or free: every `recent::WINDOW` of them the window moves
/// on. They do not move the slow-path windows of `recent`: a program that churns large
/// blocks would then give back the spans kept for its small classes three times as
/// often (`random_sizes.c 1 1000000 262144`: 2.5K -> 8.4K page faults).
///
/// # Safety
/// `heap` is the calling thread's real heap.
#[inline]
unsafe fn note_call(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        (*heap).large_calls = (*heap).large_calls.wrapping_add(1);
        if (*heap).large_calls.is_multiple_of(WINDOW) {
            span_cache::roll_window(&raw mut (*heap).large);
        }
    }
}

/// Reports a free into a large or free span that is not its live block.
///
/// # Safety
/// `span` is the head record `p`'s slice names, in a live segment.
#[cold]
pub(super) unsafe fn bad_large(span: *mut Span, p: usize, op: Op) -> ! {
    check::not_ours_if_past_map(p, op);
    // SAFETY: caller's contract: the record is mapped; fields are read racily, for the
    // report only.
    unsafe {
        let seg = Segment::of(p);
        if (p - seg as usize) < FIRST_SLICE * SLICE_SIZE {
            misuse::not_a_block(p, op, "the address is in oxalloc's metadata");
        }
        let tagged = ptr::read_volatile(&raw const (*span).grid_base);
        let live = if tagged & LIVE != 0 {
            tagged & !LIVE
        } else {
            0
        };
        if (*span).kind == SpanKind::Large && live != 0 && (*span).head == span && p > live {
            let size = Segment::span_start(span) as usize
                + (*span).slice_count as usize * SLICE_SIZE
                - live;
            misuse::interior(p, live, size, op);
        }
        if p.is_multiple_of(SLICE_SIZE) {
            // Where a large block started: freed already (its span is free, cut up or
            // kept by a heap).
            misuse::double_free(p, 0, op);
        }
        misuse::not_a_block(p, op, "the address is in free memory")
    }
}
