//! Thread heaps: the malloc and free fast paths, and their slow paths.
//!
//! Each thread owns one [`Heap`]: for every size class a *current* span it allocates
//! from and a list of *partial* spans with free blocks. A span that runs out of blocks
//! leaves the lists (`full`); the next free into it brings it back, at the back of the
//! queue, so by the time it is current again it has gathered the frees of a whole
//! round. All of this is touched by the owning thread only, so the fast paths take no
//! lock and do no atomic read-modify-write:
//!
//! * `alloc_small`: pop the current span's free list (load, test, two stores).
//!   The current span's `used` carries a bias (`USED_CURRENT`), so freeing its last
//!   block does not look like "span empty" and stays on the fast path.
//! * `free`: segment-map check, mask to the segment, find the span, compare its owner
//!   with this thread's heap, push.
//!
//! Blocks freed by *other* threads go on their span's `remote` list (one CAS); the
//! first such free since the owner last looked also puts the span on the owner's
//! `remote_spans` stack. The list carries its length, so the owner takes a span's
//! remote blocks whole, as its new free list, without walking them: walking means one
//! cache miss per block, each on a line another core just wrote. A span whose every
//! block is free goes back to the central pool, except the current one, which stays
//! as a cache, and those a class with few blocks a span keeps while it churns
//! (`retain`). A thread that would otherwise take fresh memory for a class first takes
//! the remote lists that wait for owners which are not running, and a thread that
//! needs blocks of a class keeps those of it that it frees into other heaps' spans
//! (`foreign`).
//!
//! Large blocks (64 KiB .. 1 MiB) are whole spans from the central pool, and huge ones
//! (1 MiB and up) have a mapping of their own (`huge.rs`); neither belongs to a heap,
//! but a heap keeps the spans of large blocks its thread frees for its next ones
//! (`large`).
//!
//! The parts: `alloc` (malloc and its slow path), `free` (free and its slow path),
//! `remote` (frees from other threads), `foreign` (reusing other heaps' blocks),
//! `partial` (the queue of spans with free blocks), `retain` (emptied spans kept for
//! classes with few blocks a span), `recent` (which classes the heap allocates
//! lately), `large` (large blocks, and the spans kept for them); this file holds the
//! heap record and what the parts share.
#![allow(unsafe_code)]

mod alloc;
mod check;
mod foreign;
mod free;
mod large;
mod partial;
mod recent;
mod remote;
mod retain;
mod span_cache;

use self::alloc::purge_tail;
pub use self::alloc::{alloc, alloc_aligned, alloc_small, alloc_zeroed, try_alloc_small};
pub use self::check::check_sized;
use self::foreign::*;
pub use self::foreign::{add_kept_allocs, kept_by_this_thread};
use self::free::bad_huge;
use self::free::*;
pub use self::free::{free, free_sized, free_with};
use self::large::bad_large;
pub use self::large::RETURNED_MAX;
use self::partial::*;
use self::recent::*;
use self::remote::*;
pub use self::remote::{drain_remote, flush_pending, Pending};
use self::retain::*;
pub use self::span_cache::SpanCache;

use crate::central::CENTRAL;
use crate::huge;
use crate::misuse::{self, Op};
use crate::segment::{
    free_needs_slow_path, Block, Owner, RemoteList, Segment, Span, SpanKind, EMPTY_SPAN,
    FIRST_SLICE, HUGE_THRESHOLD, SEGMENT_MAP, SEGMENT_SHIFT, SLICE_SIZE, USED_CURRENT, USED_FULL,
};
use crate::size_class::{
    direct_index, SizeClass, DIRECT_MAX, DIRECT_SLOTS, MAX_SMALL, NUM_CLASSES,
};
use crate::stats::{self, HeapStats, GLOBAL, HUGE_SLOT, LARGE_SLOT};
use crate::tls;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// One size class of a heap.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Bin {
    /// The span allocations come from; `EMPTY_SPAN` when there is none.
    pub current: *mut Span,
    /// Other spans of this class that have free blocks, a queue: those with freed
    /// blocks in front, in the order they got their first free since they were full;
    /// those with only never-used area (set aside by `alloc_slow`) at the back.
    pub partial: *mut Span,
    /// The last span of `partial`.
    pub partial_tail: *mut Span,
    /// The first set-aside span of `partial` (null if none): spans coming back from
    /// full go in front of it.
    pub set_aside: *mut Span,
    /// Emptied spans kept for this class's next span (see `retain`), linked by `next`.
    pub retained: *mut Span,
}

