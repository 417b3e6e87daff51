//! The hardened heap: per-thread caches in front of the shared size classes (each
//! behind its own lock, a [`Shard`]), the large blocks behind another lock, and the
//! operations the C and C++ layers call (`alloc`, `free`, `realloc`, `usable_size`)
//! with their checks.
//!
//! **Slot states.** Every small slot has a state byte (out of line, an atomic):
//! [`LIVE`] (handed out, not freed), [`USED`] (handed out at least once) and
//! [`QUARANTINED`] (freed, zeroed, waiting). Every check of a pointer reads it without a
//! lock, and a free *claims* the block with one atomic swap, so of two frees of the
//! same block exactly one finds it live, whichever threads they run on; a slot that sits
//! free in some thread's magazine is not live either, so freeing it is caught
//! (`never handed out`, or `double free` if it was handed out before).
//!
//! **Per-thread front end** ([`crate::thread`]). Per size class, a thread keeps a
//! magazine of free slots taken from the shared slabs in batches under the class lock,
//! and a batch of blocks it freed; when the batch is full, it enters the class's shared
//! FIFO quarantine under one lock acquisition, and the blocks that this pushes out are
//! checked (still all zero, else `write after free`) outside the lock and refill the
//! magazine. So a `malloc` takes no lock unless its magazine is empty, and a `free`
//! none until its batch is full. The shared pool's slab bitmaps (`taken`) change only
//! under the class lock; no code path holds two shard locks at once (only the fork
//! handlers, which take them all in a fixed order).
//!
//! Every pointer handed to a freeing function is validated before anything changes
//! (apart from the claim): it must be the start of a live slot of an opened slab
//! (small region, decoded from the address alone) or the user address of a live large
//! block (hash table). Then the canary is checked, the block zeroed and quarantined.
//! Any failure is reported through [`report::fatal`], which never returns.
//!
//! Stacks for leak reports are captured before any lock is taken: the unwinder may take
//! the loader lock, and a thread inside `dlopen` may be waiting for ours.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::backtrace::{self, Stack};
use crate::canary;
use crate::large::{self, Entry};
use crate::lock::Lock;
use crate::meta::{set_bit, ClassMeta};
use crate::mitigations::{self as mt, OPTIONS, STACK_DEPTH};
use crate::quarantine::Ring;
use crate::region::{self, geometry_cached as geo, Geometry, NUM_CLASSES, REGION_BYTES};
use crate::report::{self, Kind, Msg};
use crate::thread::{self, ClassCache, MAG_MAX, Q_MAX};
use crate::wipe;
use oxalloc_sys::PAGE_SIZE;

/// Requests above this fail with ENOMEM at once (as in glibc: `PTRDIFF_MAX`).
pub const MAX_REQUEST: usize = isize::MAX as usize - 2 * PAGE_SIZE;

/// The function a pointer was given to, for reports and for what a bad pointer means.
#[derive(Clone, Copy)]
pub struct Op {
    /// The C or C++ name.
    pub name: &'static str,
    /// Whether the function frees (a freed block is then a double free).
    pub frees: bool,
}

/// `free`.
pub const FREE: Op = Op {
    name: "free",
    frees: true,
};
/// `realloc`.
pub const REALLOC: Op = Op {
    name: "realloc",
    frees: true,
};
/// `malloc_usable_size`.
pub const USABLE_SIZE: Op = Op {
    name: "malloc_usable_size",
    frees: false,
};
/// `free_sized`.
pub const FREE_SIZED: Op = Op {
    name: "free_sized",
    frees: true,
};
/// `free_aligned_sized`.
pub const FREE_ALIGNED_SIZED: Op = Op {
    name: "free_aligned_sized",
    frees: true,
};
/// C++ `operator delete` (all variants).
pub const DELETE: Op = Op {
    name: "operator delete",
    frees: true,
};
/// Rust's `GlobalAlloc::dealloc`.
pub const DEALLOC: Op = Op {
    name: "GlobalAlloc::dealloc",
    frees: true,
};
/// `ox_hardened_check` / `malloc_trim`.
pub const CHECK: Op = Op {
    name: "ox_hardened_check",
    frees: false,
};
/// A thread's exit, when its cache is handed back.
pub const THREAD_EXIT: Op = Op {
    name: "thread exit",
    frees: false,
};

/// What a sized free claims about the block.
#[derive(Clone, Copy, Default)]
pub struct Expect {
    /// The size the block was allocated with.
    pub size: Option<usize>,
    /// The alignment it was allocated with.
    pub align: Option<usize>,
}

/// State bit: the slot is handed out and not freed.
pub const LIVE: u8 = 1;
/// State bit: the slot was handed out at least once.
pub const USED: u8 = 2;
/// State bit: the slot was freed and waits in a quarantine (a thread's batch or its
/// class's ring).
pub const QUARANTINED: u8 = 4;
/// A slot id is `slab << SLOT_BITS | slot` (slots per slab are at most 2^11, slabs per
/// class below 2^21, so ids fit in a `u32`).
pub const SLOT_BITS: u32 = 11;

#[inline]
fn slot_id(slab: usize, slot: usize) -> u32 {
    (slab << SLOT_BITS | slot) as u32
}

#[inline]
fn split_id(id: u32) -> (usize, usize) {
    (
        (id >> SLOT_BITS) as usize,
        (id & ((1 << SLOT_BITS) - 1)) as usize,
    )
}

/// A lock and the state it guards, alone on its cache line(s) so that two shards
/// used by two threads never share a line.
#[repr(align(128))]
pub struct Shard<T> {
    /// The lock.
    pub lock: Lock,
    val: UnsafeCell<T>,
}

// SAFETY: `val` is only reached through `with`, which holds `lock` for the whole
// access, so no two threads ever touch it at once.
unsafe impl<T: Send> Sync for Shard<T> {}

impl<T> Shard<T> {
    const fn new(v: T) -> Shard<T> {
        Shard {
            lock: Lock::new(),
            val: UnsafeCell::new(v),
        }
    }

    /// Runs `f` on the state under the lock.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.lock();
        // SAFETY: the lock is held until after `f` returns, so this is the only
        // reference (a report inside `f` releases the lock and never returns).
        let r = f(unsafe { &mut *self.val.get() });
        self.lock.unlock();
        r
    }
}

/// One size class's shared state: its slabs' pool bitmaps, quarantine and counters.
pub struct Class {
    idx: usize,
    slabs: usize,
    partial: u32,
    meta: ClassMeta,
    quarantine: Ring,
    rng: u64,
    mapped_bytes: usize,
}

impl Class {
    const fn new() -> Class {
        Class {
            idx: 0,
            slabs: 0,
            partial: 0,
            meta: ClassMeta::empty(),
            quarantine: Ring::empty(),
            rng: 0,
            mapped_bytes: 0,
        }
    }
}

/// What every thread may read about a class without its lock: the number of opened
/// slabs (published after their metadata is committed), the per-slot arrays, and the
/// front end's capacities. Set once at initialisation, except `slabs`.
pub struct ClassInfo {
    slabs: AtomicUsize,
    states: AtomicUsize,
    sizes: AtomicUsize,
    stacks: AtomicUsize,
    mag_cap: AtomicU32,
    q_batch: AtomicU32,
}

