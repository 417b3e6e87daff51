//! oxalloc-typed against the crates people use for the same jobs, one group per kind:
//! arena (bumpalo, typed-arena), pool and slab (slab crate, Box on the system
//! allocator), static heap (talc, linked_list_allocator, the system allocator).
//! Each kind on more than one shape (the arena also request-scoped with resets, the static
//! heap also with growing buffers), and for the static heaps the smallest heap each needs
//! per workload against its peak of live bytes (overhead and fragmentation in one number).
//! Short measurement times so the whole run stays within a few minutes:
//! `cargo bench -p oxalloc-typed --bench typed`.
#![allow(clippy::undocumented_unsafe_blocks)] // benchmark driver: contracts noted inline

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::alloc::{GlobalAlloc, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
// The standard library's black_box (criterion's own reads a value byte by byte through
// volatile loads, which for a 64-byte value costs more than the pool operation itself).
use oxalloc_typed::{Arena, Os, Pool, RawPool, SlabCache, Source, StaticHeap};
use std::alloc::Layout;
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::Duration;

const N: usize = 10_000;

/// Bytes the benchmark's allocators hold from below, now: the global allocator's (where
/// the crates grow their `Vec`s and chunks) and, through [`Counted`], the OS pages ours
/// map. Memory lines compare what each allocator holds for the same live objects.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it hands out into [`HELD`].
struct CountingSystem;

// SAFETY: forwards to `System`, which keeps the contract; the counter is only arithmetic.
unsafe impl GlobalAlloc for CountingSystem {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size(), Relaxed);
        unsafe { System.alloc(l) } // SAFETY: caller's contract, passed on
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) } // SAFETY: caller's contract, passed on
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        HELD.fetch_add(new, Relaxed);
        HELD.fetch_sub(l.size(), Relaxed);
        unsafe { System.realloc(p, l, new) } // SAFETY: caller's contract, passed on
    }
}

#[global_allocator]
static COUNTING: CountingSystem = CountingSystem;

/// OS pages, counted into [`HELD`] (the regions as mapped: whole pages).
#[derive(Clone, Copy, Default)]
struct Counted;

// SAFETY: forwards to `Os`, which keeps the contract.
unsafe impl Source for Counted {
    fn acquire(&self, layout: Layout) -> Option<NonNull<[u8]>> {
        let r = Os.acquire(layout)?;
        HELD.fetch_add(r.len(), Relaxed);
        Some(r)
    }
    unsafe fn release(&self, region: NonNull<[u8]>, align: usize) {
        HELD.fetch_sub(region.len(), Relaxed);
        unsafe { Os.release(region, align) } // SAFETY: caller's contract, passed on
    }
}

/// Runs `fill` (which must leave `live` objects of `object` bytes alive and return them)
/// and reports the bytes its allocator then holds per live object. The objects are
/// dropped (and the allocator with them) by the caller's closure afterwards.
fn held_per_object<R>(live: usize, fill: impl FnOnce() -> R) -> (f64, R) {
    let before = HELD.load(Relaxed);
    let kept = fill();
    let held = HELD.load(Relaxed).saturating_sub(before);
    (held as f64 / live as f64, kept)
}

/// Prints one memory line per allocator for a kind: bytes held per live object, and the
/// object's own size for comparison.
fn print_memory(group: &str, live: usize, object: usize, rows: &[(&str, f64)]) {
    println!("{group}: bytes held per live object ({live} live objects of {object} B)");
    for (name, per) in rows {
        println!(
            "  {name:<24} {per:>9.1} B  {:.2}x the object",
            per / object as f64
        );
    }
}

