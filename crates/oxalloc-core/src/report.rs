//! Misuse reports, shared by the default and the hardened build: one message on
//! stderr, written with `write(2)` from a stack buffer, then `abort()`. Nothing here
//! allocates (the unwinder lookup of the default build may, see `backtrace`), and
//! nothing reads memory that might fault: only our own metadata and the caller's stack.
//!
//! ```text
//! oxalloc: double free of 0x7f12a4c01040 (size 48, class 48) in free()
//!   at: 0x5555555551a9 0x7ffff7dd0d90 ...
//!   allocated at: 0x555555555189 ...          (hardened build, with OXALLOC_LEAKS=1)
//! oxalloc: aborting
//! ```
#![forbid(unsafe_code)]

use crate::backtrace::{self, Stack};
use crate::fmt::Buf;
use core::sync::atomic::{AtomicBool, Ordering};

/// A report being written.
pub type Msg = Buf<1024>;

/// What went wrong, as the report's first words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A block freed twice.
    DoubleFree,
    /// A pointer we never returned, or an interior/unaligned one, given to a free.
    InvalidFree,
    /// Such a pointer given to a non-freeing function (`malloc_usable_size`).
    InvalidPointer,
    /// A freed block given to a non-freeing function.
    UseAfterFree,
    /// A canary after a block was overwritten.
    HeapOverflow,
    /// A quarantined (freed) block was written to.
    WriteAfterFree,
    /// A sized free named the wrong size.
    SizeMismatch,
    /// An aligned free named the wrong alignment.
    AlignmentMismatch,
    /// Freed by the wrong family: `delete` of `new[]`, `free` of `new`, and so on.
    KindMismatch,
    /// `operator new` could not allocate and `std::bad_alloc` cannot be thrown.
    OutOfMemory,
}

impl Kind {
    /// The words that start the report.
    pub fn text(self) -> &'static str {
        match self {
            Kind::DoubleFree => "double free",
            Kind::InvalidFree => "invalid free",
            Kind::InvalidPointer => "invalid pointer",
            Kind::UseAfterFree => "use after free",
            Kind::HeapOverflow => "heap overflow",
            Kind::WriteAfterFree => "write after free",
            Kind::SizeMismatch => "size mismatch",
            Kind::AlignmentMismatch => "alignment mismatch",
            Kind::KindMismatch => "mismatched allocation and deallocation",
            Kind::OutOfMemory => "out of memory",
        }
    }
}

/// Starts a report: `oxalloc: <kind> of <addr>`.
pub fn headline(kind: Kind, addr: usize) -> Msg {
    let mut m = Msg::new();
    m.str("oxalloc: ")
        .str(kind.text())
        .str(" of ")
        .hex(addr as u64);
    m
}

/// Appends ` in <op>()`.
pub fn within(m: &mut Msg, op: &str) {
    m.str(" in ").str(op).str("()");
}

/// Appends ` (size N, class C)` for a block.
pub fn block(m: &mut Msg, size: usize, class_size: usize) {
    m.str(" (size ")
        .num(size as u64)
        .str(", class ")
        .num(class_size as u64)
        .str(")");
}

fn stack_line(m: &mut Msg, label: &str, s: &Stack) {
    m.str("\n  ").str(label).str(":");
    if s[0] == 0 {
        m.str(" (no stack)");
    }
    for &ip in s.iter().take_while(|&&ip| ip != 0) {
        m.str(" ").hex(ip as u64);
    }
}

static REPORTING: AtomicBool = AtomicBool::new(false);

/// Finishes the report with the current stack (frames above `marker`, a local of an
/// allocator function; 0 for none), writes it and aborts. The caller holds no
/// allocator lock: the unwinder may take the loader lock, and a signal handler that
/// allocates must not hang.
///
/// The message goes out before the stack is looked for: finding the unwinder may load
/// libgcc_s, which allocates, and an allocation from a heap the misuse broke can raise
/// a second report from inside this one. That one is written without a stack and ends
/// the process; the first message is already out.
#[cold]
#[inline(never)]
pub fn fatal(mut m: Msg, marker: usize) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        m.str("\n  (found while another report was being written)\noxalloc: aborting\n");
        oxalloc_sys::write_stderr(m.as_bytes());
        oxalloc_sys::abort()
    }
    oxalloc_sys::write_stderr(m.as_bytes());
    let mut tail = Msg::new();
    if marker != 0 {
        stack_line(&mut tail, "at", &backtrace::capture(marker));
    }
    tail.str("\noxalloc: aborting\n");
    oxalloc_sys::write_stderr(tail.as_bytes());
    oxalloc_sys::abort()
}

/// Finishes the report with the stacks given (the call's, and the allocation's if
/// known), writes it and aborts; as [`fatal`], with no allocator lock held.
#[cold]
#[inline(never)]
pub fn fatal_with(mut m: Msg, here: Option<&Stack>, allocated: Option<&Stack>) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        // Another thread is reporting; it will abort the process.
        loop {
            oxalloc_sys::yield_now();
        }
    }
    if let Some(s) = here {
        stack_line(&mut m, "at", s);
    }
    if let Some(s) = allocated {
        stack_line(&mut m, "allocated at", s);
    }
    m.str("\noxalloc: aborting\n");
    oxalloc_sys::write_stderr(m.as_bytes());
    oxalloc_sys::abort()
}

/// Writes a one-line warning (no stack, no abort).
pub fn warn(mut m: Msg) {
    m.str("\n");
    oxalloc_sys::write_stderr(m.as_bytes());
}
