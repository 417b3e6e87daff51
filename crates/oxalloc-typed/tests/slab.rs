//! Model tests for `SlabCache`.
mod common;

use common::Counting;
use oxalloc_typed::{Parent, SlabCache};
use proptest::prelude::*;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

proptest! {
    #[test]
    fn slab_matches_model(ops in prop::collection::vec((any::<bool>(), any::<usize>()), 1..800), max_empty in 0usize..3) {
        let parent = Counting::default();
        {
            let cache: SlabCache<[u64; 5], _> = SlabCache::with_source(Parent(&parent)).max_empty(max_empty);
            let per = cache.stats().objects_per_slab;
            let mut live: Vec<(NonNull<[u64; 5]>, u64)> = Vec::new();
            let mut n = 0u64;
            for (alloc, pick) in ops {
                if alloc || live.is_empty() {
                    n += 1;
                    let p = cache.alloc([n; 5]).unwrap();
                    prop_assert_eq!(p.as_ptr() as usize % 8, 0);
                    prop_assert!(live.iter().all(|(q, _)| *q != p), "slot handed out twice");
                    live.push((p, n));
                } else {
                    let (p, v) = live.swap_remove(pick % live.len());
                    // SAFETY: live object of this cache.
                    prop_assert_eq!(unsafe { *p.as_ptr() }, [v; 5]);
                    // SAFETY: freed once.
                    unsafe { cache.free(p) };
                }
                let s = cache.stats();
                prop_assert_eq!(s.in_use, live.len());
                prop_assert!(s.slabs_empty <= max_empty);
                prop_assert!((s.slabs_full + s.slabs_partial) * per >= live.len());
                prop_assert_eq!(s.slabs_created - s.slabs_released, (s.slabs_full + s.slabs_partial + s.slabs_empty) as u64);
                prop_assert_eq!(parent.live().0 as u64, s.slabs_created - s.slabs_released);
            }
            for (p, v) in live.drain(..) {
                // SAFETY: live object.
                prop_assert_eq!(unsafe { *p.as_ptr() }, [v; 5]);
                // SAFETY: freed once.
                unsafe { cache.free(p) };
            }
            let s = cache.stats();
            prop_assert_eq!((s.in_use, s.slabs_full, s.slabs_partial), (0, 0, 0));
            cache.shrink();
            prop_assert_eq!(parent.live(), (0, 0), "empty slabs all went back to the parent");
        }
        prop_assert_eq!(parent.live(), (0, 0));
    }
}

static BUILT: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Conn {
    buf: Vec<u8>,
    uses: u32,
}
impl Drop for Conn {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}
fn make_conn() -> Conn {
    BUILT.fetch_add(1, Ordering::SeqCst);
    Conn {
        buf: Vec::with_capacity(4096),
        uses: 0,
    }
}

#[test]
fn constructed_objects_survive_free_and_are_dropped_with_their_slab() {
    let parent = Counting::default();
    {
        let cache = SlabCache::with_ctor(Parent(&parent), make_conn).max_empty(0);
        let a = cache.alloc_constructed().unwrap();
        // SAFETY: `a` is live and ours.
        unsafe {
            (*a.as_ptr()).uses += 1;
            (*a.as_ptr()).buf.push(1);
        }
        let b = cache.alloc_constructed().unwrap();
        // SAFETY: freed once; left in a valid state.
        unsafe { cache.free(a) };
        let c = cache.alloc_constructed().unwrap();
        assert_eq!(c, a, "LIFO reuse of the kept object");
        // SAFETY: `c` is live: the state its last user left.
        unsafe {
            assert_eq!((*c.as_ptr()).uses, 1);
            assert_eq!((*c.as_ptr()).buf.capacity(), 4096);
        }
        assert_eq!(
            BUILT.load(Ordering::SeqCst),
            2,
            "the constructor ran once per slot"
        );
        assert_eq!(DROPPED.load(Ordering::SeqCst), 0);
        // SAFETY: freed once each.
        unsafe {
            cache.free(b);
            cache.free(c);
        }
        // max_empty(0): the empty slab went back, destructors ran.
        assert_eq!(DROPPED.load(Ordering::SeqCst), 2);
        assert_eq!(parent.live(), (0, 0));
        assert_eq!(cache.stats().slabs_released, 1);
    }
}

#[test]
fn plain_free_drops_value_and_allocator_api_works() {
    use std::rc::Rc;
    let rc = Rc::new(());
    let cache = SlabCache::new();
    let p = cache.alloc(rc.clone()).unwrap();
    assert_eq!(Rc::strong_count(&rc), 2);
    // SAFETY: freed once.
    unsafe { cache.free(p) };
    assert_eq!(Rc::strong_count(&rc), 1);

    let nodes: SlabCache<[u64; 4], _> = SlabCache::new();
    let boxes: Vec<_> = (0..1000)
        .map(|i| allocator_api2::boxed::Box::new_in([i as u64; 4], &nodes))
        .collect();
    assert_eq!(nodes.stats().in_use, 1000);
    assert!(boxes.iter().enumerate().all(|(i, b)| b[3] == i as u64));
    drop(boxes);
    assert_eq!(nodes.stats().in_use, 0);
    assert_eq!(nodes.stats().allocs, 1000);
}
