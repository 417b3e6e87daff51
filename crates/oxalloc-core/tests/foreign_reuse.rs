//! A thread that freed another thread's blocks, and then needs blocks of their class,
//! reuses them (`heap::foreign`) instead of taking fresh memory while their owner does
//! not run; no block is handed out twice, and the owner's books stay right (it frees
//! and reuses everything afterwards without a report).

use oxalloc_core::api;
use std::collections::HashSet;
use std::sync::mpsc;
use std::thread;

const SIZE: usize = 64;
/// A size of another class, whose spans may reuse the slices of a released 64-byte span.
const OTHER: usize = 256;
const SPAN: usize = 64 << 10;

struct Blocks(Vec<usize>);

fn malloc_checked(size: usize) -> usize {
    let p = api::malloc(size);
    assert!(!p.is_null());
    // SAFETY: p is a live block; usable_size reads its span.
    let usable = unsafe { api::malloc_usable_size(p) };
    assert_eq!(
        usable, size,
        "malloc({size}) returned a block of {usable} bytes"
    );
    // SAFETY: p has `size` bytes.
    unsafe { std::ptr::write_bytes(p, 0xA5, size) };
    p as usize
}

fn free_all(blocks: impl IntoIterator<Item = usize>) {
    for p in blocks {
        // SAFETY: each is a live block of this test, freed once.
        unsafe { api::free(p as *mut u8) };
    }
}

#[test]
fn blocks_waiting_for_a_sleeping_owner_are_reused_by_the_freeing_thread() {
    let (to_freer, from_owner) = mpsc::channel::<Blocks>();
    let (to_owner, from_freer) = mpsc::channel::<Blocks>();
    let owner = thread::spawn(move || {
        let theirs: Vec<usize> = (0..4000).map(|_| malloc_checked(SIZE)).collect();
        to_freer.send(Blocks(theirs)).unwrap();
        // Asleep while the other thread frees them and allocates.
        let live = from_freer.recv().unwrap().0;
        let live: HashSet<usize> = live.into_iter().collect();
        let again: Vec<usize> = (0..4000).map(|_| malloc_checked(SIZE)).collect();
        for p in &again {
            assert!(!live.contains(p), "block {p:#x} handed out to both threads");
        }
        free_all(again);
    });
    let freer = thread::spawn(move || {
        // Use up a span of our own exactly: the next malloc parks it (every block out)
        // and goes on to reuse the owner's blocks.
        let mut mine = Vec::new();
        loop {
            let p = malloc_checked(SIZE);
            mine.push(p);
            if (p + SIZE).is_multiple_of(SPAN) {
                break;
            }
        }
        let theirs: HashSet<usize> = from_owner.recv().unwrap().0.into_iter().collect();
        // Free all but the first block of each of the owner's spans: the freed blocks
        // wait on the spans' remote lists (the owner sleeps), except the last few of
        // each span, which this thread still holds as a chain (1023 is not a multiple
        // of the chain length), so each span is one this thread can reuse from.
        let mut sorted: Vec<usize> = theirs.iter().copied().collect();
        sorted.sort_unstable();
        let kept: Vec<usize> = sorted
            .iter()
            .enumerate()
            .filter(|&(i, &p)| i == 0 || p / SPAN != sorted[i - 1] / SPAN)
            .map(|(_, &p)| p)
            .collect();
        let mut theirs = theirs;
        for p in &kept {
            theirs.remove(p);
        }
        free_all(sorted.into_iter().filter(|p| theirs.contains(p)));
        let reused: Vec<usize> = (0..2000).map(|_| malloc_checked(SIZE)).collect();
        let n = reused.iter().filter(|p| theirs.contains(p)).count();
        let counted = oxalloc_core::stats::GLOBAL
            .remote_reused
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            counted as usize >= n.saturating_sub(64),
            "{n} blocks reused but the statistics count {counted}"
        );
        assert!(
            n > 1000,
            "only {n} of 2000 blocks reused the ~4000 just freed into a sleeping owner"
        );
        // Our own span goes back whole while it is parked (none of it is current);
        // another class's spans may then take its slices. Our mallocs of SIZE must
        // still get blocks of SIZE (the class's direct table must not name the span).
        free_all(mine);
        let other: Vec<usize> = (0..(64 * SPAN / OTHER))
            .map(|_| malloc_checked(OTHER))
            .collect();
        let more: Vec<usize> = (0..3000).map(|_| malloc_checked(SIZE)).collect();
        let mut all: Vec<(usize, usize)> = reused
            .iter()
            .chain(&more)
            .map(|&p| (p, SIZE))
            .chain(other.iter().map(|&p| (p, OTHER)))
            .collect();
        all.sort_unstable();
        for w in all.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "blocks {:#x} and {:#x} overlap",
                w[0].0,
                w[1].0
            );
        }
        free_all(other);
        let live: Vec<usize> = reused.iter().chain(&more).chain(&kept).copied().collect();
        to_owner.send(Blocks(live.clone())).unwrap();
        live
    });
    let live = freer.join().unwrap();
    owner.join().unwrap();
    free_all(live);
    // Every span comes back empty with its sums exact (a wrong sum is reported as a
    // double free and aborts).
    api::malloc_trim(0);
}
