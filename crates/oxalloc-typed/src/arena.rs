//! A bump arena: allocation moves a cursor, [`Arena::reset`] and checkpoints move it
//! back, dropping the arena gives every chunk back at once.
//!
//! # Layout
//! Chunks come from the [`Source`] and start with a `ChunkHeader` (link to the older
//! chunk, length); the newest chunk is at the head of the list. `cur..end` is the free
//! tail of the newest chunk. Allocation rounds `cur` up to the alignment and adds the
//! size: a few instructions, then a `#[cold]` slow path that adds a chunk twice as big
//! as the last (up to `max_chunk_bytes`, or bigger for one large request).
//!
//! # Checkpoints
//! A [`Checkpoint`] records `(chunk, cur)`. Rolling back releases every chunk newer than
//! the recorded one and restores `cur`. It needs `&mut self`, so no reference into the
//! arena survives; a checkpoint that no longer describes a live position (taken before
//! a reset, or already rolled past) is refused with [`ArenaError::StaleCheckpoint`].
//! The largest chunk given up by a rollback or reset is kept as a spare, so a loop of
//! `scope`s does not map and unmap a chunk every turn.
//!
//! # Invariants
//! * `chunks` is null (no chunk yet, `cur == end == dangling`) or the newest chunk, and
//!   `chunk_start(chunks) <= cur <= end == chunk_end(chunks)`.
//! * Objects are never dropped by the arena (as in bumpalo): store `Copy` data or accept
//!   that `Drop` does not run.

use crate::source::{or_err, Buffer, Source};
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::mem::{self, MaybeUninit};
use core::ptr::{self, NonNull};

/// Misuse of an arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaError {
    /// The checkpoint is no longer a position of this arena.
    StaleCheckpoint,
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stale arena checkpoint")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ArenaError {}

#[repr(C)]
struct ChunkHeader {
    prev: *mut ChunkHeader,
    len: usize,
}

const HEADER: usize = mem::size_of::<ChunkHeader>();
const CHUNK_ALIGN: usize = 16;

/// A position to roll an [`Arena`] back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    chunk: *mut ChunkHeader,
    cur: *mut u8,
}

/// A bump allocator.
///
/// ```
/// use oxalloc_typed::Arena;
/// let mut arena = Arena::new();
/// let x = arena.alloc(41u32).unwrap();
/// *x += 1;
/// let n = arena.scope(|a| {
///     let tmp = a.alloc_slice_copy(&[1u8; 1000]).unwrap();
///     tmp.len()
/// }); // `tmp` is gone here
/// assert_eq!(n, 1000);
/// arena.reset();
/// ```
pub struct Arena<S: Source> {
    source: S,
    cur: Cell<*mut u8>,
    end: Cell<*mut u8>,
    chunks: Cell<*mut ChunkHeader>,
    spare: Cell<*mut ChunkHeader>,
    next_chunk_bytes: Cell<usize>,
    max_chunk_bytes: usize,
}

// SAFETY: the arena owns its chunks; moving it moves that ownership.
unsafe impl<S: Source + Send> Send for Arena<S> {}

#[cfg(feature = "os")]
impl Arena<crate::Os> {
    /// An empty arena with chunks from the OS (first 4 KiB, doubling to 64 MiB).
    ///
    /// ```
    /// use oxalloc_typed::Arena;
    /// let arena = Arena::new();
    /// let s = arena.alloc_slice_copy(b"hello").unwrap();
    /// assert_eq!(s, b"hello");
    /// ```
    pub fn new() -> Self {
        Self::with_source(crate::Os)
    }
}

#[cfg(feature = "os")]
impl Default for Arena<crate::Os> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Arena<Buffer<'a>> {
    /// An arena on the caller's buffer; it never grows.
    ///
    /// ```
    /// use core::mem::MaybeUninit;
    /// use oxalloc_typed::Arena;
    /// let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    /// let arena = Arena::with_buffer(&mut buf);
    /// assert_eq!(*arena.alloc(7u64).unwrap(), 7);
    /// // The buffer is all it has: a request larger than the buffer fails, without a panic.
    /// assert!(arena.alloc([0u8; 2048]).is_err());
    /// ```
    pub fn with_buffer(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        let a = Self::with_source(Buffer::new(buf));
        let len = a.source.remaining_aligned(CHUNK_ALIGN).max(HEADER + 1);
        a.chunk_bytes(len, len)
    }
}

