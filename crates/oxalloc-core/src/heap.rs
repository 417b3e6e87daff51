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
//! as a cache.
//!
//! Large blocks (64 KiB .. 1 MiB) are whole spans from the central pool, and huge ones
//! (1 MiB and up) have a mapping of their own (`huge.rs`); neither belongs to a heap.
#![allow(unsafe_code)]

use crate::central::CENTRAL;
use crate::huge;
use crate::segment::{
    free_needs_slow_path, Block, Owner, RemoteList, Segment, Span, SpanKind, EMPTY_SPAN,
    HUGE_THRESHOLD, SEGMENT_MAP, SEGMENT_SHIFT, SLICE_SIZE, USED_CURRENT, USED_FULL,
};
use crate::size_class::{
    direct_index, SizeClass, DIRECT_MAX, DIRECT_SLOTS, MAX_SMALL, NUM_CLASSES,
};
use crate::stats::{self, HeapStats, GLOBAL, HUGE_SLOT, LARGE_SLOT};
use crate::tls;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// Bytes carved from a span's fresh area at a time: one page, so a span costs resident
/// memory only as fast as it is used.
const CARVE_BYTES: usize = 4096;
/// After this many fresh spans, a heap spends a moment collecting abandoned heaps.
const COLLECT_EVERY: u32 = 32;

/// Spans of other heaps whose freed blocks a heap gathers before handing them over.
const PENDING_SPANS: usize = 64;
/// Blocks gathered for one span before they are handed over. 16 held up to 4 MiB of
/// freed blocks away from their owners across 8 threads (larson/t8 peak RSS 37.1 ->
/// 34.3 MiB with 8, times unchanged; 4 cost xmalloc time).
const PENDING_BLOCKS: u32 = 8;
/// Only blocks up to this size are gathered, so a thread that frees and then sleeps
/// keeps at most `PENDING_SPANS * PENDING_BLOCKS` such blocks (256 KiB) from their owner.
const PENDING_BLOCK_MAX: u32 = 512;

/// Blocks this thread freed into one span of another heap, not yet handed over: a
/// chain linked through the blocks, handed over with one CAS.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Pending {
    span: *mut Span,
    head: *mut Block,
    tail: *mut Block,
    count: u32,
}

impl Pending {
    const NONE: Pending = Pending {
        span: ptr::null_mut(),
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
        count: 0,
    };
}

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
    /// Counters written by the owner.
    pub stats: HeapStats,
    /// Fresh spans taken, for the periodic collection of abandoned heaps.
    pub fresh_spans: u32,
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
    }; NUM_CLASSES],
    remote_spans: ptr::null_mut(),
    pending: [Pending::NONE; PENDING_SPANS],
    stats: HeapStats {
        allocs: [0; NUM_CLASSES + 2],
        frees: [0; NUM_CLASSES + 2],
        remote_frees: 0,
    },
    fresh_spans: 0,
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
    // SAFETY: caller's contract; direct entries are below DIRECT_SLOTS.
    unsafe {
        (*bin(h, c.index())).current = span;
        let entries = c.direct_entries();
        let direct = (&raw mut (*h).direct)
            .cast::<*mut Span>()
            .add(entries.start);
        core::slice::from_raw_parts_mut(direct, entries.len()).fill(span);
    }
}

// ---------------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------------

/// Allocates `size` bytes, 16-byte aligned. Null with `errno = ENOMEM` when the OS
/// refuses memory.
#[inline]
pub fn alloc(size: usize) -> *mut u8 {
    if size <= DIRECT_MAX {
        // SAFETY: as in `alloc_small`; the direct entry is the current span of the
        // class of `size`, and the index is at most DIRECT_SLOTS - 1.
        unsafe {
            let heap = tls::heap();
            let span = *(&raw mut (*heap).direct)
                .cast::<*mut Span>()
                .add(direct_index(size));
            if (*span).free.is_null() {
                return alloc_slow(heap, SizeClass::of(size));
            }
            return pop(span);
        }
    }
    if size <= MAX_SMALL {
        // SAFETY: tls::heap() is this thread's heap (or the empty placeholder) and
        // the class is valid.
        unsafe { alloc_small(tls::heap(), SizeClass::of(size)) }
    } else {
        alloc_large(size, 16)
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two).
pub fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    if align <= 16 {
        return alloc(size);
    }
    if align <= SLICE_SIZE {
        if let Some(c) = SizeClass::aligned(size, align) {
            // SAFETY: as in `alloc`; blocks of a class that is a multiple of `align`
            // are aligned because spans start on 64 KiB boundaries.
            return unsafe { alloc_small(tls::heap(), c) };
        }
    }
    alloc_large(size, align)
}

