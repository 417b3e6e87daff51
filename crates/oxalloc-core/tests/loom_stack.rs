//! Loom models of the two lock-free stacks built on `src/atomic_stack.rs`, running the
//! real `push`, `take_all` and `top` (and, for spans, the real `remote_list` functions)
//! on loom's atomics, with the records' links as loom cells: a link read that the write
//! of it does not happen before is reported as a data race. Every interleaving within
//! loom's default bounds is explored. Run with `bash scripts/loom.sh`.
//!
//! * **A heap's stack of spans with remote frees, racing its drain** (`heap::remote`:
//!   `push_remote` stacks a span when its push set the notified flag; `drain_remote`
//!   takes the stack whole, reads each span's link, then clears its flag): every block
//!   pushed is taken exactly once, a span is never on the stack twice (its link is never
//!   written while a drain may still read it), and nothing is left behind: after the
//!   last drain the stack and every list are empty.
//! * **A span's release racing its last remote frees** (`heap::remote::may_release`:
//!   a span whose blocks are all free goes back only while its flag is clear): the
//!   release, modelled as a write over the span's stack link, never races a pusher still
//!   stacking it, and the span does go back once the threads are done.
//! * **A heap changing owners** (`tls::abandon`, `acquire_heap`,
//!   `collect_one_abandoned`, `heap::collect`): two threads free a span's last blocks
//!   while its owner collects and abandons the heap and a new thread adopts, collects and
//!   abandons it; the heap's owner-only state (a loom cell) is only touched by one owner
//!   at a time, ordered by the registry lock; each block is taken once and the span goes
//!   back once. Four threads: explored with at most three preemptions.
//! * **The registry of heaps** (`tls`: `new_heap` pushes, `for_each_heap` walks with no
//!   lock): a walker racing two creators sees each heap at most once, every link it
//!   follows was written before the heap was published, the heaps it sees are a suffix of
//!   the final list in order, and a walk after the creators finish sees all of them.
#![cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]

mod loom_model;

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicPtr;
use loom::sync::{Arc, Mutex};
use loom::thread;
use loom_model::{explore, explore_bounded, RemoteWords};
use oxalloc_core::atomic_stack::{self, Head};
use oxalloc_core::remote_list;
use oxalloc_core::segment::RemoteList;
use std::ptr;
use std::sync::atomic::Ordering;

/// A loom atomic pointer as a stack head.
struct LoomHead<T>(AtomicPtr<T>);

impl<T> LoomHead<T> {
    fn new() -> Self {
        LoomHead(AtomicPtr::new(ptr::null_mut()))
    }
}

impl<T> Head<T> for LoomHead<T> {
    fn load(&self, order: Ordering) -> *mut T {
        self.0.load(order)
    }
    fn compare_exchange_weak(
        &self,
        c: *mut T,
        n: *mut T,
        s: Ordering,
        f: Ordering,
    ) -> Result<*mut T, *mut T> {
        self.0.compare_exchange_weak(c, n, s, f)
    }
    fn swap(&self, v: *mut T, order: Ordering) -> *mut T {
        self.0.swap(v, order)
    }
}

/// A span's shared words, its blocks' links and its link on the owner's stack. Block
/// `i` of every span has the same made-up address; the span is told apart by its record.
struct Span {
    remote: RemoteWords,
    stack_link: UnsafeCell<*mut Span>,
}

// SAFETY: the raw pointer in `stack_link` names another `Span` of the same model, which
// outlives every thread; loom checks each access to the cell.
unsafe impl Send for Span {}
// SAFETY: as above.
unsafe impl Sync for Span {}

impl Span {
    fn new(blocks: usize) -> Span {
        Span {
            remote: RemoteWords::new(blocks),
            stack_link: UnsafeCell::new(ptr::null_mut()),
        }
    }
}

/// The owner's heap: its stack of spans, and the model's spans.
struct Heap {
    remote_spans: LoomHead<Span>,
    spans: Vec<Span>,
}

impl Heap {
    fn span(&self, s: usize) -> *mut Span {
        (&self.spans[s] as *const Span).cast_mut()
    }

