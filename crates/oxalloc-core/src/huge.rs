//! Huge blocks (1 MiB and up): a page heap of big regions, cut into 64 KiB units.
//!
//! A *region* is at least [`REGION_MIN`] of address space, 4 MiB aligned, mapped at
//! once. Its first units hold the header: one [`Run`] record per unit, out of line, so
//! a program's overflow never reaches them. The rest is tiled by *runs*: a block, or
//! free space. Adjacent free runs form an *extent*; `alloc` takes a best fit among the
//! extents (resident pages first), splitting it, and `free` merges a run with its free
//! neighbours, so a program that frees a 30 MiB buffer and then asks for 3 MiB and
//! 20 MiB gets both from the same, already resident pages. Keeping one mapping per
//! block instead (and giving the surplus back) made such programs fault every page in
//! again on every round.
//!
//! Extents are indexed by length in bins ([`EXTENT_BINS`], four per power of two), so
//! the search looks at a few candidates of about the right length, whatever the number
//! of free extents: a walk over every free run cost 90% of a program that kept 4000
//! blocks of 1-4 MiB and replaced them at random (20x mimalloc's time).
//!
//! Free runs are *dirty* (pages may be resident) until purged with `MADV_DONTNEED`,
//! oldest first, when the page-return policy (`page_return`) says so. A region with
//! no block left is unmapped when it is purged.
//!
//! `free(p)` finds the region from the segment map (each granule's byte says how far
//! back its region starts) and the record from `p`'s unit; only a run's first record
//! is marked, so an interior or stale pointer is recognised as not a block.
//!
//! Everything here runs under the one [`HUGE`] lock, never on a fast path.
#![allow(unsafe_code)]

use crate::lock::Mutex;
use crate::page_return::{self, Pool};
use crate::segment::{SEGMENT_MAP, SEGMENT_SIZE};
use crate::stats::{self, GLOBAL};
use core::ptr;

/// log2 of the unit in which huge blocks are cut.
pub const UNIT_SHIFT: usize = 16;
/// The unit in which huge blocks are cut: 64 KiB (at most 6% of a 1 MiB block).
pub const UNIT: usize = 1 << UNIT_SHIFT;
/// The smallest region mapped: room for several huge blocks.
pub const REGION_MIN: usize = 256 << 20;
/// The largest alignment a huge block can have.
pub const MAX_HUGE_ALIGN: usize = 1 << 30;

/// `Run::state` of a record that starts no run.
const INTERIOR: u8 = 0;
/// `Run::state` of the first record of a free run.
const FREE: u8 = 1;
/// `Run::state` of the first record of a block.
const USED: u8 = 2;

/// Bins of the extent index: lengths 1..=8 units one each, then four per power of two.
const EXTENT_BINS: usize = 128;
/// Candidates `best_fit` looks at in one bin: enough to find a resident one of about
/// the right length, few enough that a bin of thousands costs no more than a few.
const CANDIDATES_PER_BIN: usize = 16;
/// Fitting candidates `best_fit` weighs in all before it settles for the best seen.
const CANDIDATES_IN_ALL: usize = 32;

/// The extent-index bin of an extent of `len` units (`len >= 1`): lengths grow with
/// the bin, so every extent of a higher bin is longer than any of a lower one.
fn extent_bin(len: usize) -> usize {
    if len <= 8 {
        return len - 1;
    }
    let log = (usize::BITS - 1 - len.leading_zeros()) as usize;
    let quarter = (len >> (log - 2)) & 3;
    (8 + (log - 3) * 4 + quarter).min(EXTENT_BINS - 1)
}

/// The record for one unit; meaningful in the first unit of a run (and `len` in the
/// last one, so a run can find its left neighbour's start).
#[repr(C)]
struct Run {
    /// Units in the run.
    len: usize,
    /// [`INTERIOR`], [`FREE`] or [`USED`].
    state: u8,
    /// Free run whose pages may be resident.
    dirty: bool,
    /// The memory is known to read as zero (fresh or purged, unwritten since).
    zero: bool,
    /// When the run became free (ns).
    freed_at_ns: u64,
    /// Free list links.
    next: *mut Run,
    /// See `next`.
    prev: *mut Run,
    /// In the first run of an extent: listed in the extent index.
    indexed: bool,
    /// In an indexed extent's first run: the extent's units.
    extent_len: usize,
    /// In an indexed extent's first run: the extent index's links.
    extent_next: *mut Run,
    /// See `extent_next`.
    extent_prev: *mut Run,
}

/// What a run's pages hold: copied when a free run is split.
#[derive(Clone, Copy)]
struct Pages {
    dirty: bool,
    zero: bool,
    freed_at_ns: u64,
}

impl Pages {
    /// A block's pages: what matters is only whether they read as zero.
    const fn block(zero: bool) -> Pages {
        Pages {
            dirty: false,
            zero,
            freed_at_ns: 0,
        }
    }

    /// Pages of a run just freed: resident, written.
    fn freed() -> Pages {
        Pages {
            dirty: true,
            zero: false,
            freed_at_ns: oxalloc_sys::now_ns(),
        }
    }
}

