//! Blocks freed by threads other than their span's owner: gathered per span by the
//! freeing thread, handed over with one CAS onto the span's remote list, and taken
//! whole by the owner (see the module docs of `heap`).
#![allow(unsafe_code)]

use super::*;
use crate::{atomic_stack, remote_list};

/// Spans of other heaps whose freed blocks a heap gathers before handing them over.
pub(super) const PENDING_SPANS: usize = 64;

/// Bytes of blocks gathered per chain: smaller blocks make longer chains (up to
/// [`PENDING_BLOCKS_MAX`]), so each hand-over (two locked operations on a line the
/// owner also takes, a cache-line transfer each way) carries as many bytes whatever
/// the size. With 8 blocks of any size, 16..256-byte blocks paid that every 8 frees:
/// same-run A/B (`--runs 5`), xmalloc/t2 0.156 -> 0.138 s and t8 0.137 -> 0.123 s,
/// prodcons 0.297 -> 0.272 s and shared-slots/t8 0.354 -> 0.323 s (`--runs 3`);
/// prodcons alone, 9 alternating runs: 0.35 -> 0.23 s wall, 0.69 -> 0.45 s CPU (2 KiB:
/// 0.28 and 0.56). The cost: blocks wait longer away from their owners, xmalloc/t8 peak
/// RSS 8.06 -> 8.41 MiB (medians of 5; 2 KiB: 8.28), other rows within 0.5 MiB.
const PENDING_BYTES: u32 = 4096;
/// The longest chain (blocks of 64 bytes or less).
const PENDING_BLOCKS_MAX: u32 = 64;

/// Only blocks up to this size are gathered, so a thread that frees and then sleeps
/// keeps at most `PENDING_SPANS` chains of [`PENDING_BYTES`] (256 KiB) from their
/// owners, and every chain is at least 8 blocks long (16 held up to 4 MiB of 512-byte
/// blocks away from their owners across 8 threads: larson/t8 peak RSS 37.1 -> 34.3 MiB
/// with 8, times unchanged; 4 cost xmalloc time).
pub(super) const PENDING_BLOCK_MAX: u32 = PENDING_BYTES / 8;

/// Blocks gathered into one chain of `span`'s blocks before it is handed over
/// ([`PENDING_BYTES`] of them, at most [`PENDING_BLOCKS_MAX`]); also the most blocks of
/// its class a heap keeps (`foreign::keep`).
///
/// # Safety
/// `span` is a live small span.
#[inline]
pub(super) unsafe fn chain_limit(span: *mut Span) -> u32 {
    // SAFETY: caller's contract.
    unsafe { (PENDING_BYTES / (*span).block_size).min(PENDING_BLOCKS_MAX) }
}

/// Blocks this thread freed into one span of another heap, not yet handed over: a
/// chain linked through the blocks, handed over with one CAS.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Pending {
    pub(super) span: *mut Span,
    pub(super) head: *mut Block,
    pub(super) tail: *mut Block,
    pub(super) count: u32,
    /// The span's size class (read once, when the entry is made).
    pub(super) class: u8,
    /// Blocks gathered before the chain is handed over (set from the block size when
    /// the entry is made: [`PENDING_BYTES`]).
    limit: u8,
    /// `count` at the last sweep ([`sweep_stale`]).
    seen: u8,
    /// The sum of the chain's block addresses (see `Span::remote_sum`).
    sum: u64,
}

impl Pending {
    pub(super) const NONE: Pending = Pending {
        span: ptr::null_mut(),
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
        count: 0,
        class: 0,
        limit: 0,
        seen: 0,
        sum: 0,
    };
}