    /// Another thread frees a chain of blocks of span `s`, as `push_remote` does:
    /// links them, publishes them, and stacks the span if it set the notified flag.
    fn free_remote(&self, s: usize, blocks: &[usize]) {
        let span = &self.spans[s];
        if span.remote.push(blocks) {
            let me = self.span(s);
            atomic_stack::push(&self.remote_spans, me, |top| {
                // SAFETY: the span is ours to stack (we set its flag) until the CAS
                // publishes it; loom checks no drain reads the link meanwhile.
                span.stack_link.with_mut(|p| unsafe { *p = top })
            });
        }
    }

    /// The owner drains, as `drain_remote` does: takes the stack, and for each span
    /// reads its link, then takes its list clearing the flag, and walks the list.
    /// Returns the (span, block) pairs taken.
    fn drain(&self, taken: &mut Vec<(usize, usize)>) {
        let mut s = atomic_stack::take_all(&self.remote_spans);
        let mut seen = Vec::new();
        while !s.is_null() {
            let i = self.spans.iter().position(|x| ptr::eq(x, s)).unwrap();
            assert!(!seen.contains(&i), "span {i} twice on the stack");
            seen.push(i);
            let span = &self.spans[i];
            // SAFETY: loom checks this read against the pusher's write.
            let next = span.stack_link.with(|p| unsafe { *p });
            let list = remote_list::take_clearing_flag(&span.remote.list);
            assert!(list.notified(), "a stacked span without its flag");
            self.walk(i, list, taken);
            s = next;
        }
    }

    /// The owner takes span `s`'s list outside the drain, as `take_remote` does when the
    /// span's free list runs out (the flag stays: the span may be on the stack).
    fn take_outside_drain(&self, s: usize, taken: &mut Vec<(usize, usize)>) {
        let list = remote_list::take(&self.spans[s].remote.list, false);
        self.walk(s, list, taken);
    }

    /// Reads a taken list of span `s` to its end, and takes its sum.
    fn walk(&self, s: usize, list: RemoteList, taken: &mut Vec<(usize, usize)>) {
        let span = &self.spans[s].remote;
        span.walk(list, |i| taken.push((s, i)));
        remote_list::take_sum(&span.sum);
    }

    /// The owner gives span `s` back if all its `blocks` are free and the flag is clear
    /// (`may_release`). Giving it back is modelled as a write over the span's stack link
    /// (the record is reused for another span): loom reports it if a pusher may still
    /// write there.
    fn try_release(&self, s: usize, blocks: usize, taken: &[(usize, usize)]) -> bool {
        let span = &self.spans[s];
        let free = taken.iter().filter(|t| t.0 == s).count();
        if free == blocks && remote_list::flag_clear(&span.remote.list) {
            // SAFETY: loom checks no pusher's write of the link is concurrent.
            span.stack_link
                .with_mut(|p| unsafe { *p = ptr::null_mut() });
            return true;
        }
        false
    }
}

/// Two threads free into two spans of one heap (one of them into both, so the second
/// span's flag and stack push race the first's) while the owner drains; a last drain
/// after they finish must find every block, each once, and leave nothing behind.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn remote_frees_racing_the_drain_through_the_span_stack() {
    explore("span stack: remote frees racing the drain", || {
        let heap = Arc::new(Heap {
            remote_spans: LoomHead::new(),
            spans: vec![Span::new(2), Span::new(1)],
        });
        let h1 = heap.clone();
        let t1 = thread::spawn(move || {
            h1.free_remote(0, &[0]);
            h1.free_remote(1, &[0]);
        });
        let h2 = heap.clone();
        let t2 = thread::spawn(move || h2.free_remote(0, &[1]));
        let mut taken = Vec::new();
        thread::yield_now(); // let the pushers run first too (see above)
        heap.drain(&mut taken);
        t1.join().unwrap();
        t2.join().unwrap();
        heap.drain(&mut taken);
        taken.sort_unstable();
        assert_eq!(taken, [(0, 0), (0, 1), (1, 0)], "each block taken once");
        assert!(
            heap.remote_spans.load(Ordering::Relaxed).is_null(),
            "stack empty"
        );
        for span in &heap.spans {
            let left = RemoteList(span.remote.list.0.load(Ordering::Relaxed));
            assert!(left.head().is_null() && !left.notified(), "a list left");
        }
    });
}

