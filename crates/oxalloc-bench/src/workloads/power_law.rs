//! Power-law sizes with mixed lifetimes (after mstress and alloc-test in mimalloc-bench).
//!
//! Sizes follow a Pareto law with exponent 1 from 16 bytes, capped at 1 MiB: half the
//! requests are under 32 bytes, 1 in 64 is over 1 KiB, 1 in 4096 over 64 KiB. Nine
//! allocations in ten are short-lived (they go into a ring of [`SHORT`] and are freed
//! [`SHORT`] allocations later); one in ten is long-lived (it replaces a random block of a
//! [`LONG`]-slot set). Every [`TRANSFER_EVERY`] operations a thread swaps one of its
//! long-lived blocks into a shared array and frees the block it got back, so long-lived
//! blocks also die on other threads. Each new block gets its first 64 bytes written.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Short-lived ring length.
pub const SHORT: usize = 64;
/// Long-lived set size per thread.
pub const LONG: usize = 4096;
/// Shared transfer slots.
pub const TRANSFER: usize = 1024;
/// Operations between transfers.
pub const TRANSFER_EVERY: u64 = 64;
/// Largest request.
pub const MAX_SIZE: usize = 1 << 20;

/// One size from the Pareto law of the module docs.
pub fn pareto_size(rng: &mut Rng) -> usize {
    let u = rng.unit().max(1e-12);
    ((16.0 / u) as usize).clamp(16, MAX_SIZE)
}

struct Shared {
    ptrs: Vec<AtomicPtr<u8>>,
    lens: Vec<AtomicUsize>,
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let total = scaled(15_000_000, scale, 10_000);
    let per_thread = total / threads as u64;
    let shared = Shared {
        ptrs: (0..TRANSFER)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect(),
        lens: (0..TRANSFER).map(|_| AtomicUsize::new(0)).collect(),
    };
    let (_, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x90E4 + t as u64);
        let new_block = |rng: &mut Rng| {
            let mut b = Block::new(pareto_size(rng));
            b.touch(64, 0x5A);
            b
        };
        let mut short: Vec<Option<Block>> = (0..SHORT).map(|_| None).collect();
        let mut long: Vec<Option<Block>> = (0..LONG).map(|_| None).collect();
        for op in 0..per_thread {
            if rng.below(10) == 0 {
                let i = rng.below(LONG);
                long[i] = None;
                long[i] = Some(new_block(&mut rng));
            } else {
                let i = op as usize % SHORT;
                short[i] = None;
                short[i] = Some(new_block(&mut rng));
            }
            if op % TRANSFER_EVERY == 0 {
                if let Some(b) = long[rng.below(LONG)].take() {
                    let k = rng.below(TRANSFER);
                    // Publish the length first; the pointer swap hands over the ownership.
                    let (p, len) = b.into_raw();
                    let old_len = shared.lens[k].swap(len, Ordering::AcqRel);
                    let old = shared.ptrs[k].swap(p, Ordering::AcqRel);
                    if !old.is_null() {
                        // SAFETY: every non-null pointer in the array came from `into_raw`
                        // and the swap gave us its sole ownership. The length may belong to
                        // a racing pair; `Block` uses it only for touch, never for free.
                        drop(unsafe { Block::from_raw(old, old_len.max(1)) });
                    }
                }
            }
        }
    });
    for p in &shared.ptrs {
        let p = p.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: as above; no thread runs any more.
            drop(unsafe { Block::from_raw(p, 1) });
        }
    }
    WorkOutput {
        ops: Some((per_thread * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
