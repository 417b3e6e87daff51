//! Threads: which heap the calling thread uses, process start-up, thread exit, fork.
//!
//! The thread-local slot holds a pointer to the thread's heap. It starts as
//! `EMPTY_HEAP` (a const initialiser, so reading it costs no lazy-init check and
//! registers no destructor), and the first allocation's slow path swaps in a real
//! heap: an abandoned one if any, the one that waited longest (whole heaps are reused,
//! caches and all), else a new record from the metadata pages.
//!
//! Thread exit is learnt from a `pthread` key destructor, not from a Rust TLS
//! destructor: glibc registers the latter with `__cxa_thread_atexit_impl`, which may call
//! `calloc`, and we are `calloc`. On exit the heap is collected and abandoned. A thread
//! that allocates again after that (another key's destructor, say) uses the shared
//! *orphan* heap under a lock, so nothing stays tied to a thread that is gone.
//!
//! fork(): the handlers take every allocator lock before the fork and release them in
//! both processes after it; in the child, the heaps of the threads that did not survive
//! the fork are left alone (they may have been copied mid-update; see `fork_child`).
#![allow(unsafe_code)]

use crate::atomic_stack;
use crate::heap::{self, Heap, Tails, EMPTY_HEAP};
use crate::lock::Mutex;
use crate::stats::{self, GLOBAL};
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, Ordering};

/// The calling thread's heap, or `EMPTY_HEAP` if it has none yet.
#[inline(always)]
pub fn heap() -> *mut Heap {
    slot::get() as *mut Heap
}

fn set_heap(h: *mut Heap) {
    slot::set(h as usize);
}

// The thread slot on x86-64 and aarch64 Linux: an initial-exec TLS word (one `mov %fs:`
// per read on x86-64, `mrs tpidr_el0` + a GOT load + the load on aarch64; see
// `oxalloc_sys::initial_exec_slot!`), that starts as the address of EMPTY_HEAP.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]
oxalloc_sys::initial_exec_slot!(mod slot = "oxalloc_thread_heap", init = crate::heap::EMPTY_HEAP);

// Whether this thread's exit hook ran (nonzero): it then allocates from the orphan heap.
#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]
oxalloc_sys::initial_exec_slot!(mod exited = "oxalloc_thread_exited");

/// The exited flag elsewhere: a plain `thread_local!`.
#[cfg(not(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
)))]
mod exited {
    use core::cell::Cell;
    thread_local! {
        static EXITED: Cell<usize> = const { Cell::new(0) };
    }
    pub fn get() -> usize {
        EXITED.with(|s| s.get())
    }
    pub fn set(v: usize) {
        EXITED.with(|s| s.set(v))
    }
}

/// The thread slot elsewhere: a plain `thread_local!`.
#[cfg(not(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
)))]
mod slot {
    use crate::heap::{Heap, EMPTY_HEAP};
    use core::cell::Cell;
    thread_local! {
        static SLOT: Cell<*const Heap> = const { Cell::new(&raw const EMPTY_HEAP) };
    }
    #[inline(always)]
    pub fn get() -> usize {
        SLOT.with(|s| s.get() as usize)
    }
    pub fn set(v: usize) {
        SLOT.with(|s| s.set(v as *const Heap))
    }
}

/// Heap records are carved from chunks of this size.
const META_CHUNK: usize = 256 * 1024;
const _: () = assert!(core::mem::align_of::<Heap>() <= 4096);

struct Registry {
    /// Ownerless heaps, linked through `next_abandoned`, in the order their threads
    /// exited: taken for reuse from the front (see `acquire_heap`), put back at the
    /// back after a periodic collection (so the next one collects another heap).
    abandoned: *mut Heap,
    /// The last heap of `abandoned` (null when it is empty).
    abandoned_tail: *mut Heap,
    chunk: *mut u8,
    chunk_left: usize,
    next_id: u64,
}

