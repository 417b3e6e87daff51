//! Random replacement of blocks of any size up to 256 KiB (uniform): each thread keeps
//! [`SLOTS`] live blocks, and each operation frees a random one and allocates a block of
//! 1 B-256 KiB in its place, writing its first 64 bytes and its last (a server's
//! buffers of whatever size each request needs). Three blocks in four are large (above
//! 64 KiB): the row measures the path of big blocks, which in segregated allocators
//! leaves the thread's size classes. Found in session 23 (glibc's `bench-malloc-thread`
//! shape with bigger sizes): oxalloc's central pool took a lock on most calls, and two
//! threads contended for it.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;

/// Live blocks per thread.
pub const SLOTS: usize = 1024;
/// Largest request.
pub const MAX_SIZE: usize = 256 << 10;
/// Operations per thread at scale 1.0.
pub const OPS: u64 = 1_000_000;

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let ops = scaled(OPS, scale, 1_000);
    let (_, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x5A1E5 + t as u64);
        let new_block = |rng: &mut Rng| {
            let mut b = Block::new(rng.range(1, MAX_SIZE));
            b.touch(64, t as u8);
            b
        };
        let mut slots: Vec<Block> = (0..SLOTS).map(|_| new_block(&mut rng)).collect();
        for _ in 0..ops {
            let i = rng.below(SLOTS);
            drop(std::mem::replace(&mut slots[i], new_block(&mut rng)));
        }
    });
    WorkOutput {
        ops: Some((ops * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
