//! The huge page heap: random huge allocations, reallocations and frees (with large
//! alignments) keep every block intact and disjoint (misuse of huge pointers: misuse.rs).

use oxalloc_core::api;
use proptest::prelude::*;

const MIB: usize = 1 << 20;

/// The tests of this file share one huge heap and cargo runs them on parallel threads:
/// `huge_realloc_grows_and_shrinks_in_place_when_room_follows` needs the tail it freed
/// to be still free when it grows again, which another test's allocation could take
/// (it did under qemu). Each test holds this lock.
static HUGE_HEAP: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    HUGE_HEAP.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u32, usize),
    Realloc(usize, usize),
    Free(usize),
}

fn huge_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => MIB..=4 * MIB,
        2 => 4 * MIB..=48 * MIB,
        1 => 1usize..=MIB,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (4u32..=26, huge_size()).prop_map(|(a, s)| Op::Alloc(a, s)),
        2 => (any::<usize>(), huge_size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        3 => any::<usize>().prop_map(Op::Free),
    ]
}

struct Live {
    ptr: *mut u8,
    size: usize,
    seed: u8,
}

/// Offsets written and checked: both ends and a stride that crosses every 64 KiB unit.
fn offsets(size: usize) -> impl Iterator<Item = usize> {
    (0..size.min(256))
        .chain((256..size).step_by(8191))
        .chain(size.saturating_sub(256)..size)
}

fn fill(b: &Live) {
    for i in offsets(b.size) {
        // SAFETY: i < size, and the block has at least `size` usable bytes.
        unsafe { b.ptr.add(i).write(b.seed ^ (i as u8)) };
    }
}

fn check(b: &Live, upto: usize) {
    for i in offsets(b.size).filter(|&i| i < upto) {
        // SAFETY: i < size of a live block.
        let v = unsafe { b.ptr.add(i).read() };
        assert_eq!(
            v,
            b.seed ^ (i as u8),
            "block {:p} ({} B) corrupted at {i}",
            b.ptr,
            b.size
        );
    }
}

fn assert_disjoint(live: &[Live]) {
    let usable = |p: *mut u8| {
        // SAFETY: every block in the model is live.
        unsafe { api::malloc_usable_size(p) }
    };
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|b| (b.ptr as usize, b.ptr as usize + usable(b.ptr)))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "blocks overlap: {:x?} and {:x?}",
            w[0],
            w[1]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn huge_blocks_stay_intact_and_disjoint(ops in proptest::collection::vec(op(), 1..60)) {
        let _serial = serial();
        let mut live: Vec<Live> = Vec::new();
        let mut seed = 3u8;
        for op in ops {
            seed = seed.wrapping_add(11);
            match op {
                Op::Alloc(a, n) => {
                    let align = 1usize << a;
                    let p = api::aligned_alloc(align, n);
                    prop_assert!(!p.is_null(), "aligned_alloc({align}, {n}) failed");
                    prop_assert_eq!(p as usize % align, 0);
                    // SAFETY: p is live.
                    let usable = unsafe { api::malloc_usable_size(p) };
                    prop_assert!(usable >= n);
                    let b = Live { ptr: p, size: n, seed };
                    fill(&b);
                    live.push(b);
                }
                Op::Realloc(i, n) if !live.is_empty() => {
                    let i = i % live.len();
                    check(&live[i], usize::MAX);
                    // SAFETY: the block is live.
                    let q = unsafe { api::realloc(live[i].ptr, n) };
                    prop_assert!(!q.is_null());
                    let moved = Live { ptr: q, size: live[i].size, seed: live[i].seed };
                    check(&moved, n);
                    live[i] = Live { ptr: q, size: n, seed };
                    fill(&live[i]);
                }
                Op::Free(i) if !live.is_empty() => {
                    let b = live.swap_remove(i % live.len());
                    check(&b, usize::MAX);
                    // SAFETY: the block is live and forgotten by the model.
                    unsafe { api::free(b.ptr) };
                }
                _ => {}
            }
            assert_disjoint(&live);
        }
        for b in live {
            check(&b, usize::MAX);
            // SAFETY: live block.
            unsafe { api::free(b.ptr) };
        }
    }
}

