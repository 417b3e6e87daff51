//! Many live huge blocks: a table of [`LIVE`] blocks of 1-4 MiB (uniform), each step
//! replaces a random one (a server's per-connection buffers, an image cache). Each new
//! block gets its first 4 KiB (a header) and its last byte written.
//!
//! Found in session 30 as a new user would try an allocator: the huge-block heap looked
//! at every free extent for the best fit, so the time per allocation grew with the
//! number of live blocks: 1000 blocks 4.7x mimalloc's time, 4000 blocks 20x.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;

/// Live blocks.
pub const LIVE: usize = 2000;
/// Steps at scale 1.0.
pub const STEPS: u64 = 100_000;
/// Request sizes, uniform in `MIN_SIZE..=MAX_SIZE`.
pub const MIN_SIZE: usize = 1 << 20;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: usize = 4 << 20;
/// Bytes written at the start of each new block.
pub const HEADER: usize = 4096;

/// Runs the workload; see the module docs.
pub fn run(scale: f64) -> WorkOutput {
    let steps = scaled(STEPS, scale, 1_000);
    let (_, secs) = timed_threads(1, |_| {
        let mut rng = Rng::new(0x4A6E);
        let mut table: Vec<Option<Block>> = (0..LIVE).map(|_| None).collect();
        for _ in 0..steps {
            let slot = &mut table[rng.below(LIVE)];
            *slot = None;
            let mut b = Block::new(rng.range(MIN_SIZE, MAX_SIZE));
            b.touch(HEADER, 1);
            *slot = Some(b);
        }
    });
    WorkOutput {
        ops: Some(steps as f64),
        secs,
        ..WorkOutput::default()
    }
}
