//! Per-thread records: each thread's quarantine ring and counters, so a `free` takes
//! no lock (the core allocator underneath has its own per-thread heaps).
//!
//! Each thread gets a [`Cache`] record (its own `mmap`, never freed, reused after the
//! thread exits) holding a FIFO ring of the blocks it freed (zeroed, waiting to go
//! back to the core) and its live-block counters.
//!
//! The record's address sits in an initial-exec TLS word (one `mov %fs:`), as in the
//! core allocator: 0 means "no record yet", `NO_CACHE` means "use the locked paths"
//! (the thread already exited, or no record could be had). Thread exit is learnt from
//! a `pthread` key destructor (Rust's TLS destructors may call `calloc`), which sends
//! the ring's blocks back to the core after their check ([`crate::heap::drain_cache`])
//! and puts the record on the free list.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::lock::Lock;
use oxalloc_core::size_class::SizeClass;

/// Most blocks a thread's quarantine ring can hold (`OXALLOC_QUARANTINE` is capped
/// to this).
pub const RING_MAX: usize = 8192;
/// TLS value of a thread that must use the locked paths.
const NO_CACHE: usize = 1;

/// A FIFO of quarantined blocks, each entry `address | (length / 16) << 48` (48-bit
/// addresses: aarch64 maps just below 2^48; block lengths are multiples of 16); `head`
/// and `tail` count pops and pushes (wrapping), so the length is their difference.
#[repr(C)]
pub struct QRing {
    head: u32,
    tail: u32,
    /// Bytes of the blocks in the ring.
    pub bytes: usize,
    buf: [usize; RING_MAX],
}

const RING_MASK: u32 = RING_MAX as u32 - 1;
const _: () = assert!(RING_MAX.is_power_of_two());

/// A quarantined block: its address and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// Address.
    pub addr: usize,
    /// Block length.
    pub len: usize,
}

impl QRing {
    /// An empty ring.
    pub const fn new() -> QRing {
        QRing {
            head: 0,
            tail: 0,
            bytes: 0,
            buf: [0; RING_MAX],
        }
    }

    /// Blocks in the ring.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    /// True when the ring holds no block.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a block (the caller makes room first: `len() < RING_MAX`).
    #[inline(always)]
    pub fn push(&mut self, q: Quarantined) {
        debug_assert!(self.len() < RING_MAX && q.addr >> 48 == 0);
        debug_assert!(q.len.is_multiple_of(16) && q.len <= 1 << 17);
        self.buf[(self.tail & RING_MASK) as usize] = q.addr | (q.len >> 4) << 48;
        self.tail = self.tail.wrapping_add(1);
        self.bytes += q.len;
    }

    /// Removes the oldest block.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Quarantined> {
        if self.head == self.tail {
            return None;
        }
        let q = self.get(0);
        self.head = self.head.wrapping_add(1);
        self.bytes -= q.len;
        Some(q)
    }

    /// The `i`-th oldest block (`i < len()`).
    #[inline(always)]
    pub fn get(&self, i: usize) -> Quarantined {
        let e = self.buf[(self.head.wrapping_add(i as u32) & RING_MASK) as usize];
        Quarantined {
            addr: e & ((1 << 48) - 1),
            len: (e >> 48) << 4,
        }
    }
}

impl Default for QRing {
    fn default() -> QRing {
        QRing::new()
    }
}

/// A thread's record.
#[repr(C)]
pub struct Cache {
    /// Bytes allocated minus bytes freed by this thread (wrapping: frees of other
    /// threads' blocks count here), written only by the owner.
    pub live_bytes: AtomicUsize,
    /// Blocks likewise.
    pub live_blocks: AtomicUsize,
    next_all: *mut Cache,
    next_free: *mut Cache,
    /// xorshift64* state for the stash's random choice (seeded from the kernel).
    pub rng: u64,
    /// Per small size class, blocks taken from the core and not yet handed out: each
    /// `malloc` puts the core's block in a random slot and returns the one that was
    /// there, so the order in which addresses come back is not predictable.
    pub stash: [[usize; STASH]; STASH_CLASSES],
    /// The blocks this thread freed, zeroed, waiting to go back to the core.
    pub ring: QRing,
}

