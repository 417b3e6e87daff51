//! Zeroing a freed slot and checking that a quarantined slot is still all zero: the
//! two whole-slot passes of `ZERO_ON_FREE`, done inline with 32-byte AVX2 operations
//! where the CPU has them (checked once at start-up, [`init`]) and 16-byte SSE2 ones
//! otherwise (slots start 16-byte aligned and are a multiple of 16 bytes long), four
//! vectors per step and no one-vector tail loop. Compared with the generic loops (a
//! `memset` call; an OR fold that the compiler vectorises with separate unaligned
//! loads and a scalar prologue and tail) this is about half the instructions per slot.
//! Other ranges take the generic path.

use core::sync::atomic::{AtomicBool, Ordering};

/// Whether the CPU (and the kernel) support AVX2.
static AVX2: AtomicBool = AtomicBool::new(false);

/// Detects AVX2 (once, at initialisation; `std`'s detection reads `cpuid`/`xgetbv`
/// and allocates nothing).
pub fn init() {
    #[cfg(target_arch = "x86_64")]
    AVX2.store(std::is_x86_feature_detected!("avx2"), Ordering::Relaxed);
}

/// True when every byte of `b` is zero.
#[inline]
pub fn is_zero(b: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if (b.as_ptr() as usize | b.len()).is_multiple_of(16) {
        if b.len() >= 32 && AVX2.load(Ordering::Relaxed) {
            // SAFETY: the CPU supports AVX2 (detected by `init`).
            return unsafe { avx2::is_zero(b) };
        }
        return sse2::is_zero(b);
    }
    b.iter().fold(0u8, |a, &x| a | x) == 0
}

