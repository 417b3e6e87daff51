//! Fixed-size block pools: [`RawPool`] (untyped blocks, an `Allocator`) and [`Pool<T>`]
//! (typed values behind generation-checked [`Handle`]s).
//!
//! # RawPool layout
//! Memory comes from the [`Source`] in chunks; each chunk starts with a `ChunkHeader`
//! (link to the previous chunk, length), then blocks of `block` bytes. Blocks of the
//! newest chunk are carved lazily by a bump cursor (`cur..end`), so adding a chunk is
//! O(1) and never touches its pages. A freed block holds the address of the next free
//! block in its first word (intrusive LIFO list), so allocate and free are O(1): pop or
//! push, no scan of per-block flags. Chunks grow geometrically (`next_chunk_bytes`
//! doubles up to `max_chunk_bytes`). On a [`Buffer`] the first chunk is the whole buffer
//! and the pool never grows.
//!
//! # `Pool<T>` layout
//! Chunk `k` holds `B << k` slots (`B` a power of two), so a slot index maps to its chunk
//! with one `leading_zeros` and a fixed table of 32 chunk pointers covers every `u32`
//! index. A slot is `{ gen: u32, next_free: u32, value }`: an odd `gen` means live. A handle
//! is `(index, gen)`; using it after removal (or a second removal) finds a different
//! `gen` and fails with [`PoolError::StaleHandle`] instead of touching freed memory.
//!
//! # Invariants
//! * Every block is in exactly one of: live (given out), the free list, the uncarved tail
//!   `cur..end` of the newest chunk.
//! * `in_use` counts live blocks; `capacity` counts blocks of all chunks.
//! * State is only touched through short `&mut` borrows of the `UnsafeCell` that never
//!   span a call to the source or user code; the types are `Send`, not `Sync` (wrap in
//!   [`crate::Locked`] to share).

use crate::source::{or_err, Buffer, Source};
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, MaybeUninit};
use core::ptr::{self, NonNull};

/// Misuse of a pool, reported instead of corrupting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The handle's value was already removed (double free or use after free), or the
    /// handle belongs to another pool.
    StaleHandle,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stale pool handle (double free or foreign handle)")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PoolError {}

#[repr(C)]
struct ChunkHeader {
    prev: *mut ChunkHeader,
    len: usize,
}

struct PoolState {
    free: *mut u8,
    cur: *mut u8,
    end: *mut u8,
    chunks: *mut ChunkHeader,
    next_chunk_bytes: usize,
    in_use: usize,
    capacity: usize,
}

/// Counters of a [`RawPool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Block size in bytes (the requested size rounded up to the alignment).
    pub block_bytes: usize,
    /// Blocks given out and not yet freed.
    pub in_use: usize,
    /// Blocks in all chunks, free or not.
    pub capacity: usize,
    /// Chunks taken from the source.
    pub chunks: usize,
}

/// A pool of fixed-size blocks with O(1) `alloc`/`free`.
///
/// ```
/// use oxalloc_typed::RawPool;
/// use core::alloc::Layout;
/// let pool = RawPool::new(Layout::new::<[u64; 4]>());
/// let a = pool.alloc().unwrap();
/// // SAFETY: `a` came from this pool and is freed once.
/// unsafe { pool.free(a) };
/// assert_eq!(pool.alloc().unwrap(), a); // LIFO reuse
/// ```
pub struct RawPool<S: Source> {
    source: S,
    block: usize,
    align: usize,
    chunk_align: usize,
    max_chunk_bytes: usize,
    st: UnsafeCell<PoolState>,
}

// SAFETY: the pool owns its chunks outright; moving it to another thread moves that
// ownership, which is fine when the source itself may move.
unsafe impl<S: Source + Send> Send for RawPool<S> {}

