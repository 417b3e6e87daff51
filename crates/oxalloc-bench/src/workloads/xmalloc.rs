//! xmalloc-like producer/consumer (after Lever & Boreham's xmalloc test).
//!
//! `threads` producers each allocate blocks of random size 16..=512 bytes, write them, and
//! send them in batches of [`BATCH`] through a bounded channel (capacity [`QUEUE_BATCHES`]
//! batches) to their own consumer thread, which reads and frees them. Every block is
//! allocated on one thread and freed on another, the pattern that strands memory or takes
//! locks in per-thread heaps. `threads` = number of producer/consumer pairs (2x threads).

use super::{scaled, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::mpsc::sync_channel;

/// Blocks per message.
pub const BATCH: usize = 64;
/// Messages the queue holds before the producer blocks.
pub const QUEUE_BATCHES: usize = 16;

/// Runs the workload; see the module docs.
pub fn run(pairs: usize, scale: f64) -> WorkOutput {
    let total = scaled(8_000_000, scale, 10_000);
    let per_pair = total / pairs as u64;
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for p in 0..pairs {
            let (tx, rx) = sync_channel::<Vec<Block>>(QUEUE_BATCHES);
            s.spawn(move || {
                let mut rng = Rng::new(0x8A110C + p as u64);
                let mut batch = Vec::with_capacity(BATCH);
                for _ in 0..per_pair {
                    let mut b = Block::new(rng.range(16, 512));
                    b.touch(8, p as u8);
                    batch.push(b);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.send(full).is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(batch);
            });
            s.spawn(move || {
                let mut sum = 0usize;
                for batch in rx {
                    for b in batch {
                        sum = sum.wrapping_add(b.len()); // freed on this thread
                    }
                }
                std::hint::black_box(sum);
            });
        }
    });
    WorkOutput {
        ops: Some((per_pair * pairs as u64) as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}
