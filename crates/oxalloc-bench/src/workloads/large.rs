//! Large blocks (after malloc-large in mimalloc-bench).
//!
//! Keeps a window of [`WINDOW`] live blocks of log-uniform size 64 KiB..=32 MiB. Each
//! operation frees a random block of the window and allocates a new one in its place, then
//! writes one byte per page over the whole new block, as a program that fills a buffer
//! would. Allocators that return such blocks to the OS and fault them in again pay here.

use super::{page_size, scaled, Block, WorkOutput};
use crate::rng::Rng;

/// Live large blocks.
pub const WINDOW: usize = 8;

/// Runs the workload; see the module docs.
pub fn run(scale: f64) -> WorkOutput {
    let ops = scaled(600, scale, 20);
    let page = page_size();
    let mut rng = Rng::new(0x1A46E);
    let mut window: Vec<Option<Block>> = (0..WINDOW).map(|_| None).collect();
    let start = std::time::Instant::now();
    for _ in 0..ops {
        let i = rng.below(WINDOW);
        window[i] = None;
        let mut b = Block::new(rng.log_uniform(64 << 10, 32 << 20));
        b.touch_every(page, 1);
        window[i] = Some(b);
    }
    drop(window);
    WorkOutput {
        ops: Some(ops as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}