#[cfg(feature = "os")]
impl RawPool<crate::Os> {
    /// A growing pool of blocks fitting `layout`, with chunks from the OS.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use oxalloc_typed::RawPool;
    /// let pool = RawPool::new(Layout::new::<[u8; 24]>());
    /// let a = pool.alloc().unwrap();
    /// assert_eq!(pool.stats().in_use, 1);
    /// assert!(pool.stats().block_bytes >= 24);
    /// // SAFETY: `a` came from this pool and is freed once.
    /// unsafe { pool.free(a) };
    /// assert_eq!(pool.stats().in_use, 0);
    /// ```
    pub fn new(layout: Layout) -> Self {
        Self::with_source(crate::Os, layout)
    }
}

impl<'a> RawPool<Buffer<'a>> {
    /// A fixed pool on the caller's buffer: as many blocks as fit, never grows.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use core::mem::MaybeUninit;
    /// use oxalloc_typed::RawPool;
    /// let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    /// let pool = RawPool::with_buffer(&mut buf, Layout::new::<u64>());
    /// // As many blocks as fit, then an error (no panic, no growth).
    /// let mut n = 0;
    /// while pool.alloc().is_ok() {
    ///     n += 1;
    /// }
    /// assert!(n > 100 && n <= 4096 / 8, "{n} blocks");
    /// assert_eq!(pool.stats().capacity, n);
    /// ```
    pub fn with_buffer(buf: &'a mut [MaybeUninit<u8>], layout: Layout) -> Self {
        let pool = Self::with_source(Buffer::new(buf), layout);
        let len = pool.source.remaining_aligned(pool.chunk_align).max(1);
        pool.chunk_bytes(len, len)
    }
}

impl<S: Source> RawPool<S> {
    const HEADER: usize = mem::size_of::<ChunkHeader>();

    /// A pool of blocks fitting `layout`, growing with chunks from `source`
    /// (first chunk 4 KiB or 16 blocks, doubling up to 1 MiB or 64 blocks).
    ///
    /// ```
    /// use allocator_api2::alloc::Global;
    /// use core::alloc::Layout;
    /// use oxalloc_typed::{Parent, RawPool};
    /// let pool = RawPool::with_source(Parent(Global), Layout::new::<[u64; 2]>());
    /// let a = pool.alloc().unwrap();
    /// assert_eq!(pool.stats().chunks, 1);
    /// // SAFETY: `a` came from this pool and is freed once.
    /// unsafe { pool.free(a) };
    /// ```
    pub fn with_source(source: S, layout: Layout) -> Self {
        let align = layout.align().max(mem::align_of::<*mut u8>());
        let block = layout
            .size()
            .max(mem::size_of::<*mut u8>())
            .next_multiple_of(align);
        let first = (Self::HEADER + align + 16 * block).max(4096);
        let max = (Self::HEADER + align + 64 * block).max(1 << 20);
        Self {
            source,
            block,
            align,
            chunk_align: align.max(mem::align_of::<ChunkHeader>()),
            max_chunk_bytes: max,
            st: UnsafeCell::new(PoolState {
                free: ptr::null_mut(),
                cur: ptr::null_mut(),
                end: ptr::null_mut(),
                chunks: ptr::null_mut(),
                next_chunk_bytes: first,
                in_use: 0,
                capacity: 0,
            }),
        }
    }

    /// Sets the first chunk size and the cap the doubling stops at (bytes).
    pub fn chunk_bytes(mut self, first: usize, max: usize) -> Self {
        self.st.get_mut().next_chunk_bytes = first;
        self.max_chunk_bytes = max.max(first);
        self
    }

    /// Size of each block in bytes.
    pub fn block_bytes(&self) -> usize {
        self.block
    }

    /// Alignment of each block.
    pub fn block_align(&self) -> usize {
        self.align
    }

