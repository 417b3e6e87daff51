//! A LIFO (stack) allocator with markers, on one fixed region.
//!
//! # Layout
//! Each allocation is `[pad][Header][payload]`; the 24-byte `Header` sits right before
//! the payload and records the previous `top`, the previous top allocation (`prev_last`)
//! and a serial number. `top` is the first free byte, `last` the payload offset of the
//! top allocation. So the allocations form a chain from `last` down through `prev_last`.
//!
//! # Misuse is an error, never corruption
//! * [`Stack::free`] of anything but the top allocation returns
//!   [`StackError::OutOfOrder`] and changes nothing.
//! * A [`Marker`] names the top allocation by offset *and* serial. [`Stack::free_to`]
//!   walks the live chain down to it; if that allocation was freed meanwhile (even if a
//!   new one now sits at the same offset) the serial differs and the answer is
//!   [`StackError::StaleMarker`].
//! * Through the `Allocator` trait (where `deallocate` cannot fail) an out-of-order free
//!   marks the header `DEFERRED`; the block is reclaimed when everything above it is
//!   freed. Headers of live allocations lie before their payload, so a caller can only
//!   reach them with out-of-bounds raw-pointer writes.
//!
//! # Invariants
//! `top <= cap`; `last == NONE` iff the stack is empty; offsets in headers are of live
//! allocations below.

use crate::source::{or_err, Buffer, Source};
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::mem::{self, MaybeUninit};
use core::ptr::{self, NonNull};

/// Misuse of a stack allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The pointer is not the most recent live allocation.
    OutOfOrder,
    /// The marker's allocation was freed (or the marker is from another stack).
    StaleMarker,
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StackError::OutOfOrder => "stack free out of LIFO order",
            StackError::StaleMarker => "stale stack marker",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StackError {}

#[repr(C)]
struct Header {
    prev_top: usize,
    prev_last: usize,
    serial: u64,
}

const HEADER: usize = mem::size_of::<Header>();
const NONE: usize = usize::MAX;
const DEFERRED: u64 = 1 << 63;
const REGION_ALIGN: usize = 16;

/// A saved stack position; see [`Stack::free_to`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    top: usize,
    last: usize,
    serial: u64,
}

/// Counters of a [`Stack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackStats {
    /// Bytes in use, headers and padding included.
    pub used_bytes: usize,
    /// Size of the region.
    pub capacity_bytes: usize,
    /// Live allocations (deferred ones included).
    pub depth: usize,
}

/// A LIFO allocator.
///
/// ```
/// use oxalloc_typed::{Stack, StackError};
/// use core::alloc::Layout;
/// let stack = Stack::with_capacity(1 << 16).unwrap();
/// let a = stack.alloc(Layout::new::<u64>()).unwrap();
/// let b = stack.alloc(Layout::new::<u64>()).unwrap();
/// assert_eq!(stack.free(a), Err(StackError::OutOfOrder));
/// stack.free(b).unwrap();
/// stack.free(a).unwrap();
/// ```
pub struct Stack<S: Source> {
    source: S,
    base: NonNull<u8>,
    cap: usize,
    top: Cell<usize>,
    last: Cell<usize>,
    serial: Cell<u64>,
    depth: Cell<usize>,
}

// SAFETY: the stack owns its region; moving it moves that ownership.
unsafe impl<S: Source + Send> Send for Stack<S> {}

#[cfg(feature = "os")]
impl Stack<crate::Os> {
    /// A stack of `bytes` bytes from the OS (pages are touched only when used).
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use oxalloc_typed::Stack;
    /// let stack = Stack::with_capacity(1 << 20).unwrap();
    /// let a = stack.alloc(Layout::new::<[u8; 100]>()).unwrap();
    /// assert!(stack.stats().used_bytes >= 100);
    /// stack.free(a).unwrap();
    /// assert_eq!(stack.stats().depth, 0);
    /// ```
    pub fn with_capacity(bytes: usize) -> Result<Self, AllocError> {
        Self::with_source(crate::Os, bytes)
    }
}

