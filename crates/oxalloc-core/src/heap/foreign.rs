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
//!   this heap took memory for the class from elsewhere lately (a fresh span, other
//!   heaps' blocks, its kept blocks), up to four chains' worth: each such block as it
//!   is freed, and a chain about to be handed over (gathered while the class was not
//!   kept). The program has just freed them, so their lines are in this core's cache;
//!   sent home, the owner or a thread that steals its list reads them from another
//!   core, after a CAS on the span's remote word that every freer contends for.
//!   tcmalloc's freeing thread always keeps the block. The remote free tests one bit
//!   of `Heap::keep_classes` (four instructions); the rest is out of line, so a thread
//!   that only frees (a consumer) pays nothing else.
//! * The kept blocks of a class are a list of their own, in a span record in the heap
//!   (`Heap::kept`) that the direct table names while it has blocks ([`serve_kept`]):
//!   `malloc`'s fast path hands them out, the slow path names the current span again
//!   when the list runs dry. (Through the slow path they cost some 80 instructions a
//!   block; `shared-slots/t8` took 3.4M of its 5M blocks there.)
//! * A block kept a moment ago and freed again by this thread is one it handed out
//!   from its kept list for a short-lived allocation ([`kept_again`]): it goes home,
//!   and the class stops being kept until the heap takes memory from elsewhere again.
//!   Else a heap lives off other heaps' blocks, each free of them a remote free
//!   (`power-law/t8` kept 9.7M of its 15M frees: 1.1x the time; sessions 19 and 27).
//!   The rule before (session 22) kept only while the current span had no free block,
//!   and stopped keeping the class at the first refusal: in a pool of threads that
//!   free each other's blocks the refusals sent blocks home, where they filled the
//!   owners' current spans and made the owners refuse in turn (`shared-slots/t8`:
//!   1.3M of 4.7M frees sent home, 1.3x the CPU time of keeping them).
//! * A full kept list refuses, and the refusal counts as a slow path (`recent`): so the
//!   kept blocks of the classes not allocated lately go home when the windows move on
//!   ([`flush_idle_kept`]), also in a thread that only frees now.
//!
//! The owner's books stay right without it doing anything: its count of blocks in use
//! still counts them (they are out, only reused), and the sum of the addresses of
//! blocks taken from its remote lists comes off the span's `remote_sum`
//! (`remote_list::unsum_stolen`), as if they had never been freed.
//!
//! Blocks taken from remote lists keep the owner's free key until they are handed out;
//! kept blocks carry this heap's (the fast path checks it), and the owner's again when
//! they go home. Either way a block freed twice is caught when it would be handed out
//! the second time. A heap holds the reused blocks of a class in one list of mixed
//! spans; collection (thread exit, trim) gives what is left to the owners. A thread that
//! stops allocating keeps at most what its last steal per class brought until then.
#![allow(unsafe_code)]

use super::*;
use crate::remote_list;

/// Size classes a heap keeps blocks of: those up to `remote::PENDING_BLOCK_MAX` bytes,
/// the blocks a heap gathers for their owners (bigger ones go home one at a time).
pub const KEEP_CLASSES: usize = SizeClass::of(PENDING_BLOCK_MAX as usize).0 as usize + 1;
const _: () = assert!(SizeClass((KEEP_CLASSES - 1) as u8).size() == PENDING_BLOCK_MAX as usize);

/// Kept blocks a class must have for the direct table to name its kept list
/// ([`serve_kept`]); with fewer, the slow path hands one out. A switch costs two fills
/// of the class's direct entries (16-32 stores), there and back.
const SERVE_MIN: u32 = 4;

/// How many chains' worth of blocks a kept list holds at most. With one, `shared-slots/t8`
/// sent a fifth of the blocks it freed home for a full list.
const KEPT_CHAINS: u32 = 4;

/// Entries of `Heap::recent_kept` ([`kept_again`]): some hundreds of frees back, where
/// a short-lived block comes back (`power-law/t8`'s live within 64 allocations).
pub const RECENT_KEPT: usize = 512;

