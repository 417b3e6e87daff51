//! The C allocation API's semantics, kept apart from the export layer so they can be
//! tested: errno values, overflow checks, alignment rules, `malloc(0)`, `realloc(p, 0)`.
//!
//! Follows glibc where the C standard leaves a choice, since programs are tested
//! against it: `malloc(0)` returns a unique pointer, `realloc(p, 0)` frees `p` and returns
//! null, `memalign` rounds a non-power-of-two alignment up.
#![allow(unsafe_code)]

use crate::heap;
use core::ffi::c_void;
use oxalloc_sys::{kernel_page_size, set_errno, EINVAL, ENOMEM};

/// Largest request we try: anything above cannot be mapped in a 47-bit address space,
/// and refusing early keeps size arithmetic far from overflow.
const MAX_REQUEST: usize = 1 << 46;

#[inline]
fn enomem<T>(v: T) -> T {
    set_errno(ENOMEM);
    v
}

/// `malloc`: null with `errno = ENOMEM` when out of memory.
///
/// ```
/// use oxalloc_core::api;
/// let p = api::malloc(100);
/// assert!(!p.is_null());
/// // SAFETY: `p` is a live block of at least 100 bytes; freed once.
/// unsafe {
///     p.write_bytes(1, 100);
///     assert!(api::malloc_usable_size(p) >= 100);
///     api::free(p);
/// }
/// // Too much: null (and errno ENOMEM), no panic.
/// assert!(api::malloc(usize::MAX).is_null());
/// ```
#[inline]
pub fn malloc(size: usize) -> *mut u8 {
    // The heap sets errno itself on its slow paths.
    heap::alloc(size)
}

/// `calloc`: zeroed; `n * size` overflow gives null with `ENOMEM`.
///
/// ```
/// use oxalloc_core::api;
/// let p = api::calloc(10, 8);
/// // SAFETY: 80 zeroed bytes; freed once.
/// unsafe {
///     assert!(std::slice::from_raw_parts(p, 80).iter().all(|&b| b == 0));
///     api::free(p);
/// }
/// assert!(api::calloc(usize::MAX, 2).is_null()); // overflow
/// ```
pub fn calloc(n: usize, size: usize) -> *mut u8 {
    match n.checked_mul(size) {
        Some(total) if total <= MAX_REQUEST => {
            let p = heap::alloc_zeroed(total, 16);
            if p.is_null() {
                set_errno(ENOMEM);
            }
            p
        }
        _ => enomem(core::ptr::null_mut()),
    }
}

/// `free`: null is a no-op; a misuse is reported (see `misuse`).
///
/// # Safety
/// `p` is null or a live block from this allocator.
#[inline]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: caller's contract (null maps to no segment and is ignored).
    unsafe { heap::free(p) }
}

/// `realloc`: `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees and returns
/// null (glibc); on failure `p` is untouched and `errno = ENOMEM`.
///
/// # Safety
/// `p` is null or a live block from this allocator.
///
/// ```
/// use oxalloc_core::api;
/// let p = api::malloc(16);
/// // SAFETY: `p` is live; realloc returns the (possibly moved) block, which is freed once.
/// unsafe {
///     p.write(42);
///     let q = api::realloc(p, 100_000);
///     assert_eq!(*q, 42);
///     api::free(q);
/// }
/// ```
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: caller's contract.
        unsafe { heap::free_with(p, crate::misuse::Op::Realloc) };
        return core::ptr::null_mut();
    }
    if size > MAX_REQUEST {
        return enomem(core::ptr::null_mut());
    }
    // SAFETY: caller's contract.
    if let Some(q) = unsafe { heap::realloc_own_small(p, size) } {
        if q.is_null() {
            set_errno(ENOMEM);
        }
        return q;
    }
    // SAFETY: caller's contract (a pointer that is not a live block is reported).
    let usable = unsafe { heap::usable_size_with(p, crate::misuse::Op::Realloc) };
    if usable == 0 {
        // Another allocator's (let through by OXALLOC_FOREIGN_FREE): we cannot know how
        // much to copy, so refuse rather than guess.
        return enomem(core::ptr::null_mut());
    }
    // SAFETY: caller's contract.
    let q = unsafe { heap::realloc(p, usable, size) };
    if q.is_null() {
        set_errno(ENOMEM);
    }
    q
}

/// `reallocarray`: `realloc(p, n * size)` with an overflow check.
///
/// # Safety
/// As for [`realloc`].
pub unsafe fn reallocarray(p: *mut u8, n: usize, size: usize) -> *mut u8 {
    match n.checked_mul(size) {
        // SAFETY: caller's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem(core::ptr::null_mut()),
    }
}

/// Aligned allocation; `align` must already be a valid power of two.
fn alloc_aligned(align: usize, size: usize) -> *mut u8 {
    if size > MAX_REQUEST || align > MAX_REQUEST {
        return core::ptr::null_mut();
    }
    heap::alloc_aligned(size, align)
}

