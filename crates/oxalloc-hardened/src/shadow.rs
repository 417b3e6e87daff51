//! The shadow: one state byte per 16-byte granule of the core allocator's segments,
//! kept out of line (its own mappings), so user data can never change it.
//!
//! Only the byte of a block's first granule means anything: a *live* state while the
//! block is handed out, which also says how it was allocated ([`LIVE`]: the `malloc`
//! family, [`LIVE_NEW`]: C++ `new`, [`LIVE_NEW_ARRAY`]: `new[]`), [`QUARANTINED`] from
//! its `free` until it leaves the quarantine, [`FREED`] after that; [`NEVER`] (zero)
//! for every granule that never started a block we handed out. A `free` claims its
//! block with one compare-and-swap from the live state of its own family (`free`:
//! `LIVE`, `delete`: `LIVE_NEW`, `delete[]`: `LIVE_NEW_ARRAY`) to `QUARANTINED`: of
//! two frees of a block, on any threads, exactly one wins, and anything else (an
//! interior pointer, a slot never handed out, a freed block, a block of the other
//! family) goes to the report path. The family costs nothing: the value stored and
//! the value compared are constants of each function.
//!
//! A segment's shadow is 256 KiB (1/16 of its 4 MiB), mapped when its first block is
//! handed out and found through a table indexed by segment number (one entry per 4 MiB
//! of the user address space the core's segment map covers, `ADDRESS_BITS`: 256 MiB of
//! address space on x86-64, 512 MiB on aarch64, of which only the pages of live
//! segments are touched). Shadows are never unmapped: when the core
//! returns a segment to the OS and later maps one at the same address, the old bytes
//! still say `FREED` or `NEVER` (a segment is released only when none of its blocks is
//! live or quarantined), which is what they mean for the new segment too.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use oxalloc_core::segment::{ADDRESS_BITS, SEGMENT_MASK, SEGMENT_SHIFT, SEGMENT_SIZE};

/// Never the start of a block we handed out.
pub const NEVER: u8 = 0;
/// A live block allocated by the `malloc` family (and Rust's `GlobalAlloc`) starts here.
pub const LIVE: u8 = 1;
/// A live block allocated by C++ `operator new` starts here.
pub const LIVE_NEW: u8 = 5;
/// A live block allocated by C++ `operator new[]` starts here.
pub const LIVE_NEW_ARRAY: u8 = 9;
/// A freed block waiting in the quarantine starts here.
pub const QUARANTINED: u8 = 2;
/// A block that was freed (and left the quarantine) started here.
pub const FREED: u8 = 3;

/// True for the live states (the low two bits are 01).
#[inline(always)]
pub const fn is_live(state: u8) -> bool {
    state & 3 == 1
}

/// The function that allocates blocks of a live state, for reports.
pub fn allocator_name(state: u8) -> &'static str {
    match state {
        LIVE_NEW => "operator new",
        LIVE_NEW_ARRAY => "operator new[]",
        _ => "malloc",
    }
}

/// The function that frees blocks of a live state, for reports.
pub fn deallocator_name(state: u8) -> &'static str {
    match state {
        LIVE_NEW => "operator delete",
        LIVE_NEW_ARRAY => "operator delete[]",
        _ => "free",
    }
}

/// Bytes per state byte.
pub const GRANULE: usize = 16;
const SHADOW_BYTES: usize = SEGMENT_SIZE / GRANULE;
const TABLE_ENTRIES: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);

/// Address of the table of per-segment shadows (0 until [`init`]).
static TABLE: AtomicUsize = AtomicUsize::new(0);

/// Maps the table; false if the kernel refuses.
pub fn init() -> bool {
    if TABLE.load(Ordering::Acquire) != 0 {
        return true;
    }
    let Some(t) = oxalloc_sys::map(TABLE_ENTRIES * core::mem::size_of::<usize>()) else {
        return false;
    };
    TABLE.store(t.as_ptr() as usize, Ordering::Release);
    true
}

/// The table entry for the segment holding `p` (`p` below `2^ADDRESS_BITS`).
#[inline(always)]
fn entry(p: usize) -> &'static AtomicUsize {
    let t = TABLE.load(Ordering::Relaxed);
    debug_assert!(t != 0 && p >> ADDRESS_BITS == 0);
    // SAFETY: the table is mapped before any block exists (init), never unmapped, and
    // has an entry for every segment number of the user address space the segment map
    // covers; the callers pass addresses the map says are ours, so below
    // 2^ADDRESS_BITS.
    unsafe { &*(t as *const AtomicUsize).add(p >> SEGMENT_SHIFT) }
}

/// The state byte of the granule at `p`, if its segment has a shadow.
#[inline(always)]
pub fn get(p: usize) -> Option<&'static AtomicU8> {
    let s = entry(p).load(Ordering::Acquire);
    if s == 0 {
        return None;
    }
    // SAFETY: a shadow covers its whole segment and is never unmapped.
    Some(unsafe { &*((s + ((p & SEGMENT_MASK) / GRANULE)) as *const AtomicU8) })
}

/// The state byte of the granule at `p`, mapping its segment's shadow if needed;
/// `None` only when the kernel refuses the memory.
#[inline(always)]
pub fn get_or_map(p: usize) -> Option<&'static AtomicU8> {
    match get(p) {
        Some(s) => Some(s),
        None => map_for(p),
    }
}

#[cold]
#[inline(never)]
fn map_for(p: usize) -> Option<&'static AtomicU8> {
    let fresh = oxalloc_sys::map(SHADOW_BYTES)?.as_ptr() as usize;
    if let Err(_other) = entry(p).compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // Another thread mapped it first (two threads' first blocks in one segment).
        // SAFETY: `fresh` is our own mapping, never published.
        unsafe { oxalloc_sys::unmap(fresh as *mut u8, SHADOW_BYTES) };
    }
    get(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reaches_the_top_segment_of_the_address_space() {
        // aarch64 maps just below 2^48: a block there has a state byte of its own.
        assert!(init());
        let top = (1usize << ADDRESS_BITS) - SEGMENT_SIZE;
        let (a, b) = (top + 64, top + SEGMENT_SIZE - 16);
        get_or_map(a)
            .expect("shadow")
            .store(QUARANTINED, Ordering::Relaxed);
        get_or_map(b)
            .expect("shadow")
            .store(FREED, Ordering::Relaxed);
        assert_eq!(get(a).unwrap().load(Ordering::Relaxed), QUARANTINED);
        assert_eq!(get(b).unwrap().load(Ordering::Relaxed), FREED);
        assert_eq!(get(top).unwrap().load(Ordering::Relaxed), NEVER);
    }
}
