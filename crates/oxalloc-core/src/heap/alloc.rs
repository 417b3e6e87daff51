//! Allocation: the fast path (pop the current span's free list), and the slow path
//! that moves a size class to another span: take remote frees, carve never-used
//! blocks, promote a queued span, or take a fresh one from the central pool.
#![allow(unsafe_code)]

use super::*;

/// Bytes carved from a span's fresh area at a time: one page, so a span costs resident
/// memory only as fast as it is used.
const CARVE_BYTES: usize = 4096;

/// Blocks carved at a time, at least, from a span an earlier user wrote (its pages are
/// resident already, so carving ahead costs no memory): with one block a carve, every
/// `malloc` of a class of 4 KiB or more took the slow path in spans that come and go
/// through the central pool (1000 blocks of 4 KiB allocated and freed in turn:
/// instructions -29%). From clean spans too, `power-law/t8` peaked 6% higher.
const CARVE_MIN_BLOCKS: usize = 4;

/// After this many fresh spans, a heap spends a moment collecting abandoned heaps.
const COLLECT_EVERY: u32 = 32;

/// Allocates `size` bytes, 16-byte aligned. Null with `errno = ENOMEM` when the OS
/// refuses memory.
#[inline]
pub fn alloc(size: usize) -> *mut u8 {
    if size <= DIRECT_MAX {
        // SAFETY: as in `alloc_small`; the direct entry is the current span of the
        // class of `size`, and the index is at most DIRECT_SLOTS - 1.
        unsafe {
            let heap = tls::heap();
            let span = *(&raw mut (*heap).direct)
                .cast::<*mut Span>()
                .add(direct_index(size));
            if (*span).free.is_null() {
                return alloc_slow(heap, SizeClass::of(size));
            }
            return pop(heap, span);
        }
    }
    if size <= MAX_SMALL {
        // SAFETY: tls::heap() is this thread's heap (or the empty placeholder) and
        // the class is valid.
        unsafe { alloc_small(tls::heap(), SizeClass::of(size)) }
    } else {
        alloc_large(size, 16)
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two).
pub fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    if align <= 16 {
        return alloc(size);
    }
    if align <= SLICE_SIZE {
        if let Some(c) = SizeClass::aligned(size, align) {
            // SAFETY: as in `alloc`; blocks of a class that is a multiple of `align`
            // are aligned because spans start on 64 KiB boundaries.
            return unsafe { alloc_small(tls::heap(), c) };
        }
    }
    alloc_large(size, align)
}

/// A small block of `size` bytes at `align` if its class's current span has one free
/// (the allocation fast path, which cannot fail); `None` otherwise, for the caller's
/// general path. `posix_memalign` tries it first: only the general path can fail and
/// set `errno`, so only it needs `errno` saved (a call to `__errno_location` and a
/// stack frame on every call: 22 of the ~80 instructions of `posix_memalign(64, ...)`).
#[inline]
pub fn try_alloc_small(size: usize, align: usize) -> Option<*mut u8> {
    if align > SLICE_SIZE {
        return None;
    }
    let c = SizeClass::aligned(size, align)?;
    // SAFETY: as in `alloc_small`: the current span is the empty sentinel (free list
    // null) or a span this heap owns, whose free list only we touch.
    unsafe {
        let heap = tls::heap();
        let span = (*bin(heap, c.index())).current;
        if (*span).free.is_null() {
            return None;
        }
        Some(pop(heap, span))
    }
}

