//! Small blocks: the core allocator's size classes and thread heaps underneath, the
//! checks on top.
//!
//! A request of `n` bytes takes a core block of the class of `n + ROOM`, so every
//! block has at least [`ROOM`] bytes after the user's: a canary from `n` up to the
//! last word, and in the last word the requested size, encoded with the block's
//! canary pattern (an overflow that reaches it is caught like one that does not). The
//! block's state lives in the [`shadow`], out of line.
//!
//! `free` validates (the pointer is 16-byte aligned, in a core segment, and its state
//! byte goes from `LIVE` to `QUARANTINED` in one compare-and-swap), checks the canary,
//! zeroes the whole block and puts it in the thread's quarantine ring
//! ([`crate::thread`]). A block leaves the ring after the thread's next
//! `OXALLOC_QUARANTINE` frees (or bytes): it must still be all zero, or a write after
//! free is reported; then it goes back to the core (`FREED`). The core's free lists
//! link blocks through their first word, so every block the core hands out is
//! validated before `malloc` returns it (see [`alloc`]): an overwritten link is
//! reported, never followed into the program's hands.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU8, Ordering};

use oxalloc_core::heap as core_heap;
use oxalloc_core::segment::{
    Owner, Segment, Span, SpanKind, SEGMENT_HEADER_BYTES, SEGMENT_MAP, SLICE_SIZE,
};
use oxalloc_core::size_class::{SizeClass, MAX_SMALL};

use crate::canary;
use crate::mitigations as mt;
use crate::shadow::{self, FREED, NEVER, QUARANTINED};
use crate::thread::{Cache, STASH, STASH_CLASSES};

/// Spare bytes every block has after the requested size: canary and size word.
pub const ROOM: usize = 16;
/// The largest request served here (larger ones get mappings of their own).
pub const MAX_SMALL_REQUEST: usize = MAX_SMALL - ROOM;

/// The block length (core class size) for a request of `n` bytes.
#[inline(always)]
pub fn block_len(n: usize) -> usize {
    SizeClass::of(n + ROOM).size()
}

/// True when a request of `n` bytes aligned to `align` is served here: up to
/// [`MAX_SMALL_REQUEST`], and for alignments above 16 only when a core class has
/// blocks that are multiples of `align` and hold `n + ROOM` (the core then serves
/// it from that class; anything else gets a guarded mapping of its own).
#[inline(always)]
pub fn fits(n: usize, align: usize) -> bool {
    n <= MAX_SMALL_REQUEST && (align <= 16 || SizeClass::aligned(n + ROOM, align).is_some())
}

/// What reports call the class: the most a block of this length can hold.
#[inline(always)]
pub fn class_of_len(len: usize) -> usize {
    len - ROOM
}

/// The bytes of the block at `p`.
///
/// # Safety
/// `p` starts a block of `len` bytes that the caller may read and write.
#[inline(always)]
pub unsafe fn bytes<'a>(p: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: caller's contract.
    unsafe { core::slice::from_raw_parts_mut(p as *mut u8, len) }
}

/// The canary pattern of the block at `p` as stored (byte `i` of the block's canary
/// area is byte `i % 8` of this word in memory order).
#[inline(always)]
pub fn pattern(p: usize) -> u64 {
    canary::pattern(p).to_le()
}

/// The pattern as a word stored at an offset congruent to `n` modulo 8.
#[inline(always)]
fn pattern_at(pat: u64, n: usize) -> u64 {
    // Little-endian: the word at offset `n` holds pattern bytes n % 8, n % 8 + 1, ...
    pat.rotate_right(8 * (n % 8) as u32)
}

