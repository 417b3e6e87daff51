//! Where the allocators get their memory: the [`Source`] trait and its three kinds,
//! [`Buffer`] (a caller's buffer), [`Parent`] (any `Allocator`) and [`Os`] (pages from
//! `oxalloc-sys`, feature `os`).
//!
//! # Idea
//! Every allocator in this crate asks its source for big regions ("chunks", "slabs", the
//! heap) and never for single objects, so a source may be slow. Regions are handed back
//! with [`Source::release`] when an allocator shrinks or drops.
//!
//! # Contract
//! A region may be larger than asked for (`Os` rounds to pages, `Buffer` hands out all it
//! has left); its user may use all of it and must release it with the exact region and
//! the alignment it asked for.
//!
//! A source must not call back into the allocator that uses it (talc's rule for its
//! `Source`): allocators here call their source while they are between two consistent
//! states, and a call back in would see a half-made change.

use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// A supplier of large regions of memory.
///
/// # Safety
/// `acquire` returns `None` or a region of at least `layout.size()` bytes, aligned to
/// `layout.align()`, valid for reads and writes, and disjoint from every other region
/// that is live (acquired and not yet released) from this source, until it is released.
/// The source must not call back into the allocator that calls it.
pub unsafe trait Source {
    /// A region of at least `layout.size()` bytes aligned to `layout.align()`.
    fn acquire(&self, layout: Layout) -> Option<NonNull<[u8]>>;

    /// Gives a region back.
    ///
    /// # Safety
    /// `region` was returned by `acquire` on this source with alignment `align`, is
    /// released once, and no object in it is used afterwards.
    unsafe fn release(&self, region: NonNull<[u8]>, align: usize);
}

// SAFETY: forwards to `S`, which keeps the contract.
unsafe impl<S: Source + ?Sized> Source for &S {
    fn acquire(&self, layout: Layout) -> Option<NonNull<[u8]>> {
        (**self).acquire(layout)
    }
    unsafe fn release(&self, region: NonNull<[u8]>, align: usize) {
        // SAFETY: caller's contract, passed on.
        unsafe { (**self).release(region, align) }
    }
}

/// Memory from any parent allocator (`allocator_api2::alloc::Global`, a bumpalo, another
/// of our allocators, ...).
#[derive(Clone, Copy, Debug, Default)]
pub struct Parent<A>(pub A);

// SAFETY: `Allocator::allocate` already promises a fitting, disjoint block; `release`
// hands it back with a layout whose size lies between the asked and the given size.
unsafe impl<A: Allocator> Source for Parent<A> {
    fn acquire(&self, layout: Layout) -> Option<NonNull<[u8]>> {
        self.0.allocate(layout).ok()
    }
    unsafe fn release(&self, region: NonNull<[u8]>, align: usize) {
        // SAFETY: `acquire` got `region` from `allocate` with this alignment; its full
        // length "fits" the block (Allocator's memory-fitting rule).
        unsafe {
            let layout = Layout::from_size_align_unchecked(region.len(), align);
            self.0.deallocate(region.cast(), layout)
        }
    }
}

/// A caller's buffer, handed out front to back, exactly as asked. Releasing the most
/// recent region makes its bytes available again; other releases are ignored.
/// [`Buffer::remaining_aligned`] tells how much one region can still get, so a pool or
/// heap on a buffer can take all of it.
pub struct Buffer<'a> {
    start: NonNull<u8>,
    len: usize,
    /// Bytes handed out so far, from `start`.
    used: Cell<usize>,
    _buf: PhantomData<&'a mut [MaybeUninit<u8>]>,
}

// SAFETY: a `Buffer` is the unique owner of its `&mut` slice, which is `Send`; the `Cell`
// is only touched through `&self` by the one allocator that owns the `Buffer`.
unsafe impl Send for Buffer<'_> {}