/// Adds a block freed into another heap's span to this thread's pending chains; hands
/// a chain over when it is long enough, or when its entry is needed for another span.
/// The table is direct-mapped by span address: one probe, and a program that frees
/// blocks of many size classes in turn (each class its own span) still gathers.
///
/// # Safety
/// `heap` is the calling thread's real heap; `span` a small span of another heap,
/// `b` one of its blocks.
///
/// The common case (the entry is this span's, the chain not yet full) touches no
/// callee-saved register: everything else is a tail call, so the path pushes and pops
/// nothing (it saved and restored five registers: 12 of its 40 instructions).
pub(super) unsafe fn gather(heap: *mut Heap, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract; `pending` is touched by the owning thread only.
    unsafe {
        let a = span as usize;
        // Span records are 256 bytes apart; mix in the segment so that the same slice
        // of two segments does not collide.
        let i = ((a >> 8) ^ (a >> SEGMENT_SHIFT)) % PENDING_SPANS;
        let e = &mut (*heap).pending[i];
        if e.span != span {
            return gather_new_chain(heap, e, span, b);
        }
        (*b).next = e.head;
        e.head = b;
        e.count += 1;
        e.sum = e.sum.wrapping_add(b as u64);
        if e.count >= e.limit as u32 {
            hand_over_or_reuse(heap, e);
        }
    }
}

/// [`gather`] when the entry holds another span's chain (or none): hands that over and
/// starts a chain of `b` for `span`.
///
/// # Safety
/// As for [`gather`]; `e` is `heap`'s entry for `span`.
#[cold]
#[inline(never)]
unsafe fn gather_new_chain(heap: *mut Heap, e: &mut Pending, span: *mut Span, b: *mut Block) {
    // SAFETY: caller's contract.
    unsafe {
        let class = SizeClass((*span).class);
        let limit = chain_limit(span);
        hand_over_or_reuse(heap, e);
        (*b).next = ptr::null_mut();
        (*heap).pending_classes |= 1 << class.0;
        *e = Pending {
            span,
            head: b,
            tail: b,
            count: 1,
            class: class.0,
            limit: limit as u8,
            seen: 0,
            sum: b as u64,
        };
    }
}

/// Whether one of `h`'s pending chains for `span` holds a block, as `holds(head, limit)`
/// says (a bounded walk). Another thread's table is read racily: each entry's span and
/// head once, and the walk checks every link (see `check`).
///
/// # Safety
/// `h` is a heap from the registry (never freed).
pub(super) unsafe fn pending_holds(
    h: *mut Heap,
    span: *mut Span,
    holds: impl Fn(*mut Block, usize) -> bool,
) -> bool {
    for i in 0..PENDING_SPANS {
        // SAFETY: caller's contract: the table is inside the heap record.
        let (s, head) = unsafe {
            let e = (&raw const (*h).pending).cast::<Pending>().add(i);
            (
                ptr::read_volatile(&raw const (*e).span),
                ptr::read_volatile(&raw const (*e).head),
            )
        };
        if s == span && holds(head, PENDING_BLOCKS_MAX as usize + 1) {
            return true;
        }
    }
    false
}

/// Hands a pending chain over, unless this heap keeps it for its own allocations
/// (`foreign::keep`) or takes its span's waiting list with the chain for itself
/// (`foreign::reuse_instead`).
///
/// # Safety
/// The entry belongs to `heap`, the calling thread's heap.
#[inline(never)]
unsafe fn hand_over_or_reuse(heap: *mut Heap, e: &mut Pending) {
    // SAFETY: caller's contract.
    unsafe {
        (*heap).chain_events = (*heap).chain_events.wrapping_add(1);
        if (*heap).chain_events.is_multiple_of(SWEEP_EVERY) {
            sweep_stale(heap);
        }
        if e.count > 0
            && keep(
                heap,
                SizeClass(e.class),
                e.head,
                e.tail,
                e.count,
                e.limit as u32,
            )
        {
            *e = Pending::NONE;
        } else if !reuse_instead(heap, e) {
            hand_over(e);
        }
    }
}

/// Chain events (chains full or pushed out of their entry) between two sweeps of the
/// pending table ([`sweep_stale`]).
const SWEEP_EVERY: u32 = 64;

/// Hands over the pending chains that have not grown since the last sweep. A chain
/// keeps its blocks, and with them the span they belong to, from their owner until it
/// fills or another span needs its entry, which a thread that has moved on to other
/// spans may never do: in a ring of 4 threads that each free half of a batch
/// themselves and hand the other half on, a new size each batch, the chains left
/// behind in the 64 entries pinned up to 64 spans of the previous thread per thread.
/// Swept every [`SWEEP_EVERY`] chain events, so a thread that frees nothing pays
/// nothing, and one that frees into few spans sweeps every few thousand frees.
///
/// # Safety
/// The caller owns `heap`.
unsafe fn sweep_stale(heap: *mut Heap) {
    // SAFETY: caller's contract; the table is the calling thread's.
    unsafe {
        for e in (*heap).pending.iter_mut() {
            if e.count != 0 && e.count == e.seen as u32 {
                hand_over(e);
            } else {
                e.seen = e.count as u8;
            }
        }
    }
}

