//! Segments, slices and spans: how memory from the OS is laid out, and how `free(p)`
//! finds a block's metadata from the pointer alone.
//!
//! # Layout
//! A *segment* is 4 MiB of address space aligned to 4 MiB, cut into 64 *slices* of
//! 64 KiB. Slice 0 holds the segment header, including one [`Span`] record per slice;
//! slices 1..64 hold user data. A *span* is a run of slices with one purpose: blocks of
//! one size class (owned by a thread heap), one large block, or free space (owned by
//! the central pool). Metadata is out of line, so user data never sits next to the
//! records that describe it.
//!
//! `free(p)` finds its span in O(1) and without locks: mask `p` down to the segment,
//! index the slice, read its `head`: the span's first slice record.
//!
//! Huge blocks (1 MiB and up) live in regions of their own, also 4 MiB aligned; see
//! `huge.rs`.
//!
//! # The segment map
//! Before masking a pointer we must know the segment is ours: `free` can be handed a
//! pointer from another allocator (or garbage), and reading its "header" could fault.
//! [`SegmentMap`] keeps one byte per 4 MiB of the user address space ([`ADDRESS_BITS`]:
//! 47 bits on x86-64, 32 MiB of zero-initialised `.bss`; 48 on aarch64, 64 MiB; touched
//! only where segments live): none, normal, or huge with the distance back to the start
//! of the huge region.
//!
//! # Who may touch what
//! A span's block fields (`free`, `used`, `bump`) belong to its owner heap's
//! thread. Its list links and the fields of free spans belong to whoever holds the
//! central lock, or to the owner heap while the span is in the heap's lists.
#![allow(unsafe_code)]

use crate::heap::Heap;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// log2 of the slice size.
pub const SLICE_SHIFT: usize = 16;
/// A slice: the unit in which spans are made, 64 KiB.
pub const SLICE_SIZE: usize = 1 << SLICE_SHIFT;
/// log2 of the segment size.
pub const SEGMENT_SHIFT: usize = 22;
/// A segment: 4 MiB, aligned to its size.
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// Mask that gives a pointer's segment start.
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;
/// Slices per segment.
pub const SLICES: usize = SEGMENT_SIZE / SLICE_SIZE;
/// The first slice that holds data (slice 0 is the header).
pub const FIRST_SLICE: usize = 1;
/// Requests of this size or more get a mapping of their own.
pub const HUGE_THRESHOLD: usize = 1 << 20;

/// A free block, linked through its first word. Every block is at least 16 bytes, so
/// it has a second word: while the block is free, that word holds the owner heap of its
/// span (the *free key*); `free` writes it (without reading the block first: a block
/// the CPU does not have in cache costs no wait) and `malloc` checks and clears it as
/// it hands the block out. A block freed twice sits on a free list twice; the first pop
/// takes its key, so the second finds none and reports it instead of handing the block
/// out again (`check::bad_pop`).
#[repr(C)]
pub struct Block {
    /// The next free block, or null.
    pub next: *mut Block,
    /// The free key: the span's owner heap while the block is free, null while in use.
    pub key: *mut Heap,
}

/// Bias added to `used` while a span is its bin's current span.
pub const USED_CURRENT: u32 = 1 << 30;
/// Flag in `used`: the span had no free block and left its heap's lists; the next local
/// free puts it back.
pub const USED_FULL: u32 = 1 << 31;

/// Whether a free that left `used` at this value needs the slow path: the span became
/// empty (and is not current) or was parked full. As a signed number, both cases are
/// the values at or below zero (`USED_FULL` is the sign bit), so the check is the
/// flags of the decrement itself.
#[inline(always)]
pub fn free_needs_slow_path(used: u32) -> bool {
    (used as i32) <= 0
}

/// What a span is used for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SpanKind {
    /// Free space, owned by the central pool.
    Free = 0,
    /// Blocks of one size class, owned by a heap.
    Small = 1,
    /// One large block.
    Large = 2,
}

