//! The remote-free protocol on a span's two shared words: `Span::remote` (a
//! [`RemoteList`]: head, count, notified flag) and `Span::remote_sum` (the sum of the
//! addresses of the blocks on the list).
//!
//! Any thread publishes a chain of blocks with one CAS on the list word, after adding
//! the chain's sum to the sum word; the owner takes the whole list with one atomic, then
//! the sum. The owner's checks rest on two properties, checked for every interleaving
//! by the loom models in `tests/loom_remote.rs` (`bash scripts/loom.sh`), which run
//! these same functions on loom's atomics:
//! * a taken list's blocks are visible to the owner (their links were written before the
//!   Release CAS that the owner's Acquire take reads), and the sums taken cover at least
//!   the blocks taken: once every block pushed has been taken, the sums taken add up to
//!   exactly their addresses (so `live_sum` is exact when the span's count says no block
//!   is out, and a non-zero value there is a double free, never a race);
//! * a list that is not empty carries the notified flag, and exactly one pusher sets it
//!   after each time the owner clears it (that pusher puts the span on the owner's
//!   stack, so no remote block is forgotten).
//!
//! A third party may take a waiting list whole ([`steal`], for `heap::foreign`): one
//! CAS from a list that holds blocks to the bare flag, so exactly one of it and the
//! owner gets each block, the flag stays with the span, and the stealer takes its
//! blocks' sum off the sum word ([`unsum_stolen`]) before it hands any of them out;
//! once every block is back with the owner its sums are exact again (the third model
//! in `tests/loom_remote.rs`).
//!
//! The words are reached through [`Word`], so the models can substitute loom's atomics.
//! The span's place on its owner's stack (`atomic_stack`) is modelled with these
//! functions in `tests/loom_stack.rs`: the flag's clear (Release) and the next push that
//! sees it clear (Acquire) order the drain's read of the span's stack link before the
//! pusher's new write of it.

use crate::segment::RemoteList;
use core::sync::atomic::{AtomicU64, Ordering};

/// The atomic operations the protocol uses on a 64-bit word.
pub trait Word {
    /// `AtomicU64::load`.
    fn load(&self, order: Ordering) -> u64;
    /// `AtomicU64::compare_exchange_weak`.
    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    /// `AtomicU64::swap`.
    fn swap(&self, value: u64, order: Ordering) -> u64;
    /// `AtomicU64::fetch_add` (wrapping).
    fn fetch_add(&self, value: u64, order: Ordering) -> u64;
    /// `AtomicU64::fetch_and`.
    fn fetch_and(&self, value: u64, order: Ordering) -> u64;
}

impl Word for AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn compare_exchange_weak(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        AtomicU64::compare_exchange_weak(self, current, new, success, failure)
    }
    #[inline(always)]
    fn swap(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::swap(self, value, order)
    }
    #[inline(always)]
    fn fetch_add(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_add(self, value, order)
    }
    #[inline(always)]
    fn fetch_and(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_and(self, value, order)
    }
}

/// Publishes a chain of `n` blocks starting at address `head`, whose addresses sum to
/// `chain_sum`. `link(old_head)` must make the chain's last block point to `old_head`;
/// it is called before each CAS attempt, while the chain is still the caller's alone.
/// Returns true if this push set the notified flag: the caller must then put the span
/// on its owner's stack.
#[inline]
pub fn push<W: Word>(
    list: &W,
    sum: &W,
    head: u64,
    n: u32,
    chain_sum: u64,
    mut link: impl FnMut(u64),
) -> bool {
    // Before the chain is published: the CAS below (Release) then carries the sum to
    // the owner's take of the list (Acquire), so the owner never takes blocks without
    // their sum.
    sum.fetch_add(chain_sum, Ordering::Relaxed);
    let mut cur = list.load(Ordering::Relaxed);
    loop {
        let old = RemoteList(cur);
        link(old.head() as u64);
        let new = old.pushed_chain(head as *mut _, n).0;
        // Release: the chain's links and sum go with it. Acquire: a pusher that finds
        // the flag clear is about to stack the span and write its stack link, which the
        // drain that cleared the flag read just before (`take_clearing_flag`); without
        // the pair, that read could see this later write (load buffering: Rust's memory
        // model allows it, and so does aarch64's) and lose the rest of the stack it
        // took. Found by the loom model of the span stack (tests/loom_stack.rs).
        match list.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return !old.notified(),
            Err(now) => cur = now,
        }
    }
}

