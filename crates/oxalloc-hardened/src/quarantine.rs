//! The large blocks' quarantine: a FIFO ring of freed block addresses. A freed large
//! block is made inaccessible and waits here for `capacity` further large frees before
//! its mapping is unmapped, so a dangling pointer faults and a second free is known.
//!
//! The ring lives in its own mapping, away from user data. Used under the large lock.
#![forbid(unsafe_code)]

use crate::arena::Arena;

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

    /// `i % capacity` for `i < 2 * capacity`, without a division.
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        if i >= self.capacity {
            i - self.capacity
        } else {
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_lets_out_the_oldest_once_full() {
        let mut r = Ring::empty();
        assert!(r.init(3));
        for a in 1..=3 {
            assert_eq!(r.push(a), None);
        }
        for a in 4..=10 {
            assert_eq!(r.push(a), Some(a - 3), "FIFO across wrap-around");
        }
        let mut none = Ring::empty();
        assert!(none.init(0));
        assert_eq!(none.push(7), Some(7), "no room: let out at once");
    }
}
