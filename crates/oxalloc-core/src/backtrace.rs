//! Stack capture without allocating, for misuse reports: `_Unwind_Backtrace` from
//! libgcc's unwinder, which walks the DWARF call-frame information (so it works for
//! callers built without frame pointers) and finds it through `dl_iterate_phdr` and a
//! static cache, not `malloc`. glibc's `backtrace()` is avoided: its first call
//! `dlopen`s libgcc_s, which allocates.
//!
//! The default build does not link libgcc_s (liboxalloc.so carries no unwinder): the
//! unwinder is looked up when a report needs it, in the loaded objects and then by
//! loading libgcc_s. That is the error path, just before `abort()`, with no allocator
//! lock held, so the loader may allocate. A build that links the unwinder (the
//! hardened build) passes it to [`capture_with`].
//!
//! Frames are kept from a stack marker outwards: the caller passes the address of one
//! of its locals. libgcc hands the callback, with each frame's instruction pointer, the
//! CFA of the frame it called, which is that frame's stack pointer at the call. Frames
//! at or below the marker are the allocator's own; the first above it is its caller.
#![allow(unsafe_code)]

use core::ffi::c_void;

/// Return addresses kept in a report's stack (and per allocation for leak reports).
pub const STACK_DEPTH: usize = 8;

/// Return addresses, innermost first; unused entries are 0.
pub type Stack = [usize; STACK_DEPTH];

/// libgcc's opaque unwind context.
#[repr(C)]
pub struct UnwindContext {
    _private: [u8; 0],
}

/// `_Unwind_Trace_Fn`.
pub type Trace = extern "C" fn(ctx: *mut UnwindContext, arg: *mut c_void) -> i32;
/// `_Unwind_Backtrace`.
pub type BacktraceFn = unsafe extern "C" fn(trace: Trace, arg: *mut c_void) -> i32;
/// `_Unwind_GetIP` and `_Unwind_GetCFA`.
pub type GetFn = unsafe extern "C" fn(ctx: *mut UnwindContext) -> usize;

const URC_NO_REASON: i32 = 0;
const URC_END_OF_STACK: i32 = 5;

/// The unwinder's three entry points.
#[derive(Clone, Copy)]
pub struct Unwinder {
    /// `_Unwind_Backtrace`.
    pub backtrace: BacktraceFn,
    /// `_Unwind_GetIP`.
    pub get_ip: GetFn,
    /// `_Unwind_GetCFA`.
    pub get_cfa: GetFn,
}

#[cfg(all(
    target_os = "linux",
    not(all(target_env = "musl", target_feature = "crt-static"))
))]
fn unwinder() -> Option<Unwinder> {
    let find = |name: &core::ffi::CStr| -> *mut c_void {
        let p = oxalloc_sys::lookup_symbol(name);
        if p.is_null() {
            oxalloc_sys::library_symbol(c"libgcc_s.so.1", name)
        } else {
            p
        }
    };
    let (bt, ip, cfa) = (
        find(c"_Unwind_Backtrace"),
        find(c"_Unwind_GetIP"),
        find(c"_Unwind_GetCFA"),
    );
    if bt.is_null() || ip.is_null() || cfa.is_null() {
        return None;
    }
    // SAFETY: the symbols are libgcc's unwinder functions, with these C signatures.
    unsafe {
        Some(Unwinder {
            backtrace: core::mem::transmute::<*mut c_void, BacktraceFn>(bt),
            get_ip: core::mem::transmute::<*mut c_void, GetFn>(ip),
            get_cfa: core::mem::transmute::<*mut c_void, GetFn>(cfa),
        })
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    all(windows, target_env = "gnu")
)))]
fn unwinder() -> Option<Unwinder> {
    None
}