/// The record for one slice; meaningful in the first slice of a span. Three cache
/// lines: the first holds what the owner's fast paths write (free list, count), the
/// second what every thread reads and nobody writes while the span is in use (head,
/// owner, kind, block size), the third what other threads' frees write (the remote
/// list) and the central pool's bookkeeping. A free from another thread reads only the
/// second line, so it does not pull the first away from an owner that is allocating
/// from the same span (the producer/consumer pattern). The record is padded to 256
/// bytes so that `free` finds it with a shift and a mask (192 would cost a multiply).
#[repr(C, align(256))]
pub struct Span {
    /// Owner's list of free blocks (small spans).
    pub free: *mut Block,
    /// Blocks handed out and not freed (small spans), plus two flags in the high bits:
    /// [`USED_CURRENT`] while the span is its bin's current span (so a free never sees 0
    /// there and stays on the fast path), [`USED_FULL`] while it is parked full.
    pub used: u32,
    /// Owner's note: the span left the remote stack with its remote list left in place
    /// (it still had local blocks), so the notified flag is set but means nothing.
    pub remote_kept: bool,
    /// Owner's note: the free list holds blocks other threads freed (taken off the
    /// remote word since the list was last empty), so `heap::alloc` does not reorder it
    /// by address: walking it would read a line another core wrote last per block.
    pub remote_in_free: bool,
    /// Next never-used byte; blocks are carved from here lazily, up to the last whole
    /// block of the span.
    pub bump: *mut u8,
    /// List links: heap partial list, or central free bin.
    pub next: *mut Span,
    /// Blocks handed out from this span since it was last folded into its owner
    /// heap's counters (small spans; written by the owner, read by reports).
    pub allocs: AtomicU64,
    /// Small spans: the sum of the addresses of the blocks handed out and not yet
    /// given back to the owner (modulo 2^64; owner only). Zero exactly when no block is
    /// in use, whatever the count says: a block freed twice leaves it off by that
    /// block's address, which `check::verify_empty` finds before the span goes back.
    pub live_sum: u64,
    /// See `next`. In the first line with it: taking a span off a list touches its
    /// neighbours' `next` and `prev`, and a span switch (`alloc_slow`) is a cache miss
    /// per line touched.
    pub prev: *mut Span,
    _line1_end: [u8; 8],

    /// For every slice of a span in use: the span's first slice record, so `free`
    /// finds its span with one load. In a free span, set in its first and last slice.
    pub head: *mut Span,
    /// The heap that owns this span (small spans); null otherwise.
    pub owner: *mut Heap,
    /// Small spans: the first block's address, the start of the block grid. Large
    /// spans: the block's address tagged with bit 0 while it is live (`heap::large`,
    /// whose free claims it with a compare-and-swap), null once freed.
    pub grid_base: usize,
    /// Small spans: the multiplier of the block-grid test (see [`Span::on_grid`]).
    pub grid_mul: u64,
    /// Small spans: the bound of the block-grid test, which grows as blocks are carved
    /// (0: no block is a valid pointer). Written by the owner only, atomically; the
    /// owner reads it plainly ([`Span::on_grid_owner`]), other threads atomically.
    pub grid_limit: u64,
    /// Block size in bytes (small spans).
    pub block_size: u32,
    /// Slices in the span (first slice only).
    pub slice_count: u8,
    /// What the span holds.
    pub kind: SpanKind,
    /// Size class index (small spans).
    pub class: u8,
    /// Small spans: the smallest request of the class (`class_lo`) and the largest
    /// minus it (`class_range`), so a sized free checks its size with one subtract and
    /// one compare: `size - class_lo <= class_range` (wrapping) exactly when the size
    /// maps to this class.
    pub class_lo: u64,
    /// See `class_lo`.
    pub class_range: u64,

    /// Blocks of this span freed by other threads, as one word (see [`RemoteList`]):
    /// pushed with a CAS by any thread, taken whole by the owner (or by a thread that
    /// reuses the blocks: `heap::foreign`). In the third cache
    /// line, so those CASes do not contend with the owner's fast-path fields.
    pub remote: AtomicU64,
    /// The sum of the addresses of the blocks pushed on `remote` and not yet taken by
    /// the owner: a pusher adds its chain's sum before it publishes the chain, so the
    /// owner, having taken a list, takes (at least) its sum too. A thread that steals
    /// the list takes the stolen blocks' sum off (for a while below zero, wrapping).
    pub remote_sum: AtomicU64,
    /// Link in the owner heap's stack of spans that have remote frees to collect.
    pub remote_next: AtomicPtr<Span>,
    /// When a free span became free (ns), for delayed purging.
    pub freed_at_ns: u64,
    /// Set when central hands the span out: its memory reads as zero (every slice was
    /// fresh or purged, none written since; central's `dirty_slices` says so). In a
    /// small span it then goes on meaning that the pages past `bump` (from the next
    /// page boundary) read as zero, as carving writes only below `bump`; the owner
    /// sets it again when it purges them (`purge_tail` in `heap/alloc.rs`).
    pub zero: bool,
    /// Small spans: `bump` when the owner heap was last collected with its thread gone
    /// (null before), so the next such collection sees whether the span carved anything
    /// in between (`heap::collect` with `Tails::Idle`).
    pub bump_at_exit: *mut u8,
    /// Small spans: when such a collection first found `bump` where it is now (ns).
    pub bump_since_ns: u64,
    /// Large spans: the heap that allocated the block, to which a free from another
    /// thread hands the span back (`heap::large`); null if none.
    pub large_home: *mut Heap,
}

