//! A size class's queue of spans with free blocks (`Bin::partial`).
#![allow(unsafe_code)]

use super::*;

/// Queues a span that has free blocks again (it was full): behind the other spans with
/// freed blocks, in front of the set-aside ones. `alloc_slow` takes the front span, so
/// a span waits a whole round before it is current again and brings back every block
/// freed into it meanwhile.
///
/// The list used to be ordered by address (lowest first, to keep allocation packed in
/// low spans). In a big table of live blocks replaced at random, every span is nearly
/// full: the lowest one came back with a single freed block, was made current, handed
/// that block out and was parked full again, so over a third of the mallocs and frees
/// took a slow path (`examples/programs/table_replace.c`, 10M steps: 1.33 s user
/// against mimalloc's 0.94 s; 214 instructions a step under callgrind, mimalloc 136).
/// In arrival order a span comes back with the frees of a whole round (0.89 s, 136
/// instructions a step), and peak RSS stayed the same on every row of the suite.
///
/// # Safety
/// `span` is a small span of `bin`'s heap in none of its lists.
pub(super) unsafe fn partial_push(bin: *mut Bin, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let before = (*bin).set_aside;
        let after = if before.is_null() {
            (*bin).partial_tail
        } else {
            (*before).prev
        };
        (*span).prev = after;
        (*span).next = before;
        if after.is_null() {
            (*bin).partial = span;
        } else {
            (*after).next = span;
        }
        if before.is_null() {
            (*bin).partial_tail = span;
        } else {
            (*before).prev = span;
        }
    }
}

/// Puts a span set aside for its never-used area at the back of `bin`'s partial list.
///
/// # Safety
/// `span` is a small span of `bin`'s heap in none of its lists.
pub(super) unsafe fn partial_push_set_aside(bin: *mut Bin, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        if (*bin).set_aside.is_null() {
            (*bin).set_aside = span;
        }
        let tail = (*bin).partial_tail;
        (*span).next = ptr::null_mut();
        (*span).prev = tail;
        if tail.is_null() {
            (*bin).partial = span;
        } else {
            (*tail).next = span;
        }
        (*bin).partial_tail = span;
    }
}

/// # Safety
/// `span` is in `bin`'s partial list.
pub(super) unsafe fn partial_unlink(bin: *mut Bin, span: *mut Span) {
    // SAFETY: caller's contract.
    unsafe {
        let (prev, next) = ((*span).prev, (*span).next);
        if (*bin).set_aside == span {
            (*bin).set_aside = next;
        }
        if prev.is_null() {
            (*bin).partial = next;
        } else {
            (*prev).next = next;
        }
        if next.is_null() {
            (*bin).partial_tail = prev;
        } else {
            (*next).prev = prev;
        }
        (*span).next = ptr::null_mut();
        (*span).prev = ptr::null_mut();
    }
}
