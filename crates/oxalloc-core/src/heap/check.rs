//! The default build's checks of frees and of the free lists.
//!
//! `free` never reads the block it frees: on the fast path it tests only the pointer
//! (its span is this thread's, it is the start of a carved block: `Span::on_grid`) and
//! that it is not the head of the span's free list (a double free at once). A double
//! free that is not at once is caught later, before it can do harm:
//! * when the block would be handed out a second time: a freed block carries the free
//!   key (`Block::key`), which the first pop took ([`bad_pop`]);
//! * when its span looks empty: the count of blocks in use is one short, and the sum of
//!   the addresses handed out and not given back is not zero ([`verify_empty`]); the
//!   span is not given back under a live block;
//! * while a free list is walked (ordering, joining lists): the list loops.
//!
//! What fails the pointer test comes here too: off the grid (an interior, misaligned or
//! never-handed-out pointer) is reported at once. `malloc_usable_size` reads the key,
//! and confirms a match by finding the block on one of its span's free lists (its
//! owner's, its remote list, or a chain a thread gathered for it) before it reports:
//! the lists may belong to another thread, so the walk reads each link once (volatile),
//! follows only pointers that are themselves blocks of the span, and stops after as many
//! steps as the span has blocks. A block another heap holds for reuse (`foreign`: lists
//! of mixed spans, stolen or kept, not walked from here) is not found, so
//! `malloc_usable_size` of it says nothing; freed again, it is caught when it would be
//! handed out the second time (or at once, if it is the block that heap kept last).
#![allow(unsafe_code)]

use super::*;
use crate::misuse::{self, Op};

/// A small span's length and block size in bytes, as the checks read them: never zero,
/// even from a record a misuse has damaged.
///
/// # Safety
/// `span` is a small span record.
unsafe fn span_and_block_bytes(span: *const Span) -> (usize, usize) {
    // SAFETY: caller's contract.
    unsafe {
        (
            (*span).slice_count.max(1) as usize * SLICE_SIZE,
            ((*span).block_size as usize).max(16),
        )
    }
}

/// Blocks a small span can hold: the bound of a list walk.
///
/// # Safety
/// `span` is a small span record.
unsafe fn capacity(span: *const Span) -> usize {
    // SAFETY: caller's contract.
    let (bytes, block) = unsafe { span_and_block_bytes(span) };
    bytes / block
}

/// Whether `b` is on the list starting at `head`, walking at most `limit` links, each
/// of which must be a block of `span`.
///
/// # Safety
/// `span` is a small span record of a live segment.
unsafe fn list_holds(span: *const Span, head: *mut Block, b: *mut Block, limit: usize) -> bool {
    let mut x = head;
    for _ in 0..limit {
        if x.is_null() {
            return false;
        }
        if x == b {
            return true;
        }
        // SAFETY: `x` is a carved block of the span (checked before it was followed, or
        // the list head, checked here), so its first word is mapped memory.
        unsafe {
            if !Span::on_grid(span, x as usize) {
                return false;
            }
            x = ptr::read_volatile(&raw const (*x).next);
        }
    }
    false
}

/// Whether block `b` of the small span `span` is free: on the owner's list, on the
/// remote list, or in a chain some thread gathered for the span.
///
/// # Safety
/// `span` is a small span record of a live segment and `b` one of its carved blocks.
pub(super) unsafe fn is_free(span: *mut Span, b: *mut Block) -> bool {
    // SAFETY: caller's contract; the list heads are read once each.
    unsafe {
        let limit = capacity(span) + 1;
        let local = ptr::read_volatile(&raw const (*span).free);
        let remote = RemoteList((*span).remote.load(Ordering::Acquire)).head();
        if list_holds(span, local, b, limit) || list_holds(span, remote, b, limit) {
            return true;
        }
        let mut found = false;
        tls::for_each_heap(|h| {
            found = found || pending_holds(h, span, |head, n| list_holds(span, head, b, n));
        });
        found
    }
}

/// A small-span free that failed the fast path's test on the pointer (not the owner
/// test): reports the misuse and aborts, or returns if the free may go on (the block's
/// data only happened to hold the free key).
///
/// # Safety
/// `span` is the head record `p`'s slice names, a small span of a live segment.
#[cold]
pub(super) unsafe fn check_small(span: *mut Span, p: usize, op: Op) {
    // SAFETY: caller's contract.
    unsafe {
        let bs = (*span).block_size as usize;
        if !Span::on_grid(span, p) {
            off_grid(span, p, op);
        }
        let b = p as *mut Block;
        if ptr::read_volatile(&raw const (*b).key) == (*span).owner && is_free(span, b) {
            misuse::double_free(p, bs, op);
        }
    }
}

/// Reports a pointer into a small span that is not the start of a carved block (the
/// free paths' test; they do not read the block).
///
/// # Safety
/// As for [`check_small`].
#[inline]
pub(super) unsafe fn check_grid(span: *mut Span, p: usize, op: Op) {
    // SAFETY: caller's contract.
    unsafe {
        if !Span::on_grid(span, p) {
            off_grid(span, p, op);
        }
    }
}

