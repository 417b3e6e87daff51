//! One thread allocates, another frees, for many rounds: the producer's heap must reuse
//! what the consumer hands back, so the memory held stays near what is in flight.
//! Alone in its own test binary: it reads the process-wide span counters, which any
//! other test in the same process would raise.

mod common;
use common::scale_down;
use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::thread;

struct Block(*mut u8, usize);
// SAFETY: a block is owned by whoever holds the message; the allocator allows freeing
// from any thread.
unsafe impl Send for Block {}

#[test]
fn producer_consumer_does_not_grow() {
    const IN_FLIGHT: usize = 1024;
    let (tx, rx) = mpsc::sync_channel::<Block>(IN_FLIGHT);
    let consumer = thread::spawn(move || {
        for Block(p, size) in rx {
            // SAFETY: the block is live and holds `size` bytes of 7.
            let s = unsafe { std::slice::from_raw_parts(p, size) };
            assert!(s.iter().all(|&b| b == 7), "block {p:p} corrupted");
            // SAFETY: live block, freed once, by a thread that is not its owner.
            unsafe { api::free(p) };
        }
    });
    let total = if cfg!(debug_assertions) {
        200_000
    } else {
        2_000_000
    } / scale_down();
    let base = GLOBAL.in_use_bytes.load(Relaxed);
    let mut state = 42u64;
    let mut bytes = 0usize;
    for _ in 0..total {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = 16 + (state as usize % 512);
        let p = api::malloc(size);
        assert!(!p.is_null());
        // SAFETY: p has `size` bytes.
        unsafe { std::ptr::write_bytes(p, 7, size) };
        bytes += size;
        tx.send(Block(p, size)).unwrap();
    }
    drop(tx);
    consumer.join().unwrap();
    // Spans held by heaps at the peak, beyond what this process held before. In flight:
    // 1024 channel slots plus the blocks the two threads hold, under 1 MiB of 16-528 B
    // blocks; on top, each of the 33 classes keeps a span or a few (64 KiB and up)
    // partly used, and the consumer's hand-over chains wait up to 8 blocks a span.
    // Measured: 1.6 MiB. Without reuse the producer would need a fresh span for every
    // block it allocates: `bytes` (54 MiB in a debug build, 13 MiB scaled down by 4,
    // 540 MiB in release).
    let peak = GLOBAL.peak_in_use_bytes.load(Relaxed) - base;
    let limit = 4 << 20;
    assert!(
        limit * 3 < bytes as u64,
        "the run allocates too little ({bytes} B) to tell reuse from growth"
    );
    assert!(
        peak < limit,
        "peak {peak} B of spans in use for {total} blocks ({bytes} B) with at most \
         {IN_FLIGHT} in flight: the producer does not reuse what the consumer frees"
    );
}