/// A place for a block found by `HugeHeap::best_fit`.
struct Fit {
    region: *mut Region,
    /// The first unit of the free extent.
    head: usize,
    /// The block's first unit.
    first: usize,
    /// Purged units under the block, then the extent's length: lower is better.
    key: (usize, usize),
}

/// The header at the start of every region; the unit records follow it.
#[repr(C, align(64))]
struct Region {
    next: *mut Region,
    prev: *mut Region,
    /// Units in the region, header units included.
    units: usize,
    /// The first unit that holds data.
    first: usize,
    /// Units in blocks now.
    used_units: usize,
}

impl Region {
    /// Header bytes for a region of `units` units, in whole units.
    fn header_units(units: usize) -> usize {
        (size_of::<Region>() + units * size_of::<Run>()).div_ceil(UNIT)
    }

    /// Record `i` of a region.
    ///
    /// # Safety
    /// `r` is a live region and `i < (*r).units`.
    unsafe fn run(r: *mut Region, i: usize) -> *mut Run {
        // SAFETY: caller's contract; the records lie in the mapped header.
        unsafe { r.add(1).cast::<Run>().add(i) }
    }

    /// The unit index of a record.
    fn index(r: *mut Region, run: *mut Run) -> usize {
        (run as usize - r as usize - size_of::<Region>()) / size_of::<Run>()
    }

    fn unit_addr(r: *mut Region, i: usize) -> usize {
        r as usize + (i << UNIT_SHIFT)
    }
}

/// The region that holds a record or an address in a huge granule.
fn region_of(addr: usize) -> *mut Region {
    SEGMENT_MAP.huge_region_of(addr) as *mut Region
}

/// All regions and the free runs in them.
pub struct HugeHeap {
    regions: *mut Region,
    /// Every dirty free run, oldest first (`freed_at_ns` grows along the list), so
    /// purging the oldest takes the first: a scan for it per purged run made
    /// `malloc_trim` with 8000 dirty runs between live blocks take 1.2-2 s.
    /// Purged runs are on no list.
    dirty: *mut Run,
    /// The newest dirty free run.
    dirty_last: *mut Run,
    /// The first run of every free extent, by the extent's length (see `extent_bin`).
    extents: [*mut Run; EXTENT_BINS],
    /// Bit `i` set when `extents[i]` is not empty.
    nonempty: u128,
    dirty_bytes: usize,
    /// Bytes in blocks now.
    in_use: usize,
}

// SAFETY: the raw pointers point into regions only the lock holder touches; the value
// lives behind HUGE's mutex.
unsafe impl Send for HugeHeap {}

/// The one huge page heap.
pub static HUGE: Mutex<HugeHeap> = Mutex::new(HugeHeap {
    regions: ptr::null_mut(),
    dirty: ptr::null_mut(),
    dirty_last: ptr::null_mut(),
    extents: [ptr::null_mut(); EXTENT_BINS],
    nonempty: 0,
    dirty_bytes: 0,
    in_use: 0,
});

impl HugeHeap {
    /// Writes a run's first and last records and, if free and dirty, lists it as the
    /// newest dirty run.
    ///
    /// # Safety
    /// `r` is a live region, `[h, h + len)` lies in its data units, and the lock is held.
    unsafe fn set_run(&mut self, r: *mut Region, h: usize, len: usize, state: u8, pages: Pages) {
        // SAFETY: caller's contract.
        unsafe { self.set_run_after(r, h, len, state, pages, self.dirty_last) }
    }

    /// As [`set_run`](Self::set_run), but a dirty free run goes right after `after` in
    /// the dirty list (first if null): where the run it was cut from stood, so the list
    /// stays in `freed_at_ns` order.
    ///
    /// # Safety
    /// As for `set_run`; `after` is null or a listed dirty run no newer than `pages`.
    unsafe fn set_run_after(
        &mut self,
        r: *mut Region,
        h: usize,
        len: usize,
        state: u8,
        pages: Pages,
        after: *mut Run,
    ) {
        // SAFETY: caller's contract.
        unsafe {
            let head = Region::run(r, h);
            // Extents are taken out of the index before their runs change.
            debug_assert!(!(*head).indexed);
            (*head).len = len;
            (*head).state = state;
            (*head).dirty = pages.dirty;
            (*head).zero = pages.zero;
            (*head).freed_at_ns = pages.freed_at_ns;
            if len > 1 {
                let tail = Region::run(r, h + len - 1);
                (*tail).len = len;
                (*tail).state = INTERIOR;
            }
            if state == FREE && pages.dirty {
                self.link_dirty(head, after);
            }
        }
    }

    /// # Safety
    /// `run` is the first record of a dirty free run not in the list, `after` null or
    /// listed; the lock is held.
    unsafe fn link_dirty(&mut self, run: *mut Run, after: *mut Run) {
        // SAFETY: caller's contract.
        unsafe {
            let next = if after.is_null() {
                self.dirty
            } else {
                (*after).next
            };
            (*run).prev = after;
            (*run).next = next;
            if after.is_null() {
                self.dirty = run;
            } else {
                (*after).next = run;
            }
            if next.is_null() {
                self.dirty_last = run;
            } else {
                (*next).prev = run;
            }
            self.dirty_bytes += (*run).len * UNIT;
        }
    }