    /// Takes a block. O(1): pops the free list, else carves from the newest chunk, else
    /// (cold) adds a chunk. `AllocError` when the source is exhausted.
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: no other borrow of the state is live: every borrow is local to one
        // method and none is held across a call out of this type.
        let st = unsafe { &mut *self.st.get() };
        if let Some(b) = NonNull::new(st.free) {
            // SAFETY: a block on the free list holds the next free block in its first
            // word, and blocks are aligned for a pointer.
            st.free = unsafe { b.cast::<*mut u8>().read() };
            st.in_use += 1;
            return Ok(b);
        }
        if (st.end as usize) - (st.cur as usize) >= self.block {
            let b = st.cur;
            // SAFETY: `cur + block <= end`, inside the newest chunk.
            st.cur = unsafe { b.add(self.block) };
            st.in_use += 1;
            // SAFETY: `cur` points into a chunk, never null.
            return Ok(unsafe { NonNull::new_unchecked(b) });
        }
        self.alloc_slow()
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self) -> Result<NonNull<u8>, AllocError> {
        self.add_chunk()?;
        self.alloc()
    }

    fn add_chunk(&self) -> Result<(), AllocError> {
        // SAFETY: short borrow, dropped before calling the source.
        let want = unsafe { (*self.st.get()).next_chunk_bytes };
        // At least one block, whatever the configured chunk size.
        let want = want.max(Self::HEADER + self.align + self.block);
        let layout = or_err(Layout::from_size_align(want, self.chunk_align).ok())?;
        let region = or_err(self.source.acquire(layout))?;
        let len = region.len();
        let chunk = region.cast::<ChunkHeader>().as_ptr();
        let first = (chunk as usize + Self::HEADER).next_multiple_of(self.align);
        let blocks = (chunk as usize + len).saturating_sub(first) / self.block;
        // SAFETY: the region is ours, aligned for `ChunkHeader`, and holds one.
        unsafe {
            chunk.write(ChunkHeader {
                prev: ptr::null_mut(),
                len,
            })
        };
        // SAFETY: as above; no other borrow of the state is live.
        let st = unsafe { &mut *self.st.get() };
        // SAFETY: `chunk` was just written.
        unsafe { (*chunk).prev = st.chunks };
        st.chunks = chunk;
        // SAFETY: `first - chunk` and `blocks * block` stay inside the region.
        st.cur = unsafe { chunk.cast::<u8>().add(first - chunk as usize) };
        // SAFETY: as above.
        st.end = unsafe { st.cur.add(blocks * self.block) };
        st.capacity += blocks;
        st.next_chunk_bytes = want.saturating_mul(2).min(self.max_chunk_bytes);
        if blocks == 0 {
            return Err(AllocError);
        }
        Ok(())
    }

    /// Gives a block back. O(1).
    ///
    /// # Safety
    /// `ptr` came from `alloc` (or `allocate`) of this pool, is freed once, and is not
    /// used afterwards.
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        // SAFETY: no other borrow of the state is live (see `alloc`).
        let st = unsafe { &mut *self.st.get() };
        // SAFETY: the block is ours, at least pointer sized and pointer aligned.
        unsafe { ptr.cast::<*mut u8>().write(st.free) };
        st.free = ptr.as_ptr();
        st.in_use -= 1;
    }

    /// Forgets every block and gives all chunks but the newest back to the source.
    /// `&mut self`: no block can still be borrowed from the pool.
    pub fn reset(&mut self) {
        let st = self.st.get_mut();
        let newest = st.chunks;
        if newest.is_null() {
            return;
        }
        // SAFETY: `newest` is a live chunk header written by `add_chunk`.
        let (older, len) = unsafe { ((*newest).prev, (*newest).len) };
        // SAFETY: `&mut self`: no live blocks are in use by contract of `free`/borrows.
        unsafe { self.release_chunks(older) };
        let st = self.st.get_mut();
        // SAFETY: `newest` stays a valid chunk; we unlink the older ones.
        unsafe { (*newest).prev = ptr::null_mut() };
        let first = (newest as usize + Self::HEADER).next_multiple_of(self.align);
        let blocks = (newest as usize + len).saturating_sub(first) / self.block;
        // SAFETY: inside the newest chunk, as computed in `add_chunk`.
        st.cur = unsafe { newest.cast::<u8>().add(first - newest as usize) };
        // SAFETY: as above.
        st.end = unsafe { st.cur.add(blocks * self.block) };
        st.free = ptr::null_mut();
        st.in_use = 0;
        st.capacity = blocks;
    }

    /// # Safety
    /// The chunks from `c` on are unlinked from the state and hold no live block.
    unsafe fn release_chunks(&self, mut c: *mut ChunkHeader) {
        while !c.is_null() {
            // SAFETY: `c` is a chunk header written by `add_chunk`.
            let (prev, len) = unsafe { ((*c).prev, (*c).len) };
            let region = NonNull::slice_from_raw_parts(
                // SAFETY: chunk headers are never null.
                unsafe { NonNull::new_unchecked(c.cast::<u8>()) },
                len,
            );
            // SAFETY: the region came from `acquire` with `chunk_align`, once.
            unsafe { self.source.release(region, self.chunk_align) };
            c = prev;
        }
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        // SAFETY: short shared read, no mutable borrow is live.
        let st = unsafe { &*self.st.get() };
        let mut chunks = 0;
        let mut c = st.chunks;
        while !c.is_null() {
            chunks += 1;
            // SAFETY: chunk headers form a null-terminated list.
            c = unsafe { (*c).prev };
        }
        PoolStats {
            block_bytes: self.block,
            in_use: st.in_use,
            capacity: st.capacity,
            chunks,
        }
    }
}