/// The allocation fast path: pop the current span's free list.
///
/// # Safety
/// `heap` is the calling thread's heap (or `EMPTY_HEAP`) and `c` a valid class.
#[inline(always)]
pub unsafe fn alloc_small(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract. The current span is the empty sentinel (free list
    // null, never written) or a span this heap owns, whose free list only we touch.
    unsafe {
        let span = (*bin(heap, c.index())).current;
        if (*span).free.is_null() {
            return alloc_slow(heap, c);
        }
        pop(heap, span)
    }
}

/// Pops a block from a span known to have one, and takes its free key (see `Block`):
/// a block without it was freed twice (it sits on the list a second time, its key
/// taken by the first pop) or written after it was freed, and is not handed out.
///
/// # Safety
/// `span` is owned by `heap`, the calling thread's heap, and its free list is not
/// empty.
#[inline(always)]
unsafe fn pop(heap: *mut Heap, span: *mut Span) -> *mut u8 {
    // SAFETY: caller's contract.
    unsafe {
        let b = (*span).free;
        let next = (*b).next;
        (*span).free = next;
        // The next malloc of this class reads `next`'s first word: start loading its
        // line now (a block taken from a remote list was last written by another core).
        prefetch(next);
        // Wrapping: a kept list's count runs below zero (`foreign::kept_count`); the
        // same instruction either way.
        (*span).used = (*span).used.wrapping_add(1);
        (*span).live_sum = (*span).live_sum.wrapping_add(b as u64);
        stats::bump((*span).allocs.as_ptr());
        // One instruction checks and clears the key: `key - heap` is 0 exactly when
        // the key is there, and 0 is the in-use value (the compiler would load,
        // compare and store). The report is a tail call, so the fast path keeps no
        // stack frame. The block goes in rax, the return register, so the fast path
        // returns without a move (58 instructions per malloc/free pair, was 59).
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!(
            "sub qword ptr [rax + {key}], {heap}",
            "jz {ok}",
            in("rax") b,
            heap = in(reg) heap,
            key = const core::mem::offset_of!(Block, key),
            ok = label { return b.cast() },
            options(nostack),
        );
        #[cfg(not(target_arch = "x86_64"))]
        if (*b).key == heap {
            (*b).key = ptr::null_mut();
            return b.cast();
        }
        check::bad_pop(span, b)
    }
}

/// The allocation slow path: set up the thread, collect remote frees, carve fresh
/// blocks, move to another span, or take a new span from the central pool.
///
/// # Safety
/// As for [`alloc_small`].
#[cold]
#[inline(never)]
unsafe fn alloc_slow(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    // SAFETY: caller's contract.
    enomem_if_null(unsafe { alloc_slow_inner(heap, c) })
}

/// Sets `errno = ENOMEM` when an allocation failed, so the C `malloc` can return the
/// fast path's result as it is (a tail call, no check of its own).
#[inline(always)]
fn enomem_if_null(p: *mut u8) -> *mut u8 {
    if p.is_null() {
        oxalloc_sys::set_errno(oxalloc_sys::ENOMEM);
    }
    p
}

/// See [`alloc_slow`].
///
/// # Safety
/// As for [`alloc_small`].
unsafe fn alloc_slow_inner(heap: *mut Heap, c: SizeClass) -> *mut u8 {
    if is_empty_heap(heap) {
        let real = tls::init_thread();
        if real.is_null() {
            return tls::with_orphan_heap(|h| {
                // SAFETY: the orphan heap is ours while the closure runs.
                unsafe { alloc_small(h, c) }
            });
        }
        // SAFETY: `real` is now this thread's heap.
        return unsafe { alloc_small(real, c) };
    }
    // SAFETY: `heap` is this thread's heap (caller's contract); every span reached
    // through its bins is owned by it.
    unsafe {
        note_alloc_slow(heap, c);
        // The blocks this thread freed into other heaps' spans and kept for the class
        // first (see `foreign`): the thread's own frees, whose lines this core wrote
        // last. The current span's remote word, which other threads' frees keep
        // writing, is not read for them (`shared-slots/t8`: 0.299 -> 0.280 s, 15
        // alternating runs), nor are the remote lists drained first: drained into the
        // class's current span while its kept blocks are handed out, they would stop
        // the keeping (`foreign::keep`).
        if has_kept(heap, c) {
            return pop(heap, serve_kept(heap, c));
        }
        if !AtomicPtr::from_ptr(&raw mut (*heap).remote_spans)
            .load(Ordering::Relaxed)
            .is_null()
        {
            drain_remote(heap);
        }
        let bin = bin(heap, c.index());
        if (*heap).kept_serving >> c.0 & 1 != 0 {
            // The kept list ran dry: the direct table names the current span again.
            set_current(heap, c, (*bin).current);
        }
        loop {
            let span = (*bin).current;
            if span != empty_span() {
                if !(*span).free.is_null() || take_remote(span) {
                    return pop(heap, span);
                }
                // The list is empty: whatever fills it next, it holds no remote blocks.
                (*span).remote_in_free = false;
                // Blocks freed into another span of the class are memory already
                // touched: use them before carving (touching) fresh pages of this one,
                // which waits at the back of the partial list.
                let next = (*bin).partial;
                if !next.is_null() && !(*next).free.is_null() && has_fresh_block(span) {
                    (*span).used -= USED_CURRENT;
                    partial_push_set_aside(bin, span);
                    promote(heap, c, next);
                    continue;
                }
                // Blocks taken from other heaps go before fresh pages of this span.
                let b = take_foreign(heap, c, false);
                if !b.is_null() {
                    return b;
                }
                if carve(span) {
                    return pop(heap, span);
                }
                // Every block is out: park the span until a free brings it back. The
                // direct table keeps naming it (its free list is empty, so the fast
                // path comes back here) until the next current span is set, below:
                // one pass over the table per switch instead of two.
                (*span).used = ((*span).used - USED_CURRENT) | USED_FULL;
                (*bin).current = empty_span();
            }
            let next = (*bin).partial;
            if !next.is_null() {
                promote(heap, c, next);
                continue;
            }
            // Before a fresh span: blocks of this class that wait for other heaps.
            let b = take_foreign(heap, c, true);
            if !b.is_null() {
                // The direct table may still name the span parked above.
                set_current(heap, c, empty_span());
                return b;
            }
            let kept = take_retained(heap, c);
            if !kept.is_null() {
                set_current(heap, c, kept);
                continue;
            }
            grow_limit(heap, c);
            (*heap).keep_classes |= 1 << c.0;
            let fresh = take_small_span(heap, c);
            if fresh.is_null() {
                set_current(heap, c, empty_span());
                return ptr::null_mut();
            }
            set_current(heap, c, fresh);
        }
    }
}

/// Takes a span off the partial list of class `c` and makes it the current span.
///
/// # Safety
/// `heap` is the calling thread's heap and `span` is in its partial list of class `c`.
unsafe fn promote(heap: *mut Heap, c: SizeClass, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        order_by_address(span);
        partial_unlink(bin(heap, c.index()), span);
        (*span).used += USED_CURRENT;
        set_current(heap, c, span);
    }
}

