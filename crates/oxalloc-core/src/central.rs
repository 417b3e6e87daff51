//! The central span pool: free slices of all segments, shared by every thread.
//!
//! Heaps `take` spans from here when their size class runs dry and `give` them back
//! when every block in them is free; large blocks are spans taken and given directly.
//! Free spans sit in bins by slice count (a bitmask finds the first non-empty bin at
//! or above a request), and neighbours in a segment are merged on `give`, so the
//! slices of a segment do not fragment.
//!
//! Each segment serves one heap first (`Segment::home`), so memory a thread gave back
//! is what that thread gets again, not lines another core wrote last.
//!
//! Memory goes back to the OS here: a free span is *dirty* (its pages may be resident)
//! until [`Central::purge`] discards it with `MADV_DONTNEED` when the page-return
//! policy (`page_return`) says so. A segment that is entirely free is unmapped then.
//!
//! Everything here runs under the one [`CENTRAL`] lock, never on a fast path.
//!
//! *Guard slices* (off unless [`set_guard_slices`] turned them on, which only the
//! hardened build does): slices 16, 32, 48 and 63 of every segment mapped from then on
//! are made inaccessible and never handed out, so no run of data slices is longer than
//! 15 (960 KiB) and a linear overflow out of any block faults within 1 MiB, before it
//! reaches the next segment's header. Such a segment is never unmapped (its free space
//! never merges into one span); its free pages are still purged.
#![allow(unsafe_code)]

use crate::lock::Mutex;
use crate::options;
use crate::page_return::{self, Pool};
use crate::segment::{
    Owner, Segment, Span, SpanKind, FIRST_SLICE, SEGMENT_MAP, SEGMENT_SIZE, SLICES, SLICE_SIZE,
};
use crate::stats::{self, GLOBAL};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

/// Whether new segments get guard slices (see the module header).
static GUARD_SLICES: AtomicBool = AtomicBool::new(false);

/// The guard slices of a segment, as a slice mask: every run of data slices between
/// them (and slice 0, the header) is at most 15 slices long.
const GUARD_SLICE_MASK: u64 = 1 << 16 | 1 << 32 | 1 << 48 | 1 << 63;

/// Turns guard slices on (for the hardened build, before its first allocation):
/// every segment mapped from now on keeps slices 16, 32, 48 and 63 inaccessible and
/// out of use. Spans of more than 15 slices can then no longer be made (the
/// hardened build gives blocks over 64 KiB mappings of their own). Off by default;
/// the default build pays one relaxed load per segment mapped.
pub fn set_guard_slices(on: bool) {
    GUARD_SLICES.store(on, Ordering::Relaxed);
}

/// Free spans binned by slice count, and the list of live segments.
pub struct Central {
    bins: [*mut Span; SLICES],
    nonempty: u64,
    segments: *mut Segment,
    segment_count: usize,
    dirty_bytes: usize,
    /// Bytes in spans taken and not given back.
    in_use: usize,
    last_tick_ns: u64,
    brk: crate::page_source::BrkState,
}

// SAFETY: the raw pointers point into segments that only the lock holder touches
// (for free spans and the lists); the value lives behind CENTRAL's mutex.
unsafe impl Send for Central {}

/// The one central pool.
pub static CENTRAL: Mutex<Central> = Mutex::new(Central {
    bins: [ptr::null_mut(); SLICES],
    nonempty: 0,
    segments: ptr::null_mut(),
    segment_count: 0,
    dirty_bytes: 0,
    in_use: 0,
    last_tick_ns: 0,
    brk: crate::page_source::BrkState::new(),
});

/// The bits of slices `idx..idx + count` in a segment's slice masks.
fn slice_bits(idx: usize, count: usize) -> u64 {
    debug_assert!(count < 64 && idx + count <= 64);
    ((1u64 << count) - 1) << idx
}

/// A span's slice records, by index within its segment.
///
/// # Safety
/// `seg` is a live segment and `idx < SLICES`.
unsafe fn slice(seg: *mut Segment, idx: usize) -> *mut Span {
    // SAFETY: caller's contract; the records array is inside the mapped header.
    unsafe { (&raw mut (*seg).spans).cast::<Span>().add(idx) }
}

