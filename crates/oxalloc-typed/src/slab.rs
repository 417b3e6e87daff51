//! Object caches in the manner of the kernel's slab allocator (Bonwick, 1994).
//!
//! # Layout
//! A cache holds objects of one type `T` in *slabs*: regions of `slab_bytes` (a power of
//! two) taken from the [`Source`] aligned to their own size, so the slab of an object is
//! `addr & !(slab_bytes - 1)`, O(1) on free. A slab is `[SlabHeader][obj][obj]...`; each
//! object slot is the `T` plus, when objects are kept constructed, one link word after
//! it (otherwise the link overlays the free object). Slots are carved lazily.
//!
//! Slabs sit on three doubly linked lists: `full`, `partial` (allocate from here first,
//! which packs objects into few slabs) and `empty`. A slab that becomes empty moves to
//! `empty`; beyond `max_empty` empty slabs (default 64) it goes back to the parent, so a
//! burst of frees does not turn into a burst of unmaps (the kernel reaps lazily for the same
//! reason). Slabs are at least 16 KiB.
//!
//! # Constructed objects
//! With [`SlabCache::with_ctor`] an object is built once, when its slot is first carved,
//! and stays built across free/alloc: [`SlabCache::alloc_constructed`] hands it out as
//! the last user left it, and the destructor runs only when its slab is given back. This
//! is the kernel's point: skip re-initialising (locks, lists, buffers) on the hot path.
//!
//! # Invariants
//! * A slab is on exactly one list, chosen by `in_use` (0, between, `per_slab`).
//! * State borrows never span user code (`T`'s constructor and `Drop`) or the source.
//! * In plain mode, objects still live when the cache drops are not dropped (their
//!   memory is freed): call `free` first.

use crate::source::{or_err, Source};
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem;
use core::ptr::{self, NonNull};

#[repr(C)]
struct SlabHeader {
    prev: *mut SlabHeader,
    next: *mut SlabHeader,
    /// Free, already carved slots (linked through their link word).
    free: *mut u8,
    carved: u32,
    in_use: u32,
    list: u8,
}

const FULL: u8 = 0;
const PARTIAL: u8 = 1;
const EMPTY: u8 = 2;

/// Counters of a [`SlabCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Bytes per object slot (the `T`, rounded, plus a link word when constructed).
    pub slot_bytes: usize,
    /// Slots per slab.
    pub objects_per_slab: usize,
    /// Bytes per slab.
    pub slab_bytes: usize,
    /// Objects handed out and not yet freed.
    pub in_use: usize,
    /// Slabs on each list.
    pub slabs_full: usize,
    /// Slabs with some objects in use.
    pub slabs_partial: usize,
    /// Slabs with none in use, kept for reuse.
    pub slabs_empty: usize,
    /// Successful allocations, ever.
    pub allocs: u64,
    /// Frees, ever.
    pub frees: u64,
    /// Slabs taken from the source, ever.
    pub slabs_created: u64,
    /// Slabs given back to the source, ever.
    pub slabs_released: u64,
}

struct SlabState {
    lists: [*mut SlabHeader; 3],
    stats: SlabStats,
}

/// A cache of `T` objects.
///
/// ```
/// use oxalloc_typed::SlabCache;
/// let cache: SlabCache<[u64; 8], _> = SlabCache::new();
/// let p = cache.alloc([7; 8]).unwrap();
/// // SAFETY: `p` is live and ours.
/// assert_eq!(unsafe { p.as_ref() }[3], 7);
/// // SAFETY: freed once, not used after.
/// unsafe { cache.free(p) };
/// assert_eq!(cache.stats().in_use, 0);
/// ```
pub struct SlabCache<T, S: Source> {
    source: S,
    ctor: Option<fn() -> T>,
    slab_bytes: usize,
    slot: usize,
    link_off: usize,
    first: usize,
    per_slab: u32,
    max_empty: usize,
    st: UnsafeCell<SlabState>,
    _t: PhantomData<T>,
}

// SAFETY: the cache owns its slabs and the `T`s in them; sending it sends them.
unsafe impl<T: Send, S: Source + Send> Send for SlabCache<T, S> {}

#[cfg(feature = "os")]
impl<T> SlabCache<T, crate::Os> {
    /// A plain cache with slabs from the OS.
    ///
    /// ```
    /// use oxalloc_typed::SlabCache;
    /// let cache = SlabCache::new();
    /// let p = cache.alloc(String::from("cached")).unwrap();
    /// assert_eq!(cache.stats().in_use, 1);
    /// // SAFETY: `p` is live and ours; freed once (the String is dropped).
    /// unsafe { cache.free(p) };
    /// assert_eq!(cache.stats().in_use, 0);
    /// ```
    pub fn new() -> Self {
        Self::with_source(crate::Os)
    }
}

