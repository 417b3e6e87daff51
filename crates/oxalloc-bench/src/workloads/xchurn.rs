//! Churn of 16 B-16 KiB blocks where a quarter of them are freed by another thread: worker
//! threads that pass messages and buffers of mixed sizes to each other (a pipeline whose
//! stages also allocate for themselves).
//!
//! Each thread keeps a window of [`WINDOW`] blocks. Per operation it allocates a block of
//! 16 B-16 KiB (log-uniform) and writes its first 64 bytes and its last; every [`SHARE`]th
//! block goes to the next thread (in batches of [`BATCH`], through that thread's
//! mutex-protected inbox), the others replace the block in a random slot of its own
//! window, which is freed. Every [`DRAIN_EVERY`] operations a thread frees everything in
//! its inbox: blocks the other thread allocated. A finished thread's inbox is closed, and
//! an inbox holds at most [`INBOX_MAX`] blocks (more are freed by the sender), so a thread
//! the scheduler leaves off does not pile up memory. The operations are fixed and split
//! among the threads; an operation is one allocation.

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::{Mutex, MutexGuard};

/// Live blocks in each thread's own window.
pub const WINDOW: usize = 1024;
/// One allocation in this many goes to the next thread.
pub const SHARE: u64 = 4;
/// Blocks sent at once.
pub const BATCH: usize = 32;
/// Operations between two drains of a thread's inbox.
pub const DRAIN_EVERY: u64 = 256;
/// Most blocks waiting in an inbox.
pub const INBOX_MAX: usize = 64 * BATCH;
/// Operations at scale 1.0, split among the threads.
pub const OPS: u64 = 6_000_000;

#[derive(Default)]
struct Inbox {
    blocks: Vec<Block>,
    closed: bool,
}

fn lock(m: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let per_thread = scaled(OPS, scale, 10_000) / threads as u64;
    let inboxes: Vec<Mutex<Inbox>> = (0..threads).map(|_| Mutex::default()).collect();
    let (_, secs) = timed_threads(threads, |t| {
        let mut rng = Rng::new(0xC4055 + t as u64);
        let next = &inboxes[(t + 1) % threads];
        let mut window: Vec<Option<Block>> = (0..WINDOW).map(|_| None).collect();
        let mut out: Vec<Block> = Vec::with_capacity(BATCH);
        for op in 0..per_thread {
            let mut b = Block::new(rng.log_uniform(16, 16 << 10));
            b.touch(64, t as u8 + 1);
            if op % SHARE == 0 {
                out.push(b);
                if out.len() == BATCH {
                    let batch = std::mem::replace(&mut out, Vec::with_capacity(BATCH));
                    let mut inbox = lock(next);
                    if !inbox.closed && inbox.blocks.len() < INBOX_MAX {
                        inbox.blocks.extend(batch);
                    } else {
                        drop(inbox);
                        drop(batch); // the neighbour has finished or is not running
                    }
                }
            } else {
                let i = rng.below(WINDOW);
                window[i] = None;
                window[i] = Some(b);
            }
            if op % DRAIN_EVERY == DRAIN_EVERY - 1 {
                let theirs = std::mem::take(&mut lock(&inboxes[t]).blocks);
                drop(theirs); // freed here, outside the lock
            }
        }
        let last = {
            let mut mine = lock(&inboxes[t]);
            mine.closed = true;
            std::mem::take(&mut mine.blocks)
        };
        drop(last);
        drop(out);
        drop(window);
    });
    drop(inboxes);
    WorkOutput {
        ops: Some((per_thread * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
