//! The statistics API against a program whose numbers are known: 100 blocks of 48
//! bytes, one 256 KiB block, one 8 MiB block, blocks handed to another thread. Every
//! figure is checked for its exact change.
//!
//! Alone in its own test binary, with one test: the figures are process-wide, and
//! another test (or the test harness starting its thread) allocating at the same time
//! would move them. The blocks are allocated with `GlobalAlloc::alloc` into arrays on
//! the stack, so nothing else allocates between two readings; the readings themselves
//! (`totals`, `size_class_for`, `current_heap`) allocate nothing.

use oxalloc::stats::{self, SizeClassStats, Totals};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;

#[global_allocator]
static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;

const KIB: u64 = 1 << 10;
const N: usize = 100;

fn alloc(size: usize) -> *mut u8 {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: the layout has a nonzero size.
    let p = unsafe { ALLOC.alloc(layout) };
    assert!(!p.is_null(), "out of memory for {size} bytes");
    // SAFETY: p has `size` bytes.
    unsafe { p.write_bytes(0xa5, size) };
    p
}

fn free(p: *mut u8, size: usize) {
    // SAFETY: p is a live block of `size` bytes from `alloc`, freed once.
    unsafe { ALLOC.dealloc(p, Layout::from_size_align(size, 8).unwrap()) }
}

fn class48() -> SizeClassStats {
    stats::size_class_for(48).expect("48 bytes is a small size")
}

/// 100 blocks of 48 bytes: the class's and the totals' counts rise by exactly 100
/// (and 4800 bytes) and fall back when they are freed.
fn size_class_counts() {
    let c0 = class48();
    let t0 = stats::totals();
    assert_eq!(c0.size, 48);
    let mut blocks = [std::ptr::null_mut::<u8>(); N];
    for b in blocks.iter_mut() {
        *b = alloc(48);
    }
    let c1 = class48();
    let t1 = stats::totals();
    assert_eq!(c1.allocs, c0.allocs + N as u64, "class allocations");
    assert_eq!(c1.frees, c0.frees, "class frees while the blocks live");
    assert_eq!(
        c1.live_blocks,
        c0.live_blocks + N as u64,
        "class live blocks"
    );
    assert_eq!(
        c1.live_bytes,
        c0.live_bytes + 48 * N as u64,
        "class live bytes"
    );
    assert_eq!(t1.allocs, t0.allocs + N as u64, "total allocations");
    assert_eq!(t1.frees, t0.frees, "total frees");
    assert_eq!(t1.bytes_allocated, t0.bytes_allocated + 48 * N as u64);
    assert_eq!(t1.live_small_bytes, t0.live_small_bytes + 48 * N as u64);

    for &b in &blocks[..N / 2] {
        free(b, 48);
    }
    let c2 = class48();
    assert_eq!(c2.frees, c0.frees + N as u64 / 2, "class frees after half");
    assert_eq!(c2.live_blocks, c0.live_blocks + N as u64 / 2);

    for &b in &blocks[N / 2..] {
        free(b, 48);
    }
    let c3 = class48();
    let t3 = stats::totals();
    assert_eq!(c3.allocs, c0.allocs + N as u64);
    assert_eq!(c3.frees, c0.frees + N as u64, "class frees after all");
    assert_eq!(c3.live_blocks, c0.live_blocks, "live blocks fall back");
    assert_eq!(c3.live_bytes, c0.live_bytes);
    assert_eq!(t3.frees, t0.frees + N as u64, "total frees after all");
    assert_eq!(t3.live_small_bytes, t0.live_small_bytes);

    // The list of every class agrees with the one-class reading.
    let all = stats::size_classes();
    assert_eq!(all.len(), stats::SIZE_CLASSES);
    assert!(all.windows(2).all(|w| w[0].size < w[1].size));
    assert_eq!(all[c3.index].size, 48);
    assert_eq!(all[c3.index].allocs, c3.allocs);
}

/// A 256 KiB block is a large block (4 slices of 64 KiB, no rounding): counted in bytes
/// allocated, in use and the large counts.
fn large_block() {
    let t0 = stats::totals();
    let p = alloc(256 << 10);
    let t1 = stats::totals();
    assert_eq!(t1.bytes_allocated, t0.bytes_allocated + 256 * KIB);
    assert_eq!(t1.allocs, t0.allocs + 1);
    assert_eq!(t1.large_allocs, t0.large_allocs + 1);
    assert_eq!(t1.in_use_bytes, t0.in_use_bytes + 256 * KIB, "in use");
    assert!(t1.peak_in_use_bytes >= t1.in_use_bytes);
    assert_eq!(
        t1.live_small_bytes, t0.live_small_bytes,
        "not a small block"
    );
    free(p, 256 << 10);
    let t2 = stats::totals();
    assert_eq!(t2.large_frees, t0.large_frees + 1);
    assert_eq!(t2.frees, t0.frees + 1);
    assert_eq!(t2.in_use_bytes, t0.in_use_bytes, "in use after the free");
    assert_eq!(t2.bytes_allocated, t1.bytes_allocated, "a running total");
}

