//! The hardened heap: the operations the C and C++ layers call (`alloc`, `free`,
//! `realloc`, `usable_size`) with their checks, over three kinds of blocks:
//!
//! * **small** (up to 64 KiB - 16, alignment up to 16): blocks of the core allocator
//!   (its size classes, per-thread heaps and fast paths), with [`small`]'s canary and
//!   size word after the user's bytes and a state byte per block in the out-of-line
//!   [`shadow`]; freed blocks are zeroed and wait in the freeing thread's quarantine
//!   ring ([`thread`]) before they go back to the core;
//! * **large** (and over-aligned): mappings of their own with guard pages, in a table
//!   behind [`LARGE`]'s lock;
//! * **zero-size**: slots of a reservation that is never accessible ([`zero_size`]).
//!
//! Every pointer handed to a freeing function is validated before anything changes:
//! a small block must be 16-byte aligned and its state byte `LIVE`, which the free
//! *claims* (compare-and-swap to `QUARANTINED`), so of two frees of a block, on any
//! threads, exactly one succeeds; anything else goes to a cold report path that finds
//! out what the pointer is (interior, never handed out, freed, not ours). Then the
//! canary is checked, the block zeroed and quarantined. Every report goes through
//! [`report::fatal`], which never returns.
//!
//! Stacks for leak reports (`OXALLOC_LEAKS=1`) are captured before any lock is taken
//! (the unwinder may take the loader lock); small blocks' stacks live in a table
//! behind [`SITES`]'s lock, used only in leak mode.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::backtrace::{self, Stack};
use crate::canary;
use crate::large::{self, Entry};
use crate::lock::Lock;
use crate::mitigations::{self as mt, OPTIONS, STACK_DEPTH};
use crate::quarantine::Ring;
use crate::report::{self, Kind, Msg};
use crate::shadow::{self, LIVE, LIVE_NEW, LIVE_NEW_ARRAY};
use crate::small::{self, bytes, Place};
use crate::thread::{self, QRing, Quarantined};
use crate::wipe;
use crate::zero_size::{self, Slot};
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
    /// The live state (`crate::shadow`) of the blocks this function takes: the
    /// allocation family it belongs to; 0 for functions that take any block.
    pub live: u8,
}

/// `free`.
pub const FREE: Op = Op {
    name: "free",
    frees: true,
    live: LIVE,
};
/// `realloc`.
pub const REALLOC: Op = Op {
    name: "realloc",
    frees: true,
    live: LIVE,
};
/// `malloc_usable_size`.
pub const USABLE_SIZE: Op = Op {
    name: "malloc_usable_size",
    frees: false,
    live: 0,
};
/// `free_sized`.
pub const FREE_SIZED: Op = Op {
    name: "free_sized",
    frees: true,
    live: LIVE,
};
/// `free_aligned_sized`.
pub const FREE_ALIGNED_SIZED: Op = Op {
    name: "free_aligned_sized",
    frees: true,
    live: LIVE,
};
/// C++ `operator delete` (all variants).
pub const DELETE: Op = Op {
    name: "operator delete",
    frees: true,
    live: LIVE_NEW,
};
/// C++ `operator delete[]` (all variants).
pub const DELETE_ARRAY: Op = Op {
    name: "operator delete[]",
    frees: true,
    live: LIVE_NEW_ARRAY,
};
/// Rust's `GlobalAlloc::dealloc`.
pub const DEALLOC: Op = Op {
    name: "GlobalAlloc::dealloc",
    frees: true,
    live: LIVE,
};
/// `ox_hardened_check` / `malloc_trim`.
pub const CHECK: Op = Op {
    name: "ox_hardened_check",
    frees: false,
    live: 0,
};
/// A thread's exit, when its cache is handed back.
pub const THREAD_EXIT: Op = Op {
    name: "thread exit",
    frees: false,
    live: 0,
};