/// Writes the canary over `[n, len - 8)` of the block at `p`, and in its last word
/// the requested size `n` and alignment `align`, encoded with the pattern. Sixteen
/// bytes at a time (two pattern words), unaligned, from `n` (the user's bytes below
/// `n` are not touched; see `fill_canary`); the last canary store may reach into the
/// final 16 bytes, which are written after it. The canary's first byte (offset `n`) is then 0, so a
/// string that fills the block to its requested size without a terminator still ends
/// there (`strlen` stops).
///
/// Byte `i` of the canary area is pattern byte `i % 8` whatever `n` is (the phase
/// follows the offset in the block, not the requested size), which is what lets
/// [`reseal`] move the end of a block's user bytes without rewriting the rest.
#[inline(always)]
pub fn seal(p: usize, len: usize, n: usize, align: usize, pat: u64) {
    debug_assert!(n + ROOM <= len && len.is_multiple_of(16) && align.is_power_of_two());
    let end = len - ROOM;
    fill_canary(p, n, end, pattern_at(pat, n));
    // SAFETY: the last 16 bytes of the block (16-byte aligned).
    unsafe {
        ((p + end) as *mut u64).write(pat);
        ((p + end + 8) as *mut u64).write(pat ^ record(n, align));
    }
    // SAFETY: `n <= len - ROOM`: the first canary byte, inside the block.
    unsafe { ((p + n) as *mut u8).write(0) };
}

/// The size word's value before encoding: the requested size, and the alignment's
/// logarithm above it.
#[inline(always)]
fn record(n: usize, align: usize) -> u64 {
    n as u64 | (align.max(16).trailing_zeros() as u64) << 32
}

/// Stores the pattern word `w` (the pattern as stored at offset `from`) over
/// `[from, to)` of the block at `p`, 16 bytes per store, where `to` is a multiple of 8
/// and the block goes on for 16 bytes past `to` (the callers pass `to = len - 16` and
/// write the final 16 bytes afterwards).
///
/// Up to 64 bytes without a branch: four stores at `from`, `from + 16`, `from + 32`,
/// `from + 48`, each moved back to the last 16 bytes that fit (`last`, at the same
/// phase as `from`) when it would pass them; the stores then overlap and write the same
/// bytes. A loop takes what lies beyond (blocks whose slack is over 56 bytes). The
/// slack varies from block to block, so a loop alone mispredicted its exit on nearly
/// every `malloc`.
#[inline(always)]
fn fill_canary(p: usize, from: usize, to: usize, w: u64) {
    debug_assert!(from <= to && to.is_multiple_of(8));
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__m128i, _mm_set1_epi64x, _mm_storeu_si128};
        // SAFETY: SSE2 is part of x86-64; no memory access.
        let v = unsafe { _mm_set1_epi64x(w as i64) };
        // The last store that ends within 16 bytes past `to`, at `from`'s phase.
        let last = from + ((to - from) & !7);
        for k in 0..4 {
            let off = (from + 16 * k).min(last);
            // SAFETY: `from <= off <= last <= to`, so the 16 bytes at `off` end before
            // `to + 16`, inside the block (caller's contract), which the caller owns.
            unsafe { _mm_storeu_si128((p + off) as *mut __m128i, v) };
        }
        let mut off = from + 64;
        while off < to {
            // SAFETY: as above (`off < to`).
            unsafe { _mm_storeu_si128((p + off) as *mut __m128i, v) };
            off += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut off = from;
        while off < to {
            // SAFETY: `off + 8 <= to + 16`: inside the block (caller's contract).
            unsafe { ((p + off) as *mut u64).write_unaligned(w) };
            off += 8;
        }
    }
}