/// A popped block did not carry the free key: it was on a free list twice (freed twice;
/// the first pop took its key) or was written after it was freed. Reported before it is
/// handed out a second time; never returns.
///
/// Typed as returning the block, and calling the report through an opaque pointer, so
/// that `pop` reaches it by a tail jump: a call to a function the compiler knows never
/// returns would make the malloc fast path keep an aligned stack frame (two more
/// instructions on every malloc).
///
/// # Safety
/// `b` was just popped from the free list of `span`, a small span of the caller's heap or
/// one of its kept lists (`foreign::keep`).
#[cold]
#[inline(never)]
pub(super) unsafe fn bad_pop(span: *mut Span, b: *mut Block) -> *mut u8 {
    let report: unsafe fn(*mut Span, *mut Block) -> *mut u8 =
        core::hint::black_box(report_bad_pop as unsafe fn(*mut Span, *mut Block) -> *mut u8);
    // SAFETY: caller's contract.
    unsafe { report(span, b) }
}

/// See [`bad_pop`].
///
/// # Safety
/// As for [`bad_pop`].
unsafe fn report_bad_pop(span: *mut Span, b: *mut Block) -> *mut u8 {
    // SAFETY: caller's contract: the record is the caller's, and `b` was read by the
    // pop (mapped). The key check subtracted the owner heap from `b`'s second word:
    // added back, so memory a corrupted link led to is left as it was. The list is
    // dropped: the report may allocate (loading the unwinder), and must not meet it again.
    unsafe {
        // A kept list (`foreign::keep`) is in no segment, and its record only holds the
        // list: its heap is the caller's, its blocks are other heaps'.
        let kept = (*span).slice_count == 0;
        let heap = if kept { tls::heap() } else { (*span).owner };
        let key = &raw mut (*b).key;
        *key = (*key).wrapping_byte_add(heap as usize);
        (*span).free = ptr::null_mut();
        let p = b as usize;
        if kept {
            if let Some(seg) = SEGMENT_MAP.normal_segment(p) {
                let real = Segment::span_of(seg, p);
                if (*real).kind == SpanKind::Small && Span::on_grid(real, p) {
                    misuse::freed_twice_found(p, (*real).block_size as usize, "malloc")
                }
            }
            misuse::bad_free_list_link(p, kept_class(heap, span).size(), false)
        }
        let bs = (*span).block_size as usize;
        let base = (*span).grid_base;
        if Span::on_grid_owner(span, p) {
            misuse::freed_twice_found(p, bs, "malloc")
        }
        let inside = p >= base && p < base + (*span).slice_count as usize * SLICE_SIZE;
        misuse::bad_free_list_link(p, bs, inside)
    }
}

/// Checks a span's count of blocks in use when a free takes the slow path: a double
/// free that was not caught at once counts one block too few, and the count can go
/// below zero (both flag bits then set, or a count above the span's blocks).
///
/// # Safety
/// `span` is a small span of the caller's heap.
#[inline]
pub(super) unsafe fn check_count(span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let used = (*span).used;
        let flags = USED_FULL | USED_CURRENT;
        // `used > capacity` without the division (a `div` on every slow-path free):
        // `used * block_size` stays below 2^49.
        let (bytes, block) = span_and_block_bytes(span);
        if used & flags == flags || (used & !flags) as u64 * block as u64 > bytes as u64 {
            misuse::span_count_broken(
                Segment::span_start(span) as usize,
                (*span).block_size as usize,
            );
        }
    }
}

/// Before a span with no block in use goes back to the central pool: no block of it may
/// still be in use. A block freed twice leaves the count one short, so a span can look
/// empty while a block of it is live; handing the span back would let its memory be
/// reused under that block. `live_sum` (the sum of the addresses handed out and not
/// given back) is then the live block's address minus the doubled one's, not zero:
/// one compare, where walking the free list cost a cache line per block.
///
/// # Safety
/// `span` is a small span of the caller's heap with `used == 0`, in no list.
#[inline]
pub(super) unsafe fn verify_empty(span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        if (*span).live_sum != 0 {
            // A thread that reused blocks from the remote list (`foreign`) takes their
            // sum off `remote_sum` after its steal; if this owner took the sum in
            // between, `live_sum` is low by it until the sum is taken again. Every
            // block is back now, so this take makes it exact.
            take_sum(span);
        }
        if (*span).live_sum != 0 {
            report_span_count(span);
        }
    }
}

/// Reports block `b`, found twice on the free list of `span` (it was freed twice) in
/// `call`; the list is dropped first (it loops), since the report may allocate.
///
/// # Safety
/// `span` is a small span of the caller's heap and `b` one of its blocks.
#[cold]
#[inline(never)]
pub(super) unsafe fn on_list_twice(span: *mut Span, b: *mut Block, call: &str) -> ! {
    // SAFETY: caller's contract.
    unsafe {
        (*span).free = ptr::null_mut();
        misuse::freed_twice_found(b as usize, (*span).block_size as usize, call)
    }
}

/// Blocks a one-slice span holds at most (16-byte blocks): the bound of the search for
/// a block on a free list twice.
const MAX_SLICE_BLOCKS: usize = SLICE_SIZE / 16;

