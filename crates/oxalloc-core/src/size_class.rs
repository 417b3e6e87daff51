//! Size classes: which block size a request gets, and how big a span holds them.
//!
//! Sizes up to 128 bytes go in steps of 16; up to 1 KiB each power of two is cut into
//! eight equal steps (144, 160, ... 256, 288, ... 1024), which keeps the internal waste
//! under 1/9 (11.1%) where most requests fall. From 1 KiB to [`MAX_SMALL`] = 64 KiB each
//! power of two is cut into four (1280, 1536, 1792, 2048, 2560, ...): waste under 1/5,
//! but half as many classes, and every class a thread uses keeps a partly used span
//! (for these sizes several slices). With eight steps there, peak RSS was 11% higher on
//! the power-law benchmark (8 threads) and 6% on realloc growth, at the same speed.
//! Every class is a multiple of 16, so every block is 16-byte aligned (SSE), and every
//! power of two is a class, which gives natural alignment for free.
#![forbid(unsafe_code)]

/// The largest request served from size classes; larger ones take whole slices.
pub const MAX_SMALL: usize = 64 * 1024;
/// How many classes there are.
pub const NUM_CLASSES: usize = 8 + 8 * 3 + 4 * 6;
/// The first class of four steps per doubling (above 1 KiB).
const FIRST_COARSE_CLASS: usize = 8 + 8 * 3;
/// Classes up to this size get spans of at least [`MIN_BLOCKS_PER_SPAN`] blocks: a
/// single 64 KiB slice up to 4 KiB (but see [`DENSE_CLASS_MAX`]), two to four slices
/// above.
///
/// A class whose span holds few blocks takes a slow path on nearly every malloc and
/// free once its live blocks are replaced at random: every span is then nearly full, the
/// span promoted from the partial queue comes back with one or two freed blocks, and a
/// free into a parked full span requeues it. With one slice (4 blocks of 16 KiB, 6 of
/// 10 KiB), `xchurn/t2` (16 B-16 KiB churn) took the malloc slow path on 70% of its
/// 10 KiB mallocs and 45% of its 5 KiB ones; with 16 blocks, 25% and 30%.
const MULTI_BLOCK_MAX: usize = 16 * 1024;
/// Minimum number of blocks in a span of a class up to [`MULTI_BLOCK_MAX`]. Spans are
/// carved lazily (a page at a time, or one block), so the longer span costs resident
/// memory only as its blocks are used.
const MIN_BLOCKS_PER_SPAN: usize = 16;
/// Classes up to this size get spans of at least [`MIN_BLOCKS_PER_DENSE_SPAN`] blocks:
/// two slices for 640-1024 bytes, one for the rest.
///
/// Blocks freed into a span that is not its class's current one wait there until the
/// span is promoted, long after they left the cache; the current span's blocks are
/// reused while warm. With 64 blocks of 1 KiB a span, a class with a few hundred live
/// blocks replaced at random (`larson`: 16-1024 bytes) spreads them over several spans
/// and most of its frees land in the others. With 128: `larson/t1` under cachegrind
/// (scale 0.1, 512 KiB last-level cache as this VM's L2) 970K -> 733K misses, 236M ->
/// 229M instructions (fewer span switches); wall time t1 0.307 -> 0.281 s and t2
/// 0.263 -> 0.231 s (medians of 9 alternating runs). With 256 (two slices from 320
/// bytes, four for 1 KiB): the same misses, but peak RSS +5-7% in `shared-slots/t8`,
/// `calloc-churn/t4` and `python` (a longer span is pinned by any one live block).
const DENSE_CLASS_MAX: usize = 1024;
/// See [`DENSE_CLASS_MAX`].
const MIN_BLOCKS_PER_DENSE_SPAN: usize = 128;
/// Minimum number of blocks in a span of a bigger class: one, so such a span is as
/// small as the tail rule allows (a 64 KiB block gets one slice, a 40 KiB block two
/// slices for three). Every class in use keeps a partly used span, and for the big
/// classes that span is most of what a heap holds idle: with 4, `realloc` growth peaked
/// at 31.6 MiB instead of 29.9, at the same speed (a heap keeps its current span when it
/// empties, so a program that frees and allocates one big block in turn stays off the
/// central lock).
const MIN_BLOCKS_PER_BIG_SPAN: usize = 1;

