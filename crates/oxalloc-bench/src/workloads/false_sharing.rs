//! False sharing (after Hoard's cache-thrash and cache-scratch, Berger et al., ASPLOS 2000).
//!
//! Each thread repeatedly allocates an 8-byte object, writes every byte of it
//! [`REPETITIONS`] times, and frees it. An allocator that gives objects on one cache line to
//! different threads makes the cores fight over that line.
//! - `Thrash` (active false sharing): the threads allocate their objects themselves.
//! - `Scratch` (passive false sharing): the main thread first allocates one object per
//!   thread (adjacent, likely on one line) and hands one to each; each thread frees the
//!   object it was given before its loop, so an allocator that reuses a freed block on the
//!   freeing thread gives threads neighbouring memory.
//!
//! The total number of objects is fixed and split among the threads.

use super::{scaled, timed_threads, Block, WorkOutput};
use std::sync::Mutex;

/// Object size, bytes.
pub const OBJECT: usize = 8;
/// Writes of each byte per object.
pub const REPETITIONS: usize = 1000;

/// Which variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Active false sharing.
    Thrash,
    /// Passive false sharing.
    Scratch,
}

/// Runs the workload; see the module docs.
pub fn run(mode: Mode, threads: usize, scale: f64) -> WorkOutput {
    let total = scaled(100_000, scale, 100);
    let per_thread = total / threads as u64;
    let given: Vec<Mutex<Option<Block>>> = (0..threads)
        .map(|_| Mutex::new((mode == Mode::Scratch).then(|| Block::new(OBJECT))))
        .collect();
    let (_, secs) = timed_threads(threads, |t| {
        drop(given[t].lock().unwrap_or_else(|e| e.into_inner()).take());
        for _ in 0..per_thread {
            let b = Block::new(OBJECT);
            let p = b.as_ptr();
            for _ in 0..REPETITIONS {
                for j in 0..OBJECT {
                    // SAFETY: `j < OBJECT`, inside the live block `b`; volatile so the
                    // writes reach memory as the benchmark intends.
                    unsafe {
                        let q = p.add(j);
                        q.write_volatile(q.read_volatile().wrapping_add(1));
                    }
                }
            }
            drop(b);
        }
    });
    WorkOutput {
        ops: Some((per_thread * threads as u64) as f64),
        secs,
        ..WorkOutput::default()
    }
}
