//! The two-level segregated-fit (TLSF) engine behind [`crate::StaticHeap`] and
//! [`crate::GlobalStaticHeap`] (after Masmano et al., 2004; written from the paper's
//! description).
//!
//! # Layout
//! The heap is a run of blocks, each `[prev_size: u32][size | flags: u32][payload]`,
//! ended by an 8-byte sentinel header that is always "used". Sizes include the header,
//! are multiples of 8 and at least 16. Flags: `FREE`, `PREV_FREE`. A free block keeps
//! `next_free`/`prev_free` (u32 offsets) in its first payload bytes. Everything is an
//! offset from the heap base, so the engine works on a buffer wherever it lies (a
//! `GlobalStaticHeap` can even be moved before use).
//!
//! Free blocks sit in `heads[fl][sl]`: `fl` is the power of two of the size (sizes below
//! 128 share `fl = 0` in steps of 8), `sl` splits each power into 16 ranges. Two bitmaps
//! say which lists are non-empty, so finding a fitting list is two `trailing_zeros`:
//! O(1) allocate and free, at most 1/16 of internal waste from the class rounding.
//!
//! # Invariants
//! * No two free blocks are neighbours (free coalesces both ways at once).
//! * `PREV_FREE` of a block is set iff the block before it is free, and then
//!   `prev_size` is that block's size.
//! * `free_bytes`/`free_blocks` equal the sums over the free lists.

/// Bytes of block header.
pub(crate) const HDR: u32 = 8;
/// Smallest block: header and two free-list links.
pub(crate) const MIN_BLOCK: u32 = 16;
const FREE: u32 = 1;
const PREV_FREE: u32 = 2;
const FLAGS: u32 = 7;
const SL_BITS: u32 = 4;
const SL_COUNT: usize = 1 << SL_BITS;
const SMALL: u32 = 128;
const FL_SHIFT: u32 = 7;
const FL_COUNT: usize = 26;
const NIL: u32 = u32::MAX;

/// A double free or a pointer that is not a live block, caught before any change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The block is already free.
    DoubleFree,
    /// The pointer is outside the heap or not where a payload can start.
    Foreign,
}

impl core::fmt::Display for HeapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            HeapError::DoubleFree => "double free",
            HeapError::Foreign => "pointer not from this heap",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HeapError {}

/// Counters and fragmentation of a heap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes managed (blocks and sentinel).
    pub heap_bytes: usize,
    /// Bytes in free blocks, headers included.
    pub free_bytes: usize,
    /// Number of free blocks.
    pub free_blocks: usize,
    /// Number of live allocations.
    pub used_blocks: usize,
    /// Largest request (payload bytes, alignment 8) that can succeed now.
    pub largest_free: usize,
}

impl HeapStats {
    /// External fragmentation in per mille: `1000 * (1 - largest free block / all free)`.
    /// 0 means all free memory is one block.
    pub fn fragmentation_permille(&self) -> u32 {
        if self.free_bytes == 0 {
            return 0;
        }
        let largest = (self.largest_free + HDR as usize).min(self.free_bytes);
        (1000 - largest as u64 * 1000 / self.free_bytes as u64) as u32
    }
}

/// The engine's state (the blocks themselves live in the heap memory).
pub(crate) struct Tlsf {
    fl_map: u32,
    sl_map: [u32; FL_COUNT],
    heads: [[u32; SL_COUNT]; FL_COUNT],
    /// Offset of the sentinel; 0 before `init` (no blocks).
    end: u32,
    free_bytes: usize,
    free_blocks: usize,
    used_blocks: usize,
}

#[inline]
fn mapping(size: u32) -> (usize, usize) {
    if size < SMALL {
        (0, (size >> 3) as usize)
    } else {
        let f = 31 - size.leading_zeros();
        let sl = (size >> (f - SL_BITS)) as usize & (SL_COUNT - 1);
        ((f - FL_SHIFT + 1) as usize, sl)
    }
}

/// The first class whose blocks are all at least `size`.
#[inline]
fn mapping_search(size: u32) -> Option<(usize, usize)> {
    if size < SMALL {
        return Some(mapping(size));
    }
    let f = 31 - size.leading_zeros();
    Some(mapping(size.checked_add((1 << (f - SL_BITS)) - 1)?))
}

