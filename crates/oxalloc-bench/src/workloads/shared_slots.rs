//! Blocks replaced in tables that more threads than cores share: nearly every free is of a
//! block another thread allocated, whose owner is often not running at the time (a thread
//! pool larger than the machine, passing buffers from one task to the next).
//!
//! There are as many tables as threads, [`SLOTS`] slots each. A thread walks the tables in
//! turn (in pass `p`, thread `t` walks table `(t + p) % threads`), and in each slot swaps in
//! a new block of 16-512 bytes (its first 16 bytes written, its length in the first word)
//! and frees the block it took out, which some thread put there in an earlier pass. The
//! tables always hold the same number of blocks, so the live memory is the same under
//! every allocator; what differs is how much memory an allocator holds beside it. The
//! operations are fixed and split among the threads; an operation is one allocation.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Slots in each table.
pub const SLOTS: usize = 16 * 1024;
/// Operations at scale 1.0, split among the threads.
pub const OPS: u64 = 5_000_000;

/// Frees a block taken out of a slot (null: the slot was empty).
fn free_taken(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: every non-null pointer in a slot came from `Block::into_raw` of a block
    // whose first word holds its length; the swap that took it out made it ours alone.
    drop(unsafe { Block::from_raw(p, p.cast::<usize>().read()) });
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let per_thread = scaled(OPS, scale, 10_000) / threads as u64;
    let tables: Vec<Vec<AtomicPtr<u8>>> = (0..threads)
        .map(|_| (0..SLOTS).map(|_| AtomicPtr::default()).collect())
        .collect();
    let (_, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x5107 + t as u64);
        for op in 0..per_thread {
            let pass = op as usize / SLOTS;
            let slot = &tables[(t + pass) % threads][op as usize % SLOTS];
            let len = rng.range(16, 512);
            let mut b = Block::new(len);
            b.touch(16, t as u8 + 1);
            let (p, _) = b.into_raw();
            // SAFETY: the block has at least 16 bytes, aligned for a usize.
            unsafe { p.cast::<usize>().write(len) };
            free_taken(slot.swap(p, Ordering::AcqRel));
        }
    });
    for slot in tables.iter().flatten() {
        free_taken(slot.swap(std::ptr::null_mut(), Ordering::AcqRel));
    }
    WorkOutput {
        ops: Some((per_thread * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
