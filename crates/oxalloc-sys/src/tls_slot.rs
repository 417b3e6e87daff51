//! An initial-exec TLS word, for the allocators' per-thread pointer.
//!
//! Rust's `thread_local!` in a shared library costs a `__tls_get_addr` call per access,
//! and stable Rust cannot choose the TLS model. Initial-exec uses the static TLS block,
//! which LD_PRELOAD'ed and linked libraries always get (a `dlopen` of the library needs
//! 8 bytes of glibc's static TLS surplus): one `mov %fs:` per read. The word lives in
//! `.tbss`, so it starts at zero in every thread.

/// Defines `mod $name` with `get() -> usize` and `set(usize)` over an initial-exec TLS
/// word named `$sym` (x86-64 Linux only; each crate keeps its own fallback elsewhere).
#[macro_export]
macro_rules! initial_exec_slot {
    ($(#[$attr:meta])* mod $name:ident = $sym:literal) => {
        $(#[$attr])*
        mod $name {
            core::arch::global_asm!(
                ".pushsection .tbss,\"awT\",@nobits",
                ".p2align 3",
                concat!(".globl ", $sym),
                concat!(".hidden ", $sym),
                concat!(".type ", $sym, ", @object"),
                concat!(".size ", $sym, ", 8"),
                concat!($sym, ":"),
                ".zero 8",
                ".popsection",
            );

            /// This thread's word.
            #[inline(always)]
            pub fn get() -> usize {
                let v: usize;
                // SAFETY: reads this thread's own TLS word through its initial-exec
                // offset; the word exists for every thread from its creation.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {v}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov {v}, qword ptr fs:[{v}]",
                        v = out(reg) v,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                v
            }

            /// Sets this thread's word.
            #[inline(always)]
            pub fn set(v: usize) {
                // SAFETY: writes this thread's own TLS word, as above.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {t}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov qword ptr fs:[{t}], {v}",
                        t = out(reg) _,
                        v = in(reg) v,
                        options(nostack, preserves_flags),
                    );
                }
            }
        }
    };
}