/// What a sized free claims about the block.
#[derive(Clone, Copy, Default)]
pub struct Expect {
    /// The size the block was allocated with.
    pub size: Option<usize>,
    /// The alignment it was allocated with.
    pub align: Option<usize>,
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

/// The large blocks: the address table, their quarantine and counters.
pub struct Large {
    table: large::Table,
    quarantine: Ring,
    spares: large::Spares,
    /// Data bytes of freed blocks (quarantined or spare) whose pages were kept.
    resident_bytes: usize,
    /// Recent peak of `live_bytes`: what kept pages are held to.
    peak: large::RecentPeak,
    live_bytes: usize,
    live_blocks: usize,
    mapped_bytes: usize,
}

/// The large blocks, behind their lock.
pub static LARGE: Shard<Large> = Shard::new(Large {
    table: large::Table::empty(),
    quarantine: Ring::empty(),
    spares: large::Spares::empty(),
    resident_bytes: 0,
    peak: large::RecentPeak::new(),
    live_bytes: 0,
    live_blocks: 0,
    mapped_bytes: 0,
});

/// The quarantine of threads that have no record (their exit hook ran, or no record
/// could be mapped), and their counters.
pub struct Orphans {
    ring: QRing,
    live_bytes: usize,
    live_blocks: usize,
}

/// Quarantine and counters of threads without a record, behind their lock.
pub static ORPHANS: Shard<Orphans> = Shard::new(Orphans {
    ring: QRing::new(),
    live_bytes: 0,
    live_blocks: 0,
});

/// Leak mode: the allocation stack of every live small and zero-size block, by address.
pub static SITES: Shard<large::Table> = Shard::new(large::Table::empty());

/// Serialises initialisation.
static INIT: Lock = Lock::new();
/// 0: not initialised, 1: ready, 2: initialisation failed (every allocation fails).
static READY: AtomicU32 = AtomicU32::new(0);
static ATFORK_DONE: AtomicBool = AtomicBool::new(false);

/// Whether the kernel's pages are the 4 KiB this build lays out its guard pages, shadow
/// map and large blocks in. On a 16 or 64 KiB-page kernel (some arm64 systems) the guard
/// pages could not be made: said once on stderr, and every allocation then fails.
fn page_size_supported() -> bool {
    #[cfg(target_os = "linux")]
    {
        let page = oxalloc_sys::kernel_page_size();
        if page != PAGE_SIZE {
            let mut m = crate::fmt::Buf::<256>::new();
            m.str("oxalloc: the hardened build needs 4096-byte pages and this kernel's are ")
                .num(page as u64)
                .str(" bytes: every allocation fails (liboxalloc.so, the default build, works)\n");
            oxalloc_sys::write_stderr(m.as_bytes());
            return false;
        }
    }
    true
}

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
    INIT.unlock();
    if READY.load(Ordering::Acquire) == 1 && !ATFORK_DONE.swap(true, Ordering::AcqRel) {
        // Outside INIT: registering may allocate (glibc's atfork list), and that
        // allocation must find the heap ready.
        oxalloc_sys::atfork(fork_prepare, fork_parent, fork_child);
    }
    READY.load(Ordering::Acquire) == 1
}

fn init_all() -> bool {
    if !page_size_supported() {
        return false;
    }
    crate::keep_exit_hook();
    // Before the first block: every core segment gets guard slices, so a linear
    // overflow out of a small block faults within 1 MiB.
    oxalloc_core::set_guard_slices(true);
    OPTIONS.load();
    wipe::init();
    canary::init(oxalloc_sys::random_u64());
    if !shadow::init() || !zero_size::init() {
        return false;
    }
    // Before READY: a thread that finds the heap ready finds the exit key too.
    thread::init_key();
    LARGE.with(|l| {
        l.quarantine
            .init(OPTIONS.large_quarantine.load(Ordering::Relaxed))
    })
}

// Lock order: the thread registry, INIT, the orphans, the sites, the zero-size
// slots, the large blocks. No other path holds two of them. (The core allocator
// has fork handlers of its own.)
extern "C" fn fork_prepare() {
    thread::REGISTRY.lock.lock();
    INIT.lock();
    ORPHANS.lock.lock();
    SITES.lock.lock();
    zero_size::LOCK.lock();
    LARGE.lock.lock();
}
fn fork_release() {
    LARGE.lock.unlock();
    zero_size::LOCK.unlock();
    SITES.lock.unlock();
    ORPHANS.lock.unlock();
    INIT.unlock();
    thread::REGISTRY.lock.unlock();
}
extern "C" fn fork_parent() {
    fork_release();
}
extern "C" fn fork_child() {
    // The child has only the forking thread, which took the locks in `fork_prepare`.
    // The records of the threads that did not survive may have been caught
    // mid-update, so they are left alone: their quarantined blocks stay out of use.
    fork_release();
}

