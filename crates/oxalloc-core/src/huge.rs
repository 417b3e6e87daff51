//! Huge blocks (1 MiB and up): one mapping each, 4 MiB aligned, with a header page in
//! front of the block, so `free(p)` finds the header by masking like any segment.
//!
//! A freed huge mapping is kept in a small cache for `OXALLOC_PURGE_DELAY_MS`, so a
//! program that allocates, fills and frees big buffers in a loop reuses resident pages
//! instead of paying `munmap` (a TLB shootdown on every core) and a page fault per
//! 4 KiB on each round. The purger thread unmaps what has waited longer than the delay;
//! the cache is capped like the central pool's. `realloc` grows or shrinks a huge block
//! in place with `mremap` when the address space after it is free.
#![allow(unsafe_code)]

use crate::lock::Mutex;
use crate::segment::{HugeHeader, Owner, SEGMENT_MAP, SEGMENT_MASK, SEGMENT_SIZE};
use crate::stats::{self, GLOBAL};
use oxalloc_sys::PAGE_SIZE;

const CACHE_SLOTS: usize = 16;
/// Mappings larger than this are always unmapped at once.
const CACHE_BLOCK_MAX: usize = 64 << 20;

#[derive(Clone, Copy)]
struct Cached {
    base: usize,
    map_len: usize,
    freed_at_ns: u64,
}

/// Freed huge mappings waiting for reuse or for the purge delay.
pub struct HugeCache {
    slots: [Cached; CACHE_SLOTS],
    count: usize,
    bytes: usize,
}

/// The one huge-block cache.
pub static CACHE: Mutex<HugeCache> = Mutex::new(HugeCache {
    slots: [Cached {
        base: 0,
        map_len: 0,
        freed_at_ns: 0,
    }; CACHE_SLOTS],
    count: 0,
    bytes: 0,
});

impl HugeCache {
    /// Takes the smallest cached mapping of at least `len` bytes, or else the largest
    /// one (the caller tries to grow it in place).
    fn take(&mut self, len: usize) -> Option<Cached> {
        let mut best: Option<usize> = None;
        for i in 0..self.count {
            let m = self.slots[i].map_len;
            let better = match best {
                None => true,
                Some(b) => {
                    let bm = self.slots[b].map_len;
                    if bm >= len {
                        m >= len && m < bm
                    } else {
                        m > bm
                    }
                }
            };
            if better {
                best = Some(i);
            }
        }
        let i = best?;
        let c = self.slots[i];
        self.remove(i);
        Some(c)
    }

    fn remove(&mut self, i: usize) {
        self.bytes -= self.slots[i].map_len;
        self.count -= 1;
        self.slots[i] = self.slots[self.count];
    }

    /// Caches a mapping. Returns what must be unmapped instead: the smallest entry if
    /// the cache had to make room (a big mapping serves more requests; time, not room,
    /// decides when it goes), and `c` itself if it still does not fit.
    fn put(&mut self, c: Cached, cap: usize) -> [Option<Cached>; 2] {
        let cap = cap.min(CACHE_BLOCK_MAX * 2);
        if c.map_len > cap.min(CACHE_BLOCK_MAX) {
            return [Some(c), None];
        }
        let mut evicted = None;
        if self.count > 0 && (self.count == CACHE_SLOTS || self.bytes + c.map_len > cap) {
            let smallest = (0..self.count)
                .min_by_key(|&i| self.slots[i].map_len)
                .unwrap_or(0);
            if self.slots[smallest].map_len >= c.map_len {
                return [Some(c), None];
            }
            evicted = Some(self.slots[smallest]);
            self.remove(smallest);
        }
        if self.count == CACHE_SLOTS || self.bytes + c.map_len > cap {
            return [evicted, Some(c)];
        }
        self.slots[self.count] = c;
        self.count += 1;
        self.bytes += c.map_len;
        [evicted, None]
    }
}

/// Bytes held in the huge cache.
pub fn cached_bytes() -> usize {
    CACHE.lock().bytes
}

