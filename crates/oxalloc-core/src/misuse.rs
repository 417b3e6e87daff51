//! What the default build does with a misuse it catches: double and invalid frees,
//! sized frees that name the wrong size, pointers that are not ours. The checks sit in
//! the paths that find them (`heap::free`, `heap::check`, `huge`); this module words
//! the report (the hardened build's format, `report`) and decides what a pointer
//! outside our memory is.
//!
//! A pointer outside our segments is looked up in `/proc/self/maps` (the error path, so
//! reading a file is fine; into a stack buffer, no allocation):
//! * in no mapping, in the calling thread's stack, or in an object's static data (its
//!   file mapping, or the `.bss` right after its writable one): a bug, reported and
//!   aborted on, as glibc does;
//! * in some other live mapping (another allocator's heap, memory handed out before
//!   oxalloc was loaded): freeing it would corrupt nothing and programs that mix
//!   allocators do this, so by default the first one is reported and the rest are
//!   ignored (`OXALLOC_FOREIGN_FREE`: 0 ignores, 2 aborts).
#![allow(unsafe_code)]

use crate::report::{self, Kind, Msg};
use core::sync::atomic::{AtomicBool, Ordering};

/// The call a pointer came through, named in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `free`.
    Free,
    /// `realloc` (and `reallocarray`).
    Realloc,
    /// `free_sized`.
    FreeSized,
    /// `free_aligned_sized`.
    FreeAlignedSized,
    /// `malloc_usable_size`.
    UsableSize,
    /// Rust's `GlobalAlloc::dealloc`.
    Dealloc,
    /// Rust's `GlobalAlloc::realloc`.
    RustRealloc,
    /// C++ `operator delete` and `delete[]` (every variant).
    Delete,
}

impl Op {
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Free => "free",
            Op::Realloc => "realloc",
            Op::FreeSized => "free_sized",
            Op::FreeAlignedSized => "free_aligned_sized",
            Op::UsableSize => "malloc_usable_size",
            Op::Dealloc => "GlobalAlloc::dealloc",
            Op::RustRealloc => "GlobalAlloc::realloc",
            Op::Delete => "operator delete",
        }
    }

    /// Whether the call frees its pointer (a bad pointer is then an invalid *free*).
    fn frees(self) -> bool {
        !matches!(self, Op::UsableSize)
    }
}

/// Starts a report on `p` in `op`.
fn headline(kind: Kind, p: usize, op: Op) -> Msg {
    let mut m = report::headline(kind, p);
    report::within(&mut m, op.name());
    m
}

/// The kind for a pointer that is not the start of a live block.
fn invalid(op: Op) -> Kind {
    if op.frees() {
        Kind::InvalidFree
    } else {
        Kind::InvalidPointer
    }
}

/// A block freed twice (or handed to `op` after it was freed).
#[cold]
#[inline(never)]
pub fn double_free(p: usize, block_size: usize, op: Op) -> ! {
    let kind = if op.frees() {
        Kind::DoubleFree
    } else {
        Kind::UseAfterFree
    };
    let mut m = report::headline(kind, p);
    if block_size != 0 {
        report::block(&mut m, block_size, block_size);
    }
    report::within(&mut m, op.name());
    m.str(": the block was already freed");
    report::fatal(m, crate::stack_marker!())
}

/// A block found freed twice when `call` was about to hand it out again (or written
/// after it was freed: its free key is gone).
#[cold]
#[inline(never)]
pub fn freed_twice_found(p: usize, block_size: usize, call: &str) -> ! {
    let mut m = report::headline(Kind::DoubleFree, p);
    report::block(&mut m, block_size, block_size);
    report::within(&mut m, call);
    m.str(": the block was freed twice (or written after it was freed); found before it was handed out again");
    report::fatal(m, crate::stack_marker!())
}

