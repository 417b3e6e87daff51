//! A lock-free stack of records linked through a field of their own: any thread pushes
//! a record with one CAS, and the records are then either taken whole by one thread
//! (a heap's stack of spans with remote frees: `heap::remote`) or walked in place by
//! readers while pushes go on (the registry of every heap, append-only: `tls`).
//!
//! What the users rest on: a record's link is written before the Release CAS that
//! publishes it, so a thread that reached the record from an Acquire load of the head
//! (`take_all`, `top`) reads the link that was written for it. A record taken with
//! `take_all` may be pushed again as soon as its taker lets it (the span's notified
//! flag says when): its link must be read before that. The loom models in
//! `tests/loom_stack.rs` (`bash scripts/loom.sh`) run these functions on loom's atomics,
//! with the links as loom cells, for every interleaving.
//!
//! The head is reached through [`Head`], so the models can substitute loom's atomics.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// The atomic operations the stack uses on its head.
pub trait Head<T> {
    /// `AtomicPtr::load`.
    fn load(&self, order: Ordering) -> *mut T;
    /// `AtomicPtr::compare_exchange_weak`.
    fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T>;
    /// `AtomicPtr::swap`.
    fn swap(&self, value: *mut T, order: Ordering) -> *mut T;
}

impl<T> Head<T> for AtomicPtr<T> {
    #[inline(always)]
    fn load(&self, order: Ordering) -> *mut T {
        AtomicPtr::load(self, order)
    }
    #[inline(always)]
    fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        AtomicPtr::compare_exchange_weak(self, current, new, success, failure)
    }
    #[inline(always)]
    fn swap(&self, value: *mut T, order: Ordering) -> *mut T {
        AtomicPtr::swap(self, value, order)
    }
}

/// Pushes `node`, which the caller owns until the CAS publishes it: `link(top)` stores
/// the current top in the node's link field (again after each failed CAS).
#[inline]
pub fn push<T>(head: &impl Head<T>, node: *mut T, link: impl Fn(*mut T)) {
    let mut top = head.load(Ordering::Relaxed);
    loop {
        link(top);
        match head.compare_exchange_weak(top, node, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => top = now,
        }
    }
}

/// Takes the whole stack: its top record (null if empty); the rest follow the links.
#[inline]
pub fn take_all<T>(head: &impl Head<T>) -> *mut T {
    head.swap(ptr::null_mut(), Ordering::Acquire)
}

/// The top record, for a reader that walks a stack whose records are never taken.
#[inline]
pub fn top<T>(head: &impl Head<T>) -> *mut T {
    head.load(Ordering::Acquire)
}