/// A thread's heap. Never freed: when its thread exits it is abandoned and later
/// adopted, whole, by a new thread.
#[repr(C)]
pub struct Heap {
    /// For requests up to `DIRECT_MAX` bytes, indexed by `direct_index(size)`: the
    /// current span of their class (a copy of `bins[c].current`), so `malloc` needs
    /// no class lookup.
    pub direct: [*mut Span; DIRECT_SLOTS],
    /// One bin per size class.
    pub bins: [Bin; NUM_CLASSES],
    /// Spans with blocks freed by other threads, pushed atomically by those threads
    /// (see `Span::remote`), taken whole by the owner.
    pub remote_spans: *mut Span,
    /// Blocks freed by this thread into other heaps' spans, gathered per span so that
    /// a run of such frees costs one CAS, not one each.
    pub pending: [Pending; PENDING_SPANS],
    /// Per size class, blocks of other heaps' spans this heap hands out before it takes
    /// a fresh span (see `foreign`).
    pub foreign: [*mut Block; NUM_CLASSES],
    /// Per size class up to `remote::PENDING_BLOCK_MAX` bytes, blocks of other heaps'
    /// spans that this thread freed and kept for its own next allocations (see
    /// `foreign::keep`), handed out before `foreign`: a record of their own, whose free
    /// list holds them and whose `used` counts down as they come in, so that the direct
    /// table can name it and `malloc`'s fast path hands them out (`kept_serving`).
    pub kept: [Span; KEEP_CLASSES],
    /// Bit per size class: the direct table names the class's kept list instead of its
    /// current span (see `foreign::serve_kept`); cleared by `set_current`.
    pub kept_serving: u64,
    /// Per size class of `kept`: how many blocks the kept list had handed out when it
    /// was last found full (see `foreign::kept_list_full`).
    pub kept_full_at: [u64; KEEP_CLASSES],
    /// The blocks this thread kept lately, direct-mapped by address (see
    /// `foreign::kept_again`).
    pub recent_kept: [u32; RECENT_KEPT],
    /// Bit per size class: the heap took memory for the class from elsewhere lately (a
    /// fresh span, or another heap's blocks: set by `alloc_slow`,
    /// `foreign::take_foreign` and `foreign::serve_kept`; cleared by `foreign::keep`
    /// for a block kept a moment ago, by `foreign::kept_list_full` for a list that
    /// stays full, and for the classes not allocated lately), so blocks of the class
    /// this thread frees into other heaps' spans may be kept for it.
    pub keep_classes: u64,
    /// Bit per size class: `pending` may hold a chain of the class (set when an entry
    /// is made, cleared by a refill that finds none), so a heap that never frees other
    /// heaps' blocks never looks.
    pub pending_classes: u64,
    /// Bit per size class: a refill of the class found nothing and the heap took a
    /// fresh span instead; from then on, while the class is in use lately
    /// (`slow_classes`), a chain of the class handed over to a span whose remote list
    /// waits for its owner takes that list instead, while the class's reused list is
    /// empty (see `foreign`).
    pub reuse_wanted: u64,
    /// Bit per size class: the allocation slow path ran for the class in the current
    /// window of `recent::WINDOW` slow-path calls (`[0]`) and in the one before (`[1]`):
    /// the classes in use lately (see `recent`).
    pub slow_classes: [u64; 2],
    /// Slow-path calls, for the windows of `slow_classes`.
    pub slow_calls: u32,
    /// Per size class, how many spans `Bin::retained` holds.
    pub retained_len: [u8; NUM_CLASSES],
    /// Per size class, how many spans `Bin::retained` may hold (see `retain`).
    pub retain_limit: [u8; NUM_CLASSES],
    /// Bit per size class: a span was given back for lack of room among the retained
    /// ones since the class last took a fresh span.
    pub retain_refused: u64,
    /// Spans of large blocks this thread freed, kept for its next ones (see `large`).
    pub large: SpanCache,
    /// Large allocations and frees, for the windows of `large` (`large::note_call`).
    pub large_calls: u32,
    /// Spans of large blocks this heap allocated and other threads freed, pushed
    /// atomically by those threads (linked through `Span::remote_next`), taken whole
    /// by the owner into `large` when it misses there (see `large`).
    pub returned_large: *mut Span,
    /// Bytes of the spans on `returned_large` (added by the pushers before they push,
    /// taken off by whoever takes the stack), so that a heap whose thread stopped
    /// allocating large blocks strands at most `large::RETURNED_MAX` there.
    pub returned_large_bytes: usize,
    /// Small spans this thread emptied, kept for its next spans of any class (see
    /// `free::retain_or_release`).
    pub emptied: SpanCache,
    /// Counters written by the owner.
    pub stats: HeapStats,
    /// Fresh spans taken, for the periodic collection of abandoned heaps.
    pub fresh_spans: u32,
    /// Pending chains handed over (full or pushed out), for the periodic sweep of
    /// chains that stopped growing (`remote::sweep_stale`).
    pub chain_events: u32,
    /// Sequence number, for reports.
    pub id: u64,
    /// Kernel thread id of the current owner (atomic: reporters read it).
    pub tid: u64,
    /// 1 while no thread owns the heap (atomic).
    pub abandoned: u8,
    /// Registry: every heap ever made (atomic: reporters walk it without the lock).
    pub next_all: *mut Heap,
    /// Registry: abandoned heaps (under the registry lock).
    pub next_abandoned: *mut Heap,
}