/// Sizes up to this are looked up in `SMALL_TABLE`.
const TABLE_MAX: usize = 1024;

/// Requests up to this size index a heap's direct table (`direct_index`), which names
/// the current span of their class without a class lookup.
pub const DIRECT_MAX: usize = TABLE_MAX;
/// Entries in a direct table: one per request size up to [`DIRECT_MAX`], so `malloc`
/// indexes it with the size itself: one load (`[heap + size * 8]`) where an entry per
/// multiple of 16 took an add, a shift and the load (instructions per malloc(32)/free
/// pair 58 -> 56). The table is 8 KiB a heap instead of 520 bytes, of which a program
/// touches the lines of the sizes it asks for; a switch of a class's current span
/// writes one entry per size of the class (16 to 64).
pub const DIRECT_SLOTS: usize = DIRECT_MAX + 1;

/// The direct-table entry for a request of `size <= DIRECT_MAX` bytes.
#[inline(always)]
pub const fn direct_index(size: usize) -> usize {
    size
}

/// For every class, the direct-table entries that map to it: `first..end` (empty
/// above `DIRECT_MAX`).
static DIRECT_RANGE: [(u16, u16); NUM_CLASSES] = {
    let mut r = [(0u16, 0u16); NUM_CLASSES];
    let mut i = DIRECT_SLOTS;
    while i > 0 {
        i -= 1;
        let c = SMALL_TABLE[i.div_ceil(16)] as usize;
        if r[c].1 == 0 {
            r[c].1 = i as u16 + 1;
        }
        r[c].0 = i as u16;
    }
    r
};

/// Class of every multiple of 16 up to `TABLE_MAX` (classes are multiples of 16, so a
/// request rounds up to the next multiple of 16 without changing its class).
static SMALL_TABLE: [u8; TABLE_MAX / 16 + 1] = {
    let mut t = [0u8; TABLE_MAX / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = SizeClass::compute(i * 16).0;
        i += 1;
    }
    t
};

/// A size class: an index into the class table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SizeClass(pub u8);

impl SizeClass {
    /// The smallest class whose blocks hold `size` bytes (`size <= MAX_SMALL`): a
    /// table lookup up to 1 KiB (most requests), arithmetic above.
    #[inline(always)]
    pub const fn of(size: usize) -> SizeClass {
        if size <= TABLE_MAX {
            return SizeClass(SMALL_TABLE[(size + 15) >> 4]);
        }
        SizeClass::compute(size)
    }

    /// The class of `size` by arithmetic.
    const fn compute(size: usize) -> SizeClass {
        debug_assert!(size <= MAX_SMALL);
        if size <= 128 {
            // 0..=16 -> 0, 17..=32 -> 1, ...
            let s = if size == 0 { 1 } else { size };
            return SizeClass((s.div_ceil(16) - 1) as u8);
        }
        let s = size - 1;
        let p = usize::BITS - 1 - s.leading_zeros(); // floor(log2(s)), >= 7
        if s < TABLE_MAX {
            let step = (s >> (p - 3)) & 7;
            return SizeClass((8 + (p as usize - 7) * 8 + step) as u8);
        }
        let step = (s >> (p - 2)) & 3;
        SizeClass((FIRST_COARSE_CLASS + (p as usize - 10) * 4 + step) as u8)
    }

    /// The smallest request that maps to this class (0 for the first): the requests of
    /// a class are `smallest_request() ..= size()`.
    pub const fn smallest_request(self) -> usize {
        if self.0 == 0 {
            0
        } else {
            SizeClass(self.0 - 1).size() + 1
        }
    }

