//! Reuse of other heaps' freed blocks: before a heap takes a fresh span for a class, it
//! takes the blocks of that class that wait for another heap, and hands them out itself.
//!
//! Why: a block freed by a thread that does not own it waits on its span's remote list
//! until the owner takes it back, and an owner does that only when it runs out of
//! blocks. A program with more threads than cores, where every thread frees the others'
//! blocks, keeps most of its freed memory waiting for owners that are not running,
//! while the running threads map fresh spans (`shared-slots/t8`: 38.9 MiB waiting at the
//! peak). tcmalloc does not meet this: its freeing thread keeps the block.
//!
//! Which blocks: the remote lists of spans this heap holds a pending chain for
//! (`remote::Pending`, blocks it freed into the span and has not handed over yet), taken
//! whole with one CAS (`remote_list::steal`), with the chain. A span with a pending
//! chain has a block out (that chain's), so it and its record stay while we look.
//! * When a heap is about to take a fresh span for a class, it first looks at its
//!   chains of that class (`refill`). If that finds nothing, the class is marked wanted,
//!   and while it is, a chain of the class that the heap hands over to a span with a
//!   waiting list takes that list instead, whenever the class's reused list is empty
//!   (`reuse_instead`, from `remote::hand_over_or_reuse`).
//! * Only lists of at least 4 KiB of blocks: an owner that runs takes its lists back
//!   soon, and taking its short lists only moved blocks between heaps that were about
//!   to use them (and handed out blocks in lines other threads write).
//! * Reused blocks go before the current span's fresh pages.
//! * Blocks this thread frees into another heap's span are kept for its own next
//!   allocations of their class instead of gathered for the owner ([`keep`]), when
//!   this heap took memory for the class from elsewhere lately (a fresh span, or other
//!   heaps' blocks) and its current span of the class has no free block, up to a
//!   chain's worth: each such block as it is freed, and a chain about to be handed over
//!   (gathered while the class was not kept). The program has just freed them, so their
//!   lines are in this core's cache; sent home, the owner or a thread that steals its
//!   list reads them from another core, after a CAS on the span's remote word that
//!   every freer contends for. tcmalloc's freeing thread always keeps the block; here a
//!   heap with free blocks of its own sends it home, so a thread that frees its own
//!   short-lived blocks does not live off another heap's (one that always kept them
//!   handed out and freed the same blocks of other heaps through the slow paths:
//!   `power-law/t8` 1.3x the time). The remote free tests one bit of
//!   `Heap::keep_classes` (four instructions); the rest is out of line, so a thread
//!   that only frees (a consumer) pays nothing else. Keeping a block as it is freed,
//!   rather than only when its pending entry was wanted for another span's chain
//!   (session 22: three in four hand-overs were chains pushed out of their entry, as
//!   the freeing threads spread their frees over hundreds of spans), hands out the
//!   block freed last: `shared-slots/t8` 0.283 -> 0.224 s and peak RSS 57.5 -> 53.7
//!   MiB in 7 alternating runs; `xmalloc/t2` and `batch-ring/t4` equal in 15 (an A/A
//!   pair of one build differed as much). With the test on the path of every remote
//!   free but the keeping inline (its division and register saves on the common path),
//!   `xmalloc/t2` was 22% slower.
//!
//! The owner's books stay right without it doing anything: its count of blocks in use
//! still counts them (they are out, only reused), and their addresses' sum comes off the
//! span's `remote_sum` (`remote_list::unsum_stolen`), as if they had never been freed.
//!
//! The blocks keep the owner's free key until they are handed out, so a block freed
//! twice is still caught when it would be handed out the second time. A heap holds the
//! reused blocks of a class in one list of mixed spans; collection (thread exit, trim)
//! gives what is left to the owners. A thread that stops allocating keeps at most what
//! its last steal per class brought until then.
#![allow(unsafe_code)]

use super::*;
use crate::remote_list;

/// Hands out a block of class `c` from this heap's reused blocks, refilling them from
/// the pending chains and the waiting remote lists first if needed; null if there are
/// none.
///
/// # Safety
/// `heap` is the calling thread's real heap and `c` a valid class.
pub(super) unsafe fn take_foreign(heap: *mut Heap, c: SizeClass, may_refill: bool) -> *mut u8 {
    // SAFETY: caller's contract: the list is this heap's.
    unsafe {
        let kept = kept_slot(heap, c);
        let slot = if !(*kept).is_null() {
            *kept_len(heap, c) -= 1;
            kept
        } else {
            let slot = foreign_slot(heap, c);
            if (*slot).is_null() && !(may_refill && refill(heap, c)) {
                return ptr::null_mut();
            }
            slot
        };
        let b = *slot;
        *slot = (*b).next;
        // The span of a block out (this one is, in its owner's count) keeps its owner.
        let span = Segment::span_of(Segment::of(b as usize), b as usize);
        if (*b).key != (*span).owner {
            // Freed twice (the other copy was handed out and took the key), or written
            // after it was freed. The rest of the list is dropped: the report may
            // allocate.
            *slot = ptr::null_mut();
            misuse::freed_twice_found(b as usize, (*span).block_size as usize, "malloc");
        }
        (*b).key = ptr::null_mut();
        (*heap).keep_classes |= 1 << c.0;
        stats::bump(stats::slot(&raw mut (*heap).stats.allocs, c.index()));
        b.cast()
    }
}

