//! The allocator's statistics as typed values: process-wide [`Totals`], per size class
//! ([`size_classes`], [`size_class_for`]) and per thread heap ([`heaps`],
//! [`current_heap`]).
//!
//! These are the figures the exit summary (`OXALLOC_SHOW_STATS=1`) and the JSON report
//! (`OXALLOC_STATS_FILE`) print, read from the same counters. Each call takes a fresh
//! reading; counters of other threads are read with relaxed loads, so a reading may be
//! a few operations behind a thread that is allocating at the same time, but no value
//! is torn.
//!
//! The figures count what went through oxalloc: install it as the global allocator (see
//! the [crate docs](crate)) for them to cover a Rust program.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
//!
//! fn main() {
//!     let before = oxalloc::stats::totals();
//!     let v: Vec<u64> = Vec::with_capacity(1000);
//!     let after = oxalloc::stats::totals();
//!     assert!(after.allocs > before.allocs);
//!     assert!(after.bytes_allocated >= before.bytes_allocated + 8000);
//!     drop(v);
//! }
//! ```

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use oxalloc_core::size_class::{SizeClass, MAX_SMALL, NUM_CLASSES};
use oxalloc_core::stats::GLOBAL;

/// Process-wide figures: counts over all threads and the memory the allocator holds.
///
/// Memory comes in three layers: [`mapped_bytes`](Totals::mapped_bytes) is the address
/// space reserved from the OS; [`committed_bytes`](Totals::committed_bytes) the part
/// of it that is (or may be) backed by memory: what is handed out
/// ([`in_use_bytes`](Totals::in_use_bytes)) plus free pages not yet given back
/// ([`cached_bytes`](Totals::cached_bytes)); the rest of the reservation was given
/// back or never touched (and the allocator's own metadata).
///
/// The fields are read one after another, not at one instant: while other threads
/// allocate and free, they may disagree by what those threads did in between.
///
/// ```
/// #[global_allocator]
/// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
///
/// fn main() {
///     let big = vec![1u8; 256 << 10];
///     let t = oxalloc::stats::totals();
///     assert!(t.in_use_bytes >= 256 << 10);
///     assert!(t.committed_bytes >= t.in_use_bytes);
///     assert!(t.mapped_bytes >= t.committed_bytes);
///     drop(big);
/// }
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Allocations (small, large and huge), by every thread so far.
    pub allocs: u64,
    /// Frees so far. Small frees are derived: allocations minus the blocks still in use
    /// (blocks freed by another thread and not yet collected by their owner count as in
    /// use until they are).
    pub frees: u64,
    /// Bytes handed out so far: small blocks at their size class's size, large and
    /// huge blocks at their rounded size (plus what `realloc` grew them by in place).
    pub bytes_allocated: u64,
    /// Bytes in small blocks (up to 64 KiB) allocated and not yet freed.
    pub live_small_bytes: u64,
    /// Bytes of spans and huge blocks handed to threads or the program now (small
    /// blocks count by the span that holds them, free or not; the spans a thread keeps
    /// for its next large blocks are free, and count as cached).
    pub in_use_bytes: u64,
    /// Highest [`in_use_bytes`](Totals::in_use_bytes) so far.
    pub peak_in_use_bytes: u64,
    /// Address space reserved from the OS now (segments, huge regions, metadata),
    /// whether backed by memory or not.
    pub mapped_bytes: u64,
    /// Highest [`mapped_bytes`](Totals::mapped_bytes) so far.
    pub peak_mapped_bytes: u64,
    /// Bytes that are or may be backed by memory: in use plus cached (metadata
    /// excluded).
    pub committed_bytes: u64,
    /// Free pages not yet given back to the OS (resident if they were touched),
    /// including the spans threads keep for their next large blocks: what
    /// [`trim`](crate::trim) would release (each thread's kept spans: what its own
    /// `trim` or its exit releases).
    pub cached_bytes: u64,
    /// Bytes given back to the OS with `MADV_DONTNEED` (or the platform's equivalent)
    /// so far; the address space stays reserved.
    pub purged_bytes: u64,
    /// Calls that gave pages back so far.
    pub purge_calls: u64,
    /// Bytes of address space unmapped so far (whole free segments and huge regions).
    pub unmapped_bytes: u64,
    /// Segments (4 MiB reservations for small and large blocks) mapped now.
    pub segments: u64,
    /// Large allocations (over 64 KiB, inside a segment) so far.
    pub large_allocs: u64,
    /// Large frees so far.
    pub large_frees: u64,
    /// Huge allocations (a mapping or region of their own) so far.
    pub huge_allocs: u64,
    /// Huge frees so far.
    pub huge_frees: u64,
    /// Huge blocks live now.
    pub huge_blocks: u64,
    /// Huge allocations served from free memory already mapped (no new mapping).
    pub huge_cache_hits: u64,
    /// Small blocks freed by a thread other than the one that allocated them.
    pub remote_frees: u64,
    /// Pointers passed to free or realloc that were not oxalloc's (ignored or reported
    /// as `OXALLOC_FOREIGN_FREE` says).
    pub foreign_frees: u64,
    /// Thread heaps created so far (an exited thread's heap is reused by a new thread).
    pub heaps: u64,
    /// Heaps whose thread exited and that no thread has taken over yet.
    pub heaps_abandoned: u64,
}

