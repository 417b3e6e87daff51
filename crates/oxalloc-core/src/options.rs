//! Runtime options: one table, read once from `OXALLOC_*` environment variables.
//!
//! [`init`] walks the raw `environ` (no allocation, no `getenv`) the first time the
//! allocator starts; afterwards every read is a relaxed atomic load. A value that does
//! not parse is reported once on stderr and the default is kept.
#![forbid(unsafe_code)]

use crate::fmt::Buf;
use core::sync::atomic::{AtomicU64, Ordering};

/// A numeric or boolean option.
pub struct Opt {
    /// Name without the `OXALLOC_` prefix.
    pub name: &'static str,
    /// What it does, for `--help` style listings and the README.
    pub doc: &'static str,
    default: u64,
    is_bool: bool,
    value: AtomicU64,
}

impl Opt {
    const fn num(name: &'static str, default: u64, doc: &'static str) -> Opt {
        Opt {
            name,
            doc,
            default,
            is_bool: false,
            value: AtomicU64::new(default),
        }
    }
    const fn flag(name: &'static str, default: bool, doc: &'static str) -> Opt {
        Opt {
            name,
            doc,
            default: default as u64,
            is_bool: true,
            value: AtomicU64::new(default as u64),
        }
    }
    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
    /// The current value as a flag.
    #[inline]
    pub fn on(&self) -> bool {
        self.get() != 0
    }
    /// Overrides the value (tests, `mallopt`-like control).
    pub fn set(&self, v: u64) {
        self.value.store(v, Ordering::Relaxed)
    }
    /// The built-in default.
    pub fn default_value(&self) -> u64 {
        self.default
    }
    /// Whether it is a flag (0 or 1) rather than a number.
    pub fn is_flag(&self) -> bool {
        self.is_bool
    }
    /// Parses a value as the environment variable would be: a flag from 1/0,
    /// true/false, yes/no, on/off (any case), a number from decimal digits.
    pub fn parse(&self, v: &[u8]) -> Option<u64> {
        if self.is_bool {
            parse_bool(v).map(u64::from)
        } else {
            parse_num(v)
        }
    }
}

/// Print a statistics summary on stderr at exit.
pub static SHOW_STATS: Opt = Opt::flag(
    "SHOW_STATS",
    false,
    "print a statistics summary on stderr at exit",
);
/// Report unusual events (foreign pointers, OS refusals) on stderr.
pub static VERBOSE: Opt = Opt::flag(
    "VERBOSE",
    false,
    "report unusual events (mmap failures) on stderr",
);
/// Milliseconds a free page stays cached before it is given back to the OS.
pub static PURGE_DELAY_MS: Opt = Opt::num(
    "PURGE_DELAY_MS",
    10,
    "milliseconds an empty page stays cached before MADV_DONTNEED gives it back (0: at once)",
);
/// Most bytes (MiB) of empty but still resident pages kept for reuse.
pub static CACHE_MAX_MIB: Opt = Opt::num(
    "CACHE_MAX_MIB",
    8,
    "most MiB of empty, still-resident pages kept beyond what recent demand keeps (or a quarter of the bytes in use, or the pool's largest recent block, if more); past it they are purged at once",
);

/// Milliseconds of demand history that decide how much free memory stays resident.
pub static DEMAND_WINDOW_MS: Opt = Opt::num(
    "DEMAND_WINDOW_MS",
    250,
    "free pages up to the peak in use of this many recent milliseconds stay resident while the program is active (0: purge on the delay alone)",
);
/// Ask for transparent huge pages for the memory mapped from now on.
pub static HUGE_PAGES: Opt = Opt::flag(
    "HUGE_PAGES",
    false,
    "ask for transparent huge pages (MADV_HUGEPAGE) on segments and huge regions: fewer TLB misses for big heaps used at random, more RSS where memory is used sparsely",
);

/// Give cached pages back from a helper thread when the program is idle.
pub static BACKGROUND_PURGE: Opt = Opt::flag(
    "BACKGROUND_PURGE",
    true,
    "purge cached pages from a helper thread (started on the first big free) so RSS falls while the program is idle",
);

/// Where segments come from: 0 = `mmap` (default), 1 = the program break (`brk`).
/// Set from `OXALLOC_PAGE_SOURCE=mmap|brk`.
pub static PAGE_SOURCE_BRK: Opt = Opt::flag(
    "PAGE_SOURCE",
    false,
    "where segments come from: mmap (default) or brk (grow the program break, fall back to mmap)",
);

