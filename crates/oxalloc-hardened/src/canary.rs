//! Canaries: the bytes after a block's requested size are filled with a pattern derived
//! from a per-process secret and the block's address. A heap overflow by even one byte
//! changes them, and `free`/`realloc` notice. [`pattern`] serves every block (small
//! blocks write and check theirs in `crate::small`, with the size word); [`write()`] and
//! [`check`] fill and check the slack of large blocks.
//!
//! The pattern differs per block (address mixed in), so an attacker who learns one
//! canary cannot forge another, and a copy of a neighbour's bytes does not pass.
//!
//! The canary's first byte (right after the requested size) is 0 instead of the
//! pattern, so a C string that fills its block to the requested size without a
//! terminator still ends there. An overflow by one byte is then missed only when it
//! writes 0 (1 value in 256).

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

/// Writes the canary over `block[n..]`, where `block` is the whole block at
/// `addr` (user bytes first). Byte `i` of the canary area gets byte `i % 8` of the
/// pattern, written a word at a time; then byte `n` gets 0.
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
    if let Some(b) = block.get_mut(n) {
        *b = 0;
    }
}

/// Checks the canary in `block[n..]`; returns the offset of the first changed byte.
/// The common case (intact) is one branch-free pass over the canary words.
#[inline]
pub fn check(addr: usize, block: &mut [u8], n: usize) -> Option<usize> {
    match block.get(n) {
        None => return None,
        Some(0) => {}
        Some(_) => return Some(n),
    }
    // The rest is the pattern from `n + 1` on.
    let n = n + 1;
    let pat = pattern(addr).to_le();
    #[cfg(target_arch = "x86_64")]
    if (block.as_ptr() as usize | block.len()).is_multiple_of(16) {
        if sse2::intact(pat, block, n) {
            return None;
        }
        return find_change(pat, block, n);
    }
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

/// The canary a vector at a time, for blocks that start 16-byte aligned and are a
/// multiple of 16 bytes long (large blocks' slack): from the vector that
/// holds offset `n` to the end, the first vector masked below `n`. The pattern has a
/// period of 8 bytes and starts at an aligned word, so every aligned vector of the
/// canary is the pattern twice. A canary is at most a few vectors, so this is a short
/// loop with no set-up, where the word loop was vectorised with a prologue and a tail.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_load_si128, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi64x, _mm_setzero_si128, _mm_xor_si128,
    };

    /// 16 zero bytes then 16 0xFF bytes: the 16 bytes at `16 - r` keep all but the
    /// first `r` bytes of a vector.
    static KEEP: [u8; 32] = {
        let mut t = [0u8; 32];
        let mut i = 16;
        while i < 32 {
            t[i] = 0xFF;
            i += 1;
        }
        t
    };

    /// The mask of the bytes of the vector at `n & !15` that are canary (at or past `n`).
    #[inline]
    fn keep(n: usize) -> __m128i {
        let r = n % 16;
        // SAFETY: SSE2 is part of x86-64; reads 16 bytes at `16 - r` (1..=16) of the
        // 32-byte table.
        unsafe { _mm_loadu_si128(KEEP[16 - r..].as_ptr().cast::<__m128i>()) }
    }

    /// True when the canary in `block[n..]` is intact (`block` 16-byte aligned, a
    /// multiple of 16 bytes long: checked by the caller).
    #[inline]
    pub fn intact(pat: u64, block: &[u8], n: usize) -> bool {
        let len = block.len();
        let mut i = n & !15;
        if i >= len {
            return true;
        }
        let p = block.as_ptr();
        // SAFETY: SSE2 is part of x86-64; every load reads the aligned vector at
        // `i < len` (a multiple of 16), inside `block`.
        unsafe {
            let v = _mm_set1_epi64x(pat as i64);
            let ld = |i: usize| _mm_xor_si128(_mm_load_si128(p.add(i).cast::<__m128i>()), v);
            let mut acc = _mm_and_si128(ld(i), keep(n));
            i += 16;
            while i < len {
                acc = _mm_or_si128(acc, ld(i));
                i += 16;
            }
            _mm_movemask_epi8(_mm_cmpeq_epi8(acc, _mm_setzero_si128())) == 0xFFFF
        }
    }
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

    #[repr(align(16))]
    struct Buf([u8; 80]);

    #[test]
    fn detects_one_changed_byte() {
        // No `init` here: this test binary's own malloc is the hardened one, and a new
        // secret would invalidate the canaries of every live block.
        // Offset 0: 16-byte aligned, lengths 64 and 80 (the vector path); offset 8:
        // word aligned only (the word path).
        for (off, len) in [(0, 64), (0, 80), (8, 64), (8, 72)] {
            let mut a = Buf([0; 80]);
            one_block(&mut a.0[off..off + len]);
        }
        assert_ne!(pattern(0x1000), pattern(0x1010));
    }

    fn one_block(t: &mut [u8]) {
        let len = t.len();
        for n in [0, 1, 7, 8, 13, 15, 16, 17, 40, 63, len - 1, len] {
            t.fill(0x55);
            write(0x1000, t, n);
            assert!(t[..n].iter().all(|&b| b == 0x55), "user bytes kept");
            if n < len {
                assert_eq!(t[n], 0, "the first canary byte ends a string");
            }
            assert_eq!(check(0x1000, t, n), None, "{n}");
            for i in n..len {
                t[i] ^= 1;
                assert_eq!(check(0x1000, t, n), Some(i), "{n} {i}");
                t[i] ^= 1;
            }
            if n < len {
                t[len - 1] ^= 0x80;
                assert_eq!(check(0x1000, t, n), Some(len - 1));
                t[len - 1] ^= 0x80;
            }
            if n > 0 {
                t[n - 1] ^= 0xFF;
                assert_eq!(check(0x1000, t, n), None, "user byte {n} is not canary");
            }
        }
    }
}
