//! `realloc` growth of many buffers: string builders and vector pushes.
//!
//! [`BUFFERS`] buffers grow by appends of 1..=64 bytes, chosen at random. Even-numbered
//! buffers are naive string builders (`realloc` to the exact new length on every append);
//! odd-numbered ones are vectors (capacity doubles when full, from 16 bytes). Each append
//! writes its bytes. A buffer that passes its target length (log-uniform 64 B..64 KiB) is
//! freed and starts again, so the heap holds a mix of sizes as a parser or logger would.

use super::{scaled, Block, WorkOutput};
use crate::rng::Rng;

/// Buffers growing at once.
pub const BUFFERS: usize = 1000;

struct Buf {
    block: Option<Block>,
    len: usize,
    target: usize,
}

/// Runs the workload; see the module docs.
pub fn run(scale: f64) -> WorkOutput {
    let appends = scaled(5_000_000, scale, 10_000);
    let mut rng = Rng::new(0x6E411);
    let mut bufs: Vec<Buf> = (0..BUFFERS)
        .map(|_| Buf {
            block: None,
            len: 0,
            target: rng.log_uniform(64, 64 << 10),
        })
        .collect();
    let start = std::time::Instant::now();
    for _ in 0..appends {
        let i = rng.below(BUFFERS);
        let n = rng.range(1, 64);
        let exact = i & 1 == 0;
        let target = rng.log_uniform(64, 64 << 10);
        let b = &mut bufs[i];
        let new_len = b.len + n;
        match &mut b.block {
            None => {
                b.block = Some(Block::new(if exact {
                    new_len
                } else {
                    new_len.max(16).next_power_of_two()
                }));
            }
            Some(blk) if exact => blk.resize(new_len),
            Some(blk) if new_len > blk.len() => blk.resize((blk.len() * 2).max(new_len)),
            Some(_) => {}
        }
        if let Some(blk) = &mut b.block {
            // SAFETY: the block holds at least `new_len` bytes; we write `b.len..new_len`.
            unsafe { std::ptr::write_bytes(blk.as_ptr().add(b.len), b'x', n) };
        }
        b.len = new_len;
        if b.len > b.target {
            b.block = None;
            b.len = 0;
            b.target = target;
        }
    }
    drop(bufs);
    WorkOutput {
        ops: Some(appends as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}
