//! When free pages go back to the OS: one policy for the central span pool and the
//! huge heap.
//!
//! Every purged page that the program uses again costs a page fault and a zeroed page
//! (0.25-1 us each in a VM), so purging on a timer alone turns programs that free and
//! reallocate in cycles into refault storms. The policy follows demand instead:
//!
//! - **Keep what recent demand will use again.** Each pool remembers the peak of its
//!   bytes in use over the last `OXALLOC_DEMAND_WINDOW_MS` (the peak of each of
//!   [`EPOCHS`] slices of the window). Free resident pages up to *that peak minus what
//!   is in use now* (plus a sixteenth of the peak, for the free space fragmentation
//!   leaves beside it) are kept, whatever their age: a program that went down from its
//!   peak and climbs back finds its pages resident. (The idea of tcmalloc's "skip
//!   subrelease".)
//! - **Give back what lies above it** once it has waited `OXALLOC_PURGE_DELAY_MS`, and
//!   at once when it passes the cache cap: `OXALLOC_CACHE_MAX_MIB`, a quarter of the
//!   bytes in use, or the pool's largest block of the window, whichever is most. Freed
//!   runs of different sizes leave gaps that the next big request does not fit: a pool
//!   churning 32 MiB blocks held to an 8 MiB slack purged a block's worth of pages
//!   and faulted them in again every few requests (the `large` row: 20% more faults).
//! - **A quiet pool keeps nothing.** When a pool has seen no allocation or free for half
//!   a second (or a quarter of the window if longer; huge blocks: two purge delays,
//!   doubled while the program comes back to them soon after each pause), its
//!   recent peak no longer predicts anything: its kept memory is purged (by the
//!   background thread), so RSS falls after a burst, and a program that stopped using
//!   huge blocks does not keep their pages. A shorter pause does not age the window: it
//!   ends at the pool's last activity.
//! - `malloc_trim(0)` purges everything at once (the pools' `force`).
//!
//! Each pool is held to its own demand: spans and huge blocks serve different sizes,
//! and a pool made to purge for the other's cached memory would refault what it needs.
//! The state is a handful of atomics per pool, updated under that pool's lock.

use crate::options;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Slices of the demand window, each remembering its own peak.
const EPOCHS: usize = 8;
/// Peaks are kept in 64 KiB units, below the low bits of their epoch's number (a tag:
/// 2^24 epochs of 31 ms wrap after 6 days of uptime, so tags are compared modulo).
const UNIT_SHIFT: u32 = 16;
const PEAK_BITS: u32 = 40;
const PEAK_MASK: u64 = (1 << PEAK_BITS) - 1;
const TAG_MASK: u64 = u64::MAX >> PEAK_BITS;

/// The two pools that hold free pages.
#[derive(Clone, Copy)]
pub enum Pool {
    /// The central span pool.
    Spans = 0,
    /// The huge-block page heap.
    Huge = 1,
}

/// One pool's demand history.
struct Demand {
    /// Per epoch slot: `epoch << PEAK_BITS | peak in units`.
    peaks: [AtomicU64; EPOCHS],
    /// Per epoch slot, as `peaks`: the largest block (or span) allocated.
    largest: [AtomicU64; EPOCHS],
    /// Bytes in use in the pool, as last noted.
    in_use: AtomicU64,
    /// When the pool's current active stretch began (peaks from before a quiet gap are
    /// stale).
    active_since_ns: AtomicU64,
    /// The pool's last allocation or free (ns).
    last_active_ns: AtomicU64,
}

static DEMAND: [Demand; 2] = [const {
    Demand {
        peaks: [const { AtomicU64::new(0) }; EPOCHS],
        largest: [const { AtomicU64::new(0) }; EPOCHS],
        in_use: AtomicU64::new(0),
        active_since_ns: AtomicU64::new(0),
        last_active_ns: AtomicU64::new(0),
    }
}; 2];
/// Dirty bytes of each pool, as each last reported them.
static DIRTY: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

fn window_ns() -> u64 {
    options::DEMAND_WINDOW_MS.get().saturating_mul(1_000_000)
}

fn epoch_ns() -> u64 {
    (window_ns() / EPOCHS as u64).max(1)
}

