//! Zeroing a freed slot and checking that a quarantined slot is still all zero: the
//! two whole-slot passes of `ZERO_ON_FREE`, done inline with 32-byte AVX2 operations
//! (inline assembly)
//! where the CPU has them (checked once at start-up, [`init`]) and 16-byte SSE2 ones
//! otherwise (slots start 16-byte aligned and are a multiple of 16 bytes long), four
//! vectors per step and no one-vector tail loop. Compared with the generic loops (a
//! `memset` call; an OR fold that the compiler vectorises with separate unaligned
//! loads and a scalar prologue and tail) this is about half the instructions per slot.
//! Other ranges take the generic path.

#[cfg(target_arch = "x86_64")]
use core::sync::atomic::{AtomicBool, Ordering};

/// Whether the CPU (and the kernel) support AVX2.
#[cfg(target_arch = "x86_64")]
static AVX2: AtomicBool = AtomicBool::new(false);

/// Detects AVX2 (once, at initialisation; `std`'s detection reads `cpuid`/`xgetbv`
/// and allocates nothing).
pub fn init() {
    #[cfg(target_arch = "x86_64")]
    AVX2.store(std::is_x86_feature_detected!("avx2"), Ordering::Relaxed);
}

/// Slot lengths done with four 16-byte accesses and no vector setup: the smallest
/// slots (requests up to 48 bytes), most of a typical program's. One compare of the
/// length picks this path, well predicted unless a program mixes sizes on both sides
/// of 64 bytes evenly (the general path below is branch-free for such mixes); 86 ->
/// 30 instructions per malloc(32)/free pair for the two passes (callgrind).
#[cfg(target_arch = "x86_64")]
const SHORT: core::ops::RangeInclusive<usize> = 32..=64;

/// True when every byte of `b` is zero.
#[inline]
pub fn is_zero(b: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if (b.as_ptr() as usize | b.len()).is_multiple_of(16) {
        if SHORT.contains(&b.len()) {
            return sse2::is_zero_short(b);
        }
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
        if SHORT.contains(&b.len()) {
            return sse2::zero_short(b);
        }
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

    /// [`is_zero`] for 32 to 64 bytes: the first two and the last two vectors (they
    /// overlap below 64 bytes, harmless for an OR).
    #[inline(always)]
    pub fn is_zero_short(b: &[u8]) -> bool {
        debug_assert!(super::SHORT.contains(&b.len()));
        let p = b.as_ptr();
        let last = b.len() - 16;
        // SAFETY: SSE2 is part of x86-64; the loads read 16 aligned bytes at offsets 0,
        // 16, `len - 32` and `len - 16`, all inside `b` since `32 <= len`.
        unsafe {
            let ld = |off: usize| _mm_load_si128(p.add(off).cast::<__m128i>());
            let a = _mm_or_si128(
                _mm_or_si128(ld(0), ld(16)),
                _mm_or_si128(ld(last - 16), ld(last)),
            );
            _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_setzero_si128())) == 0xFFFF
        }
    }

    /// [`zero`] for 32 to 64 bytes, as [`is_zero_short`] (the overlapping vectors are
    /// stored twice).
    #[inline(always)]
    pub fn zero_short(b: &mut [u8]) {
        debug_assert!(super::SHORT.contains(&b.len()));
        let p = b.as_mut_ptr();
        let last = b.len() - 16;
        // SAFETY: SSE2 is part of x86-64; the stores write 16 aligned bytes at offsets
        // 0, 16, `len - 32` and `len - 16`, inside `b`, which we borrow mutably.
        // Volatile, so the compiler does not make a `memset` call of them.
        unsafe {
            let z = _mm_setzero_si128();
            let st = |off: usize| core::ptr::write_volatile(p.add(off).cast::<__m128i>(), z);
            st(0);
            st(16);
            st(last - 16);
            st(last);
        }
    }

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

