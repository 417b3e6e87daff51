//! oxalloc as a Rust global allocator, with its statistics and options as typed values.
//!
//! # Setting it up
//!
//! One `#[global_allocator]` static sends every allocation of the program (`Box`,
//! `Vec`, `String`, collections, threads) through oxalloc:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
//!
//! fn main() {
//!     let v: Vec<u64> = (0..1000).collect();
//!     assert_eq!(v.iter().sum::<u64>(), 499_500);
//! }
//! ```
//!
//! `realloc` resizes in place when the block's size class, its span or its mapping
//! has room; `alloc_zeroed` skips the memset for fresh pages (large and huge blocks).
//!
//! # Statistics
//!
//! [`stats`] reads the allocator's counters as plain structs: process-wide
//! [`stats::totals`] (allocations, frees, bytes allocated, in use, committed, reserved
//! address space, peaks, purged), per size class ([`stats::size_classes`]) and per
//! thread heap ([`stats::heaps`]):
//!
//! ```
//! #[global_allocator]
//! static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
//!
//! fn main() {
//!     let before = oxalloc::stats::totals();
//!     let big = vec![7u8; 256 << 10];
//!     let after = oxalloc::stats::totals();
//!     assert!(after.bytes_allocated - before.bytes_allocated >= 256 << 10);
//!     assert!(after.mapped_bytes >= after.committed_bytes);
//!     drop(big);
//! }
//! ```
//!
//! # Giving memory back
//!
//! Freed pages stay cached for a while (`OXALLOC_PURGE_DELAY_MS`) and are then given
//! back to the OS by a background thread. [`trim`] gives back all cached pages now;
//! [`purge`] only those that are due.
//!
//! # Options
//!
//! The `OXALLOC_*` environment variables configure the allocator at start;
//! [`options`] reads them and changes those that may change while the program runs
//! (purge delay, cache cap, ...), with an [`options::OptionError`] for a bad value.
#![no_std]

extern crate alloc;

pub mod options;
pub mod stats;

use core::alloc::{GlobalAlloc, Layout};
use oxalloc_core::heap;
use oxalloc_core::misuse::Op;

pub use oxalloc_core::api::Mallinfo2;
pub use stats::Totals;

/// Gives the cached free memory back to the OS now: the calling thread's cached spans,
/// those of exited threads, every free page of the central pool and the huge-block
/// heap. Returns the bytes given back (0 if there was nothing).
///
/// ```
/// #[global_allocator]
/// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
///
/// fn main() {
///     let blocks: Vec<Vec<u8>> = (0..2000).map(|_| vec![1u8; 4000]).collect();
///     drop(blocks);
///     let released = oxalloc::trim();
///     // Nothing is left to give back.
///     assert_eq!(oxalloc::stats::totals().cached_bytes, 0);
///     println!("gave back {released} bytes");
/// }
/// ```
pub fn trim() -> usize {
    heap::trim()
}

/// Gives back the free pages that are due: those that have waited the purge delay
/// (`OXALLOC_PURGE_DELAY_MS`) beyond what recent demand keeps resident, as one round of
/// the background thread does. Recently freed pages stay cached (see [`trim`] to give
/// back everything). Returns the bytes given back.
///
/// ```
/// let released = oxalloc::purge();
/// println!("gave back {released} bytes");
/// ```
pub fn purge() -> usize {
    oxalloc_core::api::purge()
}

/// The oxalloc allocator. A unit struct: all state is global or per thread.
///
/// Install it with `#[global_allocator]` (see the [crate docs](crate)); its methods
/// are also available as free functions ([`trim`], [`stats::totals`]).
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
            // One of this thread's small blocks to a small size: looked up once.
            if layout.align() <= 16 {
                if let Some(q) = heap::realloc_own_small(ptr, new_size) {
                    return q;
                }
            }
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
    /// Gives cached free memory back to the OS now; returns the bytes released. The
    /// same as [`trim`].
    pub fn trim(&self) -> usize {
        trim()
    }

    /// Gives back the free pages that are due; the same as [`purge`].
    pub fn purge(&self) -> usize {
        purge()
    }

    /// The process-wide figures; the same as [`stats::totals`].
    ///
    /// ```
    /// #[global_allocator]
    /// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
    ///
    /// fn main() {
    ///     let b = Box::new([0u8; 100]);
    ///     assert!(ALLOC.totals().allocs >= 1);
    ///     drop(b);
    /// }
    /// ```
    pub fn totals(&self) -> Totals {
        stats::totals()
    }

    /// glibc-style summary numbers (`mallinfo2`): `arena` is the mapped bytes,
    /// `uordblks` the bytes in use, `fordblks` mapped but not in use, `hblks` the live
    /// huge blocks, `usmblks` the peak in use, `keepcost` the free pages not yet purged.
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

    /// Prints the statistics summary on stderr; the same as [`stats::print`].
    pub fn print_stats(&self) {
        stats::print();
    }
}