/// Hands out a block of class `c` from this heap's reused blocks (other heaps' lists
/// it took), refilling them from the pending chains and the waiting remote lists first
/// if `may_refill`; null if there are none.
///
/// # Safety
/// `heap` is the calling thread's real heap and `c` a valid class.
pub(super) unsafe fn take_foreign(heap: *mut Heap, c: SizeClass, may_refill: bool) -> *mut u8 {
    // SAFETY: caller's contract: the list is this heap's.
    unsafe {
        let slot = foreign_slot(heap, c);
        if (*slot).is_null() && !(may_refill && refill(heap, c)) {
            return ptr::null_mut();
        }
        let b = *slot;
        let next = (*b).next;
        *slot = next;
        // The class's next allocation from this list reads `next`'s first word.
        prefetch(next);
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

/// The kept list of class `c` for the allocation slow path to pop a block from (it has
/// one: [`has_kept`]). With at least [`SERVE_MIN`] blocks on it, the class's direct
/// entries name it from now on, so the next allocations take its blocks on the fast
/// path (the slow path names the current span again when it runs dry); kept blocks
/// carry this heap's free key for that (see [`keep`]).
///
/// Why: a thread that frees other threads' blocks as fast as it allocates (a pool of
/// threads passing buffers around) took two in three of its blocks from here, each
/// through the slow path (`shared-slots/t8`: 3.4M of 5M, in runs of 25 on average).
///
/// # Safety
/// `heap` is the calling thread's real heap and `c` a class with kept blocks.
pub(super) unsafe fn serve_kept(heap: *mut Heap, c: SizeClass) -> *mut Span {
    // SAFETY: caller's contract.
    unsafe {
        let k = kept_list(heap, c);
        (*heap).keep_classes |= 1 << c.0;
        if kept_count(k) >= SERVE_MIN {
            name_in_direct_table(heap, c, k);
            (*heap).kept_serving |= 1 << c.0;
        }
        k
    }
}

/// Keeps `n` blocks of class `c` that this thread has just freed into another heap's
/// span (`head` .. `tail`, linked: one block as it is freed, or a pending chain about
/// to be handed over) for this heap's own next allocations of the class, instead of
/// sending them home: if the heap took memory for the class from elsewhere lately
/// (`Heap::keep_classes`), the block is not one it kept a moment ago ([`kept_again`],
/// which also stops the keeping of the class), and the kept list would hold at most
/// [`KEPT_CHAINS`] times `limit` (a chain's worth) blocks. Returns whether it did (see
/// the module docs).
///
/// A kept block carries this heap's free key (the fast path's `pop` checks it), not
/// its owner's: it goes back to the owner's key when it goes home ([`flush_foreign`]).
/// A block freed twice at once by this thread is the first kept one, and reported;
/// later, it is caught when it would be handed out the second time (its key was taken
/// by the first).
///
/// # Safety
/// `heap` is the calling thread's real heap; the blocks are blocks of one small span of
/// another heap, freed (their free key set), of class `c`, and there are `n` of them
/// from `head` to `tail`.
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
        let k = kept_list(heap, c);
        if (*k).free == head {
            misuse::double_free(head as usize, c.size(), Op::Free);
        }
        if n == 1 && kept_again(heap, head) {
            (*heap).keep_classes &= !bit;
            return false;
        }
        if !has_room(k, n, limit) {
            return false;
        }
        (*head).key = heap;
        // `n` links at most: a chain with a block twice in it loops.
        let mut b = head;
        for _ in 1..n {
            b = (*b).next;
            (*b).key = heap;
        }
        (*tail).next = (*k).free;
        (*k).free = head;
        (*k).used = (*k).used.wrapping_sub(n);
        true
    }
}

/// Whether `b`, freed by this thread into another heap's span, is a block this thread
/// kept a moment ago (so it handed it out from its kept list, and freed it again):
/// remembers every block it is asked about in a small direct-mapped table, and
/// forgets a block it finds. A block kept again after the table moved on is not found:
/// a long-lived block, which the keeping suits. A block that went home in between and
/// came back another way is found too: it only goes home again.
///
/// # Safety
/// `heap` is the calling thread's real heap.
#[inline]
unsafe fn kept_again(heap: *mut Heap, b: *mut Block) -> bool {
    // Blocks are 16-byte aligned: 32 bits of the rest tell apart any two blocks less
    // than 64 GiB apart (and a mix-up only sends a block home).
    let tag = (b as usize >> 4) as u32;
    let i = (tag ^ (tag >> 10)) as usize % RECENT_KEPT;
    // SAFETY: caller's contract; the index is below RECENT_KEPT.
    unsafe {
        let e = (&raw mut (*heap).recent_kept).cast::<u32>().add(i);
        let again = *e == tag;
        *e = if again { 0 } else { tag };
        again
    }
}