/// The offset of the first non-zero byte of a range of our memory, if any. The common
/// case (all zero) is one branch-free OR over the range, which the compiler vectorises.
#[inline]
pub fn first_nonzero(b: &[u8]) -> Option<usize> {
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

/// A block found by validation.
#[derive(Clone, Copy)]
pub enum Block {
    /// A small block (on the core allocator).
    Small {
        /// User address.
        addr: usize,
        /// Requested size.
        size: usize,
        /// Block length (class size + 16 spare bytes).
        len: usize,
        /// The alignment it was allocated with (16 unless asked for more).
        align: usize,
    },
    /// A zero-size block.
    Zero,
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
            Block::Zero => 0,
            Block::Large { e, .. } => e.size,
        }
    }
    /// The block's capacity as the class (or page-rounded mapping) gives it.
    pub fn class_size(&self) -> usize {
        match *self {
            Block::Small { len, .. } => small::class_of_len(len),
            Block::Zero => 0,
            Block::Large { e, .. } => large::data_len(e.total),
        }
    }
    fn align(&self) -> usize {
        match *self {
            Block::Small { align, .. } => align,
            Block::Zero => 16,
            Block::Large { e, .. } => e.align,
        }
    }
}

/// Reports: releases `held` (the lock the caller holds, if any) first.
fn die(held: Option<&Lock>, m: Msg, marker: usize, allocated: Option<&Stack>) -> ! {
    match held {
        Some(l) => report::fatal(l, m, marker, allocated),
        None => report::fatal_unlocked(m, marker, allocated),
    }
}

/// The allocation stack of the small or zero-size block at `p` (leak mode only).
fn site_of(p: usize) -> Option<Stack> {
    if !OPTIONS.leaks() {
        return None;
    }
    SITES.with(|t| t.find(p).and_then(|i| t.at(i).map(|e| e.stack)))
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

fn invalid_kind(op: Op) -> Kind {
    if op.frees {
        Kind::InvalidFree
    } else {
        Kind::InvalidPointer
    }
}

/// The core's free list handed out `p`, which is not a free block of it: a freed
/// block's link was overwritten (a write after free after the quarantine, or an
/// overflow into a free neighbour).
#[cold]
#[inline(never)]
pub fn corrupt_free_list(p: usize, what: &str, marker: usize) -> ! {
    let mut m = report::headline(Kind::WriteAfterFree, p);
    m.str(" in malloc(): the free list handed out a block that is ")
        .str(what)
        .str(" (a freed block's link was overwritten)");
    report::fatal_unlocked(m, marker, None)
}

/// Validates the small block at `p` (in a core segment); with `claim`, it is
/// `QUARANTINED` afterwards (the caller frees it).
#[inline(always)]
fn validate_small(p: usize, op: Op, marker: usize, claim: bool) -> Option<Block> {
    match small::check_live(p, claim, op.live) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(_) => bad_small(p, op, marker),
    }
    let len = small::len_of(p);
    let pat = small::pattern(p);
    let Some((size, align)) = small::recorded(p, len, pat) else {
        let off = len - 8;
        overflow(
            None,
            p,
            0,
            small::class_of_len(len),
            off,
            op,
            marker,
            &site(p),
        );
    };
    if mt::CANARY && !small::sealed(p, len, size, pat) {
        let off = small::first_change(p, len, size, pat);
        overflow(
            None,
            p,
            size,
            small::class_of_len(len),
            off,
            op,
            marker,
            &site(p),
        );
    }
    Some(Block::Small {
        addr: p,
        size,
        len,
        align,
    })
}

/// The leak-mode stack of `p`, or an empty one.
fn site(p: usize) -> Stack {
    site_of(p).unwrap_or([0; STACK_DEPTH])
}

/// Reports a pointer into a core segment that is not a live block's start.
#[cold]
#[inline(never)]
fn bad_small(p: usize, op: Op, marker: usize) -> ! {
    let Place { start, len, state } = small::place(p);
    let invalid = invalid_kind(op);
    if len == 0 {
        let mut m = report::headline(invalid, p);
        report::within(&mut m, op.name);
        m.str(": never handed out by malloc (not in a block of the heap)");
        report::fatal_unlocked(m, marker, None);
    }
    let class = small::class_of_len(len);
    if start == p && shadow::is_live(state) {
        // A live block of the other family (`free` of `new`, `delete` of `new[]`, ...).
        let size = small::recorded(p, len, small::pattern(p)).map_or(0, |(n, _)| n);
        kind_mismatch(
            None,
            p,
            (size, class),
            state,
            op,
            marker,
            site_of(p).as_ref(),
        );
    }
    if start != p {
        let live = shadow::is_live(state);
        let size = if live {
            small::recorded(start, len, small::pattern(start)).map_or(0, |(n, _)| n)
        } else {
            0
        };
        let mut m = report::headline(invalid, p);
        report::within(&mut m, op.name);
        if !p.is_multiple_of(16) {
            m.str(": unaligned pointer, ");
        } else {
            m.str(": interior pointer, ");
        }
        m.num((p - start) as u64).str(" bytes into the ");
        m.str(if live { "live" } else { "free" });
        m.str(" block at ").hex(start as u64);
        report::block(&mut m, size, class);
        let st = if live { site_of(start) } else { None };
        report::fatal_unlocked(m, marker, st.as_ref());
    }
    if state == shadow::QUARANTINED || state == shadow::FREED {
        let kind = if op.frees {
            Kind::DoubleFree
        } else {
            Kind::UseAfterFree
        };
        let mut m = report::headline(kind, p);
        // The size is gone (the block was zeroed); the class is what is known.
        report::block(&mut m, class, class);
        report::within(&mut m, op.name);
        m.str(": the block was already freed");
        report::fatal_unlocked(m, marker, None);
    }
    let mut m = report::headline(invalid, p);
    report::within(&mut m, op.name);
    m.str(": a slot never handed out by malloc (size class ")
        .num(class as u64)
        .str(")");
    report::fatal_unlocked(m, marker, None)
}