/// `aligned_alloc` (C11): any power-of-two alignment; otherwise null with `EINVAL`.
pub fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    let p = alloc_aligned(align, size);
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p
}

/// `posix_memalign`: returns `EINVAL` unless `align` is a power of two and a multiple
/// of `sizeof(void *)`, `ENOMEM` when out of memory; `errno` is left alone.
///
/// # Safety
/// `out` is valid for a pointer write.
pub unsafe fn posix_memalign(out: *mut *mut u8, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return EINVAL;
    }
    if let Some(p) = heap::try_alloc_small(size, align) {
        // SAFETY: caller's contract.
        unsafe { out.write(p) };
        return 0;
    }
    let saved = oxalloc_sys::errno();
    let p = alloc_aligned(align, size);
    if p.is_null() {
        // The heap set errno; posix_memalign reports through its return value only.
        set_errno(saved);
        return ENOMEM;
    }
    // SAFETY: caller's contract.
    unsafe { out.write(p) };
    0
}

/// `memalign`: like glibc, an alignment that is not a power of two is rounded up.
pub fn memalign(align: usize, size: usize) -> *mut u8 {
    let Some(align) = align.max(1).checked_next_power_of_two() else {
        set_errno(EINVAL);
        return core::ptr::null_mut();
    };
    let p = alloc_aligned(align, size);
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p
}

/// `valloc`: aligned to the kernel's page (16 or 64 KiB on some arm64 kernels), which
/// is what a caller that `mprotect`s the block needs.
pub fn valloc(size: usize) -> *mut u8 {
    memalign(kernel_page_size(), size)
}

/// `pvalloc`: page aligned, size rounded up to whole kernel pages (one page for 0).
pub fn pvalloc(size: usize) -> *mut u8 {
    let page = kernel_page_size();
    match size.max(1).checked_next_multiple_of(page) {
        Some(n) => memalign(page, n),
        None => enomem(core::ptr::null_mut()),
    }
}

/// `malloc_usable_size`: 0 for null; a pointer that is not a live block is reported.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn malloc_usable_size(p: *mut u8) -> usize {
    // SAFETY: caller's contract.
    unsafe { heap::usable_size(p) }
}

/// `malloc_trim`: gives cached free memory back to the OS now; 1 if any was released.
///
/// ```
/// use oxalloc_core::api;
/// let blocks: Vec<*mut u8> = (0..1000).map(|_| api::malloc(4000)).collect();
/// for p in blocks {
///     // SAFETY: each block is live and freed once.
///     unsafe { api::free(p) };
/// }
/// api::malloc_trim(0);
/// // Everything cached was given back: a second trim finds nothing.
/// assert_eq!(api::malloc_trim(0), 0);
/// ```
pub fn malloc_trim(_pad: usize) -> i32 {
    (heap::trim() > 0) as i32
}

/// Gives back the free pages the page-return policy says are due now: those that have
/// waited the purge delay beyond what recent demand keeps (one round of what the
/// background thread does). Unlike [`malloc_trim`], recently freed pages and the
/// threads' cached spans stay. Returns the bytes given back.
pub fn purge() -> usize {
    crate::central::CENTRAL.lock().purge(false) + crate::huge::purge_cache(false)
}

pub use oxalloc_sys::Mallinfo2;

/// `mallinfo2`, from our counters: `arena` = mapped bytes, `hblks` = live huge blocks,
/// `usmblks` = peak in-use bytes, `uordblks` = bytes in use (spans handed out),
/// `fordblks` = mapped but not in use, `keepcost` = free pages not yet purged.
///
/// ```
/// use oxalloc_core::api;
/// let p = api::malloc(1 << 20);
/// let m = api::mallinfo2();
/// assert!(m.uordblks >= 1 << 20);
/// assert!(m.arena >= m.uordblks);
/// // SAFETY: live, freed once.
/// unsafe { api::free(p) };
/// ```
pub fn mallinfo2() -> Mallinfo2 {
    use core::sync::atomic::Ordering::Relaxed;
    let g = &crate::stats::GLOBAL;
    let mapped = g.mapped_bytes.load(Relaxed) as usize;
    let in_use = crate::stats::in_use_bytes_now() as usize;
    Mallinfo2 {
        arena: mapped,
        hblks: g.huge_count.load(Relaxed) as usize,
        usmblks: g.peak_in_use_bytes.load(Relaxed) as usize,
        uordblks: in_use,
        fordblks: mapped.saturating_sub(in_use),
        keepcost: g.cached_bytes.load(Relaxed) as usize,
        ..Mallinfo2::default()
    }
}

pub use oxalloc_sys::Mallinfo;

/// `mallinfo`: [`mallinfo2`] in glibc's older `int` fields, capped at `INT_MAX`.
pub fn mallinfo() -> Mallinfo {
    mallinfo2().into()
}