static INFO: [ClassInfo; NUM_CLASSES] = [const {
    ClassInfo {
        slabs: AtomicUsize::new(0),
        states: AtomicUsize::new(0),
        sizes: AtomicUsize::new(0),
        stacks: AtomicUsize::new(0),
        mag_cap: AtomicU32::new(0),
        q_batch: AtomicU32::new(0),
    }
}; NUM_CLASSES];

/// The out-of-line metadata of one slot.
struct SlotMeta {
    state: &'static AtomicU8,
    size: &'static AtomicU32,
    /// Class and index of the slot, to find its stack (leak mode) only when wanted.
    c: usize,
    idx: usize,
}

impl SlotMeta {
    /// The slot's stack record (leak mode only).
    #[inline]
    fn stack_slot(&self) -> Option<&'static [AtomicUsize; STACK_DEPTH]> {
        let stacks = INFO[self.c].stacks.load(Ordering::Relaxed);
        if stacks == 0 {
            return None;
        }
        // SAFETY: the stack array, when there is one, is committed for every opened
        // slab like the others (`idx` was checked against the opened slabs), never
        // unmapped, and made of atomics.
        Some(unsafe { &*(stacks as *const [AtomicUsize; STACK_DEPTH]).add(self.idx) })
    }

    fn stack(&self) -> Option<Stack> {
        self.stack_slot()
            .map(|s| core::array::from_fn(|i| s[i].load(Ordering::Relaxed)))
    }
}

/// The metadata of slot `slot` of slab `slab` of class `c`, or `None` when the slab is
/// not open or the slot is past the slab's last (a bad index never touches memory
/// outside the arrays).
#[inline]
fn checked_meta(c: usize, slab: usize, slot: usize) -> Option<SlotMeta> {
    let info = &INFO[c];
    let slots = geo(c).slots;
    if slab >= info.slabs.load(Ordering::Acquire) || slot >= slots {
        return None;
    }
    let idx = slab * slots + slot;
    let (states, sizes) = (
        info.states.load(Ordering::Relaxed),
        info.sizes.load(Ordering::Relaxed),
    );
    // SAFETY: the arrays are committed for every opened slab before the slab count is
    // published (checked above), are zero-initialised (valid atomics) and never
    // unmapped; the element types are atomics, so sharing them is sound.
    unsafe {
        Some(SlotMeta {
            state: &*(states as *const AtomicU8).add(idx),
            size: &*(sizes as *const AtomicU32).add(idx),
            c,
            idx,
        })
    }
}

/// The metadata of slot `slot` of slab `slab` of class `c`; the slab must be open
/// (checked: a bad index aborts rather than touch memory outside the arrays).
#[inline]
fn slot_meta(c: usize, slab: usize, slot: usize) -> SlotMeta {
    checked_meta(c, slab, slot).expect("slot of an opened slab")
}

/// The large blocks: the address table, their quarantine and counters.
pub struct Large {
    table: large::Table,
    quarantine: Ring,
    live_bytes: usize,
    live_blocks: usize,
    mapped_bytes: usize,
}

/// The size classes, each behind its own lock.
pub static CLASSES: [Shard<Class>; NUM_CLASSES] = [const { Shard::new(Class::new()) }; NUM_CLASSES];

/// The large blocks, behind their lock.
pub static LARGE: Shard<Large> = Shard::new(Large {
    table: large::Table::empty(),
    quarantine: Ring::empty(),
    live_bytes: 0,
    live_blocks: 0,
    mapped_bytes: 0,
});

/// Live small bytes and blocks of threads without a cache (wrapping counters).
static DIRECT_BYTES: AtomicUsize = AtomicUsize::new(0);
static DIRECT_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// Serialises initialisation.
static INIT: Lock = Lock::new();
/// Start of the small-block reservation (set once, before `READY` becomes 1).
static SMALL_BASE: AtomicUsize = AtomicUsize::new(0);
/// 0: not initialised, 1: ready, 2: initialisation failed (every allocation fails).
static READY: AtomicU32 = AtomicU32::new(0);
static ATFORK_DONE: AtomicBool = AtomicBool::new(false);

/// Makes sure the allocator is set up; false if it could not be (out of address space).
#[inline]
pub fn ensure_init() -> bool {
    match READY.load(Ordering::Acquire) {
        1 => true,
        2 => false,
        _ => init_slow(),
    }
}

#[cold]
#[inline(never)]
fn init_slow() -> bool {
    INIT.lock();
    if READY.load(Ordering::Relaxed) == 0 {
        let ok = init_all();
        READY.store(if ok { 1 } else { 2 }, Ordering::Release);
    }
    let ok = READY.load(Ordering::Relaxed) == 1;
    INIT.unlock();
    // Outside the lock: pthread_atfork may allocate, which now simply works.
    if ok && !ATFORK_DONE.swap(true, Ordering::AcqRel) {
        oxalloc_sys::atfork(fork_prepare, fork_parent, fork_child);
    }
    ok
}

/// Quarantine length of class `c`: `OXALLOC_QUARANTINE` blocks, at most
/// `OXALLOC_QUARANTINE_BYTES` of slots (but never fewer than
/// [`mt::MIN_CLASS_QUARANTINE`]); none for the inaccessible `malloc(0)` class.
pub fn quarantine_len(c: usize, blocks: usize, bytes: usize) -> usize {
    if c == 0 || blocks == 0 {
        return 0;
    }
    (bytes / geo(c).stride)
        .max(mt::MIN_CLASS_QUARANTINE)
        .min(blocks)
}

/// Bytes of slots a thread's magazine of one class holds at most.
const MAG_BYTES: usize = 8 * 1024;
/// Bytes of slots a thread's quarantine batch of one class holds at most.
const Q_BYTES: usize = 4 * 1024;

/// (magazine capacity, quarantine batch) of class `c` whose ring holds `ring` blocks:
/// a batch of 0 sends freed blocks straight to the magazine (no quarantine).
pub fn front_caps(c: usize, ring: usize) -> (usize, usize) {
    let stride = geo(c).stride;
    let mag = (MAG_BYTES / stride).clamp(2, MAG_MAX);
    let q = if mt::QUARANTINE && ring > 0 {
        (Q_BYTES / stride).clamp(1, Q_MAX).min(ring)
    } else {
        0
    };
    (mag, q)
}

fn init_all() -> bool {
    crate::keep_exit_hook();
    OPTIONS.load();
    wipe::init();
    let secret = oxalloc_sys::random_u64();
    canary::init(secret);
    let Some(base) = oxalloc_sys::reserve(NUM_CLASSES * REGION_BYTES) else {
        return false;
    };
    SMALL_BASE.store(base.as_ptr() as usize, Ordering::Relaxed);
    let leaks = OPTIONS.leaks();
    let q_blocks = OPTIONS.quarantine.load(Ordering::Relaxed);
    let q_bytes = OPTIONS.quarantine_bytes.load(Ordering::Relaxed);
    for (c, shard) in CLASSES.iter().enumerate() {
        let ring = quarantine_len(c, q_blocks, q_bytes);
        let ok = shard.with(|cl| {
            let g = geo(c);
            cl.idx = c;
            cl.rng = (secret ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17) | 1;
            cl.meta.reserve(g.max_slabs, g.slots, leaks) && cl.quarantine.init(ring)
        });
        if !ok {
            return false;
        }
        let info = &INFO[c];
        let (states, sizes, stacks) = shard.with(|cl| cl.meta.bases());
        info.states.store(states, Ordering::Relaxed);
        info.sizes.store(sizes, Ordering::Relaxed);
        info.stacks.store(stacks, Ordering::Relaxed);
        let (mag, q) = front_caps(c, ring);
        info.mag_cap.store(mag as u32, Ordering::Relaxed);
        info.q_batch.store(q as u32, Ordering::Relaxed);
    }
    // Before READY: a thread that finds the heap ready finds the exit key too.
    thread::init_key();
    LARGE.with(|l| {
        l.quarantine
            .init(OPTIONS.large_quarantine.load(Ordering::Relaxed))
    })
}

