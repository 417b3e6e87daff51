//! C++ `operator new` and `operator delete`, every replaceable variant, exported under
//! their Itanium-ABI names (Linux): `new` and `delete` expressions reach oxalloc without
//! libstdc++'s forwarders, and a sized `delete` whose size is not the block's (another
//! class) is reported, as `free_sized` reports it.
//!
//! Only the successful `new` is ours. When memory runs out, a `new` hands the request
//! to the operator it replaces (libstdc++'s, `dlsym(RTLD_NEXT)`), which asks `malloc`
//! again and does what the standard says: calls the `new_handler` and tries again, then
//! throws `std::bad_alloc` (or returns null, for the `nothrow` ones). Rust cannot throw
//! (and nothing may unwind through a Rust frame), so the four throwing operators are
//! assembly trampolines (x86-64): they keep their arguments, call the allocation, and
//! on null jump (not call) to libstdc++'s operator with the arguments back in place, so
//! the exception starts in a frame whose caller is the program's. On other
//! architectures the throwing operators are not exported: libstdc++'s forward to our
//! `malloc`. The `nothrow` ones call libstdc++'s, which catches its own exception.

use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};
use oxalloc_core::api;

/// The definition of `name` that ours replaces, looked up once: libstdc++'s operator.
/// Without one (no libstdc++ after us: nothing to throw with) the failure is reported
/// and the process aborts.
fn replaced(cache: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let mut f = cache.load(Ordering::Relaxed);
    if f.is_null() {
        f = oxalloc_sys::next_symbol(name);
        if f.is_null() {
            oxalloc_sys::write_stderr(
                b"oxalloc: out of memory in operator new, and no libstdc++ operator new to \
                  throw std::bad_alloc: aborting\n",
            );
            oxalloc_sys::abort();
        }
        cache.store(f, Ordering::Relaxed);
    }
    f
}

/// A throwing `operator new` (x86-64): `$imp` allocates; on null the trampoline jumps
/// to what `$next` returns (the replaced operator) with the arguments restored. Both
/// argument registers are kept whatever the operator takes (`rsi` is unused by the
/// unaligned ones), so one body serves all four. The stack stays 16-byte aligned at
/// both calls; CFI describes every push.
#[cfg(target_arch = "x86_64")]
macro_rules! throwing_new {
    ($name:ident($($arg:ident),*), $imp:path, $next:path) => {
        /// C++ throwing `operator new` (assembly trampoline: see the module docs).
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn $name($($arg: usize),*) -> *mut c_void {
            core::arch::naked_asm!(
                ".cfi_startproc",
                "push rdi",
                ".cfi_adjust_cfa_offset 8",
                "push rsi",
                ".cfi_adjust_cfa_offset 8",
                "sub rsp, 8",
                ".cfi_adjust_cfa_offset 8",
                "call {imp}",
                "test rax, rax",
                "jz 2f",
                ".cfi_remember_state",
                "add rsp, 24",
                ".cfi_adjust_cfa_offset -24",
                "ret",
                "2:",
                ".cfi_restore_state",
                "call {next}",
                "mov r11, rax",
                "add rsp, 8",
                ".cfi_adjust_cfa_offset -8",
                "pop rsi",
                ".cfi_adjust_cfa_offset -8",
                "pop rdi",
                ".cfi_adjust_cfa_offset -8",
                "jmp r11",
                ".cfi_endproc",
                imp = sym $imp,
                next = sym $next,
            )
        }
    };
}

/// A `new` that returns null on failure (for the trampolines and the `nothrow` ones).
extern "C" fn new_or_null(size: usize) -> *mut c_void {
    api::cxx_new(size, 16).cast()
}

/// An aligned `new` that returns null on failure.
extern "C" fn new_aligned_or_null(size: usize, align: usize) -> *mut c_void {
    api::cxx_new(size, align).cast()
}

/// Declares, for each replaced operator, the function that finds it (`replaced`).
macro_rules! replaced_fns {
    ($($fn_name:ident => $sym:literal;)*) => {$(
        /// The replaced operator (see `replaced`).
        extern "C" fn $fn_name() -> *mut c_void {
            static CACHE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
            replaced(&CACHE, $sym)
        }
    )*};
}

