//! Threads in a ring passing batches on (after sh8bench): each round a thread allocates
//! a batch of blocks of one size (a new size each round, 8..1008 bytes), frees half of
//! them itself in reverse order, passes the other half to the next thread, and frees
//! the half the thread before it passed on. Every span a batch fills ends up freed
//! partly by its owner and partly by another thread, while its owner has moved on to
//! another size: memory comes back only if such spans go back whole without their
//! class being allocated again. Found in session 22 (a C version of this shape:
//! oxalloc 26.9 MiB peak against mimalloc's 8.3).

use super::{scaled, timed_threads, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

/// Blocks per batch.
pub const BATCH: usize = 1000;
/// Rounds per thread at scale 1.0.
pub const ROUNDS: u64 = 1000;

/// The half of a batch passed to the next thread.
type Batch = Vec<Block>;

/// Runs the workload; see the module docs.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let rounds = scaled(ROUNDS, scale, 10);
    // Thread t sends to thread t + 1; each mailbox holds one batch.
    let (senders, receivers): (Vec<SyncSender<Batch>>, Vec<Receiver<Batch>>) =
        (0..threads).map(|_| sync_channel(1)).unzip();
    let receivers: Vec<Mutex<Option<Receiver<Batch>>>> =
        receivers.into_iter().map(|r| Mutex::new(Some(r))).collect();
    let (_, secs) = timed_threads(threads, |t| {
        let inbox = receivers[t].lock().unwrap().take().unwrap();
        let next = senders[(t + 1) % threads].clone();
        let mut rng = Rng::new(0xB47C + t as u64);
        for _ in 0..rounds {
            let size = rng.range(8, 1008);
            let mut batch: Vec<Block> = (0..BATCH)
                .map(|_| {
                    let mut b = Block::new(size);
                    b.touch(64, 0x6B);
                    b
                })
                .collect();
            while batch.len() > BATCH / 2 {
                drop(batch.pop());
            }
            if next.send(batch).is_err() {
                return;
            }
            match inbox.recv() {
                Ok(theirs) => drop(theirs),
                Err(_) => return,
            }
        }
    });
    WorkOutput {
        ops: Some((rounds * threads as u64 * BATCH as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