/// Keeps `n` blocks of class `c` that this thread has just freed into another heap's
/// span (`head` .. `tail`, linked: one block as it is freed, or a pending chain about
/// to be handed over) for this heap's own next allocations of the class, instead of
/// sending them home: if the heap took memory for the class from elsewhere lately
/// (`Heap::keep_classes`), its current span of the class has no free block, and the
/// kept blocks would be at most `limit` (a chain's worth). Returns whether it did; a
/// refusal for a current span with free blocks clears the class's bit.
///
/// A block freed twice at once by this thread is the first kept one, and reported;
/// later, it is caught when it would be handed out the second time (`take_foreign`).
///
/// # Safety
/// `heap` is the calling thread's real heap; the blocks are blocks of one small span of
/// another heap, freed (their free key set), of class `c`.
pub(super) unsafe fn keep(
    heap: *mut Heap,
    c: SizeClass,
    head: *mut Block,
    tail: *mut Block,
    n: u32,
    limit: u32,
) -> bool {
    // SAFETY: caller's contract: the class is valid and the lists are this heap's.
    unsafe {
        let bit = 1u64 << c.0;
        if (*heap).keep_classes & bit == 0 {
            return false;
        }
        let current = (*bin(heap, c.index())).current;
        if current == empty_span() || !(*current).free.is_null() {
            (*heap).keep_classes &= !bit;
            return false;
        }
        let len = kept_len(heap, c);
        if *len as u32 + n > limit {
            return false;
        }
        let slot = kept_slot(heap, c);
        if *slot == head {
            misuse::double_free(head as usize, c.size(), Op::Free);
        }
        (*tail).next = *slot;
        *slot = head;
        *len += n as u8;
        true
    }
}

/// Whether this heap holds blocks of class `c` it freed into other heaps' spans and
/// kept (`keep`).
///
/// # Safety
/// `heap` is a real heap and `c` a valid class.
#[inline]
pub(super) unsafe fn has_kept(heap: *mut Heap, c: SizeClass) -> bool {
    // SAFETY: caller's contract.
    unsafe { !(*kept_slot(heap, c)).is_null() }
}

/// The blocks of class `c` this thread freed into other heaps' spans and kept.
///
/// # Safety
/// `heap` is a real heap and `c` a valid class.
#[inline]
unsafe fn kept_slot(heap: *mut Heap, c: SizeClass) -> *mut *mut Block {
    // SAFETY: caller's contract: the index is below NUM_CLASSES.
    unsafe { (&raw mut (*heap).kept).cast::<*mut Block>().add(c.index()) }
}

/// How many blocks [`kept_slot`] holds.
///
/// # Safety
/// As for [`kept_slot`].
#[inline]
unsafe fn kept_len(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract: the index is below NUM_CLASSES.
    unsafe { (&raw mut (*heap).kept_len).cast::<u8>().add(c.index()) }
}

/// The list of reused blocks of class `c`.
///
/// # Safety
/// `heap` is a real heap and `c` a valid class.
#[inline]
unsafe fn foreign_slot(heap: *mut Heap, c: SizeClass) -> *mut *mut Block {
    // SAFETY: caller's contract: the index is below NUM_CLASSES.
    unsafe {
        (&raw mut (*heap).foreign)
            .cast::<*mut Block>()
            .add(c.index())
    }
}

/// Takes the waiting remote lists of the spans this heap holds pending chains of class
/// `c` for, with the chains, onto the heap's reused blocks. Returns whether it got any;
/// if not, the class is marked wanted.
///
/// # Safety
/// As for [`take_foreign`].
unsafe fn refill(heap: *mut Heap, c: SizeClass) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let bit = 1u64 << c.0;
        if (*heap).pending_classes & bit != 0 {
            let mut any = false;
            for e in (*heap).pending.iter_mut() {
                if e.count != 0 && e.class == c.0 {
                    any = true;
                    reuse_waiting(heap, e);
                }
            }
            if !any {
                (*heap).pending_classes &= !bit;
            }
        }
        let got = !(*foreign_slot(heap, c)).is_null();
        if !got {
            (*heap).reuse_wanted |= bit;
        }
        got
    }
}

/// Instead of handing a pending chain over: if the heap wants blocks of the chain's
/// class (`Heap::reuse_wanted`, and its slow path ran lately) and holds none of them
/// for reuse, takes the span's waiting list with the chain (`reuse_waiting`). Returns
/// whether it did.
///
/// # Safety
/// `e` is an entry of `heap`'s pending table, and `heap` the calling thread's heap.
pub(super) unsafe fn reuse_instead(heap: *mut Heap, e: &mut Pending) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        e.count > 0
            && (*heap).reuse_wanted & recent_classes(heap) & (1 << e.class) != 0
            && (*foreign_slot(heap, SizeClass(e.class))).is_null()
            && (*kept_slot(heap, SizeClass(e.class))).is_null()
            && reuse_waiting(heap, e)
    }
}

