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
//! quarantine (its table entry marked freed) before it is unmapped: a later access
//! faults, and a second free is reported as a double free.
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
    /// How it was allocated: the live state of `crate::shadow` (`LIVE`, `LIVE_NEW`,
    /// `LIVE_NEW_ARRAY`).
    pub live: u8,
    /// Allocation stack (leak mode), innermost first.
    pub stack: Stack,
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