impl Central {
    /// Takes a span of exactly `slices` slices (1..SLICES), mapping a new segment if
    /// no free span is big enough. Returns `None` when the OS refuses memory.
    ///
    /// `home` is the taking heap's address: a span from one of its segments comes
    /// first (see [`Central::in_home`]); a segment nobody has made theirs yet (a new
    /// one) becomes its.
    ///
    /// The span comes back as a `kind` span (Small or Large) with `slice_count` and
    /// every slice's `head` set; the caller sets the rest. The kind is set here, under
    /// the lock: `give` reads its neighbours' kinds under the lock, and a write outside
    /// it would race with that read (ThreadSanitizer found it).
    pub fn take(&mut self, slices: usize, kind: SpanKind, home: usize) -> Option<*mut Span> {
        debug_assert!((1..SLICES).contains(&slices));
        let now = oxalloc_sys::now_ns();
        self.tick(now);
        let mut mask = self.nonempty & (!0u64 << slices);
        if mask == 0 {
            if self.new_segment().is_none() {
                // Under an address-space limit, memory kept for demand (free segments
                // here, free regions of the huge heap) may hold the room we need.
                self.purge(true);
                crate::huge::purge_cache(true);
                self.new_segment()?;
            }
            mask = self.nonempty & (!0u64 << slices);
            if mask == 0 {
                return None;
            }
        }
        // SAFETY: bins hold only heads of free spans in live segments, under our lock.
        let span = unsafe {
            // The home span only if its cut holds as many resident slices as the best
            // other one: preferring a clean home span to a resident foreign one faulted
            // in fresh pages while resident ones waited to be purged (`calloc-churn/t4`,
            // medians of 11: 8.1K -> 9.1K faults, peak RSS +6%; gated, as the old
            // build). Home spans from any bin: limited to the first bin, or to twice
            // its size, the gain on `realloc-threads/t2` was gone.
            let first = mask.trailing_zeros() as usize;
            let (free, from_tail, key) = self.most_resident(first, slices);
            let (bin, free, from_tail) = match self.in_home(mask, slices, home) {
                Some((bin, span, tail, home_key)) if home_key.0 >= key.0 => (bin, span, tail),
                _ => (first, free, from_tail),
            };
            self.unlink(free);
            let seg = Segment::of(free as usize);
            if (*seg).home == 0 {
                (*seg).home = home;
            }
            let mut idx = Segment::slice_index(free);
            if bin > slices {
                let rest = if from_tail {
                    idx += bin - slices;
                    free
                } else {
                    slice(seg, idx + slices)
                };
                (*rest).freed_at_ns = (*free).freed_at_ns;
                self.insert_free(rest, bin - slices);
            }
            let span = slice(seg, idx);
            (*span).kind = kind; // not a free head (a tail cut starts mid-span)
            (*span).zero = self.claim(seg, idx, slices);
            (*span).slice_count = slices as u8;
            for i in 0..slices {
                (*slice(seg, idx + i)).head = span;
            }
            span
        };
        self.in_use += slices * SLICE_SIZE;
        stats::add(&GLOBAL.in_use_bytes, slices * SLICE_SIZE);
        stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        page_return::note_demand(Pool::Spans, self.in_use, slices * SLICE_SIZE, now);
        Some(span)
    }

    /// A free span of at least `slices` slices (bins in `mask`) in one of `home`'s
    /// segments, from the smallest bin that has one, looking at a few spans only: the
    /// one whose cut holds the most resident pages (as [`Central::most_resident`]),
    /// with its bin, the side to cut from and its residency key.
    ///
    /// Spans go back to the pool as soon as their blocks are free, and the next thread
    /// to take one would otherwise get them: memory another core wrote last. Writing it
    /// means fetching each line from that core's cache, which on a many-core machine
    /// (cores on other dies) halves the speed of a copy into it (measured here when
    /// this VM's two cores landed on such cores: 24 GB/s against 47 GB/s into lines of
    /// its own, and realloc-threads/t2 ran 0.33-0.36 s against 0.12 s for one thread,
    /// slower than both threads on one core: 0.27-0.30 s; mimalloc, whose segments
    /// belong to a thread, 0.15 s). So each segment serves one heap first (the one that
    /// took its first span), and a heap takes from another's segments only when its
    /// own have no room.
    ///
    /// # Safety
    /// The bins in `mask` are not empty; the lock is held (we are `&mut self`).
    unsafe fn in_home(
        &self,
        mask: u64,
        slices: usize,
        home: usize,
    ) -> Option<(usize, *mut Span, bool, (u32, u32))> {
        let mut budget = 16;
        let mut bins = mask;
        while bins != 0 && budget > 0 {
            let bin = bins.trailing_zeros() as usize;
            bins &= bins - 1;
            // SAFETY: caller's contract; listed spans are free heads of live segments.
            let best = unsafe {
                self.best_cut(bin, slices, &mut budget, |span| {
                    (*Segment::of(span as usize)).home == home
                })
            };
            if let Some((span, from_tail, key)) = best {
                return Some((bin, span, from_tail, key));
            }
        }
        None
    }

