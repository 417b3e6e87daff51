//! C++ `operator new` / `operator delete`, all eighteen replaceable variants, exported
//! under their Itanium-ABI names so that sized and aligned deletes reach the checks.
//!
//! A failed throwing `new` must throw `std::bad_alloc`. Rust cannot throw (and with
//! `panic = "abort"` no exception may cross a Rust frame), so the four throwing
//! operators are assembly trampolines that jump to libstdc++'s `std::__throw_bad_alloc()`
//! (looked up when needed; present whenever the program is C++). Without libstdc++ the
//! failure is reported ("out of memory") and the process aborts. The trampolines exist
//! for x86-64 and aarch64; elsewhere the throwing operators are not exported
//! (libstdc++'s own forward to our `malloc`, which is still checked).
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;

use crate::heap::{self, Expect, Op, DELETE, DELETE_ARRAY};
use crate::report::{self, Kind};
use crate::stack_marker;

/// The throwing `new` operators are four small assembly trampolines (x86-64 and
/// aarch64): they call [`new_or_null`] and, when it returns null, jump (not call) to
/// libstdc++'s `std::__throw_bad_alloc()`. The exception then starts in a frame whose
/// caller is the program's, and never has to cross a Rust frame, which `panic =
/// "abort"` forbids. Each trampoline passes its entry stack pointer as the stack
/// marker (in the argument register after the operator's own, `marker_reg!`), and
/// carries CFI so the unwinder walks through it both for stack capture and for the
/// exception. The code is `trampoline!`, one per architecture.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! throwing_new {
    ($name:ident($($a:ident: $t:ty),*), $args:tt, $imp:path) => {
        /// C++ throwing `operator new` (assembly trampoline, see above).
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name($($a: $t),*) -> *mut c_void {
            core::arch::naked_asm!(
                trampoline!(marker_reg!($args)),
                imp = sym $imp,
                target = sym bad_alloc_target,
            )
        }
    };
}

/// x86-64: the call and the jump keep the stack 16-byte aligned around `call`.
#[cfg(target_arch = "x86_64")]
macro_rules! trampoline {
    ($marker:expr) => {
        concat!(
            ".cfi_startproc\n",
            "mov ",
            $marker,
            ", rsp\n",
            "sub rsp, 8\n",
            ".cfi_adjust_cfa_offset 8\n",
            "call {imp}\n",
            "add rsp, 8\n",
            ".cfi_adjust_cfa_offset -8\n",
            "test rax, rax\n",
            "jz 2f\n",
            "ret\n",
            "2:\n",
            "sub rsp, 8\n",
            ".cfi_adjust_cfa_offset 8\n",
            "call {target}\n",
            "add rsp, 8\n",
            ".cfi_adjust_cfa_offset -8\n",
            "jmp rax\n",
            ".cfi_endproc",
        )
    };
}

/// aarch64: a frame record (`x29`, `x30`) around the call, and the jump to the throw
/// through `x16` once the caller's `x30` is back, so the throw returns to the `new`
/// expression's caller as if called from there.
#[cfg(target_arch = "aarch64")]
macro_rules! trampoline {
    ($marker:expr) => {
        concat!(
            ".cfi_startproc\n",
            "mov ",
            $marker,
            ", sp\n",
            "stp x29, x30, [sp, #-16]!\n",
            ".cfi_def_cfa_offset 16\n",
            ".cfi_offset 30, -8\n",
            ".cfi_offset 29, -16\n",
            "mov x29, sp\n",
            "bl {imp}\n",
            "cbz x0, 2f\n",
            "ldp x29, x30, [sp], #16\n",
            ".cfi_remember_state\n",
            ".cfi_def_cfa_offset 0\n",
            ".cfi_restore 30\n",
            ".cfi_restore 29\n",
            "ret\n",
            "2:\n",
            ".cfi_restore_state\n",
            "bl {target}\n",
            "mov x16, x0\n",
            "ldp x29, x30, [sp], #16\n",
            ".cfi_def_cfa_offset 0\n",
            ".cfi_restore 30\n",
            ".cfi_restore 29\n",
            "br x16\n",
            ".cfi_endproc",
        )
    };
}

