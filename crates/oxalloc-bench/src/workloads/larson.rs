//! larson-like server simulation (after Larson & Krishnan, "Memory allocation for
//! long-running server applications", 1998).
//!
//! Each thread keeps a live working set of [`SLOTS`] blocks of random size 16..=1024 bytes.
//! One operation frees the block in a random slot and allocates a new one there (writing its
//! first bytes). Every [`HANDOFF_EVERY`] operations a thread moves [`HANDOFF`] of its blocks to
//! the next thread's mailbox and adopts whatever its own mailbox holds, so blocks allocated
//! on one thread are later freed on another, as in a server whose requests migrate. A
//! thread that has finished closes its mailbox (freeing what is in it) and gets no more
//! blocks, and a mailbox holds at most [`MAILBOX_MAX`] blocks (more are freed by the
//! sender): otherwise the working set grows with every hand-off to a finished or
//! descheduled neighbour, and peak RSS measures how unevenly the scheduler ran the
//! threads, not the allocator. (Unbounded, with more threads than cores, the peak live
//! bytes at 4 threads on 2 cores ranged 6.0-9.9 MiB between runs and allocators, against
//! 4.2 MiB in the slots: a faster allocator filled a sleeping neighbour's mailbox faster.)
//!
//! The total number of operations is fixed and split among the threads, so on enough cores
//! the wall time falls with the thread count; throughput is operations per second.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::Mutex;

/// Live blocks per thread.
pub const SLOTS: usize = 2000;
/// Operations between two hand-offs.
pub const HANDOFF_EVERY: u64 = 2048;
/// Blocks moved per hand-off.
pub const HANDOFF: usize = 32;
/// Most blocks waiting in a mailbox: a neighbour that has not picked up four hand-offs
/// is not running, and more would only pile up.
pub const MAILBOX_MAX: usize = 4 * HANDOFF;

/// Blocks handed to a thread, and whether it has finished.
#[derive(Default)]
struct Mailbox {
    blocks: Vec<Block>,
    closed: bool,
}

fn lock(m: &Mutex<Mailbox>) -> std::sync::MutexGuard<'_, Mailbox> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let total_ops = scaled(20_000_000, scale, 10_000);
    let per_thread = total_ops / threads as u64;
    let mailboxes: Vec<Mutex<Mailbox>> = (0..threads).map(|_| Mutex::default()).collect();
    let (_, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0x1A750 + t as u64);
        let new_block = |rng: &mut Rng| {
            let mut b = Block::new(rng.range(16, 1024));
            b.touch(16, t as u8);
            b
        };
        let mut slots: Vec<Option<Block>> = (0..SLOTS).map(|_| Some(new_block(&mut rng))).collect();
        for op in 0..per_thread {
            let i = rng.below(SLOTS);
            slots[i] = None; // free first, then allocate, as larson does
            slots[i] = Some(new_block(&mut rng));
            if op % HANDOFF_EVERY == HANDOFF_EVERY - 1 {
                let next = (t + 1) % threads;
                let start = rng.below(SLOTS - HANDOFF);
                let adopted: Vec<Block> = std::mem::take(&mut lock(&mailboxes[t]).blocks);
                let mut adopted = adopted.into_iter();
                let outgoing: Vec<Block> = (start..start + HANDOFF)
                    .filter_map(|j| {
                        let fresh = adopted.next().unwrap_or_else(|| new_block(&mut rng));
                        slots[j].replace(fresh)
                    })
                    .collect();
                drop(adopted); // surplus adopted blocks are freed here, on this thread
                let mut theirs = lock(&mailboxes[next]);
                if !theirs.closed && theirs.blocks.len() < MAILBOX_MAX {
                    theirs.blocks.extend(outgoing);
                } // else `outgoing` is freed here: the neighbour has finished or is not running
            }
        }
        let last = {
            let mut mine = lock(&mailboxes[t]);
            mine.closed = true;
            std::mem::take(&mut mine.blocks)
        };
        drop(last);
        drop(slots);
    });
    drop(mailboxes);
    WorkOutput {
        ops: Some((per_thread * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