// SAFETY: the pointers are to heap records and metadata pages that only the lock
// holder changes.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    abandoned: ptr::null_mut(),
    abandoned_tail: ptr::null_mut(),
    chunk: ptr::null_mut(),
    chunk_left: 0,
    next_id: 0,
});
/// Every heap ever made, newest first; append-only, so reporters walk it without a lock.
static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());
/// A heap pointer that may move between threads (the orphan heap's owner is its lock).
struct HeapPtr(*mut Heap);
// SAFETY: the heap it names is used only by the holder of the enclosing lock.
unsafe impl Send for HeapPtr {}

/// The heap shared by threads that already exited.
static ORPHAN: Mutex<HeapPtr> = Mutex::new(HeapPtr(ptr::null_mut()));

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
static INIT: AtomicU8 = AtomicU8::new(UNINIT);
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// One-time process set-up: options, the thread-exit key, fork handlers, the live
/// statistics page. Nothing here allocates.
pub fn global_init() {
    if INIT.load(Ordering::Acquire) == READY {
        return;
    }
    crate::keep_exit_hook();
    if INIT
        .compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        while INIT.load(Ordering::Acquire) != READY {
            oxalloc_sys::yield_now();
        }
        return;
    }
    GLOBAL
        .start_ns
        .store(oxalloc_sys::now_ns(), Ordering::Relaxed);
    crate::options::init();
    if let Some(key) = oxalloc_sys::thread_key_create(thread_exit) {
        EXIT_KEY.store(key, Ordering::Relaxed);
    }
    stats::open_shared();
    INIT.store(READY, Ordering::Release);
    // After READY: glibc's pthread_atfork may allocate, and that allocation must find
    // the allocator ready rather than wait for itself.
    oxalloc_sys::atfork(fork_prepare, fork_parent, fork_child);
}

/// Gives the calling thread a heap. Returns null for a thread that already exited
/// (it must use the orphan heap) or when no memory is left for the record.
#[cold]
pub fn init_thread() -> *mut Heap {
    global_init();
    if exited::get() != 0 {
        return ptr::null_mut();
    }
    let h = acquire_heap();
    if h.is_null() {
        return h;
    }
    // SAFETY: the heap was just handed to this thread alone.
    unsafe { Heap::set_owner(h, oxalloc_sys::thread_id(), false) };
    set_heap(h);
    let key = EXIT_KEY.load(Ordering::Relaxed);
    if key != u32::MAX {
        // May allocate for keys past glibc's first 32; that allocation finds the heap
        // already installed.
        // SAFETY: the exit key's destructor expects this thread's heap.
        unsafe { oxalloc_sys::thread_key_set(key, h.cast()) };
    }
    h
}

impl Registry {
    /// Puts an ownerless heap at the back of the abandoned list.
    ///
    /// # Safety
    /// The caller owns `h` and gives it to the list.
    unsafe fn push_abandoned_back(&mut self, h: *mut Heap) {
        // SAFETY: caller's contract; the tail is a list heap, owned by the list, which
        // our lock guards.
        unsafe {
            (*h).next_abandoned = ptr::null_mut();
            if self.abandoned_tail.is_null() {
                self.abandoned = h;
            } else {
                (*self.abandoned_tail).next_abandoned = h;
            }
        }
        self.abandoned_tail = h;
    }

    /// Takes the first heap off the abandoned list (null if it is empty).
    fn pop_abandoned(&mut self) -> *mut Heap {
        let h = self.abandoned;
        if !h.is_null() {
            // SAFETY: list heaps are owned by the list, which our lock guards.
            self.abandoned = unsafe { (*h).next_abandoned };
            if self.abandoned.is_null() {
                self.abandoned_tail = ptr::null_mut();
            }
        }
        h
    }

    /// Takes the whole abandoned list.
    fn take_abandoned(&mut self) -> *mut Heap {
        self.abandoned_tail = ptr::null_mut();
        core::mem::replace(&mut self.abandoned, ptr::null_mut())
    }
}