    /// The block size of this class in bytes.
    #[inline(always)]
    pub const fn size(self) -> usize {
        let c = self.0 as usize;
        if c < 8 {
            return (c + 1) * 16;
        }
        if c < FIRST_COARSE_CLASS {
            let g = (c - 8) / 8;
            let i = (c - 8) % 8;
            let base = 128 << g;
            return base + (i + 1) * (base / 8);
        }
        let g = (c - FIRST_COARSE_CLASS) / 4;
        let i = (c - FIRST_COARSE_CLASS) % 4;
        let base = TABLE_MAX << g;
        base + (i + 1) * (base / 4)
    }

    /// The class index as a `usize`, for table lookups.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The direct-table entries (see [`direct_index`]) of requests in this class.
    #[inline]
    pub fn direct_entries(self) -> core::ops::Range<usize> {
        let (first, end) = DIRECT_RANGE[self.index()];
        first as usize..end as usize
    }

    /// Whether a span of this class holds at least 128 blocks
    /// (the classes up to 1 KiB), so that taking and giving back one of its spans costs
    /// little per block.
    pub const fn dense(self) -> bool {
        self.size() <= DENSE_CLASS_MAX
    }

    /// Whether a span of this class holds only a few blocks (one to four: the classes
    /// above 16 KiB), so that its spans empty and fill at a high rate when blocks of
    /// the class are replaced at random.
    pub const fn few_blocks_per_span(self) -> bool {
        self.min_blocks() == MIN_BLOCKS_PER_BIG_SPAN
    }

    /// The fewest blocks a span of this class holds.
    const fn min_blocks(self) -> usize {
        let bs = self.size();
        if bs <= DENSE_CLASS_MAX {
            MIN_BLOCKS_PER_DENSE_SPAN
        } else if bs <= MULTI_BLOCK_MAX {
            MIN_BLOCKS_PER_SPAN
        } else {
            MIN_BLOCKS_PER_BIG_SPAN
        }
    }

    /// How many 64 KiB slices a span of this class covers.
    pub const fn span_slices(self) -> usize {
        let bs = self.size();
        // The fewest slices that hold the minimum number of blocks and leave at most an
        // eighth of the span as tail (one slice for every class up to 512 bytes and from
        // 1280 bytes to 4 KiB).
        let slice = crate::segment::SLICE_SIZE;
        let mut n = (bs * self.min_blocks()).div_ceil(slice);
        while (n * slice) % bs * 8 > n * slice {
            n += 1;
        }
        n
    }

    /// The smallest class that holds `size` bytes and whose block size is a multiple
    /// of `align`, so blocks at multiples of the block size from a 64 KiB aligned span
    /// start are aligned. `None` if no class fits. `align` is a power of two: masks,
    /// not the two divisions `next_multiple_of` and `is_multiple_of` compile to for a
    /// variable (30% of `posix_memalign`'s time with random alignments, before).
    pub fn aligned(size: usize, align: usize) -> Option<SizeClass> {
        debug_assert!(align.is_power_of_two());
        let mask = align - 1;
        let need = size.max(align).checked_add(mask)? & !mask;
        if need > MAX_SMALL {
            return None;
        }
        let c = SizeClass::of(need);
        if align <= 16 {
            return Some(c); // every class is a multiple of 16
        }
        // `align <= need <= MAX_SMALL`, so the shift is 5..=16.
        let shift = align.trailing_zeros() as usize;
        Some(SizeClass(ALIGNED_UP[shift - 5][c.index()]))
    }

    /// True when `off`, an offset from a span's start (below 2^22, the segment size),
    /// is a multiple of this class's block size, i.e. a block starts there: one
    /// multiplication by the class's reciprocal, no division. Any other class index
    /// answers false.
    #[inline(always)]
    pub fn is_block_offset(self, off: usize) -> bool {
        let Some(&r) = RECIPROCALS.get(self.index()) else {
            return false;
        };
        debug_assert!(off < 1 << 22);
        // `r = ceil(2^40 / size)` overshoots `2^40 / size` by less than 1, so the
        // quotient is exact for every `off < 2^22` and `size <= 2^16`.
        let q = (off as u64 * r) >> 40;
        q as usize * self.size() == off
    }
}

