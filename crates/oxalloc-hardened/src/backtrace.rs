//! Stack capture: the core's (`oxalloc_core::backtrace`), with libgcc's unwinder
//! linked in rather than looked up at report time, since every hardened report and
//! every allocation with `OXALLOC_LEAKS=1` needs it.

use core::ffi::c_void;
use oxalloc_core::backtrace::{capture_with, Trace, UnwindContext, Unwinder};
pub use oxalloc_core::backtrace::{Stack, STACK_DEPTH};

extern "C" {
    fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

/// Captures up to [`STACK_DEPTH`] return addresses of the program's frames, those
/// above the stack address `marker` (a local of the exported function that was called).
#[inline(never)]
pub fn capture(marker: usize) -> Stack {
    capture_with(
        Unwinder {
            backtrace: _Unwind_Backtrace,
            get_ip: _Unwind_GetIP,
            get_cfa: _Unwind_GetCFA,
        },
        marker,
    )
}
