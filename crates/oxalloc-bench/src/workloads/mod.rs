//! Workloads that run *inside* the child process, one module each.
//!
//! They allocate through the C allocator (`libc::malloc`/`free`/`realloc`, wrapped in
//! [`Block`]) or through Rust `std` (which calls the same `malloc`), so the allocator chosen
//! by `LD_PRELOAD` serves every request. Each takes a thread count and a `scale` (1.0 = the
//! full run, about a second under glibc here; `--quick` uses less) and returns a
//! [`WorkOutput`] that the child prints as one JSON line. The sizes and patterns are fixed
//! by the workload, never by the allocator under test.

pub mod batch_ring;
pub mod burst_idle;
pub mod calloc_churn;
pub mod false_sharing;
pub mod huge_table;
pub mod large;
pub mod larson;
pub mod lifetimes;
pub mod pairs;
pub mod power_law;
pub mod prodcons;
pub mod random_sizes;
pub mod realloc_growth;
pub mod realloc_threads;
pub mod shared_slots;
pub mod table_replace;
pub mod thread_churn;
pub mod xchurn;
pub mod xmalloc;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ptr::NonNull;

/// What a workload reports to the parent.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkOutput {
    /// Operations done (allocations, appends, ...); throughput is `ops / secs`.
    pub ops: Option<f64>,
    /// Seconds spent in the measured part (after setup).
    pub secs: f64,
    /// Workload-specific numbers (e.g. RSS before and after a burst, MiB).
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
}

impl WorkOutput {
    /// The line the child prints on stdout.
    pub fn to_line(&self) -> String {
        format!(
            "{}{}",
            crate::RESULT_PREFIX,
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// Finds and parses the result line in a child's stdout.
    pub fn parse(stdout: &str) -> Option<WorkOutput> {
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(crate::RESULT_PREFIX))
            .and_then(|j| serde_json::from_str(j).ok())
    }
}

/// Names of the C-allocator workloads this module runs (see [`run`]).
pub const NAMES: [&str; 20] = [
    "larson",
    "xmalloc",
    "cache-thrash",
    "cache-scratch",
    "power-law",
    "realloc",
    "large",
    "burst-idle",
    "realloc-threads",
    "calloc-churn",
    "table-replace",
    "xchurn",
    "prodcons",
    "shared-slots",
    "thread-churn",
    "batch-ring",
    "random-sizes",
    "lifetimes",
    "huge-table",
    "pairs",
];

/// Runs workload `name`; `None` for an unknown name.
pub fn run(name: &str, threads: usize, scale: f64, pairs: u64) -> Option<WorkOutput> {
    let threads = threads.max(1);
    Some(match name {
        "larson" => larson::run(threads, scale),
        "xmalloc" => xmalloc::run(threads, scale),
        "cache-thrash" => false_sharing::run(false_sharing::Mode::Thrash, threads, scale),
        "cache-scratch" => false_sharing::run(false_sharing::Mode::Scratch, threads, scale),
        "power-law" => power_law::run(threads, scale),
        "realloc" => realloc_growth::run(scale),
        "large" => large::run(scale),
        "burst-idle" => burst_idle::run(scale),
        "realloc-threads" => realloc_threads::run(threads, scale),
        "calloc-churn" => calloc_churn::run(threads, scale),
        "table-replace" => table_replace::run(threads, scale),
        "xchurn" => xchurn::run(threads, scale),
        "prodcons" => prodcons::run(scale),
        "shared-slots" => shared_slots::run(threads, scale),
        "thread-churn" => thread_churn::run(threads, scale),
        "batch-ring" => batch_ring::run(threads, scale),
        "random-sizes" => random_sizes::run(threads, scale),
        "lifetimes" => lifetimes::run(threads, scale),
        "huge-table" => huge_table::run(scale),
        "pairs" => pairs::run(pairs, 32),
        _ => return None,
    })
}

/// `base * scale`, at least `min`.
pub fn scaled(base: u64, scale: f64, min: u64) -> u64 {
    ((base as f64 * scale) as u64).max(min)
}

/// Exits the child with a message when the allocator returns null.
#[cold]
pub fn out_of_memory(len: usize) -> ! {
    eprintln!("oxbench: allocation of {len} bytes failed");
    std::process::exit(3)
}

/// A block from the C allocator, owned: dropping it calls `free`.
///
/// Blocks can be sent between threads, which is how workloads make cross-thread frees.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Block exclusively owns its malloc'd memory, and C `free` may be called from any
// thread, so moving the ownership to another thread is sound.
unsafe impl Send for Block {}

impl Block {
    /// `malloc(len)` (`len > 0`); exits on failure.
    pub fn new(len: usize) -> Block {
        // SAFETY: malloc has no preconditions; null is handled below.
        let p = unsafe { libc::malloc(len) }.cast::<u8>();
        match NonNull::new(p) {
            Some(ptr) => Block { ptr, len },
            None => out_of_memory(len),
        }
    }

