//! The hardening this build applies, as named mitigations (after snmalloc's
//! `mitigations.h`): each is a `const` the code tests with a plain `if`, so turning one
//! off at compile time removes its code, and no `cfg` clutters the allocator paths.
//!
//! Runtime options (read once from the raw environment at first use) are at the end:
//! they switch on the costly diagnostics (junk fill, leak stacks) and size the quarantine.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One step of xorshift64* on `state` (seeded from the kernel's random bytes): the
/// random choice of `RANDOM_ORDER`, fast enough for every malloc.
#[inline]
pub fn xorshift64_star(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A canary after each small block (and in the slack of large ones), keyed by a
/// per-process secret and the block address; checked on free and realloc.
pub const CANARY: bool = true;
/// Freed small blocks are zeroed at once, so no secret lingers in freed memory.
pub const ZERO_ON_FREE: bool = true;
/// Freed large blocks are made inaccessible (and their pages discarded), then wait in a
/// quarantine before their address space is unmapped, so a late access faults and a
/// second free is recognised as a double free.
pub const LARGE_QUARANTINE: bool = true;
/// Small blocks (up to 1 KiB) are handed out in a random order: each thread keeps a
/// few blocks per class and returns a random one of them, so the address of the next
/// block is not predictable from the last.
pub const RANDOM_ORDER: bool = true;
/// `free_sized`, `free_aligned_sized` and C++ sized/aligned delete must name the size
/// and alignment the block was allocated with.
pub const CHECK_SIZED_FREE: bool = true;

/// The junk byte written over fresh blocks when `OXALLOC_JUNK=1`.
pub const JUNK_BYTE: u8 = 0xAA;
/// Default quarantine length per thread, in blocks (`OXALLOC_QUARANTINE=<n>`; 0 turns
/// the delay off: a freed block is checked and goes back at once).
pub const DEFAULT_QUARANTINE_BLOCKS: usize = 4096;
/// Default quarantine size per thread, in bytes of blocks
/// (`OXALLOC_QUARANTINE_BYTES=<n>`), so the memory it holds stays bounded whatever
/// the sizes (the newest block always stays, even if it alone is bigger).
pub const DEFAULT_QUARANTINE_BYTES: usize = 64 * 1024;
/// Default quarantine length in large blocks (`OXALLOC_LARGE_QUARANTINE=<n>`).
pub const DEFAULT_LARGE_QUARANTINE_BLOCKS: usize = 256;
/// Return addresses kept per allocation for leak reports (the core's report depth).
pub use crate::backtrace::STACK_DEPTH;

/// Runtime options, read once by [`Options::load`].
pub struct Options {
    /// `OXALLOC_JUNK=1`: fill fresh (non-calloc) blocks with [`JUNK_BYTE`].
    pub junk: AtomicBool,
    /// `OXALLOC_LEAKS=1`: record allocation stacks and report live blocks at exit.
    pub leaks: AtomicBool,
    /// `OXALLOC_QUARANTINE=<n>`: small-block quarantine length per thread (0 turns it
    /// off).
    pub quarantine: AtomicUsize,
    /// `OXALLOC_QUARANTINE_BYTES=<n>`: small-block quarantine bytes per thread.
    pub quarantine_bytes: AtomicUsize,
    /// `OXALLOC_LARGE_QUARANTINE=<n>`: large-block quarantine length.
    pub large_quarantine: AtomicUsize,
}

/// The process-wide options.
pub static OPTIONS: Options = Options {
    junk: AtomicBool::new(false),
    leaks: AtomicBool::new(false),
    quarantine: AtomicUsize::new(DEFAULT_QUARANTINE_BLOCKS),
    quarantine_bytes: AtomicUsize::new(DEFAULT_QUARANTINE_BYTES),
    large_quarantine: AtomicUsize::new(DEFAULT_LARGE_QUARANTINE_BLOCKS),
};

fn flag(name: &[u8]) -> Option<bool> {
    oxalloc_sys::env_var(name).map(|v| matches!(v, b"1" | b"yes" | b"true" | b"on"))
}

fn parse_decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as usize)?;
    }
    Some(n)
}

/// The decimal value of variable `name`, if set; a value that is not a number is
/// reported once on stderr and ignored (the default stays).
fn number(name: &[u8]) -> Option<usize> {
    let v = oxalloc_sys::env_var(name)?;
    let parsed = parse_decimal(v);
    if parsed.is_none() {
        let mut m = crate::fmt::Buf::<256>::new();
        m.str("oxalloc: ignoring ")
            .bytes(name)
            .str("=")
            .bytes(&v[..v.len().min(64)])
            .str(": not a number (the default is used)\n");
        oxalloc_sys::write_stderr(m.as_bytes());
    }
    parsed
}

impl Options {
    /// Reads the `OXALLOC_*` variables from the raw environment (no allocation).
    pub fn load(&self) {
        if let Some(v) = flag(b"OXALLOC_JUNK") {
            self.junk.store(v, Ordering::Relaxed);
        }
        if let Some(v) = flag(b"OXALLOC_LEAKS") {
            self.leaks.store(v, Ordering::Relaxed);
        }
        if let Some(n) = number(b"OXALLOC_QUARANTINE") {
            // The ring holds at most RING_MAX - 1 blocks (it takes the new one before it
            // lets the oldest out).
            let most = crate::thread::RING_MAX - 1;
            self.quarantine.store(n.min(most), Ordering::Relaxed);
        }
        if let Some(n) = number(b"OXALLOC_QUARANTINE_BYTES") {
            self.quarantine_bytes
                .store(n.min(1 << 30), Ordering::Relaxed);
        }
        if let Some(n) = number(b"OXALLOC_LARGE_QUARANTINE") {
            self.large_quarantine
                .store(n.min(1 << 16), Ordering::Relaxed);
        }
    }
    /// Junk fill on?
    #[inline]
    pub fn junk(&self) -> bool {
        self.junk.load(Ordering::Relaxed)
    }
    /// Leak tracking on?
    #[inline]
    pub fn leaks(&self) -> bool {
        self.leaks.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_decimal;

    #[test]
    fn parses_decimal_numbers_only() {
        assert_eq!(parse_decimal(b"4096"), Some(4096));
        assert_eq!(parse_decimal(b"0"), Some(0));
        for bad in [&b""[..], b"12k", b"-1", b" 5", b"99999999999999999999999"] {
            assert_eq!(parse_decimal(bad), None, "{:?}", bad);
        }
    }
}
