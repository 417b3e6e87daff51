//! A small futex mutex for the allocator's few shared structures (central span pool,
//! heap registry). Never held on the malloc/free fast path.
//!
//! Three states, after Drepper's "Futexes are tricky": 0 unlocked, 1 locked, 2 locked
//! with sleepers. It spins briefly before sleeping, because the critical sections are
//! short, and sleeps in the kernel rather than spinning for long, because a 2-core machine
//! running 8 threads would otherwise burn whole time slices on a preempted holder.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutex protecting a `T`, usable in a `static`.
pub struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the state word gives at most one thread access to `value` at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    /// Locks, spinning a little and then sleeping.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        MutexGuard { mutex: self }
    }

    /// Locks if the lock is free within about `spins` attempts; for reporters that
    /// must not wait on a lock held by a thread that may never release it (at exit).
    pub fn try_lock_for(&self, spins: u32) -> Option<MutexGuard<'_, T>> {
        for _ in 0..spins {
            if self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(MutexGuard { mutex: self });
            }
            oxalloc_sys::yield_now();
        }
        None
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..100 {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            oxalloc_sys::futex_wait(&self.state, CONTENDED);
        }
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            oxalloc_sys::futex_wake_one(&self.state);
        }
    }

    /// Takes the lock for `fork()`: the lock stays held until [`Mutex::force_unlock`].
    pub fn lock_for_fork(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases, in the parent, a lock taken by [`Mutex::lock_for_fork`], waking any
    /// thread that went to sleep on it meanwhile.
    pub fn unlock_after_fork(&self) {
        self.unlock();
    }

    /// Resets a lock in a fork child, which has only the forking thread: whoever held or
    /// waited for it in the parent does not exist here.
    pub fn force_unlock(&self) {
        self.state.store(UNLOCKED, Ordering::Release);
    }
}

/// Access to the value while the lock is held.
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads() {
        static M: Mutex<u64> = Mutex::new(0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..20_000 {
                        *M.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*M.lock(), 160_000);
    }
}