// Lock order: the thread registry, INIT, the classes in order, the large blocks. No
// other path holds two of them.
extern "C" fn fork_prepare() {
    thread::REGISTRY.lock.lock();
    INIT.lock();
    for s in &CLASSES {
        s.lock.lock();
    }
    LARGE.lock.lock();
}
fn fork_release() {
    LARGE.lock.unlock();
    for s in CLASSES.iter().rev() {
        s.lock.unlock();
    }
    INIT.unlock();
    thread::REGISTRY.lock.unlock();
}
extern "C" fn fork_parent() {
    fork_release();
}
extern "C" fn fork_child() {
    // The child has only the forking thread, which took the locks in `fork_prepare`.
    // Its own cache is consistent (it was inside fork, not malloc). The caches of the
    // threads that did not survive may have been caught mid-update, so they are left
    // alone: their slots stay out of the pool (at most a magazine and a batch per
    // class and thread), and nothing in them is live.
    fork_release();
}

/// A view of `len` bytes at `addr`.
///
/// # Safety
/// The range is mapped read-write by this allocator (an opened slab or a large block's
/// data pages) and not aliased by a live Rust reference.
unsafe fn bytes<'a>(addr: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: caller's contract.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) }
}

/// The offset of the first non-zero byte of a range of our memory, if any. The common
/// case (all zero) is one branch-free OR over the range, which the compiler vectorises.
#[inline]
fn first_nonzero(b: &[u8]) -> Option<usize> {
    let (head, words, tail) = if (b.as_ptr() as usize | b.len()).is_multiple_of(8) {
        // SAFETY: the range is 8-byte aligned and a whole number of words long (tested
        // just above); every bit pattern is a valid `u64`.
        let w = unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<u64>(), b.len() / 8) };
        (&[][..], w, &[][..])
    } else {
        // SAFETY: `u64` has no invalid bit patterns; `align_to` keeps the split exact.
        unsafe { b.align_to::<u64>() }
    };
    let acc = words.iter().fold(0u64, |a, &x| a | x)
        | head.iter().chain(tail).fold(0u8, |a, &x| a | x) as u64;
    if acc == 0 {
        return None;
    }
    b.iter().position(|&x| x != 0)
}

/// Asks the CPU to start loading the first cache lines of `[addr, addr + len)`; never
/// faults, changes nothing.
#[inline]
fn prefetch(addr: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for k in 0..len.min(512).div_ceil(64) {
        // SAFETY: a prefetch is a hint: it reads nothing into the program and cannot
        // fault, whatever the address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                addr.wrapping_add(64 * k) as *const i8,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (addr, len);
}

/// A block found by validation.
#[derive(Clone, Copy)]
pub enum Block {
    /// A slot in the small region.
    Small {
        /// Class index.
        class: usize,
        /// Slab index.
        slab: usize,
        /// Slot index.
        slot: usize,
        /// User address.
        addr: usize,
        /// Requested size.
        size: usize,
    },
    /// A large block: its table index and a copy of its entry.
    Large {
        /// Table index.
        idx: usize,
        /// The entry.
        e: Entry,
    },
}

impl Block {
    /// Requested size.
    pub fn size(&self) -> usize {
        match *self {
            Block::Small { size, .. } => size,
            Block::Large { e, .. } => e.size,
        }
    }
    /// The block's capacity as the class (or page-rounded mapping) gives it.
    pub fn class_size(&self) -> usize {
        match *self {
            Block::Small { class, .. } => geo(class).size,
            Block::Large { e, .. } => e.total - 2 * PAGE_SIZE,
        }
    }
    fn align(&self) -> usize {
        match *self {
            Block::Small { .. } => 16,
            Block::Large { e, .. } => e.align,
        }
    }
}

/// The small class whose region holds `p`, if any.
#[inline]
fn small_class(base: usize, p: usize) -> Option<usize> {
    let off = p.wrapping_sub(base);
    (off < NUM_CLASSES * REGION_BYTES).then_some(off / REGION_BYTES)
}

/// Reports: releases `held` (the lock the caller holds, if any) first.
fn die(held: Option<&Lock>, m: Msg, marker: usize, allocated: Option<&Stack>) -> ! {
    match held {
        Some(l) => report::fatal(l, m, marker, allocated),
        None => report::fatal_unlocked(m, marker, allocated),
    }
}

#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn overflow(
    held: Option<&Lock>,
    p: usize,
    size: usize,
    class_size: usize,
    off: usize,
    op: Op,
    marker: usize,
    stack: &Stack,
) -> ! {
    let mut m = report::headline(Kind::HeapOverflow, p);
    report::block(&mut m, size, class_size);
    report::within(&mut m, op.name);
    m.str(": the canary after the block was overwritten at offset ")
        .num(off as u64)
        .str(" (")
        .num((off - size + 1) as u64)
        .str(" bytes past its end)");
    die(held, m, marker, has_stack(stack))
}

/// Checks what a sized or aligned free claims against the block.
#[inline(always)]
fn check_expect(held: Option<&Lock>, b: &Block, p: usize, x: Expect, op: Op, marker: usize) {
    if !mt::CHECK_SIZED_FREE {
        return;
    }
    if let Some(size) = x.size {
        if size != b.size() {
            let kind = Kind::SizeMismatch;
            let sizes = (b.size(), b.class_size());
            mismatch(held, sizes, p, op, marker, kind, "size", size, b.size());
        }
    }
    if let Some(align) = x.align {
        if !align.is_power_of_two() || align.max(16) != b.align() {
            let kind = Kind::AlignmentMismatch;
            let sizes = (b.size(), b.class_size());
            mismatch(
                held,
                sizes,
                p,
                op,
                marker,
                kind,
                "alignment",
                align,
                b.align(),
            );
        }
    }
}

/// Reports a sized/aligned free whose claim (`what` = `claimed`) is not the block's.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn mismatch(
    held: Option<&Lock>,
    (size, class_size): (usize, usize),
    p: usize,
    op: Op,
    marker: usize,
    kind: Kind,
    what: &str,
    claimed: usize,
    actual: usize,
) -> ! {
    let mut m = report::headline(kind, p);
    report::block(&mut m, size, class_size);
    report::within(&mut m, op.name);
    m.str(": freed with ")
        .str(what)
        .str(" ")
        .num(claimed as u64)
        .str(", allocated with ")
        .str(what)
        .str(" ")
        .num(actual as u64);
    die(held, m, marker, None)
}

