//! Large blocks (above 64 KiB, or aligned beyond 16 bytes): each is its own mapping
//! with a `PROT_NONE` guard page before and after it.
//!
//! ```text
//! [guard page][ ...head slack... | user block (n bytes) | canary slack ][guard page]
//! ```
//!
//! The block is placed at the *end* of its pages (as far right as its alignment
//! allows), so an overflow runs into the guard page and faults at once; the few slack
//! bytes between the end of the block and the guard hold a canary checked on free.
//! A freed block's pages are discarded and made `PROT_NONE`, and the mapping waits in a
//! quarantine (its table entry marked freed): a later access faults, and a second free
//! is reported as a double free.
//!
//! A mapping that leaves the quarantine is kept as a *spare* ([`Spares`]) for the next
//! large block of the same length, still inaccessible (the oldest spare is unmapped):
//! reusing it costs one `mprotect` instead of `mmap`, `mprotect` and `munmap`. Once a
//! length has been reused so, freed blocks of that length (up to
//! [`RESIDENT_BLOCK_MAX`]) keep their pages, inaccessible but not discarded, while the
//! bytes kept stay under [`RESIDENT_BUDGET`] and the recent peak of live large bytes
//! ([`RecentPeak`]): a program that frees and allocates buffers of one size round after
//! round reuses pages instead of faulting in fresh zeroed ones every time (a reused
//! block is zeroed by us, once). Either way a free block faults on any access.
//!
//! A new block's mapping is opened ([`open`]) outside the large-block lock: it is the
//! caller's alone until its entry is in the table.
//!
//! The table from user address to mapping is an open-addressing hash table (linear
//! probing, backward-shift deletion) in its own mapping; it grows by rehashing into a
//! mapping twice the size. Used under the large-block lock.

use crate::backtrace::Stack;
use oxalloc_sys::PAGE_SIZE;

/// One large block.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Entry {
    /// The user address (0: empty table slot).
    pub ptr: usize,
    /// The whole mapping, guards included.
    pub base: usize,
    /// Its length.
    pub total: usize,
    /// Requested size.
    pub size: usize,
    /// Requested alignment (at least 16).
    pub align: usize,
    /// Freed and waiting in the quarantine.
    pub freed: bool,
    /// Freed with its pages kept (made inaccessible, not discarded): see [`Spares`].
    pub resident: bool,
    /// How it was allocated: the live state of `crate::shadow` (`LIVE`, `LIVE_NEW`,
    /// `LIVE_NEW_ARRAY`).
    pub live: u8,
    /// Allocation stack (leak mode), innermost first.
    pub stack: Stack,
}

/// Freed large blocks whose pages are kept, at most this many bytes in all (the rest
/// are discarded when freed).
pub const RESIDENT_BUDGET: usize = 32 << 20;
/// The largest mapping whose pages are kept when its block is freed.
pub const RESIDENT_BLOCK_MAX: usize = (1 << 20) + 2 * PAGE_SIZE;
/// The slice of time over which [`RecentPeak`] remembers a peak: a peak counts for one
/// to two slices.
pub const PEAK_SLICE_NS: u64 = 1_000_000_000;

/// The most bytes of large blocks live at once lately (this slice of time and the one
/// before). Freed blocks keep their pages only up to that peak (and
/// [`RESIDENT_BUDGET`]): a program with a few MiB of large blocks keeps a few MiB, not
/// the whole budget. (Holding kept pages to *peak minus live*, as the core's
/// `page_return` does for free pages, kept too little here: freed blocks wait in the
/// quarantine before anyone can reuse them, and threads out of phase lower the shared
/// peak; realloc-threads/t2 then went 0.72 -> 0.63 s instead of 0.51 s.)
pub struct RecentPeak {
    slice: u64,
    current: usize,
    previous: usize,
}

impl RecentPeak {
    /// No peak yet.
    pub const fn new() -> RecentPeak {
        RecentPeak {
            slice: 0,
            current: 0,
            previous: 0,
        }
    }

