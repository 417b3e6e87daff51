//! The huge page heap reuses resident memory across sizes and gives it back on trim.
//! Alone in its own test binary: it reads the process-wide counters.

use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;

const MIB: usize = 1 << 20;
const MIB64: u64 = 1 << 20;

#[test]
fn freed_huge_memory_serves_other_sizes_and_trim_returns_it() {
    let big = api::malloc(30 * MIB);
    // SAFETY: big has 30 MiB.
    unsafe { std::ptr::write_bytes(big, 1, 30 * MIB) };
    let mapped = GLOBAL.mapped_bytes.load(Relaxed);
    let hits = GLOBAL.huge_cache_hits.load(Relaxed);
    // SAFETY: live block.
    unsafe { api::free(big) };
    // Two smaller blocks fit in the 30 MiB just freed: no new memory is mapped.
    let a = api::malloc(3 * MIB);
    let b = api::malloc(20 * MIB);
    assert!(!a.is_null() && !b.is_null());
    for (p, n) in [(a, 3 * MIB), (b, 20 * MIB)] {
        assert!(
            p as usize >= big as usize && p as usize + n <= big as usize + 30 * MIB,
            "{p:p} not inside the freed block at {big:p}"
        );
    }
    assert_eq!(
        GLOBAL.mapped_bytes.load(Relaxed),
        mapped,
        "no fresh mapping"
    );
    assert_eq!(GLOBAL.huge_cache_hits.load(Relaxed), hits + 2);
    // SAFETY: live blocks.
    unsafe {
        std::ptr::write_bytes(a, 2, 3 * MIB);
        std::ptr::write_bytes(b, 3, 20 * MIB);
        api::free(a);
        api::free(b);
    }
    // Everything is free: trim purges it and unmaps the empty region.
    let unmapped = GLOBAL.unmapped_bytes.load(Relaxed);
    api::malloc_trim(0);
    assert!(
        GLOBAL.unmapped_bytes.load(Relaxed) - unmapped >= 30 * MIB64,
        "the empty region was not unmapped"
    );
    // And calloc on fresh memory afterwards still reads zero.
    let c = api::calloc(1, 12 * MIB);
    // SAFETY: c has 12 MiB.
    let s = unsafe { std::slice::from_raw_parts(c, 12 * MIB) };
    assert!(s.iter().all(|&x| x == 0));
    // SAFETY: live block.
    unsafe { api::free(c) };
}