/// A span's last two blocks are freed by two other threads while the owner takes its
/// list outside the drain, drains, and gives the span back as soon as it may; after the
/// threads finish, one more drain and attempt must give it back, with each block taken
/// once and nothing left on the stack.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn last_remote_frees_racing_the_owners_take_and_release() {
    explore(
        "span release: last remote frees racing take and release",
        || {
            let heap = Arc::new(Heap {
                remote_spans: LoomHead::new(),
                spans: vec![Span::new(2)],
            });
            let h1 = heap.clone();
            let t1 = thread::spawn(move || h1.free_remote(0, &[0]));
            let h2 = heap.clone();
            let t2 = thread::spawn(move || h2.free_remote(0, &[1]));
            let mut taken = Vec::new();
            // Loom does not preempt the model's first thread before its first step unless
            // it yields: without this, the pushers never run first.
            thread::yield_now();
            heap.take_outside_drain(0, &mut taken);
            let mut released = heap.try_release(0, 2, &taken);
            if !released {
                heap.drain(&mut taken);
                released = heap.try_release(0, 2, &taken);
            }
            t1.join().unwrap();
            t2.join().unwrap();
            if released {
                assert!(
                    heap.remote_spans.load(Ordering::Relaxed).is_null(),
                    "a span given back while on the stack"
                );
            } else {
                heap.drain(&mut taken);
                assert!(heap.try_release(0, 2, &taken), "the span never went back");
            }
            taken.sort_unstable();
            assert_eq!(taken, [(0, 0), (0, 1)], "each block taken once");
        },
    );
}

/// A registry record: its link and a value written before it is published.
struct Record {
    id: usize,
    next: UnsafeCell<*mut Record>,
}

// SAFETY: the link names another record of the same model, which outlives every thread;
// loom checks each access to the cell.
unsafe impl Send for Record {}
// SAFETY: as above.
unsafe impl Sync for Record {}

/// Walks the registry as `for_each_heap` does, returning the ids seen.
fn walk(head: &LoomHead<Record>) -> Vec<usize> {
    let mut ids = Vec::new();
    let mut r = atomic_stack::top(head);
    while !r.is_null() {
        // SAFETY: records outlive the model; loom checks the link's write happens before.
        let (id, next) = unsafe { ((*r).id, (*r).next.with(|p| *p)) };
        assert!(!ids.contains(&id), "record {id} seen twice");
        ids.push(id);
        r = next;
    }
    ids
}

/// Two threads create heaps (one of them two) while a third walks the registry.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn registry_walk_racing_heap_creation() {
    explore("registry: walk racing creation", || {
        let head = Arc::new(LoomHead::<Record>::new());
        let records: Arc<Vec<Record>> = Arc::new(
            (0..3)
                .map(|id| Record {
                    id,
                    next: UnsafeCell::new(ptr::null_mut()),
                })
                .collect(),
        );
        let create = |ids: &'static [usize]| {
            let head = head.clone();
            let records = records.clone();
            thread::spawn(move || {
                for &i in ids {
                    let r = (&records[i] as *const Record).cast_mut();
                    atomic_stack::push(&*head, r, |top| {
                        // SAFETY: the record is ours until the CAS publishes it.
                        records[i].next.with_mut(|p| unsafe { *p = top })
                    });
                }
            })
        };
        let t1 = create(&[0, 1]);
        let t2 = create(&[2]);
        thread::yield_now(); // let the creators run first too (see above)
        let seen = walk(&head);
        t1.join().unwrap();
        t2.join().unwrap();
        let all = walk(&head);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2], "every heap created is in the registry");
        assert!(
            all.ends_with(&seen),
            "a racing walk sees a suffix of the final list: {seen:?} of {all:?}"
        );
        let (p0, p1) = (
            all.iter().position(|&i| i == 0),
            all.iter().position(|&i| i == 1),
        );
        assert!(p1 < p0, "newest first: {all:?}");
    });
}

