//! `n` malloc/free pairs of one size on one thread: the program that
//! `oxalloc-bench instructions` counts instructions of (a run with `n = 0` is the baseline).

use super::WorkOutput;
use std::hint::black_box;

/// Runs `n` pairs of `malloc(size)` / `free`.
pub fn run(n: u64, size: usize) -> WorkOutput {
    let start = std::time::Instant::now();
    for _ in 0..n {
        // SAFETY: malloc has no preconditions; the result (possibly null) goes to free, which
        // accepts null and pointers from malloc.
        unsafe {
            let p = libc::malloc(black_box(size));
            libc::free(black_box(p));
        }
    }
    WorkOutput {
        ops: Some(n as f64),
        secs: start.elapsed().as_secs_f64(),
        ..WorkOutput::default()
    }
}
