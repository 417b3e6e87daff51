//! A large table of live objects replaced at random: a cache or an in-memory index whose
//! entries are rewritten in place (a key-value store updating values, an interpreter's
//! heap of small objects).
//!
//! Each thread fills a table of [`SLOTS`] (2^18) blocks, then per step frees the block in a
//! random slot and allocates a new one of 8-1024 bytes (log-uniform, so small sizes are
//! the most common) and writes all its bytes. The table is far bigger than the caches
//! (about 55 MiB per thread), so the allocator's own metadata misses too. The steps are
//! fixed and split among the threads; the throughput counts steps, and the time measured
//! is the steps' (the slowest thread's), not the filling of the tables.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;

/// Live blocks per thread.
pub const SLOTS: usize = 1 << 18;
/// Steps at scale 1.0, split among the threads.
pub const STEPS: u64 = 3_000_000;

fn new_block(rng: &mut Rng, byte: u8) -> Block {
    let len = rng.log_uniform(8, 1024);
    let mut b = Block::new(len);
    b.touch(len, byte);
    b
}

/// Runs the workload with `slots` blocks per thread (the suite: [`SLOTS`]).
pub fn run_with(threads: usize, scale: f64, slots: usize) -> WorkOutput {
    let per_thread = scaled(STEPS, scale, 10_000) / threads as u64;
    let (thread_secs, _) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x7AB1E + t as u64);
        let byte = t as u8 + 1;
        let mut table: Vec<Option<Block>> = (0..slots)
            .map(|_| Some(new_block(&mut rng, byte)))
            .collect();
        let start = std::time::Instant::now();
        for _ in 0..per_thread {
            let i = rng.below(slots);
            // Free first, then allocate, as a table update does.
            table[i] = None;
            table[i] = Some(new_block(&mut rng, byte));
        }
        let secs = start.elapsed().as_secs_f64();
        drop(table);
        secs
    });
    WorkOutput {
        ops: Some((per_thread * threads as u64) as f64),
        secs: thread_secs.into_iter().fold(0.0, f64::max),
        ..WorkOutput::default()
    }
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    run_with(threads, scale, SLOTS)
}