/// Memory of the pool, slab and arena kinds against the crates: `N` live objects (the
/// pool after its churn: every other one freed and allocated again), what each allocator
/// holds from below for them. `Box` on the system allocator is left out: the counter sees
/// the requested bytes, not malloc's own headers.
fn memory() {
    // Every Vec of handles is made before the count starts: only the allocators count.
    let mut blocks = Vec::with_capacity(N);
    let (raw, _) = {
        let pool = RawPool::with_source(Counted, Layout::new::<[u8; 64]>());
        held_per_object(N, || {
            blocks.extend((0..N).map(|_| pool.alloc().unwrap()));
            for p in blocks.iter().step_by(2) {
                unsafe { pool.free(*p) }; // SAFETY: each freed once
            }
            for _ in (0..N).step_by(2) {
                black_box(pool.alloc().unwrap());
            }
        })
    };
    let mut v = Vec::with_capacity(N);
    let (typed, _) = {
        let mut pool: Pool<[u8; 64], _> = Pool::with_source(Counted);
        held_per_object(N, || {
            for _ in 0..N {
                v.push(pool.insert([1; 64]).unwrap());
            }
            for h in v.iter().step_by(2) {
                black_box(pool.remove(*h).unwrap());
            }
            for i in (0..N).step_by(2) {
                v[i] = pool.insert([2; 64]).unwrap();
            }
        })
    };
    v.clear();
    let mut keys = Vec::with_capacity(N);
    let (slab64, _) = {
        let mut sl: slab::Slab<[u8; 64]> = slab::Slab::new();
        held_per_object(N, || {
            for _ in 0..N {
                keys.push(sl.insert([1; 64]));
            }
            for k in keys.iter().step_by(2) {
                black_box(sl.remove(*k));
            }
            for i in (0..N).step_by(2) {
                keys[i] = sl.insert([2; 64]);
            }
            sl
        })
    };
    print_memory(
        "pool_64B_churn",
        N,
        64,
        &[
            ("oxalloc_raw_pool", raw),
            ("oxalloc_typed_pool", typed),
            ("slab_crate", slab64),
        ],
    );

    let mut ptrs = Vec::with_capacity(N);
    let cache: SlabCache<[u64; 9], _> = SlabCache::with_source(Counted);
    let (ours, _) = held_per_object(N, || {
        for i in 0..N as u64 {
            ptrs.push(cache.alloc([i; 9]).unwrap());
        }
    });
    for p in ptrs.drain(..) {
        unsafe { cache.free(p) }; // SAFETY: each freed once
    }
    keys.clear();
    let (theirs, _) = held_per_object(N, || {
        let mut sl: slab::Slab<[u64; 9]> = slab::Slab::new();
        for i in 0..N as u64 {
            keys.push(sl.insert([i; 9]));
        }
        sl
    });
    print_memory(
        "slab_cache_10k_obj72B",
        N,
        72,
        &[("oxalloc_slab_cache", ours), ("slab_crate", theirs)],
    );

    let (ours, _) = held_per_object(N, || {
        let a = Arena::with_source(Counted);
        for i in 0..N as u64 {
            black_box(a.alloc(i).unwrap());
        }
        a
    });
    let (bump, _) = held_per_object(N, || {
        let b = bumpalo::Bump::new();
        for i in 0..N as u64 {
            black_box(b.alloc(i));
        }
        b
    });
    let (typed_arena, _) = held_per_object(N, || {
        let a = typed_arena::Arena::new();
        for i in 0..N as u64 {
            black_box(a.alloc(i));
        }
        a
    });
    print_memory(
        "arena_10k_u64",
        N,
        8,
        &[
            ("oxalloc_arena", ours),
            ("bumpalo", bump),
            ("typed_arena", typed_arena),
        ],
    );
}

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

    // Reset-heavy: a request-scoped arena, 200 rounds of 50 allocations of mixed sizes
    // and alignments, then a reset.
    let sizes: Vec<Layout> = (0..50)
        .map(|i| Layout::from_size_align(8 + (i * 37) % 250, 1 << (i % 4 + 1)).unwrap())
        .collect();
    let mut g = c.benchmark_group("arena_reset_200x50_mixed");
    g.bench_function("oxalloc_arena", |b| {
        b.iter(|| {
            for _ in 0..200 {
                for &l in &sizes {
                    black_box(ours.alloc_layout(l).unwrap());
                }
                ours.reset();
            }
        })
    });
    g.bench_function("bumpalo", |b| {
        b.iter(|| {
            for _ in 0..200 {
                for &l in &sizes {
                    black_box(bump.alloc_layout(l));
                }
                bump.reset();
            }
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
    /// Grows `p` (layout `l`) to `new` bytes; null on failure (`p` still live then).
    fn g(&mut self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = self.a(Layout::from_size_align(new, l.align()).unwrap());
        if !q.is_null() {
            // SAFETY: both blocks are live and at least `l.size()` long; distinct.
            unsafe { std::ptr::copy_nonoverlapping(p, q, l.size()) };
            self.f(p, l);
        }
        q
    }
}

/// Buffers that grow: 200 slots; each step picks one, starts it at 16..144 bytes if it is
/// empty, else grows it by a quarter to a whole (a string or vector being built), and
/// frees it once it passes 4 KiB. Alignment 8.
fn realloc_workload() -> Vec<(usize, u32)> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 200) as usize, (x >> 40) as u32)
        })
        .collect()
}