/// The heap of threads that have not allocated yet. All bins point to `EMPTY_SPAN`,
/// so the fast path falls through to the slow path, which sets up a real heap. Never
/// written (it may live in read-only memory).
pub static EMPTY_HEAP: Heap = Heap {
    direct: [(&raw const EMPTY_SPAN).cast_mut(); DIRECT_SLOTS],
    bins: [Bin {
        current: (&raw const EMPTY_SPAN).cast_mut(),
        partial: ptr::null_mut(),
        partial_tail: ptr::null_mut(),
        set_aside: ptr::null_mut(),
        retained: ptr::null_mut(),
    }; NUM_CLASSES],
    remote_spans: ptr::null_mut(),
    pending: [Pending::NONE; PENDING_SPANS],
    foreign: [ptr::null_mut(); NUM_CLASSES],
    kept: [const { Span::empty() }; KEEP_CLASSES],
    kept_serving: 0,
    kept_full_at: [0; KEEP_CLASSES],
    recent_kept: [0; RECENT_KEPT],
    pending_classes: 0,
    keep_classes: 0,
    reuse_wanted: 0,
    slow_classes: [0; 2],
    slow_calls: 0,
    retained_len: [0; NUM_CLASSES],
    retain_limit: [0; NUM_CLASSES],
    retain_refused: 0,
    large: SpanCache::EMPTY,
    large_calls: 0,
    returned_large: ptr::null_mut(),
    returned_large_bytes: 0,
    emptied: SpanCache::EMPTY,
    stats: HeapStats {
        allocs: [0; NUM_CLASSES + 2],
        frees: [0; NUM_CLASSES + 2],
        remote_frees: 0,
        large_bytes: 0,
    },
    fresh_spans: 0,
    chain_events: 0,
    id: 0,
    tid: 0,
    abandoned: 0,
    next_all: ptr::null_mut(),
    next_abandoned: ptr::null_mut(),
};

// SAFETY: a heap is touched by its owning thread only, except the fields documented
// as atomic, which are accessed through atomics.

unsafe impl Sync for Heap {}

#[inline(always)]
fn empty_span() -> *mut Span {
    (&raw const EMPTY_SPAN).cast_mut()
}

/// Starts loading the line of a block a later allocation will read (a free list's next
/// head: a block freed by another core, or long ago, is often not in this core's
/// cache). A hint only: null or any address is fine, nothing is read.
#[inline(always)]
fn prefetch(b: *mut Block) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64's baseline, and a prefetch never faults.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(b.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b;
}

/// This thread's heap for counting a large or huge block, set up if the thread has
/// none yet (its first allocations may all be large); null for a thread that exited.
fn counting_heap() -> *mut Heap {
    let h = tls::heap();
    if is_empty_heap(h) {
        tls::init_thread()
    } else {
        h
    }
}

/// Whether `h` is the placeholder heap of a thread without one.
#[inline(always)]
pub fn is_empty_heap(h: *mut Heap) -> bool {
    ptr::eq(h, &EMPTY_HEAP)
}