#[cfg(target_arch = "x86_64")]
replaced_fns! {
    next_new => c"_Znwm";
    next_new_array => c"_Znam";
    next_new_aligned => c"_ZnwmSt11align_val_t";
    next_new_array_aligned => c"_ZnamSt11align_val_t";
}

replaced_fns! {
    next_new_nothrow => c"_ZnwmRKSt9nothrow_t";
    next_new_array_nothrow => c"_ZnamRKSt9nothrow_t";
    next_new_aligned_nothrow => c"_ZnwmSt11align_val_tRKSt9nothrow_t";
    next_new_array_aligned_nothrow => c"_ZnamSt11align_val_tRKSt9nothrow_t";
}

#[cfg(target_arch = "x86_64")]
throwing_new!(_Znwm(_size), new_or_null, next_new);
#[cfg(target_arch = "x86_64")]
throwing_new!(_Znam(_size), new_or_null, next_new_array);
#[cfg(target_arch = "x86_64")]
throwing_new!(
    _ZnwmSt11align_val_t(_size, _align),
    new_aligned_or_null,
    next_new_aligned
);
#[cfg(target_arch = "x86_64")]
throwing_new!(
    _ZnamSt11align_val_t(_size, _align),
    new_aligned_or_null,
    next_new_array_aligned
);

/// `std::nothrow_t`, passed by reference and never read.
type Nothrow = *const c_void;

/// The `nothrow` operators: on null they call the replaced one, which asks `malloc`
/// again, calls the `new_handler`, and returns null for good (it catches its own
/// `std::bad_alloc`, so nothing unwinds into these frames).
macro_rules! nothrow_new_fns {
    ($($name:ident($($a:ident),*) => $imp:ident, $next:ident;)*) => {$(
        /// C++ `nothrow` `operator new` variant (see the module docs).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($a: usize,)* t: Nothrow) -> *mut c_void {
            let p = $imp($($a),*);
            if !p.is_null() {
                return p;
            }
            type Replaced =
                unsafe extern "C" fn($(nothrow_new_fns!(@usize $a),)* Nothrow) -> *mut c_void;
            // SAFETY: the symbol is libstdc++'s operator of this very signature.
            unsafe { core::mem::transmute::<*mut c_void, Replaced>($next())($($a,)* t) }
        }
    )*};
    (@usize $a:ident) => { usize };
}

nothrow_new_fns! {
    _ZnwmRKSt9nothrow_t(size) => new_or_null, next_new_nothrow;
    _ZnamRKSt9nothrow_t(size) => new_or_null, next_new_array_nothrow;
    _ZnwmSt11align_val_tRKSt9nothrow_t(size, align) => new_aligned_or_null, next_new_aligned_nothrow;
    _ZnamSt11align_val_tRKSt9nothrow_t(size, align) => new_aligned_or_null, next_new_array_aligned_nothrow;
}

/// The `operator delete` variants: the sized ones check the size (and alignment).
macro_rules! delete_fns {
    ($($name:ident($($a:ident: $t:ty),*) => $size:expr, $align:expr;)*) => {$(
        /// C++ `operator delete` / `delete[]` variant (see the module docs).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(p: *mut c_void $(, $a: $t)*) {
            // SAFETY: the C++ contract: `p` is null or a live block from `new`.
            unsafe { api::cxx_delete(p.cast(), $size, $align) }
        }
    )*};
}

delete_fns! {
    _ZdlPv() => None, 16;
    _ZdaPv() => None, 16;
    _ZdlPvm(size: usize) => Some(size), 16;
    _ZdaPvm(size: usize) => Some(size), 16;
    _ZdlPvSt11align_val_t(_align: usize) => None, 16;
    _ZdaPvSt11align_val_t(_align: usize) => None, 16;
    _ZdlPvmSt11align_val_t(size: usize, align: usize) => Some(size), align;
    _ZdaPvmSt11align_val_t(size: usize, align: usize) => Some(size), align;
    _ZdlPvRKSt9nothrow_t(_t: Nothrow) => None, 16;
    _ZdaPvRKSt9nothrow_t(_t: Nothrow) => None, 16;
    _ZdlPvSt11align_val_tRKSt9nothrow_t(_align: usize, _t: Nothrow) => None, 16;
    _ZdaPvSt11align_val_tRKSt9nothrow_t(_align: usize, _t: Nothrow) => None, 16;
}