impl Class {
    fn held(&self) -> &'static Lock {
        &CLASSES[self.idx].lock
    }

    #[inline]
    fn random(&mut self) -> u64 {
        crate::mitigations::xorshift64_star(&mut self.rng)
    }

    // ---------------------------------------------------------------- the pool

    fn open_slab(&mut self, base: usize, g: &Geometry) -> bool {
        let c = self.idx;
        let k = self.slabs;
        if k >= g.max_slabs || !self.meta.ensure_slab(k) {
            return false;
        }
        if c != 0 {
            let start = region::slab_addr(base, c, k);
            // SAFETY: the slab lies in our small-region reservation and was never
            // opened; its guard page (after `slab_bytes`) stays closed.
            if !unsafe { oxalloc_sys::protect(start as *mut u8, g.slab_bytes, true) } {
                return false;
            }
            self.mapped_bytes += g.slab_bytes;
        }
        self.slabs = k + 1;
        // The slab's metadata is committed: other threads may now look at its slots.
        INFO[c].slabs.store(k + 1, Ordering::Release);
        let head = self.partial;
        let m = self.meta.slab(k);
        m.open(g.slots);
        m.free_slots = g.slots as u32;
        m.on_partial = true;
        m.next_partial = head;
        self.partial = (k + 1) as u32;
        true
    }

    /// Takes up to `out.len()` free slots out of the pool, each picked at random within
    /// its slab; returns how many (fewer only when out of memory).
    fn take(&mut self, base: usize, out: &mut [u32]) -> usize {
        let g = geo(self.idx);
        let mut got = 0;
        while got < out.len() {
            if self.partial == 0 && !self.open_slab(base, g) {
                break;
            }
            let r = if mt::RANDOM_SLOTS { self.random() } else { 0 };
            let k = self.partial as usize - 1;
            let m = self.meta.slab(k);
            let Some(i) = m.pick_free(g.slots, g.window, r) else {
                // The free count said otherwise: our own metadata is inconsistent.
                let mut msg = report::headline(Kind::InvalidPointer, 0);
                msg.str(": internal error, slab metadata inconsistent");
                report::fatal(self.held(), msg, 0, None);
            };
            set_bit(&mut m.taken, i, true);
            m.free_slots -= 1;
            if m.free_slots == 0 {
                self.partial = m.next_partial;
                m.next_partial = 0;
                m.on_partial = false;
            }
            out[got] = slot_id(k, i);
            got += 1;
        }
        got
    }

    /// Gives a free (not live, not quarantined, all zero) slot back to the pool.
    fn put(&mut self, id: u32) {
        let (slab, slot) = split_id(id);
        let head = self.partial;
        let m = self.meta.slab(slab);
        set_bit(&mut m.taken, slot, false);
        m.mark_free(slot);
        m.free_slots += 1;
        if !m.on_partial {
            m.on_partial = true;
            m.next_partial = head;
            self.partial = (slab + 1) as u32;
        }
    }

    /// Checks every block in this class's ring now.
    fn check_quarantine(&mut self, base: usize, marker: usize) {
        if !mt::ZERO_ON_FREE {
            return;
        }
        let g = geo(self.idx);
        for i in 0..self.quarantine.len() {
            let id = self.quarantine.get(i) as u32;
            let (slab, slot) = split_id(id);
            let addr = region::slot_addr(base, self.idx, slab, slot);
            // SAFETY: quarantined slots lie in opened slabs and are not live.
            let s = unsafe { bytes(addr, g.stride) };
            if let Some(off) = first_nonzero(s) {
                let held = Some(self.held());
                write_after_free(base, self.idx, id, off, ("by ", CHECK.name), held, marker);
            }
        }
    }
}

// -------------------------------------------------------------------- small blocks

/// Hands out slot `id` of class `c` (taken from the pool, all zero) for `n` bytes.
#[inline(always)]
fn finish_alloc(base: usize, c: usize, id: u32, n: usize, zero: bool, stack: &Stack) -> usize {
    let (slab, slot) = split_id(id);
    let sm = slot_meta(c, slab, slot);
    sm.size.store(n as u32, Ordering::Relaxed);
    if let Some(s) = sm.stack_slot() {
        for (w, &ip) in s.iter().zip(stack) {
            w.store(ip, Ordering::Relaxed);
        }
    }
    let addr = region::slot_addr(base, c, slab, slot);
    if c != 0 {
        // Every free slot is all zero (fresh from the kernel, or zeroed on free and
        // checked when it left the quarantine), so `calloc` needs nothing more.
        // SAFETY: the slot lies in an opened slab and is not live: this thread took it
        // from the pool or its own magazine, so no reference to it exists.
        let s = unsafe { bytes(addr, geo(c).stride) };
        if mt::CANARY {
            canary::write_fresh(addr, s, n);
        }
        if zero && !mt::ZERO_ON_FREE {
            s[..n].fill(0);
        }
        if !zero && OPTIONS.junk() {
            s[..n].fill(mt::JUNK_BYTE);
        }
    }
    // Release: whoever sees the slot live sees its size, stack and canary.
    sm.state.store(LIVE | USED, Ordering::Release);
    addr
}

/// Allocates a block of class `c` for `n` bytes; 0 when out of memory.
#[inline(always)]
fn alloc_small(base: usize, c: usize, n: usize, zero: bool, stack: &Stack) -> usize {
    let t = thread::current();
    if t.is_null() {
        return alloc_direct(base, c, n, zero, stack);
    }
    // SAFETY: the record belongs to the calling thread alone (its TLS word names it).
    let t = unsafe { &mut *t };
    let r = t.random();
    let cc = &mut t.classes[c];
    if cc.mag_len == 0 && !refill(base, c, cc) {
        return 0;
    }
    // A random entry of the magazine (no division: the high half of a product).
    let len = cc.mag_len as usize;
    let j = if mt::RANDOM_SLOTS {
        (((r >> 32) * len as u64) >> 32) as usize
    } else {
        len - 1
    };
    let id = cc.mag[j];
    cc.mag[j] = cc.mag[len - 1];
    cc.mag_len -= 1;
    t.count(n, 1);
    finish_alloc(base, c, id, n, zero, stack)
}

/// Fills half an empty magazine from the pool, under the class lock.
#[inline(never)]
fn refill(base: usize, c: usize, cc: &mut ClassCache) -> bool {
    let want = (INFO[c].mag_cap.load(Ordering::Relaxed) as usize / 2).max(1);
    let got = CLASSES[c].with(|cl| cl.take(base, &mut cc.mag[..want]));
    cc.mag_len = got as u32;
    got > 0
}

/// Without a thread cache: one slot straight from the pool.
#[cold]
fn alloc_direct(base: usize, c: usize, n: usize, zero: bool, stack: &Stack) -> usize {
    let mut id = [0u32];
    if CLASSES[c].with(|cl| cl.take(base, &mut id)) == 0 {
        return 0;
    }
    DIRECT_BYTES.fetch_add(n, Ordering::Relaxed);
    DIRECT_BLOCKS.fetch_add(1, Ordering::Relaxed);
    finish_alloc(base, c, id[0], n, zero, stack)
}