/// Moves the end of the user bytes of the sealed block at `p` (length `len`) from
/// `old` to `n`, for a `realloc` that stays in the block: bytes `[old, n)` become the
/// user's, filled with `fill`, or `[n, old]` become canary again; then the zero
/// canary byte at `n` and the size word. The rest of the canary is left as it is: the
/// caller has just checked it ([`sealed`]), and its bytes do not depend on `n` (see
/// [`seal`]). So an in-place `realloc` costs the bytes it moves, not the whole slack.
#[inline]
pub fn reseal(p: usize, len: usize, old: usize, n: usize, align: usize, fill: u8) {
    debug_assert!(old + ROOM <= len && n + ROOM <= len && len.is_multiple_of(16));
    let end = len - ROOM;
    let pat = pattern(p);
    if n > old {
        // SAFETY: `[old, n)` lies below `len - ROOM`, in the block the caller owns.
        unsafe { core::ptr::write_bytes((p + old) as *mut u8, fill, n - old) };
    } else {
        // `[n, old]` (at most `end`): byte `i` gets pattern byte `i % 8`.
        let b = pat.to_ne_bytes();
        for i in n..=old {
            // SAFETY: `i <= old <= end`: inside the block.
            unsafe { ((p + i) as *mut u8).write(b[i % 8]) };
        }
    }
    // SAFETY: `n <= end`; the size word is the block's last 8 bytes.
    unsafe {
        ((p + n) as *mut u8).write(0);
        ((p + end + 8) as *mut u64).write(pat ^ record(n, align));
    }
}

/// The requested size and alignment recorded in the block at `p`, or `None` if its
/// size word was overwritten (it must decode to a size that leaves [`ROOM`] bytes and
/// an alignment from 16 to 64 KiB).
#[inline(always)]
pub fn recorded(p: usize, len: usize, pat: u64) -> Option<(usize, usize)> {
    // SAFETY: the last word of a block the caller may read.
    let w = unsafe { ((p + len - 8) as *const u64).read() };
    let v = w ^ pat;
    let (n, lg) = ((v & 0xFFFF_FFFF) as usize, v >> 32);
    (n <= len - ROOM && (4..=16).contains(&lg)).then_some((n, 1 << lg))
}

/// True when the canary of the block at `p` holding `n` bytes is intact (its first
/// byte 0, the rest the pattern), from `n` to the size word at `len - 8`.
///
/// On x86-64 the 64 bytes before the size word (the whole block before it, if
/// shorter) take four 16-byte compares with the pattern at fixed distances from the
/// block's end, so no branch depends on the requested size: their mismatches make a
/// 64-bit mask, and from bit `n` on it must be exactly bit `n` (the zero byte, which is
/// never a pattern byte) (`tail_mismatches`). A canary longer than that (slack over
/// 56 bytes) has its first bytes checked by `canary_between`. (Loops over the canary,
/// one trip count per block size, mispredicted one or two branches on nearly every
/// `free`.)
#[inline(always)]
pub fn sealed(p: usize, len: usize, n: usize, pat: u64) -> bool {
    let end = len - ROOM;
    #[cfg(target_arch = "x86_64")]
    {
        let stop = end + 8;
        let (base, m) = tail_mismatches(p, stop, pat);
        // SAFETY: `n <= end`: inside the block.
        let zero = unsafe { ((p + n) as *const u8).read() } == 0;
        if n >= base {
            return zero & (m >> (n - base) == 1);
        }
        // The first byte is 0, then the pattern up to `base` (a multiple of 8).
        // SAFETY: `n < base`, so the word ends before `base + 8 <= len - 8`: inside the
        // block.
        let first = unsafe { ((p + n) as *const u64).read_unaligned() };
        let w = pattern_at(pat, n);
        zero & (m == 0) & ((first ^ w) & !0xFF == 0) & canary_between(p, n + 8, base, w, pat)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // The pattern as stored from `n` on, with its first byte (the zero) taken out.
        let w = pattern_at(pat, n);
        // SAFETY: `n + 8 <= len - 8`: inside the block (see `seal`).
        let first = unsafe { ((p + n) as *const u64).read_unaligned() };
        let mut acc = first & 0xFF;
        acc |= (first ^ w) & !0xFF;
        if !canary_between(p, n + 8, end, w, pat) {
            return false;
        }
        // The word at `end`, whose first byte is the zero when `n == end`.
        let zero_at_end = ((n == end) as u64).wrapping_neg() & 0xFF;
        // SAFETY: as in `seal`.
        acc |= unsafe { ((p + end) as *const u64).read() } ^ (pat & !zero_at_end);
        acc == 0
    }
}