/// The word behind [`Span::remote`]: the list head in the low 48 bits, the number of
/// blocks in it in the next 15, and a *notified* flag in the top bit, set while the
/// span sits in its owner's stack of spans to visit. The count travels with the list,
/// so the owner takes both with one atomic operation and never walks the list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RemoteList(pub u64);

impl RemoteList {
    const PTR_BITS: u32 = 48;
    const PTR_MASK: u64 = (1 << Self::PTR_BITS) - 1;
    /// Set while the span is (or is being put) on its owner's stack.
    pub const NOTIFIED: u64 = 1 << 63;

    /// The first block of the list, or null.
    #[inline]
    pub fn head(self) -> *mut Block {
        (self.0 & Self::PTR_MASK) as *mut Block
    }

    /// Blocks in the list.
    #[inline]
    pub fn count(self) -> u32 {
        ((self.0 & !Self::NOTIFIED) >> Self::PTR_BITS) as u32
    }

    /// Whether the span is on its owner's stack.
    #[inline]
    pub fn notified(self) -> bool {
        self.0 & Self::NOTIFIED != 0
    }

    /// This list with `b` pushed in front, and notified.
    #[inline]
    pub fn pushed(self, b: *mut Block) -> RemoteList {
        self.pushed_chain(b, 1)
    }

    /// This list with a chain of `n` blocks starting at `head` put in front (the
    /// caller links the chain's tail to `self.head()`), and notified.
    #[inline]
    pub fn pushed_chain(self, head: *mut Block, n: u32) -> RemoteList {
        debug_assert!(head as u64 <= Self::PTR_MASK && self.count() + n < 1 << 15);
        RemoteList((head as u64) | (((self.count() + n) as u64) << Self::PTR_BITS) | Self::NOTIFIED)
    }
}

/// A span with nothing in it: the sentinel that empty bins point to, so the
/// allocation fast path needs no null check. Never written: the slow path checks for
/// it first.
pub static EMPTY_SPAN: Span = Span::empty();

impl Span {
    /// A record with no blocks, in no segment (`slice_count` 0): [`EMPTY_SPAN`], and
    /// the lists of blocks a heap keeps (`heap::foreign`), which borrow the record's
    /// free list and counters so that `malloc`'s fast path hands their blocks out.
    pub const fn empty() -> Span {
        Span {
            free: ptr::null_mut(),
            used: 0,
            block_size: 0,
            bump: ptr::null_mut(),
            owner: ptr::null_mut(),
            next: ptr::null_mut(),
            head: ptr::null_mut(),
            allocs: AtomicU64::new(0),
            live_sum: 0,
            grid_base: 0,
            grid_mul: 0,
            grid_limit: 0,
            prev: ptr::null_mut(),
            _line1_end: [0; 8],
            class_lo: 0,
            class_range: 0,
            slice_count: 0,
            kind: SpanKind::Free,
            class: 0,
            zero: false,
            remote_kept: false,
            remote_in_free: false,
            remote: AtomicU64::new(0),
            remote_sum: AtomicU64::new(0),
            remote_next: AtomicPtr::new(ptr::null_mut()),
            freed_at_ns: 0,
            bump_at_exit: ptr::null_mut(),
            bump_since_ns: 0,
            large_home: ptr::null_mut(),
        }
    }
}