/// What only the owner of a heap touches (in the real heap: its bins, its spans' free
/// lists and counts): the blocks it took back and whether it gave the span back. A loom
/// cell, so two threads touching it without an ordering between them is reported.
#[derive(Default)]
struct Owned {
    taken: Vec<(usize, usize)>,
    released: bool,
}

/// A heap that changes owners: its owner-only state, and the registry's abandoned list
/// (`tls::Registry`, under its lock), here holding just this heap or not.
struct Adoptable {
    heap: Heap,
    owned: UnsafeCell<Owned>,
    abandoned: Mutex<bool>,
}

// SAFETY: `owned` is touched only by the heap's owner of the moment, which loom checks.
unsafe impl Sync for Adoptable {}

impl Adoptable {
    /// The owner collects the heap, as `heap::collect` does (thread exit, or another
    /// thread's `collect_one_abandoned`): drains the stack of spans, takes the span's
    /// list (`take_remote_into`) and gives the span back if that leaves it empty.
    fn collect(&self) {
        self.owned.with_mut(|o| {
            // SAFETY: only the heap's owner runs this; loom checks the hand-over.
            let o = unsafe { &mut *o };
            self.heap.drain(&mut o.taken);
            if !o.released {
                self.heap.take_outside_drain(0, &mut o.taken);
                o.released = self.heap.try_release(0, 2, &o.taken);
            }
        });
    }

    /// Gives the heap up, as `tls::abandon` does after collecting: onto the list.
    fn abandon(&self) {
        let mut listed = self.abandoned.lock().unwrap();
        assert!(!*listed, "abandoned twice");
        *listed = true;
    }

    /// Takes the heap off the list if it is there, as `tls::acquire_heap` and
    /// `collect_one_abandoned` do.
    fn adopt(&self) -> bool {
        std::mem::replace(&mut *self.abandoned.lock().unwrap(), false)
    }
}

/// Two threads free the last two blocks of a span while its owner collects and
/// abandons the heap and a new thread adopts it (if it is abandoned by then), collects
/// it and exits (abandoning it again). Whoever owns the heap touches its owner-only
/// state with the hand-over (the registry lock) ordering them; every block is taken
/// exactly once; the span goes back exactly once; once everyone is done, the heap is on
/// the list and one more adoption and collection leaves nothing behind.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn remote_frees_racing_the_owners_exit_and_an_adoption() {
    // Four threads: unbounded, loom had not finished after 15 minutes; at most three
    // preemptions it explores about 185,000 interleavings in seconds (four: 1.7 million,
    // two minutes, also clean).
    explore_bounded("adoption: remote frees racing exit and adoption", 3, || {
        let heap = Arc::new(Adoptable {
            heap: Heap {
                remote_spans: LoomHead::new(),
                spans: vec![Span::new(2)],
            },
            owned: UnsafeCell::new(Owned::default()),
            abandoned: Mutex::new(false),
        });
        let h1 = heap.clone();
        let t1 = thread::spawn(move || h1.heap.free_remote(0, &[0]));
        let h2 = heap.clone();
        let t2 = thread::spawn(move || h2.heap.free_remote(0, &[1]));
        let hn = heap.clone();
        let new_thread = thread::spawn(move || {
            if hn.adopt() {
                hn.collect();
                hn.abandon();
            }
        });
        thread::yield_now(); // let the others run first too (see above)
        heap.collect();
        heap.abandon();
        t1.join().unwrap();
        t2.join().unwrap();
        new_thread.join().unwrap();
        assert!(heap.adopt(), "the heap is on the abandoned list");
        heap.collect();
        heap.owned.with(|o| {
            // SAFETY: every other thread has finished.
            let o = unsafe { &*o };
            let mut taken = o.taken.clone();
            taken.sort_unstable();
            assert_eq!(taken, [(0, 0), (0, 1)], "each block taken once");
            assert!(o.released, "the span never went back");
        });
        assert!(
            heap.heap.remote_spans.load(Ordering::Relaxed).is_null(),
            "stack empty"
        );
    });
}