impl<S: Source> Arena<S> {
    /// An empty arena with chunks from `source`.
    ///
    /// ```
    /// use allocator_api2::alloc::Global;
    /// use oxalloc_typed::{Arena, Parent};
    /// // Chunks from the global allocator.
    /// let arena = Arena::with_source(Parent(Global));
    /// let v = arena.alloc(vec![1, 2, 3]).unwrap();
    /// assert_eq!(v.len(), 3);
    /// ```
    pub fn with_source(source: S) -> Self {
        let d = NonNull::<u8>::dangling().as_ptr();
        Self {
            source,
            cur: Cell::new(d),
            end: Cell::new(d),
            chunks: Cell::new(ptr::null_mut()),
            spare: Cell::new(ptr::null_mut()),
            next_chunk_bytes: Cell::new(4096),
            max_chunk_bytes: 64 << 20,
        }
    }

    /// Sets the first chunk size and the cap of the doubling (bytes).
    pub fn chunk_bytes(mut self, first: usize, max: usize) -> Self {
        self.next_chunk_bytes.set(first);
        self.max_chunk_bytes = max.max(first);
        self
    }

    /// Bump-allocates `layout`. O(1); `AllocError` when the source is exhausted.
    #[inline]
    pub fn alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // Round up, then add: two dependent steps from one allocation's cursor to the
        // next (the loop-carried chain of a run of allocations). The wrapping cases
        // (a huge alignment or size) fail the bounds test and take the slow path.
        let cur = self.cur.get();
        let mask = layout.align() - 1;
        let start = (cur as usize).wrapping_add(mask) & !mask;
        let new = start.wrapping_add(layout.size());
        if start >= cur as usize && new >= start && new <= self.end.get() as usize {
            let p = cur.wrapping_add(start - cur as usize);
            self.cur.set(p.wrapping_add(layout.size()));
            // SAFETY: `p` lies in a chunk (or is the aligned dangling start for a zero
            // size), never null.
            return Ok(unsafe { NonNull::new_unchecked(p) });
        }
        self.alloc_slow(layout)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let need = or_err(
            layout
                .size()
                .checked_add(layout.align().max(CHUNK_ALIGN))
                .and_then(|n| n.checked_add(HEADER)),
        )?;
        let spare = self.spare.get();
        // SAFETY: the spare, if any, is a chunk header we wrote and own.
        let chunk = if !spare.is_null() && unsafe { (*spare).len } >= need {
            self.spare.set(ptr::null_mut());
            spare
        } else {
            let want = self.next_chunk_bytes.get().max(need);
            let layout = or_err(Layout::from_size_align(want, CHUNK_ALIGN).ok())?;
            let region = or_err(self.source.acquire(layout))?;
            self.next_chunk_bytes
                .set(want.saturating_mul(2).min(self.max_chunk_bytes));
            let c = region.cast::<ChunkHeader>().as_ptr();
            // SAFETY: fresh region, aligned and big enough for a header.
            unsafe {
                c.write(ChunkHeader {
                    prev: ptr::null_mut(),
                    len: region.len(),
                })
            };
            c
        };
        // SAFETY: `chunk` is a valid header we own; we link it as the newest.
        unsafe {
            (*chunk).prev = self.chunks.get();
            self.chunks.set(chunk);
            self.cur.set(chunk.cast::<u8>().add(HEADER));
            self.end.set(chunk.cast::<u8>().add((*chunk).len));
        }
        self.alloc_layout(layout)
    }

    /// Moves `value` into the arena. Its `Drop` never runs.
    #[allow(clippy::mut_from_ref)] // each call returns fresh memory no one else sees
    pub fn alloc<T>(&self, value: T) -> Result<&mut T, AllocError> {
        let p = self.alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh, aligned, unaliased memory for one `T`, valid for the arena's
        // lifetime (only `&mut self` methods can reclaim it).
        unsafe {
            p.as_ptr().write(value);
            Ok(&mut *p.as_ptr())
        }
    }

    /// Copies `src` into the arena.
    #[allow(clippy::mut_from_ref)] // each call returns fresh memory no one else sees
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], AllocError> {
        let layout = or_err(Layout::array::<T>(src.len()).ok())?;
        let p = self.alloc_layout(layout)?.cast::<T>();
        // SAFETY: fresh memory for `src.len()` `T`s that cannot overlap `src`.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len());
            Ok(core::slice::from_raw_parts_mut(p.as_ptr(), src.len()))
        }
    }

    /// Copies `s` into the arena.
    #[allow(clippy::mut_from_ref)] // each call returns fresh memory no one else sees
    pub fn alloc_str(&self, s: &str) -> Result<&mut str, AllocError> {
        let b = self.alloc_slice_copy(s.as_bytes())?;
        // SAFETY: the bytes were copied from a `str`.
        Ok(unsafe { core::str::from_utf8_unchecked_mut(b) })
    }

    /// The current position.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            chunk: self.chunks.get(),
            cur: self.cur.get(),
        }
    }

    /// Frees everything allocated since `cp`.
    pub fn rollback(&mut self, cp: Checkpoint) -> Result<(), ArenaError> {
        // Find `cp.chunk` among the live chunks.
        let mut c = self.chunks.get();
        while c != cp.chunk {
            if c.is_null() {
                return Err(ArenaError::StaleCheckpoint);
            }
            // SAFETY: live chunk headers form a null-terminated list.
            c = unsafe { (*c).prev };
        }
        if cp.chunk.is_null() {
            if cp.cur != NonNull::<u8>::dangling().as_ptr() {
                return Err(ArenaError::StaleCheckpoint);
            }
        } else {
            let start = cp.chunk as usize + HEADER;
            // SAFETY: `cp.chunk` is live (found above).
            let end = cp.chunk as usize + unsafe { (*cp.chunk).len };
            let limit = if cp.chunk == self.chunks.get() {
                self.cur.get() as usize
            } else {
                end
            };
            if (cp.cur as usize) < start || cp.cur as usize > limit {
                return Err(ArenaError::StaleCheckpoint);
            }
        }
        let newer = self.chunks.get();
        // SAFETY: `&mut self`: nothing borrows the chunks newer than `cp.chunk`.
        unsafe { self.give_up(newer, cp.chunk) };
        self.chunks.set(cp.chunk);
        self.cur.set(cp.cur);
        if cp.chunk.is_null() {
            self.end.set(cp.cur);
        } else {
            // SAFETY: live chunk.
            let len = unsafe { (*cp.chunk).len };
            self.end.set(cp.chunk.cast::<u8>().wrapping_add(len));
        }
        Ok(())
    }

    /// Runs `f` on the arena and frees what it allocated. `R` cannot borrow from the
    /// arena (it is chosen outside `f`'s borrow), so nothing outlives the rollback.
    pub fn scope<R>(&mut self, f: impl FnOnce(&Self) -> R) -> R {
        let cp = self.checkpoint();
        let r = f(self);
        let ok = self.rollback(cp);
        debug_assert!(ok.is_ok(), "a checkpoint taken just before is always live");
        r
    }

    /// Frees everything. Keeps the largest chunk for reuse and releases the others.
    ///
    /// The kept chunk becomes the current one at once, so a request-scoped arena (fill,
    /// reset, fill again) starts each round on the fast path.
    pub fn reset(&mut self) {
        let head = self.chunks.get();
        // SAFETY: `&mut self`: nothing borrows any chunk.
        unsafe { self.give_up(head, ptr::null_mut()) };
        let keep = self.spare.replace(ptr::null_mut());
        self.chunks.set(keep);
        if keep.is_null() {
            let d = NonNull::<u8>::dangling().as_ptr();
            self.cur.set(d);
            self.end.set(d);
        } else {
            // SAFETY: `keep` is an unlinked chunk header we own, holding no object.
            unsafe {
                (*keep).prev = ptr::null_mut();
                self.cur.set(keep.cast::<u8>().add(HEADER));
                self.end.set(keep.cast::<u8>().add((*keep).len));
            }
        }
    }

    /// Unlinks the chunks from `from` down to (not including) `stop`, keeps the largest
    /// of them and the old spare as the spare, and releases the rest.
    ///
    /// # Safety
    /// Those chunks hold no object still in use.
    unsafe fn give_up(&self, mut from: *mut ChunkHeader, stop: *mut ChunkHeader) {
        while from != stop {
            // SAFETY: live chunk header, part of the list above `stop`.
            let prev = unsafe { (*from).prev };
            let spare = self.spare.get();
            // SAFETY: both are valid headers when non-null.
            let keep_new = spare.is_null() || unsafe { (*from).len > (*spare).len };
            let drop_it = if keep_new {
                self.spare.set(from);
                spare
            } else {
                from
            };
            // SAFETY: `drop_it` is an unlinked chunk with no object in use.
            unsafe { self.release(drop_it) };
            from = prev;
        }
    }

    /// # Safety
    /// `c` is null or an unlinked chunk of this arena holding no object in use.
    unsafe fn release(&self, c: *mut ChunkHeader) {
        if let Some(p) = NonNull::new(c) {
            // SAFETY: valid header; the region is what `acquire` gave, released once.
            unsafe {
                let len = (*c).len;
                self.source
                    .release(NonNull::slice_from_raw_parts(p.cast(), len), CHUNK_ALIGN);
            }
        }
    }

    /// Bytes held from the source (all chunks, including the spare).
    pub fn allocated_bytes(&self) -> usize {
        let mut n = 0;
        let mut c = self.chunks.get();
        while !c.is_null() {
            // SAFETY: live chunk list.
            unsafe {
                n += (*c).len;
                c = (*c).prev;
            }
        }
        let s = self.spare.get();
        // SAFETY: valid header when non-null.
        n + if s.is_null() { 0 } else { unsafe { (*s).len } }
    }

    /// True when `ptr..ptr+size` is the most recent allocation (ends at the cursor).
    fn is_last(&self, ptr: NonNull<u8>, size: usize) -> bool {
        ptr.as_ptr().wrapping_add(size) == self.cur.get()
    }
}