/// Takes the remote list of a pending entry's span, if it holds enough blocks
/// ([`steal_min_blocks`]), onto this heap's reused blocks, then the entry's own chain
/// too. Returns false, and leaves the entry, otherwise.
///
/// # Safety
/// `e` is an entry of `heap`'s pending table holding a chain, and `heap` the calling
/// thread's heap.
unsafe fn reuse_waiting(heap: *mut Heap, e: &mut Pending) -> bool {
    // SAFETY: caller's contract; the entry's chain holds blocks out of its span, which
    // keeps the span's record live and its class and owner fixed.
    unsafe {
        let span = e.span;
        let list = remote_list::steal(&(*span).remote, steal_min_blocks(span));
        let head = list.head();
        if head.is_null() {
            return false;
        }
        // Walk the count's links for the sum; a list that goes on after them loops (a
        // block freed twice by other threads).
        let mut tail = head;
        let mut sum = head as u64;
        for _ in 1..list.count() {
            tail = (*tail).next;
            if tail.is_null() {
                break;
            }
            sum = sum.wrapping_add(tail as u64);
        }
        if tail.is_null() || !(*tail).next.is_null() {
            misuse::span_count_broken(
                Segment::span_start(span) as usize,
                (*span).block_size as usize,
            );
        }
        remote_list::unsum_stolen(&(*span).remote_sum, sum);
        stats::add(&GLOBAL.remote_reused, list.count() as usize);
        let slot = foreign_slot(heap, SizeClass(e.class));
        (*tail).next = *slot;
        *slot = head;
        reuse_chain(heap, e);
        true
    }
}

/// Bytes of blocks a remote list must hold before another thread takes it. An owner
/// that runs takes its lists back soon, so they stay short, and their blocks sit in
/// lines beside blocks other threads use (cache-scratch: a thread that reused the one
/// block it freed shared its line with the other threads, 1.37x slower); a list this
/// long has waited a while, for an owner that is not running.
const STEAL_MIN_BYTES: u32 = 4096;

/// The fewest blocks worth taking from a span's remote list.
///
/// # Safety
/// `span` is a live small span.
unsafe fn steal_min_blocks(span: *mut Span) -> u32 {
    // SAFETY: caller's contract.
    unsafe { (STEAL_MIN_BYTES / (*span).block_size).max(2) }
}

/// Moves a pending entry's chain (blocks this thread freed and still holds) onto the
/// heap's reused blocks, and empties the entry.
///
/// # Safety
/// As for [`reuse_waiting`]; the entry may be empty already.
unsafe fn reuse_chain(heap: *mut Heap, e: &mut Pending) {
    // SAFETY: caller's contract.
    unsafe {
        if e.count != 0 {
            let slot = foreign_slot(heap, SizeClass(e.class));
            (*e.tail).next = *slot;
            *slot = e.head;
        }
        *e = Pending::NONE;
    }
}

/// Gives every reused block this heap still holds back to its owner (through the
/// pending chains, which the caller flushes next): at thread exit, trim and collection.
///
/// # Safety
/// The caller owns `heap`.
pub(super) unsafe fn flush_foreign(heap: *mut Heap) {
    // SAFETY: caller's contract; each block is out of its span (which keeps its record
    // live), and carries its owner's key.
    unsafe {
        // Handing the blocks over must not take other lists back in, nor keep them.
        (*heap).reuse_wanted = 0;
        (*heap).keep_classes = 0;
        for c in 0..NUM_CLASSES {
            let c = SizeClass(c as u8);
            let kept = core::mem::take(&mut *kept_slot(heap, c));
            let len = core::mem::take(&mut *kept_len(heap, c));
            let rest = hand_home(heap, kept, len as usize);
            if !rest.is_null() {
                // Longer than the blocks kept: one of them is on it twice (the list
                // loops), freed twice by this thread and by another.
                misuse::freed_twice_found(rest as usize, c.size(), "free");
            }
            hand_home(
                heap,
                core::mem::take(&mut *foreign_slot(heap, c)),
                usize::MAX,
            );
        }
    }
}

/// Gathers up to `max` blocks of the list from `b` for their owners; returns the rest
/// of the list (null if it ended).
///
/// # Safety
/// The list is one of `heap`'s own, taken off the heap; each block is out of its span
/// and carries its owner's key.
unsafe fn hand_home(heap: *mut Heap, mut b: *mut Block, max: usize) -> *mut Block {
    for _ in 0..max {
        if b.is_null() {
            break;
        }
        // SAFETY: caller's contract; a block out keeps its span's record live.
        unsafe {
            let next = (*b).next;
            let span = Segment::span_of(Segment::of(b as usize), b as usize);
            gather(heap, span, b);
            b = next;
        }
    }
    b
}
