//! Model tests for `Arena`.
mod common;

use allocator_api2::alloc::Allocator;
use common::{assert_disjoint, check, fill, Counting};
use oxalloc_typed::{Arena, ArenaError, Parent};
use proptest::prelude::*;
use std::alloc::Layout;
use std::mem::MaybeUninit;

fn layouts() -> impl Strategy<Value = Vec<(usize, u32)>> {
    prop::collection::vec((0usize..3000, 0u32..8), 1..300)
}

proptest! {
    #[test]
    fn arena_blocks_are_aligned_disjoint_and_intact(ls in layouts(), split in any::<prop::sample::Index>()) {
        let parent = Counting::default();
        {
            let mut arena = Arena::with_source(Parent(&parent)).chunk_bytes(512, 1 << 16);
            let mut live = Vec::new();
            let at = split.index(ls.len());
            let mut cp = None;
            for (i, &(size, al)) in ls.iter().enumerate() {
                if i == at {
                    cp = Some((arena.checkpoint(), live.len()));
                }
                let l = Layout::from_size_align(size, 1 << al).unwrap();
                let p = arena.alloc_layout(l).unwrap();
                prop_assert_eq!(p.as_ptr() as usize % l.align(), 0);
                let ranges: Vec<_> = live.iter().map(|&(q, n, _): &(std::ptr::NonNull<u8>, usize, u8)| (q.as_ptr() as usize, n)).collect();
                assert_disjoint(&ranges, p.as_ptr() as usize, size);
                fill(p, size, i as u8);
                live.push((p, size, i as u8));
            }
            for &(p, n, s) in &live {
                check(p, n, s);
            }
            // Roll back to the checkpoint: what came before stays intact.
            let (cp, keep) = cp.unwrap();
            arena.rollback(cp).unwrap();
            for &(p, n, s) in &live[..keep] {
                check(p, n, s);
            }
            // Allocation goes on after the rollback without disturbing older blocks.
            let l = Layout::from_size_align(ls[at].0, 1 << ls[at].1).unwrap();
            let again = arena.alloc_layout(l).unwrap();
            prop_assert_eq!(again.as_ptr() as usize % l.align(), 0);
            fill(again, l.size(), 0xAA);
            for &(p, n, s) in &live[..keep] {
                check(p, n, s);
            }
            arena.reset();
        }
        prop_assert_eq!(parent.live(), (0, 0), "drop gives every chunk back");
    }
}

#[test]
fn scope_rolls_back_and_reuses_memory() {
    let mut arena = Arena::new();
    let x = arena.alloc(5u64).unwrap() as *mut u64;
    let first = arena.scope(|a| a.alloc_slice_copy(&[9u8; 10_000]).unwrap().as_ptr() as usize);
    let second = arena.scope(|a| a.alloc_slice_copy(&[9u8; 10_000]).unwrap().as_ptr() as usize);
    assert_eq!(first, second, "the scope's memory was reused");
    // SAFETY: `x` was allocated before both scopes and is still live.
    assert_eq!(unsafe { *x }, 5);
    let held = arena.allocated_bytes();
    for _ in 0..100 {
        arena.scope(|a| a.alloc_slice_copy(&[1u8; 50_000]).map(|s| s.len()).unwrap());
    }
    assert!(
        arena.allocated_bytes() <= held + 128 * 1024,
        "scopes in a loop do not pile up chunks"
    );
}

#[test]
fn stale_checkpoint_is_refused() {
    let mut arena = Arena::new();
    arena.alloc(1u8).unwrap();
    let cp = arena.checkpoint();
    arena.alloc_slice_copy(&[0u8; 100]).unwrap();
    let later = arena.checkpoint();
    arena.rollback(cp).unwrap();
    assert_eq!(
        arena.rollback(later),
        Err(ArenaError::StaleCheckpoint),
        "position beyond the cursor"
    );
    arena.reset();
    assert_eq!(
        arena.rollback(cp),
        Err(ArenaError::StaleCheckpoint),
        "chunk no longer live"
    );
}

#[test]
fn vec_grows_in_place_and_buffer_arena_exhausts() {
    let arena = Arena::new().chunk_bytes(1 << 16, 1 << 16);
    let mut v = allocator_api2::vec::Vec::with_capacity_in(4, &arena);
    let start = v.as_ptr();
    for i in 0..5_000u32 {
        v.push(i);
    }
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 12_497_500);
    assert_eq!(v.as_ptr(), start, "the last block grew in place every time");
    assert_eq!(arena.allocated_bytes(), 1 << 16);

    let mut buf = [MaybeUninit::<u8>::uninit(); 256];
    let small = Arena::with_buffer(&mut buf);
    assert!(small
        .alloc_layout(Layout::from_size_align(64, 8).unwrap())
        .is_ok());
    assert!(small
        .alloc_layout(Layout::from_size_align(1024, 8).unwrap())
        .is_err());
    assert!(small
        .allocate(Layout::from_size_align(300, 8).unwrap())
        .is_err());
}

/// Blocks handed back through the `Allocator` API carry provenance over themselves
/// only (a `Box` retags its pointer): the arena must carve the next blocks, and grow a
/// block in place, from its own cursor, not from such a pointer. Only Miri
/// (`scripts/sanitizers.sh`) sees the difference; natively this checks the contents.
#[test]
fn blocks_after_a_boxed_block_is_freed_or_grown_are_usable() {
    let arena = Arena::new();
    let b = allocator_api2::boxed::Box::new_in([1u64; 4], &arena);
    drop(b); // the last block: the cursor moves back over it
    let c = allocator_api2::boxed::Box::new_in([2u64; 64], &arena);
    assert!(c.iter().all(|&x| x == 2));
    drop(c);
    let mut v = allocator_api2::vec::Vec::with_capacity_in(4, &arena);
    for i in 0..1000u64 {
        v.push(i); // grows in place while it is the last block
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    let w = allocator_api2::boxed::Box::new_in([3u8; 100], &arena);
    assert!(w.iter().all(|&x| x == 3));
}
