//! Model tests for `StaticHeap` and `GlobalStaticHeap`.
mod common;

use allocator_api2::alloc::Allocator;
use common::{assert_disjoint, check, fill, Counting};
use oxalloc_typed::{GlobalStaticHeap, HeapError, Parent, StaticHeap};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

proptest! {
    #[test]
    fn heap_matches_model(ops in prop::collection::vec((any::<bool>(), 0usize..3000, 0u32..9, any::<usize>()), 1..400)) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 96 * 1024];
        let heap = StaticHeap::with_buffer(&mut buf);
        let empty = heap.stats();
        prop_assert_eq!(empty.free_blocks, 1);
        let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
        let mut seed = 0u8;
        for (alloc, size, al, pick) in ops {
            if alloc || live.is_empty() {
                let l = Layout::from_size_align(size, 1 << al).unwrap();
                match heap.alloc(l) {
                    Ok(p) => {
                        prop_assert_eq!(p.as_ptr() as usize % l.align(), 0);
                        let ranges: Vec<_> = live.iter().map(|&(q, n, _)| (q.as_ptr() as usize, n)).collect();
                        assert_disjoint(&ranges, p.as_ptr() as usize, size);
                        seed = seed.wrapping_add(1);
                        fill(p, size, seed);
                        live.push((p, size, seed));
                    }
                    // Exhaustion is an error value. TLSF searches the next class up (1/16
                    // wider), so a free block only a little bigger may be passed over.
                    Err(_) => {
                        let bound = (size + l.align() + 40) * 17 / 16 + 8;
                        prop_assert!(heap.stats().largest_free < bound);
                    }
                }
            } else {
                let (p, n, s) = live.swap_remove(pick % live.len());
                check(p, n, s);
                // SAFETY: live block, freed once.
                prop_assert_eq!(unsafe { heap.free(p) }, Ok(()));
            }
            prop_assert_eq!(heap.check(), Ok(()));
            prop_assert_eq!(heap.stats().used_blocks, live.len());
        }
        for (p, n, s) in live.drain(..) {
            check(p, n, s);
            // SAFETY: live block, freed once.
            prop_assert_eq!(unsafe { heap.free(p) }, Ok(()));
        }
        let end = heap.stats();
        prop_assert_eq!(end, empty, "all freed: one block again, every byte back");
        prop_assert_eq!(end.fragmentation_permille(), 0);
    }
}

#[test]
fn double_free_and_foreign_pointers_are_refused() {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let heap = StaticHeap::with_buffer(&mut buf);
    let a = heap.alloc(Layout::new::<[u8; 40]>()).unwrap();
    let b = heap.alloc(Layout::new::<[u8; 40]>()).unwrap();
    // SAFETY: `a` is ours; the second free of it is caught by the header flag.
    unsafe {
        assert_eq!(heap.free(a), Ok(()));
        assert_eq!(heap.free(a), Err(HeapError::DoubleFree));
    }
    let mut other = 0u64;
    // SAFETY: a pointer outside the heap is refused before it is read.
    let r = unsafe { heap.free(NonNull::from(&mut other).cast()) };
    assert_eq!(r, Err(HeapError::Foreign));
    heap.check().unwrap();
    // SAFETY: live block.
    unsafe { heap.free(b).unwrap() };
    assert_eq!(heap.stats().free_blocks, 1);
}

#[test]
fn fragmentation_is_reported() {
    let mut buf = [MaybeUninit::<u8>::uninit(); 64 * 1024];
    let heap = StaticHeap::with_buffer(&mut buf);
    let l = Layout::from_size_align(256, 8).unwrap();
    let ps: Vec<_> = std::iter::from_fn(|| heap.alloc(l).ok()).collect();
    assert!(ps.len() > 200);
    for p in ps.iter().step_by(2) {
        // SAFETY: live block, freed once.
        unsafe { heap.free(*p).unwrap() };
    }
    let s = heap.stats();
    assert_eq!(s.largest_free, 256, "only holes of one block");
    assert!(
        s.fragmentation_permille() > 900,
        "{}",
        s.fragmentation_permille()
    );
    for p in ps.iter().skip(1).step_by(2) {
        // SAFETY: live block, freed once.
        unsafe { heap.free(*p).unwrap() };
    }
    assert_eq!(
        heap.stats().fragmentation_permille(),
        0,
        "coalesced back to one block"
    );
}

#[test]
fn vec_and_box_on_heap_from_parent_and_os() {
    let parent = Counting::default();
    {
        let heap = StaticHeap::with_source(Parent(&parent), 1 << 20).unwrap();
        let mut v = allocator_api2::vec::Vec::new_in(&heap);
        for i in 0..10_000u64 {
            v.push(i);
        }
        let b = allocator_api2::boxed::Box::new_in(7u128, &heap);
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        assert_eq!(*b, 7);
        assert_eq!(parent.live().0, 1);
    }
    assert_eq!(parent.live(), (0, 0));
    let os = StaticHeap::with_capacity(1 << 20).unwrap();
    assert!(os
        .allocate(Layout::from_size_align(4096, 4096).unwrap())
        .is_ok());
    assert!(os
        .allocate(Layout::from_size_align(2 << 20, 8).unwrap())
        .is_err());
}

static GLOBAL: GlobalStaticHeap<{ 256 * 1024 }> = GlobalStaticHeap::new();

#[test]
fn global_static_heap_from_many_threads() {
    std::thread::scope(|s| {
        for t in 0..4u8 {
            s.spawn(move || {
                for round in 0..200usize {
                    let l = Layout::from_size_align(16 + round % 300, 1 << (round % 6)).unwrap();
                    // SAFETY: GlobalAlloc contract: non-zero size; freed once below.
                    unsafe {
                        let p = GLOBAL.alloc(l);
                        assert!(!p.is_null());
                        let p = NonNull::new_unchecked(p);
                        fill(p, l.size(), t);
                        let q = GLOBAL.realloc(p.as_ptr(), l, l.size() * 2);
                        let q = NonNull::new(q).unwrap();
                        check(q, l.size(), t);
                        GLOBAL.dealloc(
                            q.as_ptr(),
                            Layout::from_size_align(l.size() * 2, l.align()).unwrap(),
                        );
                    }
                }
            });
        }
    });
    GLOBAL.check().unwrap();
    assert_eq!(GLOBAL.stats().used_blocks, 0);
    assert_eq!(GLOBAL.stats().free_blocks, 1);
}