/// Free lists shorter than this are left in the order they were freed: ordering costs
/// a pass over the list and a scan of a bitmap, worth it only if many blocks follow.
const ORDER_MIN_BLOCKS: usize = 64;

/// Granules of a span: one bit each in [`order_by_address`]. 16 bytes in a single-slice
/// span, 32 in a two-slice one (whose blocks are at least 640 bytes).
const ORDER_GRANULES: usize = SLICE_SIZE / 16;

/// Reorders the free list of a span of one or two slices by ascending address, so that the
/// blocks `malloc` hands out next lie one after another. A free list is LIFO: after a
/// while consecutive `malloc`s return blocks scattered over the span, and a program
/// that walks what it allocated in order (a garbage collector, a list, a tree) jumps
/// around and gets no help from the hardware prefetcher; Python ran 10% slower for it.
/// One pass over the list sets a bit per free block, one scan of the bitmap relinks
/// them: O(blocks), done when a span with many free blocks becomes current again.
///
/// # Safety
/// `span` is a small span owned by the calling thread's heap, neither current nor
/// parked (its `used` carries no flag).
unsafe fn order_by_address(span: *mut Span) {
    // SAFETY: caller's contract: the free list is ours, and every block on it lies in
    // the span at a multiple of the granule, so its granule index is below
    // ORDER_GRANULES.
    unsafe {
        // Blocks other threads freed: each link read is a line another core wrote
        // last, a miss per block before the first is handed out (`shared-slots/t8`: 5% of
        // its samples in this walk; CPU time 0.503 -> 0.471 s when skipped, 12
        // alternating runs). They are handed out in the order they came back instead.
        if (*span).remote_in_free {
            return;
        }
        // A granule holds at most one block's start, and every block starts on one (so
        // the bitmap gives back the block addresses). Spans of more slices hold blocks
        // of 10 KiB and up, few of them: their order matters little (and a two-slice
        // span of 5-8 KiB blocks holds fewer than ORDER_MIN_BLOCKS).
        let granule_shift = match (*span).slice_count {
            1 => 4,
            2 if (*span).block_size.is_multiple_of(32) => 5,
            _ => return,
        };
        // Blocks on the free list: carved ones not handed out (`used` has no flag on a
        // partial span), counted in bytes to spare a division and a walk.
        let start = Segment::span_start(span) as usize;
        let bs = (*span).block_size as usize;
        let carved_bytes = (*span).bump as usize - start;
        let free_bytes = carved_bytes.saturating_sub((*span).used as usize * bs);
        // And only a span at least half free: its free blocks then lie in runs, which
        // sorted come out one after another (Python's, after a collection: 87% of its
        // sorts were of spans seven eighths free or more). In a span mostly in use the
        // free blocks are scattered among live ones, sorting them buys little, and each
        // link read is a line the program has not touched lately: `table-replace/t1`
        // spent 6% of its time in the walk (88% of its sorts were of spans less than an
        // eighth free), `rust-hashmap` 3%.
        if free_bytes < ORDER_MIN_BLOCKS * bs || free_bytes * 2 < carved_bytes {
            return;
        }
        // A list that starts in address order is left as it is: blocks freed from the
        // highest address down (a program freeing what it allocated, last first) come
        // back lowest first already, and the pass would read a line per block for
        // nothing (a MicroQuill sh6bench-like program: 15% of its time). A list
        // scrambled by its frees almost never starts with SORTED_PROBE ascending blocks.
        if starts_ascending((*span).free) {
            return;
        }
        // The walk below is a chain of dependent loads, a line each, in the order the
        // blocks were freed: ask for every carved line first, so that the misses
        // overlap instead of following one another (a span at least half free: most of
        // these lines are handed out soon). 4M 48-byte blocks, 90% freed at random,
        // then freed and allocated at random: the walk was 86% of `alloc_slow`.
        let mut line = start;
        while line < (*span).bump as usize {
            prefetch(line as *mut Block);
            line += 64;
        }
        let mut bits = [0u64; ORDER_GRANULES / 64];
        let mut b = (*span).free;
        while !b.is_null() {
            let g = (b as usize - start) >> granule_shift;
            if bits[g / 64] & (1 << (g % 64)) != 0 {
                // On the list twice (freed twice): the list loops from here.
                check::on_list_twice(span, b, "malloc");
            }
            bits[g / 64] |= 1 << (g % 64);
            b = (*b).next;
        }
        let mut head: *mut Block = ptr::null_mut();
        let mut tail: *mut Block = ptr::null_mut();
        for (w, &word) in bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let g = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let blk = (start + (g << granule_shift)) as *mut Block;
                if tail.is_null() {
                    head = blk;
                } else {
                    (*tail).next = blk;
                }
                tail = blk;
            }
        }
        if !tail.is_null() {
            (*tail).next = ptr::null_mut();
        }
        (*span).free = head;
    }
}

