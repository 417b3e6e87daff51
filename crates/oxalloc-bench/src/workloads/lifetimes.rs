//! Mixed lifetimes: most blocks die young, a few live long. Each step frees a block and
//! allocates one of 8-520 bytes (uniform) in its place: 99 steps in 100 in one of
//! [`SHORT`] short-lived slots, 1 in 100 in a table of [`LONG`] long-lived blocks, both
//! picked at random (an interpreter's temporaries beside its objects, a compiler's
//! scratch beside its syntax tree). Short-lived blocks get their first 16 bytes
//! written, long-lived ones all of theirs.
//!
//! Found in session 28 as a new user would try an allocator: the size classes' spans fill
//! with long-lived blocks, and the few short-lived ones in flight per class decide when
//! a span runs dry. oxalloc 1.7x tcmalloc's time then: a span came back from full at its
//! first free block, so the class switched spans at nearly every malloc and free.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;

/// Short-lived slots per thread.
pub const SHORT: usize = 32;
/// Long-lived blocks per thread.
pub const LONG: usize = 50_000;
/// Steps per thread at scale 1.0.
pub const STEPS: u64 = 20_000_000;
/// Request sizes, uniform in `MIN_SIZE..=MAX_SIZE`.
pub const MIN_SIZE: usize = 8;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: usize = 520;

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let steps = scaled(STEPS, scale, 10_000);
    let (_, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x11FE + t as u64);
        let byte = t as u8 + 1;
        let mut short: Vec<Option<Block>> = (0..SHORT).map(|_| None).collect();
        let mut long: Vec<Option<Block>> = (0..LONG).map(|_| None).collect();
        for _ in 0..steps {
            let len = rng.range(MIN_SIZE, MAX_SIZE);
            let (slot, written) = if rng.below(100) == 0 {
                (&mut long[rng.below(LONG)], len)
            } else {
                (&mut short[rng.below(SHORT)], 16)
            };
            // Free first, then allocate, as a program replacing a value does.
            *slot = None;
            let mut b = Block::new(len);
            b.touch(written, byte);
            *slot = Some(b);
        }
    });
    WorkOutput {
        ops: Some((steps * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