/// Reports a span whose blocks were freed more often than handed out, naming the block
/// found twice on its free list if there is one (the list then loops back to it).
///
/// # Safety
/// `span` is a small span of the caller's heap.
#[cold]
#[inline(never)]
pub(super) unsafe fn report_span_count(span: *mut Span) -> ! {
    // SAFETY: caller's contract: the list is ours; a link is followed only after its
    // block was found on the span's grid.
    unsafe {
        let bs = (*span).block_size as usize;
        let base = (*span).grid_base;
        let mut seen = [0u64; MAX_SLICE_BLOCKS / 64];
        let mut x = (*span).free;
        while !x.is_null() && Span::on_grid_owner(span, x as usize) {
            let i = (x as usize - base) / bs;
            if i >= MAX_SLICE_BLOCKS {
                break;
            }
            if seen[i / 64] & (1 << (i % 64)) != 0 {
                // Mostly a free emptied the span (the stack says which call).
                on_list_twice(span, x, "free");
            }
            seen[i / 64] |= 1 << (i % 64);
            x = (*x).next;
        }
        (*span).free = ptr::null_mut();
        misuse::span_count_broken(Segment::span_start(span) as usize, bs)
    }
}

/// Reports `p` as a pointer the allocator does not own if it lies past the segment
/// map: on x86-64, `free`'s test indexes the map modulo its size
/// (`SegmentMap::normal_segment`), so such a pointer reaches the reports with the span
/// of the segment it aliases, which says nothing about it.
#[cold]
pub(super) fn not_ours_if_past_map(p: usize, op: Op) {
    if p >> crate::segment::ADDRESS_BITS != 0 {
        misuse::not_ours(p, op);
    }
}

/// Reports a pointer into a small span that is not the start of a carved block.
///
/// # Safety
/// As for [`check_small`].
#[cold]
unsafe fn off_grid(span: *mut Span, p: usize, op: Op) -> ! {
    not_ours_if_past_map(p, op);
    // SAFETY: caller's contract; `bump` is read once, racily if another thread owns the
    // span (it only grows, and this is the report path).
    unsafe {
        let base = (*span).grid_base;
        let bs = (*span).block_size as usize;
        let carved = ptr::read_volatile(&raw const (*span).bump) as usize;
        if p >= base && p < carved {
            let block = base + (p - base) / bs * bs;
            if block == p {
                // A carved block's start off the grid: the span was emptied and kept
                // for another class (`Span::clear_grid`), so the block was freed.
                misuse::double_free(p, bs, op)
            }
            misuse::interior(p, block, bs, op)
        }
        misuse::not_a_block(
            p,
            op,
            "the address is in oxalloc's memory but not in a block it handed out",
        )
    }
}

/// Checks the size (and alignment) a sized free names against the block: they must
/// describe a request this block could be serving, from `malloc` (the class they give
/// is the block's) or from an in-place `realloc` (which keeps a block while the new
/// size fits it and uses more than half of it). Reports and aborts otherwise.
///
/// # Safety
/// `p` is null or a block this allocator handed out (checked again when it is freed).
pub unsafe fn check_sized(p: *mut u8, size: usize, align: usize, op: Op) {
    let addr = p as usize;
    let owner = SEGMENT_MAP.owner(addr);
    if p.is_null() || owner == Owner::Foreign {
        return; // the free itself says what a foreign pointer is
    }
    // SAFETY: the map says the memory is ours; the free that follows checks the block
    // itself, and a bad pointer is reported there (this only reads sizes).
    let usable = unsafe { usable_size_with(p, op) };
    let fits = size <= usable;
    let ok = match owner {
        Owner::Normal => {
            // SAFETY: as above; a live block's span record is stable.
            let span = unsafe { &*Segment::span_of(Segment::of(addr), addr) };
            if span.kind == SpanKind::Small {
                small_class_for(size, align) == Some(SizeClass(span.class))
                    || (fits && (size > usable / 2 || usable <= 32) && align <= 16)
            } else {
                // A large block: a request too big for any small class (or with an
                // alignment above a slice), kept in place down to half its size.
                fits && small_class_for(size, align).is_none()
                    && (size > usable / 2 || align > SLICE_SIZE)
            }
        }
        // A huge block: grown in place, or shrunk in place down to half a MiB.
        _ => fits && (size >= HUGE_THRESHOLD / 2 || align > SLICE_SIZE),
    };
    if !ok {
        misuse::size_mismatch(addr, usable, size, align, op);
    }
}

/// The small class `malloc`/`aligned_alloc` would use for `size` and `align`, as
/// `alloc_aligned` decides it; `None` for a large or huge block, or an alignment no
/// allocation could have had (not a power of two).
fn small_class_for(size: usize, align: usize) -> Option<SizeClass> {
    if align <= 16 {
        (size <= MAX_SMALL).then(|| SizeClass::of(size))
    } else if align <= SLICE_SIZE && align.is_power_of_two() {
        SizeClass::aligned(size, align)
    } else {
        None
    }
}
