//! Fault injection, for tests only (feature `fault-injection`; release builds do not
//! have it): makes a chosen call of the wrappers that map or change memory fail the
//! way a refusing kernel makes it fail, so a test can walk every such call of a
//! workload and check that the allocator survives each refusal.
//!
//! The wrappers counted are [`map`](crate::map), [`map_aligned`](crate::map_aligned)
//! (one call: its trimming `munmap`s are not counted), [`reserve`](crate::reserve),
//! [`resize_in_place`](crate::resize_in_place), [`discard`](crate::discard),
//! [`decommit`](crate::decommit), [`prefer_huge_pages`](crate::prefer_huge_pages),
//! [`protect`](crate::protect), [`map_shared_file`](crate::map_shared_file) and
//! [`brk`](crate::brk) when it moves the break (`brk(0)` only reads it). A failed call
//! returns what the wrapper returns for a refusal (`None`, `false`, the old break) and
//! does not reach the kernel. `unmap` is not counted: it has no failure to report.
//!
//! The state is a handful of process-wide atomics, relaxed: the hook runs inside the
//! allocator, so it may neither allocate nor lock.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};

/// The kinds of call the hook counts, for reports of what failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Call {
    /// [`map`](crate::map).
    Map = 1,
    /// [`map_aligned`](crate::map_aligned).
    MapAligned,
    /// [`reserve`](crate::reserve).
    Reserve,
    /// [`resize_in_place`](crate::resize_in_place).
    Resize,
    /// [`discard`](crate::discard).
    Discard,
    /// [`decommit`](crate::decommit).
    Decommit,
    /// [`prefer_huge_pages`](crate::prefer_huge_pages).
    HugePages,
    /// [`protect`](crate::protect).
    Protect,
    /// [`map_shared_file`](crate::map_shared_file).
    MapShared,
    /// [`brk`](crate::brk) moving the break.
    Brk,
}

impl Call {
    /// Every kind, in the order of their numbers.
    pub const ALL: [Call; KINDS] = [
        Call::Map,
        Call::MapAligned,
        Call::Reserve,
        Call::Resize,
        Call::Discard,
        Call::Decommit,
        Call::HugePages,
        Call::Protect,
        Call::MapShared,
        Call::Brk,
    ];

    /// The wrapper's name.
    pub fn name(self) -> &'static str {
        match self {
            Call::Map => "map",
            Call::MapAligned => "map_aligned",
            Call::Reserve => "reserve",
            Call::Resize => "resize_in_place",
            Call::Discard => "discard",
            Call::Decommit => "decommit",
            Call::HugePages => "prefer_huge_pages",
            Call::Protect => "protect",
            Call::MapShared => "map_shared_file",
            Call::Brk => "brk",
        }
    }
}

/// Number of [`Call`] kinds.
pub const KINDS: usize = 10;

/// Counted calls so far, of every kind.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Counted calls so far, per kind (index: the kind's number - 1).
static CALLS_BY_KIND: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];
/// The number (in [`CALLS`]) of the first call to fail; 0: none.
static FAIL_AT: AtomicU64 = AtomicU64::new(0);
/// Whether every call after [`FAIL_AT`] fails too.
static FAIL_ONWARDS: AtomicBool = AtomicBool::new(false);
/// Calls made to fail so far.
static INJECTED: AtomicU64 = AtomicU64::new(0);
/// The kind of the first call made to fail (0: none yet).
static FIRST_KIND: AtomicU8 = AtomicU8::new(0);

/// Makes the `n`th counted call from now (1: the next one) fail, and only that one.
/// `n == 0` disarms.
pub fn fail_nth(n: u64) {
    arm(n, false);
}

/// Makes the `n`th counted call from now and every one after it fail (an address
/// space that stays full). `n == 0` disarms.
pub fn fail_from(n: u64) {
    arm(n, true);
}

/// No call fails from now on.
pub fn disarm() {
    FAIL_AT.store(0, Relaxed);
}

fn arm(n: u64, onwards: bool) {
    FAIL_ONWARDS.store(onwards, Relaxed);
    let at = if n == 0 { 0 } else { CALLS.load(Relaxed) + n };
    FAIL_AT.store(at, Relaxed);
}

/// Counted calls so far (failed ones included).
pub fn calls() -> u64 {
    CALLS.load(Relaxed)
}

/// Counted calls of one kind so far.
pub fn calls_of(kind: Call) -> u64 {
    CALLS_BY_KIND[kind as usize - 1].load(Relaxed)
}

/// Calls made to fail so far.
pub fn injected() -> u64 {
    INJECTED.load(Relaxed)
}

/// The kind of the first call made to fail, if any.
pub fn first_injected() -> Option<Call> {
    match FIRST_KIND.load(Relaxed) {
        0 => None,
        k => Some(Call::ALL[k as usize - 1]),
    }
}

/// Counts a call of `kind` and says whether it is to fail.
#[inline(never)]
pub(crate) fn hit(kind: Call) -> bool {
    let n = CALLS.fetch_add(1, Relaxed) + 1;
    CALLS_BY_KIND[kind as usize - 1].fetch_add(1, Relaxed);
    let at = FAIL_AT.load(Relaxed);
    if at == 0 || n < at || (n > at && !FAIL_ONWARDS.load(Relaxed)) {
        return false;
    }
    if INJECTED.fetch_add(1, Relaxed) == 0 {
        FIRST_KIND.store(kind as u8, Relaxed);
    }
    true
}
