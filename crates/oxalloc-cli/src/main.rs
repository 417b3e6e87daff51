//! `oxalloc`: run a program under the oxalloc allocator, see its memory, find its leaks.
//!
//! One module per subcommand (`run`, `leaks`, `map`, `trace`, `bench`) over shared parts:
//! `procfs` (the kernel's view), `stats` and `shm` (the allocator's view), `symbolize`,
//! `svg`/`html` (pictures), `child` (spawn and `wait4`), `lib_locate` and `term`.
//! The tool never links the allocator it measures: it preloads `liboxalloc.so` into the
//! child and reads what the library writes. Every error is one line on stderr and exit
//! code 2; otherwise the exit code is the program's.
//!
//! `unsafe` is denied here and allowed only in `child` (two libc calls std has no wrapper
//! for: `wait4`, which returns the child's rusage, and `signal`).

#![deny(unsafe_code)]

mod bench;
mod child;
mod error;
mod html;
mod leaks;
mod lib_locate;
mod map;
mod procfs;
mod run;
mod shm;
mod stats;
mod svg;
mod symbolize;
mod term;
mod trace;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "oxalloc",
    version,
    about = "Run a program under the oxalloc allocator, see its memory, find its leaks",
    after_help = "The allocator library is found next to this executable or through OXALLOC_LIB; \
                  build it with `cargo build --release -p oxalloc-capi`."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run PROG with liboxalloc.so preloaded; print its allocation statistics at exit.
    Run {
        /// Use the hardened build (liboxalloc_hardened.so).
        #[arg(long)]
        hardened: bool,
        /// Print machine-readable JSON on stdout instead of the report.
        #[arg(long)]
        json: bool,
        /// Never colour the report.
        #[arg(long)]
        no_color: bool,
        /// The program and its arguments.
        #[arg(last = true, required = true, value_name = "PROG ARGS")]
        argv: Vec<OsString>,
    },
    /// Run PROG under the hardened build and report leaks by allocation site, largest first.
    Leaks {
        /// Symbolise a saved leak report instead of running a program.
        #[arg(long, value_name = "FILE", conflicts_with = "argv")]
        report: Option<PathBuf>,
        /// Frames to show per allocation site.
        #[arg(long, default_value_t = 8)]
        max_frames: usize,
        #[arg(
            last = true,
            required_unless_present = "report",
            value_name = "PROG ARGS"
        )]
        argv: Vec<OsString>,
    },
    /// Show the memory of a process: text, data, bss, heap, mappings, stack (and oxalloc's
    /// segments), from /proc/PID/smaps.
    Map {
        /// A running process (or use `-- PROG ARGS` to start one).
        pid: Option<u32>,
        /// Also write a self-contained HTML page with an SVG picture.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Never colour the terminal output.
        #[arg(long)]
        no_color: bool,
        /// One row per mapping (shared libraries are merged by default).
        #[arg(long)]
        all: bool,
        /// With `-- PROG`: take the snapshot this many ms after the start (or the last one
        /// seen alive, if the program exits earlier).
        #[arg(long, default_value_t = 300, value_name = "MS")]
        after_ms: u64,
        /// With `-- PROG`: kill the program after the snapshot instead of letting it finish.
        #[arg(long)]
        kill: bool,
        /// With `-- PROG`: do not preload oxalloc (show the program on its own allocator).
        #[arg(long)]
        system: bool,
        #[arg(last = true, value_name = "PROG ARGS")]
        argv: Vec<OsString>,
    },
    /// Sample RSS and oxalloc's live bytes over time; draw the curve.
    Trace {
        /// Sampling interval.
        #[arg(long, default_value_t = 20, value_name = "MS")]
        interval_ms: u64,
        /// Write the chart as SVG.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Write the chart as a self-contained HTML page.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Write the samples as CSV.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Do not preload oxalloc (trace the program on its own allocator).
        #[arg(long)]
        system: bool,
        #[arg(last = true, required = true, value_name = "PROG ARGS")]
        argv: Vec<OsString>,
    },
    /// Run the benchmark suite (the oxalloc-bench binary next to this one; `--help` is its own).
    #[command(disable_help_flag = true)]
    Bench {
        /// Passed to oxalloc-bench unchanged.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
}

fn dispatch(cmd: Cmd) -> error::Result<u8> {
    match cmd {
        Cmd::Run {
            hardened,
            json,
            no_color,
            argv,
        } => run::main(run::Args {
            hardened,
            json,
            no_color,
            argv,
        }),
        Cmd::Leaks {
            report,
            max_frames,
            argv,
        } => leaks::main(leaks::Args {
            report,
            max_frames,
            argv,
        }),
        Cmd::Map {
            pid,
            html,
            no_color,
            all,
            after_ms,
            kill,
            system,
            argv,
        } => map::main(map::Args {
            pid,
            html,
            no_color,
            all,
            after_ms,
            kill,
            system,
            argv,
        }),
        Cmd::Trace {
            interval_ms,
            svg,
            html,
            csv,
            system,
            argv,
        } => trace::main(trace::Args {
            interval_ms,
            svg,
            html,
            csv,
            system,
            argv,
        }),
        Cmd::Bench { args } => bench::main(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("oxalloc: error: {e}");
            ExitCode::from(e.code)
        }
    }
}
