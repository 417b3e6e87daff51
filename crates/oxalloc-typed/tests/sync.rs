//! The `Locked` variants shared between threads.
use allocator_api2::alloc::Allocator;
use oxalloc_typed::{Arena, Locked, RawPool, SlabCache, StaticHeap, SyncPool};
use std::alloc::Layout;

fn hammer<A: Allocator + Sync>(a: &A, layout: Layout) {
    std::thread::scope(|s| {
        for t in 0..4u8 {
            s.spawn(move || {
                let mut mine = Vec::new();
                for i in 0..2000usize {
                    let p = a.allocate(layout).unwrap().cast::<u8>();
                    // SAFETY: fresh block of at least `layout.size()` bytes.
                    unsafe { p.as_ptr().write_bytes(t, layout.size()) };
                    mine.push(p);
                    if i % 3 == 0 {
                        let q = mine.swap_remove(i % mine.len());
                        // SAFETY: still ours and untouched by other threads.
                        unsafe {
                            assert!(std::slice::from_raw_parts(q.as_ptr(), layout.size())
                                .iter()
                                .all(|&b| b == t));
                            a.deallocate(q, layout);
                        }
                    }
                }
                for q in mine {
                    // SAFETY: as above.
                    unsafe {
                        assert!(std::slice::from_raw_parts(q.as_ptr(), layout.size())
                            .iter()
                            .all(|&b| b == t));
                        a.deallocate(q, layout);
                    }
                }
            });
        }
    });
}

#[test]
fn locked_allocators_are_sync_and_keep_blocks_apart() {
    let l = Layout::from_size_align(48, 16).unwrap();
    let pool: SyncPool<_> = Locked::new(RawPool::new(l));
    hammer(&pool, l);
    assert_eq!(pool.lock().stats().in_use, 0);

    let heap = Locked::new(StaticHeap::with_capacity(4 << 20).unwrap());
    hammer(&heap, l);
    assert_eq!(heap.lock().stats().used_blocks, 0);
    heap.lock().check().unwrap();

    let slab = Locked::new(SlabCache::<[u8; 48], _>::new());
    hammer(&slab, Layout::new::<[u8; 48]>());
    assert_eq!(slab.lock().stats().in_use, 0);

    let arena = Locked::new(Arena::new());
    hammer(&arena, l);
}