/// The block grid of a small span: whether a pointer is the start of a block that has
/// been carved, in one multiply and one compare (Lemire, Kaser and Kurz, "Faster
/// remainder by direct computation", 2019, applied to divisibility).
///
/// With block size `d` and `c = floor(2^64 / d) + 1`, `c * d = 2^64 + e` with
/// `0 < e <= d`. For an offset `n = q * d + r` below 4 MiB, `n * c mod 2^64` is
/// `q * e + r * c` without wrapping (`c > 2^47`): below `c` exactly when `r == 0`, and
/// then `q * e`, which grows with the block index `q`. So `n * c mod 2^64 < m * e`
/// holds exactly for the starts of the first `m` blocks: interior and unaligned
/// pointers, the never-carved rest of the span and its tail all fail.
impl Span {
    /// The multiplier `c` for blocks of `size` bytes (16 ..= 64 KiB).
    pub const fn grid_mul_for(size: usize) -> u64 {
        // floor(2^64 / d) in 64-bit arithmetic (a 128-bit division is a call to
        // `__udivti3`): floor((2^64 - 1) / d), plus one when d divides 2^64.
        let d = size as u64;
        u64::MAX / d + (u64::MAX % d == d - 1) as u64 + 1
    }

    /// Whether `p` is the start of a carved block of this small span, read by any
    /// thread.
    ///
    /// # Safety
    /// `span` is the head record of the span `p`'s slice names, so `p` is at or above
    /// `grid_base` and less than 4 MiB past it.
    #[inline(always)]
    pub unsafe fn on_grid(span: *const Span, p: usize) -> bool {
        // SAFETY: caller's contract: the record is mapped; the bound is read atomically
        // (its owner may be carving).
        unsafe {
            let limit = AtomicU64::from_ptr((&raw const (*span).grid_limit).cast_mut());
            Span::grid_offset(span, p) < limit.load(Ordering::Acquire)
        }
    }

    /// [`Span::on_grid`] for the span's owner thread, which alone writes the bound.
    ///
    /// # Safety
    /// As for [`Span::on_grid`], and the caller's heap owns the span.
    #[inline(always)]
    pub unsafe fn on_grid_owner(span: *const Span, p: usize) -> bool {
        // SAFETY: caller's contract: only this thread writes the bound.
        unsafe { Span::grid_offset(span, p) < (*span).grid_limit }
    }

    /// `(p - grid_base) * grid_mul mod 2^64`.
    ///
    /// # Safety
    /// `span` is a mapped record.
    #[inline(always)]
    unsafe fn grid_offset(span: *const Span, p: usize) -> u64 {
        // SAFETY: caller's contract; both fields are set before the span is published.
        unsafe { (p.wrapping_sub((*span).grid_base) as u64).wrapping_mul((*span).grid_mul) }
    }

    /// Raises the bound by `n` blocks of `size` bytes: the owner, after carving them.
    ///
    /// # Safety
    /// The caller's heap owns the small span `span`.
    pub unsafe fn grow_grid(span: *mut Span, n: usize, size: usize) {
        // The owner is the only writer, so a load and a store do what `fetch_add`
        // would without its `lock` prefix, which waited for the line (other threads'
        // frees read it): 23% of `alloc_slow`'s samples in `shared-slots/t8`.
        // SAFETY: caller's contract; Release pairs with other threads' Acquire loads.
        unsafe {
            let limit = AtomicU64::from_ptr(&raw mut (*span).grid_limit);
            // The step from the span's multiplier: no division per carve.
            let step = (*span).grid_mul.wrapping_mul(size as u64);
            let grown = limit.load(Ordering::Relaxed) + n as u64 * step;
            limit.store(grown, Ordering::Release);
        }
    }

    /// Sets the grid of a span that is becoming a small span of `size`-byte blocks from
    /// `base`, none carved yet.
    ///
    /// # Safety
    /// The caller owns the span exclusively (just taken from the central pool).
    pub unsafe fn reset_grid(span: *mut Span, base: usize, size: usize) {
        // SAFETY: caller's contract.
        unsafe {
            (*span).grid_base = base;
            (*span).grid_mul = Span::grid_mul_for(size);
            AtomicU64::from_ptr(&raw mut (*span).grid_limit).store(0, Ordering::Relaxed);
        }
    }

    /// Takes every block of a small span off its grid (`bump` stays): the span is
    /// emptied and kept by its heap for another class (`heap::span_cache`), so a free
    /// of one of its old blocks fails the free paths' grid test and is reported as
    /// freed twice (`check::off_grid`), where it would otherwise join a list no one
    /// reads.
    ///
    /// # Safety
    /// The caller owns the span; no block of it is in use.
    pub unsafe fn clear_grid(span: *mut Span) {
        // SAFETY: caller's contract; the limit is read atomically by other threads.
        unsafe { AtomicU64::from_ptr(&raw mut (*span).grid_limit).store(0, Ordering::Relaxed) }
    }
}

