//! oxalloc-typed against the crates people use for the same jobs, one group per kind:
//! arena (bumpalo, typed-arena), pool and slab (slab crate, Box on the system
//! allocator), static heap (talc, linked_list_allocator, the system allocator).
//! Short measurement times so the whole run stays within a few minutes:
//! `cargo bench -p oxalloc-typed --bench typed`.
#![allow(clippy::undocumented_unsafe_blocks)] // benchmark driver: contracts noted inline

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use oxalloc_typed::{Arena, Pool, RawPool, SlabCache, StaticHeap};
use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::time::Duration;

const N: usize = 10_000;

fn arena(c: &mut Criterion) {
    let mut g = c.benchmark_group("arena_10k_u64");
    let mut ours = Arena::new();
    g.bench_function("oxalloc_arena", |b| {
        b.iter(|| {
            for i in 0..N as u64 {
                black_box(ours.alloc(i).unwrap());
            }
            ours.reset();
        })
    });
    let mut bump = bumpalo::Bump::new();
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            for i in 0..N as u64 {
                black_box(bump.alloc(i));
            }
            bump.reset();
        })
    });
    g.bench_function("typed_arena(new each iter)", |b| {
        b.iter(|| {
            let a = typed_arena::Arena::with_capacity(1024);
            for i in 0..N as u64 {
                black_box(a.alloc(i));
            }
        })
    });
    g.bench_function("system_box", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N as u64 {
                v.push(Box::new(i));
            }
            v.clear();
        })
    });
    g.finish();
}

/// Allocate N 64-byte objects, free every other one, allocate N/2 again, free all.
fn pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_64B_churn");
    let raw = RawPool::new(Layout::new::<[u8; 64]>());
    g.bench_function("oxalloc_raw_pool", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for _ in 0..N {
                v.push(raw.alloc().unwrap());
            }
            for p in v.iter().step_by(2) {
                unsafe { raw.free(*p) }; // SAFETY: each freed once
            }
            for i in (0..N).step_by(2) {
                v[i] = raw.alloc().unwrap();
            }
            for p in v.drain(..) {
                unsafe { raw.free(p) }; // SAFETY: each live block freed once
            }
        })
    });
    let mut typed: Pool<[u8; 64], _> = Pool::new();
    g.bench_function("oxalloc_typed_pool", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for _ in 0..N {
                v.push(typed.insert([1; 64]).unwrap());
            }
            for h in v.iter().step_by(2) {
                black_box(typed.remove(*h).unwrap());
            }
            for i in (0..N).step_by(2) {
                v[i] = typed.insert([2; 64]).unwrap();
            }
            for h in v.drain(..) {
                black_box(typed.remove(h).unwrap());
            }
        })
    });
    let mut sl: slab::Slab<[u8; 64]> = slab::Slab::new();
    g.bench_function("slab_crate", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for _ in 0..N {
                v.push(sl.insert([1; 64]));
            }
            for k in v.iter().step_by(2) {
                black_box(sl.remove(*k));
            }
            for i in (0..N).step_by(2) {
                v[i] = sl.insert([2; 64]);
            }
            for k in v.drain(..) {
                black_box(sl.remove(k));
            }
        })
    });
    g.bench_function("system_box", |b| {
        let mut v: Vec<Box<[u8; 64]>> = Vec::with_capacity(N);
        b.iter(|| {
            for _ in 0..N {
                v.push(Box::new([1; 64]));
            }
            for i in (0..N).step_by(2) {
                drop(std::mem::replace(&mut v[i], Box::new([2; 64])));
            }
            v.clear();
        })
    });
    g.finish();
}

fn slab_cache(c: &mut Criterion) {
    let mut g = c.benchmark_group("slab_cache_10k_obj72B");
    let cache: SlabCache<[u64; 9], _> = SlabCache::new();
    g.bench_function("oxalloc_slab_cache", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N as u64 {
                v.push(cache.alloc([i; 9]).unwrap());
            }
            for p in v.drain(..) {
                unsafe { cache.free(p) }; // SAFETY: each freed once
            }
        })
    });
    let mut sl: slab::Slab<[u64; 9]> = slab::Slab::new();
    g.bench_function("slab_crate", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N as u64 {
                v.push(sl.insert([i; 9]));
            }
            for k in v.drain(..) {
                black_box(sl.remove(k));
            }
        })
    });
    g.bench_function("system_box", |b| {
        let mut v = Vec::with_capacity(N);
        b.iter(|| {
            for i in 0..N as u64 {
                v.push(Box::new([i; 9]));
            }
            v.clear();
        })
    });
    g.finish();
}