impl<'a> Stack<Buffer<'a>> {
    /// A stack on the caller's buffer.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use core::mem::MaybeUninit;
    /// use oxalloc_typed::Stack;
    /// let mut buf = [MaybeUninit::<u8>::uninit(); 512];
    /// let stack = Stack::with_buffer(&mut buf);
    /// assert!(stack.alloc(Layout::new::<[u8; 64]>()).is_ok());
    /// // More than the buffer holds: an error, not a panic.
    /// assert!(stack.alloc(Layout::new::<[u8; 1024]>()).is_err());
    /// ```
    pub fn with_buffer(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        let b = Buffer::new(buf);
        let n = b.remaining_aligned(REGION_ALIGN);
        match Self::with_source(b, n) {
            Ok(s) => s,
            // Unreachable (the buffer has exactly `n` aligned bytes), but stay total.
            Err(AllocError) => Self::empty_on(Buffer::new(&mut [])),
        }
    }
}

impl<S: Source> Stack<S> {
    /// A stack of `bytes` bytes taken from `source` now.
    ///
    /// ```
    /// use allocator_api2::alloc::Global;
    /// use oxalloc_typed::{Parent, Stack};
    /// let stack = Stack::with_source(Parent(Global), 4096).unwrap();
    /// assert!(stack.stats().capacity_bytes >= 4096);
    /// ```
    pub fn with_source(source: S, bytes: usize) -> Result<Self, AllocError> {
        let layout = or_err(Layout::from_size_align(bytes, REGION_ALIGN).ok())?;
        let region = or_err(source.acquire(layout))?;
        Ok(Self {
            source,
            base: region.cast(),
            cap: region.len(),
            top: Cell::new(0),
            last: Cell::new(NONE),
            serial: Cell::new(0),
            depth: Cell::new(0),
        })
    }

    fn empty_on(source: S) -> Self {
        Self {
            source,
            base: NonNull::dangling(),
            cap: 0,
            top: Cell::new(0),
            last: Cell::new(NONE),
            serial: Cell::new(0),
            depth: Cell::new(0),
        }
    }

    fn header(&self, payload: usize) -> *mut Header {
        self.base.as_ptr().wrapping_add(payload - HEADER).cast()
    }