// SAFETY: spans are plain records; the ownership rules in the module header say which
// thread may touch which field. The raw pointers in them are never dereferenced
// without following those rules.
unsafe impl Sync for Span {}

/// The header at the start of every normal segment.
#[repr(C)]
pub struct Segment {
    /// Central's list of segments.
    pub next: *mut Segment,
    /// See `next`.
    pub prev: *mut Segment,
    /// The segment lies in the program break (`OXALLOC_PAGE_SOURCE=brk`).
    pub from_brk: bool,
    /// Not used by the core: set by a layer above it (the hardened build) once it has
    /// made the unused rest of slice 0, between this header and the first data slice,
    /// inaccessible. False in every freshly mapped segment.
    pub guarded: AtomicBool,
    /// Bit `i`: slice `i` is free and may hold resident pages written since it was
    /// mapped or purged (central's lock guards it). A free slice whose bit is clear
    /// reads as zero.
    pub dirty_slices: u64,
    /// The heap (its address) whose spans this segment serves first, 0 for none
    /// (central's lock guards it): see `Central::take`.
    pub home: usize,
    /// One record per slice.
    pub spans: [Span; SLICES],
}

/// Size of the segment header, rounded to whole pages.
pub const SEGMENT_HEADER_BYTES: usize = core::mem::size_of::<Segment>().next_multiple_of(4096);
const _: () = assert!(SEGMENT_HEADER_BYTES <= SLICE_SIZE);
const _: () = assert!(core::mem::size_of::<Span>() == 256);
const _: () = assert!(core::mem::offset_of!(Span, allocs) < 64);
const _: () = assert!(core::mem::offset_of!(Span, prev) < 64);
const _: () = assert!(core::mem::offset_of!(Span, head) == 64);
const _: () = assert!(core::mem::offset_of!(Span, class) < 128);
const _: () = assert!(core::mem::size_of::<Block>() <= crate::size_class::SizeClass::of(0).size());
// The grid test needs `c > 4 MiB` and offsets below 4 MiB (see `Span::on_grid`).
const _: () =
    assert!(Span::grid_mul_for(crate::size_class::MAX_SMALL) > (SEGMENT_SIZE as u64) << 8);
const _: () = assert!(core::mem::offset_of!(Span, remote) == 128);

impl Segment {
    /// The segment a pointer into it belongs to.
    #[inline(always)]
    pub fn of(p: usize) -> *mut Segment {
        (p & !SEGMENT_MASK) as *mut Segment
    }

    /// The first slice record of the span holding `p`.
    ///
    /// # Safety
    /// `seg` is a live normal segment (the segment map says so) and `p` lies in it.
    #[inline(always)]
    pub unsafe fn span_of(seg: *mut Segment, p: usize) -> *mut Span {
        let idx = (p >> SLICE_SHIFT) & (SLICES - 1);
        // SAFETY: idx < SLICES because p lies inside the 4 MiB segment; the header is
        // mapped for as long as the segment is, and every slice of a span in use names
        // its head.
        unsafe { (*(&raw mut (*seg).spans).cast::<Span>().add(idx)).head }
    }

    /// The address of the first byte of slice `idx`.
    #[inline]
    pub fn slice_start(seg: *mut Segment, idx: usize) -> *mut u8 {
        (seg as usize + idx * SLICE_SIZE) as *mut u8
    }

    /// The index of a slice record within its segment.
    #[inline]
    pub fn slice_index(span: *const Span) -> usize {
        let seg = Segment::of(span as usize);
        (span as usize - (seg as usize + core::mem::offset_of!(Segment, spans)))
            / core::mem::size_of::<Span>()
    }

    /// Calls `f` with the head record and slice count of every span of a segment.
    ///
    /// # Safety
    /// `seg` is a live segment and the caller holds the central lock, so span heads
    /// are stable and every head's `slice_count` is set.
    unsafe fn for_each_span(seg: *mut Segment, mut f: impl FnMut(&Span, u64)) {
        let mut i = FIRST_SLICE;
        while i < SLICES {
            // SAFETY: caller's contract; the walk stays inside the records. Fields a
            // heap owner writes concurrently (`used`) are read for reports only.
            let s = unsafe { &*(&raw mut (*seg).spans).cast::<Span>().add(i) };
            let count = (s.slice_count as usize).max(1);
            f(s, count as u64);
            i += count;
        }
    }