/// Mixed sizes 16..528, a window of 1000 live blocks freed in a scrambled order.
fn heap_workload() -> Vec<(Layout, usize)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = 16 + (x % 512) as usize;
            (
                Layout::from_size_align(size, 8).unwrap(),
                (x >> 32) as usize % 1000,
            )
        })
        .collect()
}

trait Heapish {
    fn a(&mut self, l: Layout) -> *mut u8;
    fn f(&mut self, p: *mut u8, l: Layout);
}

fn run_heap<H: Heapish>(h: &mut H, w: &[(Layout, usize)], slots: &mut [(*mut u8, Layout)]) {
    for &(l, k) in w {
        let (p, pl) = slots[k];
        if !p.is_null() {
            h.f(p, pl);
        }
        let q = h.a(l);
        assert!(!q.is_null());
        slots[k] = (q, l);
    }
    for s in slots.iter_mut() {
        if !s.0.is_null() {
            h.f(s.0, s.1);
            s.0 = std::ptr::null_mut();
        }
    }
}

struct Ours<'a>(StaticHeap<oxalloc_typed::Buffer<'a>>);
impl Heapish for Ours<'_> {
    fn a(&mut self, l: Layout) -> *mut u8 {
        self.0.alloc(l).map_or(std::ptr::null_mut(), |p| p.as_ptr())
    }
    fn f(&mut self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` came from `a` and is freed once.
        let _ = unsafe { self.0.free(std::ptr::NonNull::new_unchecked(p)) };
    }
}
struct Talc(talc::Talc<talc::ErrOnOom>);
impl Heapish for Talc {
    fn a(&mut self, l: Layout) -> *mut u8 {
        // SAFETY: the heap was given its memory before the benchmark runs.
        unsafe { self.0.malloc(l) }.map_or(std::ptr::null_mut(), |p| p.as_ptr())
    }
    fn f(&mut self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `a` with layout `l` and is freed once.
        unsafe { self.0.free(std::ptr::NonNull::new_unchecked(p), l) }
    }
}
struct Lla(linked_list_allocator::Heap);
impl Heapish for Lla {
    fn a(&mut self, l: Layout) -> *mut u8 {
        self.0
            .allocate_first_fit(l)
            .map_or(std::ptr::null_mut(), |p| p.as_ptr())
    }
    fn f(&mut self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `a` with layout `l` and is freed once.
        unsafe { self.0.deallocate(std::ptr::NonNull::new_unchecked(p), l) }
    }
}
struct Sys;
impl Heapish for Sys {
    fn a(&mut self, l: Layout) -> *mut u8 {
        // SAFETY: the workload never asks for zero-sized layouts.
        unsafe { std::alloc::alloc(l) }
    }
    fn f(&mut self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `a` with layout `l` and is freed once.
        unsafe { std::alloc::dealloc(p, l) }
    }
}

fn static_heap(c: &mut Criterion) {
    const HEAP: usize = 4 << 20;
    let w = heap_workload();
    let mut slots = vec![(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); 1000];
    let mut g = c.benchmark_group("static_heap_mixed_10k");
    let mut b1 = vec![MaybeUninit::<u8>::uninit(); HEAP];
    let mut ours = Ours(StaticHeap::with_buffer(&mut b1));
    g.bench_function(BenchmarkId::new("oxalloc_static_heap", "tlsf"), |b| {
        b.iter(|| run_heap(&mut ours, &w, &mut slots))
    });
    let mut b2 = vec![0u8; HEAP];
    let mut t = Talc(talc::Talc::new(talc::ErrOnOom));
    // SAFETY: the buffer outlives the heap and is used by nothing else.
    unsafe {
        t.0.claim(talc::Span::from_base_size(b2.as_mut_ptr(), HEAP))
            .unwrap()
    }; // our buffer, outlives `t`
    g.bench_function(BenchmarkId::new("talc", ""), |b| {
        b.iter(|| run_heap(&mut t, &w, &mut slots))
    });
    let mut b3 = vec![0u8; HEAP];
    let mut l = Lla(linked_list_allocator::Heap::empty());
    unsafe { l.0.init(b3.as_mut_ptr(), HEAP) }; // SAFETY: our buffer, outlives `l`
    g.bench_function(BenchmarkId::new("linked_list_allocator", ""), |b| {
        b.iter(|| run_heap(&mut l, &w, &mut slots))
    });
    g.bench_function(BenchmarkId::new("system", ""), |b| {
        b.iter(|| run_heap(&mut Sys, &w, &mut slots))
    });
    g.finish();
    // Memory overhead after the workload's peak: bytes the heap needs beyond payload.
    let _ = ours.0.stats();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = arena, pool, slab_cache, static_heap }
criterion_main!(benches);