/// The bytes of the block at `p` that differ from the pattern in the 64 bytes before
/// `stop` (`len - 8`), or in `[0, stop)` for a block of 64 bytes or less: `(base, m)`,
/// bit `i` of `m` set when byte `base + i` differs (bits at or past `stop` clear). Four
/// 16-byte loads at `stop - 16`, `stop - 32`, ... (offsets that are multiples of 8, so
/// the pattern's phase is 0 at each); for short blocks they start at 0 and overlap.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tail_mismatches(p: usize, stop: usize, pat: u64) -> (usize, u64) {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi64x,
    };
    debug_assert!(stop % 16 == 8 && stop >= 24);
    // SAFETY: SSE2 is part of x86-64; every load reads 16 bytes at `off` with
    // `0 <= off` and `off + 16 <= stop`, inside the block (caller's contract).
    unsafe {
        let patv = _mm_set1_epi64x(pat as i64);
        let differ = |off: usize| {
            let v = _mm_loadu_si128((p + off) as *const __m128i);
            (_mm_movemask_epi8(_mm_cmpeq_epi8(v, patv)) as u64) ^ 0xFFFF
        };
        if stop >= 64 {
            let base = stop - 64;
            let m = differ(base)
                | differ(base + 16) << 16
                | differ(base + 32) << 32
                | differ(base + 48) << 48;
            return (base, m);
        }
        // Blocks of 32, 48 or 64 bytes (`stop` 24, 40 or 56): loads at 0, 16, 32 and
        // `stop - 16`, each moved back to `stop - 16` when it would pass it.
        let last = stop - 16;
        let (b, c) = (last.min(16), last.min(32));
        let m = differ(0) | differ(b) << b | differ(c) << c | differ(last) << last;
        (0, m)
    }
}

/// True when `[from, to)` of the block at `p` holds the pattern (`w`: as stored at
/// `from`; `pat`: as stored at the multiple of 8 `to`). Bytes up to `to + 8` may be
/// read (the pattern goes on there: a word at `len - 16`, or more canary). Below 16
/// bytes a word or two; else 16-byte loads from `from`, two accumulators, and one last
/// load of the 16 bytes before `to` (overlapping, harmless for an OR; at a multiple
/// of 8, so its pattern is `pat`).
#[inline(always)]
fn canary_between(p: usize, from: usize, to: usize, w: u64, pat: u64) -> bool {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pat; // the word loop below needs only `w`
    if from >= to {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if to - from >= 16 {
        use core::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi64x, _mm_setzero_si128, _mm_xor_si128,
        };
        // SAFETY: SSE2 is part of x86-64; every load reads 16 bytes between `from` and
        // `to`, inside the block (caller's contract).
        unsafe {
            let v = _mm_set1_epi64x(w as i64);
            let ld = |off: usize| _mm_loadu_si128((p + off) as *const __m128i);
            let mut a0 = _mm_xor_si128(ld(to - 16), _mm_set1_epi64x(pat as i64));
            let mut a1 = _mm_setzero_si128();
            let mut off = from;
            while off + 32 <= to {
                a0 = _mm_or_si128(a0, _mm_xor_si128(ld(off), v));
                a1 = _mm_or_si128(a1, _mm_xor_si128(ld(off + 16), v));
                off += 32;
            }
            if off + 16 <= to {
                a0 = _mm_or_si128(a0, _mm_xor_si128(ld(off), v));
            }
            let a = _mm_or_si128(a0, a1);
            return _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_setzero_si128())) == 0xFFFF;
        }
    }
    let mut acc = 0;
    let mut off = from;
    while off < to {
        // SAFETY: `off < to`, so the word ends before `to + 8` (caller's contract);
        // past `to` the pattern goes on at the same phase.
        acc |= unsafe { ((p + off) as *const u64).read_unaligned() } ^ w;
        off += 8;
    }
    acc == 0
}