    /// Takes a free run off the dirty list if it is dirty (a purged run is on none).
    ///
    /// # Safety
    /// `run` is the first record of a free run; the lock is held.
    unsafe fn unlink(&mut self, run: *mut Run) {
        // SAFETY: caller's contract.
        unsafe {
            if !(*run).dirty {
                return;
            }
            if (*run).prev.is_null() {
                self.dirty = (*run).next;
            } else {
                (*(*run).prev).next = (*run).next;
            }
            if (*run).next.is_null() {
                self.dirty_last = (*run).prev;
            } else {
                (*(*run).next).prev = (*run).prev;
            }
            self.dirty_bytes -= (*run).len * UNIT;
        }
    }

    /// The first unit of the free extent that holds the free run starting at `h`.
    ///
    /// # Safety
    /// `r` is a live region whose runs are well formed, record `h` starts a free run,
    /// and the lock is held.
    unsafe fn extent_start(r: *mut Region, h: usize) -> usize {
        // SAFETY: caller's contract; a run's last record holds its length, so the walk
        // reads only the records that start runs.
        unsafe {
            let mut h = h;
            while h > (*r).first {
                let left = h - (*Region::run(r, h - 1)).len;
                if (*Region::run(r, left)).state != FREE {
                    break;
                }
                h = left;
            }
            h
        }
    }

    /// Lists the free extent that starts at `h` in the extent index.
    ///
    /// # Safety
    /// Record `h` of `r` starts a free run and its extent (no free run just before it);
    /// the extent is not listed; the lock is held.
    unsafe fn index_extent(&mut self, r: *mut Region, h: usize) {
        // SAFETY: caller's contract; the walk stays on run starts inside `r`.
        unsafe {
            let mut e = h;
            while e < (*r).units && (*Region::run(r, e)).state == FREE {
                e += (*Region::run(r, e)).len;
            }
            let head = Region::run(r, h);
            debug_assert!(!(*head).indexed);
            let bin = extent_bin(e - h);
            (*head).indexed = true;
            (*head).extent_len = e - h;
            (*head).extent_prev = ptr::null_mut();
            (*head).extent_next = self.extents[bin];
            if !self.extents[bin].is_null() {
                (*self.extents[bin]).extent_prev = head;
            }
            self.extents[bin] = head;
            self.nonempty |= 1 << bin;
        }
    }

    /// Takes the extent that holds the free run starting at `h` out of the index.
    ///
    /// # Safety
    /// Record `h` of `r` starts a free run, and its extent is listed; the lock is held.
    unsafe fn unindex_extent(&mut self, r: *mut Region, h: usize) {
        // SAFETY: caller's contract.
        unsafe {
            let head = Region::run(r, Self::extent_start(r, h));
            debug_assert!((*head).indexed);
            let bin = extent_bin((*head).extent_len);
            if (*head).extent_prev.is_null() {
                self.extents[bin] = (*head).extent_next;
                if self.extents[bin].is_null() {
                    self.nonempty &= !(1 << bin);
                }
            } else {
                (*(*head).extent_prev).extent_next = (*head).extent_next;
            }
            if !(*head).extent_next.is_null() {
                (*(*head).extent_next).extent_prev = (*head).extent_prev;
            }
            (*head).indexed = false;
        }
    }

    /// Where `units` units at `align` would go in the indexed free extent whose first
    /// run is `head`, or `None` if the extent is too short.
    ///
    /// # Safety
    /// `head` is listed in the extent index; the lock is held.
    unsafe fn fit(head: *mut Run, units: usize, align: usize) -> Option<Fit> {
        // SAFETY: caller's contract: the index holds first records of free extents in
        // live regions, with their lengths, and `[h, h + len)` is tiled by free runs.
        unsafe {
            let r = region_of(head as usize);
            let h = Region::index(r, head);
            let len = (*head).extent_len;
            let start = Region::unit_addr(r, h);
            let skip = (start.next_multiple_of(align) - start) >> UNIT_SHIFT;
            if skip + units > len {
                return None;
            }
            let (a, b) = (h + skip, h + skip + units);
            let mut e = h;
            let mut purged = 0;
            while e < b {
                let x = Region::run(r, e);
                if !(*x).dirty {
                    purged += (e + (*x).len).min(b).saturating_sub(e.max(a));
                }
                e += (*x).len;
            }
            Some(Fit {
                region: r,
                head: h,
                first: a,
                key: (purged, len),
            })
        }
    }