    /// Counts a segment's data slices: (used, free and dirty, free and purged).
    ///
    /// # Safety
    /// `seg` is a live segment and the caller holds the central lock.
    pub unsafe fn census(seg: *mut Segment) -> (u64, u64, u64) {
        let (mut used, mut free) = (0, 0);
        // SAFETY: caller's contract.
        unsafe {
            Segment::for_each_span(seg, |s, count| match s.kind {
                SpanKind::Free => free += count,
                _ => used += count,
            })
        };
        // SAFETY: as above; the mask is exact per slice.
        let dirty = unsafe { (*seg).dirty_slices }.count_ones() as u64;
        (used, dirty, free - dirty)
    }

    /// Calls `f(owner, class, blocks in use, allocations not yet folded into the
    /// owner's counters)` for every small span of a segment.
    ///
    /// # Safety
    /// `seg` is a live segment and the caller holds the central lock.
    pub unsafe fn for_each_small_span(
        seg: *mut Segment,
        mut f: impl FnMut(*mut Heap, usize, u32, u64),
    ) {
        // SAFETY: caller's contract.
        unsafe {
            Segment::for_each_span(seg, |s, _| {
                if s.kind == SpanKind::Small {
                    let allocs = s.allocs.load(Ordering::Relaxed);
                    f(
                        s.owner,
                        s.class as usize,
                        s.used & (USED_CURRENT - 1),
                        allocs,
                    );
                }
            })
        };
    }

    /// The first byte of the memory a span describes.
    #[inline]
    pub fn span_start(span: *const Span) -> *mut u8 {
        Segment::slice_start(Segment::of(span as usize), Segment::slice_index(span))
    }
}

/// What the segment map says about an address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    /// Not ours.
    Foreign,
    /// A normal segment.
    Normal,
    /// A huge region.
    Huge,
}

/// Bits of the user addresses the kernel hands out without a hint: x86-64 Linux keeps
/// them below 2^47 (also with 5-level paging); aarch64 Linux (48-bit VA) maps just below
/// 2^48 (`0xffff...` addresses), so a 47-bit map would own none of its segments and
/// every `free` there would take the block for a foreign pointer. (qemu-user places
/// the guest low, so the emulated tests cannot see this; `tests` below checks the top
/// granule.)
#[cfg(target_arch = "aarch64")]
pub const ADDRESS_BITS: usize = 48;
/// See the aarch64 value.
#[cfg(not(target_arch = "aarch64"))]
pub const ADDRESS_BITS: usize = 47;
const GRANULES: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);

const FOREIGN: u8 = 0;
const NORMAL: u8 = 1;
/// Huge granules hold `HUGE + k`, `k` granules after their region's start (at most
/// [`HUGE_STEP_MAX`]; a region further back is found in several steps).
const HUGE: u8 = 2;
const HUGE_STEP_MAX: usize = (u8::MAX - HUGE) as usize;

/// One byte per 4 MiB of the user address space ([`ADDRESS_BITS`]): is this segment
/// ours, and what kind. 32 MiB of `.bss` (64 MiB on aarch64), of which the kernel backs
/// only the pages we touch (one page covers 16 GiB of address space). A byte rather
/// than two bits keeps `free`'s check to a shift and a load.
pub struct SegmentMap {
    entries: [AtomicU8; GRANULES],
}

/// The process-wide segment map.
pub static SEGMENT_MAP: SegmentMap = SegmentMap {
    entries: [const { AtomicU8::new(FOREIGN) }; GRANULES],
};

impl SegmentMap {
    /// Who owns the segment-aligned address containing `p`. Relaxed is enough: a
    /// pointer reaches `free` only after the allocation that published its segment.
    #[inline(always)]
    pub fn owner(&self, p: usize) -> Owner {
        let g = p >> SEGMENT_SHIFT;
        if g >= GRANULES {
            return Owner::Foreign;
        }
        // SAFETY: g < GRANULES was just checked.
        match unsafe { self.entries.get_unchecked(g) }.load(Ordering::Relaxed) {
            NORMAL => Owner::Normal,
            FOREIGN => Owner::Foreign,
            _ => Owner::Huge,
        }
    }

