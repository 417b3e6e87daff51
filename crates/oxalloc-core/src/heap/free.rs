//! Free: the owner's fast path (push on the span's free list, one `dec`), its slow
//! path (a span came back from full, or emptied), and the dispatch of blocks this
//! thread does not own (another heap's, large, huge, foreign).
#![allow(unsafe_code)]

use super::*;

fn count_free(slot: usize) {
    let h = counting_heap();
    if !h.is_null() {
        // SAFETY: `h` is this thread's real heap; only this thread writes its counters.
        unsafe { stats::bump(&raw mut (*h).stats.frees[slot]) };
    }
}

/// Frees a block; a misuse (double free, a pointer that is not a live block) is
/// reported (see `misuse`).
///
/// # Safety
/// `p` is null, or was returned by this allocator and not freed since.
#[inline]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { free_with(p, Op::Free) }
}

/// [`free`] on behalf of `op`, the call named in a report.
///
/// The fast path frees a small block when the span is this thread's, the pointer is a
/// carved block's start (`Span::on_grid`: a multiply and a compare) and not the head of
/// the span's free list (a double free at once); anything else goes to `free_other`,
/// which also sorts out the misuses (`check`). The block itself is only written, never
/// read: a free of a block the CPU does not have in cache then costs no wait. A block
/// freed twice otherwise is caught when it would be handed out again (`alloc::pop`
/// finds its free key gone) or when its span empties (`check::verify_empty`).
///
/// # Safety
/// As for [`free`].
#[inline(always)]
pub unsafe fn free_with(p: *mut u8, op: Op) {
    let addr = p as usize;
    let Some(seg) = SEGMENT_MAP.normal_segment(addr) else {
        // SAFETY: caller's contract.
        return unsafe { free_not_normal(p, op) };
    };
    // SAFETY: the map says p's segment is a live normal segment, so its span record is
    // mapped; if the span is this thread's and p one of its carved blocks, the block is
    // mapped and only we touch the span's free list.
    unsafe {
        let span = Segment::span_of(seg, addr);
        let heap = tls::heap();
        let b = p.cast::<Block>();
        if frees_locally(span, heap, addr) {
            free_local(heap, span, b);
        } else {
            free_other(p, span, heap, op);
        }
    }
}

/// The fast path's test, shared by [`free_with`] and [`free_sized`]: the span is this
/// thread's, `p` is the start of one of its carved blocks, and not the head of its free
/// list (that would be a second free at once).
///
/// # Safety
/// `span` is the head record `p`'s slice names, in a live normal segment; `heap` is the
/// calling thread's heap.
#[inline(always)]
pub(super) unsafe fn frees_locally(span: *mut Span, heap: *mut Heap, p: usize) -> bool {
    // SAFETY: caller's contract: the record is mapped; the grid fields are the owner's
    // to read plainly when the owner test passed first.
    unsafe {
        (*span).owner == heap && Span::on_grid_owner(span, p) && (*span).free != p as *mut Block
    }
}

/// A sized free (`free_sized`, `free_aligned_sized`, `GlobalAlloc::dealloc`): [`free`]
/// that also checks `size` and `align` against the block. The size is never trusted
/// (the span says the block's size), so a wrong one does no harm, but one of another
/// size class is reported. The fast path checks that the size maps to the span's class
/// (a subtract and a compare: `Span::class_lo`); `check::check_sized` looks closer at
/// the rest (sizes an in-place `realloc` left, over-aligned requests, large and huge
/// blocks, other threads' blocks).
///
/// # Safety
/// As for [`free`].
#[inline(always)]
pub unsafe fn free_sized(p: *mut u8, size: usize, align: usize, op: Op) {
    let addr = p as usize;
    if let Some(seg) = SEGMENT_MAP.normal_segment(addr) {
        // SAFETY: as in `free_with`.
        unsafe {
            let span = Segment::span_of(seg, addr);
            let heap = tls::heap();
            let b = p.cast::<Block>();
            if frees_locally(span, heap, addr)
                && (size as u64).wrapping_sub((*span).class_lo) <= (*span).class_range
            {
                return free_local(heap, span, b);
            }
        }
    }
    // SAFETY: caller's contract.
    unsafe { free_sized_checked(p, size, align, op) }
}

/// [`free_sized`] past its fast path, out of line: the checks would otherwise be
/// inlined into every caller (Rust's `__rust_dealloc`), which then saves registers on
/// every call.
///
/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe fn free_sized_checked(p: *mut u8, size: usize, align: usize, op: Op) {
    // SAFETY: caller's contract.
    unsafe {
        check::check_sized(p, size, align, op);
        free_with(p, op);
    }
}