    /// Among the next spans of `bin` (at most `budget` of them, counted down) that
    /// `accept` takes, the one whose cut holds the most dirty slices, then the most
    /// dirty slices in all ([`Central::cut_side`]'s key), with the side to cut from and
    /// its key; it stops at a span dirty all through, which none can beat.
    ///
    /// # Safety
    /// The lock is held (we are `&self` under `&mut self`); `accept` is called on free
    /// heads of live segments.
    unsafe fn best_cut(
        &self,
        bin: usize,
        slices: usize,
        budget: &mut usize,
        accept: impl Fn(*mut Span) -> bool,
    ) -> Option<(*mut Span, bool, (u32, u32))> {
        let mut best: Option<(*mut Span, bool, (u32, u32))> = None;
        let mut span = self.bins[bin];
        while !span.is_null() && *budget > 0 && best.is_none_or(|b| b.2 .1 < bin as u32) {
            if accept(span) {
                // SAFETY: bins hold only free heads of live segments (caller's lock).
                let (from_tail, key) = unsafe { self.cut_side(span, bin, slices) };
                if best.is_none_or(|b| key > b.2) {
                    best = Some((span, from_tail, key));
                }
            }
            // SAFETY: as above.
            span = unsafe { (*span).next };
            *budget -= 1;
        }
        best
    }

    /// Whether to cut `slices` slices from the tail of the free span `span` of `bin`
    /// slices rather than its head (the end holding more dirty slices), and the key
    /// [`Central::most_resident`] ranks spans by: (dirty slices in the cut, dirty
    /// slices in the span).
    ///
    /// # Safety
    /// `span` is a free head of a live segment; the lock is held.
    unsafe fn cut_side(&self, span: *mut Span, bin: usize, slices: usize) -> (bool, (u32, u32)) {
        // SAFETY: caller's contract.
        let dirty = unsafe { (*Segment::of(span as usize)).dirty_slices };
        let idx = Segment::slice_index(span);
        let head = (dirty & slice_bits(idx, slices)).count_ones();
        let tail = (dirty & slice_bits(idx + bin - slices, slices)).count_ones();
        (
            tail > head,
            (head.max(tail), (dirty & slice_bits(idx, bin)).count_ones()),
        )
    }

    /// Where to cut `slices` slices from the spans of `bin`: among the first few
    /// spans of the bin, the one whose cut (from its head or its tail) holds the most
    /// dirty slices, then the one with the most dirty slices in all. Resident pages
    /// are used before clean ones, so a program that comes back to its peak reuses what
    /// it freed instead of faulting in fresh pages while the freed ones wait.
    ///
    /// # Safety
    /// `bin` is not empty; the lock is held (we are `&mut self`).
    unsafe fn most_resident(&self, bin: usize, slices: usize) -> (*mut Span, bool, (u32, u32)) {
        let mut budget = 8;
        // SAFETY: caller's contract; every span is accepted, so the first one of the
        // (non-empty) bin at least is the answer.
        unsafe { self.best_cut(bin, slices, &mut budget, |_| true) }.expect("bin is not empty")
    }