impl Tlsf {
    /// No blocks; `init` gives it a heap.
    pub(crate) const EMPTY: Tlsf = Tlsf {
        fl_map: 0,
        sl_map: [0; FL_COUNT],
        heads: [[NIL; SL_COUNT]; FL_COUNT],
        end: 0,
        free_bytes: 0,
        free_blocks: 0,
        used_blocks: 0,
    };

    pub(crate) fn is_init(&self) -> bool {
        self.end != 0
    }

    /// Makes `[base, base+len)` one free block plus sentinel. Uses at most 4 GiB.
    /// Returns false (and stays empty) when `len` is too small.
    ///
    /// # Safety
    /// `base` is 8-aligned and `[base, base+len)` is valid for reads and writes, owned by
    /// this engine from now on.
    pub(crate) unsafe fn init(&mut self, base: *mut u8, len: usize) -> bool {
        *self = Self::EMPTY;
        let len = (len.min(u32::MAX as usize) as u32) & !FLAGS;
        if len < MIN_BLOCK + HDR {
            return false;
        }
        let size = len - HDR;
        // SAFETY: both headers lie inside the buffer (caller's contract).
        unsafe {
            w(base, 0, 0);
            w(base, size, size);
            w(base, size + 4, PREV_FREE);
            self.end = size;
            self.set_hdr(base, 0, size, true, false);
            self.insert(base, 0, size);
        }
        true
    }

    // ---- raw header access (offsets into the heap) ----

    /// # Safety
    /// `o` is a block offset of this heap.
    #[inline]
    unsafe fn size_flags(&self, base: *mut u8, o: u32) -> u32 {
        // SAFETY: caller's contract.
        unsafe { r(base, o + 4) }
    }

    /// # Safety
    /// `o` is a block offset of this heap.
    #[inline]
    unsafe fn set_hdr(&self, base: *mut u8, o: u32, size: u32, free: bool, prev_free: bool) {
        let f = if free { FREE } else { 0 } | if prev_free { PREV_FREE } else { 0 };
        // SAFETY: caller's contract.
        unsafe { w(base, o + 4, size | f) }
    }

    /// Sets the `PREV_FREE` flag (and `prev_size`) of the block at `o`.
    ///
    /// # Safety
    /// `o` is a block offset (or the sentinel) of this heap.
    #[inline]
    unsafe fn mark_prev(&self, base: *mut u8, o: u32, prev_free: Option<u32>) {
        // SAFETY: caller's contract.
        unsafe {
            let sf = r(base, o + 4);
            match prev_free {
                Some(size) => {
                    w(base, o, size);
                    w(base, o + 4, sf | PREV_FREE);
                }
                None => w(base, o + 4, sf & !PREV_FREE),
            }
        }
    }

    /// # Safety
    /// `o` is a free block of `size` bytes, on no list.
    unsafe fn insert(&mut self, base: *mut u8, o: u32, size: u32) {
        let (fl, sl) = mapping(size);
        let head = self.heads[fl][sl];
        // SAFETY: `o` and `head` are free blocks, so their link words are ours.
        unsafe {
            w(base, o + 8, head);
            w(base, o + 12, NIL);
            if head != NIL {
                w(base, head + 12, o);
            }
        }
        self.heads[fl][sl] = o;
        self.sl_map[fl] |= 1 << sl;
        self.fl_map |= 1 << fl;
        self.free_bytes += size as usize;
        self.free_blocks += 1;
    }

    /// # Safety
    /// `o` is a free block of `size` bytes on its list.
    unsafe fn remove(&mut self, base: *mut u8, o: u32, size: u32) {
        let (fl, sl) = mapping(size);
        // SAFETY: `o` and its list neighbours are free blocks.
        unsafe {
            let (next, prev) = (r(base, o + 8), r(base, o + 12));
            if next != NIL {
                w(base, next + 12, prev);
            }
            if prev != NIL {
                w(base, prev + 8, next);
            } else {
                self.heads[fl][sl] = next;
                if next == NIL {
                    self.sl_map[fl] &= !(1 << sl);
                    if self.sl_map[fl] == 0 {
                        self.fl_map &= !(1 << fl);
                    }
                }
            }
        }
        self.free_bytes -= size as usize;
        self.free_blocks -= 1;
    }