/// Pushes a block on its span's free list; the owner's path.
///
/// # Safety
/// `span` is owned by `heap`, the calling thread's heap, and `b` is one of its blocks.
#[inline(always)]
pub(super) unsafe fn free_local(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract.
    unsafe {
        (*b).next = (*span).free;
        (*b).key = heap;
        (*span).free = b;
        (*span).live_sum = (*span).live_sum.wrapping_sub(b as u64);
        release_one(heap, span);
    }
}

/// Takes one block off a span's `used` after a local free, and goes to the slow path
/// when [`free_needs_slow_path`] says so.
///
/// # Safety
/// As for [`free_local`], with the block already on the span's free list.
#[inline(always)]
unsafe fn release_one(heap: *mut Heap, span: *mut Span) {
    // On x86-64 one `dec` on memory whose flags feed the branch: the compiler would
    // load, decrement, store and test (three more instructions on every free).
    // `jle` after `dec` is taken when the result is <= 0 as a signed number (or the old
    // value was i32::MIN, which `used` never is: a parked span has blocks in use).
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `used` is a u32 of a span only this thread writes (caller's contract);
    // the instruction touches nothing else and leaves the stack alone.
    unsafe {
        core::arch::asm!(
            "dec dword ptr [{span} + {used}]",
            "jle {slow}",
            span = in(reg) span,
            used = const core::mem::offset_of!(Span, used),
            // SAFETY: the span is this thread's and its count says so (see above).
            slow = label { unsafe { free_local_slow(heap, span) } },
            options(nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above.
    unsafe {
        let used = (*span).used.wrapping_sub(1);
        (*span).used = used;
        if free_needs_slow_path(used) {
            free_local_slow(heap, span);
        }
    }
}

/// A local free emptied the span or freed a block of a parked (full) span.
///
/// Most frees into a parked span leave it parked, and in a table of long-lived blocks
/// replaced at random half the frees are such frees (a C++ program replacing
/// `shared_ptr`s at random: 1.04M of 2M). They return from this leaf, which saves no
/// register and calls nothing; the rest go on to [`free_local_slow_inner`] (a jump).
///
/// # Safety
/// As for [`free_local`].
#[cold]
#[inline(never)]
pub(super) unsafe fn free_local_slow(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        if (*span).used & USED_FULL != 0 && stays_parked(span) {
            return;
        }
        free_local_slow_inner(heap, span)
    }
}

/// [`free_local_slow`] past the parked span that stays parked.
///
/// # Safety
/// As for [`free_local`].
#[inline(never)]
unsafe fn free_local_slow_inner(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract: the span and its bin are this thread's.
    unsafe {
        let parked = (*span).used & USED_FULL != 0;
        check::check_count(span);
        note_slow(heap);
        let c = SizeClass((*span).class);
        let bin = bin(heap, c.index());
        // A span on the remote stack stays until the drain has taken it off; the drain
        // then finds it empty and releases it.
        if parked {
            (*span).used &= !USED_FULL;
            if (*span).used == 0 && may_release(span) {
                retain_or_release(heap, c, span);
            } else {
                partial_push(bin, span);
            }
        } else if (*span).used == 0 && (*bin).current != span && may_release(span) {
            partial_unlink(bin, span);
            retain_or_release(heap, c, span);
        }
    }
}

/// Free blocks a parked (full) span gathers before it goes back on the partial list:
/// this many, or a sixteenth of its blocks if that is fewer (a span of 16 blocks or
/// fewer comes back at its first free block, as before).
///
/// Going back at the first free block made a span change lists at every block when a
/// class's spans are full of long-lived blocks and a few short-lived ones come and go
/// (a program that keeps 50K blocks and replaces a few dozen others at random, sizes
/// 8..520): the current span ran dry, the next one had the single block just freed into
/// it, and the span parked a moment ago came back with the next free; 15% of `malloc`s
/// and of `free`s took the slow path. With the threshold a span becomes current with
/// blocks enough to ride out such churn. What it costs: up to this many free blocks per
/// parked span wait for more frees before they are used again (`thread-churn/t8` peak
/// RSS +2%; with a quarter of the span instead of a sixteenth, +12%).
const UNPARK_BLOCKS: usize = 8;

/// Whether a parked span stays parked after a free: it still holds a block in use and
/// fewer than [`UNPARK_BLOCKS`] free ones (nor a sixteenth of its blocks). The block
/// freed stays on its free list, which no `malloc` reads while it is parked.
///
/// # Safety
/// `span` is a parked small span of the calling thread's heap (`USED_FULL` set), fully
/// carved (only a span with no block left to carve is parked).
#[inline]
unsafe fn stays_parked(span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let used = ((*span).used & !USED_FULL) as usize;
        let bs = (*span).block_size as usize;
        let carved = (*span).bump as usize - Segment::span_start(span) as usize;
        let free_bytes = carved.saturating_sub(used * bs);
        used != 0 && free_bytes < (UNPARK_BLOCKS * bs).min(carved / 16)
    }
}

/// An emptied span, in no list: kept for the class's next span (`retain`), or for the
/// heap's next span of any class ([`keep_or_release`]).
///
/// # Safety
/// `heap` is the calling thread's heap, owning `span`, of class `c`.
unsafe fn retain_or_release(heap: *mut Heap, c: SizeClass, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        if !retain(heap, c, span) {
            keep_or_release(heap, span);
            release_idle_current(heap, c);
        }
    }
}

/// An emptied span, in no list: kept in the heap's cache of emptied spans
/// (`Heap::emptied`) for its next span of the same length, of any class, or given back
/// to the central pool if the cache has no room.
///
/// Why: a program that allocates a thousand blocks of one size and frees them all, in
/// rounds, empties every span it filled in each round and takes them again in the
/// next: each a trip through the pool's lock, its search and its page-return books
/// (~1000 instructions a span), and with four threads on two cores a wait for the lock.
/// mimalloc's freed pages go back to segments its thread owns, tcmalloc's objects to
/// a thread cache.
///
/// Only spans of the classes above 1 KiB (64 blocks a slice or fewer) are kept: the
/// trip costs them 15 instructions a block and more, a dense class's span under 8, and
/// spans a heap keeps are memory other threads cannot use (`batch-ring/t4`, a new size
/// of 8-1008 bytes each round: peak RSS +13%, time +16% with every class's kept). Nor
/// is a span whose free list holds blocks other threads freed: its blocks are handed
/// out elsewhere and freed here, so the threads that allocate are others, and the pool
/// serves them (`xchurn/t2` peaked 10% higher with such spans kept).
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively), owning `span`.
unsafe fn keep_or_release(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        if SizeClass((*span).class).dense()
            || (*span).remote_in_free
            || !span_cache::keep(&raw mut (*heap).emptied, span)
        {
            release_span(span);
        } else {
            check::verify_empty(span);
            flush_allocs(span);
            Span::clear_grid(span);
        }
    }
}