/// The owner takes the whole list outside the drain of its stack: `kept` says the drain
/// left the list in place (the span is off the stack, and the set flag stopped anyone
/// from stacking it again), so the flag is cleared; otherwise it stays as it is (the
/// span may be on the stack). An empty list is not touched (no locked instruction; a
/// block pushed just now is found next time, or through the stack).
#[inline]
pub fn take<W: Word>(list: &W, kept: bool) -> RemoteList {
    if kept {
        take_clearing_flag(list)
    } else if RemoteList(list.load(Ordering::Relaxed)).head().is_null() {
        RemoteList(0)
    } else {
        RemoteList(list.fetch_and(RemoteList::NOTIFIED, Ordering::Acquire))
    }
}

/// The owner takes the whole list and clears the notified flag (the span is off its
/// stack, or never got there): the next push sets the flag again.
#[inline]
pub fn take_clearing_flag<W: Word>(list: &W) -> RemoteList {
    // Release: the drain read the span's stack link before this; the next pusher, which
    // sees the flag clear (Acquire in `push`), may write it again (see `push`).
    RemoteList(list.swap(0, Ordering::AcqRel))
}

/// Whether the notified flag is clear, as the owner asks before it gives back a span
/// whose blocks are all free: a set flag means a pusher's span is on the owner's stack,
/// or about to be (its stack push follows its CAS), so the span must wait for the drain.
/// Acquire: pairs with that pusher's CAS, as the drain's clear does.
#[inline]
pub fn flag_clear<W: Word>(list: &W) -> bool {
    !RemoteList(list.load(Ordering::Acquire)).notified()
}

/// The owner takes the sum of what was pushed, after taking a list: at least the sum of
/// the blocks taken so far that it has not taken before (see the module docs).
#[inline]
pub fn take_sum<W: Word>(sum: &W) -> u64 {
    sum.swap(0, Ordering::Acquire)
}

/// Another thread takes a span's waiting list whole, to hand its blocks out itself
/// (`heap::foreign`): only a list that holds blocks (so it carries the flag), and the
/// flag stays, since the span may be on its owner's stack (the owner's drain then finds
/// an empty list). Empty, and nothing changed, if the list holds fewer than
/// `min_blocks` blocks (or none). Exactly one of this and the owner's takes gets each
/// block. Acquire: the blocks' links are the pushers' (see `push`).
#[inline]
pub fn steal<W: Word>(list: &W, min_blocks: u32) -> RemoteList {
    let mut cur = list.load(Ordering::Relaxed);
    loop {
        let l = RemoteList(cur);
        if l.head().is_null() || l.count() < min_blocks {
            return RemoteList(0);
        }
        match list.compare_exchange_weak(
            cur,
            RemoteList::NOTIFIED,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return RemoteList(cur),
            Err(now) => cur = now,
        }
    }
}

/// After [`steal`]: takes the stolen blocks' sum (`chain_sum`, their addresses added
/// up) off the sum word, before any of them is handed out again. The owner may have
/// taken that sum already (its take of the sum is not tied to a list); the word then
/// goes below zero (wrapping) until the owner takes it again, which it does before it
/// trusts `live_sum` (see `check::verify_empty`): once every block of the span is back
/// with the owner, the sums it took add up exactly again.
#[inline]
pub fn unsum_stolen<W: Word>(sum: &W, chain_sum: u64) {
    sum.fetch_add(chain_sum.wrapping_neg(), Ordering::Relaxed);
}