    /// Pushes an allocation of `layout`. `AllocError` when the region is full.
    #[inline]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let align = layout.align().max(mem::align_of::<Header>());
        let base = self.base.as_ptr() as usize;
        let top = self.top.get();
        let at = or_err((base + top).checked_add(HEADER + align - 1))? & !(align - 1);
        let payload = at - base;
        let new_top = or_err(payload.checked_add(layout.size()))?;
        if new_top > self.cap {
            return Err(AllocError);
        }
        let serial = self.serial.get() + 1;
        self.serial.set(serial);
        // SAFETY: `payload - HEADER >= top` and the header is aligned (align >= 8), all
        // inside the free part of our region.
        unsafe {
            self.header(payload).write(Header {
                prev_top: top,
                prev_last: self.last.get(),
                serial,
            })
        };
        self.top.set(new_top);
        self.last.set(payload);
        self.depth.set(self.depth.get() + 1);
        // SAFETY: inside the region, never null.
        Ok(unsafe { self.base.add(payload) })
    }

    /// Pops `ptr`, which must be the top allocation; otherwise
    /// [`StackError::OutOfOrder`] and nothing changes.
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), StackError> {
        if self.last.get() == NONE
            || self.base.as_ptr().wrapping_add(self.last.get()) != ptr.as_ptr()
        {
            return Err(StackError::OutOfOrder);
        }
        self.pop();
        self.pop_deferred();
        Ok(())
    }

    fn pop(&self) {
        // SAFETY: `last` is a live allocation, so its header is intact.
        let h = unsafe { self.header(self.last.get()).read() };
        self.top.set(h.prev_top);
        self.last.set(h.prev_last);
        self.depth.set(self.depth.get() - 1);
    }

    fn pop_deferred(&self) {
        while self.last.get() != NONE {
            // SAFETY: `last` is live; its header is intact.
            let serial = unsafe { (*self.header(self.last.get())).serial };
            if serial & DEFERRED == 0 {
                break;
            }
            self.pop();
        }
    }

    /// The current position.
    pub fn marker(&self) -> Marker {
        let last = self.last.get();
        // SAFETY: `last` is live when not NONE.
        let serial = if last == NONE {
            0
        } else {
            // SAFETY: `last` is live, so its header is intact.
            let s = unsafe { (*self.header(last)).serial };
            s & !DEFERRED
        };
        Marker {
            top: self.top.get(),
            last,
            serial,
        }
    }

    /// Frees everything allocated after `m` (O(allocations freed)).
    /// [`StackError::StaleMarker`] when `m`'s position is gone; nothing changes then.
    pub fn free_to(&self, m: Marker) -> Result<(), StackError> {
        if m.top > self.top.get() {
            return Err(StackError::StaleMarker);
        }
        let mut cur = self.last.get();
        let mut popped = 0;
        while cur != NONE && (m.last == NONE || cur > m.last) {
            // SAFETY: `cur` walks the chain of live allocations.
            cur = unsafe { (*self.header(cur)).prev_last };
            popped += 1;
        }
        let same = if m.last == NONE {
            cur == NONE && m.top == 0
        } else {
            // SAFETY: `cur` is live when not NONE.
            cur == m.last && unsafe { (*self.header(cur)).serial } & !DEFERRED == m.serial
        };
        if !same {
            return Err(StackError::StaleMarker);
        }
        self.top.set(m.top);
        self.last.set(m.last);
        self.depth.set(self.depth.get() - popped);
        self.pop_deferred();
        Ok(())
    }

    /// Frees everything. `&mut self`: no allocation can still be borrowed.
    pub fn reset(&mut self) {
        self.top.set(0);
        self.last.set(NONE);
        self.depth.set(0);
    }

    /// Counters.
    pub fn stats(&self) -> StackStats {
        StackStats {
            used_bytes: self.top.get(),
            capacity_bytes: self.cap,
            depth: self.depth.get(),
        }
    }
}

impl<S: Source> Drop for Stack<S> {
    fn drop(&mut self) {
        if self.cap > 0 {
            let r = NonNull::slice_from_raw_parts(self.base, self.cap);
            // SAFETY: the region came from `acquire` with REGION_ALIGN; released once.
            unsafe { self.source.release(r, REGION_ALIGN) };
        }
    }
}

// SAFETY: allocations are disjoint ranges below `top`, valid until popped; `deallocate`
// pops only the top (or defers), and in-place grow/shrink touch only the top block.
unsafe impl<S: Source> Allocator for Stack<S> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self.alloc(layout)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        if self.free(ptr).is_err() {
            let off = ptr.as_ptr() as usize - self.base.as_ptr() as usize;
            // SAFETY: Allocator contract: `ptr` is a live allocation of ours, so its
            // header sits just before it.
            unsafe { (*self.header(off)).serial |= DEFERRED };
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let off = ptr.as_ptr() as usize - self.base.as_ptr() as usize;
        let aligned = ptr.as_ptr() as usize & (new.align() - 1) == 0;
        if aligned && off == self.last.get() && new.size() <= self.cap - off {
            self.top.set(off + new.size());
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let p = self.alloc(new)?;
        // SAFETY: `ptr` holds `old.size()` bytes; `p` is a fresh block above it.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Ok(NonNull::slice_from_raw_parts(p, new.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        _old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if ptr.as_ptr() as usize & (new.align() - 1) != 0 {
            return Err(AllocError);
        }
        let off = ptr.as_ptr() as usize - self.base.as_ptr() as usize;
        if off == self.last.get() {
            self.top.set(off + new.size());
        }
        Ok(NonNull::slice_from_raw_parts(ptr, new.size()))
    }
}