    /// A good place for `units` units at `align`: among free extents of about the
    /// right length, the one where the block would fault in the fewest purged units,
    /// then the shortest. Bins are searched from the shortest lengths up; the search
    /// ends at the first bin that held a resident fit, or after a few dozen candidates
    /// (so it costs the same with 10 free extents or 10,000).
    fn best_fit(&self, units: usize, align: usize) -> Option<Fit> {
        let mut best: Option<Fit> = None;
        let mut weighed = 0;
        let mut bins = self.nonempty & (u128::MAX << extent_bin(units));
        while bins != 0 && weighed < CANDIDATES_IN_ALL {
            let bin = bins.trailing_zeros() as usize;
            bins &= bins - 1;
            let mut run = self.extents[bin];
            let mut looked = 0;
            while !run.is_null() && looked < CANDIDATES_PER_BIN {
                looked += 1;
                // SAFETY: the index holds first records of free extents; we hold the lock.
                let (fit, next) = unsafe { (Self::fit(run, units, align), (*run).extent_next) };
                run = next;
                if let Some(f) = fit {
                    weighed += 1;
                    if best.as_ref().is_none_or(|b| f.key < b.key) {
                        best = Some(f);
                    }
                }
            }
            if best.as_ref().is_some_and(|b| b.key.0 == 0) {
                break; // higher bins hold only longer extents
            }
        }
        if best.is_none() {
            // The candidates looked at did not fit (the first bin's shorter extents, or
            // alignment padding): before a new region is mapped, every extent from the
            // bin of `units + pad` up, where an extent that long fits anywhere it lies.
            let sure = units + (align >> UNIT_SHIFT).max(1) - 1;
            let mut bins = self.nonempty & (u128::MAX << extent_bin(sure));
            while bins != 0 {
                let mut run = self.extents[bins.trailing_zeros() as usize];
                bins &= bins - 1;
                while !run.is_null() {
                    // SAFETY: as above.
                    let (fit, next) = unsafe { (Self::fit(run, units, align), (*run).extent_next) };
                    if fit.is_some() {
                        return fit;
                    }
                    run = next;
                }
            }
        }
        best
    }

    /// Maps a region with room for `units` units at `align`, and lists its free run.
    fn map_region(&mut self, units: usize, align: usize) -> Option<()> {
        let pad = align.saturating_sub(UNIT);
        let data = units.checked_mul(UNIT)?.checked_add(pad)?;
        // The header is tiny next to the data: a first guess plus one unit is enough.
        let guess = Region::header_units(data >> UNIT_SHIFT) + 1;
        let need = data
            .checked_add(guess * UNIT)?
            .checked_next_multiple_of(SEGMENT_SIZE)?;
        let mut len = need.max(REGION_MIN);
        let base = match oxalloc_sys::map_aligned(len, SEGMENT_SIZE) {
            Some(b) => b,
            None if len > need => {
                // Under an address-space limit: no spare room, just the block.
                len = need;
                oxalloc_sys::map_aligned(len, SEGMENT_SIZE)?
            }
            None => return None,
        };
        let r = base.as_ptr().cast::<Region>();
        if crate::options::HUGE_PAGES.on() {
            // SAFETY: the region was mapped just above.
            unsafe { oxalloc_sys::prefer_huge_pages(base.as_ptr(), len) };
        }
        let total = len >> UNIT_SHIFT;
        let first = Region::header_units(total);
        // SAFETY: the memory is fresh, zeroed, 4 MiB aligned and ours alone; the header
        // fits in its first `first` units.
        unsafe {
            r.write(Region {
                next: self.regions,
                prev: ptr::null_mut(),
                units: total,
                first,
                used_units: 0,
            });
            if !self.regions.is_null() {
                (*self.regions).prev = r;
            }
            self.regions = r;
        }
        SEGMENT_MAP.set_huge_region(r as usize, len);
        stats::add(&GLOBAL.mapped_bytes, len);
        stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
        // SAFETY: the data units of the new region form one free run.
        unsafe {
            self.set_run(r, first, total - first, FREE, Pages::block(true));
            self.index_extent(r, first);
        }
        Some(())
    }

    /// Makes units `[a, a + units)` of `r`, all free, a block; the parts of the runs
    /// they cut stay free as they were. Returns the block's first record.
    ///
    /// # Safety
    /// `from` starts a free run at or before `a`, and every unit from `from` to
    /// `a + units` is in a free run of `r`; the lock is held.
    unsafe fn carve(&mut self, r: *mut Region, from: usize, a: usize, units: usize) -> *mut Run {
        // SAFETY: caller's contract; every record written lies inside the runs cut.
        unsafe {
            let b = a + units;
            let head = Self::extent_start(r, from);
            self.unindex_extent(r, head);
            // Skip the free runs that end before `a` (alignment padding).
            let mut h = from;
            while h + (*Region::run(r, h)).len <= a {
                h += (*Region::run(r, h)).len;
            }
            let mut zero = true;
            while h < b {
                let x = Region::run(r, h);
                let len = (*x).len;
                let pages = Pages {
                    dirty: (*x).dirty,
                    zero: (*x).zero,
                    freed_at_ns: (*x).freed_at_ns,
                };
                zero &= pages.zero;
                let place = (*x).prev;
                self.unlink(x);
                (*x).state = INTERIOR;
                if h + len > b {
                    self.set_run_after(r, b, h + len - b, FREE, pages, place);
                }
                if h < a {
                    self.set_run_after(r, h, a - h, FREE, pages, place);
                }
                h += len;
            }
            self.set_run(r, a, units, USED, Pages::block(zero));
            // What is left of the extent on either side.
            if head < a {
                self.index_extent(r, head);
            }
            if b < (*r).units && (*Region::run(r, b)).state == FREE {
                self.index_extent(r, b);
            }
            (*r).used_units += units;
            self.in_use += units * UNIT;
            Region::run(r, a)
        }
    }