    /// Records `live` bytes at time `now` (ns).
    pub fn note(&mut self, live: usize, now: u64) {
        let slice = now / PEAK_SLICE_NS;
        if slice != self.slice {
            self.previous = if slice == self.slice + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.slice = slice;
        }
        self.current = self.current.max(live);
    }

    /// The recent peak.
    pub fn get(&self) -> usize {
        self.current.max(self.previous)
    }
}

impl Default for RecentPeak {
    fn default() -> RecentPeak {
        RecentPeak::new()
    }
}

/// Spare mappings kept at most.
pub const SPARE_SLOTS: usize = 256;

/// A mapping whose block left the quarantine, kept whole (guards and all, every page
/// inaccessible) for the next block of the same mapping length.
#[derive(Clone, Copy)]
pub struct Spare {
    /// The whole mapping.
    pub base: usize,
    /// Its length.
    pub total: usize,
    /// Its data pages were kept (see [`Entry::resident`]).
    pub resident: bool,
}

/// Mapping lengths remembered as reused.
const HOT_SLOTS: usize = 8;

/// The spare mappings, oldest first, and the mapping lengths that were reused lately.
pub struct Spares {
    slots: [Spare; SPARE_SLOTS],
    len: usize,
    /// Lengths for which a spare was taken: a program that frees and allocates blocks
    /// of that length again and again. Only their pages are worth keeping.
    hot: [usize; HOT_SLOTS],
    /// The next `hot` slot to replace.
    hot_next: usize,
}

impl Spares {
    /// No spare mapping.
    pub const fn empty() -> Spares {
        Spares {
            slots: [Spare {
                base: 0,
                total: 0,
                resident: false,
            }; SPARE_SLOTS],
            len: 0,
            hot: [0; HOT_SLOTS],
            hot_next: 0,
        }
    }

    /// Whether mappings of `total` bytes were reused lately, so a freed block of that
    /// length should keep its pages.
    pub fn is_hot(&self, total: usize) -> bool {
        self.hot.contains(&total)
    }

    /// Takes the newest spare mapping of exactly `total` bytes.
    pub fn take(&mut self, total: usize) -> Option<Spare> {
        let i = self.slots[..self.len]
            .iter()
            .rposition(|s| s.total == total)?;
        let s = self.slots[i];
        if !self.is_hot(total) {
            self.hot[self.hot_next] = total;
            self.hot_next = (self.hot_next + 1) % HOT_SLOTS;
        }
        self.slots.copy_within(i + 1..self.len, i);
        self.len -= 1;
        Some(s)
    }

    /// Keeps `s`; returns the oldest spare if every slot was taken (the caller unmaps it).
    pub fn put(&mut self, s: Spare) -> Option<Spare> {
        let mut out = None;
        if self.len == SPARE_SLOTS {
            out = Some(self.slots[0]);
            self.slots.copy_within(1..self.len, 0);
            self.len -= 1;
        }
        self.slots[self.len] = s;
        self.len += 1;
        out
    }

    /// Takes any spare mapping (to unmap them all).
    pub fn pop(&mut self) -> Option<Spare> {
        self.len = self.len.checked_sub(1)?;
        Some(self.slots[self.len])
    }
}

/// Opens the data pages of a mapping for a new block of `data` bytes: the spare one
/// given, or a new reservation of `total` bytes; kept pages are zeroed. The address of
/// the mapping, or None (nothing left mapped) if the system refuses.
pub fn open(spare: Option<Spare>, total: usize, data: usize) -> Option<usize> {
    let base = match spare {
        Some(s) => s.base,
        None => oxalloc_sys::reserve(total)?.as_ptr() as usize,
    };
    let data_start = base + PAGE_SIZE;
    // SAFETY: the data pages lie in our mapping, which holds no block; the guards stay
    // closed.
    if !unsafe { oxalloc_sys::protect(data_start as *mut u8, data, true) } {
        // SAFETY: as above.
        unsafe { oxalloc_sys::unmap(base as *mut u8, total) };
        return None;
    }
    if spare.is_some_and(|s| s.resident) {
        // Kept pages hold the last block's bytes: a new block starts as a fresh mapping
        // does.
        // SAFETY: the data pages were just opened; nothing refers to them.
        unsafe { core::ptr::write_bytes(data_start as *mut u8, 0, data) };
    }
    Some(base)
}