#[cfg(feature = "os")]
impl<T> Default for SlabCache<T, crate::Os> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S: Source> SlabCache<T, S> {
    /// A plain cache: `alloc(value)` stores a value, `free` drops it.
    ///
    /// ```
    /// use allocator_api2::alloc::Global;
    /// use oxalloc_typed::{Parent, SlabCache};
    /// let cache = SlabCache::with_source(Parent(Global));
    /// let p = cache.alloc(42u64).unwrap();
    /// // SAFETY: `p` is live and ours.
    /// assert_eq!(unsafe { *p.as_ref() }, 42);
    /// // SAFETY: freed once, not used after.
    /// unsafe { cache.free(p) };
    /// ```
    pub fn with_source(source: S) -> Self {
        Self::build(source, None)
    }

    /// A cache of kept-constructed objects: each is built by `ctor` once and survives
    /// free/alloc; see the module docs.
    ///
    /// ```
    /// use oxalloc_typed::{Os, SlabCache};
    /// // Each object is built once; a freed one keeps its state for the next user.
    /// let cache: SlabCache<Vec<u8>, _> = SlabCache::with_ctor(Os, || Vec::with_capacity(256));
    /// let mut p = cache.alloc_constructed().unwrap();
    /// // SAFETY: `p` is live and ours.
    /// unsafe { p.as_mut() }.push(1);
    /// // SAFETY: freed once, not used after; it stays built.
    /// unsafe { cache.free(p) };
    /// let q = cache.alloc_constructed().unwrap();
    /// // SAFETY: `q` is live and ours: the same object, as its last user left it.
    /// assert_eq!(unsafe { q.as_ref() }.as_slice(), &[1]);
    /// assert!(unsafe { q.as_ref() }.capacity() >= 256);
    /// ```
    pub fn with_ctor(source: S, ctor: fn() -> T) -> Self {
        Self::build(source, Some(ctor))
    }

    fn build(source: S, ctor: Option<fn() -> T>) -> Self {
        let align = mem::align_of::<T>().max(mem::align_of::<*mut u8>());
        let (slot, link_off) = if ctor.is_some() {
            let off = mem::size_of::<T>().next_multiple_of(mem::align_of::<*mut u8>());
            (
                (off + mem::size_of::<*mut u8>()).next_multiple_of(align),
                off,
            )
        } else {
            (
                mem::size_of::<T>()
                    .max(mem::size_of::<*mut u8>())
                    .next_multiple_of(align),
                0,
            )
        };
        let first = mem::size_of::<SlabHeader>().next_multiple_of(align);
        let slab_bytes = (first + 8 * slot).next_power_of_two().max(16 * 1024);
        let per_slab = ((slab_bytes - first) / slot).min(u32::MAX as usize) as u32;
        Self {
            source,
            ctor,
            slab_bytes,
            slot,
            link_off,
            first,
            per_slab,
            max_empty: 64,
            st: UnsafeCell::new(SlabState {
                lists: [ptr::null_mut(); 3],
                stats: SlabStats {
                    slot_bytes: slot,
                    objects_per_slab: per_slab as usize,
                    slab_bytes,
                    ..SlabStats::default()
                },
            }),
            _t: PhantomData,
        }
    }

    /// How many empty slabs to keep before giving them back (default 64, so a cache of
    /// small objects keeps at most about 1 MiB idle; [`SlabCache::shrink`] gives back all).
    pub fn max_empty(mut self, n: usize) -> Self {
        self.max_empty = n;
        self
    }

    /// Counters.
    pub fn stats(&self) -> SlabStats {
        // SAFETY: short read; no mutable borrow is live (none spans a call out).
        unsafe { (*self.st.get()).stats }
    }