    /// Frees the block at record `h` of `r`, merging it with dirty free neighbours.
    /// A purged neighbour stays a run of its own: merged, it would be purged again with
    /// the fresh one, or keep a resident block from being purged alone.
    ///
    /// # Safety
    /// Record `h` starts a block; the lock is held.
    unsafe fn release(&mut self, r: *mut Region, h: usize) {
        // SAFETY: caller's contract.
        unsafe {
            let len = (*Region::run(r, h)).len;
            // The free extents on either side join this one: out of the index first.
            let end = h + len;
            if end < (*r).units && (*Region::run(r, end)).state == FREE {
                self.unindex_extent(r, end);
            }
            let mut start = h;
            if h > (*r).first {
                let left = h - (*Region::run(r, h - 1)).len;
                if (*Region::run(r, left)).state == FREE {
                    start = Self::extent_start(r, left);
                    self.unindex_extent(r, left);
                }
            }
            (*r).used_units -= len;
            self.in_use -= len * UNIT;
            (*Region::run(r, h)).state = FREE;
            (*Region::run(r, h)).dirty = true;
            self.merge(r, h, Pages::freed());
            self.index_extent(r, start);
        }
    }

    /// Merges the free run at `h` (not listed) with its free neighbours of the same
    /// residency, and lists the result with `pages`.
    ///
    /// # Safety
    /// Record `h` starts a free run of `r` that is not in the list; the lock is held.
    unsafe fn merge(&mut self, r: *mut Region, h: usize, pages: Pages) {
        // SAFETY: caller's contract; neighbours are read through valid records only.
        unsafe {
            let mut h = h;
            let mut len = (*Region::run(r, h)).len;
            let next = h + len;
            if next < (*r).units {
                let n = Region::run(r, next);
                if (*n).state == FREE && (*n).dirty == pages.dirty {
                    self.unlink(n);
                    (*n).state = INTERIOR;
                    len += (*n).len;
                }
            }
            if h > (*r).first {
                let prev_len = (*Region::run(r, h - 1)).len;
                let p = Region::run(r, h - prev_len);
                if (*p).state == FREE && (*p).dirty == pages.dirty {
                    self.unlink(p);
                    (*Region::run(r, h)).state = INTERIOR;
                    h -= prev_len;
                    len += prev_len;
                }
            }
            self.set_run(r, h, len, FREE, pages);
        }
    }

    /// Discards at least `want` bytes of a dirty free run's pages (all of them if it
    /// has fewer), from its end, and merges what was discarded with purged neighbours.
    /// Returns the bytes discarded: 0 if the kernel refused (the run stays dirty).
    ///
    /// # Safety
    /// `run` is a listed dirty free run; the lock is held.
    unsafe fn purge_run(&mut self, run: *mut Run, want: usize) -> usize {
        // SAFETY: caller's contract; the run holds no block, and every record written
        // lies inside it.
        unsafe {
            let r = region_of(run as usize);
            let h = Region::index(r, run);
            let len = (*run).len;
            let cut = want.div_ceil(UNIT).clamp(1, len);
            let start = h + len - cut;
            if !oxalloc_sys::discard(Region::unit_addr(r, start) as *mut u8, cut * UNIT) {
                // The pages keep what they held: not purged, not known zero.
                return 0;
            }
            stats::add(&GLOBAL.purged_bytes, cut * UNIT);
            // The extent keeps its bounds; its runs change (reindexed below).
            let head = Self::extent_start(r, h);
            self.unindex_extent(r, head);
            let place = (*run).prev;
            self.unlink(run);
            if cut < len {
                let rest = Pages {
                    dirty: true,
                    zero: false,
                    freed_at_ns: (*run).freed_at_ns,
                };
                self.set_run_after(r, h, len - cut, FREE, rest, place);
                // Unlisted until `merge` lists it with its purged neighbours.
                self.set_run(r, start, cut, USED, Pages::block(true));
            }
            self.merge(r, start, Pages::block(true));
            self.index_extent(r, head);
            cut * UNIT
        }
    }

    /// Purges the oldest dirty runs that have waited `min_age_ns` until at most
    /// `target` bytes are dirty. Returns the bytes purged.
    fn purge_down_to(&mut self, target: usize, min_age_ns: u64, now: u64) -> usize {
        let mut released = 0;
        while self.dirty_bytes > target {
            let oldest = self.dirty;
            // SAFETY: the dirty list holds first records of dirty free runs.
            if oldest.is_null() || now.wrapping_sub(unsafe { (*oldest).freed_at_ns }) < min_age_ns {
                break;
            }
            // SAFETY: `oldest` is a listed dirty free run.
            let purged = unsafe { self.purge_run(oldest, self.dirty_bytes - target) };
            if purged == 0 {
                break; // refused: the oldest run would be picked again forever
            }
            released += purged;
        }
        page_return::set_dirty(Pool::Huge, self.dirty_bytes);
        released
    }