fn run_realloc<H: Heapish>(h: &mut H, w: &[(usize, u32)], slots: &mut [(*mut u8, Layout)]) -> bool {
    for &(k, r) in w {
        let (p, l) = slots[k];
        if p.is_null() {
            let l = Layout::from_size_align(16 + (r % 128) as usize, 8).unwrap();
            let q = h.a(l);
            if q.is_null() {
                return false;
            }
            slots[k] = (q, l);
        } else if l.size() > 4096 {
            h.f(p, l);
            slots[k].0 = std::ptr::null_mut();
        } else {
            let new = l.size() + l.size() * (25 + (r % 76) as usize) / 100;
            let q = h.g(p, l, new);
            if q.is_null() {
                return false;
            }
            slots[k] = (q, Layout::from_size_align(new, 8).unwrap());
        }
    }
    for s in slots.iter_mut() {
        if !s.0.is_null() {
            h.f(s.0, s.1);
            s.0 = std::ptr::null_mut();
        }
    }
    true
}

fn run_heap<H: Heapish>(h: &mut H, w: &[(Layout, usize)], slots: &mut [(*mut u8, Layout)]) -> bool {
    let mut ok = true;
    for &(l, k) in w {
        let (p, pl) = slots[k];
        if !p.is_null() {
            h.f(p, pl);
            slots[k].0 = std::ptr::null_mut();
        }
        let q = h.a(l);
        if q.is_null() {
            ok = false;
            break;
        }
        slots[k] = (q, l);
    }
    for s in slots.iter_mut() {
        if !s.0.is_null() {
            h.f(s.0, s.1);
            s.0 = std::ptr::null_mut();
        }
    }
    ok
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
    fn g(&mut self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        use oxalloc_typed::Allocator;
        let nl = Layout::from_size_align(new, l.align()).unwrap();
        // SAFETY: `p` is live with layout `l`; `nl` is not smaller.
        unsafe { self.0.grow(std::ptr::NonNull::new_unchecked(p), l, nl) }
            .map_or(std::ptr::null_mut(), |q| q.cast::<u8>().as_ptr())
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
    fn g(&mut self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` is live with layout `l`; `new` is not smaller.
        unsafe { self.0.grow(std::ptr::NonNull::new_unchecked(p), l, new) }
            .map_or(std::ptr::null_mut(), |q| q.as_ptr())
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
    fn g(&mut self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` is live with layout `l`; `new` is non-zero.
        unsafe { std::alloc::realloc(p, l, new) }
    }
}

/// A static heap of `bytes` under each allocator, handed to `f`.
fn with_heaps(bytes: usize, f: &mut dyn FnMut(&str, &mut dyn HeapishDyn)) {
    let mut b1 = vec![MaybeUninit::<u8>::uninit(); bytes];
    let mut ours = Ours(StaticHeap::with_buffer(&mut b1));
    f("oxalloc_static_heap", &mut ours);
    let mut b2 = vec![0u8; bytes];
    let mut t = Talc(talc::Talc::new(talc::ErrOnOom));
    // SAFETY: the buffer outlives the heap and is used by nothing else.
    if unsafe {
        t.0.claim(talc::Span::from_base_size(b2.as_mut_ptr(), bytes))
    }
    .is_ok()
    {
        f("talc", &mut t);
    }
    let mut b3 = vec![0u8; bytes];
    let mut l = Lla(linked_list_allocator::Heap::empty());
    unsafe { l.0.init(b3.as_mut_ptr(), bytes) }; // SAFETY: our buffer, outlives `l`
    f("linked_list_allocator", &mut l);
}

/// Live bytes the adversary keeps at most.
const ADVERSARY_BUDGET: usize = 64 << 10;

/// An adversary in the manner of Robson's worst-case fragmentation programs (J. M. Robson,
/// "Bounds for some functions concerning dynamic storage allocation", JACM 1974): phases
/// of blocks of 16 B, 32 B, ... 4 KiB. Each phase allocates blocks of its size until
/// `budget` bytes are live, then, looking at where the blocks landed, frees every block it
/// can while leaving no gap between the blocks it keeps as large as the next phase's
/// block, so the next phase cannot reuse the freed space and must take new memory. Live
/// bytes never exceed `budget`; the heap an allocator needs is its fragmentation under a
/// program that adapts to its placement.
fn run_adversary<H: Heapish>(h: &mut H, budget: usize) -> bool {
    let mut live: Vec<(*mut u8, Layout)> = Vec::new();
    let mut live_bytes = 0;
    let mut ok = true;
    let mut size = 16;
    'phases: while size <= 4096 {
        let l = Layout::from_size_align(size, 16).unwrap();
        while live_bytes + size <= budget {
            let p = h.a(l);
            if p.is_null() {
                ok = false;
                break 'phases;
            }
            live.push((p, l));
            live_bytes += size;
        }
        live.sort_by_key(|b| b.0 as usize);
        let next = 2 * size;
        let mut kept = Vec::with_capacity(live.len());
        let mut last_end = live.first().map_or(0, |b| b.0 as usize);
        for i in 0..live.len() {
            let (p, l) = live[i];
            let next_start = live
                .get(i + 1)
                .map_or(p as usize + l.size(), |b| b.0 as usize);
            if next_start - last_end >= next {
                // Freeing it would leave a gap the next phase could use: keep it.
                last_end = p as usize + l.size();
                kept.push((p, l));
            } else {
                h.f(p, l);
                live_bytes -= l.size();
            }
        }
        live = kept;
        size = next;
    }
    for (p, l) in live {
        h.f(p, l);
    }
    ok
}

