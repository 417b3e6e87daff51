//! The small-block region: one big reservation, cut into one equal region per size
//! class, each region a row of slabs with a guard page after every slab.
//!
//! ```text
//! class c region: [slab 0 | guard][slab 1 | guard][slab 2 | guard] ...  (PROT_NONE until used)
//! slab:           [slot 0][slot 1] ... [slot n-1][tail]                 slot = class size + 16
//! slot:           [user bytes (requested size n)][canary up to the slot end]
//! ```
//!
//! Because every class has its own fixed region, a pointer's class, slab and slot follow
//! from arithmetic on its address alone: no header in front of a block, nothing a
//! program can overwrite. Class 0 is the `malloc(0)` class: its slabs are never made
//! accessible, so each `malloc(0)` gets a unique address that faults on any access.
//! Slabs are opened (`mprotect` read-write) in order as a class grows; guard pages are
//! never opened, so a linear overflow off the end of a slab faults at once.
#![forbid(unsafe_code)]

use oxalloc_sys::PAGE_SIZE;

use crate::meta::MAX_SLOTS;

/// The largest request served from size classes.
pub const MAX_SMALL: usize = 64 * 1024;
/// Size classes of the fast allocator (`oxalloc_core::size_class`): steps of 16 bytes up
/// to 128, then eight steps per doubling up to 64 KiB. The table is restated here (two
/// small `const fn`s) so this crate does not build against the core allocator, which is
/// tuned independently.
const CORE_CLASSES: usize = 8 + 8 * 9;
/// Size classes here: class 0 is `malloc(0)`, class `c > 0` is the core table's `c - 1`.
pub const NUM_CLASSES: usize = CORE_CLASSES + 1;

/// Core class index for `1 <= size <= MAX_SMALL` (same formula as `SizeClass::of`).
const fn core_class(size: usize) -> usize {
    if size <= 128 {
        return size.div_ceil(16) - 1;
    }
    let s = size - 1;
    let p = (usize::BITS - 1 - s.leading_zeros()) as usize;
    8 + (p - 7) * 8 + ((s >> (p - 3)) & 7)
}

/// Block size of core class `c` (same formula as `SizeClass::size`).
const fn core_size(c: usize) -> usize {
    if c < 8 {
        return (c + 1) * 16;
    }
    let base = 128 << ((c - 8) / 8);
    base + ((c - 8) % 8 + 1) * (base / 8)
}
/// Address space per class (8 GiB; 81 classes reserve 648 GiB of `PROT_NONE` space).
/// With the `small-regions` feature, 256 MiB (20 GiB in all): for running under
/// valgrind, which cannot reserve 648 GiB; a class then holds at most 256 MiB of blocks.
pub const REGION_BYTES: usize = if cfg!(feature = "small-regions") {
    256 << 20
} else {
    8 << 30
};
/// Bytes after the class size in every slot: room for the canary, and keeps slots
/// 16-byte aligned.
pub const SLOT_PAD: usize = 16;
/// Slabs aim at about this many bytes, so guard pages stay cheap in address space and
/// in kernel mappings (each slab is its own mapping between two guards).
const SLAB_TARGET: usize = 64 * 1024;

/// The fixed layout of one class.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Block size (0 for the `malloc(0)` class).
    pub size: usize,
    /// Slot size: block plus pad.
    pub stride: usize,
    /// Slots per slab.
    pub slots: usize,
    /// Bytes of a slab (a whole number of pages).
    pub slab_bytes: usize,
    /// Slab plus its guard page.
    pub span: usize,
    /// How many slabs fit in the class's region.
    pub max_slabs: usize,
    /// `ceil(2^64 / span)`, to divide by `span` with a multiplication ([`div`]).
    pub span_magic: u64,
    /// `ceil(2^64 / stride)`, likewise.
    pub stride_magic: u64,
    /// Slots per random-choice window ([`crate::meta::pick_window`]).
    pub window: usize,
}

/// `ceil(2^64 / d)` for `2 <= d`: the multiplier for [`div`].
const fn magic(d: usize) -> u64 {
    (1u128 << 64).div_ceil(d as u128) as u64
}

/// `(x / d, x % d)` by a multiplication, with `m = magic(d)`. Exact when
/// `x * d < 2^64` (region offsets are below 2^34 and divisors below 2^20).
#[inline]
pub fn div(x: usize, d: usize, m: u64) -> (usize, usize) {
    let q = ((x as u128 * m as u128) >> 64) as usize;
    (q, x - q * d)
}

/// The class of a request of `n` bytes (`n <= MAX_SMALL`).
#[inline]
pub fn class_of(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        core_class(n) + 1
    }
}