/// Finds the live block of class `c` that starts at `p`, or reports the misuse. With
/// `claim` (a free), the block is atomically marked freed at the same time, so no
/// other free can also find it live. The reports are out of line, so this inlines.
#[inline(always)]
fn validate_small(base: usize, c: usize, p: usize, op: Op, marker: usize, claim: bool) -> Block {
    let pl = region::place(base, p).expect("inside the small region");
    let g = geo(c);
    let sm = match checked_meta(c, pl.slab, pl.slot) {
        Some(sm) if pl.offset == 0 => sm,
        _ => bad_place(base, c, p, op, marker),
    };
    let old = if claim {
        sm.state.swap(USED | QUARANTINED, Ordering::AcqRel)
    } else {
        sm.state.load(Ordering::Acquire)
    };
    let size = sm.size.load(Ordering::Relaxed) as usize;
    if old & LIVE == 0 {
        // (A claim changed the state of a slot that was not live: the process ends
        // with this report, so it does not matter.)
        not_live(c, p, op, marker, &sm, old, size);
    }
    if mt::CANARY && c != 0 {
        // SAFETY: the slot is live in an opened slab; we only read its tail.
        let slot = unsafe { bytes(p, g.stride) };
        if let Some(off) = canary::check(p, slot, size) {
            let st = sm.stack().unwrap_or([0; STACK_DEPTH]);
            overflow(None, p, size, g.size, off, op, marker, &st);
        }
    }
    Block::Small {
        class: c,
        slab: pl.slab,
        slot: pl.slot,
        addr: p,
        size,
    }
}

fn invalid_kind(op: Op) -> Kind {
    if op.frees {
        Kind::InvalidFree
    } else {
        Kind::InvalidPointer
    }
}

/// Reports `p` in class `c`'s region that is not the start of a slot of an opened
/// slab (guard page, unopened slab, past the last slot, interior or unaligned).
#[cold]
#[inline(never)]
fn bad_place(base: usize, c: usize, p: usize, op: Op, marker: usize) -> ! {
    let pl = region::place(base, p).expect("inside the small region");
    let g = geo(c);
    let invalid = invalid_kind(op);
    let Some(sm) = checked_meta(c, pl.slab, pl.slot) else {
        let mut m = report::headline(invalid, p);
        report::within(&mut m, op.name);
        m.str(": never handed out by malloc (");
        if pl.in_span >= g.slab_bytes {
            m.str("a guard page");
        } else if pl.slab >= INFO[c].slabs.load(Ordering::Acquire) {
            m.str("a slab not yet in use");
        } else {
            m.str("past the last slot of its slab");
        }
        m.str(" of size class ").num(g.size as u64).str(")");
        report::fatal_unlocked(m, marker, None);
    };
    let start = p - pl.offset;
    let live = sm.state.load(Ordering::Acquire) & LIVE != 0;
    let size = sm.size.load(Ordering::Relaxed) as usize;
    let mut m = report::headline(invalid, p);
    report::within(&mut m, op.name);
    if !p.is_multiple_of(16) {
        m.str(": unaligned pointer, ");
    } else {
        m.str(": interior pointer, ");
    }
    m.num(pl.offset as u64).str(" bytes into the ");
    m.str(if live { "live" } else { "free" });
    m.str(" block at ").hex(start as u64);
    report::block(&mut m, if live { size } else { 0 }, g.size);
    let stack = sm.stack().filter(|_| live);
    report::fatal_unlocked(m, marker, stack.as_ref());
}

/// Reports a pointer to a slot that is not live (state `old`): a double free (or use
/// after free) if it was handed out before, else a slot never handed out.
#[cold]
#[inline(never)]
fn not_live(c: usize, p: usize, op: Op, marker: usize, sm: &SlotMeta, old: u8, size: usize) -> ! {
    let g = geo(c);
    let mut m;
    let used = old & USED != 0;
    if used {
        let kind = if op.frees {
            Kind::DoubleFree
        } else {
            Kind::UseAfterFree
        };
        m = report::headline(kind, p);
        report::block(&mut m, size, g.size);
        report::within(&mut m, op.name);
        m.str(": the block was already freed");
    } else {
        m = report::headline(invalid_kind(op), p);
        report::within(&mut m, op.name);
        m.str(": a slot never handed out by malloc (size class ")
            .num(g.size as u64)
            .str(")");
    }
    let stack = sm.stack().filter(|_| used);
    report::fatal_unlocked(m, marker, stack.as_ref());
}

/// Reports a write after free into the quarantined slot `id` of class `c`.
fn write_after_free(
    base: usize,
    c: usize,
    id: u32,
    off: usize,
    how: (&str, &str),
    held: Option<&Lock>,
    marker: usize,
) -> ! {
    let (slab, slot) = split_id(id);
    let g = geo(c);
    let addr = region::slot_addr(base, c, slab, slot);
    // SAFETY: quarantined slots lie in opened slabs and are not live.
    let byte = unsafe { bytes(addr, g.stride) }[off];
    let sm = slot_meta(c, slab, slot);
    let size = sm.size.load(Ordering::Relaxed) as usize;
    let mut m = report::headline(Kind::WriteAfterFree, addr);
    report::block(&mut m, size, g.size);
    m.str(": byte ")
        .num(off as u64)
        .str(" of the freed block is ")
        .hex(byte as u64)
        .str(", not 0 (found ")
        .str(how.0)
        .str(how.1)
        .str("())");
    die(held, m, marker, sm.stack().as_ref())
}

/// [`leave_quarantine`] found a non-zero byte in block `id` of class `c`: report it.
#[cold]
#[inline(never)]
fn written_after_free(
    base: usize,
    c: usize,
    id: u32,
    held: Option<&Lock>,
    op: Op,
    marker: usize,
) -> ! {
    let (slab, slot) = split_id(id);
    let addr = region::slot_addr(base, c, slab, slot);
    // SAFETY: quarantined slots lie in opened slabs and are not live.
    let s = unsafe { bytes(addr, geo(c).stride) };
    let off = first_nonzero(s).unwrap_or(0);
    let how = ("when it left the quarantine, in ", op.name);
    write_after_free(base, c, id, off, how, held, marker)
}

/// Block `id` of class `c` leaves the quarantine: it must still be all zero. It is
/// then free (no longer quarantined), owned by the caller.
#[inline(always)]
fn leave_quarantine(base: usize, c: usize, id: u32, held: Option<&Lock>, op: Op, marker: usize) {
    let (slab, slot) = split_id(id);
    let addr = region::slot_addr(base, c, slab, slot);
    leave_quarantine_at(base, c, id, addr, held, op, marker);
}

/// [`leave_quarantine`] with the slot's address already known.
#[inline(always)]
fn leave_quarantine_at(
    base: usize,
    c: usize,
    id: u32,
    addr: usize,
    held: Option<&Lock>,
    op: Op,
    marker: usize,
) {
    let (slab, slot) = split_id(id);
    if c != 0 && mt::ZERO_ON_FREE {
        // SAFETY: quarantined slots lie in opened slabs and are not live.
        let s = unsafe { bytes(addr, geo(c).stride) };
        if !wipe::is_zero(s) {
            written_after_free(base, c, id, held, op, marker);
        }
    }
    slot_meta(c, slab, slot)
        .state
        .store(USED, Ordering::Relaxed);
}

