//! Typed and special-purpose allocators: [`RawPool`]/[`Pool`], [`SlabCache`], [`Arena`],
//! [`Stack`] and [`StaticHeap`]/[`GlobalStaticHeap`]. `#![no_std]`; each implements
//! `allocator_api2::alloc::Allocator`, each takes its memory from a [`Source`] (a caller's
//! [`Buffer`], any [`Parent`] allocator, or the [`Os`] with feature `os`), and
//! [`Locked`] makes any of them `Sync`. Exhaustion is an `AllocError`, never a panic.
//!
//! Module map (one idea each): `source` (where memory comes from), `lock` (spin lock and
//! `Locked`), `pool` (fixed-size blocks), `slab` (object caches), `arena` (bump),
//! `stack` (LIFO with markers), `static_heap` + `tlsf` (general heap on a fixed
//! region), `capi` (feature `capi`: the C ABI of `include/oxalloc_typed.h`).
//!
//! Decision: this crate does not share `SizeClass`/free lists with `oxalloc-core`, so a
//! `no_std` build needs nothing but `allocator-api2` (and `oxalloc-sys` for `os`).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![warn(missing_docs)]

pub mod arena;
#[cfg(feature = "capi")]
pub mod capi;
pub mod lock;
pub mod pool;
pub mod slab;
pub mod source;
pub mod stack;
pub mod static_heap;
mod tlsf;

pub use allocator_api2::alloc::{AllocError, Allocator};
pub use arena::{Arena, ArenaError, Checkpoint};
pub use lock::{Locked, SpinGuard, SpinLock};
pub use pool::{Handle, Pool, PoolError, PoolStats, RawPool};
pub use slab::{SlabCache, SlabStats};
#[cfg(feature = "os")]
pub use source::Os;
pub use source::{Buffer, Parent, Source};
pub use stack::{Marker, Stack, StackError, StackStats};
pub use static_heap::{GlobalStaticHeap, HeapError, HeapStats, StaticHeap};

/// Thread-safe pool of raw blocks.
pub type SyncPool<S> = Locked<RawPool<S>>;
/// Thread-safe arena.
pub type SyncArena<S> = Locked<Arena<S>>;
/// Thread-safe static heap.
pub type SyncStaticHeap<S> = Locked<StaticHeap<S>>;
/// Thread-safe slab cache.
pub type SyncSlabCache<T, S> = Locked<SlabCache<T, S>>;
/// Thread-safe stack allocator.
pub type SyncStack<S> = Locked<Stack<S>>;
