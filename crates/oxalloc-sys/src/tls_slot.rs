//! An initial-exec TLS word, for the allocators' per-thread pointer.
//!
//! Rust's `thread_local!` in a shared library costs a `__tls_get_addr` call per access,
//! and stable Rust cannot choose the TLS model. Initial-exec uses the static TLS block,
//! which LD_PRELOAD'ed and linked libraries always get (a `dlopen` of the library needs
//! 8 bytes of glibc's static TLS surplus): one `mov %fs:` per read on x86-64; on aarch64
//! an `mrs tpidr_el0` and the word's offset from the GOT (`adrp` + `ldr`), then the load.

/// Defines `mod $name` with `get() -> usize` and `set(usize)` over an initial-exec TLS
/// word named `$sym` (x86-64 and aarch64 Linux only; each crate keeps its own fallback
/// elsewhere).
///
/// The word starts at zero in every thread, or, with `init = path`, at the address of
/// the static `path` (the word then lives in `.tdata`; the dynamic linker relocates the
/// TLS image before any thread copies it).
#[macro_export]
macro_rules! initial_exec_slot {
    ($(#[$attr:meta])* mod $name:ident = $sym:literal) => {
        $crate::initial_exec_slot!(@define $(#[$attr])* mod $name = $sym,
            ".pushsection .tbss,\"awT\",@nobits", ".zero 8",);
    };
    ($(#[$attr:meta])* mod $name:ident = $sym:literal, init = $init:path) => {
        $crate::initial_exec_slot!(@define $(#[$attr])* mod $name = $sym,
            ".pushsection .tdata,\"awT\",@progbits", ".quad {init}", init = sym $init);
    };
    (@define $(#[$attr:meta])* mod $name:ident = $sym:literal,
        $section:literal, $value:literal, $($operands:tt)*) => {
        $(#[$attr])*
        mod $name {
            core::arch::global_asm!(
                $section,
                ".p2align 3",
                concat!(".globl ", $sym),
                concat!(".hidden ", $sym),
                concat!(".type ", $sym, ", @object"),
                concat!(".size ", $sym, ", 8"),
                concat!($sym, ":"),
                $value,
                ".popsection",
                $($operands)*
            );

            /// This thread's word.
            #[inline(always)]
            pub fn get() -> usize {
                let v: usize;
                // SAFETY: reads this thread's own TLS word through its initial-exec
                // offset; the word exists for every thread from its creation.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    core::arch::asm!(
                        concat!("mov {v}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov {v}, qword ptr fs:[{v}]",
                        v = out(reg) v,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                // SAFETY: as above; the thread pointer is `tpidr_el0` and the word's
                // offset from it sits in the GOT.
                #[cfg(target_arch = "aarch64")]
                unsafe {
                    core::arch::asm!(
                        "mrs {tp}, tpidr_el0",
                        concat!("adrp {v}, :gottprel:", $sym),
                        concat!("ldr {v}, [{v}, #:gottprel_lo12:", $sym, "]"),
                        "ldr {v}, [{tp}, {v}]",
                        tp = out(reg) _,
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
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    core::arch::asm!(
                        concat!("mov {t}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                        "mov qword ptr fs:[{t}], {v}",
                        t = out(reg) _,
                        v = in(reg) v,
                        options(nostack, preserves_flags),
                    );
                }
                // SAFETY: writes this thread's own TLS word, as in `get`.
                #[cfg(target_arch = "aarch64")]
                unsafe {
                    core::arch::asm!(
                        "mrs {tp}, tpidr_el0",
                        concat!("adrp {t}, :gottprel:", $sym),
                        concat!("ldr {t}, [{t}, #:gottprel_lo12:", $sym, "]"),
                        "str {v}, [{tp}, {t}]",
                        tp = out(reg) _,
                        t = out(reg) _,
                        v = in(reg) v,
                        options(nostack, preserves_flags),
                    );
                }
            }
        }
    };
}