/// What a free of a pointer into someone else's live mapping does.
pub static FOREIGN_FREE: Opt = Opt::num(
    "FOREIGN_FREE",
    1,
    "free/realloc of a pointer into a live mapping that is not ours (another allocator's heap, memory from before oxalloc was loaded): 0 ignore it, 1 report the first one and go on, 2 report and abort (pointers into the stack, static data or no mapping always abort)",
);

/// Every numeric/boolean option, for listing.
pub static ALL: [&Opt; 8] = [
    &SHOW_STATS,
    &VERBOSE,
    &PURGE_DELAY_MS,
    &CACHE_MAX_MIB,
    &DEMAND_WINDOW_MS,
    &HUGE_PAGES,
    &BACKGROUND_PURGE,
    &FOREIGN_FREE,
];

/// A path option, read from the environment when it is used (at start-up or exit).
pub struct PathOpt {
    /// Name without the prefix.
    pub name: &'static str,
    /// What it does.
    pub doc: &'static str,
}

impl PathOpt {
    const fn new(name: &'static str, doc: &'static str) -> PathOpt {
        PathOpt { name, doc }
    }
    /// The value's bytes (without the NUL), if set and not empty.
    pub fn get(&self) -> Option<&'static [u8]> {
        oxalloc_sys::env_var(env_name(self.name).as_bytes()).filter(|v| !v.is_empty())
    }
}

/// Write the statistics of this process as JSON to this file at exit (`%p`: the PID).
pub static STATS_FILE: PathOpt = PathOpt::new(
    "STATS_FILE",
    "write statistics as JSON to this file at exit (%p is replaced by the PID)",
);
/// Keep live totals in this shared file while running (for `oxalloc trace`/`map`).
pub static STATS_SHM: PathOpt = PathOpt::new(
    "STATS_SHM",
    "keep live totals and the segment list in this 64 KiB file while running",
);

fn env_name(name: &str) -> Buf<64> {
    let mut b = Buf::new();
    b.str("OXALLOC_");
    b.str(name);
    b
}

/// Parses a flag: 1/0, true/false, yes/no, on/off (any case).
fn parse_bool(v: &[u8]) -> Option<bool> {
    let mut lower = [0u8; 8];
    if v.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(v) {
        *d = s.to_ascii_lowercase();
    }
    match &lower[..v.len()] {
        b"1" | b"true" | b"yes" | b"on" => Some(true),
        b"0" | b"false" | b"no" | b"off" => Some(false),
        _ => None,
    }
}

/// Parses a decimal number.
fn parse_num(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u64)
    })
}

/// Reads every option from the environment. Called once, at allocator start-up.
pub fn init() {
    if let Some(v) = oxalloc_sys::env_var(b"OXALLOC_PAGE_SOURCE") {
        match v {
            b"mmap" => PAGE_SOURCE_BRK.set(0),
            b"brk" => PAGE_SOURCE_BRK.set(1),
            _ => {
                let mut msg: Buf<160> = Buf::new();
                msg.str("oxalloc: ignoring bad value OXALLOC_PAGE_SOURCE=");
                msg.bytes(&v[..v.len().min(64)]);
                msg.str(" (expected mmap or brk), using mmap\n");
                oxalloc_sys::write_stderr(msg.as_bytes());
            }
        }
    }
    for opt in ALL {
        let name = env_name(opt.name);
        let Some(raw) = oxalloc_sys::env_var(name.as_bytes()) else {
            continue;
        };
        match opt.parse(raw) {
            Some(v) => opt.set(v),
            None => {
                let mut msg: Buf<256> = Buf::new();
                msg.str("oxalloc: ignoring bad value ");
                msg.str(name.as_str());
                msg.str("=");
                msg.bytes(&raw[..raw.len().min(64)]);
                msg.str(if opt.is_bool {
                    " (expected 0 or 1)"
                } else {
                    " (expected a number)"
                });
                msg.str(", using the default ");
                msg.num(opt.default);
                msg.str("\n");
                oxalloc_sys::write_stderr(msg.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_numbers() {
        assert_eq!(parse_bool(b"1"), Some(true));
        assert_eq!(parse_bool(b"ON"), Some(true));
        assert_eq!(parse_bool(b"no"), Some(false));
        assert_eq!(parse_bool(b"maybe"), None);
        assert_eq!(parse_num(b"250"), Some(250));
        assert_eq!(parse_num(b"-1"), None);
        assert_eq!(parse_num(b""), None);
        assert_eq!(parse_num(b"12x"), None);
        assert_eq!(parse_num(b"99999999999999999999"), None);
    }
}
