//! Free: the owner's fast path (push on the span's free list, one `dec`), its slow
//! path (a span came back from full, or emptied), and the dispatch of blocks this
//! thread does not own (another heap's, large, huge, foreign).
#![allow(unsafe_code)]

use super::*;

fn count_free(slot: usize) {
    let h = tls::heap();
    if !is_empty_heap(h) {
        // SAFETY: `h` is this thread's real heap; only this thread writes its counters.
        unsafe { stats::bump(&raw mut (*h).stats.frees[slot]) };
    }
}

/// Frees a block. Pointers that are not ours are ignored (and counted).
///
/// # Safety
/// `p` is null, or was returned by this allocator and not freed since.
#[inline]
pub unsafe fn free(p: *mut u8) {
    let addr = p as usize;
    match SEGMENT_MAP.owner(addr) {
        Owner::Normal => {}
        // SAFETY: caller's contract.
        Owner::Huge => return unsafe { free_huge(p) },
        Owner::Foreign => return free_foreign(p),
    }
    // SAFETY: the map says p's segment is a live normal segment; the span record is
    // valid, and if its owner is this thread's heap, only we touch its free list.
    unsafe {
        let span = Segment::span_of(Segment::of(addr), addr);
        let heap = tls::heap();
        if (*span).owner == heap {
            free_local(heap, span, p.cast());
        } else {
            free_other(heap, span, p);
        }
    }
}

/// Pushes a block on its span's free list; the owner's path.
///
/// # Safety
/// `span` is owned by `heap`, the calling thread's heap, and `b` is one of its blocks.
#[inline(always)]
unsafe fn free_local(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract.
    unsafe {
        (*b).next = (*span).free;
        (*span).free = b;
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

/// A local free emptied the span or brought a full span back.
///
/// # Safety
/// As for [`free_local`].
#[cold]
#[inline(never)]
pub(super) unsafe fn free_local_slow(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract: the span and its bin are this thread's.
    unsafe {
        let c = SizeClass((*span).class);
        let bin = bin(heap, c.index());
        // A span on the remote stack stays until the drain has taken it off; the drain
        // then finds it empty and releases it.
        if (*span).used & USED_FULL != 0 {
            (*span).used &= !USED_FULL;
            if (*span).used == 0 && may_release(span) {
                release_span(span);
                release_idle_current(heap, c);
            } else {
                partial_push(bin, span);
            }
        } else if (*span).used == 0 && (*bin).current != span && may_release(span) {
            partial_unlink(bin, span);
            release_span(span);
            release_idle_current(heap, c);
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
            release_span(cur);
        }
    }
}

/// A free of a block this thread does not own: another thread's small block, a large
/// block, or something invalid.
///
/// # Safety
/// `span` is the span record for `p` in a live segment.
#[cold]
#[inline(never)]
unsafe fn free_other(heap: *mut Heap, span: *mut Span, p: *mut u8) {
    // SAFETY: caller's contract. The span has a live block (p), so its kind and owner
    // cannot change under us.
    unsafe {
        match (*span).kind {
            SpanKind::Small => {
                if is_empty_heap(heap) {
                    push_remote((*span).owner, span, p.cast(), p.cast(), 1);
                    stats::add(&GLOBAL.remote_frees, 1);
                    return;
                }
                stats::bump(&raw mut (*heap).stats.remote_frees);
                if (*span).block_size > PENDING_BLOCK_MAX {
                    push_remote((*span).owner, span, p.cast(), p.cast(), 1);
                } else {
                    gather(heap, span, p.cast());
                }
            }
            SpanKind::Large => {
                stats::add(&GLOBAL.large_frees, 1);
                count_free(LARGE_SLOT);
                CENTRAL.lock().give(span);
                crate::purger::ensure_started();
            }
            SpanKind::Free => free_foreign(p),
        }
    }
}

/// Frees a huge block.
///
/// # Safety
/// `p` is in a granule the map marks huge.
#[cold]
#[inline(never)]
unsafe fn free_huge(p: *mut u8) {
    // SAFETY: caller's contract.
    if unsafe { huge::free(p) } {
        count_free(HUGE_SLOT);
    } else {
        free_foreign(p);
    }
}

#[cold]
#[inline(never)]
fn free_foreign(p: *mut u8) {
    if p.is_null() {
        return;
    }
    stats::add(&GLOBAL.foreign_frees, 1);
    if crate::options::VERBOSE.on() {
        let mut b: crate::fmt::Buf<128> = crate::fmt::Buf::new();
        b.str("oxalloc: ignoring free of a pointer that is not ours: ")
            .hex(p as u64)
            .str("\n");
        oxalloc_sys::write_stderr(b.as_bytes());
    }
}

/// Gives an empty small span back to the central pool.
///
/// # Safety
/// `span` is a small span with no used block, in none of its heap's lists.
unsafe fn release_span(span: *mut Span) {
    // SAFETY: caller's contract; the owner is the calling thread's heap, whose
    // counters only this thread writes.
    unsafe {
        let owner = (*span).owner;
        let n = (*span).allocs.swap(0, Ordering::Relaxed);
        if stats::COUNTING && n != 0 && !owner.is_null() {
            let c = stats::slot(&raw mut (*owner).stats.allocs, (*span).class as usize);
            AtomicU64::from_ptr(c).fetch_add(n, Ordering::Relaxed);
        }
        (*span).owner = ptr::null_mut();
        (*span).free = ptr::null_mut();
        CENTRAL.lock().give(span);
    }
    crate::purger::ensure_started();
}
