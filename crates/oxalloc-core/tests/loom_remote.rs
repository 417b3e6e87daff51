//! Loom models of the remote-free protocol (`src/remote_list.rs`): the real `push`,
//! `take`, `take_clearing_flag` and `take_sum`, run on loom's atomics, with blocks whose
//! links are loom cells (so a link read before the write that made it visible is
//! reported as a data race). Every interleaving within loom's default bounds is
//! explored. Run with `bash scripts/loom.sh`.
//!
//! What each model asserts (the properties the owner's checks rest on):
//! * the owner reads every taken list to its end, each block once, and the sums it
//!   took are at least the addresses of the blocks it took, and exactly those once it
//!   has taken every block pushed (`live_sum` never reports a double free that is not
//!   there, and sees one that is);
//! * a list that is not empty carries the notified flag, and pushers that set the flag
//!   are exactly one per time it was clear (the span reaches the owner's stack once).
#![cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;
use oxalloc_core::remote_list::{self, Word};
use oxalloc_core::segment::RemoteList;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` under loom (every interleaving), then prints how many it explored and
/// checks there were several (a model that explores one proves nothing).
fn explore(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    println!("{name}: {n} interleavings explored");
    assert!(n > 10, "{name}: only {n} interleavings");
}

/// A loom atomic as the protocol's word.
struct LoomWord(AtomicU64);

impl Word for LoomWord {
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn compare_exchange_weak(&self, c: u64, n: u64, s: Ordering, f: Ordering) -> Result<u64, u64> {
        self.0.compare_exchange_weak(c, n, s, f)
    }
    fn swap(&self, v: u64, order: Ordering) -> u64 {
        self.0.swap(v, order)
    }
    fn fetch_add(&self, v: u64, order: Ordering) -> u64 {
        self.0.fetch_add(v, order)
    }
    fn fetch_and(&self, v: u64, order: Ordering) -> u64 {
        self.0.fetch_and(v, order)
    }
}

/// Block addresses: 16 bytes apart from a made-up base (never dereferenced).
const BASE: u64 = 0x10_0000;

fn addr(i: usize) -> u64 {
    BASE + 16 * i as u64
}

fn index(a: u64) -> usize {
    ((a - BASE) / 16) as usize
}

/// A span's two shared words and its blocks' links.
struct Span {
    list: LoomWord,
    sum: LoomWord,
    next: Vec<UnsafeCell<u64>>,
}

impl Span {
    fn new(blocks: usize) -> Span {
        Span {
            list: LoomWord(AtomicU64::new(0)),
            sum: LoomWord(AtomicU64::new(0)),
            next: (0..blocks).map(|_| UnsafeCell::new(0)).collect(),
        }
    }

    /// A thread frees `blocks` (a chain it gathered) into the span: links them, then
    /// publishes them. Returns whether it set the notified flag.
    fn push(&self, blocks: &[usize]) -> bool {
        for w in blocks.windows(2) {
            // SAFETY: the chain is this thread's until it is published.
            self.next[w[0]].with_mut(|p| unsafe { *p = addr(w[1]) });
        }
        let tail = *blocks.last().unwrap();
        let sum = blocks.iter().map(|&i| addr(i)).sum();
        remote_list::push(
            &self.list,
            &self.sum,
            addr(blocks[0]),
            blocks.len() as u32,
            sum,
            // SAFETY: as above.
            |old| self.next[tail].with_mut(|p| unsafe { *p = old }),
        )
    }
}

/// The owner's side: what it took so far.
#[derive(Default)]
struct Owner {
    blocks: Vec<usize>,
    sum: u64,
}

impl Owner {
    /// Walks a taken list (each link read once) and takes the sum, as `take_remote`
    /// and `absorb` do; then checks the sums against the blocks.
    fn absorb(&mut self, span: &Span, list: RemoteList, total: &[usize]) {
        if list.head().is_null() {
            return;
        }
        let mut a = list.head() as u64;
        for _ in 0..list.count() {
            let i = index(a);
            self.blocks.push(i);
            // SAFETY: loom checks that the write of this link happens before this read.
            a = span.next[i].with(|p| unsafe { *p });
        }
        assert_eq!(a, 0, "a taken list ends after its count");
        self.sum += remote_list::take_sum(&span.sum);
        let walked: u64 = self.blocks.iter().map(|&i| addr(i)).sum();
        assert!(self.sum >= walked, "took blocks without their sum");
        if self.blocks.len() == total.len() {
            assert_eq!(
                self.sum, walked,
                "every block taken, sums must match exactly"
            );
        }
    }

    fn check_all_taken(&self, total: &[usize]) {
        let mut got = self.blocks.clone();
        got.sort_unstable();
        assert_eq!(got, total, "each pushed block taken exactly once");
    }
}

/// Two threads push (a chain of two, a single block) while the owner takes the list
/// outside the drain (the flag stays): exactly one pusher sets the flag.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn pushes_racing_the_owners_take() {
    explore("pushes racing the owner's take", || {
        let span = Arc::new(Span::new(3));
        let total = [0, 1, 2];
        let s1 = span.clone();
        let t1 = thread::spawn(move || s1.push(&[0, 1]));
        let s2 = span.clone();
        let t2 = thread::spawn(move || s2.push(&[2]));
        let mut owner = Owner::default();
        // Loom does not preempt the model's first thread before its first step unless it
        // yields: without this, the pushers never run before the owner's first take.
        thread::yield_now();
        let l = remote_list::take(&span.list, false);
        owner.absorb(&span, l, &total);
        let (n1, n2) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(
            n1 ^ n2,
            "exactly one pusher sets the flag while nobody clears it"
        );
        let left = RemoteList(span.list.load(Ordering::Relaxed));
        assert!(
            left.notified(),
            "the flag stays set until the drain clears it"
        );
        let l = remote_list::take_clearing_flag(&span.list);
        owner.absorb(&span, l, &total);
        owner.check_all_taken(&total);
    });
}

/// The owner drains (takes the list and clears the flag) while two threads push: a
/// non-empty list always carries the flag afterwards, and a push after the drain sets
/// it again.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn pushes_racing_the_drain() {
    explore("pushes racing the drain", || {
        let span = Arc::new(Span::new(3));
        let total = [0, 1, 2];
        let s1 = span.clone();
        let t1 = thread::spawn(move || s1.push(&[0]));
        let s2 = span.clone();
        let t2 = thread::spawn(move || s2.push(&[1, 2]));
        let mut owner = Owner::default();
        // Loom does not preempt the model's first thread before its first step unless it
        // yields: without this, the pushers never run before the owner's first take.
        thread::yield_now();
        let l = remote_list::take_clearing_flag(&span.list);
        let cleared = l.notified();
        owner.absorb(&span, l, &total);
        let (n1, n2) = (t1.join().unwrap(), t2.join().unwrap());
        let left = RemoteList(span.list.load(Ordering::Relaxed));
        if !left.head().is_null() {
            assert!(left.notified(), "a list with blocks and no flag: lost");
        }
        let setters = n1 as u32 + n2 as u32;
        let expected = cleared as u32 + left.notified() as u32;
        assert_eq!(
            setters, expected,
            "one flag setter per time the flag was clear"
        );
        let l = remote_list::take(&span.list, false);
        owner.absorb(&span, l, &total);
        owner.check_all_taken(&total);
    });
}