/// Reports a free by the wrong family: the block at `p` is live with state `live`,
/// which `op` does not take.
#[cold]
#[inline(never)]
fn kind_mismatch(
    held: Option<&Lock>,
    p: usize,
    (size, class_size): (usize, usize),
    live: u8,
    op: Op,
    marker: usize,
    allocated: Option<&Stack>,
) -> ! {
    let mut m = report::headline(Kind::KindMismatch, p);
    report::block(&mut m, size, class_size);
    report::within(&mut m, op.name);
    m.str(": the block was allocated by ")
        .str(shadow::allocator_name(live))
        .str(" (free it with ")
        .str(shadow::deallocator_name(live))
        .str(")");
    die(held, m, marker, allocated)
}

/// A block that left the quarantine was not all zero: report the write after free.
#[cold]
#[inline(never)]
fn written_after_free(q: Quarantined, off: usize, how: (&str, &str), marker: usize) -> ! {
    // SAFETY: the block is quarantined (ours); we read one byte.
    let byte = unsafe { bytes(q.addr, q.len) }[off];
    let class = small::class_of_len(q.len);
    let mut m = report::headline(Kind::WriteAfterFree, q.addr);
    report::block(&mut m, class, class);
    m.str(": byte ")
        .num(off as u64)
        .str(" of the freed block is ")
        .hex(byte as u64)
        .str(", not 0 (found ")
        .str(how.0)
        .str(how.1)
        .str("())");
    report::fatal_unlocked(m, marker, None)
}

/// A block leaves the quarantine: checked, then back to the core.
#[inline(always)]
fn leave(q: Quarantined, op: Op, marker: usize) {
    if let Err(off) = small::unquarantine(q.addr, q.len) {
        written_after_free(
            q,
            off,
            ("when it left the quarantine, in ", op.name),
            marker,
        );
    }
}

/// Pushes a freed block into `ring`; when the ring is over its block limit, or over its
/// byte limit by a quarter, lets the oldest blocks out until it is within both limits
/// again (the newest block always stays).
///
/// So a block waits at least as long as with a let-out on every `free` (it leaves only
/// once the blocks freed after it hold the limit's bytes), the ring holds at most a
/// quarter more, and blocks leave in batches: a `free` that lets out nothing is the
/// common case, predicted, where deciding on every `free` whether this block's size
/// pushed the ring over the limit mispredicted most of the time.
#[inline(always)]
fn quarantine(ring: &mut QRing, q: Quarantined, op: Op, marker: usize) {
    let max_blocks = OPTIONS.quarantine.load(Ordering::Relaxed);
    let max_bytes = OPTIONS.quarantine_bytes.load(Ordering::Relaxed);
    if max_blocks == 0 {
        return leave(q, op, marker);
    }
    ring.push(q);
    if ring.len() > max_blocks || ring.bytes > max_bytes + max_bytes / 4 {
        while ring.len() > max_blocks || (ring.bytes > max_bytes && ring.len() > 1) {
            let old = ring.pop().expect("not empty");
            leave(old, op, marker);
        }
    }
}

/// Frees a validated (claimed) small block: zero it, then the quarantine.
#[inline(always)]
fn release_small(addr: usize, size: usize, len: usize, op: Op, marker: usize) {
    if OPTIONS.leaks() {
        forget_site(addr);
    }
    if mt::ZERO_ON_FREE {
        // SAFETY: the block is claimed (QUARANTINED): nothing else refers to it.
        wipe::zero(unsafe { bytes(addr, len) });
    }
    let q = Quarantined { addr, len };
    let t = thread::current();
    if t.is_null() {
        return release_orphan(q, size, op, marker);
    }
    // SAFETY: the record belongs to the calling thread alone.
    let t = unsafe { &mut *t };
    t.count(size.wrapping_neg(), usize::MAX);
    quarantine(&mut t.ring, q, op, marker);
}