/// Reads the process-wide figures now.
///
/// Takes the allocator's central lock for a moment (small frees are counted by
/// walking the segments); allocates nothing.
pub fn totals() -> Totals {
    let t = oxalloc_core::stats::totals_waiting();
    let g = &GLOBAL;
    let in_use_bytes = oxalloc_core::stats::in_use_bytes_now();
    let cached_bytes = oxalloc_core::stats::cached_bytes_now();
    Totals {
        allocs: t.allocs,
        frees: t.frees,
        bytes_allocated: t.bytes_allocated,
        live_small_bytes: t.live_small_bytes,
        in_use_bytes,
        peak_in_use_bytes: g.peak_in_use_bytes.load(Relaxed),
        mapped_bytes: g.mapped_bytes.load(Relaxed),
        peak_mapped_bytes: g.peak_mapped_bytes.load(Relaxed),
        committed_bytes: in_use_bytes + cached_bytes,
        cached_bytes,
        purged_bytes: g.purged_bytes.load(Relaxed),
        purge_calls: g.purge_calls.load(Relaxed),
        unmapped_bytes: g.unmapped_bytes.load(Relaxed),
        segments: g.segments.load(Relaxed),
        large_allocs: t.large_allocs,
        large_frees: t.large_frees,
        huge_allocs: g.huge_allocs.load(Relaxed),
        huge_frees: g.huge_frees.load(Relaxed),
        huge_blocks: g.huge_count.load(Relaxed),
        huge_cache_hits: g.huge_cache_hits.load(Relaxed),
        remote_frees: oxalloc_core::stats::remote_frees(),
        foreign_frees: g.foreign_frees.load(Relaxed),
        heaps: g.heaps.load(Relaxed),
        heaps_abandoned: g.heaps_abandoned.load(Relaxed),
    }
}

/// One size class's figures, over all threads.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeClassStats {
    /// The class's number, from 0 (the smallest) to [`SIZE_CLASSES`] - 1.
    pub index: usize,
    /// Its block size in bytes: requests of up to this many bytes (and more than the
    /// previous class's) get a block of this class.
    pub size: usize,
    /// Allocations so far.
    pub allocs: u64,
    /// Frees so far: allocations minus the blocks in use now.
    pub frees: u64,
    /// Blocks allocated and not yet freed.
    pub live_blocks: u64,
    /// Bytes in those blocks (`live_blocks * size`).
    pub live_bytes: u64,
}

/// Number of small size classes (blocks of up to 64 KiB); larger requests are large
/// or huge blocks, counted in [`Totals`].
pub const SIZE_CLASSES: usize = NUM_CLASSES;

/// Largest request served from a size class, in bytes.
pub const MAX_SMALL_SIZE: usize = MAX_SMALL;

fn class_stats(index: usize, allocs: u64, frees: u64) -> SizeClassStats {
    let size = SizeClass(index as u8).size();
    let live_blocks = allocs.saturating_sub(frees);
    SizeClassStats {
        index,
        size,
        allocs,
        frees,
        live_blocks,
        live_bytes: live_blocks * size as u64,
    }
}

/// Every size class's figures, smallest class first ([`SIZE_CLASSES`] entries, used or
/// not).
///
/// The counts are read before the vector is allocated: no allocator lock is held while
/// it is.
///
/// ```
/// #[global_allocator]
/// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
///
/// fn main() {
///     let classes = oxalloc::stats::size_classes();
///     assert_eq!(classes.len(), oxalloc::stats::SIZE_CLASSES);
///     assert_eq!(classes[0].size, 16);
///     for c in classes.iter().filter(|c| c.live_blocks > 0) {
///         println!("{:>6} bytes: {} live", c.size, c.live_blocks);
///     }
/// }
/// ```
pub fn size_classes() -> Vec<SizeClassStats> {
    let (allocs, frees) = oxalloc_core::stats::all_class_counts();
    (0..NUM_CLASSES)
        .map(|i| class_stats(i, allocs[i], frees[i]))
        .collect()
}