/// Links [`starts_ascending`] follows.
const SORTED_PROBE: usize = 8;

/// Whether the first [`SORTED_PROBE`] blocks of a free list lie at ascending addresses.
///
/// # Safety
/// `b` heads a free list of the caller's heap at least `SORTED_PROBE` blocks long.
unsafe fn starts_ascending(mut b: *mut Block) -> bool {
    // SAFETY: caller's contract: every link followed is a block of the list.
    unsafe {
        for _ in 1..SORTED_PROBE {
            let next = (*b).next;
            if next <= b {
                return false;
            }
            b = next;
        }
        true
    }
}

/// The address just past a span's last byte. Blocks are carved from the start at
/// multiples of the block size, so the never-used blocks are the whole ones between
/// `bump` and here.
///
/// # Safety
/// `span` is a small span owned by the caller's heap.
unsafe fn span_end(span: *mut Span) -> usize {
    // SAFETY: caller's contract.
    unsafe { Segment::span_start(span) as usize + (*span).slice_count as usize * SLICE_SIZE }
}

/// Whether a span has a never-used block left.
///
/// # Safety
/// As for [`span_end`].
unsafe fn has_fresh_block(span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe { (*span).bump as usize + (*span).block_size as usize <= span_end(span) }
}

/// Links up to [`CARVE_BYTES`] (at least one block, or [`CARVE_MIN_BLOCKS`] in a span
/// written before) of a span's never-used area into its free list. No division: for
/// the biggest classes this runs once per block or few (a thousand 4 KiB blocks
/// allocated and freed in turn: the division was 28% of `alloc_slow`).
///
/// # Safety
/// `span` is a small span owned by the caller's heap, with an empty free list.
unsafe fn carve(span: *mut Span) -> bool {
    // SAFETY: caller's contract; the carved blocks lie inside the span.
    unsafe {
        if !has_fresh_block(span) {
            return false; // the common case once a span is fully carved
        }
        let bs = (*span).block_size as usize;
        let first = (*span).bump;
        // Blocks wholly below `stop`; the first one is (`has_fresh_block`).
        let ahead = if (*span).zero {
            bs
        } else {
            CARVE_MIN_BLOCKS * bs
        };
        let stop = span_end(span).min(first as usize + CARVE_BYTES.max(ahead));
        let owner = (*span).owner;
        let mut b = first;
        let mut n = 1;
        loop {
            let next = b.wrapping_add(bs);
            // Carved blocks are free blocks: they carry the key, so freeing one that
            // was never handed out in this span's life is caught like a double free.
            (*b.cast::<Block>()).key = owner;
            if next as usize + bs > stop {
                (*b.cast::<Block>()).next = ptr::null_mut();
                break;
            }
            (*b.cast::<Block>()).next = next.cast();
            b = next;
            n += 1;
        }
        (*span).free = first.cast();
        (*span).bump = first.add(n * bs);
        // Frees may now name these blocks.
        Span::grow_grid(span, n, bs);
        true
    }
}

