//! The hardened heap: all state behind one global lock, and the operations the C and
//! C++ layers call (`alloc`, `free`, `realloc`, `usable_size`) with their checks.
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
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::backtrace::{self, Stack};
use crate::canary;
use crate::large::{self, Entry};
use crate::lock::Lock;
use crate::meta::{bit, set_bit, ClassMeta};
use crate::mitigations::{self as mt, OPTIONS, STACK_DEPTH};
use crate::quarantine::Ring;
use crate::region::{self, geometry_cached as geo, NUM_CLASSES, REGION_BYTES};
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

struct Class {
    slabs: usize,
    partial: u32,
    meta: ClassMeta,
}

impl Class {
    const fn new() -> Class {
        Class {
            slabs: 0,
            partial: 0,
            meta: ClassMeta::empty(),
        }
    }
}

/// Everything the allocator owns. Only the holder of [`Global::lock`] touches it.
pub struct State {
    small_base: usize,
    classes: [Class; NUM_CLASSES],
    quarantine: Ring,
    large: large::Table,
    large_quarantine: Ring,
    rng: u64,
    /// Bytes in live blocks (requested sizes).
    pub live_bytes: usize,
    /// Live blocks.
    pub live_blocks: usize,
    /// Bytes of opened small slabs and large mappings.
    pub mapped_bytes: usize,
}

/// The lock and the state it guards.
pub struct Global {
    /// The one lock.
    pub lock: Lock,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached through `with`, which holds `lock` for the whole
// access, so no two threads ever touch it at once.
unsafe impl Sync for Global {}

/// The allocator.
pub static GLOBAL: Global = Global {
    lock: Lock::new(),
    state: UnsafeCell::new(State {
        small_base: 0,
        classes: [const { Class::new() }; NUM_CLASSES],
        quarantine: Ring::empty(),
        large: large::Table::empty(),
        large_quarantine: Ring::empty(),
        rng: 0,
        live_bytes: 0,
        live_blocks: 0,
        mapped_bytes: 0,
    }),
};

/// 0: not initialised, 1: ready, 2: initialisation failed (every allocation fails).
static READY: AtomicU32 = AtomicU32::new(0);
static ATFORK_DONE: AtomicBool = AtomicBool::new(false);

/// Runs `f` on the state under the global lock.
#[inline]
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    GLOBAL.lock.lock();
    // SAFETY: the lock is held until after `f` returns, so this is the only reference.
    let r = f(unsafe { &mut *GLOBAL.state.get() });
    GLOBAL.lock.unlock();
    r
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
    let ok = with(|s| {
        if READY.load(Ordering::Relaxed) == 0 {
            let ok = s.init();
            READY.store(if ok { 1 } else { 2 }, Ordering::Release);
        }
        READY.load(Ordering::Relaxed) == 1
    });
    // Outside the lock: pthread_atfork may allocate, which now simply works.
    if ok && !ATFORK_DONE.swap(true, Ordering::AcqRel) {
        oxalloc_sys::atfork(fork_prepare, fork_parent, fork_child);
    }
    ok
}

