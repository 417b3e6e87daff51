//! The hardened allocator's lock (for the large blocks, the leak-mode stack table,
//! the zero-size slots, the shared quarantine of threads without a record and the
//! thread registry): a futex mutex (0 free, 1 held, 2 held with sleepers), the
//! classic three-state design from Drepper's "Futexes Are Tricky".
//!
//! Re-entry (the allocator calling malloc while it holds the lock, e.g. from a libc
//! function used during a report) would deadlock; the slow path notices it when the
//! thread that holds the lock is the one asking, and aborts with a message instead.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

/// A futex-based mutex.
pub struct Lock {
    state: AtomicU32,
    /// Kernel thread id of the holder, written only on the slow paths that may call out
    /// (reports, stack capture), 0 otherwise.
    pub holder_tid: AtomicU32,
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl Lock {
    /// An unlocked lock.
    pub const fn new() -> Lock {
        Lock {
            state: AtomicU32::new(0),
            holder_tid: AtomicU32::new(0),
        }
    }

    /// Takes the lock.
    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_slow(&self) {
        let holder = self.holder_tid.load(Ordering::Relaxed);
        if holder != 0 && holder == oxalloc_sys::thread_id() {
            oxalloc_sys::write_stderr(b"oxalloc: allocator re-entered while reporting\n");
            oxalloc_sys::abort();
        }
        for _ in 0..64 {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        // From here on the lock is taken as "held with sleepers", so whoever unlocks
        // wakes the next sleeper.
        while self.state.swap(2, Ordering::Acquire) != 0 {
            oxalloc_sys::futex_wait(&self.state, 2);
        }
    }

    /// Releases the lock.
    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            oxalloc_sys::futex_wake_one(&self.state);
        }
    }

    /// Marks the calling thread as the holder, for the re-entry check.
    pub fn mark_holder(&self) {
        self.holder_tid
            .store(oxalloc_sys::thread_id(), Ordering::Relaxed);
    }

    /// Clears the holder mark.
    pub fn clear_holder(&self) {
        self.holder_tid.store(0, Ordering::Relaxed);
    }
}
