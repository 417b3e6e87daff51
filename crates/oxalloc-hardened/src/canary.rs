//! Canaries: the bytes after a block's requested size, up to the end of its slot (at
//! least 16 bytes, since every slot has 16 spare bytes after its class size), are filled
//! with a pattern derived from a per-process secret and the block's address, a word at
//! a time. A heap
//! overflow by even one byte changes them, and `free`/`realloc` notice.
//!
//! The pattern differs per block (address mixed in), so an attacker who learns one
//! canary cannot forge another, and a copy of a neighbour's bytes does not pass.

use core::sync::atomic::{AtomicU64, Ordering};

static SECRET: AtomicU64 = AtomicU64::new(0);

/// Sets the per-process secret (once, at initialisation).
pub fn init(secret: u64) {
    SECRET.store(secret | 1, Ordering::Relaxed);
}

/// The 8-byte pattern for the block at `addr`.
#[inline]
pub fn pattern(addr: usize) -> u64 {
    let x = (addr as u64 ^ SECRET.load(Ordering::Relaxed)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // Never a zero byte, so a zeroed tail never passes for a valid canary.
    (x ^ (x >> 29)) | 0x0101_0101_0101_0101
}

/// Mask of the bytes of word `n / 8` that belong to the user (below offset `n`):
/// `(1 << 8 * (n % 8)) - 1`, which is 0 when `n` is a multiple of 8 (no branch).
#[inline]
fn user_mask(n: usize) -> u64 {
    (1u64 << (8 * (n % 8))) - 1
}

/// The canary words of `block` from the word that holds offset `n` to the end, as
/// `(pointer to that word, number of words)`; `None` when `n` is at or past the end.
/// The slice must be a whole number of 8-byte words long (blocks end on a 16-byte
/// boundary; checked), so every word lies inside it.
#[inline]
fn tail(block: &mut [u8], n: usize) -> Option<(*mut u8, usize)> {
    let len = block.len();
    assert!(len.is_multiple_of(8), "blocks end on a word boundary");
    let first = n & !7;
    if first >= len {
        return None;
    }
    // In bounds: `first < len`.
    Some((block[first..].as_mut_ptr(), (len - first) / 8))
}

/// Writes the canary over `block[n..]`, where `block` is the whole slot of the block at
/// `addr` (user bytes first). Byte `i` of the canary area gets byte `i % 8` of the
/// pattern, written a word at a time.
#[inline]
pub fn write(addr: usize, block: &mut [u8], n: usize) {
    let pat = pattern(addr).to_le();
    let Some((p, words)) = tail(block, n) else {
        return;
    };
    let keep = user_mask(n);
    // SAFETY: `p` and the `words - 1` words after it lie in `block` (see `tail`), which
    // we borrow mutably; unaligned accesses, so no alignment is assumed.
    unsafe {
        let w0 = p.cast::<u64>().read_unaligned();
        p.cast::<u64>().write_unaligned((w0 & keep) | (pat & !keep));
        for i in 1..words {
            p.add(8 * i).cast::<u64>().write_unaligned(pat);
        }
    }
}

/// [`write`] for a slot known to be all zero (a free slot: fresh from the kernel, or
/// zeroed on free and checked when it left the quarantine): the user bytes need not be
/// kept, so nothing is read and a cold slot costs no load stall.
#[inline]
pub fn write_fresh(addr: usize, block: &mut [u8], n: usize) {
    let pat = pattern(addr).to_le();
    let Some((p, words)) = tail(block, n) else {
        return;
    };
    // SAFETY: as in `write`.
    unsafe {
        p.cast::<u64>().write_unaligned(pat & !user_mask(n));
        for i in 1..words {
            p.add(8 * i).cast::<u64>().write_unaligned(pat);
        }
    }
}

/// Checks the canary in `block[n..]`; returns the offset of the first changed byte.
/// The common case (intact) is one branch-free pass over the canary words.
#[inline]
pub fn check(addr: usize, block: &mut [u8], n: usize) -> Option<usize> {
    let pat = pattern(addr).to_le();
    let (p, words) = tail(block, n)?;
    // SAFETY: as in `write`; only reads.
    let acc = unsafe {
        let mut acc = (p.cast::<u64>().read_unaligned() ^ pat) & !user_mask(n);
        for i in 1..words {
            acc |= p.add(8 * i).cast::<u64>().read_unaligned() ^ pat;
        }
        acc
    };
    if acc == 0 {
        return None;
    }
    find_change(pat, block, n)
}

/// Where [`check`] found a change: the offset of the first changed canary byte.
#[cold]
#[inline(never)]
fn find_change(pat: u64, block: &[u8], n: usize) -> Option<usize> {
    let pat = pat.to_ne_bytes();
    (n..block.len()).find(|&i| block[i] != pat[i % 8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_one_changed_byte() {
        // No `init` here: this test binary's own malloc is the hardened one, and a new
        // secret would invalidate the canaries of every live block.
        let mut buf = [0u64; 8];
        // SAFETY: viewing a `[u64; 8]` as 64 bytes.
        let t = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), 64) };
        for n in [0, 1, 7, 8, 13, 40, 63, 64] {
            t.fill(0x55);
            write(0x1000, t, n);
            assert!(t[..n].iter().all(|&b| b == 0x55), "user bytes kept");
            assert_eq!(check(0x1000, t, n), None, "{n}");
            let mut z = [0u64; 8];
            // SAFETY: viewing a `[u64; 8]` as 64 bytes.
            let zb = unsafe { core::slice::from_raw_parts_mut(z.as_mut_ptr().cast::<u8>(), 64) };
            write_fresh(0x1000, zb, n);
            assert!(zb[..n].iter().all(|&b| b == 0), "user bytes stay zero");
            assert_eq!(check(0x1000, zb, n), None, "{n}");
            if n < 64 {
                t[n] ^= 1;
                assert_eq!(check(0x1000, t, n), Some(n));
                t[n] ^= 1;
                t[63] ^= 0x80;
                assert_eq!(check(0x1000, t, n), Some(63));
            }
        }
        assert_ne!(pattern(0x1000), pattern(0x1010));
    }
}
