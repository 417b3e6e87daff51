//! Large blocks (above 64 KiB, below 1 MiB): each is a whole span of the central pool
//! (huge ones have mappings of their own: `huge.rs`). A heap keeps the spans of large
//! blocks its thread frees, by slice count, for its next large blocks of that count;
//! how many it keeps of a count follows its churn, as `retain` does for the classes
//! with few blocks a span.
//!
//! Why: a program that replaces large blocks at random otherwise takes and gives a span
//! under the central lock on every malloc and free. `examples/programs/random_sizes.c
//! 2 1000000 262144` (two threads, 1 B-256 KiB, three in four large): 0.53-0.79 s
//! against mimalloc's 0.22-0.33 and tcmalloc's 0.16-0.31, most of it waiting for the
//! lock (31% of the samples) and searching the pool (22%); with the cache 0.08-0.09 s.
//! The rest of that gain came from counting large blocks per heap (`HeapStats`): three
//! process-wide counters bumped on every large malloc and free were a cache line both
//! threads fought over (0.14 -> 0.11 s).
//!
//! What it costs: the spans kept hold memory other sizes cannot use. The limits below,
//! blocks up to 512 KiB only ([`KEPT_COUNTS`]), and the spans that sat unused through a
//! whole window going back keep that small: `power-law/t8` (8 threads, rare large
//! blocks of every size) peaks 21.2 -> 21.8 MiB, `large` 154.3 -> 157.5 MiB (5
//! alternating runs each). A thread that stops calling the allocator keeps what it has
//! until it exits or calls `malloc_trim`.
//!
//! A live large block is claimed by its free with one compare-and-swap on its span's
//! `grid_base` (the block's address tagged with [`LIVE`] while it is live), so two
//! threads freeing one block cannot both have it, with or without the lock. The tag is
//! what a small span's `grid_base` (a block address: even) never has, so a free of a
//! block whose span was given back and reused for small blocks fails the swap too.
#![allow(unsafe_code)]

use super::*;
use core::sync::atomic::AtomicUsize;

/// Slice counts whose spans a heap keeps: 1 (a block aligned above a slice, small
/// enough for one) to 8 (blocks up to 512 KiB); the cache is indexed by count - 1.
/// Bigger blocks go to the pool and come from it: a block that big costs its user more
/// than the lock (writing it, or faulting it in), and kept, each held memory other
/// sizes could use. All 16 counts kept: `random_sizes.c 2 600000 524288` the same (0.13
/// s; 0.38-0.40 without the cache), peak RSS of `large` 159.8 against 157.5 MiB
/// (154.3 without), of `power-law/t8` 22.1 against 21.8 (21.2); up to 4 (256 KiB, as
/// tcmalloc's thread cache): that `random_sizes.c` run 0.26-0.27 s.
pub(super) const KEPT_COUNTS: usize = 8;

/// Tag in a large span's `grid_base`: set while its block is live.
const LIVE: usize = 1;

/// Bytes of spans a heap keeps per slice count, at most (at least one span). With 1 MiB
/// (and 2 MiB in all) `random_sizes.c` above ran 0.11-0.12 s, and the suite's
/// `random-sizes/t2` 0.266 s against 0.247 (7 alternating runs); `large` peaked 2%
/// lower.
const KEEP_BYTES: usize = 2 << 20;

/// Bytes of spans a heap keeps in all, at most: tcmalloc's default cap on one thread's
/// cache. With 1 MiB, `random_sizes.c` lost half the gain (0.48 s against 0.24 in the
/// same slow hour).
const KEEP_TOTAL: usize = 4 << 20;

/// A heap's spans of freed large blocks, kept for its next large blocks.
#[repr(C)]
pub struct LargeCache {
    /// Per slice count: the spans kept, linked by `next`.
    spans: [*mut Span; KEPT_COUNTS],
    /// Per slice count: how many `spans` holds.
    len: [u8; KEPT_COUNTS],
    /// Per slice count: how many it may hold (see [`take_cached`]).
    limit: [u8; KEPT_COUNTS],
    /// Bit per slice count: a span was given back for lack of room since the count
    /// last took one from the pool.
    refused: u8,
    /// Bit per slice count: blocks of the count were allocated in the current window of
    /// `recent::WINDOW` large allocations and frees or slow-path calls, whichever ends
    /// first.
    recent: u8,
    /// Per slice count: the fewest spans `spans` held in the current window.
    low: [u8; KEPT_COUNTS],
    /// Large allocations and frees, for the windows of `recent`.
    calls: u32,
    /// Bytes of the spans kept (written by the owner only, atomically: reports read
    /// it).
    bytes: usize,
}