/// The offset of the first changed canary byte of a block whose canary is not intact.
#[cold]
pub fn first_change(p: usize, len: usize, n: usize, pat: u64) -> usize {
    let pat = pat.to_ne_bytes();
    // SAFETY: the block's bytes, which the caller may read.
    let block = unsafe { bytes(p, len) };
    (n..len - 8)
        .find(|&i| block[i] != if i == n { 0 } else { pat[i % 8] })
        .unwrap_or(n)
}

/// A block for `n` bytes aligned to `align` (16, or more when [`fits`] said so):
/// `None` if the core has no memory. Returns the block and its length; the state
/// byte is `live` (one of the live states: how it was allocated) and the block sealed. With the thread's record `t`, small classes go
/// through its stash (random order; every block of a class an aligned request maps
/// to is aligned, so stashed blocks serve it too).
#[inline(always)]
pub fn alloc(
    n: usize,
    align: usize,
    marker: usize,
    t: Option<&mut Cache>,
    live: u8,
) -> Option<(usize, usize)> {
    debug_assert!(shadow::is_live(live));
    let (mut p, len, class, mut state) = take(n, align, marker)?;
    if let Some(t) = t.filter(|_| mt::RANDOM_ORDER && (class as usize) < STASH_CLASSES) {
        let r = t.random() as usize;
        let slot = &mut t.stash[class as usize][r % STASH];
        let held = core::mem::replace(slot, p);
        if held != 0 {
            p = held;
            state = shadow::get(p).expect("a stashed block's segment has a shadow");
        } else {
            // The slot was empty (the class's first uses): keep this block, take another.
            (p, _, _, state) = take(n, align, marker)?;
        }
    }
    state.store(live, Ordering::Release);
    // SAFETY: the block is ours; its first word is the core's free-list link (or old
    // data of a recycled span), not the user's.
    unsafe { (p as *mut u64).write(0) };
    seal(p, len, n, align, pattern(p));
    Some((p, len))
}

/// A block from the core for `n` bytes, validated, not yet `LIVE`: (address, length,
/// core class, state byte).
///
/// The core's free lists link free blocks through their first word, which a write
/// after free (after the quarantine) could change; so before a block is used we check
/// that it lies in a core segment, at a block boundary of a small span whose blocks
/// hold the request, and is neither live nor quarantined.
#[inline(always)]
fn take(n: usize, align: usize, marker: usize) -> Option<(usize, usize, u8, &'static AtomicU8)> {
    let p = if align <= 16 {
        core_heap::alloc(n + ROOM)
    } else {
        core_heap::alloc_aligned(n + ROOM, align)
    } as usize;
    if p == 0 {
        return None;
    }
    if SEGMENT_MAP.owner(p) != Owner::Normal {
        crate::heap::corrupt_free_list(p, "outside the heap", marker);
    }
    let seg = Segment::of(p);
    // SAFETY: `p` lies in a live normal segment (the map says so); its header is
    // mapped for as long as the segment is.
    if !unsafe { &(*seg).guarded }.load(Ordering::Relaxed) {
        guard_header(seg);
    }
    // SAFETY: as above; the records are mapped for as long as the segment is.
    let span = unsafe { Segment::span_of(seg, p) };
    if span.is_null() {
        crate::heap::corrupt_free_list(p, "not in a span", marker);
    }
    // SAFETY: `span` is the head record of the span `p`'s slice names, in the live
    // segment holding `p` (the grid test's contract).
    let (len, class, on_grid) = unsafe {
        let on_grid = Span::on_grid(span, p);
        ((*span).block_size as usize, (*span).class, on_grid)
    };
    if len < n + ROOM || !on_grid || !p.is_multiple_of(align) {
        crate::heap::corrupt_free_list(p, "not a block of its size class", marker);
    }
    let Some(state) = shadow::get_or_map(p) else {
        // SAFETY: the core just gave us `p`; nobody else has it.
        unsafe { core_heap::free(p as *mut u8) };
        return None;
    };
    let old = state.load(Ordering::Relaxed);
    if shadow::is_live(old) || old == QUARANTINED {
        let what = if shadow::is_live(old) {
            "still live"
        } else {
            "in the quarantine"
        };
        crate::heap::corrupt_free_list(p, what, marker);
    }
    Some((p, len, class, state))
}