    /// The normal segment holding `p`, if `p`'s granule is one: `free`'s test, on the
    /// shifted pointer (which is also the segment's number) and the map's byte.
    ///
    /// On x86-64 the granule number is masked to the map rather than compared with its
    /// size (one instruction instead of two on every `free`): a pointer at or above
    /// 2^47 (no user mapping can be there) may then name one of our segments, at the
    /// same offset. The caller's checks still refuse it: its offset from the span's
    /// block grid is 2^47 times a nonzero number plus the real offset, which passes the
    /// grid test ([`Span::on_grid`]) only for a vanishing set of values (never for a
    /// power-of-two block size), and `free` would then fault on its first write, to the
    /// pointer itself (non-canonical, or the kernel's half), before changing anything.
    /// So a free there is reported, or faults, as glibc's does; it never frees a
    /// block. aarch64 compares: its top byte is ignored by loads and stores (tagged
    /// pointers), so an alias there would be a real block.
    #[inline(always)]
    pub fn normal_segment(&self, p: usize) -> Option<*mut Segment> {
        let mut g = p >> SEGMENT_SHIFT;
        // An empty asm hides that `g` came from `p`: LLVM would otherwise test
        // `p >> ADDRESS_BITS` and shift `p` a second time (two more instructions on every
        // free).
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        // SAFETY: the template is empty; the register keeps its value.
        unsafe {
            core::arch::asm!("/* {g} */", g = inout(reg) g, options(pure, nomem, nostack, preserves_flags));
        }
        #[cfg(target_arch = "x86_64")]
        {
            g &= GRANULES - 1;
        }
        #[cfg(not(target_arch = "x86_64"))]
        if g >= GRANULES {
            return None;
        }
        // SAFETY: g < GRANULES (masked or checked above). Entry `g` changes only when
        // granule `g` is mapped or unmapped, which happens-before the allocation of any
        // block in it and after the free of its last one; so a free of a block we handed
        // out never races with a write. Only a free of a wild pointer into a granule being mapped
        // at that moment could, and it reads the old or the new byte. (A plain read: the
        // compiler folds it into the compare; an atomic load costs a separate `movzx`.)
        let e = unsafe { ptr::read(self.entries.as_ptr().add(g).cast::<u8>()) };
        (e == NORMAL).then_some((g << SEGMENT_SHIFT) as *mut Segment)
    }

    /// Records that the 4 MiB granule at `seg` is ours (or no longer, with `Foreign`).
    pub fn set(&self, seg: usize, owner: Owner) {
        let g = seg >> SEGMENT_SHIFT;
        if g >= GRANULES {
            return;
        }
        let v = match owner {
            Owner::Foreign => FOREIGN,
            Owner::Normal => NORMAL,
            Owner::Huge => HUGE,
        };
        self.entries[g].store(v, Ordering::Release);
    }

    /// Records a huge region of `len` bytes at `base` (both granule aligned).
    pub fn set_huge_region(&self, base: usize, len: usize) {
        let first = base >> SEGMENT_SHIFT;
        for k in 0..len >> SEGMENT_SHIFT {
            if let Some(e) = self.entries.get(first + k) {
                e.store(HUGE + k.min(HUGE_STEP_MAX) as u8, Ordering::Release);
            }
        }
    }

    /// Forgets every granule of `[base, base + len)`.
    pub fn clear_range(&self, base: usize, len: usize) {
        let first = base >> SEGMENT_SHIFT;
        for k in 0..len >> SEGMENT_SHIFT {
            if let Some(e) = self.entries.get(first + k) {
                e.store(FOREIGN, Ordering::Release);
            }
        }
    }