/// An abandoned heap, or a new one: the one that has waited longest. Heaps used to be
/// taken in the opposite order, the one abandoned last first, for its memory's warmth
/// in cache. But then threads that start while others of their batch still run took
/// the heaps let go a moment before, again and again, while the heaps behind them
/// waited, holding the spans of the blocks their threads left, with free blocks beside
/// them that nobody used: `thread-churn/t8` peaked at 27 MiB (C version, 3 runs: 26-27
/// MiB, 64-72K faults) and at 16-18 MiB (41-43K faults) with heaps taken in turn; the
/// same rounds on threads that exit together, or on threads started once, peak at 17-18
/// either way. Warmth did not show: `larson/t8`, whose threads hand over to new ones all
/// the time, ran 0.170 s last-first and 0.166 s in turn (medians of 21 alternating runs).
fn acquire_heap() -> *mut Heap {
    let mut reg = REGISTRY.lock();
    let h = reg.pop_abandoned();
    if !h.is_null() {
        stats::sub(&GLOBAL.heaps_abandoned, 1);
        return h;
    }
    new_heap(&mut reg)
}

fn new_heap(reg: &mut Registry) -> *mut Heap {
    // A multiple of the record's alignment (its kept lists are span records, 256-byte
    // aligned), and chunks are page-aligned: every record carved is aligned.
    let size = core::mem::size_of::<Heap>();
    if reg.chunk_left < size {
        let Some(chunk) = oxalloc_sys::map(META_CHUNK) else {
            return ptr::null_mut();
        };
        reg.chunk = chunk.as_ptr();
        reg.chunk_left = META_CHUNK;
        stats::add(&GLOBAL.mapped_bytes, META_CHUNK);
    }
    let h = reg.chunk.cast::<Heap>();
    // SAFETY: the chunk has `size` fresh zeroed bytes left at `chunk`, aligned for a
    // heap (see `size`).
    unsafe {
        reg.chunk = reg.chunk.add(size);
        reg.chunk_left -= size;
        Heap::init(h, reg.next_id);
    }
    reg.next_id += 1;
    // Publish on the append-only list.
    atomic_stack::push(&ALL_HEAPS, h, |top| {
        // SAFETY: the heap is not yet published; we own it.
        unsafe { (*h).next_all = top }
    });
    stats::add(&GLOBAL.heaps, 1);
    h
}

/// Visits every heap ever made (for statistics).
pub fn for_each_heap(mut f: impl FnMut(*mut Heap)) {
    let mut h = atomic_stack::top(&ALL_HEAPS);
    while !h.is_null() {
        f(h);
        // SAFETY: heaps are never freed and `next_all` is set before publication.
        h = unsafe { (*h).next_all };
    }
}

/// Collects a heap (drain, release empty spans) and puts it on the abandoned list.
///
/// # Safety
/// The caller owns `h` exclusively and will not use it again.
unsafe fn abandon(h: *mut Heap) {
    // SAFETY: caller's contract.
    unsafe {
        heap::collect(h, Tails::Idle);
        Heap::set_owner(h, 0, true);
    }
    // SAFETY: we own `h`; it becomes the list's.
    unsafe { REGISTRY.lock().push_abandoned_back(h) };
    stats::add(&GLOBAL.heaps_abandoned, 1);
}

/// The pthread key destructor: the thread is exiting.
unsafe extern "C" fn thread_exit(arg: *mut c_void) {
    let h = arg.cast::<Heap>();
    if h.is_null() || heap::is_empty_heap(h) {
        return;
    }
    set_heap((&raw const EMPTY_HEAP).cast_mut());
    exited::set(1);
    // SAFETY: the heap was this thread's, and the thread slot no longer names it.
    unsafe { abandon(h) };
}

/// Runs `f` with the orphan heap (for threads that already exited), under its lock.
pub fn with_orphan_heap(f: impl FnOnce(*mut Heap) -> *mut u8) -> *mut u8 {
    let mut orphan = ORPHAN.lock();
    if orphan.0.is_null() {
        let h = new_heap(&mut REGISTRY.lock());
        if h.is_null() {
            return ptr::null_mut();
        }
        orphan.0 = h;
    }
    let h = orphan.0;
    // SAFETY: holding the lock makes the orphan heap ours; remote frees to it are
    // drained by its slow path like any heap's.
    unsafe { heap::drain_remote(h) };
    f(h)
}