    /// Purges dirty runs as the page-return policy says (all with `force`), then
    /// unmaps regions that hold no block and no resident page. Returns bytes released.
    fn purge(&mut self, force: bool) -> usize {
        let now = oxalloc_sys::now_ns();
        let released = if force {
            self.purge_down_to(0, 0, now)
        } else {
            let targets = page_return::targets(Pool::Huge, self.dirty_bytes, now);
            self.purge_down_to(targets.aged, page_return::delay_ns(), now)
        };
        let mut r = self.regions;
        while !r.is_null() {
            // SAFETY: the region list holds live regions; `next` is read before unmapping.
            unsafe {
                let next = (*r).next;
                let run = Region::run(r, (*r).first);
                if (*r).used_units == 0 && !(*run).dirty && (*run).len == (*r).units - (*r).first {
                    self.unmap_region(r);
                }
                r = next;
            }
        }
        released
    }

    /// # Safety
    /// `r` holds no block and its one free run is clean; the lock is held.
    unsafe fn unmap_region(&mut self, r: *mut Region) {
        // SAFETY: caller's contract.
        unsafe {
            self.unindex_extent(r, (*r).first);
            self.unlink(Region::run(r, (*r).first));
            if (*r).prev.is_null() {
                self.regions = (*r).next;
            } else {
                (*(*r).prev).next = (*r).next;
            }
            if !(*r).next.is_null() {
                (*(*r).next).prev = (*r).prev;
            }
            let len = (*r).units << UNIT_SHIFT;
            SEGMENT_MAP.clear_range(r as usize, len);
            oxalloc_sys::unmap(r.cast(), len);
            stats::sub(&GLOBAL.mapped_bytes, len);
            stats::add(&GLOBAL.unmapped_bytes, len);
        }
    }

    /// Bytes of free, possibly resident huge memory.
    pub fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    /// The block record for `p`, if `p` is the start of a live block.
    ///
    /// # Safety
    /// The segment map marks `p`'s granule huge; the lock is held (or `p` is a live
    /// block of the caller, whose first record only its owner changes).
    unsafe fn block(p: usize) -> Option<(*mut Region, usize, *mut Run)> {
        if p & (UNIT - 1) != 0 {
            return None;
        }
        let r = region_of(p);
        if r.is_null() {
            return None;
        }
        let i = (p - r as usize) >> UNIT_SHIFT;
        // SAFETY: caller's contract: the region header is mapped.
        unsafe {
            if i < (*r).first || i >= (*r).units {
                return None;
            }
            let run = Region::run(r, i);
            ((*run).state == USED).then_some((r, i, run))
        }
    }
}

/// Bytes of free huge memory that may still be resident.
pub fn cached_bytes() -> usize {
    HUGE.lock().dirty_bytes()
}

/// Purges free huge memory older than the purge delay (all with `force`) and unmaps
/// empty regions. Returns the bytes given back.
pub fn purge_cache(force: bool) -> usize {
    HUGE.lock().purge(force)
}

/// Allocates a huge block of `size` bytes aligned to `align` (a power of two).
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if align > MAX_HUGE_ALIGN {
        return ptr::null_mut();
    }
    let align = align.max(UNIT);
    let units = size.div_ceil(UNIT).max(1);
    let mut heap = HUGE.lock();
    let fit = match heap.best_fit(units, align) {
        Some(found) => {
            stats::add(&GLOBAL.huge_cache_hits, 1);
            found
        }
        None => {
            if heap.map_region(units, align).is_none() {
                // Free regions, and free segments of the central pool, may hold the
                // address space a limit leaves us. (Central is locked without ours
                // held: trim takes central's lock, then ours.)
                heap.purge(true);
                drop(heap);
                crate::central::CENTRAL.lock().purge(true);
                heap = HUGE.lock();
                if heap.map_region(units, align).is_none() {
                    drop(heap);
                    stats::verbose("oxalloc: the OS refused memory for a huge block\n");
                    return ptr::null_mut();
                }
            }
            match heap.best_fit(units, align) {
                Some(found) => found,
                None => return ptr::null_mut(),
            }
        }
    };
    let r = fit.region;
    // SAFETY: best_fit returned a free range of `units` units.
    let block = unsafe { heap.carve(r, fit.head, fit.first, units) };
    page_return::note_demand(Pool::Huge, heap.in_use, units * UNIT, oxalloc_sys::now_ns());
    drop(heap);
    stats::add(&GLOBAL.in_use_bytes, units * UNIT);
    stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
    stats::add(&GLOBAL.huge_allocs, 1);
    stats::add(&GLOBAL.large_huge_bytes, units * UNIT);
    stats::add(&GLOBAL.huge_count, 1);
    Region::unit_addr(r, Region::index(r, block)) as *mut u8
}

