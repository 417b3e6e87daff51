//! The page-return policy's cache cap makes room for the largest block of the demand
//! window: a program that churns huge blocks of mixed sizes leaves free runs that the
//! next big request does not fit, so it maps more than its peak in use; held to the
//! 8 MiB cap, those runs were purged at once and faulted in again a few requests later
//! (the `large` row of the benchmark: 20% more page faults than tcmalloc). Alone in its
//! own test binary: it reads the process-wide counters and sets options.

use oxalloc_core::api;
use oxalloc_core::options;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;

const MIB: usize = 1 << 20;

/// Sizes of the blocks, in MiB, taken in turn: big and small mixed, so frees leave gaps
/// of every size.
const SIZES: [usize; 8] = [40, 6, 28, 12, 36, 3, 20, 9];
/// Live blocks at a time.
const WINDOW: usize = 5;

/// Bytes given back to the OS so far (purged or unmapped).
fn returned() -> u64 {
    GLOBAL.purged_bytes.load(Relaxed) + GLOBAL.unmapped_bytes.load(Relaxed)
}

/// Replaces the block in slot `i` of `window` with a new one of `mib` MiB, every page
/// written.
fn replace(window: &mut [usize; WINDOW], i: usize, mib: usize) {
    if window[i] != 0 {
        // SAFETY: the slot holds a live block, freed once.
        unsafe { api::free(window[i] as *mut u8) };
    }
    let p = api::malloc(mib * MIB);
    assert!(!p.is_null());
    // SAFETY: p has `mib` MiB.
    unsafe { std::ptr::write_bytes(p, i as u8, mib * MIB) };
    window[i] = p as usize;
}

#[test]
fn churning_huge_blocks_of_mixed_sizes_keeps_the_gaps_they_leave() {
    // Start the allocator first: options are read from the environment once.
    let p = api::malloc(1);
    // SAFETY: p is live and freed once.
    unsafe { api::free(p) };
    options::CACHE_MAX_MIB.set(8);
    // Long enough that nothing ages or goes quiet during the test: only the immediate
    // purge past the cap can give memory back.
    options::PURGE_DELAY_MS.set(5_000);
    options::DEMAND_WINDOW_MS.set(20_000);

    let mut window = [0usize; WINDOW];
    let mut step = 0;
    // Warm up: the heap reaches the size this churn needs.
    for _ in 0..3 * SIZES.len() {
        replace(&mut window, step % WINDOW, SIZES[step % SIZES.len()]);
        step += 1;
    }
    let before = returned();
    let churned: usize = (0..8 * SIZES.len())
        .map(|_| {
            let mib = SIZES[step % SIZES.len()];
            replace(&mut window, (step * 3) % WINDOW, mib);
            step += 1;
            mib
        })
        .sum();
    let given_back = returned() - before;
    for p in window {
        // SAFETY: each slot holds a live block, freed once.
        unsafe { api::free(p as *mut u8) };
    }
    assert!(
        given_back < (8 * MIB) as u64,
        "while churning {churned} MiB of huge blocks (at most {} MiB live), {} MiB were \
         given back to the OS at once, to be faulted in again",
        SIZES.iter().max().unwrap() * WINDOW,
        given_back / MIB as u64
    );
}
