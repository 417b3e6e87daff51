//! liboxalloc: the C malloc family, exported for `LD_PRELOAD`, C and assembly.
//!
//! Forwarders only: every function calls `oxalloc_core::api`, where the C semantics
//! live and are tested. The unprefixed names replace libc's allocator; the `ox_`
//! names are for programs that want oxalloc next to another malloc.
//!
//! On Windows only the `ox_` names are exported. A DLL cannot replace the CRT's
//! `malloc` (each import is bound to one DLL by name), and exporting `malloc`/`free`
//! from `oxalloc.dll` splits a program in two: a program that links the import library
//! before the CRT (`gcc prog.c -loxalloc`) gets oxalloc's `malloc` and `free` for its
//! own calls while the CRT (`strdup`, `fopen`, the MinGW start-up code) keeps its own,
//! so `free(strdup(s))` hands the CRT's block to oxalloc.
//!
//! On x86-64 Linux the library is `no_std`: it links no Rust standard library, so a
//! process that loads it maps no std code (panic machinery, backtrace symbolizer) and
//! no `libgcc_s`. A panic, which the allocator's code never means to raise, reports its
//! location and aborts. Keep std out of this crate's dependency graph: cargo unifies
//! features across a workspace build, so a member (or dev-dependency) that turns on
//! `std` in `oxalloc-typed`, `allocator-api2` or `rustix` links std in here too, and
//! `cargo clippy --workspace --all-targets` then fails with a duplicate `panic_impl`.
//! (`alloc` alone is fine: the library's own Rust allocations, if a dependency makes
//! any, go to oxalloc.)
#![allow(clippy::missing_safety_doc)]
#![cfg_attr(all(not(test), target_arch = "x86_64", target_os = "linux"), no_std)]

use core::ffi::c_void;
use oxalloc_core::api;

/// The typed allocators' C ABI, exported from the same library.
pub use oxalloc_typed::capi::*;

/// C++ `operator new` / `operator delete`.
#[cfg(target_os = "linux")]
pub mod cxx;

macro_rules! export {
    ($( $(#[$m:meta])* fn $name:ident / $ox:ident ( $($arg:ident : $t:ty),* ) $(-> $ret:ty)? => $body:expr; )*) => {
        $(
            $(#[$m])*
            // Not on Windows: see the crate documentation.
            #[cfg(not(windows))]
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $t),*) $(-> $ret)? {
                #[allow(unused_unsafe)]
                // SAFETY: the C contract of this function is the caller's (pointers
                // come from this allocator or are null; out-pointers are valid).
                unsafe { $body }
            }
            $(#[$m])*
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $ox($($arg: $t),*) $(-> $ret)? {
                #[allow(unused_unsafe)]
                // SAFETY: as above.
                unsafe { $body }
            }
        )*
    };
}

export! {
    /// `malloc(3)`.
    fn malloc / ox_malloc(size: usize) -> *mut c_void => api::malloc(size).cast();
    /// `free(3)`.
    fn free / ox_free(p: *mut c_void) => api::free(p.cast());
    /// `calloc(3)`.
    fn calloc / ox_calloc(n: usize, size: usize) -> *mut c_void => api::calloc(n, size).cast();
    /// `realloc(3)`.
    fn realloc / ox_realloc(p: *mut c_void, size: usize) -> *mut c_void => api::realloc(p.cast(), size).cast();
    /// `reallocarray(3)`.
    fn reallocarray / ox_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void =>
        api::reallocarray(p.cast(), n, size).cast();
    /// `aligned_alloc(3)`.
    fn aligned_alloc / ox_aligned_alloc(align: usize, size: usize) -> *mut c_void =>
        api::aligned_alloc(align, size).cast();
    /// `posix_memalign(3)`.
    fn posix_memalign / ox_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 =>
        api::posix_memalign(out.cast(), align, size);
    /// `memalign(3)`.
    fn memalign / ox_memalign(align: usize, size: usize) -> *mut c_void => api::memalign(align, size).cast();
    /// `valloc(3)`.
    fn valloc / ox_valloc(size: usize) -> *mut c_void => api::valloc(size).cast();
    /// `pvalloc(3)`.
    fn pvalloc / ox_pvalloc(size: usize) -> *mut c_void => api::pvalloc(size).cast();
    /// `malloc_usable_size(3)`.
    fn malloc_usable_size / ox_malloc_usable_size(p: *mut c_void) -> usize => api::malloc_usable_size(p.cast());
    /// `malloc_trim(3)`.
    fn malloc_trim / ox_malloc_trim(pad: usize) -> i32 => api::malloc_trim(pad);
    /// `mallinfo2(3)`.
    fn mallinfo2 / ox_mallinfo2() -> api::Mallinfo2 => api::mallinfo2();
    /// `mallinfo(3)` (glibc's older, `int` version of `mallinfo2`).
    fn mallinfo / ox_mallinfo() -> api::Mallinfo => api::mallinfo();
    /// `mallopt(3)`: glibc's parameters are accepted and ignored.
    fn mallopt / ox_mallopt(param: i32, value: i32) -> i32 => api::mallopt(param, value);
    /// `malloc_stats(3)`: the statistics summary on stderr.
    fn malloc_stats / ox_malloc_stats() => api::stats_print();
    /// `malloc_info(3)`: XML on a `FILE *`.
    fn malloc_info / ox_malloc_info(options: i32, stream: *mut c_void) -> i32 =>
        api::malloc_info(options, stream);
    /// C23 `free_sized`.
    fn free_sized / ox_free_sized(p: *mut c_void, size: usize) => api::free_sized(p.cast(), size);
    /// C23 `free_aligned_sized`.
    fn free_aligned_sized / ox_free_aligned_sized(p: *mut c_void, align: usize, size: usize) =>
        api::free_aligned_sized(p.cast(), align, size);
}

/// Prints allocator statistics on stderr.
#[unsafe(no_mangle)]
pub extern "C" fn ox_stats_print() {
    api::stats_print();
}

/// Writes allocator statistics as JSON to a file descriptor.
#[unsafe(no_mangle)]
pub extern "C" fn ox_stats_json(fd: i32) {
    oxalloc_core::stats::write_json(fd);
}

// The library calls libc (mmap, pthread keys, memset...), so it must name libc.so.6 as a
// dependency: without the entry, a preloaded library that depends on liboxalloc.so gets it
// relocated before libc, and glibc refuses its IFUNC symbols (memset). The libc crate only
// links libc itself when its `std` feature is off, which a workspace build may turn on.
#[cfg(all(not(test), target_arch = "x86_64", target_os = "linux"))]
#[link(name = "c")]
unsafe extern "C" {}

/// Rust allocations inside the library (none today) use oxalloc itself.
#[cfg(all(not(test), target_arch = "x86_64", target_os = "linux"))]
#[global_allocator]
static RUST_ALLOCATOR: oxalloc::Oxalloc = oxalloc::Oxalloc;

/// Reports a panic (a bug in the allocator) without allocating, and aborts.
#[cfg(all(not(test), target_arch = "x86_64", target_os = "linux"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut b: oxalloc_core::fmt::Buf<256> = oxalloc_core::fmt::Buf::new();
    b.str("oxalloc: internal error (panic)");
    if let Some(loc) = info.location() {
        b.str(" at ")
            .str(loc.file())
            .str(":")
            .num(loc.line() as u64);
    }
    b.str("\n");
    oxalloc_sys::write_stderr(b.as_bytes());
    oxalloc_sys::abort()
}
