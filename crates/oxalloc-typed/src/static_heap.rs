//! General-purpose heaps on a fixed region: [`StaticHeap`] (a buffer, the OS or a
//! parent allocator; `&self`, not `Sync`) and [`GlobalStaticHeap`] (its own `static`
//! buffer behind a spin lock; a `#[global_allocator]` for `#![no_std]` programs).
//!
//! # Idea
//! Any size, any alignment, free in any order, on memory fixed up front (`.bss` on an
//! embedded target). The work is done by the TLSF engine in the private `tlsf` module: O(1)
//! allocate and free, immediate coalescing of neighbours against fragmentation, 8 bytes
//! of header per block. [`HeapStats`] reports the largest free block against all free
//! memory, so a program can watch its fragmentation.
//!
//! # Invariants
//! * The engine's state is only touched through short borrows that never span a call
//!   out (`StaticHeap`), or under the lock (`GlobalStaticHeap`).
//! * `GlobalStaticHeap` initialises itself on first use, from inside the lock, over its
//!   own buffer; the engine stores offsets, not addresses.

use crate::lock::SpinLock;
use crate::source::{or_err, Buffer, Source};
use crate::tlsf::Tlsf;
pub use crate::tlsf::{HeapError, HeapStats};
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

const REGION_ALIGN: usize = 16;

/// A TLSF heap on one region.
///
/// ```
/// use oxalloc_typed::StaticHeap;
/// use core::mem::MaybeUninit;
/// let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
/// let heap = StaticHeap::with_buffer(&mut buf);
/// let mut v = allocator_api2::vec::Vec::new_in(&heap);
/// v.extend_from_slice(&[1u32, 2, 3]);
/// assert_eq!(heap.stats().used_blocks, 1);
/// ```
pub struct StaticHeap<S: Source> {
    source: S,
    region: NonNull<[u8]>,
    tlsf: UnsafeCell<Tlsf>,
}

// SAFETY: the heap owns its region; moving it moves that ownership.
unsafe impl<S: Source + Send> Send for StaticHeap<S> {}

impl<'a> StaticHeap<Buffer<'a>> {
    /// A heap on the caller's buffer (e.g. a static array). A buffer too small for one
    /// block (about 32 bytes) gives a heap that refuses every request.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use core::mem::MaybeUninit;
    /// use oxalloc_typed::StaticHeap;
    /// let mut buf = [MaybeUninit::<u8>::uninit(); 16];
    /// // Too small for one block: every request is refused.
    /// let heap = StaticHeap::with_buffer(&mut buf);
    /// assert!(heap.alloc(Layout::new::<u8>()).is_err());
    /// ```
    pub fn with_buffer(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        let b = Buffer::new(buf);
        let n = b.remaining_aligned(REGION_ALIGN);
        match Self::with_source(b, n) {
            Ok(h) => h,
            Err(AllocError) => Self {
                source: Buffer::new(&mut []),
                region: NonNull::slice_from_raw_parts(NonNull::dangling(), 0),
                tlsf: UnsafeCell::new(Tlsf::EMPTY),
            },
        }
    }
}

#[cfg(feature = "os")]
impl StaticHeap<crate::Os> {
    /// A heap of `bytes` bytes mapped from the OS now (pages are touched when used).
    ///
    /// ```
    /// use oxalloc_typed::StaticHeap;
    /// let heap = StaticHeap::with_capacity(1 << 20).unwrap();
    /// let mut v = allocator_api2::vec::Vec::new_in(&heap);
    /// v.extend_from_slice(&[0u8; 1000]);
    /// assert_eq!(heap.stats().used_blocks, 1);
    /// assert!(heap.stats().heap_bytes >= 1 << 20);
    /// ```
    pub fn with_capacity(bytes: usize) -> Result<Self, AllocError> {
        Self::with_source(crate::Os, bytes)
    }
}

