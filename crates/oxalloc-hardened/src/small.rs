//! Small blocks: the core allocator's size classes and thread heaps underneath, the
//! checks on top.
//!
//! A request of `n` bytes takes a core block of the class of `n + ROOM`, so every
//! block has at least [`ROOM`] bytes after the user's: a canary from `n` up to the
//! last word, and in the last word the requested size, encoded with the block's
//! canary pattern (an overflow that reaches it is caught like one that does not). The
//! block's state lives in the [`shadow`](crate::shadow), out of line.
//!
//! `free` validates (the pointer is 16-byte aligned, in a core segment, and its state
//! byte goes from `LIVE` to `QUARANTINED` in one compare-and-swap), checks the canary,
//! zeroes the whole block and puts it in the thread's quarantine ring
//! ([`crate::thread`]). A block leaves the ring after the thread's next
//! `OXALLOC_QUARANTINE` frees (or bytes): it must still be all zero, or a write after
//! free is reported; then it goes back to the core (`FREED`). The core's free lists
//! link blocks through their first word; a block the core hands out must not be
//! `LIVE` or `QUARANTINED`, so a corrupted link that makes the core hand out a block
//! twice is caught.
#![allow(unsafe_code)]

use core::sync::atomic::Ordering;

use oxalloc_core::heap as core_heap;
use oxalloc_core::segment::{Owner, Segment, SpanKind, SEGMENT_MAP, SLICE_SIZE};
use oxalloc_core::size_class::{SizeClass, MAX_SMALL};

use crate::canary;
use crate::shadow::{self, FREED, LIVE, NEVER, QUARANTINED};

/// Spare bytes every block has after the requested size: canary and size word.
pub const ROOM: usize = 16;
/// The largest request served here (larger ones get mappings of their own).
pub const MAX_SMALL_REQUEST: usize = MAX_SMALL - ROOM;

/// The block length (core class size) for a request of `n` bytes.
#[inline(always)]
pub fn block_len(n: usize) -> usize {
    SizeClass::of(n + ROOM).size()
}

/// What reports call the class: the most a block of this length can hold.
#[inline(always)]
pub fn class_of_len(len: usize) -> usize {
    len - ROOM
}

/// The bytes of the block at `p`.
///
/// # Safety
/// `p` starts a block of `len` bytes that the caller may read and write.
#[inline(always)]
pub unsafe fn bytes<'a>(p: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: caller's contract.
    unsafe { core::slice::from_raw_parts_mut(p as *mut u8, len) }
}

/// Writes the canary and the size word of a block of `block.len()` bytes holding `n`.
#[inline(always)]
pub fn seal(p: usize, block: &mut [u8], n: usize) {
    let len = block.len();
    canary::write(p, &mut block[..len - ROOM], n);
    let pat = canary::pattern(p).to_le();
    let (_, tail) = block.split_at_mut(len - ROOM);
    tail[..8].copy_from_slice(&pat.to_ne_bytes());
    tail[8..].copy_from_slice(&(pat ^ n as u64).to_ne_bytes());
}

/// The requested size recorded in a block, or `None` if the size word was overwritten.
#[inline(always)]
pub fn recorded_size(p: usize, block: &[u8]) -> Option<usize> {
    let len = block.len();
    let w = u64::from_ne_bytes(block[len - 8..].try_into().expect("8 bytes"));
    let n = (w ^ canary::pattern(p).to_le()) as usize;
    (n <= len - ROOM).then_some(n)
}

/// Checks the canary of a block holding `n`: the offset of the first changed byte.
#[inline(always)]
pub fn check_seal(p: usize, block: &mut [u8], n: usize) -> Option<usize> {
    let len = block.len();
    if let Some(off) = canary::check(p, &mut block[..len - ROOM], n) {
        return Some(off);
    }
    let pat = canary::pattern(p).to_le();
    let w = u64::from_ne_bytes(block[len - ROOM..len - 8].try_into().expect("8 bytes"));
    if w != pat {
        let first = (w ^ pat).trailing_zeros() as usize / 8;
        return Some(len - ROOM + first);
    }
    None
}

