//! Instructions per malloc/free pair: runs `oxalloc-bench work pairs` with N pairs and with
//! 0 pairs (the baseline: start-up and exit) under each allocator, counts user-space
//! instructions, and divides the difference by N.
//!
//! Counter: `perf stat -e instructions:u` where the CPU exposes the event (not in most VMs),
//! else `valgrind --tool=callgrind` (exact, slower; same count on every run).

use crate::runner::{self, Job};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How instructions are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// `perf stat -x, -e instructions:u`.
    Perf,
    /// `valgrind --tool=callgrind`.
    Callgrind,
}

/// Parses `perf stat -x,` output: the count of the `instructions` line.
pub fn parse_perf(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find(|l| l.contains(",instructions"))
        .and_then(|l| l.split(',').next())
        .and_then(|v| v.trim().parse().ok())
}

/// Parses callgrind's summary: `==PID== Collected : N`.
pub fn parse_callgrind(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split_once("Collected :"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Extracts the instruction count from a counter's stderr.
type Parser = fn(&str) -> Option<u64>;

fn job(program: &str, args: Vec<OsString>, preload: Option<&Path>) -> Job {
    Job {
        program: program.into(),
        args,
        preload: preload.map(Path::to_path_buf),
        timeout: Duration::from_secs(300),
        ..Job::default()
    }
}

/// The counter this machine supports, if any.
pub fn detect() -> Option<Counter> {
    let perf = runner::run(&job(
        "perf",
        ["stat", "-x,", "-e", "instructions:u", "true"]
            .map(OsString::from)
            .to_vec(),
        None,
    ));
    if perf.is_ok_and(|o| o.success() && parse_perf(&o.stderr_tail).is_some()) {
        return Some(Counter::Perf);
    }
    let vg = runner::run(&job("valgrind", vec!["--version".into()], None));
    vg.is_ok_and(|o| o.success()).then_some(Counter::Callgrind)
}

/// User-space instructions of `exe work pairs --pairs N` under `preload`.
pub fn count(
    counter: Counter,
    exe: &Path,
    preload: Option<&Path>,
    pairs: u64,
) -> Result<u64, String> {
    let work: Vec<OsString> = vec![
        exe.into(),
        "work".into(),
        "pairs".into(),
        "--pairs".into(),
        pairs.to_string().into(),
    ];
    let (program, mut args, parse): (&str, Vec<OsString>, Parser) = match counter {
        Counter::Perf => (
            "perf",
            ["stat", "-x,", "-e", "instructions:u", "--"]
                .map(OsString::from)
                .to_vec(),
            parse_perf,
        ),
        Counter::Callgrind => (
            "valgrind",
            ["--tool=callgrind", "--callgrind-out-file=/dev/null"]
                .map(OsString::from)
                .to_vec(),
            parse_callgrind,
        ),
    };
    args.extend(work);
    let o = runner::run(&job(program, args, preload)).map_err(|e| format!("{program}: {e}"))?;
    if !o.success() {
        return Err(o.failure());
    }
    parse(&o.stderr_tail).ok_or_else(|| format!("no instruction count in {program} output"))
}

/// One allocator's result.
#[derive(Clone, Debug)]
pub struct PairCount {
    /// Allocator.
    pub allocator: String,
    /// Preloaded library.
    pub lib: Option<PathBuf>,
    /// Instructions per pair, or why it failed.
    pub per_pair: Result<f64, String>,
}

/// Instructions per pair: `(count(pairs) - count(0)) / pairs`.
pub fn per_pair(
    counter: Counter,
    exe: &Path,
    preload: Option<&Path>,
    pairs: u64,
) -> Result<f64, String> {
    let base = count(counter, exe, preload, 0)?;
    let full = count(counter, exe, preload, pairs)?;
    Ok(full.saturating_sub(base) as f64 / pairs.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters() {
        assert_eq!(
            parse_perf("123456,,instructions:u,1000,100.00,,\n"),
            Some(123456)
        );
        assert_eq!(
            parse_perf("<not supported>,,instructions:u,0,100.00,,"),
            None
        );
        assert_eq!(
            parse_callgrind("==12== Events    : Ir\n==12== Collected : 98765\n"),
            Some(98765)
        );
    }
}