/// [`release_small`] for a thread without a record: the shared ring, under its lock.
/// Out of line, like the other rare paths, so they do not crowd the registers of
/// every `free` (15-20 instructions per pair of saves and restores otherwise).
#[cold]
#[inline(never)]
fn release_orphan(q: Quarantined, size: usize, op: Op, marker: usize) {
    ORPHANS.with(|o| {
        o.live_bytes = o.live_bytes.wrapping_sub(size);
        o.live_blocks = o.live_blocks.wrapping_sub(1);
        quarantine(&mut o.ring, q, op, marker)
    });
}

/// Leak mode: drops the stack of a freed small or zero-size block.
#[inline(never)]
fn forget_site(p: usize) {
    SITES.with(|t| {
        if let Some(i) = t.find(p) {
            t.remove(i);
        }
    });
}

/// Leak mode: records the stack of a new small or zero-size block.
#[inline(never)]
fn remember_site(p: usize, size: usize, stack: &Stack) {
    SITES.with(|t| {
        t.insert(Entry {
            ptr: p,
            base: p,
            total: 0,
            size,
            align: 16,
            freed: false,
            resident: false,
            live: LIVE,
            stack: *stack,
        })
    });
}

/// Sends every block of `ring` back to the core (each checked on the way).
fn drain(ring: &mut QRing, op: Op, marker: usize) {
    while let Some(q) = ring.pop() {
        leave(q, op, marker);
    }
}

/// A thread is exiting: its quarantined blocks go back to the core after their check.
pub fn drain_cache(t: &mut thread::Cache) {
    drain(&mut t.ring, THREAD_EXIT, crate::stack_marker!());
    small::return_stash(t);
}

/// Checks every block of `ring` (all zero) without letting it out.
fn check_ring(ring: &QRing, marker: usize) {
    for i in 0..ring.len() {
        let q = ring.get(i);
        // SAFETY: the block is quarantined: ours; we only read it.
        let b = unsafe { bytes(q.addr, q.len) };
        if !wipe::is_zero(b) {
            let off = first_nonzero(b).unwrap_or(0);
            written_after_free(q, off, ("by ", CHECK.name), marker);
        }
    }
}

/// Allocates a small block for `n` bytes.
#[inline(always)]
fn alloc_small(
    n: usize,
    align: usize,
    zero: bool,
    live: u8,
    stack: &Stack,
    marker: usize,
) -> usize {
    let t = thread::current();
    // SAFETY: a non-null record belongs to the calling thread alone.
    let mut rec = (!t.is_null()).then(|| unsafe { &mut *t });
    let Some((p, _)) = small::alloc(n, align, marker, rec.as_deref_mut(), live) else {
        return 0;
    };
    if zero || OPTIONS.junk() {
        fill_fresh(p, n, zero);
    }
    if stack[0] != 0 {
        remember_site(p, n, stack);
    }
    match rec {
        Some(r) => r.count(n, 1),
        None => count_orphan(n),
    }
    p
}

/// `calloc`'s zeroes or the junk pattern over a fresh block's `n` bytes.
#[inline(never)]
fn fill_fresh(p: usize, n: usize, zero: bool) {
    let fill = if zero { 0 } else { mt::JUNK_BYTE };
    // SAFETY: the block is ours and holds at least `n` bytes.
    let block = unsafe { bytes(p, n) };
    block.fill(fill);
}

/// Counts a block allocated by a thread without a record.
#[cold]
#[inline(never)]
fn count_orphan(n: usize) {
    ORPHANS.with(|o| {
        o.live_bytes = o.live_bytes.wrapping_add(n);
        o.live_blocks = o.live_blocks.wrapping_add(1);
    });
}

/// Resizes in place when the new size fits the block (and is not much smaller).
fn resize_in_place(b: &Block, n: usize) -> bool {
    let Block::Small {
        addr,
        size,
        len,
        align,
    } = *b
    else {
        return false;
    };
    if n == 0 || n > small::MAX_SMALL_REQUEST || small::block_len(n) != len {
        return false;
    }
    let fill = if OPTIONS.junk() { mt::JUNK_BYTE } else { 0 };
    // The block was validated just before (canary included), so only the moved bytes
    // change.
    small::reseal(addr, len, size, n, align, fill);
    if OPTIONS.leaks() {
        SITES.with(|t| {
            if let Some(e) = t.find(addr).and_then(|i| t.at(i)) {
                e.size = n;
            }
        });
    }
    let t = thread::current();
    if t.is_null() {
        ORPHANS.with(|o| o.live_bytes = o.live_bytes.wrapping_add(n.wrapping_sub(size)));
    } else {
        // SAFETY: the record belongs to the calling thread alone.
        unsafe { &*t }.count(n.wrapping_sub(size), 0);
    }
    true
}