    /// The first non-empty list at or above class `(fl, sl)`.
    #[inline]
    fn find(&self, fl: usize, sl: usize) -> Option<(usize, usize)> {
        if fl >= FL_COUNT {
            return None;
        }
        let bits = self.sl_map[fl] & (u32::MAX << sl);
        if bits != 0 {
            return Some((fl, bits.trailing_zeros() as usize));
        }
        let fls = self.fl_map & u32::MAX.checked_shl(fl as u32 + 1).unwrap_or(0);
        if fls == 0 {
            return None;
        }
        let fl = fls.trailing_zeros() as usize;
        Some((fl, self.sl_map[fl].trailing_zeros() as usize))
    }

    /// Takes a free block of at least `size` bytes off its list: `(offset, size)`.
    #[inline]
    fn take(&mut self, base: *mut u8, size: u32) -> Option<(u32, u32)> {
        let found = mapping_search(size).and_then(|(fl, sl)| self.find(fl, sl));
        let (o, bsize) = match found {
            Some((fl, sl)) => {
                let o = self.heads[fl][sl];
                // SAFETY: `o` heads a free list, so it is a free block.
                (o, unsafe { self.size_flags(base, o) } & !FLAGS)
            }
            None => self.fit_in_own_class(base, size)?,
        };
        // SAFETY: `o` is a free block on its list.
        unsafe { self.remove(base, o, bsize) };
        Some((o, bsize))
    }

    /// The way out when no class above `size`'s own has a block: the search rounds up
    /// (every block of the class it picks fits, so it takes the first without looking),
    /// which passes over blocks of `size`'s own class that are big enough. Before the
    /// heap is called full, that class's list is searched, first fit: a nearly full heap
    /// no longer fails a request that one of its holes can hold. Only a request that
    /// would otherwise fail pays for the walk.
    #[cold]
    fn fit_in_own_class(&self, base: *mut u8, size: u32) -> Option<(u32, u32)> {
        let (fl, sl) = mapping(size);
        if fl >= FL_COUNT {
            return None;
        }
        let mut o = self.heads[fl][sl];
        while o != NIL {
            // SAFETY: `o` is on a free list, so it is a free block with its link words.
            let (bsize, next) = unsafe { (self.size_flags(base, o) & !FLAGS, r(base, o + 8)) };
            if bsize >= size {
                return Some((o, bsize));
            }
            o = next;
        }
        None
    }

    /// Marks the free, unlisted block `o` (`bsize` bytes) used with `need` bytes and
    /// gives the tail back to the lists when it is big enough.
    ///
    /// # Safety
    /// `o` is an unlisted free block of `bsize >= need` bytes whose predecessor is used.
    unsafe fn use_block(&mut self, base: *mut u8, o: u32, bsize: u32, need: u32) {
        // SAFETY: all offsets below are inside `o`'s block or its successor's header.
        unsafe {
            if bsize - need >= MIN_BLOCK {
                let rest = o + need;
                let rsize = bsize - need;
                self.set_hdr(base, o, need, false, false);
                w(base, rest, need);
                self.set_hdr(base, rest, rsize, true, false);
                self.mark_prev(base, rest + rsize, Some(rsize));
                self.insert(base, rest, rsize);
            } else {
                self.set_hdr(base, o, bsize, false, false);
                self.mark_prev(base, o + bsize, None);
            }
        }
        self.used_blocks += 1;
    }