/// Frees a validated (claimed) small block: zero, then the thread's quarantine batch.
#[inline(always)]
fn release_small(base: usize, b: Block, op: Op, marker: usize) {
    let Block::Small {
        class: c,
        slab,
        slot,
        addr,
        size,
    } = b
    else {
        unreachable!("small blocks only");
    };
    if c != 0 && mt::ZERO_ON_FREE {
        // SAFETY: the slot lies in an opened slab; the program gave it back and we
        // claimed it, so nothing else refers to it.
        wipe::zero(unsafe { bytes(addr, geo(c).stride) });
    }
    let id = slot_id(slab, slot);
    let t = thread::current();
    if t.is_null() {
        return release_direct(base, c, id, size, op, marker);
    }
    // SAFETY: the record belongs to the calling thread alone.
    let t = unsafe { &mut *t };
    t.count(size.wrapping_neg(), usize::MAX);
    let qb = INFO[c].q_batch.load(Ordering::Relaxed) as usize;
    let cc = &mut t.classes[c];
    if qb == 0 {
        leave_quarantine(base, c, id, None, op, marker);
        to_mag(c, cc, &[id]);
        return;
    }
    cc.q[cc.q_len as usize] = id;
    cc.q_len += 1;
    if cc.q_len as usize >= qb {
        flush(base, c, cc, op, marker);
    }
}

/// Moves a thread's quarantine batch of class `c` into the class's ring (one lock);
/// the blocks it pushes out are checked outside the lock and go to the magazine.
#[inline(never)]
fn flush(base: usize, c: usize, cc: &mut ClassCache, op: Op, marker: usize) {
    let n = cc.q_len as usize;
    let mut out = [0u32; Q_MAX];
    let evicted = CLASSES[c].with(|cl| cl.quarantine.push_many(&cc.q[..n], &mut out));
    cc.q_len = 0;
    let out = &out[..evicted];
    let stride = geo(c).stride;
    let mut addrs = [0usize; Q_MAX];
    for (a, &id) in addrs.iter_mut().zip(out) {
        let (slab, slot) = split_id(id);
        *a = region::slot_addr(base, c, slab, slot);
        prefetch(*a, stride);
    }
    for (&a, &id) in addrs.iter().zip(out) {
        leave_quarantine_at(base, c, id, a, None, op, marker);
    }
    to_mag(c, cc, out);
}

/// Puts free slots into the magazine; what does not fit goes back to the pool.
#[inline]
fn to_mag(c: usize, cc: &mut ClassCache, ids: &[u32]) {
    let cap = INFO[c].mag_cap.load(Ordering::Relaxed) as usize;
    let room = cap.saturating_sub(cc.mag_len as usize).min(ids.len());
    let len = cc.mag_len as usize;
    cc.mag[len..len + room].copy_from_slice(&ids[..room]);
    cc.mag_len += room as u32;
    if room < ids.len() {
        give_back(c, &ids[room..]);
    }
}

/// Returns free slots to the pool, under the class lock.
#[inline(never)]
fn give_back(c: usize, ids: &[u32]) {
    CLASSES[c].with(|cl| {
        for &id in ids {
            cl.put(id);
        }
    });
}

/// Without a thread cache: straight into the ring, under the lock.
#[cold]
fn release_direct(base: usize, c: usize, id: u32, size: usize, op: Op, marker: usize) {
    DIRECT_BYTES.fetch_sub(size, Ordering::Relaxed);
    DIRECT_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    CLASSES[c].with(|cl| {
        let out = if mt::QUARANTINE {
            cl.quarantine.push(id as usize)
        } else {
            Some(id as usize)
        };
        if let Some(old) = out {
            leave_quarantine(base, c, old as u32, Some(cl.held()), op, marker);
            cl.put(old as u32);
        }
    });
}

/// Hands a thread's cache back (thread exit): its quarantine batches enter the rings,
/// its magazines go back to the pool.
pub fn drain_cache(t: &mut thread::Cache) {
    let base = SMALL_BASE.load(Ordering::Relaxed);
    let marker = crate::stack_marker!();
    for (c, cc) in t.classes.iter_mut().enumerate() {
        if cc.q_len != 0 {
            flush(base, c, cc, THREAD_EXIT, marker);
        }
        if cc.mag_len != 0 {
            give_back(c, &cc.mag[..cc.mag_len as usize]);
            cc.mag_len = 0;
        }
    }
}

/// Resizes in place when the new size stays in this class.
fn resize_in_place(b: &Block, n: usize) -> bool {
    let Block::Small {
        class,
        slab,
        slot,
        addr,
        size,
    } = *b
    else {
        return false;
    };
    if class == 0 || n == 0 || n > region::MAX_SMALL_REQUEST || region::class_of(n) != class {
        return false;
    }
    let g = geo(class);
    slot_meta(class, slab, slot)
        .size
        .store(n as u32, Ordering::Relaxed);
    // SAFETY: the live slot lies in an opened slab; the program handed it to us.
    let s = unsafe { bytes(addr, g.stride) };
    if n > size && OPTIONS.junk() {
        s[size..n].fill(mt::JUNK_BYTE);
    } else if n > size {
        s[size..n].fill(0);
    }
    if mt::CANARY {
        canary::write(addr, s, n);
    }
    let t = thread::current();
    if t.is_null() {
        DIRECT_BYTES.fetch_add(n.wrapping_sub(size), Ordering::Relaxed);
    } else {
        // SAFETY: the record belongs to the calling thread alone.
        unsafe { &*t }.count(n.wrapping_sub(size), 0);
    }
    true
}

/// Calls `f(size, stack)` for every live small block of class `c`.
fn for_each_live_small(c: usize, f: &mut impl FnMut(usize, &Stack)) {
    let none = [0; STACK_DEPTH];
    let g = geo(c);
    for k in 0..INFO[c].slabs.load(Ordering::Acquire) {
        for i in 0..g.slots {
            let sm = slot_meta(c, k, i);
            if sm.state.load(Ordering::Acquire) & LIVE != 0 {
                let size = sm.size.load(Ordering::Relaxed) as usize;
                f(size, &sm.stack().unwrap_or(none));
            }
        }
    }
}

impl Large {
    fn alloc(&mut self, n: usize, align: usize, zero: bool, stack: &Stack) -> usize {
        let Some((data, total)) = large::layout(n, align) else {
            return 0;
        };
        let Some(base) = oxalloc_sys::reserve(total) else {
            return 0;
        };
        let base = base.as_ptr() as usize;
        let data_start = base + PAGE_SIZE;
        // SAFETY: the data pages lie in the mapping just made; the guards stay closed.
        if !unsafe { oxalloc_sys::protect(data_start as *mut u8, data, true) } {
            // SAFETY: our fresh mapping, holding nothing.
            unsafe { oxalloc_sys::unmap(base as *mut u8, total) };
            return 0;
        }
        let end = data_start + data;
        let ptr = (end - n) & !(align - 1);
        let e = Entry {
            ptr,
            base,
            total,
            size: n,
            align,
            freed: false,
            stack: *stack,
        };
        if !self.table.insert(e) {
            // SAFETY: as above.
            unsafe { oxalloc_sys::unmap(base as *mut u8, total) };
            return 0;
        }
        // SAFETY: `[ptr, end)` lies in the data pages just opened; nothing refers to it.
        let block = unsafe { bytes(ptr, end - ptr) };
        if mt::CANARY {
            canary::write(ptr, block, n);
        }
        if !zero && OPTIONS.junk() {
            block[..n].fill(mt::JUNK_BYTE);
        }
        self.live_bytes += n;
        self.live_blocks += 1;
        self.mapped_bytes += total;
        ptr
    }