// Windows with the GNU toolchain: every program Rust links for `*-windows-gnu` carries
// libgcc's SEH unwinder (`libgcc_eh`, which std's unwinding uses), whose
// `_Unwind_Backtrace` walks the frames with `RtlVirtualUnwind` and allocates nothing.
// macOS: libSystem, which every program links, re-exports the system's libunwind, which
// has all three (it reads the compact unwind tables and the DWARF CFI; it may `malloc`
// to grow a cache, from the system allocator, which a Rust `#[global_allocator]` does
// not replace). Named here without a `#[link]`: the final link already has them.
#[cfg(any(all(windows, target_env = "gnu"), target_os = "macos"))]
extern "C" {
    fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

#[cfg(any(all(windows, target_env = "gnu"), target_os = "macos"))]
fn unwinder() -> Option<Unwinder> {
    Some(Unwinder {
        backtrace: _Unwind_Backtrace,
        get_ip: _Unwind_GetIP,
        get_cfa: _Unwind_GetCFA,
    })
}

// A static musl program has no dynamic loader: `dlsym` finds nothing and `dlopen` fails,
// so the lookup above would always give "(no stack)". Such a program always carries an
// unwinder (Rust's musl target links the LLVM libunwind that ships with it, the
// `libunwind.a` named below), so it is linked directly instead. `-bundle`: the archive
// stays a link argument of the final program, as std's own `-lunwind` is.
#[cfg(all(
    target_os = "linux",
    target_env = "musl",
    target_feature = "crt-static"
))]
#[link(name = "unwind", kind = "static", modifiers = "-bundle")]
extern "C" {
    fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

#[cfg(all(
    target_os = "linux",
    target_env = "musl",
    target_feature = "crt-static"
))]
fn unwinder() -> Option<Unwinder> {
    Some(Unwinder {
        backtrace: _Unwind_Backtrace,
        get_ip: _Unwind_GetIP,
        get_cfa: _Unwind_GetCFA,
    })
}

struct Capture {
    unwinder: Unwinder,
    marker: usize,
    len: usize,
    stack: Stack,
}

extern "C" fn on_frame(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `&mut Capture` that `capture` passed to `_Unwind_Backtrace`,
    // which calls us synchronously on the same thread.
    let cap = unsafe { &mut *arg.cast::<Capture>() };
    // SAFETY: `ctx` is the live unwind context the unwinder hands to this callback.
    let (ip, cfa) = unsafe { ((cap.unwinder.get_ip)(ctx), (cap.unwinder.get_cfa)(ctx)) };
    if cfa <= cap.marker {
        return URC_NO_REASON; // still inside the allocator
    }
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    cap.stack[cap.len] = ip;
    cap.len += 1;
    if cap.len == STACK_DEPTH {
        URC_END_OF_STACK
    } else {
        URC_NO_REASON
    }
}

/// Captures up to [`STACK_DEPTH`] return addresses of the frames above the stack
/// address `marker` (a local of an allocator function); all zero if no unwinder can be
/// found.
#[inline(never)]
pub fn capture(marker: usize) -> Stack {
    match unwinder() {
        Some(u) => capture_with(u, marker),
        None => [0; STACK_DEPTH],
    }
}

/// [`capture`] with a given unwinder (a build that links libgcc's).
#[inline(never)]
pub fn capture_with(unwinder: Unwinder, marker: usize) -> Stack {
    let mut cap = Capture {
        unwinder,
        marker,
        len: 0,
        stack: [0; STACK_DEPTH],
    };
    // SAFETY: the callback only reads the context it is given and writes into `cap`,
    // which outlives the call.
    unsafe { (unwinder.backtrace)(on_frame, (&mut cap as *mut Capture).cast()) };
    cap.stack
}

/// An address in the calling function's frame, as a stack marker for [`capture`]: its
/// stack pointer (every callee's frame lies at or below it), read with one instruction
/// where the architecture is known. The hardened build takes a marker on every
/// `malloc` and `free`; the address of a local made the compiler store a byte and a
/// pointer to the stack for it (five instructions a call).
#[macro_export]
#[doc(hidden)]
macro_rules! stack_marker {
    () => {
        $crate::backtrace::stack_pointer()
    };
}

/// The stack pointer of the function it is inlined into (see [`stack_marker!`]).
#[inline(always)]
#[doc(hidden)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads the stack pointer into a register; touches no memory.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let marker = 0u8;
        sp = core::hint::black_box(&marker) as *const u8 as usize;
    }
    sp
}
