//! "bytes allocated" counts large and huge blocks too (issue 22 measured 288 B for a
//! program that allocated ten 256 KiB blocks and one 4 MiB block), at their rounded
//! sizes, and what realloc grows them by in place. Alone in its own test binary: it
//! reads the process-wide totals.

use oxalloc_core::{api, stats};

const KIB: u64 = 1 << 10;

#[test]
fn large_and_huge_blocks_count_in_bytes_allocated() {
    let before = stats::totals().bytes_allocated;
    let mut blocks: Vec<*mut u8> = (0..10).map(|_| api::malloc(256 << 10)).collect();
    blocks.push(api::malloc(4 << 20));
    assert!(blocks.iter().all(|p| !p.is_null()));
    let counted = stats::totals().bytes_allocated - before;
    // 256 KiB is exactly 4 slices and 4 MiB exactly 64 units: no rounding.
    assert_eq!(counted, 10 * 256 * KIB + 4096 * KIB, "bytes allocated");

    // Growing the huge block in place by 1 MiB counts the 1 MiB (the units after a
    // fresh block in a new region are free).
    let before = stats::totals().bytes_allocated;
    // SAFETY: the block is live; realloc returns it or a new one.
    let grown = unsafe { api::realloc(blocks[10], 5 << 20) };
    assert!(!grown.is_null());
    let counted = stats::totals().bytes_allocated - before;
    assert!(
        counted == 1024 * KIB || counted == 5 * 1024 * KIB,
        "a 4 -> 5 MiB realloc counted {counted} bytes (1 MiB in place, 5 MiB moved)"
    );
    blocks[10] = grown;
    for p in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { api::free(p) };
    }
}