    /// Finds the live large block that starts at `p`, or reports the misuse (including
    /// pointers that are neither small nor large blocks).
    fn validate(&mut self, p: usize, op: Op, marker: usize) -> Block {
        let held = &LARGE.lock;
        if let Some(idx) = self.table.find(p) {
            let e = *self.table.at(idx).expect("found entries are occupied");
            if e.freed {
                let kind = if op.frees {
                    Kind::DoubleFree
                } else {
                    Kind::UseAfterFree
                };
                let mut m = report::headline(kind, p);
                report::block(&mut m, e.size, e.total - 2 * PAGE_SIZE);
                report::within(&mut m, op.name);
                m.str(": the large block was already freed");
                report::fatal(held, m, marker, Some(&e.stack));
            }
            let end = e.base + e.total - PAGE_SIZE;
            if mt::CANARY {
                // SAFETY: the block and the slack after it lie in its open data pages;
                // only the slack is read.
                let block = unsafe { bytes(p, end - p) };
                if let Some(off) = canary::check(p, block, e.size) {
                    overflow(
                        Some(held),
                        p,
                        e.size,
                        e.total - 2 * PAGE_SIZE,
                        off,
                        op,
                        marker,
                        &e.stack,
                    );
                }
            }
            return Block::Large { idx, e };
        }
        let kind = if op.frees {
            Kind::InvalidFree
        } else {
            Kind::InvalidPointer
        };
        let mut m = report::headline(kind, p);
        report::within(&mut m, op.name);
        if let Some(e) = self.table.containing(p) {
            if p >= e.ptr && p < e.ptr + e.size {
                m.str(": interior pointer, ")
                    .num((p - e.ptr) as u64)
                    .str(" bytes into the large block at ")
                    .hex(e.ptr as u64);
            } else {
                m.str(": points into the slack or guard pages of the large block at ")
                    .hex(e.ptr as u64);
            }
            report::block(&mut m, e.size, e.total - 2 * PAGE_SIZE);
            if e.freed {
                m.str(", already freed");
            }
            report::fatal(held, m, marker, Some(&e.stack));
        }
        m.str(": not a block returned by malloc");
        if !p.is_multiple_of(16) {
            m.str(" (unaligned pointer)");
        } else if marker != 0 && p >= marker && p - marker < (8 << 20) {
            m.str(" (looks like a stack address)");
        }
        report::fatal(held, m, marker, None)
    }

    fn release(&mut self, b: Block) {
        let Block::Large { idx, e } = b else {
            unreachable!("large blocks only");
        };
        self.live_blocks -= 1;
        self.live_bytes -= e.size;
        // SAFETY: the mapping is the block's own; the program gave it back.
        unsafe {
            oxalloc_sys::protect(e.base as *mut u8, e.total, false);
            oxalloc_sys::discard(e.base as *mut u8, e.total);
        }
        self.mapped_bytes -= e.total;
        if !mt::LARGE_QUARANTINE {
            self.unmap(idx);
            return;
        }
        self.table.at(idx).expect("validated").freed = true;
        if let Some(old) = self.quarantine.push(e.ptr) {
            if let Some(i) = self.table.find(old) {
                self.unmap(i);
            }
        }
    }

    fn unmap(&mut self, idx: usize) {
        let e = *self.table.at(idx).expect("occupied");
        // SAFETY: the whole mapping is the freed block's own; nothing lives in it.
        unsafe { oxalloc_sys::unmap(e.base as *mut u8, e.total) };
        self.table.remove(idx);
    }

    fn for_each_live(&mut self, f: &mut impl FnMut(usize, &Stack)) {
        for i in 0..self.table.capacity() {
            if let Some(e) = self.table.at(i) {
                if !e.freed {
                    let (size, st) = (e.size, e.stack);
                    f(size, &st);
                }
            }
        }
    }
}

fn has_stack(s: &Stack) -> Option<&Stack> {
    (s[0] != 0).then_some(s)
}

/// The allocation stack to record: captured only in leak mode.
#[inline]
pub fn alloc_stack(marker: usize) -> Stack {
    if OPTIONS.leaks() {
        backtrace::capture(marker)
    } else {
        [0; STACK_DEPTH]
    }
}

// -------------------------------------------------------------------- operations

/// Allocates `n` bytes aligned to `align` with the given stack (initialised already).
#[inline(always)]
fn alloc_in(n: usize, align: usize, zero: bool, stack: &Stack) -> usize {
    if align <= 16 && n <= region::MAX_SMALL_REQUEST {
        let base = SMALL_BASE.load(Ordering::Relaxed);
        alloc_small(base, region::class_of(n), n, zero, stack)
    } else {
        alloc_large(n, align, zero, stack)
    }
}

/// A large block (or an aligned one), under the large lock.
#[inline(never)]
fn alloc_large(n: usize, align: usize, zero: bool, stack: &Stack) -> usize {
    LARGE.with(|l| l.alloc(n.max(1), align.max(16), zero, stack))
}

/// Allocates; 0 on failure (the caller sets errno). Inlined into each export.
#[inline(always)]
pub fn alloc(n: usize, align: usize, zero: bool, marker: usize) -> usize {
    if n > MAX_REQUEST || !align.is_power_of_two() || !ensure_init() {
        return 0;
    }
    if OPTIONS.leaks() {
        return alloc_traced(n, align, zero, marker);
    }
    // No stack is recorded for small blocks outside leak mode (there is no stack
    // array), and a large block's entry gets zeroes.
    alloc_in(n, align, zero, &NO_STACK)
}

/// The empty stack of blocks allocated outside leak mode.
static NO_STACK: Stack = [0; STACK_DEPTH];

/// [`alloc`] in leak mode: with the caller's stack.
#[inline(never)]
fn alloc_traced(n: usize, align: usize, zero: bool, marker: usize) -> usize {
    let stack = backtrace::capture(marker);
    alloc_in(n, align, zero, &stack)
}

/// Before any block exists, every pointer given to a free-family function is invalid.
#[inline(always)]
fn ensure_init_for(p: usize, op: Op, marker: usize) {
    if !ensure_init() {
        not_init(p, op, marker);
    }
}

/// [`ensure_init_for`]'s report.
#[cold]
#[inline(never)]
fn not_init(p: usize, op: Op, marker: usize) -> ! {
    let mut m = report::headline(invalid_kind(op), p);
    report::within(&mut m, op.name);
    m.str(": the allocator has handed out nothing");
    report::fatal_unlocked(m, marker, None);
}

/// Validates `p` without freeing it and returns what `f_small` (no lock held) or
/// `f_large` (the large lock held) makes of it.
#[inline]
fn with_block<R>(
    p: usize,
    op: Op,
    marker: usize,
    f_small: impl FnOnce(Block) -> R,
    f_large: impl FnOnce(&mut Large, Block) -> R,
) -> R {
    let base = SMALL_BASE.load(Ordering::Relaxed);
    match small_class(base, p) {
        Some(c) => f_small(validate_small(base, c, p, op, marker, false)),
        None => LARGE.with(|l| {
            let b = l.validate(p, op, marker);
            f_large(l, b)
        }),
    }
}

