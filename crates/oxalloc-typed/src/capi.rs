//! The C ABI of `include/oxalloc_typed.h`: pool, arena and static heap for C and
//! assembly programs. Feature `capi`.
//!
//! # Idea
//! Thin `extern "C"` forwarders over the Rust types, which keep all the logic. Errors
//! are values: NULL from the allocating calls (never an abort), a negative `int` from
//! `ox_static_heap_free`.
//!
//! # Layout
//! The control blocks of pools and arenas live in a page mapped from the OS for them
//! (not from `malloc`, so this works when oxalloc *is* `malloc`); a static heap keeps its
//! control block at the start of the caller's buffer.
//!
//! # Threads
//! Every handle carries its own [`SpinLock`] (one uncontended compare-exchange per call;
//! a waiter spins briefly, then yields to the OS), so threads may share a handle. Only
//! `destroy` (and, for an arena, `reset`, which frees what the others may still use) must
//! not overlap other calls on the same handle.

use crate::arena::Arena;
use crate::lock::SpinLock;
use crate::pool::RawPool;
use crate::source::{Buffer, Os};
use crate::static_heap::StaticHeap;
use core::alloc::Layout;
use core::ffi::{c_int, c_void};
use core::mem;
use core::ptr::{self, NonNull};

/// A pool of fixed-size blocks, behind its lock (opaque in C).
pub type OxPool = SpinLock<RawPool<Os>>;
/// A bump arena, behind its lock (opaque in C).
pub type OxArena = SpinLock<Arena<Os>>;
/// A TLSF heap on a caller's buffer, behind its lock (opaque in C).
pub type OxStaticHeap = SpinLock<StaticHeap<Buffer<'static>>>;

/// Counters of a static heap, as `struct ox_heap_stats` in C.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OxHeapStats {
    /// Bytes managed.
    pub heap_bytes: usize,
    /// Bytes in free blocks (headers included).
    pub free_bytes: usize,
    /// Free blocks.
    pub free_blocks: usize,
    /// Live allocations.
    pub used_blocks: usize,
    /// Largest request that can succeed now (alignment 8).
    pub largest_free: usize,
}

const CTRL_BYTES: usize = oxalloc_sys::PAGE_SIZE;

/// Moves `value` into a page of its own from the OS.
fn boxed_in_page<T>(value: T) -> *mut T {
    const { assert!(mem::size_of::<T>() <= CTRL_BYTES && mem::align_of::<T>() <= CTRL_BYTES) };
    match oxalloc_sys::map(CTRL_BYTES) {
        Some(p) => {
            let p = p.cast::<T>().as_ptr();
            // SAFETY: a fresh, page-aligned mapping big enough for a `T`.
            unsafe { p.write(value) };
            p
        }
        None => ptr::null_mut(),
    }
}

/// # Safety
/// `p` came from `boxed_in_page` and is not used afterwards.
unsafe fn drop_page<T>(p: *mut T) {
    // SAFETY: caller's contract: `p` holds a live `T` in a page of its own.
    unsafe {
        ptr::drop_in_place(p);
        oxalloc_sys::unmap(p.cast(), CTRL_BYTES);
    }
}

/// Creates a growing pool of blocks of `block_size` bytes aligned to `align` (a power of
/// two; 0 means 8). NULL on bad arguments or when the OS refuses memory.
///
/// # Safety
/// Always safe to call; `unsafe` for symmetry with the rest of the ABI.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_pool_create(block_size: usize, align: usize) -> *mut OxPool {
    let align = if align == 0 { 8 } else { align };
    match Layout::from_size_align(block_size.max(1), align) {
        Ok(l) => boxed_in_page(SpinLock::new(RawPool::new(l))),
        Err(_) => ptr::null_mut(),
    }
}

/// A block of the pool, or NULL when memory is exhausted.
///
/// # Safety
/// `pool` is NULL or a live pool from `ox_pool_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_pool_alloc(pool: *mut OxPool) -> *mut c_void {
    // SAFETY: caller's contract.
    match unsafe { pool.as_ref() } {
        Some(p) => p
            .lock()
            .alloc()
            .map_or(ptr::null_mut(), |b| b.as_ptr().cast()),
        None => ptr::null_mut(),
    }
}

/// Gives a block back. NULL `ptr` is ignored.
///
/// # Safety
/// `pool` is a live pool; `ptr` is NULL or a block of it, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_pool_free(pool: *mut OxPool, ptr: *mut c_void) {
    // SAFETY: caller's contract.
    if let (Some(p), Some(b)) = (unsafe { pool.as_ref() }, NonNull::new(ptr)) {
        // SAFETY: caller's contract.
        unsafe { p.lock().free(b.cast()) }
    }
}

/// Blocks of the pool in use.
///
/// # Safety
/// `pool` is NULL or a live pool.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_pool_in_use(pool: *const OxPool) -> usize {
    // SAFETY: caller's contract.
    unsafe { pool.as_ref() }.map_or(0, |p| p.lock().stats().in_use)
}

/// Destroys the pool and every block in it. NULL is ignored.
///
/// # Safety
/// `pool` is NULL or a live pool, not used afterwards (nor its blocks).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_pool_destroy(pool: *mut OxPool) {
    if !pool.is_null() {
        // SAFETY: caller's contract.
        unsafe { drop_page(pool) }
    }
}