impl Heap {
    /// Prepares a zeroed heap record for use.
    ///
    /// # Safety
    /// `h` points to writable, zeroed memory for a `Heap` that no one else uses.
    pub unsafe fn init(h: *mut Heap, id: u64) {
        // SAFETY: caller's contract.
        unsafe {
            for i in 0..NUM_CLASSES {
                (*h).bins[i] = Bin {
                    current: empty_span(),
                    partial: ptr::null_mut(),
                    partial_tail: ptr::null_mut(),
                    set_aside: ptr::null_mut(),
                    retained: ptr::null_mut(),
                };
            }
            (*h).direct = [empty_span(); DIRECT_SLOTS];
            (*h).id = id;
        }
    }

    /// (id, owner tid, abandoned) for reports.
    ///
    /// # Safety
    /// `h` is a heap from the registry.
    pub unsafe fn identity(h: *mut Heap) -> (u64, u64, bool) {
        // SAFETY: caller's contract; tid and abandoned are read atomically, id never
        // changes after the heap is published.
        unsafe {
            let tid = AtomicU64::from_ptr(&raw mut (*h).tid).load(Ordering::Relaxed);
            let ab = AtomicU8::from_ptr(&raw mut (*h).abandoned).load(Ordering::Relaxed);
            ((*h).id, tid, ab != 0)
        }
    }

    /// Records the owning thread (0 with `abandoned`).
    ///
    /// # Safety
    /// `h` is a heap from the registry that the caller owns.
    pub unsafe fn set_owner(h: *mut Heap, tid: u32, abandoned: bool) {
        // SAFETY: caller's contract; both fields are written atomically.
        unsafe {
            AtomicU64::from_ptr(&raw mut (*h).tid).store(tid as u64, Ordering::Relaxed);
            AtomicU8::from_ptr(&raw mut (*h).abandoned).store(abandoned as u8, Ordering::Relaxed);
        }
    }
}

/// The bin of class `c`.
///
/// # Safety
/// `h` is a valid heap and `c` a valid class.
#[inline(always)]
unsafe fn bin(h: *mut Heap, c: usize) -> *mut Bin {
    debug_assert!(c < NUM_CLASSES);
    // SAFETY: caller's contract: c < NUM_CLASSES.
    unsafe { (&raw mut (*h).bins).cast::<Bin>().add(c) }
}

/// Makes `span` the current span of class `c` (`EMPTY_SPAN` for none), in the bin and
/// in the direct table.
///
/// # Safety
/// `h` is the calling thread's heap (not `EMPTY_HEAP`) and `c` a valid class.
#[inline]
unsafe fn set_current(h: *mut Heap, c: SizeClass, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        (*bin(h, c.index())).current = span;
        (*h).kept_serving &= !(1 << c.0);
        name_in_direct_table(h, c, span);
    }
}

/// Points the direct-table entries of class `c` at `span` (the current span, or the
/// class's kept list: `foreign::serve_kept`).
///
/// # Safety
/// `h` is the calling thread's heap (not `EMPTY_HEAP`) and `c` a valid class.
#[inline]
unsafe fn name_in_direct_table(h: *mut Heap, c: SizeClass, span: *mut Span) {
    // SAFETY: caller's contract; direct entries are below DIRECT_SLOTS.
    unsafe {
        let entries = c.direct_entries();
        let direct = (&raw mut (*h).direct)
            .cast::<*mut Span>()
            .add(entries.start);
        core::slice::from_raw_parts_mut(direct, entries.len()).fill(span);
    }
}

/// Which written, never-carved pages of the spans it keeps `collect` gives back (see
/// `purge_tail` in `alloc.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tails {
    /// Those of spans that carved nothing for a purge delay (a thread exit, a collection
    /// of the abandoned heap): not those the next thread may carve on or that empty soon.
    Idle,
    /// All of them (`malloc_trim`).
    All,
}

/// Gives back to the central pool every span of `heap` with no used block, after
/// draining remote frees, and the `tails` of those it keeps: for thread exit, the
/// collection of abandoned heaps and `malloc_trim`.
///
/// # Safety
/// The caller owns `heap` exclusively.
pub unsafe fn collect(heap: *mut Heap, tails: Tails) {
    let idle_at = (tails == Tails::Idle).then(oxalloc_sys::now_ns);
    // SAFETY: caller's contract.
    unsafe {
        flush_foreign(heap);
        flush_pending(heap);
        drain_remote(heap);
        for c in 0..NUM_CLASSES {
            let bin = bin(heap, c);
            let cur = (*bin).current;
            if cur != empty_span() {
                take_remote_into(heap, cur);
                release_current_if_empty(heap, SizeClass(c as u8));
            }
            let mut s = (*bin).partial;
            while !s.is_null() {
                let next = (*s).next;
                // Releases the span if that leaves it empty.
                take_remote_into(heap, s);
                s = next;
            }
            // What is left is kept.
            let cur = (*bin).current;
            if cur != empty_span() {
                purge_tail(cur, idle_at);
            }
            let mut s = (*bin).partial;
            while !s.is_null() {
                purge_tail(s, idle_at);
                s = (*s).next;
            }
        }
        // Last: the drain and the frees above may have emptied spans, which the classes
        // still in use kept.
        release_retained(heap, u64::MAX);
        large::give_back_returned(heap);
        span_cache::release_all(&raw mut (*heap).emptied);
        span_cache::release_all(&raw mut (*heap).large);
    }
}

