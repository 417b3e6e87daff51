//! `malloc(0)`: a unique pointer to memory that faults on any access.
//!
//! One `PROT_NONE` reservation of [`SLOTS`] 16-byte slots that is never made
//! accessible, and a state byte per slot in a mapping of its own. Slots are handed out
//! in address order; after the last one, the search wraps around for freed ones, so a
//! freed address is reused as late as possible. Under one lock: programs rarely ask
//! for zero bytes often.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::lock::Lock;
use crate::shadow::{self, FREED, NEVER};

/// Slots in the reservation (1 GiB of address space).
pub const SLOTS: usize = 1 << 26;
const SLOT: usize = 16;

static BASE: AtomicUsize = AtomicUsize::new(0);
static STATES: AtomicUsize = AtomicUsize::new(0);
/// The lock, and the next slot to try (under it).
pub static LOCK: Lock = Lock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Live zero-size blocks.
pub static LIVE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Reserves the slots and maps their states; false if the kernel refuses.
pub fn init() -> bool {
    let Some(base) = oxalloc_sys::reserve(SLOTS * SLOT) else {
        return false;
    };
    let Some(states) = oxalloc_sys::map(SLOTS) else {
        return false;
    };
    STATES.store(states.as_ptr() as usize, Ordering::Relaxed);
    BASE.store(base.as_ptr() as usize, Ordering::Release);
    true
}

fn state(i: usize) -> &'static AtomicU8 {
    debug_assert!(i < SLOTS);
    // SAFETY: the state mapping has SLOTS bytes and is never unmapped.
    unsafe { &*((STATES.load(Ordering::Relaxed) + i) as *const AtomicU8) }
}

/// A fresh zero-size block in the live state `live` (how it was allocated), or 0
/// when all [`SLOTS`] are live.
pub fn alloc(live: u8) -> usize {
    LOCK.lock();
    let start = NEXT.load(Ordering::Relaxed);
    let mut found = None;
    for k in 0..SLOTS {
        let i = (start + k) % SLOTS;
        if !shadow::is_live(state(i).load(Ordering::Relaxed)) {
            found = Some(i);
            break;
        }
    }
    let p = match found {
        Some(i) => {
            state(i).store(live, Ordering::Release);
            NEXT.store(i + 1, Ordering::Relaxed);
            LIVE_COUNT.fetch_add(1, Ordering::Relaxed);
            BASE.load(Ordering::Relaxed) + i * SLOT
        }
        None => 0,
    };
    LOCK.unlock();
    p
}

/// What a pointer into the slots is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Not in the reservation.
    Outside,
    /// A live block (now freed, if asked to claim).
    Live,
    /// The start of a slot that was freed already.
    Freed,
    /// The start of a slot never handed out.
    Never,
    /// Not the start of a slot (offset in bytes).
    Inside(usize),
    /// A live block allocated by another family (its live state).
    LiveAs(u8),
}

/// Classifies `p` for a caller that expects the live state `want` (0: any); with
/// `claim`, a live block of that state becomes freed (one compare-and-swap, so of two
/// frees exactly one sees it live).
pub fn check(p: usize, claim: bool, want: u8) -> Slot {
    let base = BASE.load(Ordering::Acquire);
    let off = p.wrapping_sub(base);
    if base == 0 || off >= SLOTS * SLOT {
        return Slot::Outside;
    }
    if !off.is_multiple_of(SLOT) {
        return Slot::Inside(off % SLOT);
    }
    let s = state(off / SLOT);
    let old = if claim {
        match s.compare_exchange(want, FREED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                LIVE_COUNT.fetch_sub(1, Ordering::Relaxed);
                return Slot::Live;
            }
            Err(v) => v,
        }
    } else {
        s.load(Ordering::Acquire)
    };
    match old {
        s if shadow::is_live(s) && (want == 0 || s == want) => Slot::Live,
        s if shadow::is_live(s) => Slot::LiveAs(s),
        NEVER => Slot::Never,
        _ => Slot::Freed,
    }
}
