//! Model tests for `RawPool` and `Pool<T>`.
mod common;

use allocator_api2::alloc::Allocator;
use common::{assert_disjoint, check, fill, Counting};
use oxalloc_typed::{Parent, Pool, PoolError, RawPool};
use proptest::prelude::*;
use std::alloc::Layout;
use std::collections::HashMap;
use std::mem::MaybeUninit;

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    Free(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![3 => Just(Op::Alloc), 2 => any::<usize>().prop_map(Op::Free)],
        1..400,
    )
}

proptest! {
    #[test]
    fn raw_pool_matches_model(ops in ops(), size in 1usize..200, align_log in 0u32..7) {
        let parent = Counting::default();
        let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
        {
            let pool = RawPool::with_source(Parent(&parent), layout).chunk_bytes(256, 4096);
            let mut live: Vec<(std::ptr::NonNull<u8>, u8)> = Vec::new();
            let mut seed = 0u8;
            for op in ops {
                match op {
                    Op::Alloc => {
                        let p = pool.alloc().unwrap();
                        prop_assert_eq!(p.as_ptr() as usize % layout.align(), 0);
                        let ranges: Vec<_> = live.iter().map(|(q, _)| (q.as_ptr() as usize, size)).collect();
                        assert_disjoint(&ranges, p.as_ptr() as usize, size);
                        seed = seed.wrapping_add(37);
                        fill(p, size, seed);
                        live.push((p, seed));
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let (p, s) = live.swap_remove(i % live.len());
                        check(p, size, s);
                        // SAFETY: `p` is live, freed once.
                        unsafe { pool.free(p) };
                    }
                    Op::Free(_) => {}
                }
                prop_assert_eq!(pool.stats().in_use, live.len());
            }
            let cap = pool.stats().capacity;
            for (p, s) in live.drain(..) {
                check(p, size, s);
                // SAFETY: live, freed once.
                unsafe { pool.free(p) };
            }
            // Every block comes back: the whole capacity can be taken again without growth.
            let chunks = pool.stats().chunks;
            let again: Vec<_> = (0..cap).map(|_| pool.alloc().unwrap()).collect();
            prop_assert_eq!(pool.stats().chunks, chunks);
            prop_assert_eq!(pool.stats().in_use, cap);
            drop(again);
        }
        prop_assert_eq!(parent.live(), (0, 0), "dropping the pool returns every chunk");
    }

    #[test]
    fn typed_pool_matches_model(ops in prop::collection::vec((any::<bool>(), any::<usize>(), any::<u64>()), 1..600)) {
        let parent = Counting::default();
        {
            let mut pool: Pool<String, _> = Pool::with_source(Parent(&parent));
            let mut model: HashMap<u32, (oxalloc_typed::Handle<String>, String)> = HashMap::new();
            let mut dead = Vec::new();
            for (insert, pick, v) in ops {
                if insert || model.is_empty() {
                    let h = pool.insert(v.to_string()).unwrap();
                    prop_assert!(model.insert(h.index(), (h, v.to_string())).is_none());
                } else {
                    let k = *model.keys().nth(pick % model.len()).unwrap();
                    let (h, s) = model.remove(&k).unwrap();
                    prop_assert_eq!(pool.get(h), Some(&s));
                    prop_assert_eq!(pool.remove(h), Ok(s));
                    dead.push(h);
                }
                prop_assert_eq!(pool.len(), model.len());
            }
            for h in dead {
                if !model.values().any(|(m, _)| *m == h) {
                    prop_assert_eq!(pool.get(h), None);
                    prop_assert_eq!(pool.remove(h), Err(PoolError::StaleHandle));
                }
            }
            for (h, s) in model.values() {
                prop_assert_eq!(pool.get(*h), Some(s));
            }
        }
        prop_assert_eq!(parent.live(), (0, 0));
    }
}

#[test]
fn fixed_pool_on_buffer_exhausts_without_panic() {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    let pool = RawPool::with_buffer(&mut buf, Layout::new::<[u64; 4]>());
    let mut n = 0;
    while pool.alloc().is_ok() {
        n += 1;
    }
    // 1024 bytes minus the chunk header (16) and alignment: 31 blocks of 32 bytes.
    assert!((30..=31).contains(&n), "{n} blocks");
    assert_eq!(pool.stats().in_use, n);
    assert!(
        pool.allocate(Layout::new::<[u64; 8]>()).is_err(),
        "too big for a block"
    );
}

#[test]
fn typed_pool_drops_live_values_and_detects_double_free() {
    use std::rc::Rc;
    let rc = Rc::new(());
    {
        let mut pool = Pool::new();
        let hs: Vec<_> = (0..1000)
            .map(|_| pool.insert(rc.clone()).unwrap())
            .collect();
        assert_eq!(Rc::strong_count(&rc), 1001);
        for h in &hs[..500] {
            pool.remove(*h).unwrap();
        }
        assert_eq!(pool.remove(hs[0]), Err(PoolError::StaleHandle));
        // The slot is reused with a new generation; the old handle stays dead.
        let h = pool.insert(rc.clone()).unwrap();
        assert_eq!(h.index(), hs[499].index());
        assert!(pool.get(hs[499]).is_none());
        assert!(pool.get(h).is_some());
    }
    assert_eq!(Rc::strong_count(&rc), 1, "drop ran for every live value");
}

#[test]
fn allocator_api_vec_and_box_in_pool() {
    let pool = RawPool::new(Layout::new::<[u8; 64]>());
    let b = allocator_api2::boxed::Box::new_in([7u8; 64], &pool);
    let mut v = allocator_api2::vec::Vec::with_capacity_in(8, &pool);
    v.extend_from_slice(&[1u64, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(b[63], 7);
    assert_eq!(v.iter().sum::<u64>(), 36);
    assert_eq!(pool.stats().in_use, 2);
    drop((b, v));
    assert_eq!(pool.stats().in_use, 0);
}