    /// Gives a span back (every block in it free), merging it with free neighbours.
    ///
    /// # Safety
    /// `span` is the head of a span taken from this pool and not given back since;
    /// nothing in it is used any more.
    pub unsafe fn give(&mut self, span: *mut Span) {
        let now = oxalloc_sys::now_ns();
        // SAFETY: caller's contract; neighbours are read only through valid records.
        unsafe {
            let seg = Segment::of(span as usize);
            let mut idx = Segment::slice_index(span);
            let mut count = (*span).slice_count as usize;
            self.in_use -= count * SLICE_SIZE;
            stats::sub(&GLOBAL.in_use_bytes, count * SLICE_SIZE);
            (*seg).dirty_slices |= slice_bits(idx, count);
            self.dirty_bytes += count * SLICE_SIZE;
            let next_idx = idx + count;
            if next_idx < SLICES {
                let next = slice(seg, next_idx);
                if (*next).kind == SpanKind::Free {
                    count += (*next).slice_count as usize;
                    self.unlink(next);
                }
            }
            if idx > FIRST_SLICE {
                let last = slice(seg, idx - 1);
                let prev = (*last).head;
                if (*prev).kind == SpanKind::Free {
                    self.unlink(prev);
                    count += (*prev).slice_count as usize;
                    (*span).kind = SpanKind::Large;
                    idx = Segment::slice_index(prev);
                }
            }
            let head = slice(seg, idx);
            (*head).freed_at_ns = now;
            self.insert_free(head, count);
            page_return::note_demand(Pool::Spans, self.in_use, 0, now);
        }
        self.tick(now);
        if self.dirty_bytes > 0 {
            crate::purger::wanted();
        }
    }

    /// Frees the large block `p` if it is the live block of `span`: false (and nothing
    /// changed) if it is not, a double or invalid free. Checked under the lock, so two
    /// threads freeing the same block cannot both give it back.
    ///
    /// # Safety
    /// `span` is a slice record of a live segment.
    pub unsafe fn give_large(&mut self, span: *mut Span, p: usize) -> bool {
        // SAFETY: caller's contract; the lock makes the check and the give one step.
        unsafe {
            if (*span).kind != SpanKind::Large || (*span).head != span || (*span).grid_base != p {
                return false;
            }
            (*span).grid_base = 0;
            self.give(span);
        }
        true
    }

    /// Grows a large span in place by taking free slices right after it.
    ///
    /// # Safety
    /// `span` is the head of a live large span taken from this pool.
    pub unsafe fn grow(&mut self, span: *mut Span, new_slices: usize) -> bool {
        // SAFETY: caller's contract; only free records after the span are changed.
        unsafe {
            let seg = Segment::of(span as usize);
            let idx = Segment::slice_index(span);
            let have = (*span).slice_count as usize;
            let next_idx = idx + have;
            if new_slices <= have || idx + new_slices > SLICES {
                return new_slices <= have;
            }
            let next = slice(seg, next_idx);
            let avail = (*next).slice_count as usize;
            if (*next).kind != SpanKind::Free || have + avail < new_slices {
                return false;
            }
            self.unlink(next);
            let extra = new_slices - have;
            if avail > extra {
                let rest = slice(seg, next_idx + extra);
                (*rest).freed_at_ns = (*next).freed_at_ns;
                self.insert_free(rest, avail - extra);
            }
            self.claim(seg, next_idx, extra);
            (*next).kind = SpanKind::Large;
            for i in have..new_slices {
                (*slice(seg, idx + i)).head = span;
            }
            (*span).slice_count = new_slices as u8;
            self.in_use += extra * SLICE_SIZE;
            stats::add(&GLOBAL.in_use_bytes, extra * SLICE_SIZE);
            stats::add(&GLOBAL.large_huge_bytes, extra * SLICE_SIZE);
            stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        }
        page_return::note_demand(
            Pool::Spans,
            self.in_use,
            new_slices * SLICE_SIZE,
            oxalloc_sys::now_ns(),
        );
        true
    }

    /// Gives free pages back to the OS as the page-return policy says: what has
    /// waited the purge delay beyond what recent demand keeps, and, with `force`,
    /// everything (`malloc_trim`). Returns the bytes given back.
    pub fn purge(&mut self, force: bool) -> usize {
        let now = oxalloc_sys::now_ns();
        if force {
            return self.purge_down_to(0, 0, now);
        }
        let targets = page_return::targets(Pool::Spans, self.dirty_bytes, now);
        self.purge_down_to(targets.aged, page_return::delay_ns(), now)
    }