    /// Allocates `size` bytes aligned to `align`; returns the payload offset.
    pub(crate) fn alloc(&mut self, base: *mut u8, size: usize, align: usize) -> Option<u32> {
        let need = u32::try_from(size.max(8).checked_add(7)? & !7)
            .ok()?
            .checked_add(HDR)?;
        if align <= 8 {
            let (o, bsize) = self.take(base, need)?;
            // SAFETY: `o` was just taken from a free list; free blocks have used
            // predecessors (coalescing invariant).
            unsafe { self.use_block(base, o, bsize, need) };
            return Some(o + HDR);
        }
        let align32 = u32::try_from(align).ok()?;
        let search = need.checked_add(align32)?.checked_add(MIN_BLOCK)?;
        let (o, bsize) = self.take(base, search)?;
        let p = base as usize + (o + HDR) as usize;
        let mut a = (p + align - 1) & !(align - 1);
        if a != p && a - p < MIN_BLOCK as usize {
            a = (p + MIN_BLOCK as usize + align - 1) & !(align - 1);
        }
        let gap = (a - p) as u32;
        let (o2, size2) = (o + gap, bsize - gap);
        // SAFETY: `gap + need <= bsize` by the search size; the front piece (if any) is a
        // block of at least MIN_BLOCK bytes whose predecessor is used.
        unsafe {
            if gap > 0 {
                self.set_hdr(base, o, gap, true, false);
                w(base, o2, gap);
                self.set_hdr(base, o2, size2, false, true);
                self.insert(base, o, gap);
            }
            let pf = gap > 0;
            self.use_block(base, o2, size2, need);
            if pf {
                let sf = self.size_flags(base, o2);
                w(base, o2 + 4, sf | PREV_FREE);
            }
        }
        Some(o2 + HDR)
    }

    /// Checks that `payload` can be a live block of this heap; returns its offset.
    fn block_of(&self, base: *mut u8, payload: usize) -> Result<u32, HeapError> {
        let off = payload.wrapping_sub(base as usize);
        if off < HDR as usize || off > self.end as usize || off & 7 != 0 {
            return Err(HeapError::Foreign);
        }
        let o = off as u32 - HDR;
        // SAFETY: `o` is 8-aligned and below the sentinel, so it is inside the heap; the
        // caller's contract makes it a block start.
        let sf = unsafe { self.size_flags(base, o) };
        if sf & FREE != 0 {
            return Err(HeapError::DoubleFree);
        }
        if sf & !FLAGS == 0 || o + (sf & !FLAGS) > self.end {
            return Err(HeapError::Foreign);
        }
        Ok(o)
    }

    /// Frees the block whose payload starts at `payload` and coalesces it.
    ///
    /// # Safety
    /// `payload` is the address of a block allocated here (a double free of one is
    /// detected and refused, while its header is intact).
    pub(crate) unsafe fn free(&mut self, base: *mut u8, payload: usize) -> Result<(), HeapError> {
        let o = self.block_of(base, payload)?;
        // SAFETY: `o` is a live block; its neighbours are blocks or the sentinel.
        unsafe {
            let sf = self.size_flags(base, o);
            // Mark the block itself free even if it merges into its predecessor below:
            // its stale header then still says "free" to a second `free` of it.
            w(base, o + 4, sf | FREE);
            let mut start = o;
            let mut total = sf & !FLAGS;
            let next = o + total;
            let nsf = self.size_flags(base, next);
            if nsf & FREE != 0 {
                self.remove(base, next, nsf & !FLAGS);
                total += nsf & !FLAGS;
            }
            if sf & PREV_FREE != 0 {
                let psize = r(base, o);
                start = o - psize;
                self.remove(base, start, psize);
                total += psize;
            }
            self.set_hdr(base, start, total, true, false);
            self.mark_prev(base, start + total, Some(total));
            self.insert(base, start, total);
        }
        self.used_blocks -= 1;
        Ok(())
    }

    /// Grows the live block at `payload` to `new_size` payload bytes in place, by taking
    /// the free block after it. False (and nothing changed) when that does not fit.
    ///
    /// # Safety
    /// `payload` is a live block of this heap.
    pub(crate) unsafe fn grow_in_place(
        &mut self,
        base: *mut u8,
        payload: usize,
        new_size: usize,
    ) -> bool {
        let Some(need) = u32::try_from(new_size.max(8).saturating_add(7) & !7)
            .ok()
            .and_then(|n| n.checked_add(HDR))
        else {
            return false;
        };
        let o = (payload - base as usize) as u32 - HDR;
        // SAFETY: `o` is live; the next block is a block or the sentinel.
        unsafe {
            let sf = self.size_flags(base, o);
            let size = sf & !FLAGS;
            if need <= size {
                return true;
            }
            let next = o + size;
            let nsf = self.size_flags(base, next);
            if nsf & FREE == 0 || size + (nsf & !FLAGS) < need {
                return false;
            }
            self.remove(base, next, nsf & !FLAGS);
            let prev_free = sf & PREV_FREE != 0;
            self.used_blocks -= 1;
            self.use_block(base, o, size + (nsf & !FLAGS), need);
            if prev_free {
                let sf = self.size_flags(base, o);
                w(base, o + 4, sf | PREV_FREE);
            }
        }
        true
    }

