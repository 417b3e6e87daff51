//! Shared test helpers: a parent allocator that counts what is outstanding, and the
//! pattern checks used by every model test.
#![allow(dead_code)]

use allocator_api2::alloc::{AllocError, Allocator};
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A parent allocator over `std::alloc` that counts live regions and bytes.
#[derive(Default)]
pub struct Counting {
    pub live_regions: AtomicUsize,
    pub live_bytes: AtomicUsize,
    pub total_regions: AtomicUsize,
    /// Address of the region handed out last (a model can place blocks in it).
    pub last_region: AtomicUsize,
}

impl Counting {
    pub fn live(&self) -> (usize, usize) {
        (
            self.live_regions.load(Ordering::SeqCst),
            self.live_bytes.load(Ordering::SeqCst),
        )
    }
}

// SAFETY: forwards to the system allocator, which keeps the contract.
unsafe impl Allocator for Counting {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Err(AllocError);
        }
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc(layout) };
        let p = NonNull::new(p).ok_or(AllocError)?;
        self.live_regions.fetch_add(1, Ordering::SeqCst);
        self.total_regions.fetch_add(1, Ordering::SeqCst);
        self.live_bytes.fetch_add(layout.size(), Ordering::SeqCst);
        self.last_region
            .store(p.as_ptr() as usize, Ordering::SeqCst);
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.live_regions.fetch_sub(1, Ordering::SeqCst);
        self.live_bytes.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: caller's contract; sizes match since our sources release what they got.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}

/// Fills `len` bytes at `p` with a pattern derived from `seed`.
pub fn fill(p: NonNull<u8>, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: test blocks are `len` bytes, live and ours.
        unsafe { p.as_ptr().add(i).write(seed.wrapping_add(i as u8)) };
    }
}

/// Asserts the pattern written by `fill` is intact.
pub fn check(p: NonNull<u8>, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: as in `fill`.
        let b = unsafe { p.as_ptr().add(i).read() };
        assert_eq!(
            b,
            seed.wrapping_add(i as u8),
            "byte {i} of block {p:?} changed"
        );
    }
}

/// Asserts `[p, p+len)` overlaps none of `live` (address, len).
pub fn assert_disjoint(live: &[(usize, usize)], p: usize, len: usize) {
    if len == 0 {
        return;
    }
    for &(q, n) in live {
        let overlap = n > 0 && p < q + n && q < p + len;
        assert!(!overlap, "block {p:#x}+{len} overlaps {q:#x}+{n}");
    }
}