/// Blocks a thread's stash holds per class.
pub const STASH: usize = 4;
/// Classes with a stash: those up to 1 KiB (most allocations; bigger blocks would make
/// the stash hold too much memory).
pub const STASH_CLASSES: usize = SizeClass::of(1024).index() + 1;

impl Cache {
    /// A random number.
    #[inline(always)]
    pub fn random(&mut self) -> u64 {
        crate::mitigations::xorshift64_star(&mut self.rng)
    }

    /// Adds `bytes` (which may be a wrapped negative) and `blocks` to the counters.
    #[inline]
    pub fn count(&self, bytes: usize, blocks: usize) {
        let b = self.live_bytes.load(Ordering::Relaxed);
        self.live_bytes
            .store(b.wrapping_add(bytes), Ordering::Relaxed);
        let n = self.live_blocks.load(Ordering::Relaxed);
        self.live_blocks
            .store(n.wrapping_add(blocks), Ordering::Relaxed);
    }
}

struct Registry {
    free: *mut Cache,
}

/// The free list of records, behind its lock.
pub struct RegistryShard {
    /// The lock (taken first of all by the fork handlers).
    pub lock: Lock,
    reg: UnsafeCell<Registry>,
}

// SAFETY: `reg` is only reached with `lock` held.
unsafe impl Sync for RegistryShard {}

/// Records of exited threads, ready for reuse.
pub static REGISTRY: RegistryShard = RegistryShard {
    lock: Lock::new(),
    reg: UnsafeCell::new(Registry {
        free: ptr::null_mut(),
    }),
};
/// Every record ever made, newest first; append-only, so [`for_each`] needs no lock.
static ALL: AtomicPtr<Cache> = AtomicPtr::new(ptr::null_mut());
/// The thread-exit key (`u32::MAX`: none, then no thread gets a cache).
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Creates the thread-exit key (once, after the heap is initialised).
pub fn init_key() {
    #[cfg(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        target_os = "linux"
    ))]
    if let Some(key) = oxalloc_sys::thread_key_create(thread_exit) {
        EXIT_KEY.store(key, Ordering::Release);
    }
}

/// The calling thread's cache, or null when it must use the locked paths.
#[inline(always)]
pub fn current() -> *mut Cache {
    let v = slot::get();
    if v > NO_CACHE {
        return v as *mut Cache;
    }
    if v == NO_CACHE {
        return ptr::null_mut();
    }
    attach()
}

/// Gives the calling thread a record (the heap is initialised).
#[cold]
#[inline(never)]
fn attach() -> *mut Cache {
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key == u32::MAX {
        slot::set(NO_CACHE);
        return ptr::null_mut();
    }
    let c = acquire();
    if c.is_null() {
        slot::set(NO_CACHE);
        return c;
    }
    slot::set(c as usize);
    // May allocate for keys past glibc's first 32; that allocation finds the record
    // already installed.
    // SAFETY: the key's destructor expects this thread's record.
    if !unsafe { oxalloc_sys::thread_key_set(key, c.cast()) } {
        // No exit hook: the record would be lost with the thread. Give it back.
        slot::set(NO_CACHE);
        release(c);
        return ptr::null_mut();
    }
    c
}

/// A record from the free list, or a fresh one.
fn acquire() -> *mut Cache {
    REGISTRY.lock.lock();
    // SAFETY: the lock is held.
    let reg = unsafe { &mut *REGISTRY.reg.get() };
    let c = reg.free;
    if !c.is_null() {
        // SAFETY: records on the free list are owned by it (under our lock).
        reg.free = unsafe { (*c).next_free };
    }
    REGISTRY.lock.unlock();
    if !c.is_null() {
        return c;
    }
    let bytes = core::mem::size_of::<Cache>().next_multiple_of(oxalloc_sys::PAGE_SIZE);
    let Some(mem) = oxalloc_sys::map(bytes) else {
        return ptr::null_mut();
    };
    let c = mem.as_ptr().cast::<Cache>();
    // SAFETY: a fresh zeroed mapping big enough for a record (all-zero is a valid
    // empty one) that nobody else can see yet.
    unsafe { (*c).rng = oxalloc_sys::random_u64() | 1 };
    let mut head = ALL.load(Ordering::Relaxed);
    loop {
        // SAFETY: not yet published; ours.
        unsafe { (*c).next_all = head };
        match ALL.compare_exchange_weak(head, c, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => head = now,
        }
    }
    c
}