/// Frees a huge block. Returns false (and does nothing) if `p` is not the start of a
/// live huge block: an interior pointer, or one freed already.
///
/// # Safety
/// The segment map marks `p`'s granule huge; if `p` is a block it is not used after.
pub unsafe fn free(p: *mut u8) -> bool {
    let mut heap = HUGE.lock();
    // SAFETY: caller's contract; we hold the lock.
    let Some((r, i, run)) = (unsafe { HugeHeap::block(p as usize) }) else {
        return false;
    };
    // SAFETY: as above.
    let len = unsafe { (*run).len };
    // SAFETY: record `i` starts a block and we hold the lock.
    unsafe { heap.release(r, i) };
    stats::sub(&GLOBAL.in_use_bytes, len * UNIT);
    let now = oxalloc_sys::now_ns();
    page_return::note_demand(Pool::Huge, heap.in_use, 0, now);
    let targets = page_return::targets(Pool::Huge, heap.dirty_bytes, now);
    if heap.dirty_bytes > targets.at_once {
        heap.purge_down_to(targets.at_once, 0, now);
    }
    let dirty = heap.dirty_bytes > 0;
    drop(heap);
    stats::add(&GLOBAL.huge_frees, 1);
    stats::sub(&GLOBAL.huge_count, 1);
    if dirty {
        crate::purger::wanted();
        crate::purger::ensure_started();
    }
    true
}

/// What `p`, in a huge region but not a live block, is instead (for a misuse report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotABlock {
    /// The start of a free run: most likely a block freed before.
    FreedBlock,
    /// Inside a free run (a freed block merged with its neighbours, or a wild pointer).
    FreeMemory,
    /// Inside the live block at `block`.
    Interior {
        /// The block's start.
        block: usize,
    },
    /// The region's own header.
    Metadata,
}

/// Says what `p`, which the segment map marks huge and which is not a live block, is.
pub fn classify(p: usize) -> NotABlock {
    let _heap = HUGE.lock();
    let r = region_of(p);
    if r.is_null() {
        return NotABlock::Metadata;
    }
    let i = (p - r as usize) >> UNIT_SHIFT;
    // SAFETY: we hold the lock; the region header and its records are mapped, and the
    // walk back stays within `first..=i`.
    unsafe {
        if i < (*r).first || i >= (*r).units {
            return NotABlock::Metadata;
        }
        let mut h = i;
        while h > (*r).first && (*Region::run(r, h)).state == INTERIOR {
            h -= 1;
        }
        let head = Region::run(r, h);
        match (*head).state {
            USED if i < h + (*head).len => NotABlock::Interior {
                block: r as usize + (h << UNIT_SHIFT),
            },
            FREE if h == i && p & (UNIT - 1) == 0 => NotABlock::FreedBlock,
            _ => NotABlock::FreeMemory,
        }
    }
}

/// Usable bytes of a huge block (0 if `p` is not a block).
///
/// # Safety
/// The segment map marks `p`'s granule huge, and `p` is a live block of the caller.
pub unsafe fn usable(p: *mut u8) -> usize {
    // SAFETY: caller's contract: only this block's owner changes its first record.
    match unsafe { HugeHeap::block(p as usize) } {
        // SAFETY: as above.
        Some((_, _, run)) => unsafe { (*run).len * UNIT },
        None => 0,
    }
}

/// Whether a just-allocated block is known to read as zero.
///
/// # Safety
/// `p` is a live huge block, just allocated.
pub unsafe fn is_zero(p: *mut u8) -> bool {
    // SAFETY: caller's contract.
    match unsafe { HugeHeap::block(p as usize) } {
        // SAFETY: as above.
        Some((_, _, run)) => unsafe { (*run).zero },
        None => false,
    }
}

