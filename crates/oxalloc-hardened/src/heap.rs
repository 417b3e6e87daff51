//! The hardened heap: the state of each size class behind its own lock (a [`Shard`]),
//! the large blocks behind another, and the operations the C and C++ layers call
//! (`alloc`, `free`, `realloc`, `usable_size`) with their checks.
//!
//! A pointer's class follows from its address alone, so a free takes exactly one lock
//! (the class's, or the large table's) and no two threads working on different classes
//! ever wait for each other. No code path holds two shard locks at once (only the fork
//! handlers, which take them all in a fixed order). Each class has its own quarantine.
//!
//! Every pointer handed to a freeing function is validated before anything changes:
//! it must be the start of a live slot of an opened slab (small region, decoded from
//! the address alone) or the user address of a live large block (hash table). Then the
//! canary is checked, the block zeroed and quarantined. Any failure is reported
//! through [`report::fatal`], which never returns.
//!
//! Stacks for leak reports are captured before the lock is taken: the unwinder may take
//! the loader lock, and a thread inside `dlopen` may be waiting for ours.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::backtrace::{self, Stack};
use crate::canary;
use crate::large::{self, Entry};
use crate::lock::Lock;
use crate::meta::{bit, set_bit, ClassMeta};
use crate::mitigations::{self as mt, OPTIONS, STACK_DEPTH};
use crate::quarantine::Ring;
use crate::region::{self, geometry_cached as geo, Geometry, NUM_CLASSES, REGION_BYTES};
use crate::report::{self, Kind};
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

/// One size class: its slabs, out-of-line metadata, quarantine and counters.
pub struct Class {
    idx: usize,
    slabs: usize,
    partial: u32,
    meta: ClassMeta,
    quarantine: Ring,
    rng: u64,
    live_bytes: usize,
    live_blocks: usize,
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
            live_bytes: 0,
            live_blocks: 0,
            mapped_bytes: 0,
        }
    }
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

fn init_all() -> bool {
    OPTIONS.load();
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
        let ok = shard.with(|cl| {
            let g = geo(c);
            cl.idx = c;
            cl.rng = (secret ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17) | 1;
            cl.meta.reserve(g.max_slabs, g.slots, leaks)
                && cl.quarantine.init(quarantine_len(c, q_blocks, q_bytes))
        });
        if !ok {
            return false;
        }
    }
    LARGE.with(|l| {
        l.quarantine
            .init(OPTIONS.large_quarantine.load(Ordering::Relaxed))
    })
}