/// A free list led to `p`, which is not a block of its span (`inside`: not a block
/// start of the span; else outside it): a freed block's link was overwritten.
#[cold]
#[inline(never)]
pub fn bad_free_list_link(p: usize, block_size: usize, inside: bool) -> ! {
    let mut m = report::headline(Kind::WriteAfterFree, p);
    report::block(&mut m, block_size, block_size);
    report::within(&mut m, "malloc");
    m.str(if inside {
        ": the free list handed out a block that is not a block of its size class (a freed block's link was overwritten)"
    } else {
        ": the free list handed out a block that is outside the heap (a freed block's link was overwritten)"
    });
    report::fatal(m, crate::stack_marker!())
}

/// A span whose count of blocks in use no longer matches its free list: a block of it
/// was freed twice. Found when the count went below zero or reached zero early.
#[cold]
#[inline(never)]
pub fn span_count_broken(span_start: usize, block_size: usize) -> ! {
    let mut m = Msg::new();
    m.str("oxalloc: double free in the span at ")
        .hex(span_start as u64)
        .str(" (blocks of ")
        .num(block_size as u64)
        .str(" bytes): more of its blocks were freed than were handed out");
    report::fatal(m, crate::stack_marker!())
}

/// A pointer into our memory that is not the start of a live block; `why` says what it
/// is instead (the words follow a colon).
#[cold]
#[inline(never)]
pub fn not_a_block(p: usize, op: Op, why: &str) -> ! {
    let mut m = headline(invalid(op), p, op);
    m.str(": ").str(why);
    report::fatal(m, crate::stack_marker!())
}

/// An interior or misaligned pointer into the block at `block` (of `block_size`
/// bytes; 0 if not known).
#[cold]
#[inline(never)]
pub fn interior(p: usize, block: usize, block_size: usize, op: Op) -> ! {
    let mut m = headline(invalid(op), p, op);
    let offset = p - block;
    m.str(if offset.is_multiple_of(16) {
        ": interior pointer, "
    } else {
        ": misaligned pointer, "
    })
    .num(offset as u64)
    .str(" bytes into the block at ")
    .hex(block as u64);
    if block_size != 0 {
        report::block(&mut m, block_size, block_size);
    }
    report::fatal(m, crate::stack_marker!())
}

/// A sized free whose size (or alignment) gives another size class than the block's.
#[cold]
#[inline(never)]
pub fn size_mismatch(p: usize, usable: usize, size: usize, align: usize, op: Op) -> ! {
    let mut m = report::headline(Kind::SizeMismatch, p);
    report::block(&mut m, usable, usable);
    report::within(&mut m, op.name());
    m.str(": freed with size ").num(size as u64);
    if align > 16 {
        m.str(" and alignment ").num(align as u64);
    }
    m.str(", which is not this block's size class");
    report::fatal(m, crate::stack_marker!())
}

/// What a pointer outside our memory points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// No mapping.
    Unmapped,
    /// The calling thread's stack (or the main stack).
    Stack,
    /// A loaded object's code, constants, data or `.bss`.
    Static,
    /// Some other live mapping: another allocator's heap, a file, memory from before
    /// oxalloc was loaded.
    Other,
}

/// The first report of a pointer into another mapping has been written.
static FOREIGN_REPORTED: AtomicBool = AtomicBool::new(false);