    /// Purges free spans that have waited `min_age_ns`, largest first (small, recently
    /// freed spans are the likeliest to be reused), until at most `target` dirty bytes
    /// remain; the last span purged may be purged in part. A whole free segment that
    /// has waited goes back with `munmap` instead, if it is clean or all of its dirty
    /// bytes are to go. Returns the bytes given back.
    fn purge_down_to(&mut self, target: usize, min_age_ns: u64, now: u64) -> usize {
        let mut released = 0;
        for bin in (1..SLICES).rev() {
            if self.dirty_bytes <= target && bin < SLICES - FIRST_SLICE {
                break;
            }
            let mut span = self.bins[bin];
            while !span.is_null() {
                // SAFETY: spans in the bins are free spans of live segments, ours
                // under the lock; `next` is read before the span can be unmapped.
                unsafe {
                    let next = (*span).next;
                    let waited = now.wrapping_sub((*span).freed_at_ns) >= min_age_ns;
                    let excess = self.dirty_bytes.saturating_sub(target);
                    let whole = bin == SLICES - FIRST_SLICE;
                    let dirty = Self::dirty_bytes_of(span);
                    if waited && whole && dirty <= excess && self.can_unmap(span) {
                        let from_brk = (*Segment::of(span as usize)).from_brk;
                        let unmapped = self.unmap_segment(span);
                        released += unmapped;
                        if from_brk && unmapped > 0 {
                            // The break came down: a free segment below it, passed over
                            // earlier in this bin (not the topmost then), may go now.
                            span = self.bins[bin];
                            continue;
                        }
                    } else if waited && excess > 0 {
                        released += self.purge_span(span, excess);
                    }
                    span = next;
                }
            }
        }
        page_return::set_dirty(Pool::Spans, self.dirty_bytes);
        released
    }

    /// Gives at least `want` bytes of a free span's dirty slices back with
    /// `MADV_DONTNEED` (all of them if it has fewer), from its end (one call per run of
    /// dirty slices); returns the bytes. Purged slices read as zero.
    ///
    /// # Safety
    /// `span` is the head of a free span in a bin.
    unsafe fn purge_span(&mut self, span: *mut Span, want: usize) -> usize {
        // SAFETY: caller's contract: the span is free, so nothing uses its pages.
        unsafe {
            let seg = Segment::of(span as usize);
            let idx = Segment::slice_index(span);
            let mut bits = (*seg).dirty_slices & slice_bits(idx, (*span).slice_count as usize);
            let mut released = 0;
            while bits != 0 && released < want {
                // The highest run of dirty slices, cut to what is still wanted.
                let end = 64 - bits.leading_zeros() as usize;
                let run = (bits << (64 - end)).leading_ones() as usize;
                let run = run.min((want - released).div_ceil(SLICE_SIZE));
                let first = end - run;
                bits &= !slice_bits(first, run);
                if !oxalloc_sys::discard(Segment::slice_start(seg, first), run * SLICE_SIZE) {
                    // Refused: the pages keep what they held, so they stay dirty (not
                    // known to read zero) for a later purge.
                    break;
                }
                (*seg).dirty_slices &= !slice_bits(first, run);
                stats::add(&GLOBAL.purge_calls, 1);
                released += run * SLICE_SIZE;
            }
            self.dirty_bytes -= released;
            stats::add(&GLOBAL.purged_bytes, released);
            released
        }
    }

    /// Dirty bytes of a free span.
    ///
    /// # Safety
    /// `span` is the head of a free span of a live segment.
    unsafe fn dirty_bytes_of(span: *mut Span) -> usize {
        // SAFETY: caller's contract.
        let (mask, count) = unsafe {
            (
                (*Segment::of(span as usize)).dirty_slices,
                (*span).slice_count as usize,
            )
        };
        let bits = mask & slice_bits(Segment::slice_index(span), count);
        bits.count_ones() as usize * SLICE_SIZE
    }

    /// Marks `count` slices from `idx` as leaving the pool (no longer free, so no
    /// longer dirty). Returns whether they all read as zero (never written since they
    /// were mapped or purged).
    ///
    /// # Safety
    /// `seg` is a live segment and the slices are ours under the lock.
    unsafe fn claim(&mut self, seg: *mut Segment, idx: usize, count: usize) -> bool {
        // SAFETY: caller's contract.
        unsafe {
            let bits = (*seg).dirty_slices & slice_bits(idx, count);
            (*seg).dirty_slices &= !bits;
            self.dirty_bytes -= bits.count_ones() as usize * SLICE_SIZE;
            bits == 0
        }
    }

    /// Bytes of free memory not yet given back to the OS.
    pub fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    /// Visits every live segment (for the statistics page).
    pub fn for_each_segment(&self, mut f: impl FnMut(*mut Segment)) {
        let mut s = self.segments;
        while !s.is_null() {
            f(s);
            // SAFETY: segments in the list are live while we hold the lock.
            s = unsafe { (*s).next };
        }
    }

