//! Model tests for `Stack`: the model places every allocation itself (header, alignment,
//! capacity), so a push that should fit must succeed at the predicted address and one
//! that cannot must fail.
mod common;

use allocator_api2::alloc::Allocator;
use common::{check, fill, Counting};
use oxalloc_typed::{Parent, Stack, StackError};
use proptest::prelude::*;
use std::alloc::Layout;
use std::ptr::NonNull;

#[derive(Debug, Clone)]
enum Op {
    Push(usize, u32),
    PopTop,
    FreeAny(usize),
    Mark,
    FreeTo(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0usize..500, 0u32..7).prop_map(|(s, a)| Op::Push(s, a)),
            2 => Just(Op::PopTop),
            1 => any::<usize>().prop_map(Op::FreeAny),
            1 => Just(Op::Mark),
            1 => any::<usize>().prop_map(Op::FreeTo),
        ],
        1..300,
    )
}

struct Live {
    p: NonNull<u8>,
    len: usize,
    id: u64,
    /// The model's top (bytes used from the region start) before this allocation.
    below: usize,
}

/// The stack's header before each payload (previous top, previous last, serial).
const HEADER: usize = 24;
/// Small enough that the random pushes fill it often.
const CAPACITY: usize = 4 * 1024;

proptest! {
    #[test]
    fn stack_matches_model(ops in ops()) {
        let parent = Counting::default();
        {
            let stack = Stack::with_source(Parent(&parent), CAPACITY).unwrap();
            let base = parent.last_region.load(std::sync::atomic::Ordering::SeqCst);
            prop_assert_eq!(stack.stats().capacity_bytes, CAPACITY);
            let mut model: Vec<Live> = Vec::new();
            // Bytes used from the region start, headers and padding included.
            let mut top = 0usize;
            // Markers: (marker, depth, id of the top allocation then, top then).
            let mut marks = Vec::new();
            let mut next_id = 0u64;
            for op in ops {
                match op {
                    Op::Push(size, al) => {
                        let l = Layout::from_size_align(size, 1 << al).unwrap();
                        // The payload goes after a header, aligned to at least 8.
                        let align = l.align().max(8);
                        let at = (base + top + HEADER).next_multiple_of(align) - base;
                        let fits = at + size <= CAPACITY;
                        match stack.alloc(l) {
                            Ok(p) => {
                                prop_assert!(fits, "{} bytes at {} do not fit in {}", size, at, CAPACITY);
                                prop_assert_eq!(p.as_ptr() as usize, base + at, "placed where the model puts it");
                                next_id += 1;
                                fill(p, size, next_id as u8);
                                model.push(Live { p, len: size, id: next_id, below: top });
                                top = at + size;
                            }
                            Err(_) => prop_assert!(!fits, "{} bytes at {} fit in {} but alloc failed", size, at, CAPACITY),
                        }
                    }
                    Op::PopTop => {
                        if let Some(last) = model.pop() {
                            check(last.p, last.len, last.id as u8);
                            prop_assert_eq!(stack.free(last.p), Ok(()));
                            top = last.below;
                        }
                    }
                    Op::FreeAny(i) => {
                        if !model.is_empty() {
                            let i = i % model.len();
                            let r = stack.free(model[i].p);
                            if i + 1 == model.len() {
                                prop_assert_eq!(r, Ok(()));
                                top = model.pop().unwrap().below;
                            } else {
                                prop_assert_eq!(r, Err(StackError::OutOfOrder), "out-of-order free refused");
                            }
                        }
                    }
                    Op::Mark => marks.push((stack.marker(), model.len(), model.last().map(|l| l.id), top)),
                    Op::FreeTo(i) => {
                        if !marks.is_empty() {
                            let (m, depth, id, top_then) = marks[i % marks.len()];
                            let valid = model.len() >= depth && (depth == 0 || Some(model[depth - 1].id) == id);
                            let r = stack.free_to(m);
                            if valid {
                                prop_assert_eq!(r, Ok(()));
                                model.truncate(depth);
                                top = top_then;
                            } else {
                                prop_assert_eq!(r, Err(StackError::StaleMarker));
                            }
                        }
                    }
                }
                for l in &model {
                    check(l.p, l.len, l.id as u8);
                }
                prop_assert_eq!(stack.stats().depth, model.len());
                prop_assert_eq!(stack.stats().used_bytes, top);
            }
            while let Some(top) = model.pop() {
                prop_assert_eq!(stack.free(top.p), Ok(()));
            }
            prop_assert_eq!(stack.stats().used_bytes, 0, "every byte given back");
        }
        prop_assert_eq!(parent.live(), (0, 0));
    }
}

#[test]
fn allocator_frees_out_of_order_are_deferred_not_corrupting() {
    let stack = Stack::with_capacity(1 << 20).unwrap();
    let a = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(100, &stack);
    let mut b = allocator_api2::vec::Vec::with_capacity_in(100, &stack);
    b.extend_from_slice(&[3u8; 100]);
    drop(a); // not the top: deferred
    assert_eq!(stack.stats().depth, 2);
    assert_eq!(b[99], 3);
    drop(b); // top: pops b and then the deferred a
    assert_eq!(stack.stats().depth, 0);
    assert_eq!(stack.stats().used_bytes, 0);
}

#[test]
fn exhaustion_is_an_error_and_top_grows_in_place() {
    let stack = Stack::with_capacity(4096).unwrap();
    assert!(stack
        .alloc(Layout::from_size_align(1 << 20, 8).unwrap())
        .is_err());
    let mut v = allocator_api2::vec::Vec::with_capacity_in(8, &stack);
    let p = v.as_ptr();
    v.extend(0..500u32);
    assert_eq!(v.as_ptr(), p, "the top allocation grew in place");
    assert!(stack
        .allocate(Layout::from_size_align(4000, 8).unwrap())
        .is_err());
}
