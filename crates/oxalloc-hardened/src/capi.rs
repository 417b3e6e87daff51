//! The C allocator functions, exported under their libc names so that
//! `LD_PRELOAD=liboxalloc_hardened.so` (or linking `liboxalloc_hardened.a`) replaces
//! the program's malloc. Each export only fixes the C semantics (errno, overflow,
//! alignment rules as in glibc) and calls [`crate::heap`]. Each one takes the address
//! of a local as its stack marker, so stacks in reports start at the caller.
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;

use crate::heap::{self, Expect, FREE, FREE_ALIGNED_SIZED, FREE_SIZED};
use crate::stack_marker;
use oxalloc_sys::{set_errno, EINVAL, ENOMEM, PAGE_SIZE};

fn out(p: usize) -> *mut c_void {
    if p == 0 {
        set_errno(ENOMEM);
    }
    p as *mut c_void
}

/// `malloc(3)`. `malloc(0)` returns a unique pointer that faults on any access.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(n: usize) -> *mut c_void {
    out(heap::alloc(n, 16, false, stack_marker!()))
}

/// `calloc(3)`: zeroed memory; a product that overflows fails with ENOMEM.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(n) => out(heap::alloc(n, 16, true, stack_marker!())),
        None => out(0),
    }
}

/// `free(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    heap::free(p as usize, FREE, Expect::default(), stack_marker!());
}

/// `realloc(3)`, glibc semantics: `realloc(p, 0)` frees `p` and returns null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    let q = heap::realloc(p as usize, n, stack_marker!());
    if q == 0 && (n != 0 || p.is_null()) {
        set_errno(ENOMEM);
    }
    q as *mut c_void
}

/// `reallocarray(3)`: `realloc` with an overflow check on `count * size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    let Some(n) = count.checked_mul(size) else {
        return out(0);
    };
    let q = heap::realloc(p as usize, n, stack_marker!());
    if q == 0 && (n != 0 || p.is_null()) {
        set_errno(ENOMEM);
    }
    q as *mut c_void
}

/// C23 `free_sized`: `n` must be the size the block was allocated with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, n: usize) {
    let x = Expect {
        size: Some(n),
        align: None,
    };
    heap::free(p as usize, FREE_SIZED, x, stack_marker!());
}

/// C23 `free_aligned_sized`: alignment and size must match the allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, n: usize) {
    let x = Expect {
        size: Some(n),
        align: Some(align),
    };
    heap::free(p as usize, FREE_ALIGNED_SIZED, x, stack_marker!());
}

/// `aligned_alloc(3)`: the alignment must be a power of two (EINVAL otherwise).
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    out(heap::alloc(n, align, false, stack_marker!()))
}

/// `posix_memalign(3)`: returns EINVAL for an alignment that is not a power of two
/// multiple of `sizeof(void *)`, ENOMEM on failure; errno is left alone.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(outp: *mut *mut c_void, align: usize, n: usize) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return EINVAL;
    }
    let p = heap::alloc(n, align, false, stack_marker!());
    if p == 0 {
        return ENOMEM;
    }
    // SAFETY: C contract: `outp` is a valid pointer to a `void *`.
    unsafe { *outp = p as *mut c_void };
    0
}

/// `memalign(3)`: like glibc, an alignment that is not a power of two is rounded up.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    let Some(a) = align.max(1).checked_next_power_of_two() else {
        set_errno(EINVAL);
        return core::ptr::null_mut();
    };
    out(heap::alloc(n, a, false, stack_marker!()))
}

/// `valloc(3)`: page aligned.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(n: usize) -> *mut c_void {
    out(heap::alloc(n, PAGE_SIZE, false, stack_marker!()))
}

/// `pvalloc(3)`: page aligned, size rounded up to whole pages (at least one).
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(n: usize) -> *mut c_void {
    let Some(n) = n.max(1).checked_next_multiple_of(PAGE_SIZE) else {
        return out(0);
    };
    out(heap::alloc(n, PAGE_SIZE, false, stack_marker!()))
}

/// `malloc_usable_size(3)`: the requested size (the bytes after it are the canary).
/// A pointer that is not a live block is reported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    heap::usable_size(p as usize, stack_marker!())
}

/// `malloc_trim(3)`: checks every quarantined block now, then gives back the pages
/// kept for freed large blocks and has the core heaps give their cached free pages
/// back to the OS; 1 if memory was released.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(pad: usize) -> i32 {
    heap::check_now(stack_marker!());
    let large = heap::trim_large();
    (oxalloc_core::api::malloc_trim(pad) != 0 || large != 0) as i32
}

/// Validates every block in the quarantine now (a write after free is reported at
/// once instead of when the block would leave it); returns how many were checked.
#[unsafe(no_mangle)]
pub extern "C" fn ox_hardened_check() -> usize {
    heap::check_now(stack_marker!())
}

pub use oxalloc_sys::Mallinfo2;

/// `mallinfo2(3)`: `arena` = bytes mapped for blocks (the core's segments and large mappings),
/// `uordblks` = bytes in live blocks, `fordblks` = mapped bytes not in live blocks.
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    if !heap::ensure_init() {
        return Mallinfo2::default();
    }
    let (live, _, mapped) = heap::totals();
    Mallinfo2 {
        arena: mapped,
        uordblks: live,
        fordblks: mapped.saturating_sub(live),
        ..Mallinfo2::default()
    }
}

/// `mallinfo(3)`: [`mallinfo2`] in glibc's older `int` fields, capped at `INT_MAX`.
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo() -> oxalloc_sys::Mallinfo {
    mallinfo2().into()
}

/// `mallopt(3)`: glibc's parameters are accepted and change nothing (1), others 0.
#[unsafe(no_mangle)]
pub extern "C" fn mallopt(param: i32, value: i32) -> i32 {
    oxalloc_core::api::mallopt(param, value)
}

/// `malloc_info(3)`: [`mallinfo2`]'s figures as XML on a `FILE *` (no peak is kept, so
/// `<system type="max">` is the current figure).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_info(options: i32, stream: *mut c_void) -> i32 {
    // SAFETY: the caller passes a `FILE *` open for writing (the C contract).
    unsafe { oxalloc_core::api::write_malloc_info(options, stream, mallinfo2(), 0) }
}
