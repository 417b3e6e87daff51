//! oxalloc-bench: every workload under every allocator, each run in its own process.
//!
//! The suite (`src/main.rs`, binary `oxalloc-bench`) plans a set of *cases* (a workload at
//! a thread count), runs each case under each allocator in a fresh child process, reads the
//! child's wall time, peak RSS and minor page faults from `wait4`, takes the median of N
//! runs, and reports tables, CSV, JSON and an SVG chart.
//!
//! Layout, one idea per module:
//! - [`allocators`]: which allocators exist and how a process is put under one (`LD_PRELOAD`
//!   or a `#[global_allocator]` binary);
//! - [`runner`]: spawn one child, time it, reap it with `wait4`, kill it past a timeout;
//! - [`suite`]: the cases, and how each case becomes a command line;
//! - [`stats`]: median, ratio to the best peer, geometric mean (pure);
//! - [`report`]: text tables, CSV, JSON; [`svg`]: the chart; [`machine`]: machine info;
//! - [`targets`]: the performance targets, met or missed, from one run's results;
//! - [`workloads`]: the workload code that runs *inside* the child (one module each), using
//!   the C allocator through `libc::malloc`/`free` or Rust `std` (which calls malloc), so
//!   `LD_PRELOAD` decides which allocator serves it;
//! - [`rust_native`]: Rust collections workloads for the `#[global_allocator]` binaries;
//! - [`instructions`]: instructions per malloc/free pair under perf or callgrind.
//!
//! Decision: the workload child is the suite binary itself (`oxalloc-bench work NAME`), so
//! `cargo run -p oxalloc-bench` needs no other binary for the C-allocator workloads. Only
//! the Rust-native workloads need their own binaries (one per `#[global_allocator]`).

pub mod allocators;
pub mod instructions;
pub mod machine;
pub mod report;
pub mod rng;
pub mod runner;
pub mod rust_native;
pub mod stats;
pub mod suite;
pub mod svg;
pub mod targets;
pub mod workloads;

/// The line prefix a workload child prints before its JSON result on stdout.
pub const RESULT_PREFIX: &str = "OXBENCH ";