/// Gives back the pages of a small span past its carved blocks if an earlier user of
/// the span may have written them (it was taken dirty: `zero` is false), and marks them
/// clean. With `idle_at: Some(now)` (a thread exit), only if the span has carved
/// nothing for a purge delay: since an earlier exit that found `bump` where it is now.
///
/// Carving touches pages only as blocks are needed, but a span that comes back from
/// the central pool for another class or heap is resident as far as any earlier user
/// carved it, and a heap that keeps it with a few blocks carved holds those pages for
/// nothing, out of the page-return policy's reach. With threads that come and go while
/// others allocate (`thread-churn/t8`), such tails were 12-16 MiB of a 42 MiB peak.
/// Purging them at every exit took that peak to 26 MiB but faulted most pages in again
/// where spans are carved on by the next thread or empty soon (`calloc-churn/t4`: 9K
/// -> 45K faults, 1.3x the time); waiting for the purge delay, as free spans do, keeps
/// that row as it was and `thread-churn/t8` at 28 MiB.
///
/// # Safety
/// `span` is a small span of a heap the caller owns (so no one carves it meanwhile).
pub(super) unsafe fn purge_tail(span: *mut Span, idle_at: Option<u64>) {
    // SAFETY: caller's contract: every block lies below `bump`, so no one reads or
    // writes the pages from the first page boundary at or past it.
    unsafe {
        if (*span).zero {
            return;
        }
        if let Some(now) = idle_at {
            if (*span).bump != (*span).bump_at_exit {
                (*span).bump_at_exit = (*span).bump;
                (*span).bump_since_ns = now;
                return;
            }
            if now.wrapping_sub((*span).bump_since_ns) < crate::page_return::delay_ns() {
                return;
            }
        }
        let from = ((*span).bump as usize).next_multiple_of(oxalloc_sys::kernel_page_size());
        let end = span_end(span);
        if from < end {
            if !oxalloc_sys::discard(from as *mut u8, end - from) {
                return; // refused: the pages keep what they held
            }
            stats::add(&GLOBAL.purged_bytes, end - from);
            stats::add(&GLOBAL.purge_calls, 1);
        }
        (*span).zero = true;
    }
}