/// The allocation fast path: pop the current span's free list.
///
/// # Safety
/// `heap` is the calling thread's heap (or `EMPTY_HEAP`) and `c` a valid class.
#[inline(always)]
pub unsafe fn alloc_small(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract. The current span is the empty sentinel (free list
    // null, never written) or a span this heap owns, whose free list only we touch.
    unsafe {
        let span = (*bin(heap, c.index())).current;
        if (*span).free.is_null() {
            return alloc_slow(heap, c);
        }
        pop(span)
    }
}

/// Pops a block from a span known to have one.
///
/// # Safety
/// `span` is owned by the calling thread's heap and its free list is not empty.
#[inline(always)]
unsafe fn pop(span: *mut Span) -> *mut u8 {
    // SAFETY: caller's contract.
    unsafe {
        let b = (*span).free;
        let next = (*b).next;
        (*span).free = next;
        // The next malloc of this class reads `next`'s first word: start loading its
        // line now (a block taken from a remote list was last written by another core).
        #[cfg(target_arch = "x86_64")]
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(next.cast::<i8>());
        (*span).used += 1;
        stats::bump((*span).allocs.as_ptr());
        b.cast()
    }
}

/// The allocation slow path: set up the thread, collect remote frees, carve fresh
/// blocks, move to another span, or take a new span from the central pool.
///
/// # Safety
/// As for [`alloc_small`].
#[cold]
#[inline(never)]
unsafe fn alloc_slow(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract.
    enomem_if_null(unsafe { alloc_slow_inner(heap, c) })
}

/// Sets `errno = ENOMEM` when an allocation failed, so the C `malloc` can return the
/// fast path's result as it is (a tail call, no check of its own).
#[inline(always)]
fn enomem_if_null(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        oxalloc_sys::set_errno(oxalloc_sys::ENOMEM);
    }
    p
}

/// See [`alloc_slow`].
///
/// # Safety
/// As for [`alloc_small`].
unsafe fn alloc_slow_inner(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    if is_empty_heap(heap) {
        let real = tls::init_thread();
        if real.is_null() {
            return tls::with_orphan_heap(|h| {
                // SAFETY: the orphan heap is ours while the closure runs.
                unsafe { alloc_small(h, c) }
            });
        }
        // SAFETY: `real` is now this thread's heap.
        return unsafe { alloc_small(real, c) };
    }
    // SAFETY: `heap` is this thread's heap (caller's contract); every span reached
    // through its bins is owned by it.
    unsafe {
        if !AtomicPtr::from_ptr(&raw mut (*heap).remote_spans)
            .load(Ordering::Relaxed)
            .is_null()
        {
            drain_remote(heap);
        }
        let bin = bin(heap, c.index());
        loop {
            let span = (*bin).current;
            if span != empty_span() {
                if !(*span).free.is_null() || take_remote(span) {
                    return pop(span);
                }
                // Blocks freed into another span of the class are memory already
                // touched: use them before carving (touching) fresh pages of this one,
                // which waits at the back of the partial list.
                let next = (*bin).partial;
                if !next.is_null() && !(*next).free.is_null() && has_fresh_block(span) {
                    (*span).used -= USED_CURRENT;
                    partial_push_set_aside(bin, span);
                    promote(heap, c, next);
                    continue;
                }
                if carve(span) {
                    return pop(span);
                }
                // Every block is out: park the span until a free brings it back. The
                // direct table keeps naming it (its free list is empty, so the fast
                // path comes back here) until the next current span is set, below:
                // one pass over the table per switch instead of two.
                (*span).used = ((*span).used - USED_CURRENT) | USED_FULL;
                (*bin).current = empty_span();
            }
            let next = (*bin).partial;
            if !next.is_null() {
                promote(heap, c, next);
                continue;
            }
            let fresh = take_small_span(heap, c);
            if fresh.is_null() {
                set_current(heap, c, empty_span());
                return ptr::null_mut();
            }
            set_current(heap, c, fresh);
        }
    }
}

/// Takes a span off the partial list of class `c` and makes it the current span.
///
/// # Safety
/// `heap` is the calling thread's heap and `span` is in its partial list of class `c`.
unsafe fn promote(heap: *mut Heap, c: SizeClass, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        order_by_address(span);
        partial_unlink(bin(heap, c.index()), span);
        (*span).used += USED_CURRENT;
        set_current(heap, c, span);
    }
}

/// Free lists shorter than this are left in the order they were freed: ordering costs
/// a pass over the list and a scan of a bitmap, worth it only if many blocks follow.
const ORDER_MIN_BLOCKS: usize = 64;
/// 16-byte granules in a single-slice span: one bit each in [`order_by_address`].
const ORDER_GRANULES: usize = SLICE_SIZE / 16;

