//! Model tests for `Stack`.
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
}

proptest! {
    #[test]
    fn stack_matches_model(ops in ops()) {
        let parent = Counting::default();
        {
            let stack = Stack::with_source(Parent(&parent), 64 * 1024).unwrap();
            let mut model: Vec<Live> = Vec::new();
            // Markers: (marker, depth, id of the top allocation then).
            let mut marks = Vec::new();
            let mut next_id = 0u64;
            for op in ops {
                match op {
                    Op::Push(size, al) => {
                        let l = Layout::from_size_align(size, 1 << al).unwrap();
                        if let Ok(p) = stack.alloc(l) {
                            prop_assert_eq!(p.as_ptr() as usize % l.align(), 0);
                            if let Some(top) = model.last() {
                                prop_assert!(p.as_ptr() as usize >= top.p.as_ptr() as usize + top.len, "LIFO order in memory");
                            }
                            next_id += 1;
                            fill(p, size, next_id as u8);
                            model.push(Live { p, len: size, id: next_id });
                        }
                    }
                    Op::PopTop => {
                        if let Some(top) = model.pop() {
                            check(top.p, top.len, top.id as u8);
                            prop_assert_eq!(stack.free(top.p), Ok(()));
                        }
                    }
                    Op::FreeAny(i) => {
                        if !model.is_empty() {
                            let i = i % model.len();
                            let r = stack.free(model[i].p);
                            if i + 1 == model.len() {
                                prop_assert_eq!(r, Ok(()));
                                model.pop();
                            } else {
                                prop_assert_eq!(r, Err(StackError::OutOfOrder), "out-of-order free refused");
                            }
                        }
                    }
                    Op::Mark => marks.push((stack.marker(), model.len(), model.last().map(|l| l.id))),
                    Op::FreeTo(i) => {
                        if !marks.is_empty() {
                            let (m, depth, id) = marks[i % marks.len()];
                            let valid = model.len() >= depth && (depth == 0 || Some(model[depth - 1].id) == id);
                            let r = stack.free_to(m);
                            if valid {
                                prop_assert_eq!(r, Ok(()));
                                model.truncate(depth);
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