/// A span of this class just went back whole; if the class's current span holds no
/// block and no other span has any, the class is idle in this heap: its current span
/// goes back too, so a program that frees everything after a burst keeps no carved
/// pages per size class.
///
/// # Safety
/// `heap` is the calling thread's heap and `c` a valid class.
unsafe fn release_idle_current(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract: the bin and its spans are this thread's.
    unsafe {
        if (*bin(heap, c.index())).partial.is_null() {
            release_current_if_empty(heap, c);
        }
    }
}

/// Gives the current span of class `c` back to the central pool if it holds no block.
///
/// # Safety
/// `heap` is the calling thread's heap (or held exclusively) and `c` a valid class.
pub(super) unsafe fn release_current_if_empty(heap: *mut Heap, c: SizeClass) {
    // SAFETY: caller's contract: the bin and its spans are this heap's.
    unsafe {
        let cur = (*bin(heap, c.index())).current;
        if cur != empty_span() && (*cur).used == USED_CURRENT && may_release(cur) {
            set_current(heap, c, empty_span());
            (*cur).used = 0;
            keep_or_release(heap, cur);
        }
    }
}

/// A free the fast path did not take: another thread's small block, a large block, a
/// block carrying the free key, or something invalid (reported).
///
/// The common case, another heap's small block gathered into a pending chain, runs
/// without a stack frame: every other case is a tail call (saving and restoring the
/// registers they need cost 10 of its 33 instructions).
///
/// # Safety
/// `span` is the head record `p`'s slice names, in a live segment.
#[cold]
#[inline(never)]
unsafe fn free_other(p: *mut u8, span: *mut Span, heap: *mut Heap, op: Op) {
    let addr = p as usize;
    // SAFETY: caller's contract. A small span with a live block (p, once checked) keeps
    // its kind and owner until that block is freed.
    unsafe {
        if (*span).kind != SpanKind::Small {
            return large::free(p, span, op);
        }
        check::check_grid(span, addr, op);
        let owner = (*span).owner;
        let b = p.cast::<Block>();
        if owner == heap {
            return free_own_block(heap, span, b, op);
        }
        (*b).key = owner;
        if is_empty_heap(heap) || (*span).block_size > PENDING_BLOCK_MAX {
            return free_remote_one(heap, owner, span, b);
        }
        stats::bump(&raw mut (*heap).stats.remote_frees);
        // One bit test: a thread that only frees (a consumer) pays these four
        // instructions and nothing else for keeping.
        if (*heap).keep_classes >> (*span).class & 1 != 0 {
            return keep_or_gather(heap, span, b);
        }
        gather(heap, span, b);
    }
}