/// Frees `p` (null is fine), checking what `x` claims. Inlined into each export, so
/// the checks of `x` that do not apply (plain `free`) disappear.
#[inline(always)]
pub fn free(p: usize, op: Op, x: Expect, marker: usize) {
    if p == 0 {
        return;
    }
    ensure_init_for(p, op, marker);
    let base = SMALL_BASE.load(Ordering::Relaxed);
    match small_class(base, p) {
        Some(c) => {
            // The canary (the slot's tail) is about to be read, after the metadata:
            // start loading its line now so the waits overlap.
            let stride = geo(c).stride;
            if stride > 64 {
                prefetch(p.wrapping_add(stride - 16 - 64) & !63, 128);
            }
            let b = validate_small(base, c, p, op, marker, true);
            check_expect(None, &b, p, x, op, marker);
            release_small(base, b, op, marker);
        }
        None => free_large(p, op, x, marker),
    }
}

/// [`free`] of anything outside the small region: a large block, or a bad pointer.
#[inline(never)]
fn free_large(p: usize, op: Op, x: Expect, marker: usize) {
    LARGE.with(|l| {
        let b = l.validate(p, op, marker);
        check_expect(Some(&LARGE.lock), &b, p, x, op, marker);
        l.release(b);
    })
}

/// `realloc` semantics (glibc): null `p` allocates, size 0 frees and returns null, a
/// failure returns 0 and leaves the block alone.
pub fn realloc(p: usize, n: usize, marker: usize) -> usize {
    if p == 0 {
        return alloc(n, 16, false, marker);
    }
    if n == 0 {
        free(p, REALLOC, Expect::default(), marker);
        return 0;
    }
    ensure_init_for(p, REALLOC, marker);
    if n > MAX_REQUEST {
        // Still validate the pointer: a bad one is a bug even when the size is absurd.
        with_block(p, REALLOC, marker, |_| (), |_, _| ());
        return 0;
    }
    // In place when the class stays the same; else the old size, to copy. The block
    // is validated (canary included) here and again when it is freed below; no lock
    // is held while the new block is allocated, so no two locks are ever held at once.
    let resized = with_block(
        p,
        REALLOC,
        marker,
        |b| (!resize_in_place(&b, n)).then_some(b.size()),
        |_, b| Some(b.size()),
    );
    let Some(old_size) = resized else {
        return p;
    };
    let stack = alloc_stack(marker);
    let q = alloc_in(n, 16, false, &stack);
    if q == 0 {
        return 0;
    }
    // SAFETY: both blocks are live, distinct and at least this many bytes long.
    unsafe { core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old_size.min(n)) };
    free(p, REALLOC, Expect::default(), marker);
    q
}

/// `malloc_usable_size`: the requested size (any more would read the canary).
pub fn usable_size(p: usize, marker: usize) -> usize {
    if p == 0 {
        return 0;
    }
    if !ensure_init() {
        return 0;
    }
    with_block(p, USABLE_SIZE, marker, |b| b.size(), |_, b| b.size())
}

/// Validates every quarantine now; returns the number of blocks checked. The calling
/// thread's batches enter the rings first (their blocks are checked with them); other
/// threads' batches (at most [`Q_MAX`] blocks per class) are checked when they fill
/// up or when their thread exits.
pub fn check_now(marker: usize) -> usize {
    if !ensure_init() {
        return 0;
    }
    let base = SMALL_BASE.load(Ordering::Relaxed);
    let t = thread::current();
    if !t.is_null() {
        // SAFETY: the record belongs to the calling thread alone.
        let t = unsafe { &mut *t };
        for (c, cc) in t.classes.iter_mut().enumerate() {
            if cc.q_len != 0 {
                flush(base, c, cc, CHECK, marker);
            }
        }
    }
    CLASSES
        .iter()
        .map(|s| {
            s.with(|cl| {
                cl.check_quarantine(base, marker);
                cl.quarantine.len()
            })
        })
        .sum()
}

/// Totals: (live bytes, live blocks, mapped bytes). Without a lock for the small
/// blocks' counters, so blocks allocated or freed meanwhile may or may not count.
pub fn totals() -> (usize, usize, usize) {
    let (lb, ln, lm) = LARGE.with(|l| (l.live_bytes, l.live_blocks, l.mapped_bytes));
    let mut bytes = lb.wrapping_add(DIRECT_BYTES.load(Ordering::Relaxed));
    let mut blocks = ln.wrapping_add(DIRECT_BLOCKS.load(Ordering::Relaxed));
    thread::for_each(|t| {
        bytes = bytes.wrapping_add(t.live_bytes.load(Ordering::Relaxed));
        blocks = blocks.wrapping_add(t.live_blocks.load(Ordering::Relaxed));
    });
    let mut mapped = lm;
    for s in &CLASSES {
        mapped += s.with(|cl| cl.mapped_bytes);
    }
    // A racing reader may see a free counted before its allocation: never negative.
    let fix = |v: usize| if v > isize::MAX as usize { 0 } else { v };
    (fix(bytes), fix(blocks), mapped)
}

/// Calls `f(size, stack)` for every live block (leak reports): small blocks from their
/// state bytes (no lock), large ones under the large lock; `f` must not allocate.
pub fn for_each_live(mut f: impl FnMut(usize, &Stack)) {
    for c in 0..NUM_CLASSES {
        for_each_live_small(c, &mut f);
    }
    LARGE.with(|l| l.for_each_live(&mut f));
}

#[cfg(test)]
mod tests {
    use super::{first_nonzero, front_caps, quarantine_len, slot_id, split_id};

    #[test]
    fn finds_first_nonzero_byte() {
        let mut b = [0u8; 100];
        assert_eq!(first_nonzero(&b[3..]), None);
        b[57] = 1;
        assert_eq!(first_nonzero(&b[3..]), Some(54));
        b[4] = 9;
        assert_eq!(first_nonzero(&b[3..]), Some(1));
        let mut w = [0u64; 64];
        // SAFETY: viewing a `[u64; 64]` as 512 bytes.
        let t = unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), 512) };
        assert_eq!(first_nonzero(t), None);
        t[511] = 0x80;
        assert_eq!(first_nonzero(t), Some(511));
    }

    #[test]
    fn quarantine_is_bounded_per_class() {
        let g = |c| crate::region::geometry_cached(c).stride;
        assert_eq!(quarantine_len(0, 4096, 64 << 10), 0, "malloc(0) class");
        assert_eq!(quarantine_len(3, 0, 64 << 10), 0, "disabled");
        assert_eq!(quarantine_len(1, 4096, 64 << 10), (64 << 10) / g(1));
        assert_eq!(quarantine_len(1, 100, 64 << 10), 100, "block cap");
        let last = crate::region::NUM_CLASSES - 1;
        assert_eq!(
            quarantine_len(last, 4096, 64 << 10),
            crate::mitigations::MIN_CLASS_QUARANTINE
        );
    }

    #[test]
    fn slot_ids_round_trip_and_front_caps_are_bounded() {
        for (slab, slot) in [(0, 0), (1, 2047), (233_000, 5), ((1 << 21) - 1, 2047)] {
            assert_eq!(split_id(slot_id(slab, slot)), (slab, slot));
        }
        for c in 0..crate::region::NUM_CLASSES {
            let g = crate::region::geometry_cached(c);
            assert!(g.max_slabs < 1 << 21 && g.slots <= 1 << 11);
            let (mag, q) = front_caps(c, 1000);
            assert!((2..=super::MAG_MAX).contains(&mag));
            assert!(q <= super::Q_MAX);
            assert_eq!(front_caps(c, 0).1, 0, "no quarantine, no batch");
        }
        assert_eq!(front_caps(1, 10).1, 10, "batch within the ring");
    }
}
