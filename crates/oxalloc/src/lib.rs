//! oxalloc as a Rust global allocator.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
//!
//! let v: Vec<u64> = (0..1000).collect();
//! assert_eq!(v.iter().sum::<u64>(), 499_500);
//! ```
//!
//! `realloc` resizes in place when the block's size class, its span or its mapping
//! has room; `alloc_zeroed` skips the memset for fresh pages (large and huge blocks).
#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use oxalloc_core::heap;
use oxalloc_core::misuse::Op;

pub use oxalloc_core::api::Mallinfo2;
pub use oxalloc_core::stats::Totals;

/// The oxalloc allocator. A unit struct: all state is global or per thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Oxalloc;

// SAFETY: every method forwards to the core allocator, which returns blocks of at
// least `layout.size()` bytes aligned to `layout.align()` (or null), and frees only
// what it handed out.
unsafe impl GlobalAlloc for Oxalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            heap::alloc(layout.size())
        } else {
            heap::alloc_aligned(layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc contract: `ptr` came from this allocator with `layout`
        // (the layout is not trusted: a size too big for the block is reported).
        unsafe { heap::free_sized(ptr, layout.size(), layout.align(), Op::Dealloc) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        heap::alloc_zeroed(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc contract: `ptr` is live and came from this allocator.
        unsafe {
            if heap::resize_in_place(ptr, new_size) {
                return ptr;
            }
            let new = Layout::from_size_align_unchecked(new_size, layout.align());
            let q = self.alloc(new);
            if !q.is_null() {
                core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                heap::free_with(ptr, Op::RustRealloc);
            }
            q
        }
    }
}

impl Oxalloc {
    /// Gives cached free memory back to the OS now; returns the bytes released.
    pub fn trim(&self) -> usize {
        heap::trim()
    }

    /// Allocation counters summed over all threads.
    pub fn totals(&self) -> Totals {
        oxalloc_core::stats::totals()
    }

    /// glibc-style summary numbers.
    pub fn mallinfo(&self) -> Mallinfo2 {
        oxalloc_core::api::mallinfo2()
    }

    /// Usable size of a block from this allocator.
    ///
    /// # Safety
    /// `ptr` is a live block from this allocator.
    pub unsafe fn usable_size(&self, ptr: *mut u8) -> usize {
        // SAFETY: caller's contract.
        unsafe { heap::usable_size(ptr) }
    }

    /// Prints the statistics summary on stderr.
    pub fn print_stats(&self) {
        oxalloc_core::stats::print_summary();
    }
}
