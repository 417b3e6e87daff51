//! Statistics: process-wide counters, per-heap counters, and the reports built from
//! them (a summary on stderr, JSON in a file, a live shared page).
//!
//! Process-wide counters are atomics updated on slow paths only. Per-heap counters are
//! written by the owning thread alone with a relaxed load and store (no
//! read-modify-write on the fast path) and read by reporters with relaxed loads, so a
//! report may be a few operations behind but never tears a value.
//!
//! Reports are formatted into fixed stack buffers and written with `write(2)`: they run
//! inside the allocator, often at exit, and must not allocate.
#![allow(unsafe_code)]

use crate::central::Central;
use crate::fmt::Buf;
use crate::heap::Heap;
use crate::size_class::{SizeClass, NUM_CLASSES};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Relaxed};

/// Process-wide counters.
pub struct Global {
    /// Address space mapped from the OS now (segments and huge blocks).
    pub mapped_bytes: AtomicU64,
    /// Highest `mapped_bytes`.
    pub peak_mapped_bytes: AtomicU64,
    /// Bytes of spans and huge blocks handed to heaps or programs now.
    pub in_use_bytes: AtomicU64,
    /// Highest `in_use_bytes`.
    pub peak_in_use_bytes: AtomicU64,
    /// Bytes given back with `MADV_DONTNEED`, in total.
    pub purged_bytes: AtomicU64,
    /// Number of purge calls.
    pub purge_calls: AtomicU64,
    /// Bytes unmapped, in total.
    pub unmapped_bytes: AtomicU64,
    /// Live segments.
    pub segments: AtomicU64,
    /// Free but not yet purged bytes in the central pool (refreshed periodically).
    pub cached_bytes: AtomicU64,
    /// Large (in-segment, > 64 KiB) allocations by threads without a heap (an exiting
    /// thread's); each heap counts its own (`HeapStats`, `LARGE_SLOT`), so two threads
    /// churning large blocks do not fight over one counter.
    pub large_allocs: AtomicU64,
    /// Large frees by threads without a heap (see `large_allocs`).
    pub large_frees: AtomicU64,
    /// Huge (own mapping) allocations.
    pub huge_allocs: AtomicU64,
    /// Bytes handed out in large and huge blocks, in total: each block's rounded size
    /// (whole slices or units), plus what `realloc` grew them by in place; large
    /// blocks of threads with a heap are counted there (`HeapStats::large_bytes`).
    pub large_huge_bytes: AtomicU64,
    /// Huge frees.
    pub huge_frees: AtomicU64,
    /// Live huge blocks.
    pub huge_count: AtomicU64,
    /// Huge allocations served from free memory of the huge page heap (no new region).
    pub huge_cache_hits: AtomicU64,
    /// Small blocks freed by a thread other than their owner.
    pub remote_frees: AtomicU64,
    /// Blocks a heap took from another heap's waiting remote lists and handed out
    /// itself (`heap::foreign`), instead of taking fresh memory.
    pub remote_reused: AtomicU64,
    /// Pointers passed to free/realloc that were not ours (ignored).
    pub foreign_frees: AtomicU64,
    /// Heaps created (threads that allocated, minus reuse).
    pub heaps: AtomicU64,
    /// Heaps given up by exited threads and not reused yet.
    pub heaps_abandoned: AtomicU64,
    /// Process start, for the elapsed time in reports.
    pub start_ns: AtomicU64,
}

/// The process-wide counters.
pub static GLOBAL: Global = Global {
    mapped_bytes: AtomicU64::new(0),
    peak_mapped_bytes: AtomicU64::new(0),
    in_use_bytes: AtomicU64::new(0),
    peak_in_use_bytes: AtomicU64::new(0),
    purged_bytes: AtomicU64::new(0),
    purge_calls: AtomicU64::new(0),
    unmapped_bytes: AtomicU64::new(0),
    segments: AtomicU64::new(0),
    cached_bytes: AtomicU64::new(0),
    large_allocs: AtomicU64::new(0),
    large_frees: AtomicU64::new(0),
    huge_allocs: AtomicU64::new(0),
    large_huge_bytes: AtomicU64::new(0),
    huge_frees: AtomicU64::new(0),
    huge_count: AtomicU64::new(0),
    huge_cache_hits: AtomicU64::new(0),
    remote_frees: AtomicU64::new(0),
    remote_reused: AtomicU64::new(0),
    foreign_frees: AtomicU64::new(0),
    heaps: AtomicU64::new(0),
    heaps_abandoned: AtomicU64::new(0),
    start_ns: AtomicU64::new(0),
};