    /// Number of live segments.
    pub fn segment_count(&self) -> usize {
        self.segment_count
    }

    /// Periodic work on any central operation: purge at once what passes the cache
    /// cap, and every half purge delay what the policy says has waited long enough;
    /// refresh the live statistics.
    fn tick(&mut self, now: u64) {
        let targets = page_return::targets(Pool::Spans, self.dirty_bytes, now);
        if self.dirty_bytes > targets.at_once {
            self.purge_down_to(targets.at_once, 0, now);
        }
        let delay_ns = page_return::delay_ns();
        if now.wrapping_sub(self.last_tick_ns) >= delay_ns.max(1_000_000) / 2 {
            self.last_tick_ns = now;
            if self.dirty_bytes > targets.aged {
                self.purge_down_to(targets.aged, delay_ns, now);
            }
            GLOBAL.cached_bytes.store(
                self.dirty_bytes as u64,
                core::sync::atomic::Ordering::Relaxed,
            );
            crate::stats::publish_shared(self);
        }
    }

    /// Maps a segment ([`Central::map_segment`]) and, when guard slices are on, cuts
    /// them out of its free space.
    fn new_segment(&mut self) -> Option<()> {
        self.map_segment()?;
        if GUARD_SLICES.load(Ordering::Relaxed) {
            // SAFETY: `map_segment` just put the new segment at the head of the list,
            // with all its data slices as one free span; we hold the lock.
            unsafe { self.cut_guard_slices(self.segments) };
        }
        Some(())
    }

    /// Takes the guard slices out of a fresh segment's free space and makes them
    /// inaccessible: each becomes a one-slice span of kind `Large` that is never
    /// given back (so `give` never merges across it), and the free runs between them
    /// go into their bins. If the kernel refuses the protection, the slice is still
    /// kept out of use.
    ///
    /// # Safety
    /// `seg` was just mapped: its data slices are one free span in its bin, nothing
    /// else refers to them, and the lock is held.
    unsafe fn cut_guard_slices(&mut self, seg: *mut Segment) {
        // SAFETY: caller's contract; every record touched is inside the header, and
        // the protected slices are ours and hold nothing.
        unsafe {
            self.unlink(slice(seg, FIRST_SLICE));
            let mut run_start = FIRST_SLICE;
            for idx in FIRST_SLICE..SLICES {
                if GUARD_SLICE_MASK & (1 << idx) == 0 {
                    continue;
                }
                if idx > run_start {
                    self.insert_free(slice(seg, run_start), idx - run_start);
                }
                let g = slice(seg, idx);
                (*g).kind = SpanKind::Large;
                (*g).slice_count = 1;
                (*g).head = g;
                (*g).owner = ptr::null_mut();
                (*g).block_size = 0;
                oxalloc_sys::protect(Segment::slice_start(seg, idx), SLICE_SIZE, false);
                run_start = idx + 1;
            }
            if run_start < SLICES {
                self.insert_free(slice(seg, run_start), SLICES - run_start);
            }
        }
    }

    fn map_segment(&mut self) -> Option<()> {
        let Some((base, from_brk)) = self.brk.acquire() else {
            crate::stats::verbose("oxalloc: the OS refused a 4 MiB segment (mmap failed)\n");
            return None;
        };
        let seg = base.as_ptr().cast::<Segment>();
        if options::HUGE_PAGES.on() {
            // SAFETY: the segment was mapped (or taken from the break) just above.
            unsafe { oxalloc_sys::prefer_huge_pages(base.as_ptr(), SEGMENT_SIZE) };
        }
        // SAFETY: the memory is fresh, zeroed, 4 MiB aligned and ours alone; an
        // all-zero Span record is valid (null pointers, kind Free).
        unsafe {
            (*seg).from_brk = from_brk;
            self.link_segment(seg);
            (*seg).dirty_slices = 0;
            (*seg).home = 0;
            // Every slice record names a head, so `free` of any pointer into the segment
            // reads a valid record: the header's slice its own (a free record, never in
            // a bin), the data slices the one free span's.
            (*slice(seg, 0)).head = slice(seg, 0);
            for i in FIRST_SLICE..SLICES {
                (*slice(seg, i)).head = slice(seg, FIRST_SLICE);
            }
            self.insert_free(slice(seg, FIRST_SLICE), SLICES - FIRST_SLICE);
        }
        self.segment_count += 1;
        SEGMENT_MAP.set(seg as usize, Owner::Normal);
        stats::add(&GLOBAL.mapped_bytes, SEGMENT_SIZE);
        stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
        stats::add(&GLOBAL.segments, 1);
        Some(())
    }