/// A pointer our segment map does not know was given to `op`: aborts with a report,
/// or, for a pointer into another live mapping, reports the first one and returns
/// (see the module docs). Null is not a misuse and returns at once.
#[cold]
#[inline(never)]
pub fn not_ours(p: usize, op: Op) {
    if p == 0 {
        return;
    }
    // The options decide; a program's first call may be a free of a pointer that is
    // not ours, before any allocation set the allocator up.
    crate::tls::global_init();
    crate::stats::add(&crate::stats::GLOBAL.foreign_frees, 1);
    let place = place_of(p);
    let policy = crate::options::FOREIGN_FREE.get();
    if place == Place::Other
        && (policy == 0 || (policy == 1 && FOREIGN_REPORTED.swap(true, Ordering::Relaxed)))
    {
        return;
    }
    let mut m = headline(invalid(op), p, op);
    m.str(match place {
        Place::Unmapped => ": the address is not mapped",
        Place::Stack => ": the address is on the stack",
        Place::Static => ": the address is in a loaded object's static data",
        Place::Other => ": the address is in a mapping that is not oxalloc's",
    });
    if place == Place::Other && policy == 1 {
        m.str(" (another allocator's memory?); ignored, as are any later ones (OXALLOC_FOREIGN_FREE=2 aborts, 0 is silent)");
        report::warn(m);
        return;
    }
    report::fatal(m, crate::stack_marker!())
}

/// One line of `/proc/self/maps`, parsed.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Default)]
struct MapLine {
    start: usize,
    end: usize,
    writable: bool,
    /// The path starts with `/`: a mapped file.
    file: bool,
    /// The path is `[stack]`.
    stack: bool,
}

#[cfg(target_os = "linux")]
fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0usize;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d as usize;
    }
    Some(v)
}

/// Parses `start-end perms offset dev inode   path`.
#[cfg(target_os = "linux")]
fn parse_line(line: &[u8]) -> Option<MapLine> {
    let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = parse_hex(&range[..dash])?;
    let end = parse_hex(&range[dash + 1..])?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or(&[]);
    Some(MapLine {
        start,
        end,
        writable: perms.get(1) == Some(&b'w'),
        file: path.first() == Some(&b'/'),
        stack: path == b"[stack]",
    })
}

/// Calls `f` with each line of `/proc/self/maps`, in order, until it returns false.
#[cfg(target_os = "linux")]
fn for_each_mapping(mut f: impl FnMut(MapLine) -> bool) {
    let Some(fd) = oxalloc_sys::open_read(c"/proc/self/maps") else {
        return;
    };
    use oxalloc_sys::AsRawFd;
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        let n = oxalloc_sys::read_fd(fd.as_raw_fd(), &mut buf[have..]);
        have += n;
        let mut used = 0;
        while let Some(nl) = buf[used..have].iter().position(|&c| c == b'\n') {
            if let Some(l) = parse_line(&buf[used..used + nl]) {
                if !f(l) {
                    return;
                }
            }
            used += nl + 1;
        }
        if n == 0 {
            if used < have {
                if let Some(l) = parse_line(&buf[used..have]) {
                    f(l);
                }
            }
            return;
        }
        buf.copy_within(used..have, 0);
        have -= used;
        if have == buf.len() {
            have = 0; // a line longer than the buffer (a very long path): skip it
        }
    }
}

/// Where `p`, which is not in our memory, points. Only Linux has `/proc/self/maps`:
/// elsewhere the platform layer asks the OS (`VirtualQuery` on Windows,
/// `mach_vm_region` and `dladdr` on macOS; the one OS `cfg` in this file).
#[cfg(not(target_os = "linux"))]
pub fn place_of(p: usize) -> Place {
    use oxalloc_sys::AddressKind;
    match oxalloc_sys::address_kind(p, crate::stack_marker!()) {
        AddressKind::Unmapped => Place::Unmapped,
        AddressKind::Stack => Place::Stack,
        AddressKind::Image => Place::Static,
        AddressKind::Other => Place::Other,
    }
}

/// Where `p`, which is not in our memory, points.
#[cfg(target_os = "linux")]
pub fn place_of(p: usize) -> Place {
    // `/proc/self/maps` is read a page at a time, and a mapping that another thread
    // changes meanwhile (a neighbour merged or split) can be missing from one reading
    // (seen on Linux 6.18 for the calling thread's own stack). A report must not call a
    // live address unmapped, so "not found" is only believed after three readings.
    let mut place = Place::Unmapped;
    for _ in 0..3 {
        place = place_in_one_reading(p);
        if place != Place::Unmapped {
            break;
        }
    }
    place
}