/// The layout of class `c`.
pub const fn geometry(c: usize) -> Geometry {
    let size = if c == 0 { 0 } else { core_size(c - 1) };
    let stride = size + SLOT_PAD;
    let mut slots = SLAB_TARGET / stride;
    if slots < 4 {
        slots = 4;
    }
    if slots > MAX_SLOTS {
        slots = MAX_SLOTS;
    }
    let slab_bytes = (slots * stride).next_multiple_of(PAGE_SIZE);
    // Use the page rounding for more slots where the bitmap allows it.
    let mut fill = slab_bytes / stride;
    if fill > MAX_SLOTS {
        fill = MAX_SLOTS;
    }
    let span = slab_bytes + PAGE_SIZE;
    Geometry {
        size,
        stride,
        slots: fill,
        slab_bytes,
        span,
        max_slabs: REGION_BYTES / span,
        span_magic: magic(span),
        stride_magic: magic(stride),
        window: crate::meta::pick_window(stride),
    }
}

/// Where a pointer into the small region falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// Class index.
    pub class: usize,
    /// Slab index within the class.
    pub slab: usize,
    /// Slot index within the slab (may be past the last slot or in the guard page: the
    /// caller checks against the geometry).
    pub slot: usize,
    /// Byte offset of the pointer from the start of that slot.
    pub offset: usize,
    /// Byte offset within the slab span (slab plus guard).
    pub in_span: usize,
}

/// Decodes an address inside the small region that starts at `base`.
#[inline]
pub fn place(base: usize, addr: usize) -> Option<Place> {
    let off = addr.checked_sub(base)?;
    let class = off / REGION_BYTES;
    if class >= NUM_CLASSES {
        return None;
    }
    let g = geometry_cached(class);
    let in_region = off % REGION_BYTES;
    let (slab, in_span) = div(in_region, g.span, g.span_magic);
    let (slot, offset) = div(in_span, g.stride, g.stride_magic);
    Some(Place {
        class,
        slab,
        slot,
        offset,
        in_span,
    })
}

/// The start address of slot `slot` of slab `slab` of class `class`.
#[inline]
pub fn slot_addr(base: usize, class: usize, slab: usize, slot: usize) -> usize {
    let g = geometry_cached(class);
    base + class * REGION_BYTES + slab * g.span + slot * g.stride
}

/// The start of slab `slab` of class `class`.
#[inline]
pub fn slab_addr(base: usize, class: usize, slab: usize) -> usize {
    base + class * REGION_BYTES + slab * geometry_cached(class).span
}

static GEOMETRY: [Geometry; NUM_CLASSES] = {
    let mut t = [geometry(0); NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = geometry(c);
        c += 1;
    }
    t
};

/// The layout of class `c`, from a table computed at compile time.
#[inline]
pub fn geometry_cached(c: usize) -> &'static Geometry {
    &GEOMETRY[c]
}

/// The largest request served from the small region.
pub const MAX_SMALL_REQUEST: usize = MAX_SMALL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_fits_and_decodes() {
        for c in 0..NUM_CLASSES {
            let g = geometry(c);
            assert!(g.slots >= 4 && g.slots <= MAX_SLOTS, "class {c}: {g:?}");
            assert!(g.slots * g.stride <= g.slab_bytes);
            assert_eq!(g.stride % 16, 0);
            let base = 1 << 40;
            let a = slot_addr(base, c, 3, g.slots - 1);
            let p = place(base, a + 8).unwrap();
            assert_eq!((p.class, p.slab, p.slot, p.offset), (c, 3, g.slots - 1, 8));
        }
        for c in 0..NUM_CLASSES {
            let g = geometry(c);
            for x in [
                0,
                1,
                g.stride - 1,
                g.stride,
                g.span - 1,
                g.span,
                g.span * 7 + 5,
                REGION_BYTES - 1,
            ] {
                assert_eq!(
                    div(x, g.span, g.span_magic),
                    (x / g.span, x % g.span),
                    "{c} {x}"
                );
                assert_eq!(
                    div(x, g.stride, g.stride_magic),
                    (x / g.stride, x % g.stride)
                );
            }
        }
        assert_eq!(class_of(0), 0);
        assert_eq!(geometry(class_of(48)).size, 48);
        assert_eq!(geometry(class_of(MAX_SMALL)).size, MAX_SMALL);
        assert_eq!(class_of(MAX_SMALL), NUM_CLASSES - 1);
        for n in 1..=MAX_SMALL {
            let c = class_of(n);
            assert!(
                geometry(c).size >= n && (c == 1 || geometry(c - 1).size < n),
                "{n}"
            );
        }
    }
}