/// The data bytes of a mapping of `total` bytes (the rest are its two guard pages).
pub const fn data_len(total: usize) -> usize {
    total - 2 * PAGE_SIZE
}

/// Where a block of `n` bytes aligned to `align` starts in a mapping of `total` bytes:
/// as far right as the alignment allows, so an overflow runs into the guard page.
pub fn block_start(base: usize, total: usize, n: usize, align: usize) -> usize {
    (base + total - PAGE_SIZE - n) & !(align - 1)
}

/// The address-to-block table.
pub struct Table {
    slots: usize,
    cap: usize,
    len: usize,
}

fn hash(p: usize) -> usize {
    ((p >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize
}

impl Table {
    /// An empty table with no storage.
    pub const fn empty() -> Table {
        Table {
            slots: 0,
            cap: 0,
            len: 0,
        }
    }

    fn entry(&mut self, i: usize) -> &mut Entry {
        assert!(i < self.cap);
        // SAFETY: `slots` is a live mapping of `cap` entries made by `grow`, zero
        // filled by the kernel (all-zero is a valid empty `Entry`); the large-block lock and
        // `&mut self` make the reference unique.
        unsafe { &mut *(self.slots as *mut Entry).add(i) }
    }

    /// Live and quarantined entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in entries (for walking with [`Table::at`]).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Entry `i` of the raw table, if occupied.
    pub fn at(&mut self, i: usize) -> Option<&mut Entry> {
        let e = self.entry(i);
        (e.ptr != 0).then_some(e)
    }

    /// The index of the entry for user address `p`.
    pub fn find(&mut self, p: usize) -> Option<usize> {
        if self.cap == 0 || p == 0 {
            return None;
        }
        let mut i = hash(p) & (self.cap - 1);
        loop {
            let e = self.entry(i);
            if e.ptr == p {
                return Some(i);
            }
            if e.ptr == 0 {
                return None;
            }
            i = (i + 1) & (self.cap - 1);
        }
    }

    /// The entry whose mapping contains `p` (a slow scan, for error reports).
    pub fn containing(&mut self, p: usize) -> Option<Entry> {
        for i in 0..self.cap {
            let e = *self.entry(i);
            if e.ptr != 0 && p >= e.base && p < e.base + e.total {
                return Some(e);
            }
        }
        None
    }

    fn grow(&mut self) -> bool {
        let new_cap = if self.cap == 0 { 4096 } else { self.cap * 2 };
        let bytes = (new_cap * core::mem::size_of::<Entry>()).next_multiple_of(PAGE_SIZE);
        let Some(mem) = oxalloc_sys::map(bytes) else {
            return false;
        };
        let old = (self.slots, self.cap);
        self.slots = mem.as_ptr() as usize;
        self.cap = new_cap;
        self.len = 0;
        for i in 0..old.1 {
            // SAFETY: the old table is still mapped and holds `old.1` entries.
            let e = unsafe { *(old.0 as *const Entry).add(i) };
            if e.ptr != 0 {
                self.insert_no_grow(e);
            }
        }
        if old.1 > 0 {
            let old_bytes = (old.1 * core::mem::size_of::<Entry>()).next_multiple_of(PAGE_SIZE);
            // SAFETY: the old table was mapped by us with this length and every entry
            // has been copied out.
            unsafe { oxalloc_sys::unmap(old.0 as *mut u8, old_bytes) };
        }
        true
    }

    fn insert_no_grow(&mut self, e: Entry) {
        let mut i = hash(e.ptr) & (self.cap - 1);
        while self.entry(i).ptr != 0 {
            i = (i + 1) & (self.cap - 1);
        }
        *self.entry(i) = e;
        self.len += 1;
    }

    /// Adds an entry; false if the table cannot grow.
    pub fn insert(&mut self, e: Entry) -> bool {
        if (self.len + 1) * 2 > self.cap && !self.grow() {
            return false;
        }
        self.insert_no_grow(e);
        true
    }

    /// Removes entry `i` (backward-shift deletion keeps probe chains intact).
    pub fn remove(&mut self, mut i: usize) {
        let mask = self.cap - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let ej = *self.entry(j);
            if ej.ptr == 0 {
                break;
            }
            let home = hash(ej.ptr) & mask;
            // Move `ej` into the hole at `i` unless its home lies cyclically in (i, j].
            let in_range = if i <= j {
                home > i && home <= j
            } else {
                home > i || home <= j
            };
            if !in_range {
                *self.entry(i) = ej;
                i = j;
            }
        }
        self.entry(i).ptr = 0;
        self.len -= 1;
    }
}

/// The mapping layout for a block of `n` bytes aligned to `align`: (data bytes, total
/// bytes with both guards), or `None` on overflow.
pub fn layout(n: usize, align: usize) -> Option<(usize, usize)> {
    let extra = if align > PAGE_SIZE { align } else { 0 };
    let data = n.checked_add(extra)?.checked_next_multiple_of(PAGE_SIZE)?;
    let total = data.checked_add(2 * PAGE_SIZE)?;
    (total <= isize::MAX as usize).then_some((data, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spare(base: usize, total: usize) -> Spare {
        Spare {
            base,
            total,
            resident: false,
        }
    }

    #[test]
    fn spares_give_the_newest_of_the_asked_length_and_remember_it_as_hot() {
        let mut s = Spares::empty();
        assert!(s.put(spare(0x1000, 5 * PAGE_SIZE)).is_none());
        assert!(s.put(spare(0x9000, 7 * PAGE_SIZE)).is_none());
        assert!(s.put(spare(0x20000, 5 * PAGE_SIZE)).is_none());
        assert!(!s.is_hot(5 * PAGE_SIZE));
        assert!(s.take(6 * PAGE_SIZE).is_none());
        assert_eq!(s.take(5 * PAGE_SIZE).map(|x| x.base), Some(0x20000));
        assert!(s.is_hot(5 * PAGE_SIZE) && !s.is_hot(7 * PAGE_SIZE));
        assert_eq!(s.take(5 * PAGE_SIZE).map(|x| x.base), Some(0x1000));
        assert!(s.take(5 * PAGE_SIZE).is_none());
        assert_eq!(s.pop().map(|x| x.base), Some(0x9000));
        assert!(s.pop().is_none());
    }

    #[test]
    fn a_full_set_of_spares_lets_out_the_oldest() {
        let mut s = Spares::empty();
        for i in 0..SPARE_SLOTS {
            assert!(s.put(spare(i * 0x10000, PAGE_SIZE * 3)).is_none());
        }
        let out = s.put(spare(0xdead0000, PAGE_SIZE * 3));
        assert_eq!(out.map(|x| x.base), Some(0));
        assert_eq!(s.take(PAGE_SIZE * 3).map(|x| x.base), Some(0xdead0000));
        assert_eq!(
            s.take(PAGE_SIZE * 3).map(|x| x.base),
            Some((SPARE_SLOTS - 1) * 0x10000)
        );
    }

    #[test]
    fn a_peak_lasts_one_to_two_slices() {
        let mut p = RecentPeak::new();
        let s = PEAK_SLICE_NS;
        p.note(100, 10 * s);
        p.note(40, 10 * s + 5);
        assert_eq!(p.get(), 100);
        p.note(30, 11 * s + 1);
        assert_eq!(p.get(), 100, "the previous slice's peak still counts");
        p.note(20, 12 * s);
        assert_eq!(p.get(), 30);
        p.note(10, 20 * s);
        assert_eq!(p.get(), 10, "after a quiet gap only the new slice counts");
    }

    #[test]
    fn only_the_last_few_reused_lengths_stay_hot() {
        let mut s = Spares::empty();
        for k in 1..=HOT_SLOTS + 1 {
            s.put(spare(k * 0x100000, k * PAGE_SIZE));
            assert!(s.take(k * PAGE_SIZE).is_some());
        }
        assert!(!s.is_hot(PAGE_SIZE), "the oldest length was replaced");
        for k in 2..=HOT_SLOTS + 1 {
            assert!(s.is_hot(k * PAGE_SIZE));
        }
    }
}