/// The figures of the size class that serves requests of `size` bytes (with an
/// alignment of at most 16), or `None` above [`MAX_SMALL_SIZE`]. Allocates nothing.
///
/// ```
/// #[global_allocator]
/// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
///
/// fn main() {
///     let before = oxalloc::stats::size_class_for(48).unwrap();
///     let blocks: Vec<Box<[u8; 48]>> = (0..100).map(|_| Box::new([0; 48])).collect();
///     let during = oxalloc::stats::size_class_for(48).unwrap();
///     assert_eq!(during.size, 48);
///     assert!(during.live_blocks >= before.live_blocks + 100);
///     drop(blocks);
///     assert!(oxalloc::stats::size_class_for(1 << 20).is_none());
/// }
/// ```
pub fn size_class_for(size: usize) -> Option<SizeClassStats> {
    if size > MAX_SMALL {
        return None;
    }
    let i = SizeClass::of(size).index();
    let (allocs, frees) = oxalloc_core::stats::all_class_counts();
    Some(class_stats(i, allocs[i], frees[i]))
}

/// One thread heap's figures. Every thread that allocates gets a heap; when it exits
/// the heap is *abandoned* (its blocks stay where they are) until a new thread takes it
/// over.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// The heap's number, in creation order from 0.
    pub id: u64,
    /// The owning thread's OS id (`gettid` on Linux); 0 while abandoned.
    pub thread_id: u64,
    /// Whether its thread exited and no thread has taken the heap over yet.
    pub abandoned: bool,
    /// Whether this is the calling thread's heap.
    pub current: bool,
    /// Allocations served by this heap so far (small, large and huge).
    pub allocs: u64,
    /// Frees of its blocks so far (small blocks: allocations minus its blocks in use).
    pub frees: u64,
    /// Bytes in its small blocks allocated and not yet freed.
    pub live_small_bytes: u64,
    /// Small blocks this heap's thread freed that belonged to other heaps.
    pub remote_frees: u64,
}

/// Every heap's figures, newest heap first.
///
/// The counts are read heap by heap with no allocator lock held while the vector
/// grows. A heap's counts persist across owners: a reused heap carries the counts of
/// the threads that had it before.
///
/// ```
/// #[global_allocator]
/// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
///
/// fn main() {
///     let _v = vec![0u32; 64];
///     let heaps = oxalloc::stats::heaps();
///     let mine = heaps.iter().find(|h| h.current).expect("this thread's heap");
///     assert!(!mine.abandoned);
///     assert!(mine.allocs >= 1);
/// }
/// ```
pub fn heaps() -> Vec<HeapStats> {
    // Room for every heap made so far (and a few more) before the walk, so the vector
    // is allocated once in the common case, before the calling thread's heap is read.
    let made = GLOBAL.heaps.load(Relaxed) as usize;
    let mut v = Vec::with_capacity(made + 4);
    oxalloc_core::stats::for_each_heap_summary(|h| v.push(heap_stats(h)));
    v
}

/// The calling thread's heap's figures, or `None` if the thread has not allocated
/// through oxalloc yet. Allocates nothing, so two readings around some code count
/// exactly what that code allocated on this thread.
///
/// ```
/// #[global_allocator]
/// static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;
///
/// fn main() {
///     let b = Box::new(1u64);
///     let before = oxalloc::stats::current_heap().unwrap();
///     let c = Box::new(2u64);
///     let after = oxalloc::stats::current_heap().unwrap();
///     assert_eq!(after.allocs, before.allocs + 1);
///     assert_eq!(after.id, before.id);
///     drop((b, c));
/// }
/// ```
pub fn current_heap() -> Option<HeapStats> {
    let mut mine = None;
    oxalloc_core::stats::for_each_heap_summary(|h| {
        if h.current {
            mine = Some(heap_stats(h));
        }
    });
    mine
}

fn heap_stats(h: oxalloc_core::stats::HeapSummary) -> HeapStats {
    HeapStats {
        id: h.id,
        thread_id: h.tid,
        abandoned: h.abandoned,
        current: h.current,
        allocs: h.allocs,
        frees: h.frees,
        live_small_bytes: h.live_small_bytes,
        remote_frees: h.remote_frees,
    }
}

/// Prints the statistics summary (the one `OXALLOC_SHOW_STATS=1` prints at exit) on
/// stderr.
pub fn print() {
    oxalloc_core::stats::print_summary();
}