/// How long the span pool must go without a take or give to count as quiet, at least
/// (a quarter of the window if that is longer). A program that pauses between bursts
/// keeps its pages through the pause: 8 bursts of 400K blocks of 16-316 bytes, 300 ms
/// apart, purged everything in each pause and faulted it in again (137K faults, 0.42 s
/// of work against mimalloc's 25K and 0.25 s); with half a second 19K and 0.19 s. A
/// program idle for longer still sees its RSS fall within the second (`burst-idle`).
const SPANS_QUIET_NS: u64 = 500_000_000;

/// How long `pool` must go without an allocation or free to count as quiet: half a
/// second or a quarter of the window for spans ([`SPANS_QUIET_NS`]); for huge blocks
/// two purge delays (at most a quarter of the window), doubled for each time the pool
/// came back soon after it went quiet ([`HUGE_QUIET_DOUBLINGS`]), up to the spans'
/// time. A program that uses huge blocks now and then (sqlite's sort buffers) would
/// otherwise keep each freed one resident while its other memory grows: sqlite's peak
/// RSS 9.9 -> 11.7 MiB. One that churns them (the `large` row) frees them every few
/// ms. One that uses them in cycles of some tens of ms (vectors grown by `realloc`
/// past 1 MiB, freed, grown again) had them purged and faulted in again every cycle.
fn quiet_ns(pool: Pool) -> u64 {
    let quarter = window_ns() / 4;
    let spans = quarter.max(SPANS_QUIET_NS);
    match pool {
        Pool::Spans => spans,
        Pool::Huge => {
            ((2 * delay_ns()).min(quarter) << HUGE_QUIET_DOUBLINGS.load(Relaxed)).min(spans)
        }
    }
}

/// Times the huge pool's quiet time was doubled: each time it came back within [`SOON`]
/// quiet times of going quiet after a peak above the cache cap (so more than the cap
/// was purged for a pause the program's next cycle ended), as many times as cover that
/// pause; one less each time it stayed away longer. A smaller pool is purged as before:
/// refaulting a few MiB a cycle costs little, and keeping them is what sqlite's RSS
/// would pay.
static HUGE_QUIET_DOUBLINGS: AtomicU32 = AtomicU32::new(0);
/// See [`HUGE_QUIET_DOUBLINGS`].
const SOON: u64 = 16;
/// Most doublings (the spans' quiet time caps them anyway).
const MAX_DOUBLINGS: u32 = 6;

/// The purge delay, in ns.
pub fn delay_ns() -> u64 {
    options::PURGE_DELAY_MS.get().saturating_mul(1_000_000)
}

/// Records activity: call after `pool`'s bytes in use changed to `in_use` (a span taken
/// or given, a huge block allocated, freed or resized); `allocated` is the size of the
/// block just allocated or grown to (0 for a free).
pub fn note_demand(pool: Pool, in_use: usize, allocated: usize, now: u64) {
    let d = &DEMAND[pool as usize];
    d.in_use.store(in_use as u64, Relaxed);
    if window_ns() == 0 {
        return;
    }
    let epoch = now / epoch_ns();
    let last = d.last_active_ns.swap(now, Relaxed);
    let gap = now.wrapping_sub(last);
    let quiet = quiet_ns(pool);
    if gap >= quiet {
        if let Pool::Huge = pool {
            let n = HUGE_QUIET_DOUBLINGS.load(Relaxed);
            let n = if gap >= SOON * quiet {
                n.saturating_sub(1)
            } else if window_max(d, &d.peaks, last / epoch_ns()) > cache_cap() {
                // Doubled at least once, and enough to cover this pause and a quarter
                // more, so a program that pauses as long again keeps its pages.
                let mut m = n + 1;
                while m < MAX_DOUBLINGS && quiet << (m - n) < gap + gap / 4 {
                    m += 1;
                }
                m.min(MAX_DOUBLINGS)
            } else {
                n
            };
            HUGE_QUIET_DOUBLINGS.store(n, Relaxed);
        }
        d.active_since_ns.store(now, Relaxed);
    } else if gap >= epoch_ns() {
        // Back from a pause short of quiet: the demand before it is carried into this
        // epoch, so the window does not age through the pause (its peak would drop out
        // as soon as the program went on, and the pages kept for it be purged then).
        let before = last / epoch_ns();
        raise(&d.peaks, epoch, window_max(d, &d.peaks, before));
        raise(&d.largest, epoch, window_max(d, &d.largest, before));
    }
    raise(&d.peaks, epoch, in_use);
    if allocated > 0 {
        raise(&d.largest, epoch, allocated);
    }
}