/// [`free_other`] of another heap's small block of a class this heap keeps blocks of
/// (`foreign::keep`): kept for this thread's next allocation of the class if there is
/// room, else gathered for its owner. Out of line, so that the test costs the common
/// path no registers.
///
/// # Safety
/// As for [`gather`]; `b` carries its owner's free key.
#[cold]
#[inline(never)]
unsafe fn keep_or_gather(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract.
    unsafe {
        let c = SizeClass((*span).class);
        let limit = chain_limit(span);
        if !foreign::keep(heap, c, b, b, 1, limit) {
            if foreign::kept_full(heap, c, limit) {
                // Not inside `keep`: a chain being handed over calls it too, and this
                // gathers blocks.
                foreign::kept_list_full(heap, c);
            }
            gather(heap, span, b);
        }
    }
}

/// [`free_other`] of a block of this heap's own span that the fast path passed by (the
/// head of the free list: freed twice at once; or a block of a parked span).
///
/// # Safety
/// `span` is a small span of `heap`, the calling thread's heap, and `b` one of its
/// carved blocks.
#[inline(never)]
unsafe fn free_own_block(heap: *mut Heap, span: *mut Span, b: *mut Block, op: Op) {
    // SAFETY: caller's contract.
    unsafe {
        if (*span).free == b {
            misuse::double_free(b as usize, (*span).block_size as usize, op);
        }
        free_local(heap, span, b);
    }
}

/// [`free_other`] of another heap's block pushed alone on its span's remote list: from
/// a thread without a heap, or a block too big to gather.
///
/// # Safety
/// `span` is a small span of the live heap `owner`, `b` one of its blocks in use, its
/// free key set; `heap` the calling thread's heap (maybe `EMPTY_HEAP`).
#[inline(never)]
unsafe fn free_remote_one(heap: *mut Heap, owner: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract.
    unsafe {
        push_remote(owner, span, b, b, 1, b as u64);
        if is_empty_heap(heap) {
            stats::add(&GLOBAL.remote_frees, 1);
        } else {
            stats::bump(&raw mut (*heap).stats.remote_frees);
        }
    }
}

/// A free outside the normal segments: a huge block, or a pointer that is not ours.
///
/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe fn free_not_normal(p: *mut u8, op: Op) {
    match SEGMENT_MAP.owner(p as usize) {
        // SAFETY: caller's contract.
        Owner::Huge => unsafe { free_huge(p, op) },
        _ => free_foreign(p, op),
    }
}

/// Frees a huge block.
///
/// # Safety
/// `p` is in a granule the map marks huge.
unsafe fn free_huge(p: *mut u8, op: Op) {
    // SAFETY: caller's contract.
    if unsafe { huge::free(p) } {
        count_free(HUGE_SLOT);
    } else {
        bad_huge(p as usize, op);
    }
}

/// Reports a pointer into a huge region that is not a live block.
#[cold]
pub(super) fn bad_huge(p: usize, op: Op) -> ! {
    match huge::classify(p) {
        huge::NotABlock::FreedBlock => misuse::double_free(p, 0, op),
        huge::NotABlock::Interior { block, .. } => misuse::interior(p, block, 0, op),
        huge::NotABlock::FreeMemory => misuse::not_a_block(
            p,
            op,
            "the address is in free memory (a block freed before and merged with its neighbours?)",
        ),
        huge::NotABlock::Metadata => {
            misuse::not_a_block(p, op, "the address is in oxalloc's metadata")
        }
    }
}

/// A pointer the segment map does not know: see `misuse::not_ours`.
#[cold]
#[inline(never)]
fn free_foreign(p: *mut u8, op: Op) {
    misuse::not_ours(p as usize, op);
}

/// Adds the allocations a small span counted to its owner's counters, before the span
/// leaves its class.
///
/// # Safety
/// `span` is a small span of the calling thread's heap (or of one held exclusively).
unsafe fn flush_allocs(span: *mut Span) {
    // SAFETY: caller's contract; the owner's counters are written by its thread only.
    unsafe {
        let owner = (*span).owner;
        let n = (*span).allocs.swap(0, Ordering::Relaxed);
        if stats::COUNTING && n != 0 && !owner.is_null() {
            let c = stats::slot(&raw mut (*owner).stats.allocs, (*span).class as usize);
            AtomicU64::from_ptr(c).fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Gives an empty small span back to the central pool.
///
/// # Safety
/// `span` is a small span with no used block, in none of its heap's lists.
pub(super) unsafe fn release_span(span: *mut Span) {
    // SAFETY: caller's contract; the owner is the calling thread's heap, whose
    // counters only this thread writes.
    unsafe {
        check::verify_empty(span);
        flush_allocs(span);
        (*span).owner = ptr::null_mut();
        (*span).free = ptr::null_mut();
        CENTRAL.lock().give(span);
    }
    crate::purger::ensure_started();
}
