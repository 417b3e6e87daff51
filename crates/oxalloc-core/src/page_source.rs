//! Where segments come from: fresh `mmap` mappings (the default), or the program break
//! (`OXALLOC_PAGE_SOURCE=brk`), the classic heap that assembly programs grow with
//! syscall 12.
//!
//! With `brk`, a new segment is carved at the first 4 MiB boundary above the current
//! break (the gap below it stays unused and is never touched, so it costs no memory),
//! and the break is moved past it. If the kernel refuses (a mapping in the way, a
//! resource limit), the segment comes from `mmap` instead. A segment is given back by
//! moving the break down only when it is the topmost one and the break is still where
//! we left it: if the program moved the break itself, its memory is above ours and we
//! leave the break alone. A free `brk` segment that cannot be given back is purged
//! (`MADV_DONTNEED`) and kept for reuse.
//!
//! Called only from the central pool, under its lock.
#![allow(unsafe_code)]

use crate::options;
use crate::segment::{SEGMENT_MASK, SEGMENT_SIZE};
use core::ptr::NonNull;

/// The break as we last left it (0: we have not used the break).
pub struct BrkState {
    top: usize,
}

impl BrkState {
    /// No segment in the break yet.
    pub const fn new() -> BrkState {
        BrkState { top: 0 }
    }

    /// A fresh, zeroed, 4 MiB aligned segment, and whether it lies in the break.
    pub fn acquire(&mut self) -> Option<(NonNull<u8>, bool)> {
        if options::PAGE_SOURCE_BRK.on() {
            if let Some(p) = self.grow() {
                return Some((p, true));
            }
            crate::stats::verbose("oxalloc: brk refused a segment, using mmap\n");
        }
        oxalloc_sys::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE).map(|p| (p, false))
    }

    fn grow(&mut self) -> Option<NonNull<u8>> {
        let cur = oxalloc_sys::brk(0);
        if cur == 0 {
            return None;
        }
        let start = cur.checked_add(SEGMENT_MASK)? & !SEGMENT_MASK;
        let end = start.checked_add(SEGMENT_SIZE)?;
        if oxalloc_sys::brk(end) != end {
            return None;
        }
        self.top = end;
        NonNull::new(start as *mut u8)
    }

    /// Gives a whole free segment back to the OS. Returns false for a `brk` segment
    /// that must stay (not the topmost, or the program moved the break).
    ///
    /// # Safety
    /// Nothing in the segment is used, and the central pool has forgotten it if this
    /// returns true.
    pub unsafe fn release(&mut self, seg: usize, from_brk: bool) -> bool {
        if !from_brk {
            // SAFETY: caller's contract; the segment is one whole mapping of ours.
            unsafe { oxalloc_sys::unmap(seg as *mut u8, SEGMENT_SIZE) };
            return true;
        }
        if self.top != seg + SEGMENT_SIZE || oxalloc_sys::brk(0) != self.top {
            return false;
        }
        if oxalloc_sys::brk(seg) != seg {
            return false;
        }
        self.top = seg;
        true
    }

    /// Whether `release` would succeed for this segment (checked before the central
    /// pool forgets it).
    pub fn can_release(&self, seg: usize, from_brk: bool) -> bool {
        !from_brk || (self.top == seg + SEGMENT_SIZE && oxalloc_sys::brk(0) == self.top)
    }
}

impl Default for BrkState {
    fn default() -> Self {
        Self::new()
    }
}