    /// Payload bytes usable in the live block at `payload`.
    ///
    /// # Safety
    /// `payload` is a live block of this heap.
    pub(crate) unsafe fn usable(&self, base: *mut u8, payload: usize) -> usize {
        let o = (payload - base as usize) as u32 - HDR;
        // SAFETY: caller's contract.
        ((unsafe { self.size_flags(base, o) } & !FLAGS) - HDR) as usize
    }

    /// Counters; `largest_free` walks the one list of the highest class.
    pub(crate) fn stats(&self, base: *mut u8) -> HeapStats {
        let mut largest = 0;
        if self.fl_map != 0 {
            let fl = 31 - self.fl_map.leading_zeros() as usize;
            let sl = 31 - self.sl_map[fl].leading_zeros() as usize;
            let mut o = self.heads[fl][sl];
            while o != NIL {
                // SAFETY: `o` walks a free list of this heap.
                unsafe {
                    largest = largest.max(self.size_flags(base, o) & !FLAGS);
                    o = r(base, o + 8);
                }
            }
        }
        HeapStats {
            heap_bytes: if self.end == 0 {
                0
            } else {
                (self.end + HDR) as usize
            },
            free_bytes: self.free_bytes,
            free_blocks: self.free_blocks,
            used_blocks: self.used_blocks,
            largest_free: largest.saturating_sub(HDR) as usize,
        }
    }

    /// Walks every block and checks the invariants (for tests and debugging).
    pub(crate) fn check(&self, base: *mut u8) -> Result<(), &'static str> {
        let (mut o, mut prev_free, mut prev_size) = (0u32, false, 0u32);
        let (mut free_bytes, mut free_blocks, mut used) = (0usize, 0usize, 0usize);
        while o < self.end {
            // SAFETY: `o` walks block by block from 0 to the sentinel.
            let sf = unsafe { self.size_flags(base, o) };
            let size = sf & !FLAGS;
            if size < MIN_BLOCK || size & 7 != 0 || o + size > self.end {
                return Err("bad block size");
            }
            if (sf & PREV_FREE != 0) != prev_free {
                return Err("PREV_FREE flag wrong");
            }
            // SAFETY: as above.
            if prev_free && unsafe { r(base, o) } != prev_size {
                return Err("prev_size wrong");
            }
            let free = sf & FREE != 0;
            if free && prev_free {
                return Err("two free neighbours");
            }
            if free {
                free_bytes += size as usize;
                free_blocks += 1;
            } else {
                used += 1;
            }
            (prev_free, prev_size, o) = (free, size, o + size);
        }
        if o != self.end {
            return Err("blocks overrun the sentinel");
        }
        // SAFETY: the sentinel header.
        if (unsafe { self.size_flags(base, o) } & PREV_FREE != 0) != prev_free {
            return Err("sentinel PREV_FREE wrong");
        }
        if free_bytes != self.free_bytes
            || free_blocks != self.free_blocks
            || used != self.used_blocks
        {
            return Err("counters disagree with blocks");
        }
        Ok(())
    }
}

/// # Safety
/// `base + o` is 4-aligned and inside the heap.
#[inline(always)]
unsafe fn r(base: *mut u8, o: u32) -> u32 {
    // SAFETY: caller's contract.
    unsafe { base.add(o as usize).cast::<u32>().read() }
}