impl LargeCache {
    /// No spans kept, none wanted.
    pub const EMPTY: LargeCache = LargeCache {
        spans: [ptr::null_mut(); KEPT_COUNTS],
        len: [0; KEPT_COUNTS],
        limit: [0; KEPT_COUNTS],
        refused: 0,
        recent: 0,
        low: [0; KEPT_COUNTS],
        calls: 0,
        bytes: 0,
    };

    /// Spans kept, of every slice count.
    pub fn spans_kept(&self) -> usize {
        self.len.iter().map(|&n| n as usize).sum()
    }

    /// Bytes of the spans kept (free memory, counted as cached, not in use), read from
    /// any thread.
    ///
    /// # Safety
    /// `cache` is a heap's cache (heaps are never freed).
    pub unsafe fn kept_bytes(cache: *mut LargeCache) -> usize {
        // SAFETY: caller's contract; the owner writes the field atomically.
        unsafe { AtomicUsize::from_ptr(&raw mut (*cache).bytes) }.load(Ordering::Relaxed)
    }

    /// Adds `delta` (wrapping: a negative one as its two's complement) to `bytes`; the
    /// owner's write, a plain load and store.
    ///
    /// # Safety
    /// `cache` is the calling thread's heap's cache.
    unsafe fn add_bytes(cache: *mut LargeCache, delta: usize) {
        // SAFETY: caller's contract; only this thread writes the field.
        let b = unsafe { AtomicUsize::from_ptr(&raw mut (*cache).bytes) };
        b.store(
            b.load(Ordering::Relaxed).wrapping_add(delta),
            Ordering::Relaxed,
        );
    }
}

/// Allocates a large block of `slices` slices at alignment `align` (up to the slices'
/// room): a span the heap kept, or one from the central pool. Null when the OS refuses
/// memory.
pub(super) fn alloc(slices: usize, align: usize) -> *mut u8 {
    debug_assert!((1..=HUGE_THRESHOLD / SLICE_SIZE).contains(&slices));
    // The heap whose segments serve this thread first (set up now if the thread has
    // none: its first blocks may all be large); null for a thread that exited.
    let heap = counting_heap();
    let mut span = ptr::null_mut();
    if !heap.is_null() && slices <= KEPT_COUNTS {
        // SAFETY: `heap` is this thread's real heap.
        span = unsafe { take_cached(heap, slices) };
    }
    if span.is_null() {
        match CENTRAL.lock().take(slices, SpanKind::Large, heap as usize) {
            Some(s) => span = s,
            None => return ptr::null_mut(),
        }
    }
    let start = Segment::span_start(span) as usize;
    let p = (start + align - 1) & !(align - 1);
    // SAFETY: the span was just taken from the cache or the pool; it is ours alone.
    unsafe {
        (*span).owner = ptr::null_mut();
        // What `free` accepts for this span: exactly this pointer.
        (*span).grid_base = p | LIVE;
    }
    if heap.is_null() {
        stats::add(&GLOBAL.large_allocs, 1);
        stats::add(&GLOBAL.large_huge_bytes, slices * SLICE_SIZE);
    } else {
        // SAFETY: `heap` is this thread's real heap; only this thread writes its
        // counters.
        unsafe {
            stats::bump(&raw mut (*heap).stats.allocs[LARGE_SLOT]);
            stats::bump_by(
                &raw mut (*heap).stats.large_bytes,
                (slices * SLICE_SIZE) as u64,
            );
        }
    }
    p as *mut u8
}

/// Whether `p` is the live block of the large span `span`.
///
/// # Safety
/// `span` is a slice record of a live segment.
#[inline]
pub(super) unsafe fn is_live(span: *mut Span, p: usize) -> bool {
    // SAFETY: caller's contract; a live block's record is stable (a racy read of a
    // dead one only makes the answer false).
    unsafe { ptr::read_volatile(&raw const (*span).grid_base) == p | LIVE }
}