/// Creates an arena whose first chunk is `first_chunk` bytes (0: 4 KiB). NULL when the
/// OS refuses memory.
///
/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_arena_create(first_chunk: usize) -> *mut OxArena {
    let first = if first_chunk == 0 { 4096 } else { first_chunk };
    boxed_in_page(SpinLock::new(
        Arena::new().chunk_bytes(first, (64 << 20usize).max(first)),
    ))
}

/// `size` bytes aligned to `align` (a power of two; 0 means 8), or NULL.
///
/// # Safety
/// `arena` is NULL or a live arena.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_arena_alloc(
    arena: *mut OxArena,
    size: usize,
    align: usize,
) -> *mut c_void {
    let align = if align == 0 { 8 } else { align };
    // SAFETY: caller's contract.
    let (Some(a), Ok(l)) = (
        unsafe { arena.as_ref() },
        Layout::from_size_align(size, align),
    ) else {
        return ptr::null_mut();
    };
    a.lock()
        .alloc_layout(l)
        .map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Frees everything in the arena (keeps one chunk for reuse).
///
/// # Safety
/// `arena` is NULL or a live arena; no pointer from it is used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_arena_reset(arena: *mut OxArena) {
    // SAFETY: caller's contract; C cannot hold Rust borrows into the arena.
    if let Some(a) = unsafe { arena.as_ref() } {
        a.lock().reset();
    }
}

/// Bytes the arena holds from the OS.
///
/// # Safety
/// `arena` is NULL or a live arena.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_arena_allocated_bytes(arena: *const OxArena) -> usize {
    // SAFETY: caller's contract.
    unsafe { arena.as_ref() }.map_or(0, |a| a.lock().allocated_bytes())
}

/// Destroys the arena and everything in it. NULL is ignored.
///
/// # Safety
/// `arena` is NULL or a live arena, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_arena_destroy(arena: *mut OxArena) {
    if !arena.is_null() {
        // SAFETY: caller's contract.
        unsafe { drop_page(arena) }
    }
}

/// Makes a heap on `[buf, buf+len)`; the control block goes at its start. NULL when the
/// buffer is too small (under about 2 KiB) or NULL.
///
/// # Safety
/// `buf` is NULL or valid for reads and writes of `len` bytes, used by nothing else
/// while the heap lives (there is no destroy: stop using it and reuse the buffer).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_static_heap_init(buf: *mut c_void, len: usize) -> *mut OxStaticHeap {
    let Some(buf) = NonNull::new(buf.cast::<u8>()) else {
        return ptr::null_mut();
    };
    let skip = (buf.as_ptr() as usize).wrapping_neg() & (mem::align_of::<OxStaticHeap>() - 1);
    let ctrl = skip + mem::size_of::<OxStaticHeap>();
    if len < ctrl {
        return ptr::null_mut();
    }
    // SAFETY: `[buf+ctrl, buf+len)` is inside the caller's buffer and unused.
    let source = unsafe { Buffer::from_raw(buf.add(ctrl), len - ctrl) };
    let n = source.remaining_aligned(16);
    match StaticHeap::with_source(source, n) {
        Ok(h) => {
            // SAFETY: `buf+skip` is aligned for the control block and inside the buffer.
            let p = unsafe { buf.add(skip).cast::<OxStaticHeap>().as_ptr() };
            // SAFETY: as above; the heap region starts after it.
            unsafe { p.write(SpinLock::new(h)) };
            p
        }
        Err(_) => ptr::null_mut(),
    }
}

/// `size` bytes aligned to `align` (a power of two; 0 means 8), or NULL.
///
/// # Safety
/// `heap` is NULL or from `ox_static_heap_init`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_static_heap_alloc(
    heap: *mut OxStaticHeap,
    size: usize,
    align: usize,
) -> *mut c_void {
    let align = if align == 0 { 8 } else { align };
    // SAFETY: caller's contract.
    let (Some(h), Ok(l)) = (
        unsafe { heap.as_ref() },
        Layout::from_size_align(size, align),
    ) else {
        return ptr::null_mut();
    };
    h.lock()
        .alloc(l)
        .map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Frees `ptr` (NULL is ignored). Returns 0, or -1 when a double free or a pointer
/// outside the heap was caught (nothing changed then).
///
/// # Safety
/// `heap` is from `ox_static_heap_init`; `ptr` is NULL or came from it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_static_heap_free(heap: *mut OxStaticHeap, ptr: *mut c_void) -> c_int {
    // SAFETY: caller's contract.
    match (unsafe { heap.as_ref() }, NonNull::new(ptr)) {
        // SAFETY: caller's contract.
        (Some(h), Some(p)) => match unsafe { h.lock().free(p.cast()) } {
            Ok(()) => 0,
            Err(_) => -1,
        },
        (_, None) => 0,
        (None, Some(_)) => -1,
    }
}

/// Fills `*out` with the heap's counters; returns 0, or -1 on NULL arguments.
///
/// # Safety
/// `heap` is NULL or from `ox_static_heap_init`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ox_static_heap_stats(
    heap: *const OxStaticHeap,
    out: *mut OxHeapStats,
) -> c_int {
    // SAFETY: caller's contract.
    let (Some(h), false) = (unsafe { heap.as_ref() }, out.is_null()) else {
        return -1;
    };
    let s = h.lock().stats();
    let v = OxHeapStats {
        heap_bytes: s.heap_bytes,
        free_bytes: s.free_bytes,
        free_blocks: s.free_blocks,
        used_blocks: s.used_blocks,
        largest_free: s.largest_free,
    };
    // SAFETY: caller's contract: `out` is writable.
    unsafe { out.write(v) };
    0
}
