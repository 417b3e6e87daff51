//! C++ `operator new` / `operator delete`, all eighteen replaceable variants, exported
//! under their Itanium-ABI names so that sized and aligned deletes reach the checks.
//!
//! A failed throwing `new` must throw `std::bad_alloc`. Rust cannot throw, so we look up
//! libstdc++'s `std::__throw_bad_alloc()` at that moment (present whenever the program
//! is C++) and call it; the exception unwinds through our `C-unwind` frame into the
//! program. Without libstdc++ the failure is reported ("out of memory") and we abort.
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;

use crate::heap::{self, Expect, DELETE};
use crate::report::{self, Kind};
use crate::stack_marker;

#[cold]
#[inline(never)]
fn new_failed(n: usize, marker: usize) -> ! {
    let f = oxalloc_sys::lookup_symbol(c"_ZSt17__throw_bad_allocv");
    if !f.is_null() {
        // SAFETY: the symbol is libstdc++'s `void std::__throw_bad_alloc()`, which
        // takes no arguments, follows the C calling convention and never returns.
        let throw: extern "C-unwind" fn() -> ! = unsafe { core::mem::transmute(f) };
        throw();
    }
    let mut m = report::headline(Kind::OutOfMemory, n);
    m.str(" bytes in operator new (std::bad_alloc cannot be thrown: no libstdc++)");
    report::fatal_unlocked(m, marker, None)
}

#[inline(always)]
fn new_impl(n: usize, align: usize, marker: usize) -> *mut c_void {
    let p = heap::alloc(n, align, false, marker);
    if p == 0 {
        new_failed(n, marker);
    }
    p as *mut c_void
}

fn delete_impl(p: *mut c_void, size: Option<usize>, align: Option<usize>, marker: usize) {
    heap::free(p as usize, DELETE, Expect { size, align }, marker);
}

macro_rules! new_fns {
    ($($name:ident($($a:ident: $t:ty),*) => $n:ident, $al:expr, $throw:expr;)*) => {$(
        /// C++ `operator new` variant (see the module docs).
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn $name($($a: $t),*) -> *mut c_void {
            let marker = stack_marker!();
            if $throw {
                new_impl($n, $al, marker)
            } else {
                heap::alloc($n, $al, false, marker) as *mut c_void
            }
        }
    )*};
}

/// `std::nothrow_t` is passed by reference; we never look at it.
type Nothrow = *const c_void;

new_fns! {
    _Znwm(n: usize) => n, 16, true;
    _Znam(n: usize) => n, 16, true;
    _ZnwmRKSt9nothrow_t(n: usize, _t: Nothrow) => n, 16, false;
    _ZnamRKSt9nothrow_t(n: usize, _t: Nothrow) => n, 16, false;
    _ZnwmSt11align_val_t(n: usize, a: usize) => n, a, true;
    _ZnamSt11align_val_t(n: usize, a: usize) => n, a, true;
    _ZnwmSt11align_val_tRKSt9nothrow_t(n: usize, a: usize, _t: Nothrow) => n, a, false;
    _ZnamSt11align_val_tRKSt9nothrow_t(n: usize, a: usize, _t: Nothrow) => n, a, false;
}

macro_rules! delete_fns {
    ($($name:ident($p:ident: $pt:ty $(, $a:ident: $t:ty)*) => $size:expr, $align:expr;)*) => {$(
        /// C++ `operator delete` variant: sizes and alignments are checked.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($p: $pt $(, $a: $t)*) {
            delete_impl($p, $size, $align, stack_marker!());
        }
    )*};
}

delete_fns! {
    _ZdlPv(p: *mut c_void) => None, None;
    _ZdaPv(p: *mut c_void) => None, None;
    _ZdlPvm(p: *mut c_void, n: usize) => Some(n), None;
    _ZdaPvm(p: *mut c_void, n: usize) => Some(n), None;
    _ZdlPvSt11align_val_t(p: *mut c_void, a: usize) => None, Some(a);
    _ZdaPvSt11align_val_t(p: *mut c_void, a: usize) => None, Some(a);
    _ZdlPvmSt11align_val_t(p: *mut c_void, n: usize, a: usize) => Some(n), Some(a);
    _ZdaPvmSt11align_val_t(p: *mut c_void, n: usize, a: usize) => Some(n), Some(a);
    _ZdlPvRKSt9nothrow_t(p: *mut c_void, _t: Nothrow) => None, None;
    _ZdaPvRKSt9nothrow_t(p: *mut c_void, _t: Nothrow) => None, None;
    _ZdlPvSt11align_val_tRKSt9nothrow_t(p: *mut c_void, a: usize, _t: Nothrow) => None, Some(a);
    _ZdaPvSt11align_val_tRKSt9nothrow_t(p: *mut c_void, a: usize, _t: Nothrow) => None, Some(a);
}