/// An 8 MiB block is huge (its own mapping or region): counted as a live huge block
/// with its 8 MiB in use and mapped.
fn huge_block() {
    let t0 = stats::totals();
    let p = alloc(8 << 20);
    let t1 = stats::totals();
    assert_eq!(t1.huge_allocs, t0.huge_allocs + 1);
    assert_eq!(t1.huge_blocks, t0.huge_blocks + 1);
    assert_eq!(t1.bytes_allocated, t0.bytes_allocated + 8192 * KIB);
    assert_eq!(t1.in_use_bytes, t0.in_use_bytes + 8192 * KIB);
    assert!(t1.mapped_bytes >= t0.mapped_bytes.max(8192 * KIB));
    assert!(t1.peak_mapped_bytes >= t1.mapped_bytes);
    free(p, 8 << 20);
    let t2 = stats::totals();
    assert_eq!(t2.huge_frees, t0.huge_frees + 1);
    assert_eq!(t2.huge_blocks, t0.huge_blocks);
    assert_eq!(t2.in_use_bytes, t0.in_use_bytes);
}

/// Memory layers: reserved >= committed = in use + cached.
fn layers(t: &Totals) {
    assert_eq!(t.committed_bytes, t.in_use_bytes + t.cached_bytes);
    assert!(t.mapped_bytes >= t.committed_bytes, "{t:?}");
    assert!(t.segments >= 1);
    assert!(t.heaps >= 1);
}

/// Per heap: a thread's own heap counts what it allocates; blocks freed by another
/// thread are remote frees of the freeing thread; an exited thread's heap is
/// abandoned.
fn heaps() {
    // Pointers as addresses, to cross threads.
    struct Blocks([usize; 10]);
    let (to_main, from_thread) = mpsc::sync_channel::<Blocks>(1);
    let (to_thread, from_main) = mpsc::sync_channel::<()>(1);
    let worker = std::thread::spawn(move || {
        // Make sure the thread has a heap (its start may have allocated in the parent).
        free(alloc(16), 16);
        let h0 = stats::current_heap().expect("a heap for a thread that allocated");
        assert!(h0.current && !h0.abandoned);
        let mut blocks = [std::ptr::null_mut::<u8>(); N];
        for b in blocks.iter_mut() {
            *b = alloc(48);
        }
        let h1 = stats::current_heap().unwrap();
        assert_eq!(h1.id, h0.id);
        assert_eq!(h1.allocs, h0.allocs + N as u64, "heap allocations");
        assert_eq!(h1.frees, h0.frees, "heap frees");
        assert_eq!(h1.live_small_bytes, h0.live_small_bytes + 48 * N as u64);
        // Ten go to the main thread, which frees them; the others are freed here.
        let mut sent = [0usize; 10];
        for (s, &b) in sent.iter_mut().zip(&blocks[..10]) {
            *s = b as usize;
        }
        for &b in &blocks[10..] {
            free(b, 48);
        }
        let h2 = stats::current_heap().unwrap();
        assert_eq!(h2.frees, h0.frees + N as u64 - 10, "heap frees");
        assert_eq!(
            h2.remote_frees, h0.remote_frees,
            "local frees are not remote"
        );
        to_main.send(Blocks(sent)).unwrap();
        from_main.recv().unwrap();
        h0.id
    });
    let Blocks(sent) = from_thread.recv().unwrap();
    let me0 = stats::current_heap().expect("the main thread allocated");
    let t0 = stats::totals();
    for &b in &sent {
        free(b as *mut u8, 48);
    }
    let me1 = stats::current_heap().unwrap();
    let t1 = stats::totals();
    assert_eq!(
        me1.remote_frees,
        me0.remote_frees + 10,
        "remote frees, heap"
    );
    assert_eq!(t1.remote_frees, t0.remote_frees + 10, "remote frees, total");
    assert_eq!(me1.allocs, me0.allocs, "freeing allocates nothing");
    to_thread.send(()).unwrap();
    let id = worker.join().unwrap();

    let all = stats::heaps();
    assert_eq!(all.len() as u64, stats::totals().heaps);
    assert_eq!(all.iter().filter(|h| h.current).count(), 1);
    let theirs = all.iter().find(|h| h.id == id).expect("the thread's heap");
    assert!(theirs.abandoned, "an exited thread's heap is abandoned");
    assert_eq!(theirs.thread_id, 0);
    assert!(!theirs.current);
    assert!(stats::totals().heaps_abandoned >= 1);
}

/// Waits until no other thread allocates or frees: the counts stay the same for 50 ms
/// (at most 5 s: slow emulators).
fn settle() {
    let counts = || {
        let t = stats::totals();
        (t.allocs, t.frees)
    };
    let mut last = counts();
    let mut still = 0;
    for _ in 0..500 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let now = counts();
        still = if now == last { still + 1 } else { 0 };
        last = now;
        if still == 5 {
            return;
        }
    }
}

#[test]
fn figures_change_by_exactly_what_the_program_does() {
    // Start the allocator (this thread's heap) and its background purge thread (which
    // the first large free starts, and whose start allocates a few small blocks from
    // that thread) before the first reading, and let that thread settle.
    free(alloc(256 << 10), 256 << 10);
    settle();
    size_class_counts();
    large_block();
    huge_block();
    layers(&stats::totals());
    heaps();
}