/// Unmaps cached mappings that waited longer than the purge delay (all with `force`).
/// Returns the bytes given back.
pub fn purge_cache(force: bool) -> usize {
    let now = oxalloc_sys::now_ns();
    let delay_ns = crate::options::PURGE_DELAY_MS
        .get()
        .saturating_mul(1_000_000);
    let mut released = 0;
    loop {
        let victim = {
            let mut cache = CACHE.lock();
            let old = (0..cache.count)
                .find(|&i| force || now.wrapping_sub(cache.slots[i].freed_at_ns) >= delay_ns);
            match old {
                Some(i) => {
                    let c = cache.slots[i];
                    cache.remove(i);
                    c
                }
                None => return released,
            }
        };
        unmap_cached(victim);
        released += victim.map_len;
    }
}

/// Makes a cached mapping fit `len` bytes in place: uses one up to 8 times larger as
/// it is (its pages are resident already, and giving the tail back would only make the
/// next bigger request fault it in again), shrinks one larger still, grows one too small with `mremap` if the address
/// space after it is free. If it cannot fit, it goes back to the cache (a later, smaller
/// request may use it) and the caller maps fresh memory.
fn fit_cached(c: Cached, len: usize) -> Option<Cached> {
    let fits = c.map_len >= len && c.map_len <= len * 8;
    // SAFETY: the cached mapping is ours and holds no live block.
    if fits || unsafe { oxalloc_sys::resize_in_place(c.base as *mut u8, c.map_len, len) } {
        if !fits {
            if c.map_len > len {
                stats::sub(&GLOBAL.mapped_bytes, c.map_len - len);
                stats::add(&GLOBAL.unmapped_bytes, c.map_len - len);
            } else {
                stats::add(&GLOBAL.mapped_bytes, len - c.map_len);
                stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
            }
            return Some(Cached { map_len: len, ..c });
        }
        return Some(c);
    }
    let cap = crate::central::cache_cap().max(2 * c.map_len);
    let to_unmap = CACHE.lock().put(c, cap);
    for victim in to_unmap.into_iter().flatten() {
        unmap_cached(victim);
    }
    None
}

fn unmap_cached(c: Cached) {
    SEGMENT_MAP.set(c.base, Owner::Foreign);
    // SAFETY: a cached mapping is ours and holds no live block (its header says so).
    unsafe { oxalloc_sys::unmap(c.base as *mut u8, c.map_len) };
    stats::sub(&GLOBAL.mapped_bytes, c.map_len);
    stats::add(&GLOBAL.unmapped_bytes, c.map_len);
}

fn header_of(p: *mut u8) -> *mut HugeHeader {
    (p as usize & !SEGMENT_MASK) as *mut HugeHeader
}

/// Maps a huge block of `size` bytes aligned to `align` (at most `MAX_ALIGN`).
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let offset = PAGE_SIZE.max(align);
    let Some(len) = offset
        .checked_add(size)
        .and_then(|n| n.checked_next_multiple_of(PAGE_SIZE))
    else {
        return core::ptr::null_mut();
    };
    // Two statements: the cache lock must be released before `fit_cached` runs.
    let taken = CACHE.lock().take(len);
    let cached = taken.and_then(|c| fit_cached(c, len));
    let (base, len, zero) = match cached {
        Some(c) => {
            stats::add(&GLOBAL.huge_cache_hits, 1);
            (c.base, c.map_len, false)
        }
        None => {
            let Some(base) = oxalloc_sys::map_aligned(len, SEGMENT_SIZE) else {
                crate::stats::verbose("oxalloc: the OS refused memory for a huge block\n");
                return core::ptr::null_mut();
            };
            SEGMENT_MAP.set(base.as_ptr() as usize, Owner::Huge);
            stats::add(&GLOBAL.mapped_bytes, len);
            stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
            (base.as_ptr() as usize, len, true)
        }
    };
    let h = base as *mut HugeHeader;
    let block = base + offset;
    // SAFETY: the mapping is ours alone (fresh, or taken from the cache) and starts
    // with the header page.
    unsafe {
        h.write(HugeHeader {
            map_len: len,
            block,
            usable: len - offset,
            zero,
        });
    }
    stats::add(&GLOBAL.in_use_bytes, len);
    stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
    stats::add(&GLOBAL.huge_allocs, 1);
    stats::add(&GLOBAL.huge_count, 1);
    block as *mut u8
}