    /// `calloc(1, len)` (`len > 0`): zeroed; exits on failure.
    pub fn zeroed(len: usize) -> Block {
        // SAFETY: calloc has no preconditions; null is handled below.
        let p = unsafe { libc::calloc(1, len) }.cast::<u8>();
        match NonNull::new(p) {
            Some(ptr) => Block { ptr, len },
            None => out_of_memory(len),
        }
    }

    /// Requested length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length block (never made by the workloads).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block's address.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The raw pointer, for volatile access by the false-sharing workloads.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Writes `byte` over the first `min(n, len)` bytes and over the last byte, as a program
    /// initialising a header and a terminator would.
    pub fn touch(&mut self, n: usize, byte: u8) {
        let n = n.min(self.len);
        // SAFETY: both writes are inside the `len` bytes this block owns.
        unsafe {
            std::ptr::write_bytes(self.ptr.as_ptr(), byte, n);
            self.ptr.as_ptr().add(self.len - 1).write(byte);
        }
    }

    /// Writes one byte every `stride` bytes over the whole block (touches every page).
    pub fn touch_every(&mut self, stride: usize, byte: u8) {
        let mut off = 0;
        while off < self.len {
            // SAFETY: `off < len`, inside the block.
            unsafe { self.ptr.as_ptr().add(off).write_volatile(byte) };
            off += stride;
        }
    }

    /// `realloc` to `new_len` (`> 0`); exits on failure.
    pub fn resize(&mut self, new_len: usize) {
        // SAFETY: `ptr` came from malloc/realloc and is live; on success the old pointer is
        // replaced, on failure (null) it stays valid and we exit.
        let p = unsafe { libc::realloc(self.ptr.as_ptr().cast(), new_len) }.cast::<u8>();
        match NonNull::new(p) {
            Some(ptr) => {
                self.ptr = ptr;
                self.len = new_len;
            }
            None => out_of_memory(new_len),
        }
    }

    /// Gives up ownership without freeing; see [`Block::from_raw`].
    pub fn into_raw(self) -> (*mut u8, usize) {
        let me = std::mem::ManuallyDrop::new(self);
        (me.ptr.as_ptr(), me.len)
    }

    /// Takes back ownership of a block from [`Block::into_raw`].
    ///
    /// # Safety
    /// `(ptr, len)` came from `into_raw` and is not owned by anything else.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Block {
        match NonNull::new(ptr) {
            Some(ptr) => Block { ptr, len },
            None => out_of_memory(len),
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: the block owns `ptr`, which came from malloc/realloc and is freed once.
        unsafe { libc::free(self.ptr.as_ptr().cast()) }
    }
}

/// This process's resident set now, bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * page_size() as u64
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Runs `f(thread_index)` on `threads` threads started together, and returns the results
/// and the seconds from the common start to the last thread's end.
pub fn timed_threads<T: Send>(threads: usize, f: impl Fn(usize) -> T + Sync) -> (Vec<T>, f64) {
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (f, barrier) = (&f, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    f(t)
                })
            })
            .collect();
        barrier.wait();
        let start = std::time::Instant::now();
        let out: Vec<T> = hs
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| std::process::exit(4)))
            .collect();
        (out, start.elapsed().as_secs_f64())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips() {
        let mut w = WorkOutput {
            ops: Some(12.0),
            secs: 0.5,
            ..WorkOutput::default()
        };
        w.extra.insert("rss_after_mib".into(), 3.5);
        let out = format!("noise\n{}\n", w.to_line());
        assert_eq!(WorkOutput::parse(&out), Some(w));
        assert_eq!(WorkOutput::parse("nothing"), None);
    }

    #[test]
    fn every_workload_runs_at_tiny_scale() {
        for name in NAMES {
            if name == "burst-idle" || name == "table-replace" {
                continue; // sleeps a second by design; fills 2^18 blocks a thread (below)
            }
            let w = run(name, 2, 0.002, 1000).unwrap();
            assert!(w.secs >= 0.0, "{name}");
        }
        assert!(run("nope", 1, 1.0, 0).is_none());
    }

    /// The workloads of issue 18, each at a tiny scale with the thread count the suite
    /// gives it: each finishes and reports operations and a time.
    #[test]
    fn issue_18_workloads_report_operations() {
        for (name, threads) in [
            ("realloc-threads", 2),
            ("calloc-churn", 4),
            ("xchurn", 2),
            ("prodcons", 1),
        ] {
            let w = run(name, threads, 0.002, 0).unwrap();
            assert!(w.ops.is_some_and(|o| o > 0.0), "{name}: {w:?}");
            assert!(w.secs > 0.0, "{name}: {w:?}");
        }
        // The full table (2^18 blocks a thread) is the suite's; a smaller one here.
        for threads in [1, 2] {
            let w = table_replace::run_with(threads, 0.002, 4096);
            assert_eq!(w.ops, Some(10_000.0), "{w:?}");
            assert!(w.secs > 0.0);
        }
    }

    #[test]
    fn zeroed_blocks_read_as_zero() {
        let b = Block::zeroed(100_000);
        // SAFETY: the block holds 100_000 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) };
        assert!(bytes.iter().all(|&x| x == 0));
    }
}
