//! The C ABI, called from Rust the way C would call it.
#![allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; rust-version is 1.85
use oxalloc_typed::capi::*;
use std::ptr;

#[test]
fn pool_through_c_abi() {
    // SAFETY: each call follows the header's contract.
    unsafe {
        let pool = ox_pool_create(24, 8);
        assert!(!pool.is_null());
        let ps: Vec<_> = (0..1000).map(|_| ox_pool_alloc(pool)).collect();
        assert!(ps.iter().all(|p| !p.is_null() && *p as usize % 8 == 0));
        let mut sorted: Vec<_> = ps.iter().map(|p| *p as usize).collect();
        sorted.sort();
        assert!(sorted.windows(2).all(|w| w[1] - w[0] >= 24));
        assert_eq!(ox_pool_in_use(pool), 1000);
        for p in &ps {
            ox_pool_free(pool, *p);
        }
        ox_pool_free(pool, ptr::null_mut());
        assert_eq!(ox_pool_in_use(pool), 0);
        ox_pool_destroy(pool);
        assert!(
            ox_pool_create(16, 3).is_null(),
            "alignment must be a power of two"
        );
        assert!(ox_pool_alloc(ptr::null_mut()).is_null());
    }
}

#[test]
fn arena_through_c_abi() {
    // SAFETY: each call follows the header's contract.
    unsafe {
        let a = ox_arena_create(0);
        assert!(!a.is_null());
        let p = ox_arena_alloc(a, 100, 64);
        assert!(!p.is_null() && p as usize % 64 == 0);
        let big = ox_arena_alloc(a, 1 << 20, 0);
        assert!(!big.is_null());
        assert!(ox_arena_allocated_bytes(a) >= 1 << 20);
        ox_arena_reset(a);
        assert!(
            ox_arena_alloc(a, 10, 3).is_null(),
            "bad alignment is NULL, not a crash"
        );
        ox_arena_destroy(a);
    }
}

#[test]
fn static_heap_through_c_abi() {
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: the buffer outlives the heap and is used only through it.
    unsafe {
        assert!(
            ox_static_heap_init(buf.as_mut_ptr().cast(), 64).is_null(),
            "too small"
        );
        let h = ox_static_heap_init(buf.as_mut_ptr().add(3).cast(), buf.len() - 3);
        assert!(!h.is_null());
        let mut s = OxHeapStats::default();
        assert_eq!(ox_static_heap_stats(h, &mut s), 0);
        let total = s.free_bytes;
        let p = ox_static_heap_alloc(h, 1000, 256);
        assert!(!p.is_null() && p as usize % 256 == 0);
        assert!(
            ox_static_heap_alloc(h, 1 << 20, 8).is_null(),
            "exhaustion is NULL"
        );
        assert_eq!(ox_static_heap_free(h, p), 0);
        assert_eq!(ox_static_heap_free(h, p), -1, "double free caught");
        assert_eq!(ox_static_heap_free(h, ptr::null_mut()), 0);
        assert_eq!(ox_static_heap_stats(h, &mut s), 0);
        assert_eq!((s.free_bytes, s.free_blocks, s.used_blocks), (total, 1, 0));
    }
}
