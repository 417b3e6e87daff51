//! What the loom models share (`tests/loom_remote.rs`, `tests/loom_stack.rs`): the
//! explorer, loom's atomic as the protocol's word, made-up block addresses, and a span's
//! remote list with its blocks' links as loom cells, pushed and walked through the real
//! `remote_list` functions.

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU64;
use oxalloc_core::remote_list::{self, Word};
use oxalloc_core::segment::RemoteList;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` under loom (every interleaving), then prints how many it explored and
/// checks there were several (a model that explores one proves nothing).
pub fn explore(name: &str, f: impl Fn() + Sync + Send + 'static) {
    explore_with(name, loom::model::Builder::new(), f);
}

/// As [`explore`], but only the interleavings in which threads are preempted at most
/// `preemptions` times (a bound that keeps a four-thread model to seconds; bugs of
/// this kind need few preemptions, and each bound the model passed is reported).
#[allow(dead_code)] // loom_remote.rs's models are small enough to run unbounded
pub fn explore_bounded(name: &str, preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    explore_with(
        &format!("{name} (at most {preemptions} preemptions)"),
        builder,
        f,
    );
}

fn explore_with(name: &str, builder: loom::model::Builder, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    println!("{name}: {n} interleavings explored");
    assert!(n > 10, "{name}: only {n} interleavings");
}

/// A loom atomic as the protocol's word.
pub struct LoomWord(pub AtomicU64);

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

pub fn addr(i: usize) -> u64 {
    BASE + 16 * i as u64
}

pub fn index(a: u64) -> usize {
    ((a - BASE) / 16) as usize
}

/// A span's two shared words and its blocks' links.
pub struct RemoteWords {
    pub list: LoomWord,
    pub sum: LoomWord,
    pub next: Vec<UnsafeCell<u64>>,
}

impl RemoteWords {
    pub fn new(blocks: usize) -> RemoteWords {
        RemoteWords {
            list: LoomWord(AtomicU64::new(0)),
            sum: LoomWord(AtomicU64::new(0)),
            next: (0..blocks).map(|_| UnsafeCell::new(0)).collect(),
        }
    }

    /// A thread frees `blocks` (a chain it gathered) into the span: links them, then
    /// publishes them. Returns whether it set the notified flag.
    pub fn push(&self, blocks: &[usize]) -> bool {
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

    /// Reads a taken list to its end (each link once), calling `took` with each block.
    pub fn walk(&self, list: RemoteList, mut took: impl FnMut(usize)) {
        let mut a = list.head() as u64;
        for _ in 0..list.count() {
            let i = index(a);
            took(i);
            // SAFETY: loom checks that the write of this link happens before this read.
            a = self.next[i].with(|p| unsafe { *p });
        }
        assert_eq!(a, 0, "a taken list ends after its count");
    }
}