impl<S: Source> StaticHeap<S> {
    /// A heap on `bytes` bytes taken from `source` now (at most 4 GiB are used).
    ///
    /// ```
    /// use allocator_api2::alloc::Global;
    /// use core::alloc::Layout;
    /// use oxalloc_typed::{Parent, StaticHeap};
    /// let heap = StaticHeap::with_source(Parent(Global), 64 << 10).unwrap();
    /// let p = heap.alloc(Layout::new::<[u64; 8]>()).unwrap();
    /// // SAFETY: `p` came from this heap and is freed once.
    /// unsafe { heap.free(p) }.unwrap();
    /// ```
    pub fn with_source(source: S, bytes: usize) -> Result<Self, AllocError> {
        let layout = or_err(Layout::from_size_align(bytes, REGION_ALIGN).ok())?;
        let region = or_err(source.acquire(layout))?;
        let mut tlsf = Tlsf::EMPTY;
        // SAFETY: the region is ours, aligned to 16, `region.len()` bytes.
        if !unsafe { tlsf.init(region.cast().as_ptr(), region.len()) } {
            // SAFETY: just acquired with this alignment, unused.
            unsafe { source.release(region, REGION_ALIGN) };
            return Err(AllocError);
        }
        Ok(Self {
            source,
            region,
            tlsf: UnsafeCell::new(tlsf),
        })
    }

    fn base(&self) -> *mut u8 {
        self.region.cast().as_ptr()
    }

    /// Allocates `layout`. O(1).
    #[inline]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: short borrow; no other borrow of the engine is live.
        let t = unsafe { &mut *self.tlsf.get() };
        let off = or_err(t.alloc(self.base(), layout.size(), layout.align()))?;
        // SAFETY: the payload offset lies inside the region; never null.
        Ok(unsafe { NonNull::new_unchecked(self.base().add(off as usize)) })
    }

    /// Frees `ptr` and merges it with free neighbours. O(1). A double free is caught
    /// (while the block's header is intact) and refused with an error.
    ///
    /// # Safety
    /// `ptr` came from this heap's `alloc` and is not used afterwards.
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>) -> Result<(), HeapError> {
        // SAFETY: short borrow; caller's contract on `ptr`.
        unsafe { (*self.tlsf.get()).free(self.base(), ptr.as_ptr() as usize) }
    }

    /// Counters and fragmentation.
    pub fn stats(&self) -> HeapStats {
        // SAFETY: short borrow.
        unsafe { (*self.tlsf.get()).stats(self.base()) }
    }

    /// Walks all blocks and checks the engine's invariants.
    pub fn check(&self) -> Result<(), &'static str> {
        // SAFETY: short borrow.
        unsafe { (*self.tlsf.get()).check(self.base()) }
    }
}

impl<S: Source> Drop for StaticHeap<S> {
    fn drop(&mut self) {
        if !self.region.is_empty() {
            // SAFETY: acquired with REGION_ALIGN; released once; the heap is gone.
            unsafe { self.source.release(self.region, REGION_ALIGN) };
        }
    }
}

/// `Allocator::grow`/`shrink` for the TLSF heaps: in place when the next block is free.
///
/// # Safety
/// Allocator's grow contract; `t` is the engine of the heap at `base`.
unsafe fn grow_with(
    t: &mut Tlsf,
    base: *mut u8,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    let p = ptr.as_ptr();
    if p as usize & (new.align() - 1) == 0 {
        // SAFETY: `ptr` is a live block (caller's contract).
        if unsafe { t.grow_in_place(base, p as usize, new.size()) } {
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
    }
    let off = or_err(t.alloc(base, new.size(), new.align()))?;
    // SAFETY: a fresh block inside the heap, disjoint from `ptr`'s; then `ptr` is freed.
    unsafe {
        let q = base.add(off as usize);
        ptr::copy_nonoverlapping(p, q, old.size());
        let _ = t.free(base, p as usize);
        Ok(NonNull::slice_from_raw_parts(
            NonNull::new_unchecked(q),
            new.size(),
        ))
    }
}

// SAFETY: TLSF blocks are disjoint, aligned as asked and valid until freed; grow copies
// into a fresh block before freeing the old one.
unsafe impl<S: Source> Allocator for StaticHeap<S> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = self.alloc(layout)?;
        // SAFETY: `p` is a live block.
        let n = unsafe { (*self.tlsf.get()).usable(self.base(), p.as_ptr() as usize) };
        Ok(NonNull::slice_from_raw_parts(p, n))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: Allocator contract.
        let _ = unsafe { self.free(ptr) };
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: short borrow; Allocator contract passed on.
        unsafe { grow_with(&mut *self.tlsf.get(), self.base(), ptr, old, new) }
    }
}