/// Puts an emptied record on the free list.
fn release(c: *mut Cache) {
    REGISTRY.lock.lock();
    // SAFETY: the lock is held; the caller owns `c` and gives it to the list.
    unsafe {
        let reg = &mut *REGISTRY.reg.get();
        (*c).next_free = reg.free;
        reg.free = c;
    }
    REGISTRY.lock.unlock();
}

/// Visits every record ever made (for the statistics; the counters are atomics).
pub fn for_each(mut f: impl FnMut(&Cache)) {
    let mut c = ALL.load(Ordering::Acquire);
    while !c.is_null() {
        // SAFETY: records are never unmapped; `next_all` is set before publication and
        // the counters are atomics.
        let r = unsafe { &*c };
        f(r);
        c = r.next_all;
    }
}

/// The `pthread` key destructor: the thread is exiting.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]
unsafe extern "C" fn thread_exit(arg: *mut c_void) {
    let c = arg.cast::<Cache>();
    if c.is_null() {
        return;
    }
    // From now on this thread uses the locked paths (other keys' destructors may still
    // allocate and free).
    slot::set(NO_CACHE);
    // SAFETY: the record was this thread's alone, and the TLS word no longer names it.
    crate::heap::drain_cache(unsafe { &mut *c });
    release(c);
}

// The thread slot on x86-64 and aarch64 Linux: an initial-exec TLS word, one `mov %fs:`
// per read (aarch64: `mrs tpidr_el0` and a load; see `oxalloc_sys::initial_exec_slot!`).
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]
oxalloc_sys::initial_exec_slot!(mod slot = "oxalloc_hardened_thread");

/// Elsewhere: no thread caches (every call takes the locked paths).
#[cfg(not(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
)))]
mod slot {
    #[inline(always)]
    pub fn get() -> usize {
        super::NO_CACHE
    }
    pub fn set(_v: usize) {}
}

#[cfg(test)]
mod tests {
    use super::{QRing, Quarantined, RING_MAX};

    #[test]
    fn ring_is_fifo_across_wrap_around_and_counts_bytes() {
        let mut r = Box::new(QRing::new());
        let q = |i: usize| Quarantined {
            addr: 0x7000_0000_0000 + 16 * i,
            len: 16 * (1 + i % 7),
        };
        let mut next_out = 0;
        // Three times round the ring, holding up to 1000 blocks.
        for i in 0..3 * RING_MAX {
            r.push(q(i));
            if r.len() > 1000 {
                assert_eq!(r.pop(), Some(q(next_out)));
                next_out += 1;
            }
        }
        assert_eq!(r.len(), 1000);
        assert_eq!(r.get(0), q(next_out));
        let bytes: usize = (next_out..3 * RING_MAX).map(|i| q(i).len).sum();
        assert_eq!(r.bytes, bytes);
        while let Some(b) = r.pop() {
            assert_eq!(b, q(next_out));
            next_out += 1;
        }
        assert!(r.is_empty() && r.bytes == 0);
    }

    #[test]
    fn ring_keeps_48_bit_addresses_and_the_largest_lengths() {
        // aarch64 maps just below 2^48; the largest small block is 64 KiB.
        let mut r = Box::new(QRing::new());
        let blocks = [
            Quarantined {
                addr: 0xffff_a123_4560,
                len: 48,
            },
            Quarantined {
                addr: (1 << 48) - 16,
                len: 1 << 16,
            },
            Quarantined {
                addr: 0x8000_0000_0010,
                len: 1 << 17,
            },
        ];
        for b in blocks {
            r.push(b);
        }
        for b in blocks {
            assert_eq!(r.pop(), Some(b));
        }
    }
}
