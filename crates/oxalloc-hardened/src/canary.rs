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

/// The block's bytes as 8-byte words (blocks start 16-byte aligned and their slots end
/// on a 16-byte boundary, so nothing is left over).
#[inline]
fn words(block: &mut [u8]) -> &mut [u64] {
    assert!(
        (block.as_ptr() as usize | block.len()).is_multiple_of(8),
        "blocks are word aligned"
    );
    // SAFETY: the slice is 8-byte aligned and a whole number of words long (checked
    // above); every bit pattern is a valid `u64` and a valid `u8`, and the result
    // borrows `block` mutably, so nothing else sees the bytes meanwhile.
    unsafe { core::slice::from_raw_parts_mut(block.as_mut_ptr().cast::<u64>(), block.len() / 8) }
}

/// Mask of the bytes of word `n / 8` that belong to the user (below offset `n`).
fn user_mask(n: usize) -> u64 {
    match n % 8 {
        0 => 0,
        r => (1u64 << (8 * r)) - 1,
    }
}

/// Writes the canary over `block[n..]`, where `block` is the whole slot of the block at
/// `addr` (user bytes first). Byte `i` of the canary area gets byte `i % 8` of the
/// pattern, written a word at a time.
#[inline]
pub fn write(addr: usize, block: &mut [u8], n: usize) {
    let pat = pattern(addr).to_le();
    let w = words(block);
    let first = n / 8;
    if first >= w.len() {
        return;
    }
    let keep = user_mask(n);
    w[first] = (w[first] & keep) | (pat & !keep);
    w[first + 1..].fill(pat);
}

/// [`write`] for a slot known to be all zero (a free slot: fresh from the kernel, or
/// zeroed on free and checked when it left the quarantine): the user bytes need not be
/// kept, so nothing is read and a cold slot costs no load stall.
#[inline]
pub fn write_fresh(addr: usize, block: &mut [u8], n: usize) {
    let pat = pattern(addr).to_le();
    let w = words(block);
    let first = n / 8;
    if first >= w.len() {
        return;
    }
    w[first] = pat & !user_mask(n);
    w[first + 1..].fill(pat);
}

/// Checks the canary in `block[n..]`; returns the offset of the first changed byte.
/// The common case (intact) is one branch-free pass over the canary words.
#[inline]
pub fn check(addr: usize, block: &mut [u8], n: usize) -> Option<usize> {
    let pat = pattern(addr).to_le();
    let w = words(block);
    let first = n / 8;
    if first >= w.len() {
        return None;
    }
    let acc = w[first + 1..]
        .iter()
        .fold((w[first] ^ pat) & !user_mask(n), |a, &x| a | (x ^ pat));
    if acc == 0 {
        return None;
    }
    find_change(pat, w, n)
}

/// Where [`check`] found a change: the offset of the first changed canary byte.
#[cold]
#[inline(never)]
fn find_change(pat: u64, w: &[u64], n: usize) -> Option<usize> {
    let mut skip = user_mask(n);
    for (i, &x) in w.iter().enumerate().skip(n / 8) {
        let diff = ((x ^ pat) & !skip).to_le();
        if diff != 0 {
            return Some(i * 8 + (diff.trailing_zeros() / 8) as usize);
        }
        skip = 0;
    }
    None
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