impl<S: Source> Drop for Arena<S> {
    fn drop(&mut self) {
        let head = self.chunks.get();
        // SAFETY: dropping: no object can be used any more.
        unsafe {
            self.give_up(head, ptr::null_mut());
            self.release(self.spare.get());
        }
    }
}

// SAFETY: blocks are disjoint bump ranges valid until reset/rollback/drop, which need
// `&mut self` or ownership; `deallocate` only moves the cursor back over the very last
// block; in-place grow/shrink only touch that last block and the free tail.
unsafe impl<S: Source> Allocator for Arena<S> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self.alloc_layout(layout)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if self.is_last(ptr, layout.size()) {
            // From the cursor, not from `ptr`: a pointer handed back may carry
            // provenance over its block only (a `Box`'s does), and the next blocks are
            // carved from the cursor.
            self.cur.set(self.cur.get().wrapping_sub(layout.size()));
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let aligned = ptr.as_ptr() as usize & (new.align() - 1) == 0;
        let room = self.end.get() as usize - ptr.as_ptr() as usize;
        if aligned && self.is_last(ptr, old.size()) && new.size() <= room {
            // The grown block comes from the cursor (the chunk's provenance), not from
            // `ptr`, whose provenance may end at the old size (see `deallocate`).
            let p = self.cur.get().wrapping_sub(old.size());
            self.cur.set(p.wrapping_add(new.size()));
            // SAFETY: `p` is `ptr`'s address, not null.
            let p = unsafe { NonNull::new_unchecked(p) };
            return Ok(NonNull::slice_from_raw_parts(p, new.size()));
        }
        let p = self.alloc_layout(new)?;
        // SAFETY: `ptr` holds `old.size()` bytes (caller's contract); `p` is fresh.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), old.size()) };
        Ok(NonNull::slice_from_raw_parts(p, new.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if ptr.as_ptr() as usize & (new.align() - 1) == 0 {
            if self.is_last(ptr, old.size()) {
                self.cur
                    .set(self.cur.get().wrapping_sub(old.size() - new.size()));
            }
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let p = self.alloc_layout(new)?;
        // SAFETY: `ptr` holds at least `new.size()` bytes; `p` is fresh.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), new.size()) };
        Ok(NonNull::slice_from_raw_parts(p, new.size()))
    }
}
