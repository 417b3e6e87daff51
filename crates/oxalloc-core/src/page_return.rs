//! When free pages go back to the OS: one policy for the central span pool and the
//! huge heap.
//!
//! Every purged page that the program uses again costs a page fault and a zeroed page
//! (0.25-1 us each in a VM), so purging on a timer alone turns programs that free and
//! reallocate in cycles into refault storms. The policy follows demand instead:
//!
//! - **Keep what recent demand will use again.** The peak of the bytes in use over the
//!   last `OXALLOC_DEMAND_WINDOW_MS` is remembered (the peak of each of [`EPOCHS`]
//!   slices of the window). Free resident pages up to *that peak minus what is in use
//!   now* are kept, whatever their age: a program that went from its peak down and will
//!   climb back finds its pages resident. (The idea of tcmalloc's "skip subrelease".)
//! - **Give back what lies above it** once it has waited `OXALLOC_PURGE_DELAY_MS`, and
//!   at once when it passes the cache cap (`OXALLOC_CACHE_MAX_MIB`, or a quarter of the
//!   bytes in use if that is more).
//! - **A quiet program keeps nothing.** When neither pool has seen an allocation or a
//!   free for a quarter of the window, the recent peak no longer predicts anything: the
//!   kept memory is purged (by the background thread), so RSS falls after a burst.
//! - `malloc_trim(0)` purges everything at once (the pools' `force`).
//!
//! Both pools report their dirty bytes here, so the one allowance covers them together.
//! The state is a handful of atomics, updated under either pool's lock.

use crate::options;
use crate::stats::GLOBAL;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Slices of the demand window, each remembering its own peak.
const EPOCHS: u64 = 8;
/// Peaks are kept in 64 KiB units, below an epoch number in the high bits.
const UNIT_SHIFT: u32 = 16;
const PEAK_BITS: u32 = 40;
const PEAK_MASK: u64 = (1 << PEAK_BITS) - 1;

/// Per epoch slot: `epoch << PEAK_BITS | peak in units`.
static PEAKS: [AtomicU64; EPOCHS as usize] = [const { AtomicU64::new(0) }; EPOCHS as usize];
/// When the current active stretch began (peaks from before a quiet gap are stale).
static ACTIVE_SINCE_NS: AtomicU64 = AtomicU64::new(0);
/// The last allocation or free in either pool (ns).
static LAST_ACTIVE_NS: AtomicU64 = AtomicU64::new(0);
/// Dirty bytes of each pool, as each last reported them.
static DIRTY: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// The two pools that hold free pages.
#[derive(Clone, Copy)]
pub enum Pool {
    /// The central span pool.
    Spans = 0,
    /// The huge-block page heap.
    Huge = 1,
}

fn window_ns() -> u64 {
    options::DEMAND_WINDOW_MS.get().saturating_mul(1_000_000)
}

fn epoch_ns() -> u64 {
    (window_ns() / EPOCHS).max(1)
}

fn quiet_ns() -> u64 {
    window_ns() / 4
}

/// The purge delay, in ns.
pub fn delay_ns() -> u64 {
    options::PURGE_DELAY_MS.get().saturating_mul(1_000_000)
}

fn in_use() -> u64 {
    GLOBAL.in_use_bytes.load(Relaxed)
}

/// Records activity: call after the bytes in use changed (a span taken or given, a huge
/// block allocated, freed or resized).
pub fn note_demand(now: u64) {
    if window_ns() == 0 {
        return;
    }
    let epoch = now / epoch_ns();
    if now.wrapping_sub(LAST_ACTIVE_NS.swap(now, Relaxed)) >= quiet_ns() {
        ACTIVE_SINCE_NS.store(now, Relaxed);
    }
    let units = (in_use() >> UNIT_SHIFT).min(PEAK_MASK);
    let slot = &PEAKS[(epoch % EPOCHS) as usize];
    let _ = slot.fetch_update(Relaxed, Relaxed, |old| {
        let same_epoch = old >> PEAK_BITS == epoch;
        if same_epoch && old & PEAK_MASK >= units {
            None
        } else {
            Some(epoch << PEAK_BITS | units)
        }
    });
}

/// Free resident bytes (both pools together) that recent demand says will be used
/// again: the window's peak in use minus what is in use now, plus a sixteenth of that
/// peak for the free space that fragmentation leaves beside it (so a cycle that comes
/// back to its peak does not purge and refault a few slices each time); 0 once the
/// program is quiet.
pub fn keep_bytes(now: u64) -> usize {
    let window = window_ns();
    if window == 0 || now.wrapping_sub(LAST_ACTIVE_NS.load(Relaxed)) >= quiet_ns() {
        return 0;
    }
    let epoch = now / epoch_ns();
    let oldest = (epoch + 1)
        .saturating_sub(EPOCHS)
        .max(ACTIVE_SINCE_NS.load(Relaxed) / epoch_ns());
    let peak = PEAKS
        .iter()
        .map(|s| s.load(Relaxed))
        .filter(|v| (oldest..=epoch).contains(&(v >> PEAK_BITS)))
        .map(|v| (v & PEAK_MASK) << UNIT_SHIFT)
        .max()
        .unwrap_or(0);
    (peak.saturating_sub(in_use()) + peak / 16) as usize
}

/// Most bytes of free, resident memory that may wait for the purge delay beyond what
/// demand keeps: the configured cap, or a quarter of what is in use if that is more,
/// so a program with a large working set that churns big blocks does not purge and
/// refault on every cycle.
pub fn cache_cap() -> usize {
    let configured = options::CACHE_MAX_MIB.get() as usize * (1 << 20);
    configured.max(in_use() as usize / 4)
}

/// What a pool should purge now, in bytes of its own dirty memory to keep.
pub struct Targets {
    /// Purge at once, whatever the age, down to this (usize::MAX: nothing to do).
    pub at_once: usize,
    /// Purge what has waited the purge delay down to this.
    pub aged: usize,
}

/// Reports `pool`'s dirty bytes and says how far it should purge.
pub fn targets(pool: Pool, dirty: usize, now: u64) -> Targets {
    DIRTY[pool as usize].store(dirty as u64, Relaxed);
    let other = DIRTY[1 - pool as usize].load(Relaxed) as usize;
    let keep = keep_bytes(now);
    let cap = cache_cap();
    let at_once = if dirty + other > keep.saturating_add(cap) {
        (keep + cap / 2).saturating_sub(other)
    } else {
        usize::MAX
    };
    Targets {
        at_once,
        aged: keep.saturating_sub(other),
    }
}

/// Reports a pool's dirty bytes after it purged or changed.
pub fn set_dirty(pool: Pool, dirty: usize) {
    DIRTY[pool as usize].store(dirty as u64, Relaxed);
}

/// Whether free memory is kept beyond the purge delay now (the background thread can
/// then sleep longer: nothing becomes due before an epoch passes or the program goes
/// quiet).
pub fn keeping(now: u64) -> bool {
    let dirty: u64 = DIRTY.iter().map(|d| d.load(Relaxed)).sum();
    dirty > 0 && dirty as usize <= keep_bytes(now)
}

/// How long the background thread may sleep while [`keeping`] holds.
pub fn recheck_ms() -> u64 {
    (epoch_ns() / 1_000_000).max(1)
}