/// Hands a pending chain over to its span's owner (if it holds any) and empties it.
///
/// # Safety
/// The entry belongs to the calling thread's heap.
unsafe fn hand_over(e: &mut Pending) {
    if e.count > 0 {
        // SAFETY: caller's contract; the span has `count` blocks out (these), so it
        // and its owner stay alive.
        unsafe { push_remote((*e.span).owner, e.span, e.head, e.tail, e.count, e.sum) };
    }
    *e = Pending::NONE;
}

/// Hands every pending chain over: at thread exit, trim and collection.
///
/// # Safety
/// The caller owns `heap`.
pub unsafe fn flush_pending(heap: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        for e in (*heap).pending.iter_mut() {
            hand_over(e);
        }
    }
}

/// Pushes a chain of `n` blocks (`head` .. `tail`, their addresses summing to `sum`)
/// on their span's remote list (lock-free, many producers), and the span on its
/// owner's stack if it is not there yet.
///
/// # Safety
/// `span` is a small span owned by the live heap `owner`, and the chain holds `n` of
/// its blocks, linked from `head` to `tail`.
pub(super) unsafe fn push_remote(
    owner: *mut Heap,
    span: *mut Span,
    head: *mut Block,
    tail: *mut Block,
    n: u32,
    sum: u64,
) {
    // SAFETY: caller's contract; the words are only accessed atomically, and the chain
    // is ours to write until the CAS publishes it.
    unsafe {
        let link = |old_head: u64| (*tail).next = old_head as *mut Block;
        if !remote_list::push(
            &(*span).remote,
            &(*span).remote_sum,
            head as u64,
            n,
            sum,
            link,
        ) {
            return; // the span is on the owner's stack already
        }
        // We set the notified flag: we alone put the span on the owner's stack.
        atomic_stack::push(
            AtomicPtr::from_ptr(&raw mut (*owner).remote_spans),
            span,
            |top| (*span).remote_next.store(top, Ordering::Relaxed),
        );
    }
}

/// Whether an empty span may go back to the central pool: not while it is on the
/// remote stack (the drain will find it and release it then).
///
/// # Safety
/// `span` is a small span of the calling thread's heap with no block in use, so no
/// thread can push to its remote list.
pub(super) unsafe fn may_release(span: *mut Span) -> bool {
    // SAFETY: caller's contract; the word is atomic.
    unsafe {
        if (*span).remote_kept {
            (*span).remote_kept = false;
            (*span).remote.store(0, Ordering::Relaxed);
            return true;
        }
        remote_list::flag_clear(&(*span).remote)
    }
}

/// Takes a span's remote list, as the owner, outside the drain. The notified flag
/// stays if the span may be on the stack; a list kept by the drain is taken whole.
///
/// # Safety
/// `span` is a small span owned by the calling thread's heap.
unsafe fn take_list(span: *mut Span) -> RemoteList {
    // SAFETY: caller's contract. The Acquire pairs with the pushers' Release, so the
    // blocks' links are visible.
    unsafe {
        let kept = (*span).remote_kept;
        (*span).remote_kept = false;
        remote_list::take(&(*span).remote, kept)
    }
}

/// Takes the sum of the remote blocks off the span's `live_sum`, after a list was taken:
/// with it, the sum of every chain pushed before that list (and maybe of one being
/// pushed now, whose blocks a later take finds; `live_sum` is exact again by then, and
/// is only checked when no block is out).
///
/// # Safety
/// `span` is a small span owned by the calling thread's heap.
pub(super) unsafe fn take_sum(span: *mut Span) {
    // SAFETY: caller's contract; `live_sum` is the owner's, `remote_sum` atomic.
    unsafe {
        let taken = remote_list::take_sum(&(*span).remote_sum);
        (*span).live_sum = (*span).live_sum.wrapping_sub(taken);
    }
}