extern "C" fn fork_prepare() {
    GLOBAL.lock.lock();
}
extern "C" fn fork_parent() {
    GLOBAL.lock.unlock();
}
extern "C" fn fork_child() {
    // The child has only the forking thread, which took the lock in `fork_prepare`.
    GLOBAL.lock.unlock();
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

/// The offset of the first non-zero byte of a range of our memory, if any.
fn first_nonzero(b: &[u8]) -> Option<usize> {
    let (head, words, tail) = {
        // SAFETY: `u64` has no invalid bit patterns; `align_to` keeps the split exact.
        unsafe { b.align_to::<u64>() }
    };
    if let Some(i) = head.iter().position(|&x| x != 0) {
        return Some(i);
    }
    if let Some(w) = words.iter().position(|&x| x != 0) {
        let i = head.len() + w * 8;
        return b[i..i + 8].iter().position(|&x| x != 0).map(|j| i + j);
    }
    let i = head.len() + words.len() * 8;
    tail.iter().position(|&x| x != 0).map(|j| i + j)
}

/// A block found by [`State::validate`].
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

impl State {
    fn init(&mut self) -> bool {
        OPTIONS.load();
        let secret = oxalloc_sys::random_u64();
        canary::init(secret);
        self.rng = secret.rotate_left(17) ^ 0x2545_F491_4F6C_DD1D;
        let Some(base) = oxalloc_sys::reserve(NUM_CLASSES * REGION_BYTES) else {
            return false;
        };
        self.small_base = base.as_ptr() as usize;
        let leaks = OPTIONS.leaks();
        for (c, class) in self.classes.iter_mut().enumerate() {
            let g = geo(c);
            if !class.meta.reserve(g.max_slabs, g.slots, leaks) {
                return false;
            }
        }
        self.quarantine
            .init(OPTIONS.quarantine.load(Ordering::Relaxed))
            && self
                .large_quarantine
                .init(OPTIONS.large_quarantine.load(Ordering::Relaxed))
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

    fn in_small(&self, p: usize) -> bool {
        p >= self.small_base && p < self.small_base + NUM_CLASSES * REGION_BYTES
    }

    // ---------------------------------------------------------------- allocation

    /// Allocates `n` bytes aligned to `align`; 0 when out of memory.
    pub fn alloc(&mut self, n: usize, align: usize, zero: bool, stack: &Stack) -> usize {
        if align <= 16 && n <= region::MAX_SMALL_REQUEST {
            self.alloc_small(region::class_of(n), n, zero, stack)
        } else {
            self.alloc_large(n.max(1), align.max(16), zero, stack)
        }
    }

    fn open_slab(&mut self, c: usize) -> bool {
        let g = geo(c);
        let class = &mut self.classes[c];
        let k = class.slabs;
        if k >= g.max_slabs || !class.meta.ensure_slab(k) {
            return false;
        }
        if c != 0 {
            let start = region::slab_addr(self.small_base, c, k);
            // SAFETY: the slab lies in our small-region reservation and was never
            // opened; its guard page (after `slab_bytes`) stays closed.
            if !unsafe { oxalloc_sys::protect(start as *mut u8, g.slab_bytes, true) } {
                return false;
            }
            self.mapped_bytes += g.slab_bytes;
        }
        class.slabs = k + 1;
        let m = class.meta.slab(k);
        m.free_slots = g.slots as u32;
        m.on_partial = true;
        m.next_partial = class.partial;
        class.partial = (k + 1) as u32;
        true
    }

    fn alloc_small(&mut self, c: usize, n: usize, zero: bool, stack: &Stack) -> usize {
        if self.classes[c].partial == 0 && !self.open_slab(c) {
            return 0;
        }
        let g = geo(c);
        let r = if mt::RANDOM_SLOTS { self.random() } else { 0 };
        let class = &mut self.classes[c];
        let k = class.partial as usize - 1;
        let m = class.meta.slab(k);
        let Some(i) = m.pick_free(g.slots, r) else {
            // The free count said otherwise: our own metadata is inconsistent.
            let mut msg = report::headline(Kind::InvalidPointer, 0);
            msg.str(": internal error, slab metadata inconsistent");
            report::fatal(msg, 0, None);
        };
        set_bit(&mut m.live, i, true);
        set_bit(&mut m.used, i, true);
        m.free_slots -= 1;
        if m.free_slots == 0 {
            class.partial = m.next_partial;
            m.next_partial = 0;
            m.on_partial = false;
        }
        *class.meta.size(k, i) = n as u32;
        if let Some(s) = class.meta.stack(k, i) {
            *s = *stack;
        }
        let addr = region::slot_addr(self.small_base, c, k, i);
        if c != 0 {
            // SAFETY: the slot lies in an opened slab and is not live, so no reference
            // to it exists.
            let slot = unsafe { bytes(addr, g.stride) };
            if mt::CANARY {
                canary::write(addr, slot, n);
            }
            if !zero && OPTIONS.junk() {
                slot[..n].fill(mt::JUNK_BYTE);
            }
        }
        self.live_bytes += n;
        self.live_blocks += 1;
        addr
    }

    fn alloc_large(&mut self, n: usize, align: usize, zero: bool, stack: &Stack) -> usize {
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
        if !self.large.insert(e) {
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

    // ---------------------------------------------------------------- validation

    /// Finds the live block that starts at `p`, or reports the misuse and aborts.
    pub fn validate(&mut self, p: usize, op: Op, marker: usize) -> Block {
        if self.in_small(p) {
            return self.validate_small(p, op, marker);
        }
        if let Some(idx) = self.large.find(p) {
            let e = *self.large.at(idx).expect("found entries are occupied");
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
                report::fatal(m, marker, Some(&e.stack));
            }
            let end = e.base + e.total - PAGE_SIZE;
            if mt::CANARY {
                // SAFETY: the block and the slack after it lie in its open data pages;
                // only the slack is read.
                let block = unsafe { bytes(p, end - p) };
                if let Some(off) = canary::check(p, block, e.size) {
                    self.overflow(
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
        if let Some(e) = self.large.containing(p) {
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
            report::fatal(m, marker, Some(&e.stack));
        }
        m.str(": not a block returned by malloc");
        if !p.is_multiple_of(16) {
            m.str(" (unaligned pointer)");
        } else if marker != 0 && p >= marker && p - marker < (8 << 20) {
            m.str(" (looks like a stack address)");
        }
        report::fatal(m, marker, None)
    }

    fn validate_small(&mut self, p: usize, op: Op, marker: usize) -> Block {
        let pl = region::place(self.small_base, p).expect("inside the small region");
        let g = geo(pl.class);
        let invalid = if op.frees {
            Kind::InvalidFree
        } else {
            Kind::InvalidPointer
        };
        let class = &mut self.classes[pl.class];
        if pl.slab >= class.slabs || pl.slot >= g.slots {
            let mut m = report::headline(invalid, p);
            report::within(&mut m, op.name);
            m.str(": never handed out by malloc (");
            if pl.in_span >= g.slab_bytes {
                m.str("a guard page");
            } else if pl.slab >= class.slabs {
                m.str("a slab not yet in use");
            } else {
                m.str("past the last slot of its slab");
            }
            m.str(" of size class ").num(g.size as u64).str(")");
            report::fatal(m, marker, None);
        }
        let start = p - pl.offset;
        let m = class.meta.slab(pl.slab);
        let live = bit(&m.live, pl.slot);
        let used = bit(&m.used, pl.slot);
        let size = *class.meta.size(pl.slab, pl.slot) as usize;
        let stack = class.meta.stack(pl.slab, pl.slot).copied();
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
            report::fatal(m, marker, stack.as_ref().filter(|_| live));
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
            report::fatal(m, marker, stack.as_ref().filter(|_| used));
        }
        if mt::CANARY && pl.class != 0 {
            // SAFETY: the slot is live in an opened slab; we only read its tail.
            let slot = unsafe { bytes(p, g.stride) };
            if let Some(off) = canary::check(p, slot, size) {
                let st = stack.unwrap_or([0; STACK_DEPTH]);
                self.overflow(p, size, g.size, off, op, marker, &st);
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

    #[allow(clippy::too_many_arguments)]
    fn overflow(
        &self,
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
        report::fatal(m, marker, has_stack(stack))
    }

    /// Checks what a sized or aligned free claims against the block.
    pub fn check_expect(&self, b: &Block, p: usize, x: Expect, op: Op, marker: usize) {
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
                report::fatal(m, marker, None);
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
                report::fatal(m, marker, None);
            }
        }
    }

    // ---------------------------------------------------------------- freeing

    /// Frees a validated block: zero, quarantine, and release what leaves the quarantine.
    pub fn release(&mut self, b: Block, op: Op, marker: usize) {
        self.live_blocks -= 1;
        self.live_bytes -= b.size();
        match b {
            Block::Small {
                class,
                slab,
                slot,
                addr,
                ..
            } => {
                if class == 0 {
                    // Nothing to zero or check: the slot is never accessible.
                    let m = self.classes[0].meta.slab(slab);
                    set_bit(&mut m.live, slot, false);
                    self.slot_free(0, slab, slot);
                    return;
                }
                let g = geo(class);
                if mt::ZERO_ON_FREE {
                    // SAFETY: the live slot lies in an opened slab; the program gave it
                    // back, so nothing of ours refers to it.
                    unsafe { bytes(addr, g.stride) }.fill(0);
                }
                let m = self.classes[class].meta.slab(slab);
                set_bit(&mut m.live, slot, false);
                if mt::QUARANTINE {
                    set_bit(&mut m.quarantined, slot, true);
                    if let Some(old) = self.quarantine.push(addr) {
                        self.leave_quarantine(old, op, marker);
                    }
                } else {
                    self.slot_free(class, slab, slot);
                }
            }
            Block::Large { idx, e } => {
                // SAFETY: the mapping is the block's own; the program gave it back.
                unsafe {
                    oxalloc_sys::protect(e.base as *mut u8, e.total, false);
                    oxalloc_sys::discard(e.base as *mut u8, e.total);
                }
                self.mapped_bytes -= e.total;
                if !mt::LARGE_QUARANTINE {
                    self.unmap_large(idx);
                    return;
                }
                self.large.at(idx).expect("validated").freed = true;
                if let Some(old) = self.large_quarantine.push(e.ptr) {
                    if let Some(i) = self.large.find(old) {
                        self.unmap_large(i);
                    }
                }
            }
        }
    }

    fn unmap_large(&mut self, idx: usize) {
        let e = *self.large.at(idx).expect("occupied");
        // SAFETY: the whole mapping is the freed block's own; nothing lives in it.
        unsafe { oxalloc_sys::unmap(e.base as *mut u8, e.total) };
        self.large.remove(idx);
    }

    fn slot_free(&mut self, class: usize, slab: usize, slot: usize) {
        let c = &mut self.classes[class];
        let head = c.partial;
        let m = c.meta.slab(slab);
        let _ = slot;
        m.free_slots += 1;
        if !m.on_partial {
            m.on_partial = true;
            m.next_partial = head;
            c.partial = (slab + 1) as u32;
        }
    }

    /// A block leaves the quarantine: it must still be all zero.
    fn leave_quarantine(&mut self, addr: usize, op: Op, marker: usize) {
        let pl = region::place(self.small_base, addr).expect("quarantined blocks are small");
        let g = geo(pl.class);
        // SAFETY: quarantined slots lie in opened slabs and are not live.
        let slot = unsafe { bytes(addr, g.stride) };
        if let Some(off) = first_nonzero(slot) {
            let c = &mut self.classes[pl.class];
            let size = *c.meta.size(pl.slab, pl.slot) as usize;
            let stack = c.meta.stack(pl.slab, pl.slot).copied();
            let mut m = report::headline(Kind::WriteAfterFree, addr);
            report::block(&mut m, size, g.size);
            m.str(": byte ")
                .num(off as u64)
                .str(" of the freed block is ")
                .hex(slot[off] as u64)
                .str(", not 0 (found when it left the quarantine, in ")
                .str(op.name)
                .str("())");
            report::fatal(m, marker, stack.as_ref());
        }
        let m = self.classes[pl.class].meta.slab(pl.slab);
        set_bit(&mut m.quarantined, pl.slot, false);
        self.slot_free(pl.class, pl.slab, pl.slot);
    }

    /// Checks every quarantined block now (`ox_hardened_check`, `malloc_trim`).
    pub fn check_quarantine(&mut self, marker: usize) {
        for i in 0..self.quarantine.len() {
            let addr = self.quarantine.get(i);
            let pl = region::place(self.small_base, addr).expect("small");
            let g = geo(pl.class);
            // SAFETY: quarantined slots lie in opened slabs and are not live.
            let slot = unsafe { bytes(addr, g.stride) };
            if let Some(off) = first_nonzero(slot) {
                let c = &mut self.classes[pl.class];
                let size = *c.meta.size(pl.slab, pl.slot) as usize;
                let stack = c.meta.stack(pl.slab, pl.slot).copied();
                let mut m = report::headline(Kind::WriteAfterFree, addr);
                report::block(&mut m, size, g.size);
                m.str(": byte ")
                    .num(off as u64)
                    .str(" of the freed block is ")
                    .hex(slot[off] as u64)
                    .str(", not 0 (found by ")
                    .str(CHECK.name)
                    .str("())");
                report::fatal(m, marker, stack.as_ref());
            }
        }
    }

    /// Resizes in place when the new size stays in the same small class.
    pub fn resize_in_place(&mut self, b: &Block, n: usize) -> bool {
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
        *self.classes[class].meta.size(slab, slot) = n as u32;
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

    /// Calls `f(size, stack)` for every live block (leak reports).
    pub fn for_each_live(&mut self, mut f: impl FnMut(usize, &Stack)) {
        let none = [0; STACK_DEPTH];
        for c in 0..NUM_CLASSES {
            let g = geo(c);
            let class = &mut self.classes[c];
            for k in 0..class.slabs {
                for i in 0..g.slots {
                    if bit(&class.meta.slab(k).live, i) {
                        let size = *class.meta.size(k, i) as usize;
                        let st = class.meta.stack(k, i).copied().unwrap_or(none);
                        f(size, &st);
                    }
                }
            }
        }
        for i in 0..self.large.capacity() {
            if let Some(e) = self.large.at(i) {
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

/// Allocates; 0 on failure (the caller sets errno).
#[inline]
pub fn alloc(n: usize, align: usize, zero: bool, marker: usize) -> usize {
    if n > MAX_REQUEST || !align.is_power_of_two() || !ensure_init() {
        return 0;
    }
    let stack = alloc_stack(marker);
    with(|s| s.alloc(n, align, zero, &stack))
}

/// Frees `p` (null is fine), checking what `x` claims.
#[inline]
pub fn free(p: usize, op: Op, x: Expect, marker: usize) {
    if p == 0 {
        return;
    }
    if !ensure_init() {
        let mut m = report::headline(Kind::InvalidFree, p);
        report::within(&mut m, op.name);
        m.str(": the allocator has handed out nothing");
        report::fatal_unlocked(m, marker, None);
    }
    with(|s| {
        let b = s.validate(p, op, marker);
        s.check_expect(&b, p, x, op, marker);
        s.release(b, op, marker);
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
    if n > MAX_REQUEST {
        // Still validate the pointer: a bad one is a bug even when the size is absurd.
        with(|s| {
            s.validate(p, REALLOC, marker);
        });
        return 0;
    }
    let stack = alloc_stack(marker);
    with(|s| {
        let b = s.validate(p, REALLOC, marker);
        if s.resize_in_place(&b, n) {
            return p;
        }
        let q = s.alloc(n, 16, false, &stack);
        if q == 0 {
            return 0;
        }
        let keep = b.size().min(n);
        // SAFETY: both blocks are live, distinct and at least `keep` bytes long.
        unsafe { core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, keep) };
        s.release(b, REALLOC, marker);
        q
    })
}

/// `malloc_usable_size`: the requested size (any more would read the canary).
pub fn usable_size(p: usize, marker: usize) -> usize {
    if p == 0 {
        return 0;
    }
    if !ensure_init() {
        return 0;
    }
    with(|s| s.validate(p, USABLE_SIZE, marker).size())
}

/// Validates the quarantine now; returns the number of blocks checked.
pub fn check_now(marker: usize) -> usize {
    if !ensure_init() {
        return 0;
    }
    with(|s| {
        s.check_quarantine(marker);
        s.quarantine.len()
    })
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
    }
}
