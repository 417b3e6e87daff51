//! Canaries: the bytes after a block's requested size, up to the end of its slot (at
//! least 16 bytes, since every slot has 16 spare bytes after its class size), are filled
//! with a pattern derived from a per-process secret and the block's address. A heap
//! overflow by even one byte changes them, and `free`/`realloc` notice.
//!
//! The pattern differs per block (address mixed in), so an attacker who learns one
//! canary cannot forge another, and a copy of a neighbour's bytes does not pass.
#![deny(unsafe_code)]

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

/// Writes the canary into `tail`, the bytes `[from, to)` of the block at `addr`.
#[inline]
pub fn write(addr: usize, tail: &mut [u8], from: usize) {
    let pat = pattern(addr).to_le_bytes();
    for (i, b) in tail.iter_mut().enumerate() {
        *b = pat[(from + i) & 7];
    }
}

/// Checks the canary in `tail` (the bytes from offset `from` of the block at `addr`);
/// returns the offset of the first changed byte.
#[inline]
pub fn check(addr: usize, tail: &[u8], from: usize) -> Option<usize> {
    let pat = pattern(addr).to_le_bytes();
    for (i, &b) in tail.iter().enumerate() {
        if b != pat[(from + i) & 7] {
            return Some(from + i);
        }
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
        let mut t = [0u8; 24];
        write(0x1000, &mut t, 40);
        assert_eq!(check(0x1000, &t, 40), None);
        t[3] ^= 1;
        assert_eq!(check(0x1000, &t, 40), Some(43));
        assert_ne!(pattern(0x1000), pattern(0x1010));
    }
}
