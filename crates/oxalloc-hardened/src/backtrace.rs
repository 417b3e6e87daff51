//! Stack capture without allocating: `_Unwind_Backtrace` from libgcc's unwinder, which
//! walks the DWARF call-frame information (so it works for callers built without frame
//! pointers) and finds it through `dl_iterate_phdr` and a static cache, not `malloc`.
//! glibc's `backtrace()` is avoided: its first call `dlopen`s libgcc_s, which allocates.
//!
//! Frames are kept from the caller of the exported allocator function outwards: each
//! export passes the address of one of its locals as a stack marker. libgcc hands the
//! callback, with each frame's instruction pointer, the CFA of the frame it called,
//! which is that frame's stack pointer at the call. The export's own frame reports a
//! stack pointer below its local; the first frame that reports one above the marker is
//! the export's caller, the program.

use core::ffi::c_void;

use crate::mitigations::STACK_DEPTH;

/// Return addresses, innermost first; unused entries are 0.
pub type Stack = [usize; STACK_DEPTH];

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

type Trace = extern "C" fn(ctx: *mut UnwindContext, arg: *mut c_void) -> i32;

extern "C" {
    fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
}

const URC_NO_REASON: i32 = 0;
const URC_END_OF_STACK: i32 = 5;

struct Capture {
    marker: usize,
    len: usize,
    stack: Stack,
}

extern "C" fn on_frame(ctx: *mut UnwindContext, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `&mut Capture` that `capture` passed to `_Unwind_Backtrace`,
    // which calls us synchronously on the same thread.
    let cap = unsafe { &mut *arg.cast::<Capture>() };
    // SAFETY: `ctx` is the live unwind context the unwinder hands to this callback.
    let (ip, cfa) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetCFA(ctx)) };
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

/// Captures up to [`STACK_DEPTH`] return addresses of the program's frames, those
/// above the stack address `marker` (a local of the exported function that was called).
#[inline(never)]
pub fn capture(marker: usize) -> Stack {
    let mut cap = Capture {
        marker,
        len: 0,
        stack: [0; STACK_DEPTH],
    };
    // SAFETY: the callback only reads the context it is given and writes into `cap`,
    // which outlives the call.
    unsafe { _Unwind_Backtrace(on_frame, (&mut cap as *mut Capture).cast()) };
    cap.stack
}

/// The address of a local of the calling function, as a stack marker for [`capture`].
#[macro_export]
#[doc(hidden)]
macro_rules! stack_marker {
    () => {{
        let marker = 0u8;
        core::hint::black_box(&marker) as *const u8 as usize
    }};
}
