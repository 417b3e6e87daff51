//! Short-lived threads that leave blocks behind: rounds of threads, each of which keeps a
//! few dozen blocks, replaces them at random, then frees half and leaves the other half in
//! a table shared by every thread (freeing the block it replaces there, which a thread of
//! an earlier round left). A request handler pool that is torn down and respawned, whose
//! tasks put results into a shared cache.
//!
//! The live memory is the same under every allocator (the table, ~9 MiB, plus the
//! running threads' blocks), so peak RSS shows what each holds beside it. Found in
//! session 20 as `examples/programs/thread_churn.c` (whose `PERSIST=1` runs the same
//! rounds on threads started once: the difference is what thread churn costs).

use super::{scaled, Block, WorkOutput};
use crate::rng::Rng;
use std::sync::Mutex;

/// Blocks each thread keeps while it runs.
pub const LIVE: usize = 64;
/// Random replacements each thread makes among its blocks.
pub const REPLACEMENTS: usize = 200;
/// Slots in the shared table.
pub const SLOTS: usize = 4096;
/// Rounds at scale 1.0.
pub const ROUNDS: u64 = 1500;

fn work(table: &Mutex<Vec<Option<Block>>>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut mine: Vec<Block> = (0..LIVE)
        .map(|_| {
            let mut b = Block::new(rng.range(16, 2016));
            b.touch(16, 1);
            b
        })
        .collect();
    for _ in 0..REPLACEMENTS {
        let i = rng.below(LIVE);
        let mut b = Block::new(rng.range(16, 4016));
        b.touch(16, 2);
        mine[i] = b; // frees the block it replaces
    }
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    for (i, b) in mine.into_iter().enumerate() {
        if i % 2 == 1 {
            let s = rng.below(SLOTS);
            table[s] = Some(b); // frees what an earlier thread left there
        } // else dropped: freed here
    }
}

/// `threads` threads a round, each started after the previous round's have exited.
pub fn run(threads: usize, scale: f64) -> WorkOutput {
    let rounds = scaled(ROUNDS, scale, 4);
    let table: Mutex<Vec<Option<Block>>> = Mutex::new((0..SLOTS).map(|_| None).collect());
    let start = std::time::Instant::now();
    for round in 0..rounds {
        std::thread::scope(|s| {
            for t in 0..threads {
                let table = &table;
                let seed = 0x7C_4C ^ (round << 8) ^ t as u64;
                s.spawn(move || work(table, seed));
            }
        });
    }
    let secs = start.elapsed().as_secs_f64();
    drop(table);
    WorkOutput {
        ops: Some((rounds * threads as u64 * (LIVE + REPLACEMENTS) as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_runs_and_counts_its_allocations() {
        let out = run(2, 0.0);
        assert_eq!(out.ops, Some((4 * 2 * (LIVE + REPLACEMENTS)) as f64));
        assert!(out.secs > 0.0);
    }
}