/// Makes the unused rest of a core segment's first slice, between its header (the
/// span records) and the first block, inaccessible: an underflow out of the first
/// data slice faults there at once instead of reaching the allocator's records. Once
/// per segment (a segment mapped again at the same address starts unguarded).
#[cold]
#[inline(never)]
fn guard_header(seg: *mut Segment) {
    let start = seg as usize + SEGMENT_HEADER_BYTES;
    // SAFETY: the range lies in slice 0 of a live segment of the core, which never
    // uses it (its header ends at SEGMENT_HEADER_BYTES, data starts at slice 1); page
    // aligned. Several threads may do this at once: the result is the same.
    unsafe {
        oxalloc_sys::protect(start as *mut u8, SLICE_SIZE - SEGMENT_HEADER_BYTES, false);
        (*seg).guarded.store(true, Ordering::Relaxed);
    }
}

/// A thread is exiting: the blocks of its stash go back to the core (never handed
/// out, so no check).
pub fn return_stash(t: &mut Cache) {
    for slot in t.stash.iter_mut().flatten() {
        let p = core::mem::take(slot);
        if p != 0 {
            // SAFETY: the core handed out `p` and it never left the stash.
            unsafe { core_heap::free(p as *mut u8) };
        }
    }
}

/// The length of the block at `p`, which is `LIVE` or `QUARANTINED` (so its span is a
/// small span that stays put).
#[inline(always)]
pub fn len_of(p: usize) -> usize {
    // SAFETY: `p` is in a live normal segment (its block is live or quarantined, so
    // the core keeps the span); the span record is valid.
    unsafe { (*Segment::span_of(Segment::of(p), p)).block_size as usize }
}

/// Checks that `p` is a live block of ours in the live state `want` (0: any live
/// state): `Ok(true)` if it is (and, with `and_claim`, it is now `QUARANTINED`: the
/// caller frees it); `Ok(false)` if it is not in a core segment at all (maybe a large
/// block). Anything else (`Err(state)`) is a misuse for the caller to report.
#[inline(always)]
pub fn check_live(p: usize, and_claim: bool, want: u8) -> Result<bool, u8> {
    if SEGMENT_MAP.owner(p) != Owner::Normal {
        return Ok(false);
    }
    let Some(state) = shadow::get(p).filter(|_| p.is_multiple_of(16)) else {
        return Err(NEVER);
    };
    let r = if and_claim {
        debug_assert!(shadow::is_live(want));
        state.compare_exchange(want, QUARANTINED, Ordering::AcqRel, Ordering::Acquire)
    } else {
        match state.load(Ordering::Acquire) {
            s if shadow::is_live(s) && (want == 0 || s == want) => Ok(s),
            s => Err(s),
        }
    };
    r.map(|_| true)
}

/// Where a bad pointer into a core segment points, for reports.
pub struct Place {
    /// Start of the block containing the pointer (0 if not in a block of a small span).
    pub start: usize,
    /// Its length (0 likewise).
    pub len: usize,
    /// The state byte of that block's start.
    pub state: u8,
}

