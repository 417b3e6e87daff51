//! Misuse reports: the core's report code (`oxalloc_core::report`, shared with the
//! default build's checks), plus [`fatal`] for callers that hold a shard lock.

pub use oxalloc_core::report::{block, headline, within, Kind, Msg};

use crate::backtrace::Stack;

/// Finishes the report (see `oxalloc_core::report::fatal`), writes it and aborts.
///
/// `held`, the shard lock the caller holds, is released first: the state is consistent
/// (nothing was changed for the misuse), a signal handler that allocates will not
/// hang, and the unwinder may take the loader lock without risk of a lock-order
/// deadlock with us.
#[cold]
#[inline(never)]
pub fn fatal(held: &crate::lock::Lock, m: Msg, marker: usize, allocated: Option<&Stack>) -> ! {
    held.unlock();
    fatal_unlocked(m, marker, allocated)
}

/// [`fatal`] for callers that hold no lock.
#[cold]
#[inline(never)]
pub fn fatal_unlocked(m: Msg, marker: usize, allocated: Option<&Stack>) -> ! {
    let here = (marker != 0).then(|| crate::backtrace::capture(marker));
    oxalloc_core::report::fatal_with(m, here.as_ref(), allocated)
}