/// A zero-size block.
#[inline(never)]
fn alloc_zero(live: u8, stack: &Stack) -> usize {
    let p = zero_size::alloc(live);
    if p != 0 && stack[0] != 0 {
        remember_site(p, 0, stack);
    }
    p
}

/// Validates a pointer into the zero-size slots (claiming it with `claim`).
#[cold]
fn validate_zero(p: usize, op: Op, marker: usize, claim: bool, slot: Slot) -> Block {
    let kind = match slot {
        Slot::Live => {
            if claim && OPTIONS.leaks() {
                forget_site(p);
            }
            return Block::Zero;
        }
        Slot::Freed if op.frees => Kind::DoubleFree,
        Slot::Freed => Kind::UseAfterFree,
        Slot::LiveAs(live) => kind_mismatch(None, p, (0, 0), live, op, marker, None),
        _ => invalid_kind(op),
    };
    let mut m = report::headline(kind, p);
    report::block(&mut m, 0, 0);
    report::within(&mut m, op.name);
    match slot {
        Slot::Freed => m.str(": the block was already freed"),
        Slot::Inside(off) => m
            .str(": interior pointer, ")
            .num(off as u64)
            .str(" bytes into a malloc(0) block"),
        _ => m.str(": a malloc(0) slot never handed out"),
    };
    report::fatal_unlocked(m, marker, None)
}

impl Large {
    /// Takes a spare mapping of `total` bytes for a new block, if there is one.
    fn take_spare(&mut self, total: usize) -> Option<large::Spare> {
        let spare = self.spares.take(total)?;
        if spare.resident {
            self.resident_bytes -= large::data_len(total);
        }
        Some(spare)
    }