/// For alignments 2^5..=2^16 (by shift - 5) and every class: the smallest class at or
/// above it whose size is a multiple of the alignment (the 64 KiB class is a multiple
/// of all of them). `posix_memalign(4096, ...)` walked up the classes for it: 37 of its
/// 143 instructions.
static ALIGNED_UP: [[u8; NUM_CLASSES]; 12] = {
    let mut t = [[0u8; NUM_CLASSES]; 12];
    let mut k = 0;
    while k < 12 {
        let mask = (32usize << k) - 1;
        let mut c = 0;
        while c < NUM_CLASSES {
            let mut up = c;
            while SizeClass(up as u8).size() & mask != 0 {
                up += 1;
            }
            t[k][c] = up as u8;
            c += 1;
        }
        k += 1;
    }
    t
};

/// `ceil(2^40 / size)` for every class (see [`SizeClass::is_block_offset`]).
static RECIPROCALS: [u64; NUM_CLASSES] = {
    let mut t = [0u64; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        let size = SizeClass(c as u8).size() as u64;
        t[c] = (1u64 << 40).div_ceil(size);
        c += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_holds_exactly_the_requests_from_its_smallest_to_its_size() {
        for c in 0..NUM_CLASSES {
            let c = SizeClass(c as u8);
            let (lo, hi) = (c.smallest_request(), c.size());
            assert_eq!(SizeClass::of(lo), c, "smallest request {lo}");
            assert_eq!(SizeClass::of(hi), c, "size {hi}");
            if lo > 0 {
                assert_ne!(SizeClass::of(lo - 1), c, "{} maps to {c:?}", lo - 1);
            }
            if hi < MAX_SMALL {
                assert_ne!(SizeClass::of(hi + 1), c, "{} maps to {c:?}", hi + 1);
            }
        }
    }

    #[test]
    fn block_offsets_are_exactly_the_multiples_of_the_block_size() {
        for c in 0..NUM_CLASSES {
            let c = SizeClass(c as u8);
            let size = c.size();
            // A stride through a 4 MiB segment, then every multiple and its neighbours.
            for off in (0..1 << 22).step_by(13) {
                assert_eq!(c.is_block_offset(off), off % size == 0, "{size} {off}");
            }
            for k in 1..(1 << 22) / size {
                for off in [k * size - 1, k * size, k * size + 1] {
                    assert_eq!(c.is_block_offset(off), off % size == 0, "{size} {off}");
                }
            }
        }
        assert!(!SizeClass(NUM_CLASSES as u8).is_block_offset(0));
    }

    #[test]
    fn each_size_gets_smallest_fitting_class() {
        for n in 0..=MAX_SMALL {
            let c = SizeClass::of(n);
            assert!(c.size() >= n.max(1), "size {n} class {c:?}");
            if c.0 > 0 {
                assert!(SizeClass(c.0 - 1).size() < n, "size {n} not smallest");
            }
        }
        assert_eq!(SizeClass::of(MAX_SMALL).index(), NUM_CLASSES - 1);
        assert_eq!(SizeClass(NUM_CLASSES as u8 - 1).size(), MAX_SMALL);
    }

    #[test]
    fn classes_are_16_aligned_and_waste_is_bounded() {
        for c in 0..NUM_CLASSES as u8 {
            let c = SizeClass(c);
            assert_eq!(c.size() % 16, 0);
            if c.0 > 0 {
                let prev = SizeClass(c.0 - 1).size();
                let worst = prev + 1;
                let waste = (c.size() - worst) as f64 / c.size() as f64;
                // Below 128 bytes the 16-byte alignment floor sets the step, not the ratio;
                // above 1 KiB there are four steps per doubling instead of eight.
                let bound = if worst > TABLE_MAX { 0.2 } else { 0.125 };
                assert!(
                    worst <= 128 || waste < bound,
                    "class {} waste {waste}",
                    c.size()
                );
            }
        }
    }

    #[test]
    fn spans_hold_enough_blocks_with_little_tail() {
        for c in 0..NUM_CLASSES as u8 {
            let c = SizeClass(c);
            let span = c.span_slices() * crate::segment::SLICE_SIZE;
            let blocks = span / c.size();
            assert!(
                blocks >= c.min_blocks(),
                "class {} holds {blocks}",
                c.size()
            );
            let tail = span - blocks * c.size();
            assert!(tail * 8 <= span, "class {} tail {tail}", c.size());
        }
    }

    #[test]
    fn span_sizes_of_the_classes_around_16k() {
        // Up to 4 KiB a single slice already holds 16 blocks; above, spans grow so that
        // a class with blocks replaced at random does not switch spans on nearly every
        // malloc (see MULTI_BLOCK_MAX); above 16 KiB they stay as small as the tail allows.
        let slices = |size: usize| SizeClass::of(size).span_slices();
        assert_eq!(slices(4096), 1);
        assert_eq!(slices(5120), 2);
        assert_eq!(slices(8192), 2);
        assert_eq!(slices(10240), 3);
        assert_eq!(slices(16384), 4);
        assert_eq!(slices(20480), 1);
        assert_eq!(slices(MAX_SMALL), 1);
        assert!((0..NUM_CLASSES as u8).all(|c| SizeClass(c).span_slices() <= 4));
    }

    #[test]
    fn classes_up_to_1k_get_spans_of_128_blocks() {
        // So that a class with a few hundred live blocks keeps most of them, and most of
        // its frees, in its current span (see DENSE_CLASS_MAX).
        let slices = |size: usize| SizeClass::of(size).span_slices();
        assert_eq!(slices(512), 1);
        assert_eq!(slices(640), 2);
        assert_eq!(slices(1024), 2);
        assert_eq!(slices(1280), 1);
        for c in 0..NUM_CLASSES as u8 {
            let c = SizeClass(c);
            if c.size() <= 1024 {
                let blocks = c.span_slices() * crate::segment::SLICE_SIZE / c.size();
                assert!(blocks >= 128, "class {} holds {blocks}", c.size());
            }
        }
    }

    #[test]
    fn direct_entries_cover_exactly_their_class() {
        let mut seen = [false; DIRECT_SLOTS];
        for c in 0..NUM_CLASSES as u8 {
            for i in SizeClass(c).direct_entries() {
                assert!(!seen[i], "entry {i} twice");
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "every entry belongs to a class");
        for size in 0..=DIRECT_MAX {
            let c = SizeClass::of(size);
            assert!(
                c.direct_entries().contains(&direct_index(size)),
                "size {size}"
            );
        }
        assert!(SizeClass::of(DIRECT_MAX + 1).direct_entries().is_empty());
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        for align in [16, 32, 64, 128, 256, 4096, 65536] {
            for size in [1, 17, 100, 1000, 5000, 40000] {
                if let Some(c) = SizeClass::aligned(size, align) {
                    assert!(c.size() >= size && c.size() % align == 0);
                }
            }
        }
        assert!(SizeClass::aligned(1, 65536).is_some());
        assert!(SizeClass::aligned(65537, 16).is_none());
    }

    #[test]
    fn aligned_class_is_the_smallest_that_fits() {
        for shift in 4..=16 {
            let align = 1usize << shift;
            for size in (1..=MAX_SMALL).step_by(97).chain([align, MAX_SMALL]) {
                let want = (0..NUM_CLASSES as u8)
                    .map(SizeClass)
                    .find(|c| c.size() >= size && c.size() % align == 0);
                assert_eq!(SizeClass::aligned(size, align), want, "{size} at {align}");
            }
        }
    }
}