/// Reorders the free list of a single-slice span by ascending address, so that the
/// blocks `malloc` hands out next lie one after another. A free list is LIFO: after a
/// while consecutive `malloc`s return blocks scattered over the span, and a program
/// that walks what it allocated in order (a garbage collector, a list, a tree) jumps
/// around and gets no help from the hardware prefetcher; Python ran 10% slower for it.
/// One pass over the list sets a bit per free block, one scan of the bitmap relinks
/// them: O(blocks), done when a span with many free blocks becomes current again.
///
/// # Safety
/// `span` is a small span owned by the calling thread's heap, neither current nor
/// parked (its `used` carries no flag).
unsafe fn order_by_address(span: *mut Span) {
    // SAFETY: caller's contract: the free list is ours, and every block on it lies in
    // the span, 16-byte aligned, so its granule index is below ORDER_GRANULES.
    unsafe {
        if (*span).slice_count != 1 {
            return; // big blocks, few of them: their order matters little
        }
        // Blocks on the free list: carved ones not handed out (`used` has no flag on a
        // partial span), counted in bytes to spare a division and a walk.
        let start = Segment::span_start(span) as usize;
        let bs = (*span).block_size as usize;
        let free_bytes = ((*span).bump as usize - start).saturating_sub((*span).used as usize * bs);
        if free_bytes < ORDER_MIN_BLOCKS * bs {
            return;
        }
        let mut bits = [0u64; ORDER_GRANULES / 64];
        let mut b = (*span).free;
        while !b.is_null() {
            let g = (b as usize - start) >> 4;
            bits[g / 64] |= 1 << (g % 64);
            b = (*b).next;
        }
        let mut head: *mut Block = ptr::null_mut();
        let mut tail: *mut Block = ptr::null_mut();
        for (w, &word) in bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let g = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let blk = (start + (g << 4)) as *mut Block;
                if tail.is_null() {
                    head = blk;
                } else {
                    (*tail).next = blk;
                }
                tail = blk;
            }
        }
        if !tail.is_null() {
            (*tail).next = ptr::null_mut();
        }
        (*span).free = head;
    }
}

/// The address just past a span's last byte. Blocks are carved from the start at
/// multiples of the block size, so the never-used blocks are the whole ones between
/// `bump` and here.
///
/// # Safety
/// `span` is a small span owned by the caller's heap.
unsafe fn span_end(span: *mut Span) -> usize {
    // SAFETY: caller's contract.
    unsafe { Segment::span_start(span) as usize + (*span).slice_count as usize * SLICE_SIZE }
}

/// Never-used blocks left to carve in a span.
///
/// # Safety
/// As for [`span_end`].
unsafe fn fresh_blocks(span: *mut Span) -> usize {
    // SAFETY: caller's contract.
    unsafe { (span_end(span) - (*span).bump as usize) / (*span).block_size as usize }
}

/// Whether a span has a never-used block left: [`fresh_blocks`] `> 0` without its
/// division (tens of cycles on the path that switches spans).
///
/// # Safety
/// As for [`span_end`].
unsafe fn has_fresh_block(span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe { (*span).bump as usize + (*span).block_size as usize <= span_end(span) }
}

/// Links up to `CARVE_BYTES` of a span's never-used area into its free list.
///
/// # Safety
/// `span` is a small span owned by the caller's heap, with an empty free list.
unsafe fn carve(span: *mut Span) -> bool {
    // SAFETY: caller's contract; the carved blocks lie inside the span.
    unsafe {
        if !has_fresh_block(span) {
            return false; // the common case once a span is fully carved: no division
        }
        let avail = fresh_blocks(span);
        let bs = (*span).block_size as usize;
        let n = avail.min((CARVE_BYTES / bs).max(1));
        let first = (*span).bump;
        for i in 0..n - 1 {
            let b = first.add(i * bs).cast::<Block>();
            (*b).next = first.add((i + 1) * bs).cast();
        }
        (*first.add((n - 1) * bs).cast::<Block>()).next = ptr::null_mut();
        (*span).free = first.cast();
        (*span).bump = first.add(n * bs);
        true
    }
}