/// `mallopt`: glibc's parameters (`M_MXFAST` = 1, `M_TRIM_THRESHOLD` .. `M_ARENA_MAX`
/// = -1 .. -8) are accepted and change nothing (1): oxalloc is tuned by its `OXALLOC_*`
/// variables (purge delay, cache cap) instead. Any other parameter is an error (0),
/// as in glibc.
pub fn mallopt(param: i32, _value: i32) -> i32 {
    matches!(param, 1 | -8..=-1) as i32
}

/// `malloc_info` for an allocator whose figures are `m` and `peak_mapped`: writes them to `stream`
/// as XML in the layout of glibc's: one `<malloc>` element with `<total>`, `<system>`
/// and `<aspace>` entries (no per-arena `<heap>`: oxalloc has no arenas). `options` must
/// be 0, as in glibc: otherwise `EINVAL` and -1. -1 if the stream refuses the write.
///
/// # Safety
/// `stream` is a valid `FILE *` open for writing.
pub unsafe fn write_malloc_info(
    options: i32,
    stream: *mut c_void,
    m: Mallinfo2,
    peak_mapped: usize,
) -> i32 {
    if options != 0 {
        set_errno(EINVAL);
        return -1;
    }
    /// One `<tag type="kind" attr="n"/>` line.
    fn entry(b: &mut crate::fmt::Buf<1024>, tag: &str, kind: &str, attr: &str, n: usize) {
        b.str("<").str(tag).str(" type=\"").str(kind).str("\" ");
        b.str(attr).str("=\"").num(n as u64).str("\"/>\n");
    }
    let mut b: crate::fmt::Buf<1024> = crate::fmt::Buf::new();
    b.str("<malloc version=\"1\">\n");
    // Directly mapped blocks: their count (their bytes are in "in-use").
    entry(&mut b, "total", "mmap", "count", m.hblks);
    entry(&mut b, "total", "in-use", "size", m.uordblks);
    entry(&mut b, "total", "free", "size", m.fordblks);
    entry(&mut b, "total", "unpurged", "size", m.keepcost);
    entry(&mut b, "system", "current", "size", m.arena);
    entry(&mut b, "system", "max", "size", peak_mapped.max(m.arena));
    entry(&mut b, "aspace", "total", "size", m.arena);
    b.str("</malloc>\n");
    // SAFETY: caller's contract.
    if unsafe { oxalloc_sys::write_stream(stream, b.as_bytes()) } {
        0
    } else {
        -1
    }
}

/// `malloc_info`: [`mallinfo2`]'s figures and the peak of mapped memory as XML; see
/// [`write_malloc_info`].
///
/// # Safety
/// As for [`write_malloc_info`].
pub unsafe fn malloc_info(options: i32, stream: *mut c_void) -> i32 {
    use core::sync::atomic::Ordering::Relaxed;
    let peak = crate::stats::GLOBAL.peak_mapped_bytes.load(Relaxed) as usize;
    // SAFETY: caller's contract.
    unsafe { write_malloc_info(options, stream, mallinfo2(), peak) }
}

/// `free_sized`: C23; a size that cannot be this block's is reported.
///
/// # Safety
/// As for [`free`].
pub unsafe fn free_sized(p: *mut u8, size: usize) {
    // SAFETY: caller's contract.
    unsafe { heap::free_sized(p, size, 16, crate::misuse::Op::FreeSized) }
}

/// `free_aligned_sized`: C23; a size or alignment that cannot be this block's is
/// reported.
///
/// # Safety
/// As for [`free`].
pub unsafe fn free_aligned_sized(p: *mut u8, align: usize, size: usize) {
    // SAFETY: caller's contract.
    unsafe { heap::free_sized(p, size, align, crate::misuse::Op::FreeAlignedSized) }
}

/// C++ `operator new` and `new[]` without the throw: `size` bytes aligned to `align`
/// (a power of two: 16 for the variants that name none), null when out of memory.
pub fn cxx_new(size: usize, align: usize) -> *mut u8 {
    if align <= 16 {
        heap::alloc(size)
    } else if align.is_power_of_two() {
        alloc_aligned(align, size)
    } else {
        core::ptr::null_mut()
    }
}

/// C++ `operator delete` and `delete[]` (every variant): with `size` for the sized ones
/// (and `align` for the aligned ones, 16 for the others) a size of another class than
/// the block's is reported, as by [`free_sized`]; reports name `operator delete`.
///
/// # Safety
/// As for [`free`].
pub unsafe fn cxx_delete(p: *mut u8, size: Option<usize>, align: usize) {
    // SAFETY: caller's contract.
    unsafe {
        match size {
            Some(size) => heap::free_sized(p, size, align, crate::misuse::Op::Delete),
            None => heap::free_with(p, crate::misuse::Op::Delete),
        }
    }
}

/// Prints the statistics summary on stderr.
pub fn stats_print() {
    crate::stats::print_summary();
}