#[cfg(target_os = "linux")]
fn place_in_one_reading(p: usize) -> Place {
    let here = crate::stack_marker!();
    let mut place = Place::Unmapped;
    let mut prev = MapLine::default();
    for_each_mapping(|l| {
        if (l.start..l.end).contains(&p) {
            place = if l.stack || (l.start..l.end).contains(&here) {
                Place::Stack
            } else if l.file
                || (prev.file
                    && prev.writable
                    && prev.end == l.start
                    && oxalloc_sys::in_loaded_image(p))
            {
                // The file of an object, or the anonymous `.bss` that follows its data
                // (not an anonymous mapping the kernel merged into that `.bss`: the
                // object's segments say where it ends).
                Place::Static
            } else {
                Place::Other
            };
            return false;
        }
        prev = l;
        true
    });
    place
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn maps_lines_parse() {
        let l = parse_line(b"7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(
            (l.start, l.end, l.writable, l.file, l.stack),
            (0x7f1c2a000000, 0x7f1c2a021000, true, false, false)
        );
        let l = parse_line(b"55d0c8a00000-55d0c8a02000 r--p 00000000 fe:01 1234   /usr/bin/cat")
            .unwrap();
        assert!(l.file && !l.writable);
        let l = parse_line(
            b"7ffc1a000000-7ffc1a021000 rw-p 00000000 00:00 0                          [stack]",
        )
        .unwrap();
        assert!(l.stack && !l.file);
        assert!(parse_line(b"garbage").is_none());
    }

    static STATIC_WORD: u64 = 7;

    /// The end of this test program's memory image (its last `PT_LOAD` segment, `.bss`
    /// included), rounded up to a page.
    #[cfg(target_os = "linux")]
    fn image_end() -> usize {
        let mut end = 0;
        oxalloc_sys::for_each_load_segment(&mut |object, start, len| {
            if object == 0 {
                end = end.max(start + len);
            }
            object == 0
        });
        end.next_multiple_of(4096)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_anonymous_mapping_merged_into_bss_is_not_static_data() {
        // What musl's malloc did in a static test binary: an anonymous mapping right
        // after the program's `.bss`, which the kernel merges into it.
        let at = image_end();
        // SAFETY: MAP_FIXED_NOREPLACE maps only if nothing is there.
        let m = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                1 << 16,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if m as usize != at {
            eprintln!("SKIPPED: the page after .bss is taken");
            return;
        }
        assert_eq!(place_of(at + 100), Place::Other);
        assert_eq!(place_of(&STATIC_WORD as *const u64 as usize), Place::Static);
        // SAFETY: mapped just above, not used since.
        unsafe { libc::munmap(m, 1 << 16) };
    }

    #[test]
    fn places_of_stack_static_unmapped_and_other() {
        let local = 5u64;
        assert_eq!(
            place_of(core::hint::black_box(&local) as *const u64 as usize),
            Place::Stack
        );
        assert_eq!(place_of(&STATIC_WORD as *const u64 as usize), Place::Static);
        assert_eq!(place_of(place_of as *const () as usize), Place::Static);
        // Addresses no thread can map meanwhile: the first page and the top half of the
        // address space (the test harness's other threads map and unmap all the time, so
        // an address just unmapped may be theirs by the time it is looked up).
        assert_eq!(place_of(0x10), Place::Unmapped);
        assert_eq!(place_of(1 << (usize::BITS - 1)), Place::Unmapped);
        let m = oxalloc_sys::map(1 << 16).unwrap();
        assert_eq!(place_of(m.as_ptr() as usize + 100), Place::Other);
        // SAFETY: mapped just above, not used since.
        unsafe { oxalloc_sys::unmap(m.as_ptr(), 1 << 16) };
    }
}
