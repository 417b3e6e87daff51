//! The bugs `tests/faults.rs` found, each as one deterministic check (each failed
//! before its fix). One process, checks in sequence: the fault hook and the counters
//! are process-wide, and the `brk` checks need a break no other thread moves (so no
//! test harness threads: `harness = false`). Built only with `fault-injection`.

use oxalloc_core::stats::GLOBAL;
use oxalloc_core::{api, options};
use oxalloc_sys::fault::{self, Call};
use std::sync::atomic::Ordering::Relaxed;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Fills `len` bytes at `p` with `v`.
fn fill(p: *mut u8, len: usize, v: u8) {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { std::ptr::write_bytes(p, v, len) };
}

/// Whether `len` bytes at `p` all read zero.
fn is_zero(p: *mut u8, len: usize) -> bool {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(p, len) }
        .iter()
        .all(|&b| b == 0)
}

fn free(p: *mut u8) {
    // SAFETY: callers pass a live block of ours, freed once.
    unsafe { api::free(p) };
}

/// A trim that moves the break down while the kernel refuses is not an error: the
/// segment stays, and the next trim gives it back. (It tripped a debug assertion,
/// "can_unmap said yes", and in release builds left the segment unlisted: leaked.)
fn brk_release_refused() {
    let p = api::malloc(512 * KIB);
    assert!(!p.is_null());
    let top = oxalloc_sys::brk(0);
    assert!((p as usize) < top, "the block is not in the break");
    free(p);
    let segments = GLOBAL.segments.load(Relaxed);
    let brk_calls = fault::calls_of(Call::Brk);
    fault::fail_from(1);
    api::malloc_trim(0);
    fault::disarm();
    assert!(
        fault::calls_of(Call::Brk) > brk_calls,
        "the trim did not try to move the break down: nothing was tested"
    );
    assert_eq!(GLOBAL.segments.load(Relaxed), segments, "segment lost");
    assert_eq!(oxalloc_sys::brk(0), top);
    // Still usable, and the next trim gives it back.
    let q = api::malloc(512 * KIB);
    assert!((q as usize) < top, "the kept segment is not reused");
    fill(q, 512 * KIB, 7);
    free(q);
    api::malloc_trim(0);
    assert_eq!(GLOBAL.segments.load(Relaxed), segments - 1);
    assert!(oxalloc_sys::brk(0) < top, "the break did not come down");
    println!("fault_regressions: brk release refused: ok");
}

/// One trim gives back every free segment at the top of the break, whatever order
/// they were freed in. (Segments visited before the topmost one went stayed.)
fn brk_trim_releases_all() {
    // Three segments of four 900 KiB blocks each, one above the other; freed from
    // the top down, so the lowest is first in its bin.
    let blocks: Vec<usize> = (0..12)
        .map(|_| {
            let p = api::malloc(900 * KIB);
            assert!(!p.is_null());
            p as usize
        })
        .collect();
    assert!(GLOBAL.segments.load(Relaxed) >= 3);
    let mut sorted = blocks.clone();
    sorted.sort();
    for &p in sorted.iter().rev() {
        free(p as *mut u8);
    }
    api::malloc_trim(0);
    assert_eq!(
        GLOBAL.segments.load(Relaxed),
        0,
        "free segments left in the break after one trim"
    );
    assert!(
        oxalloc_sys::brk(0) <= sorted[0],
        "the break did not come down"
    );
    println!("fault_regressions: brk trim releases every segment: ok");
}

/// A refused `MADV_DONTNEED` leaves the range dirty: calloc of it zeroes it. (The range
/// was marked purged, so calloc skipped the memset and returned old bytes.) `keep` holds
/// the segment or region, so the trim purges instead of unmapping; `size` picks the
/// central pool (a large block) or the huge page heap, whose purge loop must also end
/// when the kernel refuses (it picks the oldest dirty run, which a refusal leaves the
/// oldest).
fn discard_refused(what: &str, keep: usize, size: usize, byte: u8) {
    let keep = api::malloc(keep);
    let p = api::malloc(size);
    fill(p, size, byte);
    free(p);
    let discards = fault::calls_of(Call::Discard);
    fault::fail_from(1);
    api::malloc_trim(0);
    fault::disarm();
    assert!(
        fault::calls_of(Call::Discard) > discards,
        "the trim did not purge: nothing was tested"
    );
    let q = api::calloc(1, size);
    assert_eq!(q, p, "calloc did not reuse the {what}");
    assert!(is_zero(q, size), "calloc returned the old bytes");
    free(q);
    free(keep);
}

fn central_discard_refused() {
    discard_refused("span", 100 * KIB, 512 * KIB, 0xAB);
    println!("fault_regressions: central discard refused: ok");
}

fn huge_discard_refused() {
    discard_refused("run", 4 * MIB, 8 * MIB, 0xCD);
    println!("fault_regressions: huge discard refused: ok");
}

fn main() {
    // Before the first allocation (which reads the environment): purges only at trim,
    // segments from the break.
    options::BACKGROUND_PURGE.set(0);
    options::PURGE_DELAY_MS.set(600_000);
    options::DEMAND_WINDOW_MS.set(0);
    options::CACHE_MAX_MIB.set(1024);
    options::PAGE_SOURCE_BRK.set(1);
    brk_release_refused();
    brk_trim_releases_all();
    options::PAGE_SOURCE_BRK.set(0);
    central_discard_refused();
    huge_discard_refused();
}
