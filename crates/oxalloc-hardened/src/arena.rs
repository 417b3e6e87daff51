//! An [`Arena`]: address space reserved up front and committed as it grows, for the
//! allocator's own arrays (the large blocks' quarantine ring), away from user data.

/// Address space reserved as `PROT_NONE` and committed (made read-write) from the
/// start as it is needed, in steps of [`Arena::STEP`] bytes.
pub struct Arena {
    base: usize,
    reserved: usize,
    committed: usize,
}

impl Arena {
    /// Commit granularity.
    pub const STEP: usize = 64 * 1024;

    /// An arena with nothing reserved.
    pub const fn empty() -> Arena {
        Arena {
            base: 0,
            reserved: 0,
            committed: 0,
        }
    }

    /// Reserves `bytes` (rounded up to pages) of address space.
    pub fn reserve(&mut self, bytes: usize) -> bool {
        let len = bytes.next_multiple_of(oxalloc_sys::PAGE_SIZE);
        match oxalloc_sys::reserve(len) {
            Some(p) => {
                self.base = p.as_ptr() as usize;
                self.reserved = len;
                true
            }
            None => false,
        }
    }

    /// Makes sure the first `bytes` bytes are committed.
    pub fn ensure(&mut self, bytes: usize) -> bool {
        if bytes <= self.committed {
            return true;
        }
        if bytes > self.reserved {
            return false;
        }
        let upto = bytes.next_multiple_of(Self::STEP).min(self.reserved);
        let start = self.base + self.committed;
        // SAFETY: `[start, base + upto)` lies in our reservation and was never opened,
        // so it holds no object.
        if !unsafe { oxalloc_sys::protect(start as *mut u8, upto - self.committed, true) } {
            return false;
        }
        self.committed = upto;
        true
    }

    /// Element `i` of the arena seen as an array of `T`.
    ///
    /// Panics (aborts) if the element is not committed, so a bad index can never touch
    /// memory outside the arena.
    #[inline]
    pub fn get<T>(&mut self, i: usize) -> &mut T {
        let size = core::mem::size_of::<T>();
        assert!((i + 1) * size <= self.committed);
        let p = (self.base + i * size) as *mut T;
        // The element lies in committed, read-write memory of this arena (checked
        // above), which is zero-initialised by the kernel, and every `T` used here
        // (addresses) is valid when all zero.
        // SAFETY: as just said; the owner's lock and `&mut self` make it unique.
        unsafe { &mut *p }
    }
}