/// The register that carries the marker: the second or third argument register.
#[cfg(target_arch = "x86_64")]
macro_rules! marker_reg {
    (1) => {
        "rsi"
    };
    (2) => {
        "rdx"
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! marker_reg {
    (1) => {
        "x1"
    };
    (2) => {
        "x2"
    };
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
throwing_new!(_Znwm(_n: usize), 1, new_or_null);
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
throwing_new!(_Znam(_n: usize), 1, new_array_or_null);
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
throwing_new!(_ZnwmSt11align_val_t(_n: usize, _a: usize), 2, new_aligned_or_null);
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
throwing_new!(_ZnamSt11align_val_t(_n: usize, _a: usize), 2, new_array_aligned_or_null);

/// `operator new(n)` without the throw: null on failure.
extern "C" fn new_or_null(n: usize, marker: usize) -> *mut c_void {
    heap::alloc_new(n, 16, marker) as *mut c_void
}

/// `operator new[](n)` without the throw: null on failure.
extern "C" fn new_array_or_null(n: usize, marker: usize) -> *mut c_void {
    heap::alloc_new_array(n, 16, marker) as *mut c_void
}

/// `operator new(n, align)` without the throw: null on failure.
extern "C" fn new_aligned_or_null(n: usize, align: usize, marker: usize) -> *mut c_void {
    heap::alloc_new(n, align, marker) as *mut c_void
}

/// `operator new[](n, align)` without the throw: null on failure.
extern "C" fn new_array_aligned_or_null(n: usize, align: usize, marker: usize) -> *mut c_void {
    heap::alloc_new_array(n, align, marker) as *mut c_void
}

/// Where a failed throwing `new` jumps: `std::__throw_bad_alloc`, looked up now (no
/// lock is held). Without libstdc++ there is nothing to throw: report and abort.
extern "C" fn bad_alloc_target() -> *mut c_void {
    let f = oxalloc_sys::lookup_symbol(c"_ZSt17__throw_bad_allocv");
    if f.is_null() {
        let mut m = report::headline(Kind::OutOfMemory, 0);
        m.str(" in operator new (std::bad_alloc cannot be thrown: no libstdc++)");
        report::fatal_unlocked(m, 0, None);
    }
    f
}

#[inline(always)]
fn delete_impl(p: *mut c_void, op: Op, size: Option<usize>, align: Option<usize>, marker: usize) {
    heap::free(p as usize, op, Expect { size, align }, marker);
}

macro_rules! nothrow_new_fns {
    ($($name:ident($($a:ident: $t:ty),*) => $alloc:ident($n:ident, $al:expr);)*) => {$(
        /// C++ `operator new(..., std::nothrow)` / `new[]`: null on failure.
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($($a: $t),*) -> *mut c_void {
            heap::$alloc($n, $al, stack_marker!()) as *mut c_void
        }
    )*};
}

/// `std::nothrow_t` is passed by reference; we never look at it.
type Nothrow = *const c_void;

nothrow_new_fns! {
    _ZnwmRKSt9nothrow_t(n: usize, _t: Nothrow) => alloc_new(n, 16);
    _ZnamRKSt9nothrow_t(n: usize, _t: Nothrow) => alloc_new_array(n, 16);
    _ZnwmSt11align_val_tRKSt9nothrow_t(n: usize, a: usize, _t: Nothrow) => alloc_new(n, a);
    _ZnamSt11align_val_tRKSt9nothrow_t(n: usize, a: usize, _t: Nothrow) => alloc_new_array(n, a);
}

macro_rules! delete_fns {
    ($($name:ident($p:ident: $pt:ty $(, $a:ident: $t:ty)*) => $op:ident, $size:expr, $align:expr;)*) => {$(
        /// C++ `operator delete` / `delete[]` variant: the block's family (`new` or
        /// `new[]`), size and alignment are checked.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($p: $pt $(, $a: $t)*) {
            delete_impl($p, $op, $size, $align, stack_marker!());
        }
    )*};
}

delete_fns! {
    _ZdlPv(p: *mut c_void) => DELETE, None, None;
    _ZdaPv(p: *mut c_void) => DELETE_ARRAY, None, None;
    _ZdlPvm(p: *mut c_void, n: usize) => DELETE, Some(n), None;
    _ZdaPvm(p: *mut c_void, n: usize) => DELETE_ARRAY, Some(n), None;
    _ZdlPvSt11align_val_t(p: *mut c_void, a: usize) => DELETE, None, Some(a);
    _ZdaPvSt11align_val_t(p: *mut c_void, a: usize) => DELETE_ARRAY, None, Some(a);
    _ZdlPvmSt11align_val_t(p: *mut c_void, n: usize, a: usize) => DELETE, Some(n), Some(a);
    _ZdaPvmSt11align_val_t(p: *mut c_void, n: usize, a: usize) => DELETE_ARRAY, Some(n), Some(a);
    _ZdlPvRKSt9nothrow_t(p: *mut c_void, _t: Nothrow) => DELETE, None, None;
    _ZdaPvRKSt9nothrow_t(p: *mut c_void, _t: Nothrow) => DELETE_ARRAY, None, None;
    _ZdlPvSt11align_val_tRKSt9nothrow_t(p: *mut c_void, a: usize, _t: Nothrow) => DELETE, None, Some(a);
    _ZdaPvSt11align_val_tRKSt9nothrow_t(p: *mut c_void, a: usize, _t: Nothrow) => DELETE_ARRAY, None, Some(a);
}