    /// Takes a slot: returns it and whether it was just carved (never used before).
    #[inline]
    fn take(&self) -> Result<(NonNull<u8>, bool), AllocError> {
        // SAFETY: no other borrow of the state is live.
        let st = unsafe { &mut *self.st.get() };
        let mut s = st.lists[PARTIAL as usize];
        if s.is_null() {
            s = st.lists[EMPTY as usize];
            if s.is_null() {
                s = self.new_slab()?;
                // SAFETY: re-borrow after `new_slab` (which borrowed and released).
                let st = unsafe { &mut *self.st.get() };
                // SAFETY: `s` is a fresh slab header.
                unsafe { Self::push(st, s, PARTIAL) };
            } else {
                // SAFETY: `s` heads the empty list.
                unsafe {
                    Self::unlink(st, s);
                    Self::push(st, s, PARTIAL);
                }
                st.stats.slabs_empty -= 1;
                st.stats.slabs_partial += 1;
            }
        }
        // SAFETY: no other borrow of the state is live.
        let st = unsafe { &mut *self.st.get() };
        // SAFETY: `s` is a partial (or fresh) slab: it has a free or uncarved slot.
        let (obj, fresh) = unsafe {
            let h = &mut *s;
            let r = if let Some(o) = NonNull::new(h.free) {
                h.free = o.as_ptr().add(self.link_off).cast::<*mut u8>().read();
                (o, false)
            } else {
                let o = s
                    .cast::<u8>()
                    .add(self.first + h.carved as usize * self.slot);
                h.carved += 1;
                (NonNull::new_unchecked(o), true)
            };
            h.in_use += 1;
            if h.in_use == self.per_slab {
                Self::unlink(st, s);
                Self::push(st, s, FULL);
                st.stats.slabs_partial -= 1;
                st.stats.slabs_full += 1;
            }
            r
        };
        st.stats.in_use += 1;
        st.stats.allocs += 1;
        Ok((obj, fresh))
    }

    #[cold]
    fn new_slab(&self) -> Result<*mut SlabHeader, AllocError> {
        let layout = or_err(Layout::from_size_align(self.slab_bytes, self.slab_bytes).ok())?;
        let region = or_err(self.source.acquire(layout))?;
        let s = region.cast::<SlabHeader>().as_ptr();
        // `give` finds the header from an object's address alone (a pointer the caller
        // hands back may carry provenance over its object only, as a `Box`'s does), so
        // the slab's provenance is exposed here and picked up there.
        let _ = s.expose_provenance();
        // SAFETY: fresh region aligned to `slab_bytes`, big enough for the header.
        unsafe {
            s.write(SlabHeader {
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
                free: ptr::null_mut(),
                carved: 0,
                in_use: 0,
                list: PARTIAL,
            })
        };
        // SAFETY: short borrow.
        let st = unsafe { &mut *self.st.get() };
        st.stats.slabs_created += 1;
        st.stats.slabs_partial += 1;
        Ok(s)
    }

