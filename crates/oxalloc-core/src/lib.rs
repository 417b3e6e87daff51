//! oxalloc-core: the allocator.
//!
//! Memory comes from the kernel in 4 MiB segments (`segment`), is handed out in spans
//! of 64 KiB slices by a central pool (`central`), and carved into size-class blocks by
//! per-thread heaps (`heap`) whose malloc and free fast paths take no lock. Huge blocks
//! get their own mappings (`huge`). `tls` ties threads to heaps and handles exit and
//! fork; `api` gives the C functions their exact semantics; `stats` and `options`
//! report and configure.
//!
//! The crate never allocates from its own paths: no `Vec`, `String` or `format!`;
//! messages go through fixed buffers (`fmt`) and `write(2)`.
// no_std where the thread slots are initial-exec TLS words, so liboxalloc.so carries no
// std (its panic and backtrace code, libgcc_s): less code mapped into every process.
#![cfg_attr(all(not(test), target_arch = "x86_64", target_os = "linux"), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod atomic_stack;
pub mod backtrace;
mod central;
pub mod fmt;
pub mod heap;
mod huge;
mod lock;
pub mod misuse;
pub mod options;
mod page_return;
mod page_source;
mod purger;
pub mod remote_list;
pub mod report;
pub mod segment;
pub mod size_class;
pub mod stats;
pub mod tls;

pub use central::set_guard_slices;

/// Runs at process exit (from `.fini_array`, which registers nothing and allocates
/// nothing): the statistics summary and JSON file, if asked for.
extern "C" fn at_exit() {
    if tls_ready() {
        if options::SHOW_STATS.on() {
            stats::print_summary();
        }
        stats::write_json_file();
    }
}

fn tls_ready() -> bool {
    stats::GLOBAL
        .start_ns
        .load(core::sync::atomic::Ordering::Relaxed)
        != 0
}

// ELF runs the `.fini_array` entries at exit. Mach-O has no such section and dyld no
// longer runs `__mod_term_func`: on macOS an initializer (`__mod_init_func`, run by dyld
// when the image loads) registers the hook with `atexit`, which is how clang lowers a
// C destructor there.
#[allow(unsafe_code)]
#[used]
#[cfg_attr(not(target_os = "macos"), unsafe(link_section = ".fini_array"))]
#[cfg_attr(
    target_os = "macos",
    unsafe(link_section = "__DATA,__mod_init_func,mod_init_funcs")
)]
static AT_EXIT: extern "C" fn() = EXIT_ENTRY;

#[cfg(not(target_os = "macos"))]
const EXIT_ENTRY: extern "C" fn() = at_exit;
#[cfg(target_os = "macos")]
const EXIT_ENTRY: extern "C" fn() = register_at_exit;

#[cfg(target_os = "macos")]
extern "C" fn register_at_exit() {
    oxalloc_sys::at_exit(at_exit);
}

/// Makes the allocator's start-up refer to [`AT_EXIT`], so a static link (`.a`), which
/// pulls in only the objects something refers to, keeps the exit hook too.
pub(crate) fn keep_exit_hook() {
    core::hint::black_box(&AT_EXIT);
}