/// Usable bytes of the live large block `p` of `span`: to the end of its span.
///
/// # Safety
/// `p` is the live block of the large span `span`.
pub(super) unsafe fn usable(span: *mut Span, p: usize) -> usize {
    // SAFETY: caller's contract: a live large span's record is stable.
    Segment::span_start(span) as usize + unsafe { (*span).slice_count } as usize * SLICE_SIZE - p
}

/// Frees the large block `p` of `span` (a large or free span of a live segment):
/// claims it, then keeps its span or gives it back. Anything but a live block's start
/// is reported.
///
/// Out of line: inlined into `free_other`, whose common case (another heap's small
/// block) runs without a stack frame, it would make that case save and restore
/// registers (`xmalloc/t1` 1.4x slower, `prodcons` 1.1x).
///
/// # Safety
/// `span` is the head record `p`'s slice names, in a live segment, and not small.
#[inline(never)]
pub(super) unsafe fn free(p: *mut u8, span: *mut Span, op: Op) {
    let addr = p as usize;
    // SAFETY: caller's contract; a successful claim makes the span ours alone.
    unsafe {
        let claimed = (*span).kind == SpanKind::Large
            && AtomicUsize::from_ptr(&raw mut (*span).grid_base)
                .compare_exchange(addr | LIVE, 0, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        if !claimed {
            bad_large(span, addr, op);
        }
        let heap = counting_heap();
        if heap.is_null() {
            stats::add(&GLOBAL.large_frees, 1);
        } else {
            stats::bump(&raw mut (*heap).stats.frees[LARGE_SLOT]);
            note_call(heap);
            if keep(heap, span) {
                return;
            }
        }
        // Before the lock: starting the purger thread allocates (glibc's thread
        // records).
        crate::purger::ensure_started();
        CENTRAL.lock().give(span);
    }
}

/// Takes a kept span of `slices` slices (null if none) and notes that the count is
/// allocated. If the count has none but gave one back for lack of room since it last
/// took one from the pool, it keeps one more from now on (up to [`KEEP_BYTES`]): the
/// limit follows the swings of the count's live blocks, as `retain::grow_limit`.
///
/// # Safety
/// `heap` is the calling thread's real heap; `slices` is 1..=KEPT_COUNTS.
unsafe fn take_cached(heap: *mut Heap, slices: usize) -> *mut Span {
    // SAFETY: caller's contract.
    unsafe {
        note_call(heap);
        let cache = &raw mut (*heap).large;
        let i = slices - 1;
        let bit = 1u8 << i;
        (*cache).recent |= bit;
        let span = (*cache).spans[i];
        if span.is_null() {
            if (*cache).refused & bit != 0 {
                (*cache).refused &= !bit;
                let max = (KEEP_BYTES / (slices * SLICE_SIZE)).max(1) as u8;
                (*cache).limit[i] = ((*cache).limit[i] + 1).min(max);
            }
            return span;
        }
        (*cache).spans[i] = (*span).next;
        (*cache).len[i] -= 1;
        (*cache).low[i] = (*cache).low[i].min((*cache).len[i]);
        LargeCache::add_bytes(cache, (slices * SLICE_SIZE).wrapping_neg());
        (*span).next = ptr::null_mut();
        span
    }
}

/// Keeps the span of a large block just freed (claimed, so ours alone) if its slice
/// count has room (a count this thread does not allocate has none). Returns whether it
/// did.
///
/// # Safety
/// `heap` is the calling thread's real heap; `span` a claimed large span.
unsafe fn keep(heap: *mut Heap, span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let cache = &raw mut (*heap).large;
        let count = (*span).slice_count as usize;
        if count > KEPT_COUNTS {
            return false;
        }
        let i = count - 1;
        let bit = 1u8 << i;
        let bytes = (i + 1) * SLICE_SIZE;
        if (*cache).len[i] >= (*cache).limit[i]
            || LargeCache::kept_bytes(cache) + bytes > KEEP_TOTAL
        {
            // Full: if the count takes a span from the pool before one of these is
            // used, it needed more (`take_cached`).
            (*cache).refused |= bit;
            return false;
        }
        // The block was written: its memory no longer reads as zero.
        (*span).zero = false;
        (*span).next = (*cache).spans[i];
        (*cache).spans[i] = span;
        (*cache).len[i] += 1;
        LargeCache::add_bytes(cache, bytes);
        true
    }
}

