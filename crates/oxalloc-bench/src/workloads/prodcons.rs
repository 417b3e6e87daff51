//! One producer, one consumer, a bounded ring between them: a logger or network thread
//! that allocates small messages which a second thread consumes and frees.
//!
//! The producer allocates blocks of 16-256 bytes, writes their first 16 bytes and their
//! last, and puts them in a single-producer single-consumer ring of [`RING`] slots; the
//! consumer takes them in order, reads the first byte and frees them. Every block is
//! allocated on one thread and freed on the other. A slot is empty when it holds null:
//! the producer waits for its next slot to be empty, the consumer for its next one to be
//! full; each spins briefly and then yields, as the two may share a core. An operation is
//! one block passed.

use super::{scaled, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Slots in the ring.
pub const RING: usize = 1024;
/// Blocks passed at scale 1.0.
pub const OPS: u64 = 8_000_000;

/// Waits a little: spins for the first tries, then gives the core away.
fn backoff(tries: &mut u32) {
    if *tries < 64 {
        std::hint::spin_loop();
        *tries += 1;
    } else {
        std::thread::yield_now();
    }
}

/// Runs the workload; see the module docs.
pub fn run(scale: f64) -> WorkOutput {
    let ops = scaled(OPS, scale, 10_000);
    let ring: Vec<AtomicPtr<u8>> = (0..RING)
        .map(|_| AtomicPtr::new(std::ptr::null_mut()))
        .collect();
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        let ring = &ring;
        s.spawn(move || {
            let mut rng = Rng::new(0x9C0D);
            for i in 0..ops {
                let mut b = Block::new(rng.range(16, 256));
                b.touch(16, i as u8);
                let slot = &ring[i as usize % RING];
                let mut tries = 0;
                while !slot.load(Ordering::Acquire).is_null() {
                    backoff(&mut tries);
                }
                // Only the consumer empties a slot and only we fill one, so it stays empty
                // until this store, which hands the block over.
                slot.store(b.into_raw().0, Ordering::Release);
            }
        });
        s.spawn(move || {
            let mut sum = 0u64;
            for i in 0..ops {
                let slot = &ring[i as usize % RING];
                let mut tries = 0;
                let p = loop {
                    let p = slot.load(Ordering::Acquire);
                    if !p.is_null() {
                        break p;
                    }
                    backoff(&mut tries);
                };
                slot.store(std::ptr::null_mut(), Ordering::Release);
                // SAFETY: the producer stored `p` from `Block::into_raw` and never touches it
                // again; the Acquire load makes its writes visible. The length is only used
                // by `touch`, which is not called here.
                let b = unsafe { Block::from_raw(p, 1) };
                // SAFETY: every block has at least 16 bytes, the first one written.
                sum += u64::from(unsafe { b.as_ptr().read() });
                drop(b); // freed on the consumer
            }
            std::hint::black_box(sum);
        });
    });
    WorkOutput {
        ops: Some(ops as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}