/// Adds to a process-wide counter.
#[inline]
pub fn add(c: &AtomicU64, v: usize) {
    c.fetch_add(v as u64, Relaxed);
}

/// Subtracts from a process-wide counter.
#[inline]
pub fn sub(c: &AtomicU64, v: usize) {
    c.fetch_sub(v as u64, Relaxed);
}

/// Raises `peak` to `cur` if `cur` is higher.
#[inline]
pub fn raise_peak(peak: &AtomicU64, cur: &AtomicU64) {
    peak.fetch_max(cur.load(Relaxed), Relaxed);
}

/// Per-heap counters, written only by the owning thread.
#[repr(C)]
pub struct HeapStats {
    /// Allocations per size class, plus large and huge in the last two slots. Small
    /// allocations are counted in their span first (`Span::allocs`, on the line the
    /// fast path writes anyway) and added here when the span goes back to the pool.
    pub allocs: [u64; NUM_CLASSES + 2],
    /// Frees of large and huge blocks done by this thread (the last two slots). Small
    /// frees are not counted on the fast path: a report derives them as allocations
    /// minus the blocks still in use in the heap's spans.
    pub frees: [u64; NUM_CLASSES + 2],
    /// Small blocks this thread freed into other heaps' spans (a shared atomic here
    /// would be a cache line every freeing thread fights over).
    pub remote_frees: u64,
    /// Bytes of the large blocks this thread allocated, at their rounded size.
    pub large_bytes: u64,
}

/// Slot for large allocations in `HeapStats`.
pub const LARGE_SLOT: usize = NUM_CLASSES;
/// Slot for huge allocations in `HeapStats`.
pub const HUGE_SLOT: usize = NUM_CLASSES + 1;

/// Whether per-heap counting is compiled in.
pub const COUNTING: bool = cfg!(feature = "stats");