/// Object-safe face of [`Heapish`], so [`with_heaps`] can hand out any of them.
trait HeapishDyn {
    fn mixed(&mut self, w: &[(Layout, usize)]) -> bool;
    fn grow(&mut self, w: &[(usize, u32)]) -> bool;
    fn adversary(&mut self, budget: usize) -> bool;
}
impl<H: Heapish> HeapishDyn for H {
    fn adversary(&mut self, budget: usize) -> bool {
        run_adversary(self, budget)
    }
    fn mixed(&mut self, w: &[(Layout, usize)]) -> bool {
        let mut slots = vec![(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); 1000];
        run_heap(self, w, &mut slots)
    }
    fn grow(&mut self, w: &[(usize, u32)]) -> bool {
        let mut slots = vec![(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); 200];
        run_realloc(self, w, &mut slots)
    }
}

/// The smallest heap (to 1/64 of the answer) in which each allocator runs the workload:
/// its overhead and fragmentation in one number, next to the peak of live bytes.
fn smallest_heaps(run: &dyn Fn(&mut dyn HeapishDyn) -> bool) -> Vec<(String, usize)> {
    let mut names = Vec::new();
    with_heaps(8 << 20, &mut |name, _| names.push(name.to_string()));
    names
        .into_iter()
        .map(|name| {
            let (mut lo, mut hi) = (1usize << 10, 8usize << 20);
            while hi - lo > hi / 64 {
                let mid = lo + (hi - lo) / 2;
                let mut fits = false;
                with_heaps(mid, &mut |n, h| {
                    if n == name {
                        fits = run(h);
                    }
                });
                if fits {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            (name, hi)
        })
        .collect()
}

/// Peak of the live bytes the mixed workload asks for.
fn mixed_peak(w: &[(Layout, usize)]) -> usize {
    let mut live = [0usize; 1000];
    let (mut now, mut peak) = (0usize, 0usize);
    for &(l, k) in w {
        now = now - live[k] + l.size();
        live[k] = l.size();
        peak = peak.max(now);
    }
    peak
}

/// Peak of the live bytes the growing-buffer workload asks for (a grow holds the old and
/// the new block at once only when it moves; counted as the new size).
fn realloc_peak(w: &[(usize, u32)]) -> usize {
    let mut live = [0usize; 200];
    let (mut now, mut peak) = (0usize, 0usize);
    for &(k, r) in w {
        let old = live[k];
        live[k] = if old == 0 {
            16 + (r % 128) as usize
        } else if old > 4096 {
            0
        } else {
            old + old * (25 + (r % 76) as usize) / 100
        };
        now = now - old + live[k];
        peak = peak.max(now);
    }
    peak
}

fn static_heap(c: &mut Criterion) {
    const HEAP: usize = 4 << 20;
    let w = heap_workload();
    let rw = realloc_workload();
    let mut slots = vec![(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); 1000];
    let mut b1 = vec![MaybeUninit::<u8>::uninit(); HEAP];
    let mut ours = Ours(StaticHeap::with_buffer(&mut b1));
    let mut b2 = vec![0u8; HEAP];
    let mut t = Talc(talc::Talc::new(talc::ErrOnOom));
    // SAFETY: the buffer outlives the heap and is used by nothing else.
    unsafe {
        t.0.claim(talc::Span::from_base_size(b2.as_mut_ptr(), HEAP))
            .unwrap()
    }; // our buffer, outlives `t`
    let mut b3 = vec![0u8; HEAP];
    let mut l = Lla(linked_list_allocator::Heap::empty());
    unsafe { l.0.init(b3.as_mut_ptr(), HEAP) }; // SAFETY: our buffer, outlives `l`

    let mut g = c.benchmark_group("static_heap_mixed_10k");
    g.bench_function(BenchmarkId::new("oxalloc_static_heap", "tlsf"), |b| {
        b.iter(|| assert!(run_heap(&mut ours, &w, &mut slots)))
    });
    g.bench_function(BenchmarkId::new("talc", ""), |b| {
        b.iter(|| assert!(run_heap(&mut t, &w, &mut slots)))
    });
    g.bench_function(BenchmarkId::new("linked_list_allocator", ""), |b| {
        b.iter(|| assert!(run_heap(&mut l, &w, &mut slots)))
    });
    g.bench_function(BenchmarkId::new("system", ""), |b| {
        b.iter(|| assert!(run_heap(&mut Sys, &w, &mut slots)))
    });
    g.finish();

    let mut g = c.benchmark_group("static_heap_realloc_10k");
    let mut rs = vec![(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); 200];
    g.bench_function(BenchmarkId::new("oxalloc_static_heap", "tlsf"), |b| {
        b.iter(|| assert!(run_realloc(&mut ours, &rw, &mut rs)))
    });
    g.bench_function(BenchmarkId::new("talc", ""), |b| {
        b.iter(|| assert!(run_realloc(&mut t, &rw, &mut rs)))
    });
    g.bench_function(BenchmarkId::new("linked_list_allocator", ""), |b| {
        b.iter(|| assert!(run_realloc(&mut l, &rw, &mut rs)))
    });
    g.bench_function(BenchmarkId::new("system", ""), |b| {
        b.iter(|| assert!(run_realloc(&mut Sys, &rw, &mut rs)))
    });
    g.finish();

    // Memory: the smallest heap each allocator needs for each workload, against the
    // workload's peak of live bytes (a ratio of 1.0 would be no overhead at all).
    for (shape, peak, sizes) in [
        (
            "static_heap_mixed_10k",
            mixed_peak(&w),
            smallest_heaps(&|h| h.mixed(&w)),
        ),
        (
            "static_heap_realloc_10k",
            realloc_peak(&rw),
            smallest_heaps(&|h| h.grow(&rw)),
        ),
        (
            "static_heap_adversary_16B_4KiB",
            ADVERSARY_BUDGET,
            smallest_heaps(&|h| h.adversary(ADVERSARY_BUDGET)),
        ),
    ] {
        println!("{shape}: smallest heap that runs it (live bytes at peak {peak} B)");
        for (name, bytes) in sizes {
            println!(
                "  {name:<24} {:>9} B  {:.2}x the peak",
                bytes,
                bytes as f64 / peak as f64
            );
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

fn memory_lines(_: &mut Criterion) {
    memory();
}

criterion_group! { name = benches; config = config(); targets = arena, pool, slab_cache, static_heap, memory_lines }
criterion_main!(benches);
