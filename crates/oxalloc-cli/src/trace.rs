//! `oxalloc trace`: memory of a program over time, like heaptrack's consumption chart.
//!
//! Every `--interval-ms` (default 20) we read the child's resident set (`VmRSS` in
//! `/proc/PID/status`, the kernel's number) and, when it runs oxalloc, the allocator's live
//! counters (in use, mapped, cached free) from its statistics file. The gap between RSS and
//! "in use" is memory the allocator holds but the program does not: the picture that shows
//! "memory not returned". Output: a sparkline per series on the terminal, and an SVG or HTML
//! chart, and a CSV of the samples on request.

use std::ffi::OsString;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::child::{self, TempDir};
use crate::error::{Error, Result};
use crate::svg::Series;
use crate::{html, map, procfs, shm, svg, term};

pub struct Args {
    pub interval_ms: u64,
    pub svg: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub system: bool,
    pub argv: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub t_ms: u64,
    pub rss_bytes: u64,
    pub in_use_bytes: Option<u64>,
    pub mapped_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
}

fn write_file(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
    eprintln!("oxalloc: wrote {}", path.display());
    Ok(())
}

pub fn main(a: Args) -> Result<u8> {
    if a.interval_ms == 0 {
        return Err(Error::new("--interval-ms must be at least 1"));
    }
    let tmp = TempDir::new("trace")?;
    let (env, shm_path) = map::oxalloc_env(&tmp, a.system);
    let command = child::command_line(&a.argv);
    let t0 = Instant::now();
    let child = child::spawn(&a.argv, &env)?;
    let pid = child.id();
    let last_rss = Arc::new(AtomicU64::new(0));
    let shown = Arc::clone(&last_rss);
    let progress = term::Progress::start(format!("tracing {command}"), move || {
        format!("RSS {}", term::bytes(shown.load(Ordering::Relaxed)))
    });
    let mut samples: Vec<Sample> = Vec::new();
    let exit = loop {
        if let Some(e) = child::wait(&child, false)? {
            break e;
        }
        let t_ms = t0.elapsed().as_millis() as u64;
        if let Ok(st) = procfs::read_status(pid) {
            // A zombie has no memory left: its status has no VmRSS line; skip that sample.
            if st.vm_rss_bytes > 0 {
                let ox = shm_path.as_deref().and_then(shm::read);
                samples.push(Sample {
                    t_ms,
                    rss_bytes: st.vm_rss_bytes,
                    in_use_bytes: ox.as_ref().map(|o| o.in_use_bytes),
                    mapped_bytes: ox.as_ref().map(|o| o.mapped_bytes),
                    cached_bytes: ox.as_ref().map(|o| o.cached_dirty_bytes),
                });
                last_rss.store(st.vm_rss_bytes, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(a.interval_ms));
    };
    progress.finish();
    let wall_ms = t0.elapsed().as_millis() as u64;
    // A short program (or one slowed down by a busy machine) may exit before any
    // sample saw its statistics page; the page outlives it, so read it once more.
    if !samples.iter().any(|s| s.in_use_bytes.is_some()) {
        if let Some(o) = shm_path.as_deref().and_then(shm::read) {
            samples.push(Sample {
                t_ms: wall_ms,
                rss_bytes: samples.last().map_or(exit.peak_rss_bytes, |s| s.rss_bytes),
                in_use_bytes: Some(o.in_use_bytes),
                mapped_bytes: Some(o.mapped_bytes),
                cached_bytes: Some(o.cached_dirty_bytes),
            });
        }
    }

    let times: Vec<u64> = samples.iter().map(|s| s.t_ms).collect();
    let mut series = vec![Series {
        name: "RSS (kernel)",
        color: "#d9534f",
        values: samples.iter().map(|s| s.rss_bytes).collect(),
    }];
    let has_ox = samples.iter().any(|s| s.in_use_bytes.is_some());
    if has_ox {
        let col = |f: fn(&Sample) -> Option<u64>| {
            samples
                .iter()
                .map(|s| f(s).unwrap_or(0))
                .collect::<Vec<_>>()
        };
        series.push(Series {
            name: "oxalloc mapped",
            color: "#5bc0de",
            values: col(|s| s.mapped_bytes),
        });
        series.push(Series {
            name: "oxalloc in use",
            color: "#337ab7",
            values: col(|s| s.in_use_bytes),
        });
        series.push(Series {
            name: "cached free",
            color: "#f0ad4e",
            values: col(|s| s.cached_bytes),
        });
    }

    let mut o = String::new();
    let _ = writeln!(
        o,
        "oxalloc trace: {command}  ({}, {}, {} samples every {} ms{})",
        exit.describe(),
        term::duration_ns(wall_ms * 1_000_000),
        samples.len(),
        a.interval_ms,
        if has_ox {
            ""
        } else {
            "; RSS only: the program did not run oxalloc"
        }
    );
    let peak_all = series
        .iter()
        .flat_map(|s| s.values.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let mut summary = vec![
        ("program".to_string(), command.clone()),
        ("exit".to_string(), exit.describe()),
        (
            "wall time".to_string(),
            term::duration_ns(wall_ms * 1_000_000),
        ),
        (
            "peak RSS (wait4)".to_string(),
            term::bytes(exit.peak_rss_bytes),
        ),
    ];
    for s in &series {
        let (i, peak) = s
            .values
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|&(_, v)| v)
            .unwrap_or((0, 0));
        let at = times.get(i).copied().unwrap_or(0);
        let last = s.values.last().copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "  {:<15} {}  peak {} at {:.2} s, last {}",
            s.name,
            term::sparkline(&s.values, 60, peak_all),
            term::bytes(peak),
            at as f64 / 1000.0,
            term::bytes(last)
        );
        summary.push((
            format!("{} peak", s.name),
            format!("{} at {:.2} s", term::bytes(peak), at as f64 / 1000.0),
        ));
    }
    let _ = writeln!(
        o,
        "  peak RSS from the kernel (wait4): {}",
        term::bytes(exit.peak_rss_bytes)
    );
    print!("{o}");

    let title = format!("oxalloc trace: {command}");
    if samples.is_empty() && (a.svg.is_some() || a.html.is_some()) {
        eprintln!("oxalloc: note: the program ended before the first sample; the chart is empty");
    }
    let chart = svg::time_chart(&title, &times, &series);
    if let Some(p) = &a.svg {
        write_file(
            p,
            &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{chart}\n"),
        )?;
    }
    if let Some(p) = &a.html {
        write_file(p, &html::trace_page(&title, &chart, &summary))?;
    }
    if let Some(p) = &a.csv {
        let mut c = String::from("t_ms,rss_bytes,in_use_bytes,mapped_bytes,cached_free_bytes\n");
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        for s in &samples {
            let _ = writeln!(
                c,
                "{},{},{},{},{}",
                s.t_ms,
                s.rss_bytes,
                opt(s.in_use_bytes),
                opt(s.mapped_bytes),
                opt(s.cached_bytes)
            );
        }
        write_file(p, &c)?;
    }
    Ok(exit.code())
}
