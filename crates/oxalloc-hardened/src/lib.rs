//! oxalloc-hardened: a security-first malloc that detects misuse and reports it.
//!
//! Built as `liboxalloc_hardened.so` (for `LD_PRELOAD`) and `liboxalloc_hardened.a`,
//! exporting the whole C allocator family and every C++ `operator new`/`delete`, and as
//! an rlib with the [`Hardened`] `GlobalAlloc`. Small blocks come from the fast
//! allocator's heaps (`oxalloc-core`), with every check in this crate around them: the
//! default build has no hardened code path and pays nothing for any of this.
//!
//! Layout (one idea per module):
//! * `mitigations`: the named mitigations and runtime options;
//! * `small`: small blocks on the core allocator's heaps, their canary and size word;
//! * `shadow`: the out-of-line state byte of every block;
//! * `zero_size`: `malloc(0)` slots that fault on any access;
//! * `canary`, `wipe`: overflow and use-after-free detection (patterns, zeroing);
//! * `large`, `quarantine`, `arena`: large blocks in their own guarded mappings;
//! * `heap`: the checked operations and the reports' classification;
//! * `thread`: the per-thread quarantine rings and thread exit;
//! * `report`, `backtrace`, `leaks`: what the user sees;
//! * `capi`, `cxx`: the exported C and C++ functions.
//!
//! Nothing in the allocator paths allocates: no `Vec`, `String` or `format!`; messages
//! are formatted into stack buffers and written with `write(2)`.

pub mod backtrace;
#[doc(hidden)]
pub use oxalloc_core::stack_marker;
pub mod canary;
pub mod capi;
pub mod cxx;
/// Fixed-buffer formatting (the core allocator's).
pub use oxalloc_core::fmt;
pub mod arena;
pub mod heap;
pub mod large;
pub mod leaks;
pub mod lock;
pub mod mitigations;
pub mod quarantine;
pub mod report;
pub mod shadow;
pub mod small;
pub mod thread;
pub mod wipe;
pub mod zero_size;

use core::alloc::{GlobalAlloc, Layout};

/// The hardened allocator as a Rust global allocator:
/// `#[global_allocator] static A: oxalloc_hardened::Hardened = oxalloc_hardened::Hardened;`
///
/// `dealloc` checks that the layout matches the allocation (size and alignment), so a
/// wrong layout, a double free or a foreign pointer is reported like in C.
pub struct Hardened;

// SAFETY: the heap returns blocks of at least `layout.size()` bytes aligned to
// `layout.align()`, live until freed, or null; `dealloc` validates every pointer.
unsafe impl GlobalAlloc for Hardened {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        heap::alloc(layout.size(), layout.align(), false, stack_marker!()) as *mut u8
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        heap::alloc(layout.size(), layout.align(), true, stack_marker!()) as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let x = heap::Expect {
            size: Some(layout.size()),
            align: Some(layout.align()),
        };
        heap::free(ptr as usize, heap::DEALLOC, x, stack_marker!());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let marker = stack_marker!();
        if layout.align() <= 16 {
            return heap::realloc(ptr as usize, new_size, marker) as *mut u8;
        }
        let q = heap::alloc(new_size, layout.align(), false, marker);
        if q != 0 {
            // SAFETY: both blocks are live, distinct and hold at least the copied bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, q as *mut u8, layout.size().min(new_size))
            };
            // SAFETY: `ptr` was allocated by us with `layout` (caller's contract).
            unsafe { self.dealloc(ptr, layout) };
        }
        q as *mut u8
    }
}

/// Runs at process exit; `.fini_array` registers nothing and allocates nothing.
#[used]
#[unsafe(link_section = ".fini_array")]
static AT_EXIT: extern "C" fn() = leaks::at_exit;

/// Makes the allocator's start-up refer to [`AT_EXIT`], so a static link (`.a`), which
/// pulls in only the objects something refers to, keeps the exit hook too.
pub(crate) fn keep_exit_hook() {
    core::hint::black_box(&AT_EXIT);
}
