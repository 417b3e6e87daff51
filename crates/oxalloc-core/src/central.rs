//! The central span pool: free slices of all segments, shared by every thread.
//!
//! Heaps `take` spans from here when their size class runs dry and `give` them back
//! when every block in them is free; large blocks are spans taken and given directly.
//! Free spans sit in bins by slice count (a bitmask finds the first non-empty bin at
//! or above a request), and neighbours in a segment are merged on `give`, so the
//! slices of a segment do not fragment.
//!
//! Memory goes back to the OS here: a free span is *dirty* (its pages may be resident)
//! until [`Central::purge`] discards it with `MADV_DONTNEED`, once it has been free for
//! `OXALLOC_PURGE_DELAY_MS`, or at once when dirty memory passes `OXALLOC_CACHE_MAX_MIB`.
//! A segment that is entirely free and purged is unmapped.
//!
//! Everything here runs under the one [`CENTRAL`] lock, never on a fast path.
#![allow(unsafe_code)]

use crate::lock::Mutex;
use crate::options;
use crate::segment::{
    Owner, Segment, Span, SpanKind, FIRST_SLICE, SEGMENT_MAP, SEGMENT_SIZE, SLICES, SLICE_SIZE,
};
use crate::stats::{self, GLOBAL};
use core::ptr;

/// Free spans binned by slice count, and the list of live segments.
pub struct Central {
    bins: [*mut Span; SLICES],
    nonempty: u64,
    segments: *mut Segment,
    segment_count: usize,
    dirty_bytes: usize,
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
    last_tick_ns: 0,
    brk: crate::page_source::BrkState::new(),
});