/// Usable bytes of a block (0 for null, or for a pointer into another allocator's
/// memory that `misuse::not_ours` lets through); a pointer that is not a live block is
/// reported as a misuse of `malloc_usable_size`.
///
/// # Safety
/// `p` is null or a live block of this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: caller's contract.
    unsafe { usable_size_with(p, Op::UsableSize) }
}

/// [`usable_size`] on behalf of `op` (the call named in a report). The block is checked
/// as a free checks it: a double free caught here names `op`.
///
/// # Safety
/// As for [`usable_size`].
pub unsafe fn usable_size_with(p: *mut u8, op: Op) -> usize {
    let addr = p as usize;
    match SEGMENT_MAP.owner(addr) {
        Owner::Huge => {
            // SAFETY: caller's contract.
            let n = unsafe { huge::usable(p) };
            if n == 0 {
                bad_huge(addr, op);
            }
            n
        }
        Owner::Foreign => {
            misuse::not_ours(addr, op);
            0
        }
        // SAFETY: the map says the segment is live, so the record is mapped; the span
        // of a live block is stable.
        Owner::Normal => unsafe {
            let span = Segment::span_of(Segment::of(addr), addr);
            match (*span).kind {
                SpanKind::Small => {
                    // The common case inline: a carved block without the free key.
                    if !Span::on_grid(span, addr) || (*(addr as *const Block)).key == (*span).owner
                    {
                        check::check_small(span, addr, op);
                    }
                    (*span).block_size as usize
                }
                SpanKind::Large if large::is_live(span, addr) => large::usable(span, addr),
                _ => bad_large(span, addr, op),
            }
        },
    }
}

/// Usable bytes of a block already checked (by the caller's own use of it).
///
/// # Safety
/// `p` is a live block of this allocator.
unsafe fn usable_size_unchecked(p: *mut u8) -> usize {
    let addr = p as usize;
    match SEGMENT_MAP.owner(addr) {
        // SAFETY: caller's contract.
        Owner::Huge => unsafe { huge::usable(p) },
        Owner::Foreign => 0,
        // SAFETY: caller's contract; the span of a live block is stable.
        Owner::Normal => unsafe {
            let span = Segment::span_of(Segment::of(addr), addr);
            match (*span).kind {
                SpanKind::Small => (*span).block_size as usize,
                SpanKind::Large => large::usable(span, addr),
                SpanKind::Free => 0,
            }
        },
    }
}

/// Tries to resize a block without moving it. Returns true if `p` now has at least
/// `new_size` usable bytes and does not waste more than half of them.
///
/// # Safety
/// `p` is a live block of this allocator.
pub unsafe fn resize_in_place(p: *mut u8, new_size: usize) -> bool {
    let addr = p as usize;
    // SAFETY: caller's contract.
    let usable = unsafe { usable_size_unchecked(p) };
    match SEGMENT_MAP.owner(addr) {
        Owner::Normal => {
            // SAFETY: caller's contract; the span of a live block is stable.
            let span = unsafe { Segment::span_of(Segment::of(addr), addr) };
            // SAFETY: as above.
            let kind = unsafe { (*span).kind };
            match kind {
                SpanKind::Small => new_size <= usable && (new_size > usable / 2 || usable <= 32),
                SpanKind::Large => {
                    if new_size <= usable {
                        return new_size > MAX_SMALL && new_size > usable / 2;
                    }
                    if new_size >= HUGE_THRESHOLD {
                        return false;
                    }
                    let start = Segment::span_start(span) as usize;
                    let want = (addr - start + new_size).div_ceil(SLICE_SIZE);
                    // SAFETY: the span is a live large span: ours alone.
                    unsafe { CENTRAL.lock().grow(span, want) }
                }
                SpanKind::Free => false,
            }
        }
        // SAFETY: caller's contract.
        Owner::Huge => new_size >= HUGE_THRESHOLD / 2 && unsafe { huge::resize(p, new_size) },
        Owner::Foreign => false,
    }
}