/// Takes a span for class `c` from the central pool and makes it this heap's.
///
/// # Safety
/// `heap` is the calling thread's heap.
unsafe fn take_small_span(heap: *mut Heap, c: SizeClass) -> *mut Span {
    // SAFETY: caller's contract.
    unsafe {
        (*heap).fresh_spans = (*heap).fresh_spans.wrapping_add(1);
        if (*heap).fresh_spans.is_multiple_of(COLLECT_EVERY) {
            tls::collect_one_abandoned();
        }
    }
    let slices = c.span_slices();
    let Some(span) = CENTRAL.lock().take(slices) else {
        return ptr::null_mut();
    };
    let bs = c.size();
    let start = Segment::span_start(span);
    // SAFETY: the span was just taken from the pool; it is ours alone.
    unsafe {
        (*span).kind = SpanKind::Small;
        (*span).class = c.0;
        (*span).block_size = bs as u32;
        (*span).owner = heap;
        (*span).free = ptr::null_mut();
        (*span).used = USED_CURRENT;
        (*span).allocs.store(0, Ordering::Relaxed);
        (*span).bump = start;
        (*span).next = ptr::null_mut();
        (*span).prev = ptr::null_mut();
    }
    span
}

/// Allocates a large block (a whole span) or a huge one (from the huge page heap);
/// null with `errno = ENOMEM` on failure.
#[inline(never)]
fn alloc_large(size: usize, align: usize) -> *mut u8 {
    enomem_if_null(alloc_large_inner(size, align))
}

/// See [`alloc_large`].
fn alloc_large_inner(size: usize, align: usize) -> *mut u8 {
    // Refuse what no 47-bit address space can hold before any size arithmetic.
    if size > 1 << 46 {
        return ptr::null_mut();
    }
    // At least one byte: with a big alignment and size 0, the aligned pointer could
    // otherwise land on the first byte after the span, inside its neighbour.
    let size = size.max(1);
    let extra = align.saturating_sub(SLICE_SIZE);
    let Some(need) = size.checked_add(extra) else {
        return ptr::null_mut();
    };
    if need >= HUGE_THRESHOLD {
        let p = huge::alloc(size, align);
        if !p.is_null() {
            count_alloc(HUGE_SLOT);
        }
        return p;
    }
    let slices = need.div_ceil(SLICE_SIZE);
    let Some(span) = CENTRAL.lock().take(slices) else {
        return ptr::null_mut();
    };
    // SAFETY: the span was just taken from the pool; it is ours alone.
    unsafe {
        (*span).kind = SpanKind::Large;
        (*span).owner = ptr::null_mut();
    }
    stats::add(&GLOBAL.large_allocs, 1);
    count_alloc(LARGE_SLOT);
    let start = Segment::span_start(span) as usize;
    let p = (start + align - 1) & !(align - 1);
    p as *mut u8
}

fn count_alloc(slot: usize) {
    let h = tls::heap();
    if !is_empty_heap(h) {
        // SAFETY: `h` is this thread's real heap; only this thread writes its counters.
        unsafe { stats::bump(&raw mut (*h).stats.allocs[slot]) };
    }
}

fn count_free(slot: usize) {
    let h = tls::heap();
    if !is_empty_heap(h) {
        // SAFETY: `h` is this thread's real heap; only this thread writes its counters.
        unsafe { stats::bump(&raw mut (*h).stats.frees[slot]) };
    }
}

/// Allocates zeroed memory, skipping the memset where the memory is known to be fresh.
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    let p = alloc_aligned(size, align);
    if p.is_null() {
        return p;
    }
    // SAFETY: p was just allocated with at least `size` usable bytes.
    unsafe {
        if !is_known_zero(p) {
            ptr::write_bytes(p, 0, size);
        }
    }
    p
}

/// Whether a freshly allocated block is known to read as zero.
///
/// # Safety
/// `p` was just returned by this allocator and not written yet.
unsafe fn is_known_zero(p: *mut u8) -> bool {
    let addr = p as usize;
    match SEGMENT_MAP.owner(addr) {
        // SAFETY: caller's contract; the header of a live huge block is mapped.
        Owner::Huge => unsafe { huge::is_zero(p) },
        Owner::Normal => {
            // SAFETY: caller's contract; p lies in a live segment.
            let span = unsafe { Segment::span_of(Segment::of(addr), addr) };
            // SAFETY: a large span is ours alone until it is freed.
            unsafe { (*span).kind == SpanKind::Large && (*span).zero }
        }
        Owner::Foreign => false,
    }
}

// ---------------------------------------------------------------------------------
// Free
// ---------------------------------------------------------------------------------