impl<S: Source> Drop for RawPool<S> {
    fn drop(&mut self) {
        let chunks = self.st.get_mut().chunks;
        // SAFETY: dropping: no block may be used after the pool is gone.
        unsafe { self.release_chunks(chunks) };
    }
}

// SAFETY: blocks are disjoint and valid until freed; a layout that does not fit a block
// is refused; `deallocate` takes exactly the blocks `allocate` gave.
unsafe impl<S: Source> Allocator for RawPool<S> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() > self.block || layout.align() > self.align {
            return Err(AllocError);
        }
        let p = self.alloc()?;
        Ok(NonNull::slice_from_raw_parts(p, self.block))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: Allocator contract: `ptr` is a live block of this pool.
        unsafe { self.free(ptr) }
    }
}

/// A typed index into a [`Pool<T>`]: `(index, generation)`. `Copy`; checked on use.
pub struct Handle<T> {
    index: u32,
    gen: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Handle<T> {}
impl<T> PartialEq for Handle<T> {
    fn eq(&self, o: &Self) -> bool {
        self.index == o.index && self.gen == o.gen
    }
}
impl<T> Eq for Handle<T> {}
impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}v{})", self.index, self.gen)
    }
}

impl<T> Handle<T> {
    /// The slot index (dense from 0).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// The link of a free slot has a word of its own rather than sharing the value's bytes:
/// `remove` can then move the value out and link the slot in either order, and the
/// compiler copies the value once (to the caller) instead of through a temporary.
#[repr(C)]
struct Slot<T> {
    gen: u32,
    /// The next free slot, while this one is free.
    next: u32,
    value: MaybeUninit<T>,
}

const NIL: u32 = u32::MAX;
const MAX_CHUNKS: usize = 32;

/// A typed pool: values of `T` in stable slots, reached by [`Handle`]s.
///
/// ```
/// use oxalloc_typed::{Pool, PoolError};
/// let mut pool = Pool::new();
/// let h = pool.insert(String::from("x")).unwrap();
/// assert_eq!(pool.get(h).map(String::as_str), Some("x"));
/// assert_eq!(pool.remove(h), Ok(String::from("x")));
/// assert_eq!(pool.remove(h), Err(PoolError::StaleHandle)); // double free caught
/// ```
pub struct Pool<T, S: Source> {
    source: S,
    chunks: [*mut Slot<T>; MAX_CHUNKS],
    /// `chunks[k]` minus [`Self::chunk_first`]`(k)` slots (wrapping): see `slot`.
    based: [*mut Slot<T>; MAX_CHUNKS],
    n_chunks: usize,
    /// Slots carved so far (indices `0..carved` are initialised).
    carved: u32,
    free: u32,
    len: u32,
    _t: PhantomData<T>,
}

// SAFETY: the pool owns its `T`s and chunks; sending it sends them.
unsafe impl<T: Send, S: Source + Send> Send for Pool<T, S> {}
// SAFETY: `&Pool` only gives `&T` (get) and reads counters.
unsafe impl<T: Sync, S: Source + Sync> Sync for Pool<T, S> {}

#[cfg(feature = "os")]
impl<T> Pool<T, crate::Os> {
    /// An empty pool with chunks from the OS.
    ///
    /// ```
    /// use oxalloc_typed::Pool;
    /// let mut pool = Pool::new();
    /// let h = pool.insert([1u32; 4]).unwrap();
    /// assert_eq!(pool.len(), 1);
    /// assert_eq!(pool.get(h), Some(&[1; 4]));
    /// ```
    pub fn new() -> Self {
        Self::with_source(crate::Os)
    }
}

#[cfg(feature = "os")]
impl<T> Default for Pool<T, crate::Os> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S: Source> Pool<T, S> {
    /// Slots in chunk 0, a power of two: about a page, at least 16.
    const B_SHIFT: u32 = {
        let per_page = 4096 / mem::size_of::<Slot<T>>();
        let n = if per_page < 16 { 16 } else { per_page };
        usize::BITS - 1 - n.leading_zeros()
    };