    /// Puts a segment at the head of the list of live segments.
    ///
    /// # Safety
    /// `seg` is a mapped segment in no list; the lock is held.
    unsafe fn link_segment(&mut self, seg: *mut Segment) {
        // SAFETY: caller's contract; the list's head is a live segment.
        unsafe {
            (*seg).prev = ptr::null_mut();
            (*seg).next = self.segments;
            if !self.segments.is_null() {
                (*self.segments).prev = seg;
            }
        }
        self.segments = seg;
    }

    /// Whether the segment of `span` can go back to the OS now (a `brk` segment can
    /// only from the top of the break).
    ///
    /// # Safety
    /// `span` is a slice record of a live segment.
    unsafe fn can_unmap(&self, span: *mut Span) -> bool {
        let seg = Segment::of(span as usize);
        // SAFETY: caller's contract: the header is mapped.
        self.brk
            .can_release(seg as usize, unsafe { (*seg).from_brk })
    }

    /// Unmaps the segment whose whole data area is the free span `span`. Returns the
    /// bytes given back: 0 if the kernel refused to move the break down (the segment
    /// then stays, free, as it was).
    ///
    /// # Safety
    /// `span` is a free span covering slices 1..SLICES of its segment, and
    /// `can_unmap(span)` holds.
    unsafe fn unmap_segment(&mut self, span: *mut Span) -> usize {
        // SAFETY: caller's contract: nothing in the segment is used, so after the
        // lists forget it, no one can reach it.
        unsafe {
            self.unlink(span);
            let seg = Segment::of(span as usize);
            let dirty = (*seg).dirty_slices.count_ones() as usize * SLICE_SIZE;
            self.dirty_bytes -= dirty;
            let (prev, next) = ((*seg).prev, (*seg).next);
            if prev.is_null() {
                self.segments = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            SEGMENT_MAP.set(seg as usize, Owner::Foreign);
            let from_brk = (*seg).from_brk;
            if !self.brk.release(seg as usize, from_brk) {
                // The break stayed (`can_unmap` said it could move): the segment is
                // still mapped and still ours, so it goes back where it was.
                SEGMENT_MAP.set(seg as usize, Owner::Normal);
                self.link_segment(seg);
                self.dirty_bytes += dirty;
                self.insert_free(span, SLICES - FIRST_SLICE);
                return 0;
            }
        }
        self.segment_count -= 1;
        stats::sub(&GLOBAL.mapped_bytes, SEGMENT_SIZE);
        stats::sub(&GLOBAL.segments, 1);
        stats::add(&GLOBAL.unmapped_bytes, SEGMENT_SIZE);
        SEGMENT_SIZE
    }

    /// Makes `span` a free span of `count` slices and puts it in its bin.
    ///
    /// # Safety
    /// `span` is a slice record of a live segment and the `count` slices from it are
    /// free and in no list.
    unsafe fn insert_free(&mut self, span: *mut Span, count: usize) {
        // SAFETY: caller's contract.
        unsafe {
            (*span).kind = SpanKind::Free;
            (*span).slice_count = count as u8;
            (*span).head = span;
            (*span).owner = ptr::null_mut();
            if count > 1 {
                let last = span.add(count - 1);
                (*last).head = span;
                (*last).kind = SpanKind::Free;
            }
            (*span).prev = ptr::null_mut();
            (*span).next = self.bins[count];
            if !(*span).next.is_null() {
                (*(*span).next).prev = span;
            }
            self.bins[count] = span;
            self.nonempty |= 1 << count;
        }
    }

    /// Takes a free span out of its bin.
    ///
    /// # Safety
    /// `span` is the head of a free span currently in its bin.
    unsafe fn unlink(&mut self, span: *mut Span) {
        // SAFETY: caller's contract.
        unsafe {
            let count = (*span).slice_count as usize;
            let (prev, next) = ((*span).prev, (*span).next);
            if prev.is_null() {
                self.bins[count] = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            if self.bins[count].is_null() {
                self.nonempty &= !(1 << count);
            }
            (*span).next = ptr::null_mut();
            (*span).prev = ptr::null_mut();
            // A span leaving the pool is no longer a free head.
            (*span).kind = SpanKind::Large;
        }
    }
}