/// How many bytes of free, still-resident memory may wait for the purge delay: the
/// configured cap, or a quarter of what is in use if that is more, so a program with a
/// large working set that churns big blocks does not purge and refault on every cycle.
pub fn cache_cap() -> usize {
    let configured = options::CACHE_MAX_MIB.get() as usize * (1 << 20);
    let in_use = GLOBAL
        .in_use_bytes
        .load(core::sync::atomic::Ordering::Relaxed) as usize;
    configured.max(in_use / 4)
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
    /// The span comes back with `slice_count` and every slice's `head` set;
    /// the caller sets its kind and the rest.
    pub fn take(&mut self, slices: usize) -> Option<*mut Span> {
        debug_assert!((1..SLICES).contains(&slices));
        self.tick();
        let mut mask = self.nonempty & (!0u64 << slices);
        if mask == 0 {
            self.map_segment()?;
            mask = self.nonempty & (!0u64 << slices);
            if mask == 0 {
                return None;
            }
        }
        let bin = mask.trailing_zeros() as usize;
        let span = self.bins[bin];
        // SAFETY: bins hold only heads of free spans in live segments, under our lock.
        unsafe {
            self.unlink(span);
            let seg = Segment::of(span as usize);
            let idx = Segment::slice_index(span);
            if bin > slices {
                let rest = slice(seg, idx + slices);
                (*rest).dirty = (*span).dirty;
                (*rest).zero = (*span).zero;
                (*rest).freed_at_ns = (*span).freed_at_ns;
                self.insert_free(rest, bin - slices);
            }
            (*span).slice_count = slices as u8;
            for i in 0..slices {
                (*slice(seg, idx + i)).head = span;
            }
        }
        stats::add(&GLOBAL.in_use_bytes, slices * SLICE_SIZE);
        stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        Some(span)
    }

    /// Gives a span back (every block in it free), merging it with free neighbours.
    ///
    /// # Safety
    /// `span` is the head of a span taken from this pool and not given back since;
    /// nothing in it is used any more.
    pub unsafe fn give(&mut self, span: *mut Span) {
        // SAFETY: caller's contract; neighbours are read only through valid records.
        unsafe {
            let seg = Segment::of(span as usize);
            let mut idx = Segment::slice_index(span);
            let mut count = (*span).slice_count as usize;
            stats::sub(&GLOBAL.in_use_bytes, count * SLICE_SIZE);
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
            // Merged free space counts as dirty as a whole; purging pages that are
            // already purged costs one cheap madvise.
            (*head).dirty = true;
            (*head).zero = false;
            (*head).freed_at_ns = oxalloc_sys::now_ns();
            self.insert_free(head, count);
        }
        self.tick();
        if self.dirty_bytes > 0 {
            crate::purger::wanted();
        }
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
                (*rest).dirty = (*next).dirty;
                (*rest).zero = (*next).zero;
                (*rest).freed_at_ns = (*next).freed_at_ns;
                self.insert_free(rest, avail - extra);
            }
            (*next).kind = SpanKind::Large;
            for i in have..new_slices {
                (*slice(seg, idx + i)).head = span;
            }
            (*span).slice_count = new_slices as u8;
            stats::add(&GLOBAL.in_use_bytes, extra * SLICE_SIZE);
            stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        }
        true
    }

    /// Gives free pages back to the OS: dirty spans free for longer than the purge
    /// delay (all of them with `force`), and segments that are entirely free.
    /// Returns the bytes given back.
    pub fn purge(&mut self, force: bool) -> usize {
        let now = oxalloc_sys::now_ns();
        let delay_ns = options::PURGE_DELAY_MS.get().saturating_mul(1_000_000);
        let mut released = 0;
        let mut mask = self.nonempty;
        while mask != 0 {
            let bin = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let mut span = self.bins[bin];
            while !span.is_null() {
                // SAFETY: spans in the bins are free spans of live segments, ours
                // under the lock; `next` is read before the span can be unmapped.
                unsafe {
                    let next = (*span).next;
                    let old_enough = force || now.wrapping_sub((*span).freed_at_ns) >= delay_ns;
                    let whole = bin == SLICES - FIRST_SLICE;
                    if old_enough && whole && self.can_unmap(span) {
                        released += self.unmap_segment(span);
                    } else if old_enough {
                        released += self.purge_span(span);
                    }
                    span = next;
                }
            }
        }
        released
    }

    /// Purges dirty spans, largest first, until at most `target` dirty bytes remain:
    /// the cap is enforced without throwing away the spans most likely to be reused
    /// next (small, recently freed ones).
    fn purge_down_to(&mut self, target: usize) {
        let mut bin = SLICES - 1;
        while bin >= 1 && self.dirty_bytes > target {
            let mut span = self.bins[bin];
            while !span.is_null() && self.dirty_bytes > target {
                // SAFETY: spans in the bins are free spans of live segments, ours
                // under the lock.
                unsafe {
                    self.purge_span(span);
                    span = (*span).next;
                }
            }
            bin -= 1;
        }
    }

    /// Gives a dirty free span's pages back with `MADV_DONTNEED`; returns the bytes
    /// (0 if it was clean already). Its pages then read as zero.
    ///
    /// # Safety
    /// `span` is the head of a free span in a bin.
    unsafe fn purge_span(&mut self, span: *mut Span) -> usize {
        // SAFETY: caller's contract: the span is free, so nothing uses its pages.
        unsafe {
            if !(*span).dirty {
                return 0;
            }
            let len = (*span).slice_count as usize * SLICE_SIZE;
            oxalloc_sys::discard(Segment::span_start(span), len);
            (*span).dirty = false;
            (*span).zero = true;
            self.dirty_bytes -= len;
            stats::add(&GLOBAL.purged_bytes, len);
            stats::add(&GLOBAL.purge_calls, 1);
            len
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

    /// Periodic work on any central operation: purge what has waited long enough, or
    /// everything when the dirty cache is over its cap; refresh the live statistics.
    fn tick(&mut self) {
        let cap = cache_cap();
        if self.dirty_bytes > cap {
            self.purge_down_to(cap / 2);
        }
        let now = oxalloc_sys::now_ns();
        let delay_ns = options::PURGE_DELAY_MS.get().saturating_mul(1_000_000);
        if now.wrapping_sub(self.last_tick_ns) >= delay_ns.max(1_000_000) / 2 {
            self.last_tick_ns = now;
            if self.dirty_bytes > 0 {
                self.purge(false);
            }
            GLOBAL.cached_bytes.store(
                self.dirty_bytes as u64,
                core::sync::atomic::Ordering::Relaxed,
            );
            crate::stats::publish_shared(self);
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
            (*seg).prev = ptr::null_mut();
            (*seg).next = self.segments;
            if !self.segments.is_null() {
                (*self.segments).prev = seg;
            }
            self.segments = seg;
            let first = slice(seg, FIRST_SLICE);
            (*first).zero = true;
            (*first).dirty = false;
            self.insert_free(first, SLICES - FIRST_SLICE);
        }
        self.segment_count += 1;
        SEGMENT_MAP.set(seg as usize, Owner::Normal);
        stats::add(&GLOBAL.mapped_bytes, SEGMENT_SIZE);
        stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
        stats::add(&GLOBAL.segments, 1);
        Some(())
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

    /// Unmaps the segment whose whole data area is the free span `span`.
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
            let released = self.brk.release(seg as usize, from_brk);
            debug_assert!(released, "can_unmap said yes");
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
            if (*span).dirty {
                self.dirty_bytes += count * SLICE_SIZE;
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
            if (*span).dirty {
                self.dirty_bytes -= count * SLICE_SIZE;
            }
            (*span).next = ptr::null_mut();
            (*span).prev = ptr::null_mut();
            // A span leaving the pool is no longer a free head.
            (*span).kind = SpanKind::Large;
        }
    }
}
