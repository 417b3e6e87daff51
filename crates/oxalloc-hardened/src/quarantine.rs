//! The quarantine: a FIFO ring of freed block addresses. A freed block is zeroed and
//! waits here for `capacity` further frees before it can be reused, so a dangling
//! pointer keeps pointing at zeroes for a long while, and a write through it is caught
//! when the block leaves the ring (the block must still be all zero).
//!
//! The ring lives in its own mapping, away from user data. Used under its class lock.
#![forbid(unsafe_code)]

use crate::meta::Arena;

/// A fixed-capacity FIFO of addresses.
pub struct Ring {
    buf: Arena,
    capacity: usize,
    head: usize,
    len: usize,
}

impl Ring {
    /// An empty ring that holds nothing until [`Ring::init`].
    pub const fn empty() -> Ring {
        Ring {
            buf: Arena::empty(),
            capacity: 0,
            head: 0,
            len: 0,
        }
    }

    /// Maps room for `capacity` entries. With capacity 0 every push is evicted at once.
    pub fn init(&mut self, capacity: usize) -> bool {
        if capacity == 0 {
            return true;
        }
        let bytes = capacity * core::mem::size_of::<usize>();
        if self.buf.reserve(bytes) && self.buf.ensure(bytes) {
            self.capacity = capacity;
            true
        } else {
            false
        }
    }

    /// Adds `addr`; returns the oldest entry if the ring was full (or `addr` itself when
    /// the ring has no room at all).
    #[inline]
    pub fn push(&mut self, addr: usize) -> Option<usize> {
        if self.capacity == 0 {
            return Some(addr);
        }
        let tail = self.wrap(self.head + self.len);
        if self.len == self.capacity {
            let old = core::mem::replace(self.buf.get::<usize>(tail), addr);
            self.head = self.wrap(self.head + 1);
            return Some(old);
        }
        *self.buf.get::<usize>(tail) = addr;
        self.len += 1;
        None
    }

    /// Removes and returns the oldest entry.
    pub fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let v = *self.buf.get::<usize>(self.head);
        self.head = self.wrap(self.head + 1);
        self.len -= 1;
        Some(v)
    }

    /// `i % capacity` for `i < 2 * capacity`, without a division.
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        if i >= self.capacity {
            i - self.capacity
        } else {
            i
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest entry, if any.
    #[inline]
    pub fn oldest(&mut self) -> Option<usize> {
        (self.len != 0).then(|| *self.buf.get::<usize>(self.head))
    }

    /// The `i`-th oldest entry (`i < len`).
    pub fn get(&mut self, i: usize) -> usize {
        let idx = self.wrap(self.head + i);
        *self.buf.get::<usize>(idx)
    }
}