/// Frees a block. Pointers that are not ours are ignored (and counted).
///
/// # Safety
/// `p` is null, or was returned by this allocator and not freed since.
#[inline]
pub unsafe fn free(p: *mut u8) {
    let addr = p as usize;
    match SEGMENT_MAP.owner(addr) {
        Owner::Normal => {}
        // SAFETY: caller's contract.
        Owner::Huge => return unsafe { free_huge(p) },
        Owner::Foreign => return free_foreign(p),
    }
    // SAFETY: the map says p's segment is a live normal segment; the span record is
    // valid, and if its owner is this thread's heap, only we touch its free list.
    unsafe {
        let span = Segment::span_of(Segment::of(addr), addr);
        let heap = tls::heap();
        if (*span).owner == heap {
            free_local(heap, span, p.cast());
        } else {
            free_other(heap, span, p);
        }
    }
}

/// Pushes a block on its span's free list; the owner's path.
///
/// # Safety
/// `span` is owned by `heap`, the calling thread's heap, and `b` is one of its blocks.
#[inline(always)]
unsafe fn free_local(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract.
    unsafe {
        (*b).next = (*span).free;
        (*span).free = b;
        release_one(heap, span);
    }
}

/// Takes one block off a span's `used` after a local free, and goes to the slow path
/// when [`free_needs_slow_path`] says so.
///
/// # Safety
/// As for [`free_local`], with the block already on the span's free list.
#[inline(always)]
unsafe fn release_one(heap: *mut Heap, span: *mut Span) {
    // On x86-64 one `dec` on memory whose flags feed the branch: the compiler would
    // load, decrement, store and test (three more instructions on every free).
    // `jle` after `dec` is taken when the result is <= 0 as a signed number (or the old
    // value was i32::MIN, which `used` never is: a parked span has blocks in use).
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `used` is a u32 of a span only this thread writes (caller's contract);
    // the instruction touches nothing else and leaves the stack alone.
    unsafe {
        core::arch::asm!(
            "dec dword ptr [{span} + {used}]",
            "jle {slow}",
            span = in(reg) span,
            used = const core::mem::offset_of!(Span, used),
            // SAFETY: the span is this thread's and its count says so (see above).
            slow = label { unsafe { free_local_slow(heap, span) } },
            options(nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above.
    unsafe {
        let used = (*span).used.wrapping_sub(1);
        (*span).used = used;
        if free_needs_slow_path(used) {
            free_local_slow(heap, span);
        }
    }
}

/// A local free emptied the span or brought a full span back.
///
/// # Safety
/// As for [`free_local`].
#[cold]
#[inline(never)]
unsafe fn free_local_slow(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract: the span and its bin are this thread's.
    unsafe {
        let c = SizeClass((*span).class);
        let bin = bin(heap, c.index());
        // A span on the remote stack stays until the drain has taken it off; the drain
        // then finds it empty and releases it.
        if (*span).used & USED_FULL != 0 {
            (*span).used &= !USED_FULL;
            if (*span).used == 0 && may_release(span) {
                release_span(span);
                release_idle_current(heap, c);
            } else {
                partial_push(bin, span);
            }
        } else if (*span).used == 0 && (*bin).current != span && may_release(span) {
            partial_unlink(bin, span);
            release_span(span);
            release_idle_current(heap, c);
        }
    }
}

/// A span of this class just went back whole; if the class's current span holds no
/// block and no other span has any, the class is idle in this heap: its current span
/// goes back too, so a program that frees everything after a burst keeps no carved
/// pages per size class.
///
/// # Safety
/// `heap` is the calling thread's heap and `c` a valid class.
unsafe fn release_idle_current(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract: the bin and its spans are this thread's.
    unsafe {
        if (*bin(heap, c.index())).partial.is_null() {
            release_current_if_empty(heap, c);
        }
    }
}

/// Gives the current span of class `c` back to the central pool if it holds no block.
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively) and `c` a valid class.
unsafe fn release_current_if_empty(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract: the bin and its spans are this heap's.
    unsafe {
        let cur = (*bin(heap, c.index())).current;
        if cur != empty_span() && (*cur).used == USED_CURRENT && may_release(cur) {
            set_current(heap, c, empty_span());
            (*cur).used = 0;
            release_span(cur);
        }
    }
}

/// A free of a block this thread does not own: another thread's small block, a large
/// block, or something invalid.
///
/// # Safety
/// `span` is the span record for `p` in a live segment.
#[cold]
#[inline(never)]
unsafe fn free_other(heap: *mut Heap, span: *mut Span, p: *mut u8) {
    // SAFETY: caller's contract. The span has a live block (p), so its kind and owner
    // cannot change under us.
    unsafe {
        match (*span).kind {
            SpanKind::Small => {
                if is_empty_heap(heap) {
                    push_remote((*span).owner, span, p.cast(), p.cast(), 1);
                    stats::add(&GLOBAL.remote_frees, 1);
                    return;
                }
                stats::bump(&raw mut (*heap).stats.remote_frees);
                if (*span).block_size > PENDING_BLOCK_MAX {
                    push_remote((*span).owner, span, p.cast(), p.cast(), 1);
                } else {
                    gather(heap, span, p.cast());
                }
            }
            SpanKind::Large => {
                stats::add(&GLOBAL.large_frees, 1);
                count_free(LARGE_SLOT);
                CENTRAL.lock().give(span);
                crate::purger::ensure_started();
            }
            SpanKind::Free => free_foreign(p),
        }
    }
}

/// Adds a block freed into another heap's span to this thread's pending chains; hands
/// a chain over when it is long enough, or when its entry is needed for another span.
/// The table is direct-mapped by span address: one probe, and a program that frees
/// blocks of many size classes in turn (each class its own span) still gathers.
///
/// # Safety
/// `heap` is the calling thread's real heap; `span` a small span of another heap,
/// `b` one of its blocks.
unsafe fn gather(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract; `pending` is touched by the owning thread only.
    unsafe {
        let a = span as usize;
        // Span records are 256 bytes apart; mix in the segment so that the same slice
        // of two segments does not collide.
        let i = ((a >> 8) ^ (a >> SEGMENT_SHIFT)) % PENDING_SPANS;
        let e = &mut (*heap).pending[i];
        if e.span == span {
            (*b).next = e.head;
            e.head = b;
            e.count += 1;
            if e.count >= PENDING_BLOCKS {
                hand_over(e);
            }
            return;
        }
        hand_over(e);
        (*b).next = ptr::null_mut();
        *e = Pending {
            span,
            head: b,
            tail: b,
            count: 1,
        };
    }
}

/// Hands a pending chain over to its span's owner (if it holds any) and empties it.
///
/// # Safety
/// The entry belongs to the calling thread's heap.
unsafe fn hand_over(e: &mut Pending) {
    if e.count > 0 {
        // SAFETY: caller's contract; the span has `count` blocks out (these), so it
        // and its owner stay alive.
        unsafe { push_remote((*e.span).owner, e.span, e.head, e.tail, e.count) };
    }
    *e = Pending::NONE;
}

/// Hands every pending chain over: at thread exit, trim and collection.
///
/// # Safety
/// The caller owns `heap`.
pub unsafe fn flush_pending(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        for e in (*heap).pending.iter_mut() {
            hand_over(e);
        }
    }
}

/// Pushes a chain of `n` blocks (`head` .. `tail`) on their span's remote list
/// (lock-free, many producers), and the span on its owner's stack if it is not there
/// yet.
///
/// # Safety
/// `span` is a small span owned by the live heap `owner`, and the chain holds `n` of
/// its blocks, linked from `head` to `tail`.
unsafe fn push_remote(
    owner: *mut Heap,
    span: *mut Span,
    head: *mut Block,
    tail: *mut Block,
    n: u32,
) {
    // SAFETY: caller's contract; the list word is only accessed atomically, and the
    // chain is ours to write until the CAS publishes it.
    unsafe {
        let word = &(*span).remote;
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let old = RemoteList(cur);
            (*tail).next = old.head();
            match word.compare_exchange_weak(
                cur,
                old.pushed_chain(head, n).0,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) if old.notified() => return,
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        // We set the notified flag: we alone put the span on the owner's stack.
        let head = AtomicPtr::from_ptr(&raw mut (*owner).remote_spans);
        let mut top = head.load(Ordering::Relaxed);
        loop {
            (*span).remote_next.store(top, Ordering::Relaxed);
            match head.compare_exchange_weak(top, span, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }
}

/// Whether an empty span may go back to the central pool: not while it is on the
/// remote stack (the drain will find it and release it then).
///
/// # Safety
/// `span` is a small span of the calling thread's heap with no block in use, so no
/// thread can push to its remote list.
unsafe fn may_release(span: *mut Span) -> bool {
    // SAFETY: caller's contract; the word is atomic.
    unsafe {
        if (*span).remote_kept {
            (*span).remote_kept = false;
            (*span).remote.store(0, Ordering::Relaxed);
            return true;
        }
        !RemoteList((*span).remote.load(Ordering::Acquire)).notified()
    }
}

/// Takes a span's remote list, as the owner, outside the drain. The notified flag
/// stays if the span may be on the stack; a list kept by the drain is taken whole.
///
/// # Safety
/// `span` is a small span owned by the calling thread's heap.
unsafe fn take_list(span: *mut Span) -> RemoteList {
    // SAFETY: caller's contract. The Acquire pairs with the pushers' Release, so the
    // blocks' links are visible. A kept list's span is not on the stack (its flag
    // stayed set, so nobody pushed it again): clearing the flag is ours to do.
    unsafe {
        if (*span).remote_kept {
            (*span).remote_kept = false;
            RemoteList((*span).remote.swap(0, Ordering::Acquire))
        } else if RemoteList((*span).remote.load(Ordering::Relaxed))
            .head()
            .is_null()
        {
            // Nothing to take: skip the locked instruction (a block pushed just now is
            // found next time, or through the stack).
            RemoteList(0)
        } else {
            RemoteList(
                (*span)
                    .remote
                    .fetch_and(RemoteList::NOTIFIED, Ordering::Acquire),
            )
        }
    }
}

/// Makes a span's remote blocks its free list, if it has any; the owner's path when the
/// span's own free list is empty.
///
/// # Safety
/// `span` is owned by the calling thread's heap and its free list is empty.
unsafe fn take_remote(span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let list = take_list(span);
        if list.head().is_null() {
            return false;
        }
        (*span).free = list.head();
        (*span).used -= list.count();
        true
    }
}

/// Adds remote blocks to a span's free list, then does what a local free of the last
/// of them would: bring back a full span, release an empty one.
///
/// # Safety
/// `span` is a small span of `heap`, owned by the caller, and `list` came off its
/// remote word.
unsafe fn absorb(heap: *mut Heap, span: *mut Span, list: RemoteList) {
    // SAFETY: caller's contract.
    unsafe {
        let head = list.head();
        if !head.is_null() {
            if !(*span).free.is_null() {
                // Rare (trim, thread exit): the span still has local blocks. Link the
                // lists at the tail.
                let mut tail = head;
                while !(*tail).next.is_null() {
                    tail = (*tail).next;
                }
                (*tail).next = (*span).free;
            }
            (*span).free = head;
            (*span).used -= list.count();
        }
        if free_needs_slow_path((*span).used) {
            free_local_slow(heap, span);
        }
    }
}

/// Takes a span's remote blocks, if any, whatever its free list holds.
///
/// # Safety
/// As for [`absorb`]; the span is current or partial.
unsafe fn take_remote_into(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe { absorb(heap, span, take_list(span)) };
}

/// Takes, as the owner, every block other threads handed back: visits the spans on the
/// remote stack.
///
/// # Safety
/// `heap` is owned by the calling thread (or held exclusively by a collector).
pub unsafe fn drain_remote(heap: *mut Heap) {
    // SAFETY: caller's contract; the swap hands us the whole stack, whose spans all
    // belong to this heap. A span's link is read before its flag is cleared: from then
    // on a pusher may put it on the stack again.
    unsafe {
        let mut s = AtomicPtr::from_ptr(&raw mut (*heap).remote_spans)
            .swap(ptr::null_mut(), Ordering::Acquire);
        while !s.is_null() {
            let next = (*s).remote_next.load(Ordering::Relaxed);
            if (*s).free.is_null() {
                let list = RemoteList((*s).remote.swap(0, Ordering::Acquire));
                absorb(heap, s, list);
            } else {
                // It still has local blocks: leave the list (and the flag, so nobody
                // stacks it again) until they run out; joining the lists now would
                // mean walking one.
                (*s).remote_kept = true;
            }
            s = next;
        }
    }
}

/// Frees a huge block.
///
/// # Safety
/// `p` is in a granule the map marks huge.
#[cold]
#[inline(never)]
unsafe fn free_huge(p: *mut u8) {
    // SAFETY: caller's contract.
    if unsafe { huge::free(p) } {
        count_free(HUGE_SLOT);
    } else {
        free_foreign(p);
    }
}

#[cold]
#[inline(never)]
fn free_foreign(p: *mut u8) {
    if p.is_null() {
        return;
    }
    stats::add(&GLOBAL.foreign_frees, 1);
    if crate::options::VERBOSE.on() {
        let mut b: crate::fmt::Buf<128> = crate::fmt::Buf::new();
        b.str("oxalloc: ignoring free of a pointer that is not ours: ")
            .hex(p as u64)
            .str("\n");
        oxalloc_sys::write_stderr(b.as_bytes());
    }
}

/// Gives an empty small span back to the central pool.
///
/// # Safety
/// `span` is a small span with no used block, in none of its heap's lists.
unsafe fn release_span(span: *mut Span) {
    // SAFETY: caller's contract; the owner is the calling thread's heap, whose
    // counters only this thread writes.
    unsafe {
        let owner = (*span).owner;
        let n = (*span).allocs.swap(0, Ordering::Relaxed);
        if stats::COUNTING && n != 0 && !owner.is_null() {
            let c = stats::slot(&raw mut (*owner).stats.allocs, (*span).class as usize);
            AtomicU64::from_ptr(c).fetch_add(n, Ordering::Relaxed);
        }
        (*span).owner = ptr::null_mut();
        (*span).free = ptr::null_mut();
        CENTRAL.lock().give(span);
    }
    crate::purger::ensure_started();
}

/// Queues a span that has free blocks again (it was full): behind the other spans with
/// freed blocks, in front of the set-aside ones. `alloc_slow` takes the front span, so
/// a span waits a whole round before it is current again and brings back every block
/// freed into it meanwhile.
///
/// The list used to be ordered by address (lowest first, to keep allocation packed in
/// low spans). In a big table of live blocks replaced at random, every span is nearly
/// full: the lowest one came back with a single freed block, was made current, handed
/// that block out and was parked full again, so over a third of the mallocs and frees
/// took a slow path (`examples/programs/table_replace.c`, 10M steps: 1.33 s user
/// against mimalloc's 0.94 s; 214 instructions a step under callgrind, mimalloc 136).
/// In arrival order a span comes back with the frees of a whole round (0.89 s, 136
/// instructions a step), and peak RSS stayed the same on every row of the suite.
///
/// # Safety
/// `span` is a small span of `bin`'s heap in none of its lists.
unsafe fn partial_push(bin: *mut Bin, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let before = (*bin).set_aside;
        let after = if before.is_null() {
            (*bin).partial_tail
        } else {
            (*before).prev
        };
        (*span).prev = after;
        (*span).next = before;
        if after.is_null() {
            (*bin).partial = span;
        } else {
            (*after).next = span;
        }
        if before.is_null() {
            (*bin).partial_tail = span;
        } else {
            (*before).prev = span;
        }
    }
}

/// Puts a span set aside for its never-used area at the back of `bin`'s partial list.
///
/// # Safety
/// `span` is a small span of `bin`'s heap in none of its lists.
unsafe fn partial_push_set_aside(bin: *mut Bin, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        if (*bin).set_aside.is_null() {
            (*bin).set_aside = span;
        }
        let tail = (*bin).partial_tail;
        (*span).next = ptr::null_mut();
        (*span).prev = tail;
        if tail.is_null() {
            (*bin).partial = span;
        } else {
            (*tail).next = span;
        }
        (*bin).partial_tail = span;
    }
}

/// # Safety
/// `span` is in `bin`'s partial list.
unsafe fn partial_unlink(bin: *mut Bin, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let (prev, next) = ((*span).prev, (*span).next);
        if (*bin).set_aside == span {
            (*bin).set_aside = next;
        }
        if prev.is_null() {
            (*bin).partial = next;
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            (*bin).partial_tail = prev;
        } else {
            (*next).prev = prev;
        }
        (*span).next = ptr::null_mut();
        (*span).prev = ptr::null_mut();
    }
}

