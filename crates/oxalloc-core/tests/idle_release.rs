//! After a burst is freed, a size class keeps no span at all in the heap: not even its
//! current one (whose pages would otherwise stay carved and resident). Alone in its own
//! test binary: it reads the process-wide counters.

use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn a_class_freed_entirely_gives_back_its_current_span_too() {
    let before = GLOBAL.in_use_bytes.load(Relaxed);
    // 20 000 blocks of 48 bytes: about 15 spans of 64 KiB, the last one current.
    let blocks: Vec<usize> = (0..20_000)
        .map(|i| {
            let p = api::malloc(48);
            assert!(!p.is_null());
            // SAFETY: p has 48 bytes.
            unsafe { std::ptr::write_bytes(p, i as u8, 48) };
            p as usize
        })
        .collect();
    assert!(GLOBAL.in_use_bytes.load(Relaxed) >= before + (15 << 16));
    // Free the current span's blocks first, then the rest: the last span given back
    // finds the current one empty.
    for &p in blocks.iter().rev() {
        // SAFETY: each block is live and freed once.
        unsafe { api::free(p as *mut u8) };
    }
    assert_eq!(
        GLOBAL.in_use_bytes.load(Relaxed),
        before,
        "spans of the idle class are still held by the heap"
    );
}