    /// An empty pool with chunks from `source`.
    ///
    /// ```
    /// use allocator_api2::alloc::Global;
    /// use oxalloc_typed::{Parent, Pool};
    /// let mut pool = Pool::with_source(Parent(Global));
    /// let h = pool.insert(String::from("node")).unwrap();
    /// assert_eq!(pool.remove(h).unwrap(), "node");
    /// assert_eq!(pool.len(), 0);
    /// ```
    pub fn with_source(source: S) -> Self {
        Self {
            source,
            chunks: [ptr::null_mut(); MAX_CHUNKS],
            based: [ptr::null_mut(); MAX_CHUNKS],
            n_chunks: 0,
            carved: 0,
            free: NIL,
            len: 0,
            _t: PhantomData,
        }
    }

    /// Live values.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no value is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in all chunks.
    pub fn capacity(&self) -> usize {
        ((1usize << self.n_chunks) - 1) << Self::B_SHIFT
    }

    fn chunk_slots(k: usize) -> usize {
        1 << (Self::B_SHIFT as usize + k)
    }

    /// Index of the first slot of chunk `k`.
    fn chunk_first(k: usize) -> usize {
        ((1usize << k) - 1) << Self::B_SHIFT
    }

    /// Pointer to slot `i` (`i < capacity`).
    #[inline]
    fn slot(&self, i: u32) -> *mut Slot<T> {
        let q = ((i as usize) >> Self::B_SHIFT) + 1;
        let k = (usize::BITS - 1 - q.leading_zeros()) as usize;
        // `based[k]` is chunk `k`'s start moved back by the slots before it, so slot `i`
        // is at `based[k] + i`: no subtraction of the chunk's first index per lookup.
        // The moved-back address may lie outside any allocation, hence the wrapping
        // arithmetic; the result lies inside chunk `k` (i < capacity, so chunk `k`
        // exists and holds slot `i`).
        self.based[k].wrapping_add(i as usize)
    }

    /// Stores `value` and returns its handle. O(1) (amortised over chunk growth).
    pub fn insert(&mut self, value: T) -> Result<Handle<T>, AllocError> {
        let (i, s) = if self.free != NIL {
            let i = self.free;
            let s = self.slot(i);
            // SAFETY: `free` is a carved, free slot, so its `next` is set.
            self.free = unsafe { (*s).next };
            (i, s)
        } else {
            if self.carved as usize == self.capacity() {
                self.grow()?;
            }
            let i = self.carved;
            let s = self.slot(i);
            // SAFETY: `i < capacity`; the slot is uninitialised memory we own.
            unsafe { ptr::addr_of_mut!((*s).gen).write(0) };
            self.carved += 1;
            (i, s)
        };
        // SAFETY: slot `i` is carved and free (`gen` even); we make it live.
        let gen = unsafe {
            (*s).gen = (*s).gen.wrapping_add(1);
            ptr::addr_of_mut!((*s).value).write(MaybeUninit::new(value));
            (*s).gen
        };
        self.len += 1;
        Ok(Handle {
            index: i,
            gen,
            _t: PhantomData,
        })
    }