/// Whether the kept list of class `c` is full (no room for one more block with this
/// `limit`, as in [`keep`]).
///
/// # Safety
/// `heap` is a real heap and `c` a class below [`KEEP_CLASSES`].
pub(super) unsafe fn kept_full(heap: *mut Heap, c: SizeClass, limit: u32) -> bool {
    // SAFETY: caller's contract.
    unsafe { !has_room(kept_list(heap, c), 1, limit) }
}

/// Whether kept list `k` has room for `n` more blocks, with `limit` blocks a chain: it
/// holds [`KEPT_CHAINS`] chains' worth once it has handed a block out, one before. A
/// thread that allocated a class once (at its start) and then only frees other
/// threads' blocks of it held four chains of them for nothing (`xmalloc/t8`'s
/// consumers: peak RSS 8.6 -> 8.8 MiB).
///
/// # Safety
/// `k` is a kept list of the calling thread's heap.
#[inline]
unsafe fn has_room(k: *mut Span, n: u32, limit: u32) -> bool {
    // SAFETY: caller's contract.
    let (served, count) = unsafe { ((*k).allocs.load(Ordering::Relaxed) != 0, kept_count(k)) };
    count + n <= if served { limit * KEPT_CHAINS } else { limit }
}

/// A free found the kept list of class `c` full. If the list handed nothing out since
/// it was last found full (or ever), the thread frees the class but does not allocate
/// it now (a consumer): the kept blocks go home and the class is no longer kept
/// (`xmalloc/t8` held 0.4 MiB more at its peak without this). The refusal is also a
/// slow path (`recent::note_slow`): the windows move on in a thread that only frees.
///
/// # Safety
/// `heap` is the calling thread's real heap, `c` a class below [`KEEP_CLASSES`]; not
/// called inside a pending-chain operation (the blocks going home join chains).
pub(super) unsafe fn kept_list_full(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract.
    unsafe {
        let served = (*kept_list(heap, c)).allocs.load(Ordering::Relaxed);
        let at_full = (&raw mut (*heap).kept_full_at).cast::<u64>().add(c.index());
        if *at_full == served {
            (*heap).keep_classes &= !(1 << c.0);
            hand_kept_home(heap, c);
        }
        *at_full = served;
        note_slow(heap);
    }
}

/// How many blocks of class `c` the calling thread keeps for its own next allocations
/// (freed into other heaps' spans: see the module docs), for statistics and tests.
pub fn kept_by_this_thread(c: SizeClass) -> usize {
    let heap = crate::tls::heap();
    if is_empty_heap(heap) || c.index() >= KEEP_CLASSES {
        return 0;
    }
    // SAFETY: `heap` is this thread's real heap and the class has a kept list.
    unsafe { kept_count(kept_list(heap, c)) as usize }
}

/// Whether this heap holds blocks of class `c` it freed into other heaps' spans and
/// kept (`keep`).
///
/// # Safety
/// `heap` is a real heap and `c` a valid class.
#[inline]
pub(super) unsafe fn has_kept(heap: *mut Heap, c: SizeClass) -> bool {
    // SAFETY: caller's contract.
    unsafe { c.index() < KEEP_CLASSES && !(*kept_list(heap, c)).free.is_null() }
}

/// The record holding the blocks of class `c` this thread freed into other heaps'
/// spans and kept.
///
/// # Safety
/// `heap` is a real heap and `c` a class below [`KEEP_CLASSES`].
#[inline]
unsafe fn kept_list(heap: *mut Heap, c: SizeClass) -> *mut Span {
    debug_assert!(c.index() < KEEP_CLASSES);
    // SAFETY: caller's contract: the index is below KEEP_CLASSES.
    unsafe { (&raw mut (*heap).kept).cast::<Span>().add(c.index()) }
}

/// The class of one of `heap`'s kept lists.
///
/// # Safety
/// `k` is one of `heap`'s kept lists.
pub(super) unsafe fn kept_class(heap: *mut Heap, k: *mut Span) -> SizeClass {
    // SAFETY: caller's contract: both are in the heap record.
    let first = unsafe { (&raw mut (*heap).kept).cast::<Span>() };
    SizeClass(((k as usize - first as usize) / core::mem::size_of::<Span>()) as u8)
}

