//! Huge blocks (1 MiB and up): one mapping each, 4 MiB aligned, with a header page in
//! front of the block, so `free(p)` finds the header by masking like any segment.
//!
//! A huge block is given back with `munmap` at once: what it holds is large enough that
//! keeping it would cost real memory, and the kernel's page zeroing makes a fresh
//! mapping cheap relative to filling it. `realloc` grows or shrinks it in place with
//! `mremap` when the address space after it is free.
#![allow(unsafe_code)]

use crate::segment::{HugeHeader, Owner, SEGMENT_MAP, SEGMENT_MASK, SEGMENT_SIZE};
use crate::stats::{self, GLOBAL};
use oxalloc_sys::PAGE_SIZE;

fn header_of(p: *mut u8) -> *mut HugeHeader {
    (p as usize & !SEGMENT_MASK) as *mut HugeHeader
}

/// Maps a huge block of `size` bytes aligned to `align` (at most `MAX_ALIGN`).
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let offset = PAGE_SIZE.max(align);
    let Some(len) = offset.checked_add(size).and_then(|n| n.checked_next_multiple_of(PAGE_SIZE)) else {
        return core::ptr::null_mut();
    };
    let Some(base) = oxalloc_sys::map_aligned(len, SEGMENT_SIZE) else {
        crate::stats::verbose("oxalloc: the OS refused memory for a huge block\n");
        return core::ptr::null_mut();
    };
    let h = base.as_ptr().cast::<HugeHeader>();
    let block = base.as_ptr() as usize + offset;
    // SAFETY: the mapping is fresh, ours alone, and starts with the header page.
    unsafe {
        h.write(HugeHeader { map_len: len, block, usable: len - offset, zero: true });
    }
    SEGMENT_MAP.set(base.as_ptr() as usize, Owner::Huge);
    stats::add(&GLOBAL.mapped_bytes, len);
    stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
    stats::add(&GLOBAL.in_use_bytes, len);
    stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
    stats::add(&GLOBAL.huge_allocs, 1);
    stats::add(&GLOBAL.huge_count, 1);
    block as *mut u8
}

/// Unmaps a huge block. Returns false (and does nothing) if `p` is not the block
/// of the mapping its granule belongs to.
///
/// # Safety
/// The segment map marks `p`'s granule huge; if `p` is that mapping's block it is not
/// used after this call.
pub unsafe fn free(p: *mut u8) -> bool {
    let h = header_of(p);
    // SAFETY: the granule is a live huge mapping, whose first page is the header.
    let (block, len) = unsafe { ((*h).block, (*h).map_len) };
    if block != p as usize {
        return false;
    }
    SEGMENT_MAP.set(h as usize, Owner::Foreign);
    // SAFETY: caller's contract: the block is dead, and the mapping is ours.
    unsafe { oxalloc_sys::unmap(h.cast(), len) };
    stats::sub(&GLOBAL.mapped_bytes, len);
    stats::sub(&GLOBAL.in_use_bytes, len);
    stats::add(&GLOBAL.unmapped_bytes, len);
    stats::add(&GLOBAL.huge_frees, 1);
    stats::sub(&GLOBAL.huge_count, 1);
    true
}

/// Usable bytes of a huge block (0 if `p` is not the block).
///
/// # Safety
/// The segment map marks `p`'s granule huge.
pub unsafe fn usable(p: *mut u8) -> usize {
    let h = header_of(p);
    // SAFETY: caller's contract: the header page is mapped.
    unsafe {
        if (*h).block == p as usize {
            (*h).usable
        } else {
            0
        }
    }
}

/// Whether the block has not been handed out before (fresh zero pages).
///
/// # Safety
/// `p` is a live huge block, just allocated.
pub unsafe fn is_zero(p: *mut u8) -> bool {
    // SAFETY: caller's contract.
    unsafe { (*header_of(p)).zero }
}

/// Grows or shrinks a huge block in place with `mremap`.
///
/// # Safety
/// `p` is a live huge block.
pub unsafe fn resize(p: *mut u8, new_size: usize) -> bool {
    let h = header_of(p);
    // SAFETY: caller's contract: the header is ours while the block lives.
    unsafe {
        if (*h).block != p as usize {
            return false;
        }
        let offset = (*h).block - h as usize;
        let Some(new_len) = offset.checked_add(new_size).and_then(|n| n.checked_next_multiple_of(PAGE_SIZE)) else {
            return false;
        };
        let old_len = (*h).map_len;
        if new_len == old_len {
            return true;
        }
        if !oxalloc_sys::resize_in_place(h.cast(), old_len, new_len) {
            return false;
        }
        (*h).map_len = new_len;
        (*h).usable = new_len - offset;
        (*h).zero = false;
        if new_len > old_len {
            stats::add(&GLOBAL.mapped_bytes, new_len - old_len);
            stats::add(&GLOBAL.in_use_bytes, new_len - old_len);
            stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
            stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        } else {
            stats::sub(&GLOBAL.mapped_bytes, old_len - new_len);
            stats::sub(&GLOBAL.in_use_bytes, old_len - new_len);
            stats::add(&GLOBAL.unmapped_bytes, old_len - new_len);
        }
        true
    }
}