/// Takes a span for class `c`, one this heap emptied (`Heap::emptied`) or one from the
/// central pool, and makes it this heap's.
///
/// Out of line: inlined, the class's block size, span length and bounds (arithmetic on
/// the class index, some 90 instructions) were hoisted to the top of `alloc_slow` and
/// computed on every call, though a fresh span is taken on under 1% of them.
///
/// # Safety
/// `heap` is the calling thread's heap.
#[cold]
#[inline(never)]
unsafe fn take_small_span(heap: *mut Heap, c: SizeClass) -> *mut Span {
    // SAFETY: caller's contract.
    unsafe {
        (*heap).fresh_spans = (*heap).fresh_spans.wrapping_add(1);
        if (*heap).fresh_spans.is_multiple_of(COLLECT_EVERY) {
            tls::collect_one_abandoned();
        }
    }
    let slices = c.span_slices();
    let mut span = ptr::null_mut();
    if slices <= span_cache::KEPT_COUNTS {
        // SAFETY: `heap` is the calling thread's heap.
        span = unsafe { span_cache::take(&raw mut (*heap).emptied, slices) };
    }
    if span.is_null() {
        match CENTRAL.lock().take(slices, SpanKind::Small, heap as usize) {
            Some(s) => span = s,
            None => return ptr::null_mut(),
        }
    }
    let bs = c.size();
    let start = Segment::span_start(span);
    // SAFETY: the span was just taken from the cache or the pool; it is ours alone.
    unsafe {
        (*span).class = c.0;
        (*span).block_size = bs as u32;
        (*span).class_lo = c.smallest_request() as u64;
        (*span).class_range = (bs - c.smallest_request()) as u64;
        (*span).owner = heap;
        (*span).free = ptr::null_mut();
        (*span).used = USED_CURRENT;
        (*span).live_sum = 0;
        (*span).remote_in_free = false;
        (*span).remote_sum.store(0, Ordering::Relaxed);
        (*span).allocs.store(0, Ordering::Relaxed);
        (*span).bump = start;
        (*span).bump_at_exit = ptr::null_mut();
        Span::reset_grid(span, start as usize, bs);
        (*span).next = ptr::null_mut();
        (*span).prev = ptr::null_mut();
    }
    span
}

/// Allocates a large block (a whole span) or a huge one (from the huge page heap);
/// null with `errno = ENOMEM` on failure.
#[inline(never)]
fn alloc_large(size: usize, align: usize) -> *mut u8 {
    enomem_if_null(alloc_large_inner(size, align))
}

/// See [`alloc_large`].
fn alloc_large_inner(size: usize, align: usize) -> *mut u8 {
    // Refuse what no 47-bit address space can hold before any size arithmetic.
    if size > 1 << 46 {
        return ptr::null_mut();
    }
    // At least one byte: with a big alignment and size 0, the aligned pointer could
    // otherwise land on the first byte after the span, inside its neighbour.
    let size = size.max(1);
    let extra = align.saturating_sub(SLICE_SIZE);
    let Some(need) = size.checked_add(extra) else {
        return ptr::null_mut();
    };
    if need >= HUGE_THRESHOLD {
        let p = huge::alloc(size, align);
        if !p.is_null() {
            count_alloc(HUGE_SLOT);
        }
        return p;
    }
    large::alloc(need.div_ceil(SLICE_SIZE), align)
}

fn count_alloc(slot: usize) {
    let h = counting_heap();
    if !h.is_null() {
        // SAFETY: `h` is this thread's real heap; only this thread writes its counters.
        unsafe { stats::bump(&raw mut (*h).stats.allocs[slot]) };
    }
}

/// Allocates zeroed memory, skipping the memset where the memory is known to be fresh.
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if size <= MAX_SMALL && align <= 16 {
        // A small block: never known to read as zero (only large and huge ones are), so
        // no lookup of its span for it (`calloc(1, 16..512)`: 13 of its ~46
        // instructions before the memset).
        let p = alloc(size);
        if !p.is_null() {
            // SAFETY: p was just allocated with at least `size` usable bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        return p;
    }
    let p = alloc_aligned(size, align);
    if p.is_null() {
        return p;
    }
    // SAFETY: p was just allocated with at least `size` usable bytes.
    unsafe {
        if !is_known_zero(p) {
            ptr::write_bytes(p, 0, size);
        }
    }
    p
}

/// Whether a freshly allocated block is known to read as zero.
///
/// # Safety
/// `p` was just returned by this allocator and not written yet.
unsafe fn is_known_zero(p: *mut u8) -> bool {
    let addr = p as usize;
    match SEGMENT_MAP.owner(addr) {
        // SAFETY: caller's contract; the header of a live huge block is mapped.
        Owner::Huge => unsafe { huge::is_zero(p) },
        Owner::Normal => {
            // SAFETY: caller's contract; p lies in a live segment.
            let span = unsafe { Segment::span_of(Segment::of(addr), addr) };
            // SAFETY: a large span is ours alone until it is freed.
            unsafe { (*span).kind == SpanKind::Large && (*span).zero }
        }
        Owner::Foreign => false,
    }
}