/// Raises this epoch's slot of `slots` to `bytes` (a slot left from an older epoch is
/// replaced).
fn raise(slots: &[AtomicU64; EPOCHS], epoch: u64, bytes: usize) {
    let units = (bytes as u64 >> UNIT_SHIFT).min(PEAK_MASK);
    let tag = epoch & TAG_MASK;
    let slot = &slots[epoch as usize % EPOCHS];
    let _ = slot.fetch_update(Relaxed, Relaxed, |old| {
        let same_epoch = old >> PEAK_BITS == tag;
        if same_epoch && old & PEAK_MASK >= units {
            None
        } else {
            Some(tag << PEAK_BITS | units)
        }
    });
}

/// The largest value `pool` recorded in `slots` (`peaks` or `largest` of its demand)
/// over the window, not counting what came before a quiet gap; 0 while the pool is
/// quiet (its history predicts nothing then) or the window is off.
fn recent_max(pool: Pool, slots: fn(&Demand) -> &[AtomicU64; EPOCHS], now: u64) -> usize {
    let d = &DEMAND[pool as usize];
    let last = d.last_active_ns.load(Relaxed);
    if window_ns() == 0 || now.wrapping_sub(last) >= quiet_ns(pool) {
        return 0;
    }
    // The window ends at the pool's last activity: a pause short of quiet does not age
    // the demand before it, which is still the best guess of what comes after.
    window_max(d, slots(d), now.min(last) / epoch_ns())
}

/// The largest value in `slots` over the window that ends at `epoch`, not counting
/// what came before a quiet gap.
fn window_max(d: &Demand, slots: &[AtomicU64; EPOCHS], epoch: u64) -> usize {
    let since = d.active_since_ns.load(Relaxed) / epoch_ns();
    slots
        .iter()
        .map(|s| s.load(Relaxed))
        .filter(|v| in_window(v >> PEAK_BITS, epoch, since))
        .map(|v| (v & PEAK_MASK) << UNIT_SHIFT)
        .max()
        .unwrap_or(0) as usize
}

/// Whether a peak tagged `tag` belongs to one of the last [`EPOCHS`] epochs up to
/// `epoch`, and not to one before `since` (a quiet gap).
fn in_window(tag: u64, epoch: u64, since: u64) -> bool {
    let age = epoch.wrapping_sub(tag) & TAG_MASK;
    age < EPOCHS as u64 && epoch - age.min(epoch) >= since
}

/// Free resident bytes of `pool` that recent demand says will be used again: the
/// window's peak in use minus what is in use now, plus a sixteenth of that peak; 0 once
/// the program is quiet.
pub fn keep_bytes(pool: Pool, now: u64) -> usize {
    let peak = recent_max(pool, |d| &d.peaks, now);
    keep_for(peak, DEMAND[pool as usize].in_use.load(Relaxed) as usize)
}

/// [`keep_bytes`] for a window's peak and the bytes in use now.
fn keep_for(peak: usize, in_use: usize) -> usize {
    peak.saturating_sub(in_use) + peak / 16
}

/// Most bytes of free, resident memory a pool may hold beyond what demand keeps before
/// it purges at once: the configured cap, a quarter of what is in use (a program with a
/// large working set that churns big blocks does not purge and refault on every
/// cycle), or `largest`, the pool's largest block of the window (room for the gap a
/// big block leaves), whichever is most.
fn cap_with(largest: usize) -> usize {
    let configured = cache_cap();
    let in_use: u64 = DEMAND.iter().map(|d| d.in_use.load(Relaxed)).sum();
    configured.max(in_use as usize / 4).max(largest)
}

/// The configured cache cap (`OXALLOC_CACHE_MAX_MIB`) in bytes.
fn cache_cap() -> usize {
    (options::CACHE_MAX_MIB.get() as usize).saturating_mul(1 << 20)
}