    /// The start of the huge region holding `p`, or 0 if `p`'s granule is not huge.
    pub fn huge_region_of(&self, p: usize) -> usize {
        let mut g = p >> SEGMENT_SHIFT;
        loop {
            let Some(e) = self.entries.get(g) else {
                return 0;
            };
            let v = e.load(Ordering::Relaxed);
            if v < HUGE {
                return 0;
            }
            let back = (v - HUGE) as usize;
            if back == 0 {
                return g << SEGMENT_SHIFT;
            }
            g -= back;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_multiplier_is_floor_of_2_pow_64_over_the_size_plus_one() {
        let sizes = (2..=16usize).chain((16..=crate::size_class::MAX_SMALL).step_by(16));
        for d in sizes.chain([3, 48, 4095, 4097, 65535]) {
            let exact = ((1u128 << 64) / d as u128) as u64 + 1;
            assert_eq!(Span::grid_mul_for(d), exact, "size {d}");
        }
    }

    #[test]
    fn segment_map_round_trip() {
        let addr = 0x7000_0000_0000usize & !SEGMENT_MASK;
        assert_eq!(SEGMENT_MAP.owner(addr + 12345), Owner::Foreign);
        SEGMENT_MAP.set(addr, Owner::Normal);
        assert_eq!(SEGMENT_MAP.owner(addr + 12345), Owner::Normal);
        assert_eq!(SEGMENT_MAP.owner(addr + SEGMENT_SIZE), Owner::Foreign);
        SEGMENT_MAP.set(addr, Owner::Huge);
        assert_eq!(SEGMENT_MAP.owner(addr), Owner::Huge);
        SEGMENT_MAP.set(addr, Owner::Foreign);
        assert_eq!(SEGMENT_MAP.owner(addr), Owner::Foreign);
        assert_eq!(SEGMENT_MAP.owner(usize::MAX), Owner::Foreign);
    }

    #[test]
    fn the_map_covers_the_top_of_the_user_address_space() {
        // The highest segment the kernel can hand out (aarch64: just below 2^48, where
        // its mmap areas are) is recorded and found by `free`'s test; the first address
        // past the map is foreign.
        let top = (1usize << ADDRESS_BITS) - SEGMENT_SIZE;
        SEGMENT_MAP.set(top, Owner::Normal);
        assert_eq!(SEGMENT_MAP.owner(top + 4096), Owner::Normal);
        assert_eq!(
            SEGMENT_MAP.normal_segment(top + SEGMENT_SIZE - 16),
            Some(top as *mut Segment)
        );
        SEGMENT_MAP.set(top, Owner::Foreign);
        assert_eq!(SEGMENT_MAP.normal_segment(top + 16), None);
        assert_eq!(SEGMENT_MAP.owner(1 << ADDRESS_BITS), Owner::Foreign);
        #[cfg(target_arch = "aarch64")]
        {
            let arm64_mmap = 0xffff_a000_0000usize;
            SEGMENT_MAP.set(arm64_mmap, Owner::Normal);
            assert_eq!(
                SEGMENT_MAP.normal_segment(arm64_mmap + 64),
                Some(arm64_mmap as *mut Segment)
            );
            SEGMENT_MAP.set(arm64_mmap, Owner::Foreign);
        }
    }

    #[test]
    fn huge_regions_find_their_start_from_any_granule() {
        // A region longer than one step of the map's distance byte.
        let base = 0x6000_0000_0000usize;
        let len = (HUGE_STEP_MAX * 2 + 7) * SEGMENT_SIZE;
        SEGMENT_MAP.set_huge_region(base, len);
        for k in [
            0,
            1,
            HUGE_STEP_MAX - 1,
            HUGE_STEP_MAX,
            HUGE_STEP_MAX + 1,
            HUGE_STEP_MAX * 2 + 6,
        ] {
            let p = base + k * SEGMENT_SIZE + 12345;
            assert_eq!(SEGMENT_MAP.owner(p), Owner::Huge, "granule {k}");
            assert_eq!(SEGMENT_MAP.huge_region_of(p), base, "granule {k}");
        }
        assert_eq!(SEGMENT_MAP.huge_region_of(base + len), 0);
        assert_eq!(SEGMENT_MAP.huge_region_of(base - 1), 0);
        SEGMENT_MAP.clear_range(base, len);
        assert_eq!(SEGMENT_MAP.owner(base + SEGMENT_SIZE), Owner::Foreign);
    }

    #[test]
    fn remote_list_word_packs_head_count_and_flag() {
        let empty = RemoteList(0);
        assert!(empty.head().is_null() && empty.count() == 0 && !empty.notified());
        let a = 0x7fff_ffff_fff0usize as *mut Block;
        let b = 0x0000_1234_5670usize as *mut Block;
        let one = empty.pushed(a);
        assert_eq!((one.head(), one.count(), one.notified()), (a, 1, true));
        let two = one.pushed(b);
        assert_eq!((two.head(), two.count(), two.notified()), (b, 2, true));
        let five = two.pushed_chain(a, 3);
        assert_eq!((five.head(), five.count()), (a, 5));
        let five = two.pushed_chain(a, 3);
        assert_eq!((five.head(), five.count()), (a, 5));
        // What the owner leaves when it takes the list but the span is still stacked.
        let kept = RemoteList(two.0 & RemoteList::NOTIFIED);
        assert!(kept.head().is_null() && kept.count() == 0 && kept.notified());
    }

    #[test]
    fn header_fits_in_slice_zero() {
        assert!(core::mem::size_of::<Segment>() < SLICE_SIZE);
    }
}
