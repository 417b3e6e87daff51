//! The default build's checks on a block being freed, past the fast path's test.
//!
//! The fast path frees a small block only if its span is this thread's, the pointer is
//! the start of a carved block (`Span::on_grid`), and the block's second word is not the
//! free key (`Block::key`). Everything else comes here, where a failure is told apart
//! from a free that is fine after all:
//! * off the grid: an interior, misaligned or never-handed-out pointer: reported;
//! * carrying the key: a double free if the block is on one of its span's free lists
//!   (its owner's list, its remote list, or a chain a thread has gathered for it),
//!   reported; otherwise the program's data just happens to hold the key, and the free
//!   goes on.
//!
//! The lists may belong to another thread, which pops and pushes while we walk them: the
//! walk reads each link once (volatile), follows only pointers that are themselves
//! blocks of the span, and stops after as many steps as the span has blocks. A block
//! freed twice is found as long as it has not been handed out again; a racing walk can
//! miss it (then the free goes on, as without the check) but never finds a block that
//! is not free.
#![allow(unsafe_code)]

use super::*;
use crate::misuse::{self, Op};

/// Blocks a small span can hold: the bound of a list walk.
///
/// # Safety
/// `span` is a small span record.
unsafe fn capacity(span: *const Span) -> usize {
    // SAFETY: caller's contract.
    unsafe {
        (*span).slice_count.max(1) as usize * SLICE_SIZE / ((*span).block_size as usize).max(16)
    }
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
/// `b` was just popped from the free list of `span`, a small span of the caller's heap.
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
        let key = &raw mut (*b).key;
        *key = (*key).wrapping_byte_add((*span).owner as usize);
        (*span).free = ptr::null_mut();
        let bs = (*span).block_size as usize;
        let p = b as usize;
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
        if used & flags == flags || (used & !flags) as usize > capacity(span) {
            misuse::span_count_broken(
                Segment::span_start(span) as usize,
                (*span).block_size as usize,
            );
        }
    }
}

/// Before a span with no block in use goes back to the central pool: its free list
/// must hold every block carved from it, each once. A block freed twice leaves the
/// count one short, so a span can look empty while a block of it is still in use;
/// handing the span back then would let its memory be reused under that block. The walk
/// ends at the list's end after exactly that many distinct blocks, or the span is
/// reported (a singly linked list that reaches its end holds no block twice).
///
/// # Safety
/// `span` is a small span of the caller's heap with `used == 0`, in no list.
pub(super) unsafe fn verify_empty(span: *mut Span) {
    // SAFETY: caller's contract: the free list is ours; each link is followed only
    // after its block was found on the span's grid.
    unsafe {
        let bs = (*span).block_size as usize;
        let carved = ((*span).bump as usize - (*span).grid_base) / bs;
        let mut x = (*span).free;
        let mut n = 0;
        while !x.is_null() && n <= carved {
            if !Span::on_grid_owner(span, x as usize) {
                break;
            }
            n += 1;
            x = (*x).next;
        }
        if n != carved || !x.is_null() {
            misuse::span_count_broken(Segment::span_start(span) as usize, bs);
        }
    }
}

/// Reports a pointer into a small span that is not the start of a carved block.
///
/// # Safety
/// As for [`check_small`].
#[cold]
unsafe fn off_grid(span: *mut Span, p: usize, op: Op) -> ! {
    // SAFETY: caller's contract; `bump` is read once, racily if another thread owns the
    // span (it only grows, and this is the report path).
    unsafe {
        let base = (*span).grid_base;
        let bs = (*span).block_size as usize;
        let carved = ptr::read_volatile(&raw const (*span).bump) as usize;
        if p >= base && p < carved {
            let block = base + (p - base) / bs * bs;
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
/// `alloc_aligned` decides it; `None` for a large or huge block.
fn small_class_for(size: usize, align: usize) -> Option<SizeClass> {
    if align <= 16 {
        (size <= MAX_SMALL).then(|| SizeClass::of(size))
    } else if align <= SLICE_SIZE {
        SizeClass::aligned(size, align)
    } else {
        None
    }
}