/// Bumps an owner-only counter: relaxed load and store, no locked instruction.
///
/// # Safety
/// `c` is a valid counter that only the calling thread writes.
#[inline(always)]
pub unsafe fn bump(c: *mut u64) {
    if COUNTING {
        // SAFETY: caller's contract; AtomicU64 has the layout of u64.
        let a = unsafe { AtomicU64::from_ptr(c) };
        a.store(a.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

/// Adds `v` to an owner-only counter, as [`bump`].
///
/// # Safety
/// As for [`bump`].
#[inline(always)]
pub unsafe fn bump_by(c: *mut u64, v: u64) {
    if COUNTING {
        // SAFETY: caller's contract; AtomicU64 has the layout of u64.
        let a = unsafe { AtomicU64::from_ptr(c) };
        a.store(a.load(Relaxed).wrapping_add(v), Relaxed);
    }
}

/// The counter for `slot` (a size class, or `LARGE_SLOT`/`HUGE_SLOT`), without a
/// bounds check on the fast path.
///
/// # Safety
/// `counters` is valid and `slot < NUM_CLASSES + 2`.
#[inline(always)]
pub unsafe fn slot(counters: *mut [u64; NUM_CLASSES + 2], slot: usize) -> *mut u64 {
    debug_assert!(slot < NUM_CLASSES + 2);
    // SAFETY: caller's contract.
    unsafe { counters.cast::<u64>().add(slot) }
}

/// Reads a counter another thread may be bumping.
///
/// # Safety
/// `c` is a valid counter.
unsafe fn read(c: *mut u64) -> u64 {
    // SAFETY: caller's contract; concurrent writers use atomic stores too.
    unsafe { AtomicU64::from_ptr(c) }.load(Relaxed)
}

/// Writes a message on stderr if `OXALLOC_VERBOSE` is on.
pub fn verbose(msg: &str) {
    if crate::options::VERBOSE.on() {
        oxalloc_sys::write_stderr(msg.as_bytes());
    }
}

/// Small blocks freed by a thread other than their owner: those counted by threads
/// without a heap, plus every heap's own count.
pub fn remote_frees() -> u64 {
    let mut n = GLOBAL.remote_frees.load(Relaxed);
    crate::tls::for_each_heap(|h| {
        // SAFETY: heaps are never freed; the counter is read atomically.
        n += unsafe { read(&raw mut (*h).stats.remote_frees) };
    });
    n
}

/// Totals over all heaps.
#[derive(Default, Clone, Copy)]
pub struct Totals {
    /// malloc-family allocations.
    pub allocs: u64,
    /// frees.
    pub frees: u64,
    /// Sum of block sizes handed out: small blocks at their class size, large and huge
    /// blocks at their rounded size (all heaps together; per heap, small blocks only).
    pub bytes_allocated: u64,
    /// Bytes in small blocks allocated and not yet freed.
    pub live_small_bytes: u64,
    /// Large allocations (included in `allocs`).
    pub large_allocs: u64,
    /// Large frees (included in `frees`).
    pub large_frees: u64,
}

/// Per size class, in the spans owned by `heap` (every heap if null), counted by
/// walking the segments: the blocks in use, and the allocations the spans have not yet
/// folded into their heap's counters. Blocks freed by other threads and not yet drained
/// count as in use. With `wait` false, None if the central lock stays busy (a report at
/// exit must not wait on a thread that holds it); readings from program code wait.
fn span_counts(heap: *mut Heap, wait: bool) -> Option<([u64; NUM_CLASSES], [u64; NUM_CLASSES])> {
    let central = if wait {
        crate::central::CENTRAL.lock()
    } else {
        crate::central::CENTRAL.try_lock_for(1000)?
    };
    let mut in_use = [0u64; NUM_CLASSES];
    let mut allocs = [0u64; NUM_CLASSES];
    central.for_each_segment(|seg| {
        // SAFETY: we hold the central lock and the segment is on its list.
        unsafe {
            crate::segment::Segment::for_each_small_span(seg, |owner, class, used, n| {
                if heap.is_null() || owner == heap {
                    in_use[class] += used as u64;
                    allocs[class] += n;
                }
            })
        }
    });
    Some((in_use, allocs))
}

/// Per-class allocations and frees of one heap (or of all, with null).
fn class_counts(heap: *mut Heap, wait: bool) -> ([u64; NUM_CLASSES + 2], [u64; NUM_CLASSES + 2]) {
    let mut allocs = [0u64; NUM_CLASSES + 2];
    let mut frees = [0u64; NUM_CLASSES + 2];
    crate::tls::for_each_heap(|h| {
        if heap.is_null() || h == heap {
            for i in 0..NUM_CLASSES + 2 {
                // SAFETY: heaps are never freed; counters are read atomically.
                unsafe {
                    allocs[i] += read(&raw mut (*h).stats.allocs[i]);
                    frees[i] += read(&raw mut (*h).stats.frees[i]);
                }
            }
            // SAFETY: as above.
            unsafe { crate::heap::add_kept_allocs(h, &mut allocs) };
        }
    });
    if let Some((in_use, unfolded)) = span_counts(heap, wait) {
        for i in 0..NUM_CLASSES {
            allocs[i] += unfolded[i];
            frees[i] = allocs[i].saturating_sub(in_use[i]);
        }
    }
    (allocs, frees)
}

/// Allocations and frees per size class over all heaps (index: the class; the last two
/// slots: large and huge blocks, [`LARGE_SLOT`] and [`HUGE_SLOT`]), as the reports show
/// them. Takes the central lock for a moment, waiting for it: for program code, not
/// for the allocator's own paths or exit reports.
pub fn all_class_counts() -> ([u64; NUM_CLASSES + 2], [u64; NUM_CLASSES + 2]) {
    class_counts(core::ptr::null_mut(), true)
}

/// Free memory not yet given back to the OS, in bytes: the central pool's dirty spans,
/// the spans heaps keep for their next spans, and the huge-block heap's free,
/// possibly resident memory. Takes each pool's lock
/// for a moment (unlike `GLOBAL.cached_bytes`, which is refreshed periodically).
pub fn cached_bytes_now() -> u64 {
    let spans = crate::central::CENTRAL.lock().dirty_bytes();
    (spans + crate::huge::cached_bytes()) as u64 + kept_span_bytes()
}

/// One heap's figures, as the JSON report's heap list gives them.
#[derive(Default, Clone, Copy, Debug)]
pub struct HeapSummary {
    /// The heap's number, in creation order from 0.
    pub id: u64,
    /// The owning thread's id (`gettid` on Linux); 0 while abandoned.
    pub tid: u64,
    /// Whether its thread exited and no thread has taken it over yet.
    pub abandoned: bool,
    /// Whether it is the calling thread's heap.
    pub current: bool,
    /// Allocations served by this heap (small, large and huge).
    pub allocs: u64,
    /// Frees of its blocks (small blocks: allocations minus blocks still in use in
    /// its spans; large and huge: the frees done by this heap's thread).
    pub frees: u64,
    /// Bytes in small blocks of its spans allocated and not yet freed.
    pub live_small_bytes: u64,
    /// Small blocks its thread freed into other heaps' spans.
    pub remote_frees: u64,
}

/// Calls `f` with every heap's figures, newest heap first. No lock is held while `f`
/// runs (each heap's counts take the central lock for a moment before, waiting for
/// it: for program code, not for exit reports), so `f` may allocate.
pub fn for_each_heap_summary(f: impl FnMut(HeapSummary)) {
    heap_summaries(true, f)
}

fn heap_summaries(wait: bool, mut f: impl FnMut(HeapSummary)) {
    let me = crate::tls::heap();
    crate::tls::for_each_heap(|h| {
        let (allocs, frees) = class_counts(h, wait);
        // SAFETY: heaps are never freed; id/tid/abandoned are written before the
        // heap is published and read atomically after, as is the remote counter.
        let ((id, tid, abandoned), remote_frees) =
            unsafe { (Heap::identity(h), read(&raw mut (*h).stats.remote_frees)) };
        let mut s = HeapSummary {
            id,
            tid,
            abandoned,
            current: h == me,
            remote_frees,
            ..HeapSummary::default()
        };
        for i in 0..NUM_CLASSES + 2 {
            let (ai, fi) = (allocs[i], frees[i]);
            s.allocs += ai;
            s.frees += fi;
            if i < NUM_CLASSES {
                s.live_small_bytes = s.live_small_bytes.wrapping_add(
                    ai.wrapping_sub(fi)
                        .wrapping_mul(SizeClass(i as u8).size() as u64),
                );
            }
        }
        f(s);
    });
}

/// Allocations and frees of one size class over all heaps. A reading from program code:
/// it waits for the central lock (with a bounded try, a purge holding the lock under
/// qemu left the spans' counts out: `class_counts.rs` saw (1071, 0) for (1300, 1100)).
pub fn class_totals(class: SizeClass) -> (u64, u64) {
    let (allocs, frees) = class_counts(core::ptr::null_mut(), true);
    (allocs[class.index()], frees[class.index()])
}

/// Totals over all heaps, for reports: if the central lock stays busy for a short
/// while, small frees not yet folded into the heaps' counters are missing (see
/// [`totals_waiting`]).
///
/// ```
/// use oxalloc_core::{api, stats};
/// let before = stats::totals();
/// let p = api::malloc(48);
/// let after = stats::totals();
/// assert!(after.allocs > before.allocs);
/// assert!(after.live_small_bytes >= before.live_small_bytes + 48);
/// // SAFETY: live, freed once.
/// unsafe { api::free(p) };
/// ```
pub fn totals() -> Totals {
    totals_from(class_counts(core::ptr::null_mut(), false))
}

/// [`totals`] for program code: waits for the central lock rather than give up on it
/// after a short wait (when small frees not yet folded into the heaps' counters would
/// be missing).
pub fn totals_waiting() -> Totals {
    totals_from(class_counts(core::ptr::null_mut(), true))
}

fn totals_from((allocs, frees): ([u64; NUM_CLASSES + 2], [u64; NUM_CLASSES + 2])) -> Totals {
    let mut t = Totals {
        large_allocs: allocs[LARGE_SLOT],
        large_frees: frees[LARGE_SLOT],
        ..Totals::default()
    };
    for i in 0..NUM_CLASSES + 2 {
        t.allocs += allocs[i];
        t.frees += frees[i];
        if i < NUM_CLASSES {
            let size = SizeClass(i as u8).size() as u64;
            t.bytes_allocated += allocs[i] * size;
            t.live_small_bytes += allocs[i].saturating_sub(frees[i]) * size;
        }
    }
    // Large blocks of threads without a heap, and the heaps' large bytes.
    let (allocs, frees) = (
        GLOBAL.large_allocs.load(Relaxed),
        GLOBAL.large_frees.load(Relaxed),
    );
    t.allocs += allocs;
    t.frees += frees;
    t.large_allocs += allocs;
    t.large_frees += frees;
    t.bytes_allocated += GLOBAL.large_huge_bytes.load(Relaxed);
    crate::tls::for_each_heap(|h| {
        // SAFETY: heaps are never freed; the counter is read atomically.
        t.bytes_allocated += unsafe { read(&raw mut (*h).stats.large_bytes) };
    });
    t
}

/// Bytes of the spans heaps keep for their next spans (`heap::span_cache`: those of
/// the large blocks and the small spans they emptied): free memory, cached rather than
/// in use.
pub fn kept_span_bytes() -> u64 {
    let mut n = 0;
    crate::tls::for_each_heap(|h| {
        // SAFETY: heaps are never freed; the figures are read atomically.
        n += unsafe {
            crate::heap::SpanCache::kept_bytes(&raw mut (*h).large)
                + crate::heap::SpanCache::kept_bytes(&raw mut (*h).emptied)
        } as u64;
    });
    n
}

/// Bytes of spans and huge blocks in use now: `GLOBAL.in_use_bytes`, which counts the
/// spans heaps keep for their next spans too, less those.
pub fn in_use_bytes_now() -> u64 {
    GLOBAL
        .in_use_bytes
        .load(Relaxed)
        .saturating_sub(kept_span_bytes())
}

/// Writes the human-readable summary to stderr.
pub fn print_summary() {
    let t = totals();
    let g = &GLOBAL;
    let mut b: Buf<2048> = Buf::new();
    b.str("oxalloc: statistics for pid ")
        .num(oxalloc_sys::process_id() as u64)
        .str("\n");
    let line = |b: &mut Buf<2048>, name: &str, v: u64, size: bool| {
        let start = b.len();
        b.str("  ").str(name);
        b.pad_to(start, 26);
        if size {
            b.size(v);
        } else {
            b.num(v);
        }
        b.str("\n");
    };
    line(&mut b, "allocations", t.allocs, false);
    line(&mut b, "frees", t.frees, false);
    line(&mut b, "bytes allocated", t.bytes_allocated, true);
    line(&mut b, "live small bytes", t.live_small_bytes, true);
    line(&mut b, "in use now", in_use_bytes_now(), true);
    line(
        &mut b,
        "in use at peak",
        g.peak_in_use_bytes.load(Relaxed),
        true,
    );
    line(&mut b, "mapped now", g.mapped_bytes.load(Relaxed), true);
    line(
        &mut b,
        "mapped at peak",
        g.peak_mapped_bytes.load(Relaxed),
        true,
    );
    line(
        &mut b,
        "purged (returned)",
        g.purged_bytes.load(Relaxed),
        true,
    );
    line(&mut b, "unmapped", g.unmapped_bytes.load(Relaxed), true);
    line(
        &mut b,
        "large / huge allocs",
        t.large_allocs + g.huge_allocs.load(Relaxed),
        false,
    );
    line(
        &mut b,
        "huge reuse hits",
        g.huge_cache_hits.load(Relaxed),
        false,
    );
    line(&mut b, "remote frees", remote_frees(), false);
    line(
        &mut b,
        "remote reused by others",
        g.remote_reused.load(Relaxed),
        false,
    );
    line(&mut b, "heaps (threads)", g.heaps.load(Relaxed), false);
    line(&mut b, "peak RSS", oxalloc_sys::peak_rss_bytes(), true);
    oxalloc_sys::write_stderr(b.as_bytes());
}

/// A JSON writer that flushes a fixed buffer to a file descriptor as it fills.
struct JsonOut {
    fd: i32,
    buf: Buf<4096>,
}

impl JsonOut {
    fn flush_if_full(&mut self) {
        if self.buf.len() > 3800 {
            oxalloc_sys::write_fd(self.fd, self.buf.as_bytes());
            self.buf.clear();
        }
    }
    fn field(&mut self, name: &str, v: u64) {
        self.buf.str("\"").str(name).str("\":").num(v).str(",");
        self.flush_if_full();
    }
    fn finish(&mut self) {
        oxalloc_sys::write_fd(self.fd, self.buf.as_bytes());
        self.buf.clear();
    }
}

/// Writes the statistics as one JSON object (schema `oxalloc_stats: 1`) to `fd`.
pub fn write_json(fd: i32) {
    let t = totals();
    let g = &GLOBAL;
    let mut o = JsonOut {
        fd,
        buf: Buf::new(),
    };
    o.buf.str("{");
    o.field("oxalloc_stats", 1);
    o.field("pid", oxalloc_sys::process_id() as u64);
    o.field(
        "elapsed_ns",
        oxalloc_sys::now_ns().saturating_sub(g.start_ns.load(Relaxed)),
    );
    o.field("allocs", t.allocs);
    o.field("frees", t.frees);
    o.field("bytes_allocated", t.bytes_allocated);
    o.field("live_bytes", t.live_small_bytes);
    o.field("in_use_bytes", in_use_bytes_now());
    o.field("peak_in_use_bytes", g.peak_in_use_bytes.load(Relaxed));
    o.field("mapped_bytes", g.mapped_bytes.load(Relaxed));
    o.field("peak_mapped_bytes", g.peak_mapped_bytes.load(Relaxed));
    o.field("purged_bytes", g.purged_bytes.load(Relaxed));
    o.field("unmapped_bytes", g.unmapped_bytes.load(Relaxed));
    o.field("purge_calls", g.purge_calls.load(Relaxed));
    o.field("segments", g.segments.load(Relaxed));
    o.field("peak_rss_bytes", oxalloc_sys::peak_rss_bytes());
    o.field("large_allocs", t.large_allocs);
    o.field("huge_allocs", g.huge_allocs.load(Relaxed));
    o.field("huge_cache_hits", g.huge_cache_hits.load(Relaxed));
    o.field("heaps", g.heaps.load(Relaxed));
    o.field("heaps_abandoned", g.heaps_abandoned.load(Relaxed));
    o.field("remote_frees", remote_frees());
    o.field("remote_reused", g.remote_reused.load(Relaxed));
    o.field("foreign_frees", g.foreign_frees.load(Relaxed));
    let (allocs, frees) = class_counts(core::ptr::null_mut(), false);
    o.buf.str("\"classes\":[");
    let mut first = true;
    for i in 0..NUM_CLASSES {
        if allocs[i] == 0 && frees[i] == 0 {
            continue;
        }
        if !first {
            o.buf.str(",");
        }
        first = false;
        o.buf
            .str("{\"size\":")
            .num(SizeClass(i as u8).size() as u64);
        o.buf
            .str(",\"allocs\":")
            .num(allocs[i])
            .str(",\"frees\":")
            .num(frees[i])
            .str("}");
        o.flush_if_full();
    }
    o.buf.str("],\"heap_list\":[");
    let mut first = true;
    heap_summaries(false, |h| {
        if !first {
            o.buf.str(",");
        }
        first = false;
        o.buf.str("{\"id\":").num(h.id).str(",\"tid\":").num(h.tid);
        o.buf
            .str(",\"allocs\":")
            .num(h.allocs)
            .str(",\"frees\":")
            .num(h.frees);
        o.buf.str(",\"live_bytes\":").num(h.live_small_bytes);
        o.buf
            .str(",\"abandoned\":")
            .str(if h.abandoned { "true" } else { "false" })
            .str("}");
        o.flush_if_full();
    });
    o.buf.str("]}\n");
    o.finish();
}

/// Writes the JSON report to the file named by `OXALLOC_STATS_FILE` (`%p` -> PID).
pub fn write_json_file() {
    let Some(pattern) = crate::options::STATS_FILE.get() else {
        return;
    };
    let mut path: Buf<512> = Buf::new();
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'%' && pattern.get(i + 1) == Some(&b'p') {
            path.num(oxalloc_sys::process_id() as u64);
            i += 2;
        } else {
            path.bytes(&pattern[i..i + 1]);
            i += 1;
        }
    }
    path.bytes(b"\0");
    let Ok(cpath) = core::ffi::CStr::from_bytes_with_nul(path.as_bytes()) else {
        return;
    };
    if let Some(fd) = oxalloc_sys::create_file(cpath) {
        use oxalloc_sys::AsRawFd;
        write_json(fd.as_raw_fd());
    }
}

/// Size of the live statistics file.
pub const SHARED_BYTES: usize = 64 * 1024;
const SHARED_MAGIC: u64 = u64::from_le_bytes(*b"OXALLOC1");
const SHARED_SEGMENTS_AT: usize = 128 / 8;
const SHARED_MAX_SEGMENTS: usize = 1000;

/// The live statistics page (`OXALLOC_STATS_SHM`), if the program asked for one.
pub static SHARED: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());

/// Refreshes the live statistics page. Called under the central lock.
pub fn publish_shared(central: &Central) {
    let page = SHARED.load(Relaxed);
    if page.is_null() {
        return;
    }
    let w = |i: usize, v: u64| {
        // SAFETY: the page is SHARED_BYTES long and mapped for the process lifetime;
        // indexes stay below SHARED_BYTES / 8. Readers tolerate torn snapshots.
        unsafe { AtomicU64::from_ptr(page.add(i)) }.store(v, Relaxed)
    };
    // SAFETY: as above, for the sequence word.
    let seq = unsafe { AtomicU64::from_ptr(page.add(3)) }.load(Relaxed);
    w(0, SHARED_MAGIC);
    w(1, 1);
    w(2, oxalloc_sys::process_id() as u64);
    w(4, GLOBAL.mapped_bytes.load(Relaxed));
    w(5, in_use_bytes_now());
    w(6, GLOBAL.peak_in_use_bytes.load(Relaxed));
    w(7, GLOBAL.purged_bytes.load(Relaxed));
    w(8, central.dirty_bytes() as u64);
    w(9, GLOBAL.huge_count.load(Relaxed));
    let mut n = 0;
    central.for_each_segment(|seg| {
        if n >= SHARED_MAX_SEGMENTS {
            return;
        }
        // SAFETY: called under the central lock with a segment from its list.
        let (used, dirty, purged) = unsafe { crate::segment::Segment::census(seg) };
        let at = SHARED_SEGMENTS_AT + n * 4;
        w(at, seg as u64);
        w(at + 1, used);
        w(at + 2, dirty);
        w(at + 3, purged);
        n += 1;
    });
    w(10, n as u64);
    w(3, seq + 1);
}

/// Creates the live statistics file if `OXALLOC_STATS_SHM` names one.
pub fn open_shared() {
    let Some(path) = crate::options::STATS_SHM.get() else {
        return;
    };
    let mut p: Buf<512> = Buf::new();
    p.bytes(path).bytes(b"\0");
    let Ok(cpath) = core::ffi::CStr::from_bytes_with_nul(p.as_bytes()) else {
        return;
    };
    if let Some(page) = oxalloc_sys::map_shared_file(cpath, SHARED_BYTES) {
        SHARED.store(page.as_ptr().cast(), Relaxed);
    }
}
