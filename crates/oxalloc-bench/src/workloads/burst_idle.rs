//! Burst then idle: is memory given back to the OS without further allocator activity?
//!
//! Measures RSS (`/proc/self/statm`), allocates [`BURST_BYTES`] in blocks of random size
//! 16..=256 bytes (first 16 bytes of each written), frees them all in a random order, then
//! sleeps [`IDLE`] without calling the allocator and measures RSS again. The pointers are
//! kept in an `mmap`ed array outside the allocator, unmapped before the last measurement,
//! so the RSS figures show the allocator alone. Reports `rss_before_mib`, `rss_peak_mib`, `rss_after_mib` and `after_over_before`.
//! The burst is the same at every scale (the question is about ~120 MiB).

use super::{rss_bytes, Block, WorkOutput};
use crate::rng::Rng;
use std::time::Duration;

/// Bytes requested in the burst.
pub const BURST_BYTES: usize = 120 << 20;
/// Idle time after freeing.
pub const IDLE: Duration = Duration::from_secs(1);

/// An array of raw block pointers in its own anonymous mapping.
struct PtrArray {
    base: *mut *mut u8,
    cap: usize,
}

impl PtrArray {
    fn new(cap: usize) -> PtrArray {
        let bytes = cap * std::mem::size_of::<*mut u8>();
        // SAFETY: an anonymous private mapping with no address hint; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            super::out_of_memory(bytes);
        }
        PtrArray {
            base: p.cast(),
            cap,
        }
    }

    fn slots(&mut self) -> &mut [*mut u8] {
        // SAFETY: the mapping holds `cap` pointer-sized, zero-filled (null) slots and is
        // borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.cap) }
    }
}

impl Drop for PtrArray {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which nothing borrows now.
        unsafe { libc::munmap(self.base.cast(), self.cap * std::mem::size_of::<*mut u8>()) };
    }
}

/// Runs the workload; see the module docs.
pub fn run(_scale: f64) -> WorkOutput {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut rng = Rng::new(0xB0257);
    let mut arr = PtrArray::new(BURST_BYTES / 16);
    let before = rss_bytes();
    let start = std::time::Instant::now();
    let mut n = 0;
    let mut bytes = 0;
    while bytes < BURST_BYTES {
        let len = rng.range(16, 256);
        let mut b = Block::new(len);
        b.touch(16, 0xB5);
        arr.slots()[n] = b.into_raw().0;
        n += 1;
        bytes += len;
    }
    let peak = rss_bytes();
    let slots = &mut arr.slots()[..n];
    for i in (1..n).rev() {
        slots.swap(i, rng.below(i + 1));
    }
    for p in slots.iter_mut() {
        // SAFETY: each pointer came from `Block::into_raw` above and is freed once (nulled).
        drop(unsafe { Block::from_raw(std::mem::replace(p, std::ptr::null_mut()), 1) });
    }
    let secs = start.elapsed().as_secs_f64();
    drop(arr);
    std::thread::sleep(IDLE);
    let after = rss_bytes();
    let mut out = WorkOutput {
        ops: Some(n as f64),
        secs,
        ..WorkOutput::default()
    };
    out.extra.insert("rss_before_mib".into(), mib(before));
    out.extra.insert("rss_peak_mib".into(), mib(peak));
    out.extra.insert("rss_after_mib".into(), mib(after));
    out.extra.insert(
        "after_over_before".into(),
        after as f64 / before.max(1) as f64,
    );
    out
}