/// # Safety
/// `base + o` is 4-aligned and inside the heap.
#[inline(always)]
unsafe fn w(base: *mut u8, o: u32, v: u32) {
    // SAFETY: caller's contract.
    unsafe { base.add(o as usize).cast::<u32>().write(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest block size class `(fl, sl)` holds, from the layout the module
    /// describes (not from `mapping`): below 128 in steps of 8, then each power of two
    /// in 16 ranges.
    fn class_min((fl, sl): (usize, usize)) -> u64 {
        if fl == 0 {
            sl as u64 * 8
        } else {
            let f = fl as u32 + FL_SHIFT - 1;
            (1u64 << f) + ((sl as u64) << (f - SL_BITS))
        }
    }

    #[test]
    fn mapping_is_monotonic_and_search_rounds_up() {
        // Every class in list order (index fl * SL_COUNT + sl), with its smallest size.
        let mins: Vec<u64> = (0..FL_COUNT * SL_COUNT)
            .map(|i| class_min((i / SL_COUNT, i % SL_COUNT)))
            .collect();
        assert!(
            mins.windows(2).all(|w| w[0] < w[1]),
            "classes in size order"
        );
        let index = |(fl, sl): (usize, usize)| fl * SL_COUNT + sl;
        let check = |size: u32| {
            let s = u64::from(size);
            // `mapping` files a block under the class whose range holds its size.
            let i = index(mapping(size));
            assert!(
                mins[i] <= s && mins.get(i + 1).is_none_or(|&next| s < next),
                "mapping({size}) = {:?}, whose sizes start at {}",
                mapping(size),
                mins[i]
            );
            // `mapping_search` names the first class whose every block is at least
            // `size` (so any block found there fits), or none when no class is.
            let first = mins.partition_point(|&m| m < s);
            let want = (first < mins.len()).then_some((first / SL_COUNT, first % SL_COUNT));
            assert_eq!(mapping_search(size), want, "mapping_search({size})");
        };
        // Block sizes are multiples of 8 and at least MIN_BLOCK: all of them up to
        // 1 MiB, then each side of every class boundary up to the largest sizes.
        for size in (MIN_BLOCK..1 << 20).step_by(8) {
            check(size);
        }
        for &m in &mins {
            for s in [m.saturating_sub(8), m, m + 8] {
                if s >= u64::from(MIN_BLOCK) && s <= u64::from(u32::MAX - 7) {
                    check(s as u32);
                }
            }
        }
        check(u32::MAX - 7);
    }

    #[test]
    fn a_full_heap_reuses_a_hole_of_the_requests_own_class() {
        let mut buf = vec![0u64; 8192];
        let base = buf.as_mut_ptr().cast::<u8>();
        let mut t = Tlsf::EMPTY;
        // SAFETY: the vector is ours, 8-aligned, 64 KiB.
        assert!(unsafe { t.init(base, 65536) });
        let hole = t.alloc(base, 1000, 8).unwrap();
        t.alloc(base, 8, 8).unwrap(); // keeps the hole from merging with what follows
                                      // Fill the rest: the largest request that fits, until none does.
        loop {
            let (mut lo, mut hi) = (0usize, 65536usize);
            while hi - lo > 1 {
                let mid = (lo + hi) / 2;
                if let Some(o) = t.alloc(base, mid, 8) {
                    // SAFETY: just allocated, freed once (the heap is as before).
                    unsafe { t.free(base, base as usize + o as usize).unwrap() };
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            if lo == 0 {
                break;
            }
            t.alloc(base, lo, 8).unwrap();
        }
        // SAFETY: a live block, freed once.
        unsafe { t.free(base, base as usize + hole as usize).unwrap() };
        assert_eq!(t.stats(base).free_blocks, 1);
        // The search for 1000 bytes rounds up past the hole's class, which is the only
        // free block: the own-class walk finds it.
        let need = 1000 + HDR;
        assert!(mapping_search(need).unwrap() > mapping(need));
        assert_eq!(t.alloc(base, 1000, 8), Some(hole));
        t.check(base).unwrap();
    }

    #[test]
    fn alloc_free_restores_one_block() {
        let mut buf = vec![0u64; 1024];
        let base = buf.as_mut_ptr().cast::<u8>();
        let mut t = Tlsf::EMPTY;
        // SAFETY: the vector is ours, 8-aligned, 8 KiB.
        assert!(unsafe { t.init(base, 8192) });
        let a = t.alloc(base, 100, 8).unwrap();
        let b = t.alloc(base, 10, 64).unwrap();
        assert_eq!((base as usize + b as usize) % 64, 0);
        t.check(base).unwrap();
        // SAFETY: live blocks, freed once; the second free of `a` is refused.
        unsafe {
            t.free(base, base as usize + a as usize).unwrap();
            assert_eq!(
                t.free(base, base as usize + a as usize),
                Err(HeapError::DoubleFree)
            );
            t.free(base, base as usize + b as usize).unwrap();
        }
        t.check(base).unwrap();
        assert_eq!(t.stats(base).free_blocks, 1);
    }
}