#[test]
fn alignments_beyond_the_segment_size_work() {
    let _serial = serial();
    for a in 22..=28 {
        let align = 1usize << a;
        let p = api::aligned_alloc(align, 3 * MIB);
        assert!(!p.is_null(), "align {align}");
        assert_eq!(p as usize % align, 0);
        // SAFETY: p has 3 MiB.
        unsafe {
            std::ptr::write_bytes(p, 0x77, 3 * MIB);
            api::free(p);
        }
    }
}

// Interior and double frees of huge blocks are misuses, reported: tests/misuse.rs.

#[test]
fn huge_realloc_grows_and_shrinks_in_place_when_room_follows() {
    let _serial = serial();
    let p = api::malloc(8 * MIB);
    // SAFETY: p has 8 MiB; each resize keeps the first bytes.
    unsafe {
        std::ptr::write_bytes(p, 9, 8 * MIB);
        let q = api::realloc(p, 2 * MIB);
        assert_eq!(q, p, "a shrink stays in place");
        assert!(api::malloc_usable_size(q) < 3 * MIB, "the tail went back");
        let r = api::realloc(q, 6 * MIB);
        assert_eq!(r, p, "the freed tail is right after the block");
        assert_eq!(*r.add(2 * MIB - 1), 9);
        api::free(r);
    }
}

#[test]
fn threads_share_the_huge_heap_without_overlap() {
    let _serial = serial();
    // Four threads allocate, fill, check, resize and free huge blocks at once; another
    // thread frees some of them (a cross-thread free of a huge block).
    let (tx, rx) = std::sync::mpsc::channel::<(usize, usize, u8)>();
    let consumer = std::thread::spawn(move || {
        for (p, n, seed) in rx {
            let b = Live {
                ptr: p as *mut u8,
                size: n,
                seed,
            };
            check(&b, usize::MAX);
            // SAFETY: the block was handed over whole and is freed once, here.
            unsafe { api::free(b.ptr) };
        }
    });
    let workers: Vec<_> = (0..4u8)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(t);
                let mut next = || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut live: Vec<Live> = Vec::new();
                for i in 0..300u32 {
                    let r = next();
                    let size = MIB + (r as usize % (12 * MIB));
                    let seed = (r >> 40) as u8 ^ t;
                    let p = api::malloc(size);
                    assert!(!p.is_null());
                    let b = Live { ptr: p, size, seed };
                    fill(&b);
                    live.push(b);
                    if live.len() > 6 {
                        let j = (next() as usize) % live.len();
                        let b = live.swap_remove(j);
                        check(&b, usize::MAX);
                        if i % 3 == 0 {
                            tx.send((b.ptr as usize, b.size, b.seed)).unwrap();
                        } else {
                            // SAFETY: the block is live and forgotten by the model.
                            unsafe { api::free(b.ptr) };
                        }
                    }
                    if i % 5 == 0 && !live.is_empty() {
                        let j = (next() as usize) % live.len();
                        check(&live[j], usize::MAX);
                        let n = MIB / 2 + (next() as usize % (10 * MIB));
                        // SAFETY: the block is live.
                        let q = unsafe { api::realloc(live[j].ptr, n) };
                        assert!(!q.is_null());
                        let moved = Live {
                            ptr: q,
                            size: live[j].size,
                            seed: live[j].seed,
                        };
                        check(&moved, n);
                        live[j] = Live {
                            ptr: q,
                            size: n,
                            seed: live[j].seed.wrapping_add(1),
                        };
                        fill(&live[j]);
                    }
                }
                for b in live {
                    check(&b, usize::MAX);
                    // SAFETY: live block.
                    unsafe { api::free(b.ptr) };
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    drop(tx);
    consumer.join().unwrap();
}