extern "C" fn fork_prepare() {
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
}
extern "C" fn fork_parent() {
    fork_release();
}
extern "C" fn fork_child() {
    // The child has only the forking thread, which took the locks in `fork_prepare`.
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
fn first_nonzero(b: &[u8]) -> Option<usize> {
    let (head, words, tail) = {
        // SAFETY: `u64` has no invalid bit patterns; `align_to` keeps the split exact.
        unsafe { b.align_to::<u64>() }
    };
    let mut acc = head.iter().chain(tail).fold(0u8, |a, &x| a | x) as u64;
    for chunk in words.chunks(8) {
        acc |= chunk.iter().fold(0, |a, &x| a | x);
    }
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
    for line in (addr..addr + len.min(512)).step_by(64) {
        // SAFETY: a prefetch is a hint: it reads nothing into the program and cannot
        // fault, whatever the address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                line as *const i8,
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

#[allow(clippy::too_many_arguments)]
fn overflow(
    held: &Lock,
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
    report::fatal(held, m, marker, has_stack(stack))
}

/// Checks what a sized or aligned free claims against the block.
fn check_expect(held: &Lock, b: &Block, p: usize, x: Expect, op: Op, marker: usize) {
    if !mt::CHECK_SIZED_FREE {
        return;
    }
    if let Some(size) = x.size {
        if size != b.size() {
            let mut m = report::headline(Kind::SizeMismatch, p);
            report::block(&mut m, b.size(), b.class_size());
            report::within(&mut m, op.name);
            m.str(": freed with size ")
                .num(size as u64)
                .str(", allocated with size ")
                .num(b.size() as u64);
            report::fatal(held, m, marker, None);
        }
    }
    if let Some(align) = x.align {
        if !align.is_power_of_two() || align.max(16) != b.align() {
            let mut m = report::headline(Kind::AlignmentMismatch, p);
            report::block(&mut m, b.size(), b.class_size());
            report::within(&mut m, op.name);
            m.str(": freed with alignment ")
                .num(align as u64)
                .str(", allocated with alignment ")
                .num(b.align() as u64);
            report::fatal(held, m, marker, None);
        }
    }
}

impl Class {
    fn held(&self) -> &'static Lock {
        &CLASSES[self.idx].lock
    }

    #[inline]
    fn random(&mut self) -> u64 {
        // xorshift64*: fast, and seeded from the kernel's random bytes.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    // ---------------------------------------------------------------- allocation

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
        let head = self.partial;
        let m = self.meta.slab(k);
        m.open(g.slots);
        m.free_slots = g.slots as u32;
        m.on_partial = true;
        m.next_partial = head;
        self.partial = (k + 1) as u32;
        true
    }

    /// Allocates a slot for `n` bytes (this class); 0 when out of memory.
    fn alloc(&mut self, base: usize, n: usize, zero: bool, stack: &Stack) -> usize {
        let g = geo(self.idx);
        if self.partial == 0 && !self.open_slab(base, &g) {
            return 0;
        }
        let r = if mt::RANDOM_SLOTS { self.random() } else { 0 };
        let k = self.partial as usize - 1;
        let m = self.meta.slab(k);
        let Some(i) = m.pick_free(g.slots, r) else {
            // The free count said otherwise: our own metadata is inconsistent.
            let mut msg = report::headline(Kind::InvalidPointer, 0);
            msg.str(": internal error, slab metadata inconsistent");
            report::fatal(self.held(), msg, 0, None);
        };
        set_bit(&mut m.live, i, true);
        set_bit(&mut m.used, i, true);
        m.free_slots -= 1;
        if m.free_slots == 0 {
            self.partial = m.next_partial;
            m.next_partial = 0;
            m.on_partial = false;
        }
        *self.meta.size(k, i) = n as u32;
        if let Some(s) = self.meta.stack(k, i) {
            *s = *stack;
        }
        let addr = region::slot_addr(base, self.idx, k, i);
        if self.idx != 0 {
            // Every free slot is all zero (fresh from the kernel, or zeroed on free and
            // checked when it left the quarantine), so `calloc` needs nothing more.
            // SAFETY: the slot lies in an opened slab and is not live, so no reference
            // to it exists.
            let slot = unsafe { bytes(addr, g.stride) };
            if mt::CANARY {
                canary::write_fresh(addr, slot, n);
            }
            if !zero && OPTIONS.junk() {
                slot[..n].fill(mt::JUNK_BYTE);
            }
        }
        self.live_bytes += n;
        self.live_blocks += 1;
        addr
    }

    // ---------------------------------------------------------------- validation

    /// Finds the live block of this class that starts at `p`, or reports the misuse.
    fn validate(&mut self, base: usize, p: usize, op: Op, marker: usize) -> Block {
        let pl = region::place(base, p).expect("inside the small region");
        let g = geo(pl.class);
        let held = self.held();
        let invalid = if op.frees {
            Kind::InvalidFree
        } else {
            Kind::InvalidPointer
        };
        if pl.slab >= self.slabs || pl.slot >= g.slots {
            let mut m = report::headline(invalid, p);
            report::within(&mut m, op.name);
            m.str(": never handed out by malloc (");
            if pl.in_span >= g.slab_bytes {
                m.str("a guard page");
            } else if pl.slab >= self.slabs {
                m.str("a slab not yet in use");
            } else {
                m.str("past the last slot of its slab");
            }
            m.str(" of size class ").num(g.size as u64).str(")");
            report::fatal(held, m, marker, None);
        }
        let start = p - pl.offset;
        let m = self.meta.slab(pl.slab);
        let live = bit(&m.live, pl.slot);
        let used = bit(&m.used, pl.slot);
        let size = *self.meta.size(pl.slab, pl.slot) as usize;
        let stack = self.meta.stack(pl.slab, pl.slot).copied();
        if pl.offset != 0 {
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
            report::fatal(held, m, marker, stack.as_ref().filter(|_| live));
        }
        if !live {
            let mut m;
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
                m = report::headline(invalid, p);
                report::within(&mut m, op.name);
                m.str(": a slot never handed out by malloc (size class ")
                    .num(g.size as u64)
                    .str(")");
            }
            report::fatal(held, m, marker, stack.as_ref().filter(|_| used));
        }
        if mt::CANARY && pl.class != 0 {
            // SAFETY: the slot is live in an opened slab; we only read its tail.
            let slot = unsafe { bytes(p, g.stride) };
            if let Some(off) = canary::check(p, slot, size) {
                let st = stack.unwrap_or([0; STACK_DEPTH]);
                overflow(held, p, size, g.size, off, op, marker, &st);
            }
        }
        Block::Small {
            class: pl.class,
            slab: pl.slab,
            slot: pl.slot,
            addr: p,
            size,
        }
    }

    // ---------------------------------------------------------------- freeing

    /// Frees a validated block: zero, quarantine, and release what leaves the quarantine.
    fn release(&mut self, base: usize, b: Block, op: Op, marker: usize) {
        let Block::Small {
            slab,
            slot,
            addr,
            size,
            ..
        } = b
        else {
            unreachable!("small blocks only");
        };
        self.live_blocks -= 1;
        self.live_bytes -= size;
        if self.idx == 0 {
            // Nothing to zero or check: the slot is never accessible.
            let m = self.meta.slab(slab);
            set_bit(&mut m.live, slot, false);
            self.slot_free(slab, slot);
            return;
        }
        let g = geo(self.idx);
        if mt::ZERO_ON_FREE {
            // SAFETY: the live slot lies in an opened slab; the program gave it back,
            // so nothing of ours refers to it.
            unsafe { bytes(addr, g.stride) }.fill(0);
        }
        let m = self.meta.slab(slab);
        set_bit(&mut m.live, slot, false);
        if mt::QUARANTINE {
            set_bit(&mut m.quarantined, slot, true);
            if let Some(old) = self.quarantine.push(slab << 16 | slot) {
                self.leave_quarantine(base, old, op, marker);
                // The next free of this class checks the next oldest block: start
                // loading it now, so that check does not wait for memory.
                if let Some(next) = self.quarantine.oldest() {
                    let a = region::slot_addr(base, self.idx, next >> 16, next & 0xffff);
                    prefetch(a, g.stride);
                }
            }
        } else {
            self.slot_free(slab, slot);
        }
    }

    fn slot_free(&mut self, slab: usize, slot: usize) {
        let head = self.partial;
        let m = self.meta.slab(slab);
        m.mark_free(slot);
        m.free_slots += 1;
        if !m.on_partial {
            m.on_partial = true;
            m.next_partial = head;
            self.partial = (slab + 1) as u32;
        }
    }

    /// Reports a write after free into the quarantined slot at `addr`.
    fn write_after_free(
        &mut self,
        base: usize,
        addr: usize,
        off: usize,
        how: (&str, &str),
        marker: usize,
    ) -> ! {
        let pl = region::place(base, addr).expect("small");
        let g = geo(pl.class);
        // SAFETY: quarantined slots lie in opened slabs and are not live.
        let byte = unsafe { bytes(addr, g.stride) }[off];
        let size = *self.meta.size(pl.slab, pl.slot) as usize;
        let stack = self.meta.stack(pl.slab, pl.slot).copied();
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
        report::fatal(self.held(), m, marker, stack.as_ref())
    }

    /// A block leaves the quarantine (`entry`: slab << 16 | slot): it must still be all
    /// zero.
    fn leave_quarantine(&mut self, base: usize, entry: usize, op: Op, marker: usize) {
        let (slab, slot) = (entry >> 16, entry & 0xffff);
        let g = geo(self.idx);
        let addr = region::slot_addr(base, self.idx, slab, slot);
        // SAFETY: quarantined slots lie in opened slabs and are not live.
        let bytes = unsafe { bytes(addr, g.stride) };
        if let Some(off) = first_nonzero(bytes) {
            let how = ("when it left the quarantine, in ", op.name);
            self.write_after_free(base, addr, off, how, marker);
        }
        let m = self.meta.slab(slab);
        set_bit(&mut m.quarantined, slot, false);
        self.slot_free(slab, slot);
    }

    /// Checks every quarantined block of this class now.
    fn check_quarantine(&mut self, base: usize, marker: usize) {
        let g = geo(self.idx);
        for i in 0..self.quarantine.len() {
            let entry = self.quarantine.get(i);
            let addr = region::slot_addr(base, self.idx, entry >> 16, entry & 0xffff);
            // SAFETY: quarantined slots lie in opened slabs and are not live.
            let slot = unsafe { bytes(addr, g.stride) };
            if let Some(off) = first_nonzero(slot) {
                self.write_after_free(base, addr, off, ("by ", CHECK.name), marker);
            }
        }
    }

    /// Resizes in place when the new size stays in this class.
    fn resize_in_place(&mut self, b: &Block, n: usize) -> bool {
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
        *self.meta.size(slab, slot) = n as u32;
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
        self.live_bytes = self.live_bytes + n - size;
        true
    }

    fn for_each_live(&mut self, f: &mut impl FnMut(usize, &Stack)) {
        let none = [0; STACK_DEPTH];
        let g = geo(self.idx);
        for k in 0..self.slabs {
            for i in 0..g.slots {
                if bit(&self.meta.slab(k).live, i) {
                    let size = *self.meta.size(k, i) as usize;
                    let st = self.meta.stack(k, i).copied().unwrap_or(none);
                    f(size, &st);
                }
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
                        held,
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
#[inline]
fn alloc_in(n: usize, align: usize, zero: bool, stack: &Stack) -> usize {
    if align <= 16 && n <= region::MAX_SMALL_REQUEST {
        let base = SMALL_BASE.load(Ordering::Relaxed);
        CLASSES[region::class_of(n)].with(|cl| cl.alloc(base, n, zero, stack))
    } else {
        LARGE.with(|l| l.alloc(n.max(1), align.max(16), zero, stack))
    }
}

/// Allocates; 0 on failure (the caller sets errno).
#[inline]
pub fn alloc(n: usize, align: usize, zero: bool, marker: usize) -> usize {
    if n > MAX_REQUEST || !align.is_power_of_two() || !ensure_init() {
        return 0;
    }
    let stack = alloc_stack(marker);
    alloc_in(n, align, zero, &stack)
}

/// Before any block exists, every pointer given to a free-family function is invalid.
fn ensure_init_for(p: usize, op: Op, marker: usize) {
    if !ensure_init() {
        let kind = if op.frees {
            Kind::InvalidFree
        } else {
            Kind::InvalidPointer
        };
        let mut m = report::headline(kind, p);
        report::within(&mut m, op.name);
        m.str(": the allocator has handed out nothing");
        report::fatal_unlocked(m, marker, None);
    }
}

/// Runs `f` on the validated block `p` under the lock of its shard (class or large).
#[inline]
fn with_block<R>(
    p: usize,
    op: Op,
    marker: usize,
    f_small: impl FnOnce(&mut Class, usize, Block) -> R,
    f_large: impl FnOnce(&mut Large, Block) -> R,
) -> R {
    let base = SMALL_BASE.load(Ordering::Relaxed);
    match small_class(base, p) {
        Some(c) => {
            // The canary (the slot's tail) is about to be read, after the lock and the
            // metadata: start loading its line now so the waits overlap.
            let stride = geo(c).stride;
            if stride > 64 {
                prefetch(p.wrapping_add(stride - 16 - 64) & !63, 128);
            }
            CLASSES[c].with(|cl| {
                let b = cl.validate(base, p, op, marker);
                f_small(cl, base, b)
            })
        }
        None => LARGE.with(|l| {
            let b = l.validate(p, op, marker);
            f_large(l, b)
        }),
    }
}

/// Frees `p` (null is fine), checking what `x` claims.
#[inline]
pub fn free(p: usize, op: Op, x: Expect, marker: usize) {
    if p == 0 {
        return;
    }
    ensure_init_for(p, op, marker);
    with_block(
        p,
        op,
        marker,
        |cl, base, b| {
            check_expect(cl.held(), &b, p, x, op, marker);
            cl.release(base, b, op, marker);
        },
        |l, b| {
            check_expect(&LARGE.lock, &b, p, x, op, marker);
            l.release(b);
        },
    )
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
        with_block(p, REALLOC, marker, |_, _, _| (), |_, _| ());
        return 0;
    }
    // In place when the class stays the same; else the old size, to copy. The block
    // is validated (canary included) here and again when it is freed below; no lock
    // is held while the new block is allocated, so no two locks are ever held at once.
    let resized = with_block(
        p,
        REALLOC,
        marker,
        |cl, _, b| (!cl.resize_in_place(&b, n)).then_some(b.size()),
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
    with_block(p, USABLE_SIZE, marker, |_, _, b| b.size(), |_, b| b.size())
}

/// Validates every quarantine now; returns the number of blocks checked.
pub fn check_now(marker: usize) -> usize {
    if !ensure_init() {
        return 0;
    }
    let base = SMALL_BASE.load(Ordering::Relaxed);
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

/// Totals over all shards: (live bytes, live blocks, mapped bytes).
pub fn totals() -> (usize, usize, usize) {
    let mut t = LARGE.with(|l| (l.live_bytes, l.live_blocks, l.mapped_bytes));
    for s in &CLASSES {
        let (b, n, m) = s.with(|cl| (cl.live_bytes, cl.live_blocks, cl.mapped_bytes));
        t = (t.0 + b, t.1 + n, t.2 + m);
    }
    t
}

/// Calls `f(size, stack)` for every live block (leak reports), one shard at a time
/// under its lock; `f` must not allocate.
pub fn for_each_live(mut f: impl FnMut(usize, &Stack)) {
    for s in &CLASSES {
        s.with(|cl| cl.for_each_live(&mut f));
    }
    LARGE.with(|l| l.for_each_live(&mut f));
}

#[cfg(test)]
mod tests {
    use super::{first_nonzero, quarantine_len};

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
}
