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
//!   are exactly one per time it was clear (the span reaches the owner's stack once);
//! * a thread that steals the waiting list (`steal`, `unsum_stolen`) gets each of its
//!   blocks alone, sees their links, leaves the flag, and once its blocks come back the
//!   owner's sums are exact.
#![cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]

mod loom_model;

use loom::sync::Arc;
use loom::thread;
use loom_model::{addr, explore, RemoteWords as Span};
use oxalloc_core::remote_list::{self, Word};
use oxalloc_core::segment::RemoteList;
use std::sync::atomic::Ordering;

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
        span.walk(list, |i| self.blocks.push(i));
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

/// Another thread steals the waiting list (`remote_list::steal`, as `heap::foreign`
/// does) while two threads push and the owner takes the list: every block ends up with
/// exactly one of them, the stealer's blocks come back to the owner later (freed
/// again, pushed), and then the owner's sums are exact although the stealer took its
/// blocks' sum off the word after the owner may have taken it. The steal leaves the
/// flag: exactly one push sets it while nobody clears it.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimised: scripts/loom.sh runs it optimised"
)]
fn a_steal_racing_pushes_and_the_owners_take() {
    loom_model::explore_bounded("a steal racing pushes and the owner's take", 3, || {
        let span = Arc::new(Span::new(3));
        let total = [0, 1, 2];
        let s1 = span.clone();
        let t1 = thread::spawn(move || s1.push(&[0, 1]));
        let s2 = span.clone();
        let t2 = thread::spawn(move || s2.push(&[2]));
        let s3 = span.clone();
        let stealer = thread::spawn(move || {
            let l = remote_list::steal(&s3.list, 1);
            if l.head().is_null() {
                return false;
            }
            assert!(l.notified(), "a list with blocks and no flag");
            let mut got = Vec::new();
            s3.walk(l, |i| got.push(i));
            remote_list::unsum_stolen(&s3.sum, got.iter().map(|&i| addr(i)).sum());
            // Handed out, used, and freed again by this thread: back to the owner.
            s3.push(&got)
        });
        let mut owner = Owner::default();
        thread::yield_now();
        let l = remote_list::take(&span.list, false);
        owner.absorb(&span, l, &total);
        let (n1, n2, n3) = (
            t1.join().unwrap(),
            t2.join().unwrap(),
            stealer.join().unwrap(),
        );
        assert_eq!(
            n1 as u32 + n2 as u32 + n3 as u32,
            1,
            "exactly one push sets the flag while nobody clears it"
        );
        let left = RemoteList(span.list.load(Ordering::Relaxed));
        assert!(left.notified(), "the steal must leave the flag");
        let l = remote_list::take_clearing_flag(&span.list);
        owner.absorb(&span, l, &total);
        owner.check_all_taken(&total);
        // What `check::verify_empty` does when `live_sum` is off: take the sum again.
        owner.sum = owner.sum.wrapping_add(remote_list::take_sum(&span.sum));
        let walked: u64 = owner.blocks.iter().map(|&i| addr(i)).sum();
        assert_eq!(owner.sum, walked, "every block back: the sums are exact");
    });
}