/// Makes a span's remote blocks its free list, if it has any; the owner's path when the
/// span's own free list is empty.
///
/// # Safety
/// `span` is owned by the calling thread's heap and its free list is empty.
pub(super) unsafe fn take_remote(span: *mut Span) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        let list = take_list(span);
        if list.head().is_null() {
            return false;
        }
        (*span).free = list.head();
        (*span).remote_in_free = true;
        (*span).used -= list.count();
        take_sum(span);
        true
    }
}

/// Adds remote blocks to a span's free list, then does what a local free of the last
/// of them would: bring back a full span, release an empty one.
///
/// # Safety
/// `span` is a small span of `heap`, owned by the caller, and `list` came off its
/// remote word.
unsafe fn absorb(heap: *mut Heap, span: *mut Span, list: RemoteList) {
    // SAFETY: caller's contract.
    unsafe {
        let head = list.head();
        if !head.is_null() {
            // If with these every block is free (`empties`), the span goes back whole
            // below: its local list is dropped with it, not joined.
            if !(*span).free.is_null() && !empties(span, list) {
                // The span still has local blocks (a partial span in the drain; trim,
                // thread exit): link the lists at the tail, walking the remote one, at
                // most its count of links (a block freed twice by other threads makes
                // the list loop).
                let mut tail = head;
                for _ in 1..list.count() {
                    if (*tail).next.is_null() {
                        break;
                    }
                    tail = (*tail).next;
                }
                if !(*tail).next.is_null() {
                    check::report_span_count(span);
                }
                (*tail).next = (*span).free;
            }
            (*span).free = head;
            (*span).remote_in_free = true;
            (*span).used -= list.count();
            take_sum(span);
        }
        if free_needs_slow_path((*span).used) {
            free_local_slow(heap, span);
        }
    }
}

/// Whether the blocks of `list` are all the blocks `span` has out, with the span
/// neither current nor parked full (`used` carries no flag) and off its owner's remote
/// stack (the notified flag clear): taken, they leave the span empty and free to go
/// back. A span whose local free list is not empty would otherwise keep its remote
/// blocks waiting (and itself from the central pool) until its class is allocated
/// again: a thread that frees half of a batch itself and hands the other half to
/// another thread, a new size each batch, held 4-6 spans per class in use (a ring of 4
/// threads: 17.8 MiB peak in use for 0.9 MiB live).
///
/// # Safety
/// `span` is a small span of the calling thread's heap.
unsafe fn empties(span: *mut Span, list: RemoteList) -> bool {
    // SAFETY: caller's contract.
    unsafe { (*span).used == list.count() && remote_list::flag_clear(&(*span).remote) }
}

/// Takes a span's remote blocks, if any, whatever its free list holds.
///
/// # Safety
/// As for [`absorb`]; the span is current or partial.
pub(super) unsafe fn take_remote_into(heap: *mut Heap, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe { absorb(heap, span, take_list(span)) };
}

/// Takes, as the owner, every block other threads handed back: visits the spans on the
/// remote stack.
///
/// # Safety
/// `heap` is owned by the calling thread (or held exclusively by a collector).
pub unsafe fn drain_remote(heap: *mut Heap) {
    // SAFETY: caller's contract; the swap hands us the whole stack, whose spans all
    // belong to this heap. A span's link is read before its flag is cleared: from then
    // on a pusher may put it on the stack again.
    unsafe {
        let mut s = atomic_stack::take_all(AtomicPtr::from_ptr(&raw mut (*heap).remote_spans));
        while !s.is_null() {
            let next = (*s).remote_next.load(Ordering::Relaxed);
            if (*s).free.is_null() || (*s).used & USED_CURRENT == 0 {
                let list = remote_list::take_clearing_flag(&(*s).remote);
                absorb(heap, s, list);
            } else {
                // The current span, with local blocks still: leave the list (and the
                // flag, so nobody stacks it again) until they run out, which the next
                // mallocs of the class see to; joining the lists now would mean walking
                // one. Any other span is joined: its class may not be allocated again
                // for long, and its remote blocks would keep it from going back whole.
                (*s).remote_kept = true;
            }
            s = next;
        }
    }
}