/// How many blocks a kept list holds: `keep` takes them off its `used`, `pop` adds the
/// ones it hands out back, so it is 0 when the list is empty, and the record needs no
/// setting up (a heap's kept lists cost no memory until it keeps a block).
///
/// # Safety
/// `k` is a kept list of the calling thread's heap.
#[inline]
unsafe fn kept_count(k: *mut Span) -> u32 {
    // SAFETY: caller's contract.
    unsafe { (*k).used.wrapping_neg() }
}

/// The allocations a heap's kept lists handed out (per class, added to `counts`), for
/// the statistics: the fast path counts them in the list's record, as in a span's.
///
/// # Safety
/// `heap` is a heap from the registry.
pub unsafe fn add_kept_allocs(heap: *mut Heap, counts: &mut [u64]) {
    for (i, n) in counts.iter_mut().enumerate().take(KEEP_CLASSES) {
        // SAFETY: caller's contract; heaps are never freed, the counter is read
        // atomically.
        *n += unsafe {
            (*kept_list(heap, SizeClass(i as u8)))
                .allocs
                .load(Ordering::Relaxed)
        };
    }
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
            && !has_kept(heap, SizeClass(e.class))
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
        // The blocks it kept lately are another thread's business after an exit.
        (*heap).recent_kept = [0; RECENT_KEPT];
        for c in 0..NUM_CLASSES {
            let c = SizeClass(c as u8);
            if c.index() < KEEP_CLASSES {
                hand_kept_home(heap, c);
            }
            hand_home(
                heap,
                core::mem::take(&mut *foreign_slot(heap, c)),
                usize::MAX,
                false,
            );
        }
    }
}

/// Sends home the kept blocks of the classes this heap has not allocated lately (see
/// `recent`), when the windows move on: a thread that moved on to other sizes (a
/// batch of a new size each round) held up to four chains' worth per class until it
/// exited (`batch-ring/t4`: peak RSS 10.8 -> 12.2 MiB without this).
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively).
pub(super) unsafe fn flush_idle_kept(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        // A class whose kept blocks the fast path hands out is in use, though its slow
        // path runs only when the list runs dry.
        let idle = !(recent_classes(heap) | (*heap).kept_serving) & ((1 << KEEP_CLASSES) - 1);
        // The chains they join must not take them back in.
        (*heap).keep_classes &= !idle;
        let mut m = idle;
        while m != 0 {
            let c = SizeClass(m.trailing_zeros() as u8);
            m &= m - 1;
            hand_kept_home(heap, c);
        }
    }
}

/// Gathers the kept blocks of class `c` for their owners and empties the list.
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively), its class `c` not kept
/// (`Heap::keep_classes`) while this runs, and `c` below [`KEEP_CLASSES`].
unsafe fn hand_kept_home(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract.
    unsafe {
        let k = kept_list(heap, c);
        if (*k).free.is_null() {
            return;
        }
        let len = kept_count(k);
        let kept = core::mem::take(&mut (*k).free);
        (*k).used = 0;
        let rest = hand_home(heap, kept, len as usize, true);
        if !rest.is_null() {
            // Longer than the blocks kept: one of them is on it twice (the list loops),
            // freed twice by this thread and by another.
            misuse::freed_twice_found(rest as usize, c.size(), "free");
        }
    }
}

/// Gathers up to `max` blocks of the list from `b` for their owners; returns the rest
/// of the list (null if it ended). Kept blocks (`kept`) carry this heap's free key,
/// which goes back to their owner's; one without it was handed out since it was kept
/// (freed twice) or written after, and is reported.
///
/// # Safety
/// The list is one of `heap`'s own, taken off the heap; each block is out of its span
/// and carries its owner's key (this heap's, if `kept`).
unsafe fn hand_home(heap: *mut Heap, mut b: *mut Block, max: usize, kept: bool) -> *mut Block {
    for _ in 0..max {
        if b.is_null() {
            break;
        }
        // SAFETY: caller's contract; a block out keeps its span's record live.
        unsafe {
            let next = (*b).next;
            let span = Segment::span_of(Segment::of(b as usize), b as usize);
            if kept {
                if (*b).key != heap {
                    misuse::freed_twice_found(b as usize, (*span).block_size as usize, "free");
                }
                (*b).key = (*span).owner;
            }
            gather(heap, span, b);
            b = next;
        }
    }
    b
}