/// Resizes a block whose usable size the caller already looked up, moving it if
/// needed; null (and `p` untouched) on failure. A small block stays where it is while
/// the new size fits and wastes at most half of it; that is decided here from `usable`
/// alone, so a string builder's realloc looks its block up once, not three times.
///
/// # Safety
/// `p` is a live block of this allocator with `usable` usable bytes.
pub unsafe fn realloc(p: *mut u8, usable: usize, new_size: usize) -> *mut u8 {
    // SAFETY: caller's contract.
    unsafe {
        if usable <= MAX_SMALL && new_size <= MAX_SMALL {
            if small_stays(usable, new_size) {
                return p;
            }
        } else if resize_in_place(p, new_size) {
            return p;
        }
        let q = alloc_to_move(usable, new_size);
        if q.is_null() {
            return q;
        }
        ptr::copy_nonoverlapping(p, q, usable.min(new_size));
        free_with(p, Op::Realloc);
        q
    }
}

/// Whether `realloc` leaves a small block of `usable` bytes where it is for `new_size`
/// (small too): when it fits, unless it shrinks to half or less (then a smaller block
/// is worth the copy).
#[inline(always)]
fn small_stays(usable: usize, new_size: usize) -> bool {
    new_size <= usable && (new_size > usable / 2 || usable <= 32)
}

/// The new block for a `realloc` that moves a block of `usable` bytes to `new_size`:
/// one that grows gets at least a quarter more, so a buffer grown a few bytes at a time
/// (a string builder) moves O(log n) times, not once per size class (exactly
/// `new_size` if that much more is refused). Null when the OS refuses memory.
fn alloc_to_move(usable: usize, new_size: usize) -> *mut u8 {
    let grown = if new_size > usable {
        new_size.max(usable + usable / 4)
    } else {
        new_size
    };
    let q = alloc(grown);
    if q.is_null() && grown > new_size {
        return alloc(new_size);
    }
    q
}

/// `realloc` of one of this thread's small blocks to a small size, the block looked up
/// once: the general path checks it for its usable size and again when it frees it
/// after a move (a random `realloc(p, 1..200)` in 256 slots: 186M instructions per 1M
/// calls against mimalloc's 160M). `None` in every other case, and for a block that
/// looks freed (its free key is there): the caller's general path checks and reports.
///
/// # Safety
/// `p` is a live block of this allocator (as for `realloc`).
#[inline]
pub unsafe fn realloc_own_small(p: *mut u8, new_size: usize) -> Option<*mut u8> {
    let addr = p as usize;
    if new_size > MAX_SMALL {
        return None;
    }
    let seg = SEGMENT_MAP.normal_segment(addr)?;
    // SAFETY: the map says the segment is live, so the span record is mapped; when the
    // span is this thread's and `p` one of its carved blocks (`frees_locally`), the
    // block is mapped and only this thread frees into the span. `alloc` below leaves
    // that so: the span holds `p`, so it stays this heap's.
    unsafe {
        let span = Segment::span_of(seg, addr);
        let heap = tls::heap();
        let b = p.cast::<Block>();
        if !free::frees_locally(span, heap, addr) || (*b).key == heap {
            return None;
        }
        let usable = (*span).block_size as usize;
        if small_stays(usable, new_size) {
            return Some(p);
        }
        let q = alloc_to_move(usable, new_size);
        if !q.is_null() {
            ptr::copy_nonoverlapping(p, q, usable.min(new_size));
            free::free_local(heap, span, b);
        }
        Some(q)
    }
}

/// Gives every cached free page back to the OS now. Returns the bytes released.
pub fn trim() -> usize {
    let h = tls::heap();
    if !is_empty_heap(h) {
        // SAFETY: `h` is this thread's heap.
        unsafe { collect(h, Tails::All) };
    }
    // The spans other threads handed back to live heaps: any thread may take them.
    // SAFETY: every registered heap is live memory; the stacks are atomic.
    tls::for_each_heap(|h| unsafe { large::give_back_returned(h) });
    tls::collect_all_abandoned();
    CENTRAL.lock().purge(true) + huge::purge_cache(true)
}