    /// # Safety
    /// `s` is a valid slab header on no list.
    unsafe fn push(st: &mut SlabState, s: *mut SlabHeader, list: u8) {
        let head = &mut st.lists[list as usize];
        // SAFETY: `s` and `*head` (if any) are valid headers.
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = *head;
            (*s).list = list;
            if !head.is_null() {
                (**head).prev = s;
            }
        }
        *head = s;
    }

    /// # Safety
    /// `s` is a valid slab header on list `(*s).list`.
    unsafe fn unlink(st: &mut SlabState, s: *mut SlabHeader) {
        // SAFETY: neighbours are valid headers on the same list.
        unsafe {
            let (p, n) = ((*s).prev, (*s).next);
            if p.is_null() {
                st.lists[(*s).list as usize] = n;
            } else {
                (*p).next = n;
            }
            if !n.is_null() {
                (*n).prev = p;
            }
        }
    }

    /// Returns a slot to its slab; gives the slab back if it became an extra empty one.
    ///
    /// # Safety
    /// `obj` is a slot of this cache that is in use.
    #[inline]
    unsafe fn give(&self, obj: NonNull<u8>) {
        // The header is not inside `obj`'s provenance: take the slab's, exposed by
        // `new_slab`.
        let s = ptr::with_exposed_provenance_mut::<SlabHeader>(
            obj.as_ptr() as usize & !(self.slab_bytes - 1),
        );
        // SAFETY: no other borrow of the state is live.
        let st = unsafe { &mut *self.st.get() };
        st.stats.in_use -= 1;
        st.stats.frees += 1;
        let release;
        // SAFETY: slabs are aligned to `slab_bytes`, so `s` is `obj`'s slab header.
        unsafe {
            let h = &mut *s;
            obj.as_ptr()
                .add(self.link_off)
                .cast::<*mut u8>()
                .write(h.free);
            h.free = obj.as_ptr();
            let was_full = h.in_use == self.per_slab;
            h.in_use -= 1;
            if was_full {
                Self::unlink(st, s);
                Self::push(st, s, PARTIAL);
                st.stats.slabs_full -= 1;
                st.stats.slabs_partial += 1;
            }
            if h.in_use == 0 {
                Self::unlink(st, s);
                st.stats.slabs_partial -= 1;
                release = st.stats.slabs_empty >= self.max_empty;
                if release {
                    st.stats.slabs_released += 1;
                } else {
                    Self::push(st, s, EMPTY);
                    st.stats.slabs_empty += 1;
                }
            } else {
                release = false;
            }
        }
        if release {
            // SAFETY: `s` is unlinked and holds no object in use.
            unsafe { self.release_slab(s) };
        }
    }

    /// Runs destructors of kept objects, then gives the slab back.
    ///
    /// # Safety
    /// `s` is an unlinked slab of this cache with no object in use.
    unsafe fn release_slab(&self, s: *mut SlabHeader) {
        if self.ctor.is_some() && mem::needs_drop::<T>() {
            // SAFETY: in constructed mode every carved slot holds a built `T`.
            unsafe {
                for i in 0..(*s).carved as usize {
                    let o = s.cast::<u8>().add(self.first + i * self.slot).cast::<T>();
                    ptr::drop_in_place(o);
                }
            }
        }
        // SAFETY: slab headers are never null.
        let p = unsafe { NonNull::new_unchecked(s.cast::<u8>()) };
        // SAFETY: acquired with `slab_bytes` alignment; released once.
        unsafe {
            self.source.release(
                NonNull::slice_from_raw_parts(p, self.slab_bytes),
                self.slab_bytes,
            )
        };
    }

    /// Stores `value` in a slot and returns it. In constructed mode the kept object in
    /// the slot is dropped and replaced.
    pub fn alloc(&self, value: T) -> Result<NonNull<T>, AllocError> {
        let (o, fresh) = self.take()?;
        let p = o.cast::<T>();
        if self.ctor.is_some() && !fresh {
            // SAFETY: a used slot in constructed mode holds a built `T`; assignment
            // drops it (user code runs with no state borrow live).
            unsafe { *p.as_ptr() = value };
        } else {
            // SAFETY: a fresh or plain-mode slot is uninitialised memory for a `T`.
            unsafe { p.as_ptr().write(value) };
        }
        Ok(p)
    }

    /// Constructed mode: hands out a built object (as its last user left it, or fresh
    /// from `ctor`). Plain mode has no built objects: `AllocError`.
    pub fn alloc_constructed(&self) -> Result<NonNull<T>, AllocError> {
        let ctor = self.ctor.ok_or(AllocError)?;
        let (o, fresh) = self.take()?;
        let p = o.cast::<T>();
        if fresh {
            // SAFETY: fresh slot: uninitialised memory for a `T`; no state borrow live.
            unsafe { p.as_ptr().write(ctor()) };
        }
        Ok(p)
    }

    /// Frees an object: plain mode drops it; constructed mode keeps it built for the
    /// next `alloc_constructed` (leave it in a valid state).
    ///
    /// # Safety
    /// `obj` came from `alloc`/`alloc_constructed` of this cache, is freed once and not
    /// used afterwards.
    pub unsafe fn free(&self, obj: NonNull<T>) {
        if self.ctor.is_none() {
            // SAFETY: caller's contract: `obj` holds a live `T` we own. Dropped before
            // any state borrow, so a `Drop` that uses this cache is fine.
            unsafe { ptr::drop_in_place(obj.as_ptr()) };
        }
        // SAFETY: caller's contract.
        unsafe { self.give(obj.cast()) };
    }

    /// Gives every empty slab back to the source.
    pub fn shrink(&self) {
        loop {
            // SAFETY: short borrow, released before `release_slab`.
            let st = unsafe { &mut *self.st.get() };
            let s = st.lists[EMPTY as usize];
            if s.is_null() {
                return;
            }
            // SAFETY: `s` heads the empty list.
            unsafe { Self::unlink(st, s) };
            st.stats.slabs_empty -= 1;
            st.stats.slabs_released += 1;
            // SAFETY: unlinked, empty.
            unsafe { self.release_slab(s) };
        }
    }
}

impl<T, S: Source> Drop for SlabCache<T, S> {
    fn drop(&mut self) {
        for list in [FULL, PARTIAL, EMPTY] {
            loop {
                let st = self.st.get_mut();
                let s = st.lists[list as usize];
                if s.is_null() {
                    break;
                }
                // SAFETY: `s` heads its list.
                unsafe { Self::unlink(st, s) };
                // SAFETY: dropping the cache: no object may be used any more.
                unsafe { self.release_slab(s) };
            }
        }
    }
}

// SAFETY: plain mode only: slots are disjoint, fit `T`'s layout (refused otherwise) and
// stay valid until deallocated. Constructed mode refuses, since raw memory handed out
// would break the "every carved slot holds a built T" rule.
unsafe impl<T, S: Source> Allocator for SlabCache<T, S> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.ctor.is_some()
            || layout.size() > self.slot
            || layout.align() > mem::align_of::<T>().max(8)
        {
            return Err(AllocError);
        }
        let (o, _) = self.take()?;
        Ok(NonNull::slice_from_raw_parts(o, self.slot))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: Allocator contract: a live slot of this cache.
        unsafe { self.give(ptr) }
    }
}