/// Grows or shrinks a huge block in place: a shrink frees the tail, a growth takes
/// the free run right after the block.
///
/// # Safety
/// `p` is a live huge block.
pub unsafe fn resize(p: *mut u8, new_size: usize) -> bool {
    let new_units = new_size.div_ceil(UNIT).max(1);
    let mut heap = HUGE.lock();
    // SAFETY: caller's contract; we hold the lock.
    let Some((r, h, run)) = (unsafe { HugeHeap::block(p as usize) }) else {
        return false;
    };
    // SAFETY: `run` starts a live block of `r`; we hold the lock, and every record
    // written lies inside the block or the free run after it.
    unsafe {
        let len = (*run).len;
        if new_units < len {
            heap.set_run(r, h, new_units, USED, Pages::block(false));
            heap.set_run(r, h + new_units, len - new_units, USED, Pages::block(false));
            heap.release(r, h + new_units);
            page_return::note_demand(Pool::Huge, heap.in_use, 0, oxalloc_sys::now_ns());
            drop(heap);
            stats::sub(&GLOBAL.in_use_bytes, (len - new_units) * UNIT);
            return true;
        }
        if new_units > len {
            let next = h + len;
            if next >= (*r).units {
                return false;
            }
            let n = Region::run(r, next);
            let extra = new_units - len;
            if (*n).state != FREE || (*n).len < extra {
                return false;
            }
            heap.carve(r, next, next, extra);
            (*Region::run(r, next)).state = INTERIOR;
            heap.set_run(r, h, new_units, USED, Pages::block(false));
            page_return::note_demand(
                Pool::Huge,
                heap.in_use,
                new_units * UNIT,
                oxalloc_sys::now_ns(),
            );
            drop(heap);
            stats::add(&GLOBAL.in_use_bytes, extra * UNIT);
            stats::add(&GLOBAL.large_huge_bytes, extra * UNIT);
            stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_bins_grow_with_the_length() {
        let mut last = 0;
        for len in 1..1 << 20 {
            let bin = extent_bin(len);
            assert!(
                bin == last || bin == last + 1,
                "len {len}: bin {bin} after {last}"
            );
            assert!(bin < EXTENT_BINS);
            last = bin;
        }
        assert_eq!(extent_bin(1), 0);
        assert_eq!(extent_bin(8), 7);
        assert_eq!(extent_bin(usize::MAX >> 16), EXTENT_BINS - 1);
    }

    /// Walks every region and checks that the index lists exactly the free extents,
    /// each in the bin of its length, and that the dirty list holds every dirty free
    /// run, oldest first.
    fn check_index(heap: &HugeHeap) {
        let mut extents = 0;
        let mut dirty_runs = 0;
        let mut r = heap.regions;
        while !r.is_null() {
            // SAFETY: the lock is held by the caller; the walk follows run lengths.
            unsafe {
                let mut h = (*r).first;
                let mut in_extent = false;
                while h < (*r).units {
                    let x = Region::run(r, h);
                    let len = (*x).len;
                    assert!(len >= 1 && h + len <= (*r).units);
                    assert_eq!((*Region::run(r, h + len - 1)).len, len);
                    if (*x).state == FREE {
                        dirty_runs += usize::from((*x).dirty);
                        if !in_extent {
                            extents += 1;
                            let mut e = h;
                            while e < (*r).units && (*Region::run(r, e)).state == FREE {
                                e += (*Region::run(r, e)).len;
                            }
                            assert!((*x).indexed, "extent at unit {h} not indexed");
                            assert_eq!((*x).extent_len, e - h);
                            let mut y = heap.extents[extent_bin(e - h)];
                            while y != x {
                                assert!(!y.is_null(), "extent at unit {h} not in its bin");
                                y = (*y).extent_next;
                            }
                        } else {
                            assert!(!(*x).indexed, "run at unit {h} inside an extent indexed");
                        }
                        in_extent = true;
                    } else {
                        assert_eq!((*x).state, USED);
                        assert!(!(*x).indexed);
                        in_extent = false;
                    }
                    h += len;
                }
                r = (*r).next;
            }
        }
        let mut listed = 0;
        for (bin, &first) in heap.extents.iter().enumerate() {
            assert_eq!(heap.nonempty >> bin & 1 == 1, !first.is_null());
            let mut y = first;
            while !y.is_null() {
                listed += 1;
                // SAFETY: as above.
                y = unsafe { (*y).extent_next };
            }
        }
        assert_eq!(listed, extents);
        let mut on_list = 0;
        let mut y = heap.dirty;
        let mut last: *mut Run = ptr::null_mut();
        while !y.is_null() {
            on_list += 1;
            // SAFETY: as above.
            unsafe {
                assert!((*y).dirty && (*y).state == FREE);
                assert_eq!((*y).prev, last);
                if !last.is_null() {
                    assert!(
                        (*last).freed_at_ns <= (*y).freed_at_ns,
                        "dirty list out of order"
                    );
                }
                last = y;
                y = (*y).next;
            }
        }
        assert_eq!(heap.dirty_last, last);
        assert_eq!(on_list, dirty_runs);
    }

    /// Random huge allocations (some aligned), frees, in-place resizes and purges keep
    /// the index exact, and blocks never overlap.
    #[test]
    fn the_extent_index_follows_every_change() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut live: [(usize, usize); 48] = [(0, 0); 48];
        for step in 0..3000 {
            let k = (next() % live.len() as u64) as usize;
            let (p, _) = live[k];
            match next() % 32 {
                0 if p != 0 => {
                    let size = (1 << 20) + (next() % (6 << 20)) as usize;
                    // SAFETY: `p` is a live block of this test.
                    if unsafe { resize(p as *mut u8, size) } {
                        live[k].1 = size;
                    }
                }
                1 if next() % 4 == 0 => {
                    purge_cache(true);
                }
                1 => {
                    // Down to a random part of what is dirty: cuts runs.
                    let mut heap = HUGE.lock();
                    let target = heap.dirty_bytes / 8 * (next() % 8) as usize;
                    heap.purge_down_to(target, 0, oxalloc_sys::now_ns());
                    assert!(heap.dirty_bytes <= target);
                }
                _ => {
                    if p != 0 {
                        // SAFETY: as above; freed once.
                        assert!(unsafe { free(p as *mut u8) });
                    }
                    let size = (1 << 20) + (next() % (6 << 20)) as usize;
                    let align = if next() % 4 == 0 {
                        1 << (16 + next() % 8)
                    } else {
                        16
                    };
                    let q = alloc(size, align);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0);
                    live[k] = (q as usize, size);
                }
            }
            if step % 10 == 0 {
                check_index(&HUGE.lock());
                let mut blocks: [(usize, usize); 48] = live;
                blocks.sort_unstable();
                for w in blocks.windows(2) {
                    assert!(w[0].0 == 0 || w[0].0 + w[0].1 <= w[1].0, "overlap");
                }
            }
        }
        for (p, _) in live {
            if p != 0 {
                // SAFETY: as above.
                assert!(unsafe { free(p as *mut u8) });
            }
        }
        check_index(&HUGE.lock());
    }
}
