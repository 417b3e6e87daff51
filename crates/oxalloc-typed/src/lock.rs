//! A spin lock that builds in `no_std`, and [`Locked`], the wrapper that makes any of
//! this crate's allocators `Sync`.
//!
//! # Idea
//! The allocators here keep their state in an `UnsafeCell` and take `&self`, so they are
//! `Send` but not `Sync`. `Locked<A>` puts one behind a test-and-test-and-set spin lock
//! and forwards `Allocator` (and `GlobalAlloc`) through it. A spin lock needs nothing
//! from the OS, so the same type works in a kernel, on bare metal, or as the global
//! allocator of a `#![no_std]` binary.
//!
//! # Invariants
//! * `locked` is true exactly while a [`SpinGuard`] exists; only the guard touches `value`.
//! * Acquire on lock, Release on unlock: writes made under the lock are seen by the next
//!   holder.
//!
//! A thread that re-enters the same `Locked` while holding it (for example a `Drop` of an
//! object in a `Locked<SlabCache<T>>` that frees into the same cache) spins forever:
//! the lock is not recursive.

use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

/// Spins of a waiter before it yields the CPU (with the `os` feature).
#[cfg(feature = "os")]
const SPINS_BEFORE_YIELD: u32 = 100;

/// A mutual-exclusion spin lock around a `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time, so sharing the
// lock only ever moves `T` between threads, which `T: Send` allows.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`; `const`, so it can initialise a `static`.
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Spins until the lock is free, then takes it.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            // Wait on a plain load so the cache line stays shared while someone holds it.
            // With an OS, a holder that lost its CPU would otherwise be waited for a whole
            // time slice: after a short spin, give the CPU away.
            #[cfg(feature = "os")]
            let mut spins = 0u32;
            while self.locked.load(Ordering::Relaxed) {
                #[cfg(feature = "os")]
                {
                    spins += 1;
                    if spins > SPINS_BEFORE_YIELD {
                        oxalloc_sys::yield_now();
                        continue;
                    }
                }
                core::hint::spin_loop();
            }
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinGuard { lock: self })
    }

    /// The value, without locking: `&mut self` proves nobody else holds the lock.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Gives the value back.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

/// Proof that the lock is held; unlocks on drop.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while `locked` is true and it was taken by us, so
        // no other reference to `value` exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference via the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// A thread-safe allocator: any `A` of this crate behind a [`SpinLock`].
///
/// ```
/// use oxalloc_typed::{Arena, Locked};
/// use allocator_api2::alloc::{Allocator, Layout};
/// let arena = Locked::new(Arena::new());
/// std::thread::scope(|s| {
///     s.spawn(|| assert!(arena.allocate(Layout::new::<u64>()).is_ok()));
///     s.spawn(|| assert!(arena.allocate(Layout::new::<u64>()).is_ok()));
/// });
/// assert!(arena.lock().allocated_bytes() >= 16);
/// ```
pub struct Locked<A> {
    inner: SpinLock<A>,
}

impl<A> Locked<A> {
    /// Wraps `inner`.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use oxalloc_typed::{Locked, RawPool};
    /// // A pool shared between threads.
    /// let pool = Locked::new(RawPool::new(Layout::new::<u64>()));
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert!(pool.lock().alloc().is_ok()));
    /// });
    /// assert_eq!(pool.lock().stats().in_use, 1);
    /// ```
    pub const fn new(inner: A) -> Self {
        Self {
            inner: SpinLock::new(inner),
        }
    }

    /// Locks and gives access to the wrapped allocator (statistics, reset, ...).
    pub fn lock(&self) -> SpinGuard<'_, A> {
        self.inner.lock()
    }

    /// The wrapped allocator, without locking.
    pub fn get_mut(&mut self) -> &mut A {
        self.inner.get_mut()
    }

    /// Unwraps.
    pub fn into_inner(self) -> A {
        self.inner.into_inner()
    }
}

// SAFETY: every method forwards to `A` under the lock, so `A`'s own guarantees (blocks
// are valid and disjoint until deallocated) hold; the lock only adds exclusion.
unsafe impl<A: Allocator> Allocator for Locked<A> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.inner.lock().allocate(layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: caller's contract, passed on unchanged.
        unsafe { self.inner.lock().deallocate(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: caller's contract, passed on unchanged.
        unsafe { self.inner.lock().grow(ptr, old, new) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: caller's contract, passed on unchanged.
        unsafe { self.inner.lock().shrink(ptr, old, new) }
    }
}

// SAFETY: `alloc` returns null or a block from `A::allocate` that fits `layout`;
// `dealloc` hands back exactly such blocks, as `GlobalAlloc`'s contract promises.
unsafe impl<A: Allocator> GlobalAlloc for Locked<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.allocate(layout) {
            Ok(p) => p.as_ptr().cast(),
            Err(AllocError) => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc contract: `ptr` came from `alloc` with `layout`.
            unsafe { self.deallocate(p, layout) }
        }
    }
}