/// Gives back to the central pool every span of `heap` with no used block: after
/// draining remote frees, for thread exit and `malloc_trim`.
///
/// # Safety
/// The caller owns `heap` exclusively.
pub unsafe fn collect(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
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
        }
    }
}

// ---------------------------------------------------------------------------------
// Queries and resizing
// ---------------------------------------------------------------------------------

/// Usable bytes of a block (0 for a pointer that is not ours).
///
/// # Safety
/// `p` is null or a live block of this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
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
                SpanKind::Large => {
                    Segment::span_start(span) as usize + (*span).slice_count as usize * SLICE_SIZE
                        - addr
                }
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
    let usable = unsafe { usable_size(p) };
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
            if new_size <= usable && (new_size > usable / 2 || usable <= 32) {
                return p;
            }
        } else if resize_in_place(p, new_size) {
            return p;
        }
        // A block that grows by moving grows by at least a quarter, so a buffer grown a
        // few bytes at a time (a string builder) moves O(log n) times, not once per
        // size class.
        let grown = if new_size > usable {
            new_size.max(usable + usable / 4)
        } else {
            new_size
        };
        let mut q = alloc(grown);
        if q.is_null() && grown > new_size {
            q = alloc(new_size);
        }
        if q.is_null() {
            return q;
        }
        ptr::copy_nonoverlapping(p, q, usable.min(new_size));
        free(p);
        q
    }
}

/// Gives every cached free page back to the OS now. Returns the bytes released.
pub fn trim() -> usize {
    let h = tls::heap();
    if !is_empty_heap(h) {
        // SAFETY: `h` is this thread's heap.
        unsafe { collect(h) };
    }
    tls::collect_all_abandoned();
    CENTRAL.lock().purge(true) + huge::purge_cache(true)
}
