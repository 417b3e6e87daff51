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

    /// [`Ring::push`] of every entry of `ids` in order; the entries pushed out go to
    /// `out` (which has room for `ids.len()`); returns how many. The ring's buffer is
    /// bounds-checked once, not per entry.
    #[inline]
    pub fn push_many(&mut self, ids: &[u32], out: &mut [u32]) -> usize {
        if self.capacity == 0 {
            out[..ids.len()].copy_from_slice(ids);
            return ids.len();
        }
        let cap = self.capacity;
        let (mut head, mut len) = (self.head, self.len);
        let buf = self.buf.slice::<usize>(cap);
        let mut e = 0;
        for &id in ids {
            if len == cap {
                out[e] = core::mem::replace(&mut buf[head], id as usize) as u32;
                e += 1;
                head = if head + 1 == cap { 0 } else { head + 1 };
            } else {
                let tail = if head + len >= cap {
                    head + len - cap
                } else {
                    head + len
                };
                buf[tail] = id as usize;
                len += 1;
            }
        }
        (self.head, self.len) = (head, len);
        e
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_many_is_push_in_order() {
        for cap in [0usize, 1, 3, 8] {
            let (mut a, mut b) = (Ring::empty(), Ring::empty());
            assert!(a.init(cap) && b.init(cap));
            let mut next = 1u32;
            for batch in [0usize, 1, 2, 5, 7, 3, 8, 1] {
                let ids: [u32; 8] = core::array::from_fn(|i| next + i as u32);
                next += batch as u32;
                let mut out = [0u32; 8];
                let e = b.push_many(&ids[..batch], &mut out);
                let mut want = [0u32; 8];
                let mut w = 0;
                for &id in &ids[..batch] {
                    if let Some(old) = a.push(id as usize) {
                        want[w] = old as u32;
                        w += 1;
                    }
                }
                assert_eq!(&out[..e], &want[..w], "cap {cap} batch {batch}");
                assert_eq!(a.len(), b.len());
                for i in 0..a.len() {
                    assert_eq!(a.get(i), b.get(i));
                }
            }
        }
    }
}
