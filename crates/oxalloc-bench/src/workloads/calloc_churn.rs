//! `calloc` churn on threads created afresh every round, with rare large objects: a
//! thread-per-task program (a build tool, a test runner, a request handler per thread)
//! whose objects outlive the thread that made them.
//!
//! Each round spawns `threads` new threads. Each keeps a window of [`WINDOW`] slots and, per
//! operation, frees the object in a random slot and puts a new one there: `calloc` of
//! 16-512 bytes, times 100 for 1% of objects, times 1000 for 0.1% and times 10000 for
//! 0.01% (so up to 5 MB). It checks that a sample of the object's bytes (first, middle,
//! last and four at random) read as zero, and then writes every byte. At the end of a
//! round each thread returns its window, still full, and the next round's thread `t` takes
//! the window left by thread `t + 1`: those objects are freed by a thread other than the
//! one that made them, which has exited by then. The operations are fixed and split among
//! the threads; an operation is one `calloc`.

use super::{scaled, Block, WorkOutput};
use crate::rng::Rng;

/// Live objects per thread.
pub const WINDOW: usize = 1000;
/// Rounds at scale 1.0 (each spawns fresh threads).
pub const ROUNDS: u64 = 100;
/// Operations per round, split among the threads.
pub const OPS_PER_ROUND: u64 = 30_000;

/// One object size: 16-512 bytes, with 1% of them 100x, 0.1% 1000x, 0.01% 10000x.
pub fn size(rng: &mut Rng) -> usize {
    let base = rng.range(16, 512);
    base * match rng.below(10_000) {
        0 => 10_000,
        1..=10 => 1000,
        11..=110 => 100,
        _ => 1,
    }
}

/// Byte offsets checked for zero in a block of `len` bytes.
fn sample(len: usize, rng: &mut Rng) -> [usize; 7] {
    let r = |rng: &mut Rng| rng.below(len);
    [0, len / 2, len - 1, r(rng), r(rng), r(rng), r(rng)]
}

/// One thread's round: `ops` replacements in `window`.
fn churn(window: &mut [Option<Block>], ops: u64, rng: &mut Rng, byte: u8) {
    for _ in 0..ops {
        let i = rng.below(window.len());
        window[i] = None;
        let len = size(rng);
        let mut b = Block::zeroed(len);
        for off in sample(len, rng) {
            // SAFETY: `off < len`, inside the block.
            if unsafe { b.as_ptr().add(off).read() } != 0 {
                eprintln!("oxbench: calloc({len}) returned a non-zero byte at {off}");
                std::process::exit(5);
            }
        }
        b.touch(len, byte);
        window[i] = Some(b);
    }
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let rounds = scaled(ROUNDS, scale, 2);
    let per_thread = OPS_PER_ROUND / threads as u64;
    let mut windows: Vec<Vec<Option<Block>>> = (0..threads)
        .map(|_| (0..WINDOW).map(|_| None).collect())
        .collect();
    let start = std::time::Instant::now();
    for round in 0..rounds {
        windows.rotate_left(1); // thread t takes the window thread t + 1 filled
        windows = std::thread::scope(|s| {
            let hs: Vec<_> = windows
                .into_iter()
                .enumerate()
                .map(|(t, mut w)| {
                    s.spawn(move || {
                        let mut rng = Rng::new(0xCA_110C ^ (round << 8) ^ t as u64);
                        churn(&mut w, per_thread, &mut rng, t as u8 + 1);
                        w
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| std::process::exit(4)))
                .collect()
        });
    }
    drop(windows);
    WorkOutput {
        ops: Some((rounds * per_thread * threads as u64) as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_the_stated_tail() {
        let mut rng = Rng::new(3);
        let n = 1_000_000;
        let sizes: Vec<usize> = (0..n).map(|_| size(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| (16..=5_120_000).contains(&s)));
        let over = |x: usize| sizes.iter().filter(|&&s| s > x).count() as f64 / n as f64;
        // 100x of 16-512 B is 1.6-51 KB: 1.11% are over 512 B, about 0.11% over 51.2 KB.
        assert!((over(512) - 0.0111).abs() < 0.002, "{}", over(512));
        assert!(over(51_200) > 0.0005 && over(51_200) < 0.0016);
        assert!(over(512_000) > 0.0 && over(512_000) < 0.0003);
    }
}