#[repr(C, align(16))]
struct AlignedBuf<const N: usize>(UnsafeCell<[MaybeUninit<u8>; N]>);

/// A heap with its own buffer of `N` bytes, for `static` use as `#[global_allocator]`.
///
/// ```
/// #[global_allocator]
/// static HEAP: oxalloc_typed::GlobalStaticHeap<{ 1 << 20 }> = oxalloc_typed::GlobalStaticHeap::new();
///
/// fn main() {
///     let v: Vec<u32> = (0..1000).collect();
///     assert_eq!(v.iter().sum::<u32>(), 499_500);
///     assert!(HEAP.stats().used_blocks >= 1);
///     // More than the buffer holds: the allocation fails (here as an error value).
///     let mut big: Vec<u8> = Vec::new();
///     assert!(big.try_reserve(2 << 20).is_err());
/// }
/// ```
/// The buffer lands in `.bss`; the heap sets itself up on the first allocation.
pub struct GlobalStaticHeap<const N: usize> {
    buf: AlignedBuf<N>,
    tlsf: SpinLock<Tlsf>,
}

// SAFETY: the buffer is only touched by the engine under `tlsf`'s lock, and by the
// owners of blocks it handed out, which are disjoint.
unsafe impl<const N: usize> Sync for GlobalStaticHeap<N> {}

impl<const N: usize> Default for GlobalStaticHeap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> GlobalStaticHeap<N> {
    /// An unused heap; `const` for `static`s.
    pub const fn new() -> Self {
        Self {
            buf: AlignedBuf(UnsafeCell::new([MaybeUninit::uninit(); N])),
            tlsf: SpinLock::new(Tlsf::EMPTY),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tlsf, *mut u8) -> R) -> R {
        let mut t = self.tlsf.lock();
        let base = self.buf.0.get().cast::<u8>();
        if !t.is_init() {
            // SAFETY: our own 16-aligned buffer of N bytes, handed to the engine under the
            // lock; before init no block exists in it.
            unsafe { t.init(base, N) };
        }
        f(&mut t, base)
    }

    /// Counters and fragmentation.
    pub fn stats(&self) -> HeapStats {
        self.with(|t, base| t.stats(base))
    }

    /// Walks all blocks and checks the engine's invariants.
    pub fn check(&self) -> Result<(), &'static str> {
        self.with(|t, base| t.check(base))
    }
}

// SAFETY: as for `StaticHeap`, with every engine call under the lock.
unsafe impl<const N: usize> Allocator for GlobalStaticHeap<N> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.with(|t, base| {
            let off = or_err(t.alloc(base, layout.size(), layout.align()))?;
            // SAFETY: a payload offset inside our buffer, never null.
            let p = unsafe { NonNull::new_unchecked(base.add(off as usize)) };
            Ok(NonNull::slice_from_raw_parts(p, layout.size()))
        })
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: Allocator contract: a live block of this heap.
        self.with(|t, base| unsafe {
            let _ = t.free(base, ptr.as_ptr() as usize);
        })
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: Allocator contract passed on, under the lock.
        self.with(|t, base| unsafe { grow_with(t, base, ptr, old, new) })
    }
}

// SAFETY: null on failure, else a block fitting `layout`; `dealloc` frees such blocks;
// `realloc` keeps the contents up to the smaller size.
unsafe impl<const N: usize> GlobalAlloc for GlobalStaticHeap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate(layout)
            .map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc contract.
            unsafe { self.deallocate(p, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let Some(p) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: GlobalAlloc contract: `ptr` is live with `layout`, `new_size` > 0.
        unsafe { self.grow(p, layout, new) }.map_or(ptr::null_mut(), |p| p.as_ptr().cast())
    }
}