    #[cold]
    fn grow(&mut self) -> Result<(), AllocError> {
        let k = self.n_chunks;
        let n = Self::chunk_slots(k);
        // Indices must stay below NIL.
        if k == MAX_CHUNKS || self.capacity() + n >= NIL as usize {
            return Err(AllocError);
        }
        let layout = or_err(Layout::array::<Slot<T>>(n).ok())?;
        let region = or_err(self.source.acquire(layout))?;
        self.chunks[k] = region.cast::<Slot<T>>().as_ptr();
        self.based[k] = self.chunks[k].wrapping_sub(Self::chunk_first(k));
        self.n_chunks += 1;
        Ok(())
    }

    fn live_slot(&self, h: Handle<T>) -> Option<*mut Slot<T>> {
        if h.index >= self.carved {
            return None;
        }
        let s = self.slot(h.index);
        // SAFETY: carved slots have an initialised `gen`. A handle's `gen` is odd (only
        // `insert` makes handles), so an equal `gen` is odd too: the slot is live.
        (unsafe { (*s).gen } == h.gen).then_some(s)
    }

    /// The value of `h`, or `None` if it was removed.
    pub fn get(&self, h: Handle<T>) -> Option<&T> {
        // SAFETY: an odd, matching `gen` means `value` is live.
        self.live_slot(h)
            .map(|s| unsafe { (*s).value.assume_init_ref() })
    }

    /// The value of `h`, mutably, or `None` if it was removed.
    pub fn get_mut(&mut self, h: Handle<T>) -> Option<&mut T> {
        // SAFETY: as in `get`; `&mut self` makes the borrow unique.
        self.live_slot(h)
            .map(|s| unsafe { (*s).value.assume_init_mut() })
    }

    /// Removes and returns the value of `h`. A second removal (double free) or a handle
    /// from elsewhere gives [`PoolError::StaleHandle`] and changes nothing.
    pub fn remove(&mut self, h: Handle<T>) -> Result<T, PoolError> {
        let s = self.live_slot(h).ok_or(PoolError::StaleHandle)?;
        // SAFETY: the slot is live; we move the value out and mark the slot free.
        let v = unsafe {
            (*s).gen = (*s).gen.wrapping_add(1);
            (*s).next = self.free;
            ptr::addr_of!((*s).value).read().assume_init()
        };
        self.free = h.index;
        self.len -= 1;
        Ok(v)
    }
}

impl<T, S: Source> Drop for Pool<T, S> {
    fn drop(&mut self) {
        if mem::needs_drop::<T>() {
            for i in 0..self.carved {
                let s = self.slot(i);
                // SAFETY: odd `gen` marks a live value, dropped once here.
                unsafe {
                    if (*s).gen & 1 == 1 {
                        (*s).value.assume_init_drop();
                    }
                }
            }
        }
        for k in 0..self.n_chunks {
            let n = Self::chunk_slots(k);
            let bytes = n * mem::size_of::<Slot<T>>();
            // SAFETY: chunk pointers come from `acquire` and are never null.
            let p = unsafe { NonNull::new_unchecked(self.chunks[k].cast::<u8>()) };
            // SAFETY: released once with the alignment it was acquired with. A source
            // may have given more than `bytes`; `Buffer`/`Os`/`Parent` accept the asked
            // length (Os rounds it up again, Parent's layout-fit rule allows it).
            unsafe {
                self.source.release(
                    NonNull::slice_from_raw_parts(p, bytes),
                    mem::align_of::<Slot<T>>(),
                )
            };
        }
    }
}