/// Collects one abandoned heap, if any: frees what other threads handed back to it,
/// returns its empty spans to the central pool and purges its idle spans' tails.
pub fn collect_one_abandoned() {
    let h = REGISTRY.lock().pop_abandoned();
    if h.is_null() {
        return;
    }
    // SAFETY: popped from the list, so no one else can reach it.
    unsafe { heap::collect(h, Tails::Idle) };
    // At the back: the next collection takes another heap (at the front it would take
    // this one again, and the others would keep what was freed into them).
    // SAFETY: we own it until it is back on the list.
    unsafe { REGISTRY.lock().push_abandoned_back(h) };
}

/// Collects every abandoned heap and the orphan heap, and purges their spans' tails
/// (for `malloc_trim`).
pub fn collect_all_abandoned() {
    // The whole list is taken and each heap put back once collected: popping and
    // pushing the head (`collect_one_abandoned`) n times collects one heap n times.
    let mut h = REGISTRY.lock().take_abandoned();
    while !h.is_null() {
        // SAFETY: the detached list is ours alone; `next` is read before `h` goes
        // back on the shared list.
        let next = unsafe { (*h).next_abandoned };
        // SAFETY: as above.
        unsafe { heap::collect(h, Tails::All) };
        // SAFETY: we own `h` until it is back on the list (in its place in the order).
        unsafe { REGISTRY.lock().push_abandoned_back(h) };
        h = next;
    }
    let orphan = ORPHAN.lock();
    if !orphan.0.is_null() {
        // SAFETY: the lock makes the orphan heap ours.
        unsafe { heap::collect(orphan.0, Tails::All) };
    }
}

// Lock order everywhere: ORPHAN, then REGISTRY, then CENTRAL, then HUGE.
extern "C" fn fork_prepare() {
    ORPHAN.lock_for_fork();
    REGISTRY.lock_for_fork();
    crate::central::CENTRAL.lock_for_fork();
    crate::huge::HUGE.lock_for_fork();
}

extern "C" fn fork_parent() {
    crate::huge::HUGE.unlock_after_fork();
    crate::central::CENTRAL.unlock_after_fork();
    REGISTRY.unlock_after_fork();
    ORPHAN.unlock_after_fork();
}

extern "C" fn fork_child() {
    crate::purger::after_fork_child();
    crate::huge::HUGE.force_unlock();
    crate::central::CENTRAL.force_unlock();
    REGISTRY.force_unlock();
    ORPHAN.force_unlock();
    // Only the forking thread survives. The other threads' heaps are copies taken at
    // whatever instruction each thread was at: a block on a free list whose `used` was
    // not yet counted down, a `live_sum` ahead of `used`, a list half linked. Their
    // spans would then look emptied while a block is out (a false "double free"
    // report: 2 children of 3000 forks of four allocating threads, before), or worse.
    // So they are marked ownerless and never adopted: their spans stay theirs, blocks
    // freed into them wait on the remote lists (taken by `foreign` reuse or never),
    // and the memory is the child's to leak, as the peers' per-thread caches are. The
    // abandoned list, the orphan heap and the shared pools were consistent: the
    // handlers held their locks across the fork.
    let me = heap();
    let orphan = ORPHAN.lock().0;
    for_each_heap(|h| {
        // SAFETY: heaps are never freed; in the child no other thread runs.
        let (_, _, abandoned) = unsafe { Heap::identity(h) };
        if h != me && h != orphan && !abandoned {
            // SAFETY: its owner thread does not exist in the child; the heap goes on
            // no list, so no thread takes it.
            unsafe { Heap::set_owner(h, 0, true) };
        }
    });
    if !heap::is_empty_heap(me) {
        // SAFETY: our own heap.
        unsafe { Heap::set_owner(me, oxalloc_sys::thread_id(), false) };
    }
}