/// A block the core just handed out, for `n` bytes; 0 if the core has no memory.
/// Returns the block and its length; the state byte is `LIVE` and the block sealed.
#[inline(always)]
pub fn alloc(n: usize) -> Option<(usize, usize)> {
    let len = block_len(n);
    let p = core_heap::alloc(n + ROOM) as usize;
    if p == 0 {
        return None;
    }
    let Some(state) = shadow::get_or_map(p) else {
        // SAFETY: the core just gave us `p`; nobody else has it.
        unsafe { core_heap::free(p as *mut u8) };
        return None;
    };
    let old = state.load(Ordering::Relaxed);
    if old == LIVE || old == QUARANTINED {
        crate::heap::handed_out_twice(p, len, old == LIVE);
    }
    state.store(LIVE, Ordering::Release);
    // SAFETY: the core gave us `len` bytes at `p`.
    let block = unsafe { bytes(p, len) };
    // The core's free-list link (or old data of a recycled span): not the user's.
    block[..8].fill(0);
    seal(p, block, n);
    Some((p, len))
}

/// The length of the block at `p`, which is `LIVE` or `QUARANTINED` (so its span is a
/// small span that stays put).
#[inline(always)]
pub fn len_of(p: usize) -> usize {
    // SAFETY: `p` is in a live normal segment (its block is live or quarantined, so
    // the core keeps the span); the span record is valid.
    unsafe { (*Segment::span_of(Segment::of(p), p)).block_size as usize }
}

/// Claims `p` for freeing: true if it was a live block of ours (now `QUARANTINED`);
/// false if it is not in a core segment at all (maybe a large block). Anything else
/// (`Err`) is a misuse for the caller to report.
#[inline(always)]
pub fn claim(p: usize, really: bool) -> Result<bool, u8> {
    if SEGMENT_MAP.owner(p) != Owner::Normal {
        return Ok(false);
    }
    let Some(state) = shadow::get(p).filter(|_| p.is_multiple_of(16)) else {
        return Err(NEVER);
    };
    let r = if really {
        state.compare_exchange(LIVE, QUARANTINED, Ordering::AcqRel, Ordering::Acquire)
    } else {
        match state.load(Ordering::Acquire) {
            LIVE => Ok(LIVE),
            s => Err(s),
        }
    };
    r.map(|_| true)
}

/// Where a bad pointer into a core segment points, for reports.
pub struct Place {
    /// Start of the block containing the pointer (0 if not in a block of a small span).
    pub start: usize,
    /// Its length (0 likewise).
    pub len: usize,
    /// The state byte of that block's start.
    pub state: u8,
}

/// Finds the block containing `p` (any address in a normal core segment).
#[cold]
pub fn place(p: usize) -> Place {
    let none = Place {
        start: 0,
        len: 0,
        state: NEVER,
    };
    if SEGMENT_MAP.owner(p) != Owner::Normal {
        return none;
    }
    let seg = Segment::of(p);
    if p - (seg as usize) < SLICE_SIZE {
        return none; // the segment header
    }
    // SAFETY: the segment is live; every slice record names a head (for slices of
    // free spans, too: the record of a free span's first slice).
    let span = unsafe { Segment::span_of(seg, p) };
    if span.is_null() {
        return none;
    }
    // SAFETY: `span` is a slice record of this live segment.
    let (kind, len) = unsafe { ((*span).kind, (*span).block_size as usize) };
    if kind != SpanKind::Small || len == 0 {
        return none;
    }
    let base = Segment::span_start(span) as usize;
    let start = base + (p - base) / len * len;
    let state = shadow::get(start).map_or(NEVER, |s| s.load(Ordering::Acquire));
    Place { start, len, state }
}

/// A block leaves the quarantine: still all zero (else `Err(offset)` of the first
/// changed byte, and the block stays quarantined), then `FREED` and back to the core.
#[inline(always)]
pub fn unquarantine(p: usize, len: usize) -> Result<(), usize> {
    // SAFETY: the block is quarantined: ours until we give it to the core.
    let block = unsafe { bytes(p, len) };
    if !crate::wipe::is_zero(block) {
        return Err(crate::heap::first_nonzero(block).unwrap_or(0));
    }
    if let Some(s) = shadow::get(p) {
        s.store(FREED, Ordering::Release);
    }
    // SAFETY: the core handed out `p` and we free it once (the state was QUARANTINED).
    unsafe { core_heap::free(p as *mut u8) };
    Ok(())
}
