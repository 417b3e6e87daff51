//! oxalloc as the global allocator of a Rust test binary: std collections, threads,
//! large reallocs, zeroed and over-aligned allocations all go through it.
//!
//! The tests take turns (`serial`): two of them measure the process's spans in use or
//! where a block can grow, which another test allocating at the same time would move.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};

#[global_allocator]
static ALLOC: oxalloc::Oxalloc = oxalloc::Oxalloc;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn collections_work_and_are_counted() {
    let _turn = serial();
    let before = ALLOC.totals().allocs;
    let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..20_000 {
        m.insert(format!("key-{i}"), vec![i as u8; i % 300]);
    }
    let total: usize = m.values().map(|v| v.len()).sum();
    assert_eq!(total, (0..20_000).map(|i| i % 300).sum::<usize>());
    let h: HashMap<u64, Box<[u64; 8]>> = (0..10_000u64).map(|i| (i, Box::new([i; 8]))).collect();
    assert_eq!(h[&777][3], 777);
    assert!(ALLOC.totals().allocs - before >= 40_000);
}

/// Byte `i` of the buffers `grow_by_steps` builds: one value per 4 KiB page.
fn page_byte(i: usize) -> u8 {
    (i / 4096 % 251) as u8
}

/// Checks every byte of `v` against `page_byte` (a memcmp per page: fast in debug).
fn check_pages(v: &[u8]) {
    for (n, page) in v.chunks(4096).enumerate() {
        let want = [page_byte(n * 4096); 4096];
        assert!(
            page == &want[..page.len()],
            "page {n} of a {}-byte block changed",
            v.len()
        );
    }
}

/// Grows a full `Vec<u8>` from `start` bytes to at least `end` in steps of `step`
/// (`reserve_exact`: one `realloc` each) and returns how many steps moved it; the
/// contents are checked after every move and at the end.
fn grow_by_steps(start: usize, end: usize, step: usize) -> (usize, usize) {
    let fill = |v: &mut Vec<u8>, to: usize| {
        let from = v.len();
        v.resize(to, 0);
        for (n, page) in v[from..].chunks_mut(4096).enumerate() {
            page.fill(page_byte(from + n * 4096));
        }
    };
    let mut v: Vec<u8> = Vec::with_capacity(start);
    fill(&mut v, start);
    let (mut steps, mut moves) = (0, 0);
    while v.len() < end {
        let before = v.as_ptr();
        v.reserve_exact(step);
        steps += 1;
        if v.as_ptr() != before {
            moves += 1;
            check_pages(&v);
        }
        let len = v.len();
        fill(&mut v, len + step);
    }
    check_pages(&v);
    (steps, moves)
}

#[test]
fn vec_growth_reallocs_in_place_and_keeps_contents() {
    let _turn = serial();
    // Doubling growth keeps every element.
    let mut v: Vec<u64> = Vec::new();
    for i in 0..3_000_000u64 {
        v.push(i);
    }
    assert_eq!(v.iter().sum::<u64>(), 3_000_000 * 2_999_999 / 2);
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
    drop(v);
    // In place: a realloc that never grows in place moves on every step.
    // A huge block (1 MiB and up) grows into the free units after it in its 256 MiB
    // region: none of 32 steps moved in any run here.
    let huge = grow_by_steps(2 << 20, 34 << 20, 1 << 20);
    // A large block (64 KiB to 1 MiB, whole slices of a span) grows into the free
    // slices after it when there are any; the central pool may cut a new span from the
    // tail of a free run (its most resident pages), with no room after it, so some
    // steps move: 1 to 6 of 13 in the runs here, whatever the other tests left behind.
    let large = grow_by_steps(128 << 10, 960 << 10, 64 << 10);
    assert!(
        huge.1 <= 1 && large.1 * 4 <= large.0 * 3,
        "reallocs that moved the block: huge, 2 to 34 MiB: {} of {}; large, 128 to 960 \
         KiB: {} of {}",
        huge.1,
        huge.0,
        large.1,
        large.0
    );
    // A small block stays put while the request fits its size class (17 -> 32 bytes).
    let mut s: Vec<u8> = Vec::with_capacity(17);
    s.extend_from_slice(&[9; 17]);
    let p = s.as_ptr();
    s.reserve_exact(15);
    assert_eq!(s.as_ptr(), p, "a 17-byte block did not grow to 32 in place");
    assert_eq!(s, [9; 17]);
}

#[test]
fn zeroed_and_aligned() {
    let _turn = serial();
    let z = vec![0u8; 5 << 20];
    assert!(z.iter().all(|&b| b == 0));
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..50).map(|_| Box::new(Page([3; 4096]))).collect();
    for p in &pages {
        assert_eq!(p.as_ref() as *const Page as usize % 4096, 0);
        assert_eq!(p.0[4095], 3);
    }
}

/// Block `i` of thread `t` in `round`: 16 to 143 bytes that name all three.
fn payload(t: usize, round: usize, i: usize) -> Vec<u8> {
    let seed = (t * 31 + round * 7 + i) as u8;
    (0..16 + i % 128)
        .map(|k| seed.wrapping_add(k as u8))
        .collect()
}

#[test]
fn threads_allocate_and_free_each_others_memory() {
    let _turn = serial();
    const THREADS: usize = 8;
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 4_000;
    // A ring: each round, thread t allocates strings and hands them to thread t+1,
    // which checks and frees them (every free crosses threads) while t frees those of
    // t-1. The spans in use (mallinfo) are read when every thread has finished round 2
    // (all heaps warm) and the last round.
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| mpsc::channel::<Vec<Vec<u8>>>())
        .unzip();
    let (report, reports) = mpsc::channel::<(usize, usize)>();
    let mut receivers: Vec<_> = receivers.into_iter().map(Some).collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let next = senders[(t + 1) % THREADS].clone();
            let rx = receivers[t].take().unwrap();
            let report = report.clone();
            std::thread::spawn(move || {
                let from = (t + THREADS - 1) % THREADS;
                for round in 0..ROUNDS {
                    let mine: Vec<Vec<u8>> = (0..PER_ROUND).map(|i| payload(t, round, i)).collect();
                    next.send(mine).unwrap();
                    let theirs = rx.recv().unwrap();
                    assert_eq!(theirs.len(), PER_ROUND);
                    for (i, b) in theirs.iter().enumerate() {
                        assert!(
                            *b == payload(from, round, i),
                            "thread {t} got a corrupted block from thread {from}"
                        );
                    }
                    drop(theirs);
                    report.send((t, round)).unwrap();
                }
            })
        })
        .collect();
    drop(report);
    drop(senders);
    let mut done = [0usize; ROUNDS];
    let (mut warm, mut end) = (0, 0);
    for (_, round) in reports {
        done[round] += 1;
        if done[round] == THREADS {
            if round == 2 {
                warm = ALLOC.mallinfo().uordblks;
            }
            if round == ROUNDS - 1 {
                end = ALLOC.mallinfo().uordblks;
            }
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(done, [THREADS; ROUNDS]);
    // Each round allocates some 3 MiB of blocks; were the blocks freed by other threads
    // not reused, the spans in use would grow by that every round.
    assert!(
        end <= warm + (4 << 20),
        "spans in use grew from {warm} to {end} bytes over {} rounds of cross-thread frees",
        ROUNDS - 3
    );
}