/// Finds the block containing `p` (any address in a normal core segment).
#[cold]
pub fn place(p: usize) -> Place {
    let none = Place {
        start: 0,
        len: 0,
        state: NEVER,
    };
    if SEGMENT_MAP.owner(p) != Owner::Normal {
        return none;
    }
    let seg = Segment::of(p);
    if p - (seg as usize) < SLICE_SIZE {
        return none; // the segment header
    }
    // SAFETY: the segment is live, so its slice records are mapped; a head is null
    // (never used) or a record of this segment (a stale one for a slice of a free
    // span only makes the report less precise).
    let span = unsafe { Segment::span_of(seg, p) };
    if span.is_null() {
        return none;
    }
    // SAFETY: `span` is a slice record of this live segment.
    let (kind, len) = unsafe { ((*span).kind, (*span).block_size as usize) };
    if kind != SpanKind::Small || len == 0 {
        return none;
    }
    let base = Segment::span_start(span) as usize;
    let start = base + (p - base) / len * len;
    let state = shadow::get(start).map_or(NEVER, |s| s.load(Ordering::Acquire));
    Place { start, len, state }
}

/// A block leaves the quarantine: still all zero (else `Err(offset)` of the first
/// changed byte, and the block stays quarantined), then `FREED` and back to the core.
#[inline(always)]
pub fn unquarantine(p: usize, len: usize) -> Result<(), usize> {
    // SAFETY: the block is quarantined: ours until we give it to the core.
    let block = unsafe { bytes(p, len) };
    if !crate::wipe::is_zero(block) {
        return Err(crate::heap::first_nonzero(block).unwrap_or(0));
    }
    if let Some(s) = shadow::get(p) {
        s.store(FREED, Ordering::Release);
    }
    // SAFETY: the core handed out `p` and we free it once (the state was QUARANTINED).
    unsafe { core_heap::free(p as *mut u8) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(16))]
    struct Block([u8; 320]);

    #[test]
    fn seal_and_check_every_size_of_some_lengths() {
        let mut b = Block([0; 320]);
        let p = b.0.as_mut_ptr() as usize;
        for len in [32, 48, 64, 80, 96, 128, 160, 320] {
            let pat = pattern(p);
            for n in 0..=len - ROOM {
                b.0.fill(0x77);
                seal(p, len, n, 16, pat);
                assert!(b.0[..n].iter().all(|&x| x == 0x77), "user bytes kept");
                assert_eq!(b.0[n], 0, "first canary byte");
                assert!(
                    b.0[len..].iter().all(|&x| x == 0x77),
                    "nothing past the block"
                );
                assert!(sealed(p, len, n, pat), "{len} {n}");
                assert_eq!(recorded(p, len, pat), Some((n, 16)));
                for i in n..len - 8 {
                    b.0[i] ^= 0x10;
                    assert!(!sealed(p, len, n, pat), "{len} {n}: byte {i} changed");
                    assert_eq!(first_change(p, len, n, pat), i);
                    b.0[i] ^= 0x10;
                }
                if n > 0 {
                    b.0[n - 1] ^= 0x10;
                    assert!(sealed(p, len, n, pat), "a user byte is not canary");
                }
            }
        }
    }

    #[test]
    fn reseal_matches_a_fresh_seal() {
        let mut b = Block([0; 320]);
        let mut fresh = Block([0; 320]);
        let p = b.0.as_mut_ptr() as usize;
        let pf = fresh.0.as_mut_ptr() as usize;
        let pat = pattern(p);
        for len in [32, 48, 96, 320] {
            for old in 0..=len - ROOM {
                for n in 0..=len - ROOM {
                    b.0.fill(0);
                    seal(p, len, old, 32, pat);
                    reseal(p, len, old, n, 32, 0);
                    // The same block sealed for `n` at once (user bytes all 0 in both;
                    // the pattern of `p`, so the bytes compare).
                    fresh.0.fill(0);
                    seal(pf, len, n, 32, pat);
                    assert_eq!(&b.0[..len], &fresh.0[..len], "{len}: {old} -> {n}");
                    assert!(sealed(p, len, n, pat));
                }
            }
        }
        b.0.fill(0);
        seal(p, 96, 10, 16, pat);
        reseal(p, 96, 10, 40, 16, 0xAA);
        assert!(
            b.0[10..40].iter().all(|&x| x == 0xAA),
            "grown bytes get the fill"
        );
        assert_eq!(recorded(p, 96, pat), Some((40, 16)));
    }
}