/// Unmaps a huge block. Returns false (and does nothing) if `p` is not the block
/// of the mapping its granule belongs to.
///
/// # Safety
/// The segment map marks `p`'s granule huge; if `p` is that mapping's block it is not
/// used after this call.
pub unsafe fn free(p: *mut u8) -> bool {
    let h = header_of(p);
    // SAFETY: the granule is a live huge mapping, whose first page is the header.
    let (block, len) = unsafe { ((*h).block, (*h).map_len) };
    if block != p as usize {
        return false;
    }
    // SAFETY: caller's contract: the block is dead; a zero `block` marks the mapping
    // as holding none, so a second free of `p` is recognised and ignored.
    unsafe { (*h).block = 0 };
    stats::sub(&GLOBAL.in_use_bytes, len);
    stats::add(&GLOBAL.huge_frees, 1);
    stats::sub(&GLOBAL.huge_count, 1);
    let c = Cached {
        base: h as usize,
        map_len: len,
        freed_at_ns: oxalloc_sys::now_ns(),
    };
    // Room for at least two blocks of this size, so an alloc/free loop of big buffers
    // always finds its last one.
    let cap = crate::central::cache_cap().max(2 * len);
    let to_unmap = CACHE.lock().put(c, cap);
    let mut cached = true;
    for victim in to_unmap.into_iter().flatten() {
        cached &= victim.base != c.base;
        unmap_cached(victim);
    }
    if cached {
        crate::purger::wanted();
        crate::purger::ensure_started();
    }
    true
}

/// Usable bytes of a huge block (0 if `p` is not the block).
///
/// # Safety
/// The segment map marks `p`'s granule huge.
pub unsafe fn usable(p: *mut u8) -> usize {
    let h = header_of(p);
    // SAFETY: caller's contract: the header page is mapped.
    unsafe {
        if (*h).block == p as usize {
            (*h).usable
        } else {
            0
        }
    }
}

/// Whether the block has not been handed out before (fresh zero pages).
///
/// # Safety
/// `p` is a live huge block, just allocated.
pub unsafe fn is_zero(p: *mut u8) -> bool {
    // SAFETY: caller's contract.
    unsafe { (*header_of(p)).zero }
}

/// Grows or shrinks a huge block in place with `mremap`.
///
/// # Safety
/// `p` is a live huge block.
pub unsafe fn resize(p: *mut u8, new_size: usize) -> bool {
    let h = header_of(p);
    // SAFETY: caller's contract: the header is ours while the block lives.
    unsafe {
        if (*h).block != p as usize {
            return false;
        }
        let offset = (*h).block - h as usize;
        let Some(new_len) = offset
            .checked_add(new_size)
            .and_then(|n| n.checked_next_multiple_of(PAGE_SIZE))
        else {
            return false;
        };
        let old_len = (*h).map_len;
        if new_len == old_len {
            return true;
        }
        if !oxalloc_sys::resize_in_place(h.cast(), old_len, new_len) {
            return false;
        }
        (*h).map_len = new_len;
        (*h).usable = new_len - offset;
        (*h).zero = false;
        if new_len > old_len {
            stats::add(&GLOBAL.mapped_bytes, new_len - old_len);
            stats::add(&GLOBAL.in_use_bytes, new_len - old_len);
            stats::raise_peak(&GLOBAL.peak_mapped_bytes, &GLOBAL.mapped_bytes);
            stats::raise_peak(&GLOBAL.peak_in_use_bytes, &GLOBAL.in_use_bytes);
        } else {
            stats::sub(&GLOBAL.mapped_bytes, old_len - new_len);
            stats::sub(&GLOBAL.in_use_bytes, old_len - new_len);
            stats::add(&GLOBAL.unmapped_bytes, old_len - new_len);
        }
        true
    }
}