/// Sets every byte of `b` to zero.
#[inline]
pub fn zero(b: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if (b.as_ptr() as usize | b.len()).is_multiple_of(16) {
        if b.len() >= 32 && AVX2.load(Ordering::Relaxed) {
            // SAFETY: the CPU supports AVX2 (detected by `init`).
            return unsafe { avx2::zero(b) };
        }
        return sse2::zero(b);
    }
    b.fill(0);
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_load_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_setzero_si128, _mm_store_si128,
    };

    /// `b` is 16-byte aligned and a multiple of 16 bytes long (checked by the caller).
    /// Steps of four vectors, then the last four (overlapping, harmless for an OR), so
    /// there is no one-vector tail loop.
    #[inline]
    pub fn is_zero(b: &[u8]) -> bool {
        let n = b.len() / 16;
        let p = b.as_ptr().cast::<__m128i>();
        // SAFETY: SSE2 is part of x86-64; every load reads 16 aligned bytes at a vector
        // index below `n`, inside `b` (aligned and a whole number of vectors, per the
        // caller).
        unsafe {
            let ld = |i: usize| _mm_load_si128(p.add(i));
            let (mut a0, mut a1, mut a2, mut a3);
            if n >= 4 {
                (a0, a1, a2, a3) = (ld(n - 4), ld(n - 3), ld(n - 2), ld(n - 1));
                let mut i = 0;
                while i + 4 < n {
                    a0 = _mm_or_si128(a0, ld(i));
                    a1 = _mm_or_si128(a1, ld(i + 1));
                    a2 = _mm_or_si128(a2, ld(i + 2));
                    a3 = _mm_or_si128(a3, ld(i + 3));
                    i += 4;
                }
            } else {
                a0 = _mm_setzero_si128();
                a1 = a0;
                a2 = a0;
                a3 = a0;
                for i in 0..n {
                    a0 = _mm_or_si128(a0, ld(i));
                }
            }
            let a = _mm_or_si128(_mm_or_si128(a0, a1), _mm_or_si128(a2, a3));
            _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_setzero_si128())) == 0xFFFF
        }
    }

    /// `b` is 16-byte aligned and a multiple of 16 bytes long (checked by the caller).
    /// Volatile stores, so the compiler does not turn the loop back into a `memset`
    /// call; the last four vectors are stored once more rather than looping on a tail.
    #[inline]
    pub fn zero(b: &mut [u8]) {
        let n = b.len() / 16;
        let p = b.as_mut_ptr().cast::<__m128i>();
        // SAFETY: SSE2 is part of x86-64; every store writes 16 aligned bytes at a
        // vector index below `n`, inside `b`, which we borrow mutably.
        unsafe {
            let z = _mm_setzero_si128();
            let st = |i: usize| core::ptr::write_volatile(p.add(i), z);
            if n >= 4 {
                let mut i = 0;
                while i + 4 < n {
                    st(i);
                    st(i + 1);
                    st(i + 2);
                    st(i + 3);
                    i += 4;
                }
                st(n - 4);
                st(n - 3);
                st(n - 2);
                st(n - 1);
            } else {
                for i in 0..n {
                    _mm_store_si128(p.add(i), z);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_or_si256, _mm256_setzero_si256, _mm256_storeu_si256,
        _mm256_testz_si256,
    };

    /// `b` is at least 32 bytes long; unaligned 32-byte loads: steps of four, then the
    /// last four (overlapping); below 128 bytes, the first and last 64 (overlapping).
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn is_zero(b: &[u8]) -> bool {
        let len = b.len();
        let p = b.as_ptr();
        // SAFETY: every load reads 32 bytes at an offset at most `len - 32`, inside `b`.
        let ld = |off: usize| unsafe { _mm256_loadu_si256(p.add(off).cast::<__m256i>()) };
        let (mut a0, mut a1, mut a2, mut a3);
        if len >= 128 {
            (a0, a1, a2, a3) = (ld(len - 128), ld(len - 96), ld(len - 64), ld(len - 32));
            let mut i = 0;
            while i + 128 < len {
                a0 = _mm256_or_si256(a0, ld(i));
                a1 = _mm256_or_si256(a1, ld(i + 32));
                a2 = _mm256_or_si256(a2, ld(i + 64));
                a3 = _mm256_or_si256(a3, ld(i + 96));
                i += 128;
            }
        } else if len > 64 {
            (a0, a1, a2, a3) = (ld(0), ld(32), ld(len - 64), ld(len - 32));
        } else {
            (a0, a1) = (ld(0), ld(len - 32));
            (a2, a3) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        }
        let a = _mm256_or_si256(_mm256_or_si256(a0, a1), _mm256_or_si256(a2, a3));
        _mm256_testz_si256(a, a) == 1
    }

    /// `b` is at least 32 bytes long; unaligned 32-byte stores, laid out like
    /// [`is_zero`]'s loads.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn zero(b: &mut [u8]) {
        let len = b.len();
        let p = b.as_mut_ptr();
        let z = _mm256_setzero_si256();
        // SAFETY: every store writes 32 bytes at an offset at most `len - 32`, inside
        // `b`, which we borrow mutably.
        let st = |off: usize| unsafe { _mm256_storeu_si256(p.add(off).cast::<__m256i>(), z) };
        if len >= 128 {
            if len > 128 {
                // The loop in assembly: written with intrinsics, the compiler turns it
                // into a `memset` call.
                // SAFETY: stores 128 bytes at `p + i` for `i = 0, 128, ...` while
                // `i + 128 < len`, inside `b`; touches only the named registers and
                // the flags.
                unsafe {
                    core::arch::asm!(
                        "2:",
                        "vmovdqu ymmword ptr [{p}], {z}",
                        "vmovdqu ymmword ptr [{p} + 32], {z}",
                        "vmovdqu ymmword ptr [{p} + 64], {z}",
                        "vmovdqu ymmword ptr [{p} + 96], {z}",
                        "add {p}, 128",
                        "cmp {p}, {end}",
                        "jb 2b",
                        p = inout(reg) p => _,
                        end = in(reg) p.add(len - 128),
                        z = in(ymm_reg) z,
                        options(nostack),
                    );
                }
            }
            st(len - 128);
            st(len - 96);
            st(len - 64);
            st(len - 32);
        } else if len > 64 {
            st(0);
            st(32);
            st(len - 64);
            st(len - 32);
        } else {
            st(0);
            st(len - 32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_check_every_length() {
        init();
        for avx2 in [false, true] {
            if avx2 && !std::is_x86_feature_detected!("avx2") {
                continue;
            }
            AVX2.store(avx2, Ordering::Relaxed);
            every_length();
        }
        init();
    }

    fn every_length() {
        let mut w = [0u128; 40];
        // SAFETY: viewing a `[u128; 40]` as 640 bytes (16-byte aligned).
        let b = unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<u8>(), 640) };
        for len in (0..=640).step_by(16) {
            b.fill(0x5A);
            zero(&mut b[..len]);
            assert!(is_zero(&b[..len]), "{len}");
            if len < 640 {
                assert_eq!(b[len], 0x5A, "{len}: zeroed too far");
                assert!(!is_zero(&b[..len + 16]));
            }
            for i in 0..len {
                b[i] = 1;
                assert!(!is_zero(&b[..len]), "{len} {i}");
                b[i] = 0;
            }
        }
        // Unaligned ranges take the generic path.
        b.fill(0);
        assert!(is_zero(&b[3..77]));
        b[50] = 4;
        assert!(!is_zero(&b[3..77]));
        zero(&mut b[3..77]);
        assert!(is_zero(&b[..640]));
    }
}