/// What a pool should purge now, in bytes of its own dirty memory to keep.
pub struct Targets {
    /// Purge at once, whatever the age, down to this (usize::MAX: nothing to do).
    pub at_once: usize,
    /// Purge what has waited the purge delay down to this.
    pub aged: usize,
}

/// Per pool, the window's maxima (`recent_max` of the peaks and of the largest blocks)
/// as [`targets`] last computed them, and the clock reading they are for.
struct Maxima {
    now: AtomicU64,
    peak: AtomicU64,
    largest: AtomicU64,
}

static MAXIMA: [Maxima; 2] = [const {
    Maxima {
        now: AtomicU64::new(u64::MAX),
        peak: AtomicU64::new(0),
        largest: AtomicU64::new(0),
    }
}; 2];

/// Reports `pool`'s dirty bytes and says how far it should purge. Called under the
/// pool's lock, on every take and give of the central pool.
///
/// The window's maxima are computed once per clock reading (the clock moves in 1-4 ms
/// ticks; a program churning 512 KiB blocks spent 29% of its time in them, recomputed
/// on every call). Within a tick, the peak in use is raised to what is in use now, as
/// the current epoch's slot is; a higher peak reached and left within the same tick
/// (or a larger block) is seen at the next tick.
pub fn targets(pool: Pool, dirty: usize, now: u64) -> Targets {
    DIRTY[pool as usize].store(dirty as u64, Relaxed);
    let m = &MAXIMA[pool as usize];
    if m.now.load(Relaxed) != now {
        m.peak
            .store(recent_max(pool, |d| &d.peaks, now) as u64, Relaxed);
        m.largest
            .store(recent_max(pool, |d| &d.largest, now) as u64, Relaxed);
        m.now.store(now, Relaxed);
    }
    let in_use = DEMAND[pool as usize].in_use.load(Relaxed) as usize;
    let peak = match m.peak.load(Relaxed) as usize {
        0 => 0, // quiet (or the window is off): nothing is kept for demand
        p => p.max(in_use),
    };
    let keep = keep_for(peak, in_use);
    let cap = cap_with(m.largest.load(Relaxed) as usize);
    let at_once = if dirty > keep.saturating_add(cap) {
        keep + cap / 2
    } else {
        usize::MAX
    };
    Targets {
        at_once,
        aged: keep,
    }
}

/// Reports a pool's dirty bytes after it purged or changed.
pub fn set_dirty(pool: Pool, dirty: usize) {
    DIRTY[pool as usize].store(dirty as u64, Relaxed);
}

/// Whether every free page is kept beyond the purge delay now (the background thread
/// can then sleep longer: nothing becomes due before an epoch passes or the program
/// goes quiet).
pub fn keeping(now: u64) -> bool {
    let mut any = false;
    for pool in [Pool::Spans, Pool::Huge] {
        let dirty = DIRTY[pool as usize].load(Relaxed) as usize;
        if dirty > keep_bytes(pool, now) {
            return false;
        }
        any |= dirty > 0;
    }
    any
}

/// How long the background thread may sleep while [`keeping`] holds: an epoch, or less
/// if a pool can go quiet sooner.
pub fn recheck_ms() -> u64 {
    let soonest = epoch_ns()
        .min(quiet_ns(Pool::Spans))
        .min(quiet_ns(Pool::Huge));
    (soonest / 1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_the_last_epochs_across_a_tag_wrap() {
        let wrap = TAG_MASK + 1;
        for epoch in [100, wrap + 3, 5 * wrap + 2] {
            let tag = |e: u64| e & TAG_MASK;
            assert!(in_window(tag(epoch), epoch, 0));
            assert!(
                in_window(tag(epoch - 7), epoch, 0),
                "7 epochs back, at {epoch}"
            );
            assert!(
                !in_window(tag(epoch - 8), epoch, 0),
                "8 epochs back, at {epoch}"
            );
            assert!(
                !in_window(tag(epoch + 1), epoch, 0),
                "a future tag, at {epoch}"
            );
            assert!(
                !in_window(tag(epoch - 2), epoch, epoch - 1),
                "before a quiet gap"
            );
            assert!(in_window(tag(epoch - 1), epoch, epoch - 1));
        }
    }
}
