//! Out-of-line metadata: everything the allocator knows about a small slot lives in
//! separately mapped arrays, far from user data and behind guard pages, so no overflow,
//! underflow or write after free in a block can reach it.
//!
//! Per size class there are four arrays, each an [`Arena`] (reserved address space,
//! committed as it grows): [`SlabMeta`] per slab (which slots the shared pool may hand
//! out), and per slot its state byte, its requested size (`u32`) and, with
//! `OXALLOC_LEAKS=1`, its allocation stack. Slot `i` of slab `k` has the global index
//! `k * slots_per_slab + i` in the per-slot arrays.
//!
//! [`SlabMeta`] is used under the class lock only. The per-slot arrays are atomics,
//! reached without a lock through their base addresses (`crate::heap` publishes them
//! with the count of opened slabs, after the arrays are committed for those slabs).

use crate::backtrace::Stack;

/// The most slots a slab has: the bitmaps hold this many bits.
pub const MAX_SLOTS: usize = 2048;
const WORDS: usize = MAX_SLOTS / 64;

/// The shared pool's view of a slab. A slot is `taken` from the moment the pool hands
/// it to a thread's magazine (or straight to a caller) until it is given back: while
/// taken it may be cached, live or quarantined, which its state byte tells
/// (`crate::heap`). The pool only ever hands out slots that are not taken.
#[repr(C)]
pub struct SlabMeta {
    /// Slots out of the pool.
    pub taken: [u64; WORDS],
    /// Slots free for reuse.
    pub free_slots: u32,
    /// The next slab on the class's list of slabs with free slots, as index + 1.
    pub next_partial: u32,
    /// Whether the slab is on that list.
    pub on_partial: bool,
    /// Bit `w` set when word `w` of the bitmap may have a free slot (not taken): [`SlabMeta::pick_free`] finds a word in O(1) and clears stale bits;
    /// whoever frees a slot sets its word's bit ([`SlabMeta::mark_free`]).
    pub avail: u32,
}

/// Tests bit `i` of a bitmap.
#[inline]
pub fn bit(map: &[u64; WORDS], i: usize) -> bool {
    map[i / 64] & (1 << (i % 64)) != 0
}

/// Sets or clears bit `i` of a bitmap.
#[inline]
pub fn set_bit(map: &mut [u64; WORDS], i: usize, on: bool) {
    if on {
        map[i / 64] |= 1 << (i % 64);
    } else {
        map[i / 64] &= !(1 << (i % 64));
    }
}

impl SlabMeta {
    /// Marks every word that holds one of `slots` slots as possibly free (a new slab).
    pub fn open(&mut self, slots: usize) {
        let words = slots.div_ceil(64);
        self.avail = if words >= 32 {
            u32::MAX
        } else {
            (1u32 << words) - 1
        };
    }

    /// Records that slot `i` became free for reuse.
    #[inline]
    pub fn mark_free(&mut self, i: usize) {
        self.avail |= 1 << (i / 64);
    }

    /// Picks a free slot below `slots`: the lowest word of the bitmap with a free slot,
    /// and within it a random free slot of the *window* (`window` consecutive slots,
    /// about a page of memory) that holds the word's lowest free slot. So a slab fills
    /// roughly page by page (few pages and TLB entries in use, neighbouring blocks
    /// share lines), while the order of addresses within a page stays unpredictable.
    /// `window` is a power of two. The caller knows `free_slots > 0` and marks the slot
    /// taken.
    #[inline]
    pub fn pick_free(&mut self, slots: usize, window: usize, random: u64) -> Option<usize> {
        while self.avail != 0 {
            let w = self.avail.trailing_zeros() as usize;
            let mut free = !self.taken[w];
            let valid = slots.saturating_sub(w * 64);
            if valid < 64 {
                free &= (1u64 << valid) - 1;
            }
            if free != 0 {
                // The window of the lowest free slot, clipped to this word.
                let low = w * 64 + free.trailing_zeros() as usize;
                let start = low & !(window - 1);
                let lo = start.max(w * 64) - w * 64;
                let hi = (start + window).min(w * 64 + 64) - w * 64;
                let in_window = free & (u64::MAX >> (64 - hi)) & (u64::MAX << lo);
                // The first free slot at or after a random point of the window
                // (wrapping round to the window's start).
                let at = lo + (((random & 0xFFFF_FFFF) * (hi - lo) as u64) >> 32) as usize;
                let after = in_window & (u64::MAX << at);
                let b = if after != 0 { after } else { in_window }.trailing_zeros();
                if free & !(1u64 << b) == 0 {
                    self.avail &= !(1 << w); // the word's last free slot
                }
                return Some(w * 64 + b as usize);
            }
            self.avail &= !(1 << w); // stale
        }
        None
    }
}