    /// Enters a new block in the opened mapping at `base` (see [`large::open`]) and
    /// counts it; returns its address, or 0 (the mapping unmapped) if the table cannot
    /// grow.
    fn insert(
        &mut self,
        base: usize,
        total: usize,
        n: usize,
        align: usize,
        live: u8,
        stack: &Stack,
    ) -> usize {
        let ptr = large::block_start(base, total, n, align);
        let e = Entry {
            ptr,
            base,
            total,
            size: n,
            align,
            freed: false,
            resident: false,
            live,
            stack: *stack,
        };
        if !self.table.insert(e) {
            // SAFETY: our mapping; the block was never handed out.
            unsafe { oxalloc_sys::unmap(base as *mut u8, total) };
            return 0;
        }
        self.live_bytes += n;
        self.live_blocks += 1;
        self.mapped_bytes += total;
        self.peak.note(self.live_bytes, oxalloc_sys::now_ns());
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
                report::block(&mut m, e.size, large::data_len(e.total));
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
                        large::data_len(e.total),
                        off,
                        op,
                        marker,
                        &e.stack,
                    );
                }
            }
            if op.live != 0 && e.live != op.live {
                let sizes = (e.size, large::data_len(e.total));
                kind_mismatch(
                    Some(held),
                    p,
                    sizes,
                    e.live,
                    op,
                    marker,
                    has_stack(&e.stack),
                );
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
            report::block(&mut m, e.size, large::data_len(e.total));
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
        self.mapped_bytes -= e.total;
        if !mt::LARGE_QUARANTINE {
            // SAFETY: the mapping is the block's own; the program gave it back.
            unsafe { oxalloc_sys::unmap(e.base as *mut u8, e.total) };
            self.table.remove(idx);
            return;
        }
        let data = large::data_len(e.total);
        self.peak.note(self.live_bytes, oxalloc_sys::now_ns());
        let budget = large::RESIDENT_BUDGET.min(self.peak.get());
        let keep = e.total <= large::RESIDENT_BLOCK_MAX
            && self.spares.is_hot(e.total)
            && self.resident_bytes + data <= budget
            // SAFETY: the data pages are the block's own; the program gave it back.
            && unsafe { oxalloc_sys::protect((e.base + PAGE_SIZE) as *mut u8, data, false) };
        if keep {
            self.resident_bytes += data;
        } else {
            // SAFETY: as above.
            unsafe { oxalloc_sys::decommit(e.base as *mut u8, e.total) };
        }
        let entry = self.table.at(idx).expect("validated");
        entry.freed = true;
        entry.resident = keep;
        if let Some(old) = self.quarantine.push(e.ptr) {
            if let Some(i) = self.table.find(old) {
                self.leave_quarantine(i);
            }
        }
    }

    /// A freed block's mapping leaves the quarantine: kept as a spare (the oldest spare
    /// is unmapped if there are too many).
    fn leave_quarantine(&mut self, idx: usize) {
        let e = *self.table.at(idx).expect("occupied");
        self.table.remove(idx);
        let spare = large::Spare {
            base: e.base,
            total: e.total,
            resident: e.resident,
        };
        if let Some(old) = self.spares.put(spare) {
            self.unmap_spare(old);
        }
    }

    fn unmap_spare(&mut self, s: large::Spare) {
        if s.resident {
            self.resident_bytes -= large::data_len(s.total);
        }
        // SAFETY: a spare mapping holds no block.
        unsafe { oxalloc_sys::unmap(s.base as *mut u8, s.total) };
    }

    /// `malloc_trim`: unmaps the spare mappings and discards the kept pages of
    /// quarantined blocks. Returns the bytes given back.
    fn trim(&mut self) -> usize {
        let given = self.resident_bytes;
        while let Some(s) = self.spares.pop() {
            self.unmap_spare(s);
        }
        for i in 0..self.table.capacity() {
            if let Some(e) = self.table.at(i) {
                if e.freed && e.resident {
                    e.resident = false;
                    let (base, total) = (e.base, e.total);
                    // SAFETY: a quarantined block's mapping: no live block in it.
                    unsafe { oxalloc_sys::decommit(base as *mut u8, total) };
                    self.resident_bytes -= large::data_len(total);
                }
            }
        }
        given
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

/// Allocates `n` bytes aligned to `align` in the live state `live` (the family) with
/// the given stack (initialised already).
#[inline(always)]
fn alloc_in(n: usize, align: usize, zero: bool, live: u8, stack: &Stack, marker: usize) -> usize {
    if n == 0 && align <= 16 {
        return alloc_zero(live, stack);
    }
    if small::fits(n, align) {
        alloc_small(n, align, zero, live, stack, marker)
    } else {
        alloc_large(n, align, zero, live, stack)
    }
}

/// A large block (or one aligned beyond what a small class gives), under the large
/// lock.
#[inline(never)]
fn alloc_large(n: usize, align: usize, zero: bool, live: u8, stack: &Stack) -> usize {
    let (n, align) = (n.max(1), align.max(16));
    let Some((data, total)) = large::layout(n, align) else {
        return 0;
    };
    // The mapping is ours alone until its entry is in the table, so its system calls
    // (and the zeroing of kept pages) run outside the lock: two threads allocating
    // large blocks at once no longer wait on each other's `mmap` and `mprotect`.
    let spare = LARGE.with(|l| l.take_spare(total));
    let Some(base) = large::open(spare, total, data) else {
        return 0;
    };
    let ptr = LARGE.with(|l| l.insert(base, total, n, align, live, stack));
    if ptr == 0 {
        return 0;
    }
    let end = base + total - PAGE_SIZE;
    // SAFETY: `[ptr, end)` lies in the data pages just opened; no one else has `ptr`
    // yet.
    let block = unsafe { bytes(ptr, end - ptr) };
    if mt::CANARY {
        canary::write(ptr, block, n);
    }
    if !zero && OPTIONS.junk() {
        block[..n].fill(mt::JUNK_BYTE);
    }
    ptr
}

/// Allocates for the `malloc` family; 0 on failure (the caller sets errno). Inlined
/// into each export.
#[inline(always)]
pub fn alloc(n: usize, align: usize, zero: bool, marker: usize) -> usize {
    alloc_as(n, align, zero, LIVE, marker)
}

/// C++ `operator new`: [`alloc`] of a block only `operator delete` may free.
#[inline(always)]
pub fn alloc_new(n: usize, align: usize, marker: usize) -> usize {
    alloc_as(n, align, false, LIVE_NEW, marker)
}

/// C++ `operator new[]`: [`alloc`] of a block only `operator delete[]` may free.
#[inline(always)]
pub fn alloc_new_array(n: usize, align: usize, marker: usize) -> usize {
    alloc_as(n, align, false, LIVE_NEW_ARRAY, marker)
}

/// Allocates a block in the live state `live` (its family); 0 on failure.
#[inline(always)]
fn alloc_as(n: usize, align: usize, zero: bool, live: u8, marker: usize) -> usize {
    if n > MAX_REQUEST || !align.is_power_of_two() || !ensure_init() {
        return 0;
    }
    if OPTIONS.leaks() {
        return alloc_traced(n, align, zero, live, marker);
    }
    alloc_in(n, align, zero, live, &NO_STACK, marker)
}

/// The empty stack of blocks allocated outside leak mode.
static NO_STACK: Stack = [0; STACK_DEPTH];

/// [`alloc`] in leak mode: with the caller's stack.
#[inline(never)]
fn alloc_traced(n: usize, align: usize, zero: bool, live: u8, marker: usize) -> usize {
    let stack = backtrace::capture(marker);
    alloc_in(n, align, zero, live, &stack, marker)
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
    if let Some(b) = validate_small(p, op, marker, false) {
        return f_small(b);
    }
    match zero_size::check(p, false, op.live) {
        Slot::Outside => LARGE.with(|l| {
            let b = l.validate(p, op, marker);
            f_large(l, b)
        }),
        slot => f_small(validate_zero(p, op, marker, false, slot)),
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
    match validate_small(p, op, marker, true) {
        Some(b) => {
            check_expect(None, &b, p, x, op, marker);
            let Block::Small {
                addr, size, len, ..
            } = b
            else {
                unreachable!("small");
            };
            release_small(addr, size, len, op, marker);
        }
        None => free_other(p, op, x, marker),
    }
}

/// [`free`] of anything outside the core's segments: a zero-size or large block, or
/// a bad pointer.
#[inline(never)]
fn free_other(p: usize, op: Op, x: Expect, marker: usize) {
    match zero_size::check(p, true, op.live) {
        Slot::Outside => LARGE.with(|l| {
            let b = l.validate(p, op, marker);
            check_expect(Some(&LARGE.lock), &b, p, x, op, marker);
            l.release(b);
        }),
        slot => {
            let b = validate_zero(p, op, marker, true, slot);
            check_expect(None, &b, p, x, op, marker);
        }
    }
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
    // In place when the block length stays the same; else the old size, to copy. The
    // block is validated (canary included) here and again when it is freed below; no
    // lock is held while the new block is allocated.
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
    let q = alloc_in(n, 16, false, LIVE, &stack, marker);
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

/// Validates the calling thread's quarantine and the orphans' now; returns the number
/// of blocks checked. Other threads' rings are checked as their blocks leave them and
/// when the threads exit.
pub fn check_now(marker: usize) -> usize {
    if !ensure_init() {
        return 0;
    }
    let mut n = 0;
    let t = thread::current();
    if !t.is_null() {
        // SAFETY: the record belongs to the calling thread alone.
        let t = unsafe { &*t };
        check_ring(&t.ring, marker);
        n += t.ring.len();
    }
    n + ORPHANS.with(|o| {
        check_ring(&o.ring, marker);
        o.ring.len()
    })
}

/// `malloc_trim`: gives back the pages kept for freed large blocks; the bytes released.
pub fn trim_large() -> usize {
    if !ensure_init() {
        return 0;
    }
    LARGE.with(|l| l.trim())
}

/// Totals: (live bytes, live blocks, mapped bytes). Without a lock for the threads'
/// counters, so blocks allocated or freed meanwhile may or may not count.
pub fn totals() -> (usize, usize, usize) {
    let (lb, ln, lm) = LARGE.with(|l| (l.live_bytes, l.live_blocks, l.mapped_bytes));
    let (ob, on) = ORPHANS.with(|o| (o.live_bytes, o.live_blocks));
    let mut bytes = lb.wrapping_add(ob);
    let mut blocks = ln
        .wrapping_add(on)
        .wrapping_add(zero_size::LIVE_COUNT.load(Ordering::Relaxed));
    thread::for_each(|t| {
        bytes = bytes.wrapping_add(t.live_bytes.load(Ordering::Relaxed));
        blocks = blocks.wrapping_add(t.live_blocks.load(Ordering::Relaxed));
    });
    let mapped = lm + oxalloc_core::api::mallinfo2().arena;
    // A racing reader may see a free counted before its allocation: never negative.
    let fix = |v: usize| if v > isize::MAX as usize { 0 } else { v };
    (fix(bytes), fix(blocks), mapped)
}

/// Calls `f(size, stack)` for every live block whose stack is known (leak mode: every
/// block), small and zero-size ones from the site table, large ones from theirs; `f`
/// must not allocate.
pub fn for_each_live(mut f: impl FnMut(usize, &Stack)) {
    SITES.with(|t| {
        for i in 0..t.capacity() {
            if let Some(e) = t.at(i) {
                f(e.size, &e.stack);
            }
        }
    });
    LARGE.with(|l| l.for_each_live(&mut f));
}

#[cfg(test)]
mod tests {
    use super::first_nonzero;

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
}
