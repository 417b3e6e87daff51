//! Threads growing many buffers by `realloc` to 64 KiB, then freeing them all, round after
//! round: a reader filling buffers whose final size it does not know in advance (HTTP
//! bodies, decompression outputs), with a burst of frees between batches.
//!
//! Each thread, per round, starts [`BLOCKS`] blocks of 1 byte and grows them in turns (one
//! step for every block still growing, then the next step), each step by a random 1-25% of
//! the current length (at least one byte) up to [`MAX_LEN`], writing the new bytes. When
//! all are 64 KiB it frees them and begins the next round. Freed memory is needed again at
//! once by the next round, so an allocator that hands it back to the kernel on free pays
//! for it in page faults. The rounds are fixed and each thread runs all of them; an
//! operation is one `realloc`.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;

/// Blocks each thread grows per round.
pub const BLOCKS: usize = 256;
/// Length every block grows to.
pub const MAX_LEN: usize = 64 << 10;
/// Rounds at scale 1.0.
pub const ROUNDS: u64 = 40;

/// The next length of a block of `len` bytes: 1-25% more, at least one byte, at most
/// [`MAX_LEN`].
pub fn grow(len: usize, rng: &mut Rng) -> usize {
    (len + (len * rng.range(1, 25) / 100).max(1)).min(MAX_LEN)
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let rounds = scaled(ROUNDS, scale, 1);
    let (reallocs, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x4E_A11C + t as u64);
        let mut ops = 0u64;
        for _ in 0..rounds {
            let mut blocks: Vec<Block> = (0..BLOCKS)
                .map(|_| {
                    let mut b = Block::new(1);
                    b.touch(1, t as u8);
                    b
                })
                .collect();
            let mut growing = true;
            while growing {
                growing = false;
                for b in blocks.iter_mut().filter(|b| b.len() < MAX_LEN) {
                    let len = b.len();
                    let new_len = grow(len, &mut rng);
                    b.resize(new_len);
                    // SAFETY: the block now holds `new_len` bytes; this writes `len..new_len`.
                    unsafe { std::ptr::write_bytes(b.as_ptr().add(len), t as u8, new_len - len) };
                    ops += 1;
                    growing |= new_len < MAX_LEN;
                }
            }
            drop(blocks); // every block freed, 16 MiB per thread
        }
        ops
    });
    WorkOutput {
        ops: Some(reallocs.iter().sum::<u64>() as f64),
        secs,
        ..WorkOutput::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_steps_are_one_to_twenty_five_percent_and_capped() {
        let mut rng = Rng::new(1);
        assert_eq!(grow(1, &mut rng), 2);
        for len in [100, 4000, 50_000] {
            let n = grow(len, &mut rng);
            assert!(n > len && n <= len + len / 4, "{len} -> {n}");
        }
        assert_eq!(grow(MAX_LEN - 1, &mut rng), MAX_LEN);
    }
}