/// The AVX2 passes as inline assembly rather than `#[target_feature]` functions: those
/// cannot be inlined into the (baseline x86-64) allocator paths, and the call, with
/// the registers saved around it, cost as much as the loop. The assembly names every
/// vector register as clobbered (it uses `ymm0..3` and ends with `vzeroupper`, which
/// clears the upper halves of all of them), so no vector value of the caller is lost
/// even in a build with AVX enabled.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    /// True when every byte of `b` is zero. `b` is at least 32 bytes long; unaligned
    /// 32-byte loads. Up to 256 bytes without a branch: four loads from the start at
    /// 0, 32, 64, 96 and four from the end at `len - 32` ... `len - 128`, each moved to
    /// the other end of the range when it would pass it (then they overlap, harmless
    /// for an OR). Beyond 256 bytes a loop takes the middle, 128 bytes per step. Block
    /// lengths vary from one `free` to the next, so a loop alone mispredicted its exit
    /// on nearly every call (and below 128 bytes, the test of the length did).
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[inline(always)]
    pub unsafe fn is_zero(b: &[u8]) -> bool {
        debug_assert!(b.len() >= 32);
        let zero: u8;
        // SAFETY: every load reads 32 bytes at an offset from 0 to `len - 32` (the
        // clamps keep the fixed ones there; the loop's run from 128 while below
        // `len - 128`), inside `b`; AVX2 is available (caller's contract); writes only
        // the named registers and the flags.
        unsafe {
            core::arch::asm!(
                "lea {last}, [{len} - 32]",
                "vmovdqu ymm0, ymmword ptr [{p}]",
                "vpor ymm1, ymm0, ymmword ptr [{p} + {last}]",
                "mov {t}, 32",
                "cmp {t}, {last}",
                "cmova {t}, {last}",
                "vpor ymm0, ymm0, ymmword ptr [{p} + {t}]",
                "mov {t}, 64",
                "cmp {t}, {last}",
                "cmova {t}, {last}",
                "vpor ymm1, ymm1, ymmword ptr [{p} + {t}]",
                "mov {t}, 96",
                "cmp {t}, {last}",
                "cmova {t}, {last}",
                "vpor ymm0, ymm0, ymmword ptr [{p} + {t}]",
                "xor {z:e}, {z:e}",
                "lea {t}, [{len} - 64]",
                "test {t}, {t}",
                "cmovs {t}, {z}",
                "vpor ymm1, ymm1, ymmword ptr [{p} + {t}]",
                "lea {t}, [{len} - 96]",
                "test {t}, {t}",
                "cmovs {t}, {z}",
                "vpor ymm0, ymm0, ymmword ptr [{p} + {t}]",
                "lea {t}, [{len} - 128]",
                "test {t}, {t}",
                "cmovs {t}, {z}",
                "vpor ymm1, ymm1, ymmword ptr [{p} + {t}]",
                "cmp {len}, 256",
                "jbe 4f",
                "lea {t}, [{p} + 128]",
                "lea {last}, [{p} + {len} - 128]",
                "5:",
                "vpor ymm0, ymm0, ymmword ptr [{t}]",
                "vpor ymm1, ymm1, ymmword ptr [{t} + 32]",
                "vpor ymm0, ymm0, ymmword ptr [{t} + 64]",
                "vpor ymm1, ymm1, ymmword ptr [{t} + 96]",
                "add {t}, 128",
                "cmp {t}, {last}",
                "jb 5b",
                "4:",
                "vpor ymm0, ymm0, ymm1",
                "vptest ymm0, ymm0",
                "setz {zero}",
                "vzeroupper",
                p = in(reg) b.as_ptr(),
                len = in(reg) b.len(),
                last = out(reg) _,
                t = out(reg) _,
                z = out(reg) _,
                zero = out(reg_byte) zero,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(pure, readonly, nostack),
            );
        }
        zero != 0
    }

    /// Sets every byte of `b` to zero. `b` is at least 32 bytes long; unaligned
    /// 32-byte stores, laid out like [`is_zero`]'s loads (the overlapping ones store
    /// zeroes twice).
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[inline(always)]
    pub unsafe fn zero(b: &mut [u8]) {
        debug_assert!(b.len() >= 32);
        // SAFETY: every store writes 32 bytes at an offset from 0 to `len - 32` (as in
        // `is_zero`), inside `b`, which we borrow mutably; AVX2 is available (caller's
        // contract); writes only the named registers and the flags.
        unsafe {
            core::arch::asm!(
                "vpxor xmm0, xmm0, xmm0",
                "lea {last}, [{len} - 32]",
                "vmovdqu ymmword ptr [{p}], ymm0",
                "vmovdqu ymmword ptr [{p} + {last}], ymm0",
                "mov {t}, 32",
                "cmp {t}, {last}",
                "cmova {t}, {last}",
                "vmovdqu ymmword ptr [{p} + {t}], ymm0",
                "mov {t}, 64",
                "cmp {t}, {last}",
                "cmova {t}, {last}",
                "vmovdqu ymmword ptr [{p} + {t}], ymm0",
                "mov {t}, 96",
                "cmp {t}, {last}",
                "cmova {t}, {last}",
                "vmovdqu ymmword ptr [{p} + {t}], ymm0",
                "xor {z:e}, {z:e}",
                "lea {t}, [{len} - 64]",
                "test {t}, {t}",
                "cmovs {t}, {z}",
                "vmovdqu ymmword ptr [{p} + {t}], ymm0",
                "lea {t}, [{len} - 96]",
                "test {t}, {t}",
                "cmovs {t}, {z}",
                "vmovdqu ymmword ptr [{p} + {t}], ymm0",
                "lea {t}, [{len} - 128]",
                "test {t}, {t}",
                "cmovs {t}, {z}",
                "vmovdqu ymmword ptr [{p} + {t}], ymm0",
                "cmp {len}, 256",
                "jbe 4f",
                "lea {t}, [{p} + 128]",
                "lea {last}, [{p} + {len} - 128]",
                "5:",
                "vmovdqu ymmword ptr [{t}], ymm0",
                "vmovdqu ymmword ptr [{t} + 32], ymm0",
                "vmovdqu ymmword ptr [{t} + 64], ymm0",
                "vmovdqu ymmword ptr [{t} + 96], ymm0",
                "add {t}, 128",
                "cmp {t}, {last}",
                "jb 5b",
                "4:",
                "vzeroupper",
                p = in(reg) b.as_mut_ptr(),
                len = in(reg) b.len(),
                last = out(reg) _,
                t = out(reg) _,
                z = out(reg) _,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nostack),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_check_every_length() {
        init();
        #[cfg(target_arch = "x86_64")]
        for avx2 in [false, true] {
            if avx2 && !std::is_x86_feature_detected!("avx2") {
                continue;
            }
            AVX2.store(avx2, Ordering::Relaxed);
            every_length();
        }
        #[cfg(not(target_arch = "x86_64"))]
        every_length();
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