/// Slots per window of [`SlabMeta::pick_free`] for slots of `stride` bytes: about a
/// page's worth, but at least 8 slots (so big classes keep some randomness) and at most
/// 64 (a bitmap word), rounded down to a power of two (the window of a slot is then a
/// mask away, no division).
pub const fn pick_window(stride: usize) -> usize {
    let n = oxalloc_sys::PAGE_SIZE / stride;
    let n = if n < 8 {
        8
    } else if n > 64 {
        64
    } else {
        n
    };
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Address space reserved as `PROT_NONE` and committed (made read-write) from the
/// start as it is needed, in steps of [`Arena::STEP`] bytes.
pub struct Arena {
    base: usize,
    reserved: usize,
    committed: usize,
}

impl Arena {
    /// Commit granularity.
    pub const STEP: usize = 64 * 1024;

    /// An arena with nothing reserved.
    pub const fn empty() -> Arena {
        Arena {
            base: 0,
            reserved: 0,
            committed: 0,
        }
    }

    /// Reserves `bytes` (rounded up to pages) of address space.
    pub fn reserve(&mut self, bytes: usize) -> bool {
        let len = bytes.next_multiple_of(oxalloc_sys::PAGE_SIZE);
        match oxalloc_sys::reserve(len) {
            Some(p) => {
                self.base = p.as_ptr() as usize;
                self.reserved = len;
                true
            }
            None => false,
        }
    }

    /// Start address (0 if nothing is reserved).
    pub fn base(&self) -> usize {
        self.base
    }

    /// Makes sure the first `bytes` bytes are committed.
    pub fn ensure(&mut self, bytes: usize) -> bool {
        if bytes <= self.committed {
            return true;
        }
        if bytes > self.reserved {
            return false;
        }
        let upto = bytes.next_multiple_of(Self::STEP).min(self.reserved);
        let start = self.base + self.committed;
        // SAFETY: `[start, base + upto)` lies in our reservation and was never opened,
        // so it holds no object.
        if !unsafe { oxalloc_sys::protect(start as *mut u8, upto - self.committed, true) } {
            return false;
        }
        self.committed = upto;
        true
    }

    /// The first `n` elements of the arena seen as an array of `T`.
    ///
    /// Panics (aborts) if they are not all committed.
    #[inline]
    pub fn slice<T>(&mut self, n: usize) -> &mut [T] {
        assert!(n * core::mem::size_of::<T>() <= self.committed);
        // The elements lie in committed, read-write memory of this arena (checked
        // above), zero-initialised by the kernel; every `T` used here is valid when
        // all zero, and the arena's base is page aligned.
        // SAFETY: as just said; the owner's lock and `&mut self` make it unique.
        unsafe { core::slice::from_raw_parts_mut(self.base as *mut T, n) }
    }

    /// Element `i` of the arena seen as an array of `T`.
    ///
    /// Panics (aborts) if the element is not committed, so a bad index can never touch
    /// memory outside the arena.
    #[inline]
    pub fn get<T>(&mut self, i: usize) -> &mut T {
        let size = core::mem::size_of::<T>();
        assert!((i + 1) * size <= self.committed);
        let p = (self.base + i * size) as *mut T;
        // The element lies in committed, read-write memory of this arena (checked
        // above), which is zero-initialised by the kernel, and every `T` used here
        // (integers, arrays of them, `SlabMeta`) is valid when all zero.
        // SAFETY: as just said; the owner's lock and `&mut self` make it unique.
        unsafe { &mut *p }
    }
}

/// The per-slot metadata arrays of one size class.
pub struct ClassMeta {
    slabs: Arena,
    states: Arena,
    sizes: Arena,
    stacks: Arena,
    slots_per_slab: usize,
}

impl ClassMeta {
    /// Nothing reserved yet.
    pub const fn empty() -> ClassMeta {
        ClassMeta {
            slabs: Arena::empty(),
            states: Arena::empty(),
            sizes: Arena::empty(),
            stacks: Arena::empty(),
            slots_per_slab: 0,
        }
    }

    /// Reserves the arrays for up to `max_slabs` slabs of `slots` slots.
    pub fn reserve(&mut self, max_slabs: usize, slots: usize, stacks: bool) -> bool {
        self.slots_per_slab = slots;
        let n = max_slabs * slots;
        self.slabs
            .reserve(max_slabs * core::mem::size_of::<SlabMeta>())
            && self.states.reserve(n)
            && self.sizes.reserve(n * 4)
            && (!stacks || self.stacks.reserve(n * core::mem::size_of::<Stack>()))
    }

    /// Commits the metadata of slabs `0..=k`.
    pub fn ensure_slab(&mut self, k: usize) -> bool {
        let n = (k + 1) * self.slots_per_slab;
        self.slabs
            .ensure((k + 1) * core::mem::size_of::<SlabMeta>())
            && self.states.ensure(n)
            && self.sizes.ensure(n * 4)
            && (self.stacks.base() == 0 || self.stacks.ensure(n * core::mem::size_of::<Stack>()))
    }

    /// The bitmaps of slab `k`.
    #[inline]
    pub fn slab(&mut self, k: usize) -> &mut SlabMeta {
        self.slabs.get(k)
    }

    /// Base addresses of the per-slot arrays: states (`u8`), sizes (`u32`), stacks
    /// (0 when stacks are not recorded).
    pub fn bases(&self) -> (usize, usize, usize) {
        (self.states.base(), self.sizes.base(), self.stacks.base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slab record before `open`.
    fn unopened() -> SlabMeta {
        SlabMeta {
            taken: [0; WORDS],
            free_slots: 0,
            next_partial: 0,
            on_partial: false,
            avail: 0,
        }
    }

    #[test]
    fn pick_free_fills_windows_in_order_at_random_within() {
        let mut m = unopened();
        m.open(100);
        let mut state = 0x1234_5678_9abc_def1u64;
        for win in 0..100usize.div_ceil(8) {
            let mut seen = [false; 8];
            let first = win * 8;
            let n = (100 - first).min(8);
            let mut order = [0usize; 8];
            for o in order.iter_mut().take(n) {
                let r = crate::mitigations::xorshift64_star(&mut state);
                let i = m.pick_free(100, 8, r).expect("free slots left");
                assert!(
                    (first..first + n).contains(&i),
                    "slot {i} outside window {win}"
                );
                assert!(!seen[i - first], "slot {i} picked twice");
                seen[i - first] = true;
                set_bit(&mut m.taken, i, true);
                *o = i;
            }
            if n == 8 {
                assert!(
                    order[..n].windows(2).any(|p| p[1] != p[0] + 1),
                    "in order: {order:?}"
                );
            }
        }
        assert_eq!(m.pick_free(100, 8, 1), None);
        // A hole in an earlier window is refilled before later windows are touched.
        set_bit(&mut m.taken, 77, false);
        set_bit(&mut m.taken, 13, false);
        m.mark_free(77);
        m.mark_free(13);
        assert_eq!(m.pick_free(100, 8, 5), Some(13));
        set_bit(&mut m.taken, 13, true);
        assert_eq!(m.pick_free(100, 8, 5), Some(77));
        assert_eq!(pick_window(32), 64);
        assert_eq!(pick_window(96), 32);
        assert_eq!(pick_window(528), 8);
        assert_eq!(pick_window(65552), 8);
    }

    #[test]
    fn pick_free_skips_taken_and_out_of_range_slots() {
        let mut m = unopened();
        m.open(99);
        assert_eq!(m.avail, 0b11);
        for i in 0..99 {
            set_bit(&mut m.taken, i, i != 70);
        }
        for r in [0u64, 1, 63, 12345, u64::MAX] {
            assert_eq!(m.pick_free(99, 64, r), Some(70));
            // It was the word's last free slot: the word is no longer offered.
            assert_eq!(m.avail & 0b10, 0);
            m.mark_free(70); // as if it had not been taken
        }
        set_bit(&mut m.taken, 70, true);
        assert_eq!(m.pick_free(99, 64, 7), None);
        assert_eq!(m.avail, 0, "stale words cleared");
        set_bit(&mut m.taken, 70, false);
        m.mark_free(70);
        assert_eq!(m.pick_free(99, 64, 7), Some(70));
        // All 2048 slots: every word usable, any random start finds the one free slot.
        m.open(MAX_SLOTS);
        assert_eq!(m.avail, u32::MAX);
        m.taken = [u64::MAX; WORDS];
        set_bit(&mut m.taken, 2000, false);
        for r in [0u64, 31 << 8, 17 << 8 | 5] {
            m.open(MAX_SLOTS);
            assert_eq!(m.pick_free(MAX_SLOTS, 8, r), Some(2000));
        }
    }
}