/// Counts a large allocation or free: every `recent::WINDOW` of them the window moves
/// on. They do not move the slow-path windows of `recent`: a program that churns large
/// blocks would then give back the spans kept for its small classes three times as
/// often (`random_sizes.c 1 1000000 262144`: 2.5K -> 8.4K page faults).
///
/// # Safety
/// `heap` is the calling thread's real heap.
#[inline]
unsafe fn note_call(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        let cache = &raw mut (*heap).large;
        (*cache).calls = (*cache).calls.wrapping_add(1);
        if (*cache).calls.is_multiple_of(WINDOW) {
            roll_window(heap);
        }
    }
}

/// Moves the window on (every `recent::WINDOW` large calls or slow-path calls): gives
/// back, of each count, the spans that stayed kept through the whole window (its
/// low-water mark: more than its churn needed), and halves the limit of the counts
/// not allocated in it.
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively).
pub(super) unsafe fn roll_window(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        let cache = &raw mut (*heap).large;
        for i in 0..KEPT_COUNTS {
            if (*cache).recent & (1 << i) == 0 {
                (*cache).limit[i] /= 2;
            }
        }
        (*cache).recent = 0;
        (*cache).refused = 0;
        release(heap, (*cache).low);
        (*cache).low = (*cache).len;
    }
}

/// Gives back, of each count, as many of its kept spans as `counts` says (those kept
/// longest).
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively).
pub(super) unsafe fn release(heap: *mut Heap, counts: [u8; KEPT_COUNTS]) {
    // SAFETY: caller's contract; kept spans are claimed, in no other list.
    unsafe {
        let cache = &raw mut (*heap).large;
        let mut central = None;
        for (i, &n) in counts.iter().enumerate() {
            let n = n.min((*cache).len[i]);
            if n == 0 {
                continue;
            }
            // The list runs from the latest kept: keep its first `len - n`.
            let keep = (*cache).len[i] - n;
            let mut link = &raw mut (*cache).spans[i];
            for _ in 0..keep {
                link = &raw mut (**link).next;
            }
            let mut span = *link;
            *link = ptr::null_mut();
            (*cache).len[i] = keep;
            LargeCache::add_bytes(cache, (n as usize * (i + 1) * SLICE_SIZE).wrapping_neg());
            let central = central.get_or_insert_with(|| {
                // Before the lock: starting the thread allocates.
                crate::purger::ensure_started();
                CENTRAL.lock()
            });
            while !span.is_null() {
                let next = (*span).next;
                (*span).next = ptr::null_mut();
                central.give(span);
                span = next;
            }
        }
    }
}

/// Gives back every kept span (thread exit, trim), and forgets the limits: the next
/// thread to adopt the heap starts from none, as a new one, rather than keep spans for
/// the churn of a thread that is gone (`calloc-churn/t4`, threads spawned afresh each
/// round: peak RSS 34.0 -> 37.6 MiB with the limits kept, 5 alternating runs).
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively).
pub(super) unsafe fn release_all(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        release(heap, [u8::MAX; KEPT_COUNTS]);
        let cache = &raw mut (*heap).large;
        (*cache).limit = [0; KEPT_COUNTS];
        (*cache).refused = 0;
    }
}

/// Reports a free into a large or free span that is not its live block.
///
/// # Safety
/// `span` is the head record `p`'s slice names, in a live segment.
#[cold]
pub(super) unsafe fn bad_large(span: *mut Span, p: usize, op: Op) -> ! {
    check::not_ours_if_past_map(p, op);
    // SAFETY: caller's contract: the record is mapped; fields are read racily, for the
    // report only.
    unsafe {
        let seg = Segment::of(p);
        if (p - seg as usize) < FIRST_SLICE * SLICE_SIZE {
            misuse::not_a_block(p, op, "the address is in oxalloc's metadata");
        }
        let tagged = ptr::read_volatile(&raw const (*span).grid_base);
        let live = if tagged & LIVE != 0 {
            tagged & !LIVE
        } else {
            0
        };
        if (*span).kind == SpanKind::Large && live != 0 && (*span).head == span && p > live {
            let size = Segment::span_start(span) as usize
                + (*span).slice_count as usize * SLICE_SIZE
                - live;
            misuse::interior(p, live, size, op);
        }
        if p.is_multiple_of(SLICE_SIZE) {
            // Where a large block started: freed already (its span is free, cut up or
            // kept by a heap).
            misuse::double_free(p, 0, op);
        }
        misuse::not_a_block(p, op, "the address is in free memory")
    }
}