impl<'a> Buffer<'a> {
    /// Uses `buf` as the memory.
    ///
    /// ```
    /// use core::mem::MaybeUninit;
    /// use oxalloc_typed::{Arena, Buffer};
    /// let mut buf = [MaybeUninit::<u8>::uninit(); 256];
    /// let source = Buffer::new(&mut buf);
    /// assert_eq!(source.remaining(), 256);
    /// let arena = Arena::with_source(source).chunk_bytes(256, 256);
    /// assert!(arena.alloc(1u32).is_ok());
    /// ```
    pub fn new(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        let len = buf.len();
        let start = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap_or(NonNull::dangling());
        Self {
            start,
            len,
            used: Cell::new(0),
            _buf: PhantomData,
        }
    }

    /// Uses `len` bytes at `start` as the memory.
    ///
    /// # Safety
    /// `[start, start+len)` is valid for reads and writes for `'a` and nothing else uses it
    /// meanwhile.
    pub unsafe fn from_raw(start: NonNull<u8>, len: usize) -> Self {
        Self {
            start,
            len,
            used: Cell::new(0),
            _buf: PhantomData,
        }
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> usize {
        self.len - self.used.get()
    }

    /// The largest region `acquire` can give at alignment `align` (a power of two).
    pub fn remaining_aligned(&self, align: usize) -> usize {
        let at = self.start.as_ptr() as usize + self.used.get();
        let skip = at.wrapping_neg() & (align - 1);
        self.remaining().saturating_sub(skip)
    }
}

// SAFETY: regions are carved front to back from the caller's exclusive buffer and never
// overlap; a region is reused only after the one at the top was released.
unsafe impl Source for Buffer<'_> {
    fn acquire(&self, layout: Layout) -> Option<NonNull<[u8]>> {
        let base = self.start.as_ptr() as usize;
        let at = base.checked_add(self.used.get())?;
        let aligned = at.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let skip = aligned - base;
        if skip > self.len || self.len - skip < layout.size() {
            return None;
        }
        let len = layout.size();
        self.used.set(skip + len);
        // SAFETY: `skip <= len`, so the pointer stays inside (or one past) the buffer.
        let p = unsafe { self.start.add(skip) };
        Some(NonNull::slice_from_raw_parts(p, len))
    }

    unsafe fn release(&self, region: NonNull<[u8]>, _align: usize) {
        let base = self.start.as_ptr() as usize;
        let r = region.cast::<u8>().as_ptr() as usize;
        if r + region.len() == base + self.used.get() {
            self.used.set(r - base);
        }
    }
}

/// Pages straight from the kernel (`mmap` through `oxalloc-sys`). Lengths are rounded up
/// to [`oxalloc_sys::PAGE_SIZE`]; alignments above a page use `map_aligned`.
#[cfg(feature = "os")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Os;

#[cfg(feature = "os")]
impl Os {
    fn round(len: usize) -> Option<usize> {
        let page = oxalloc_sys::PAGE_SIZE;
        Some(len.max(1).checked_add(page - 1)? & !(page - 1))
    }
}

// SAFETY: fresh anonymous mappings are disjoint from everything else and page aligned
// (or `align` aligned through `map_aligned`); `release` unmaps exactly what was mapped.
#[cfg(feature = "os")]
unsafe impl Source for Os {
    fn acquire(&self, layout: Layout) -> Option<NonNull<[u8]>> {
        let len = Self::round(layout.size())?;
        let p = if layout.align() <= oxalloc_sys::PAGE_SIZE {
            oxalloc_sys::map(len)?
        } else {
            oxalloc_sys::map_aligned(len, layout.align())?
        };
        Some(NonNull::slice_from_raw_parts(p, len))
    }

    unsafe fn release(&self, region: NonNull<[u8]>, _align: usize) {
        let len = Self::round(region.len()).unwrap_or(region.len());
        // SAFETY: caller's contract: `region` is one whole mapping made by `acquire`
        // (rounding the length again gives the mapped length).
        unsafe { oxalloc_sys::unmap(region.cast::<u8>().as_ptr(), len) }
    }
}

/// `AllocError` for code that produces `Option`.
#[inline]
pub(crate) fn or_err<T>(v: Option<T>) -> Result<T, AllocError> {
    v.ok_or(AllocError)
}
