//! `oxalloc map`: the memory of a process as the textbook draws it: text, data, bss, heap,
//! mappings, stack, with sizes, permissions and resident memory from `/proc/PID/smaps`; and
//! for a process running oxalloc, its segments and their slices (used, free, purged) from the
//! live statistics file, beside the kernel's resident bytes for each segment (`pagemap`).
//!
//! `map PID` looks at a running process (and finds its statistics file through
//! `OXALLOC_STATS_SHM` in `/proc/PID/environ` when it can). `map -- PROG ARGS` starts the
//! program with the allocator preloaded and takes the snapshot while it is alive: it samples
//! every 25 ms and keeps the latest snapshot until `--after-ms` (default 300 ms) have passed,
//! so a program that exits earlier is still shown as it was last seen alive. The map is
//! printed at once; the program then runs to its end (or is killed with `--kill`).

use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::child::{self, TempDir};
use crate::error::{Error, Result};
use crate::procfs::{self, Kind, Mapping, Pagemap, Status};
use crate::shm::{self, ShmSnapshot};
use crate::{html, lib_locate, run, term};

pub struct Args {
    pub pid: Option<u32>,
    pub html: Option<PathBuf>,
    pub no_color: bool,
    pub all: bool,
    pub after_ms: u64,
    pub kill: bool,
    pub system: bool,
    pub argv: Vec<OsString>,
}

/// One row of the picture: a mapping, or all mappings of one shared library.
#[derive(Clone, Debug)]
pub struct Region {
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub name: String,
    pub size_bytes: u64,
    pub rss_bytes: u64,
    pub mappings: usize,
}

/// An oxalloc segment with the kernel's resident bytes for its range.
#[derive(Clone, Debug)]
pub struct SegmentView {
    pub seg: shm::Segment,
    pub rss_bytes: Option<u64>,
}

/// Everything the text and HTML views draw.
pub struct Snapshot {
    pub pid: u32,
    pub command: String,
    pub status: Status,
    pub maps: Vec<Mapping>,
    pub kinds: Vec<Kind>,
    pub oxalloc: Option<ShmSnapshot>,
    pub segments: Vec<SegmentView>,
    /// Milliseconds after the start of the program, for `map -- PROG`.
    pub taken_ms: Option<u64>,
}

impl Snapshot {
    pub fn take(pid: u32, shm_path: Option<&Path>) -> Result<Snapshot> {
        let maps = procfs::read_smaps(pid)?;
        let status = procfs::read_status(pid)?;
        let oxalloc = shm_path.and_then(shm::read);
        let bases: Vec<u64> = oxalloc
            .iter()
            .flat_map(|s| s.segments.iter().map(|g| g.base))
            .collect();
        let exe = procfs::read_exe(pid);
        let kinds = procfs::classify(&maps, exe.as_deref(), &bases);
        let mut pagemap = Pagemap::open(pid);
        let segments = oxalloc
            .iter()
            .flat_map(|s| s.segments.iter())
            .map(|&seg| SegmentView {
                seg,
                rss_bytes: pagemap
                    .as_mut()
                    .and_then(|p| p.resident_bytes(seg.base, seg.base + shm::SEGMENT_BYTES)),
            })
            .collect();
        let mut command = procfs::read_cmdline(pid);
        if command.is_empty() {
            command = status.name.clone();
        }
        Ok(Snapshot {
            pid,
            command,
            status,
            maps,
            kinds,
            oxalloc,
            segments,
            taken_ms: None,
        })
    }

    /// Rows, low addresses first. Libraries are merged into one row each unless `all`.
    pub fn regions(&self, all: bool) -> Vec<Region> {
        let mut out: Vec<Region> = Vec::new();
        for (m, &kind) in self.maps.iter().zip(&self.kinds) {
            let name = if m.path.is_empty() {
                String::new()
            } else {
                m.path.clone()
            };
            if !all && kind == Kind::Library {
                if let Some(r) = out
                    .iter_mut()
                    .rev()
                    .find(|r| r.kind == Kind::Library && r.name == name)
                {
                    r.end = r.end.max(m.end);
                    r.size_bytes += m.len_bytes();
                    r.rss_bytes += m.rss_bytes;
                    r.mappings += 1;
                    if r.perms != m.perms {
                        r.perms = "mixed".into();
                    }
                    continue;
                }
            }
            out.push(Region {
                kind,
                start: m.start,
                end: m.end,
                perms: m.perms.clone(),
                name,
                size_bytes: m.len_bytes(),
                rss_bytes: m.rss_bytes,
                mappings: 1,
            });
        }
        out
    }

    /// `(kind, size, rss)` totals, in `Kind::ALL` order, kinds that occur only.
    pub fn totals(&self) -> Vec<(Kind, u64, u64)> {
        Kind::ALL
            .iter()
            .filter_map(|&k| {
                let (mut size, mut rss, mut n) = (0, 0, 0);
                for (m, _) in self.maps.iter().zip(&self.kinds).filter(|(_, &x)| x == k) {
                    size += m.len_bytes();
                    rss += m.rss_bytes;
                    n += 1;
                }
                (n > 0).then_some((k, size, rss))
            })
            .collect()
    }

    pub fn rss_sum(&self) -> u64 {
        self.maps.iter().map(|m| m.rss_bytes).sum()
    }
}

/// A short label for a region's file name.
pub fn short_name(r: &Region) -> String {
    let base = r.name.rsplit('/').next().unwrap_or(&r.name).to_string();
    let base = if base.is_empty() {
        "(anonymous)".to_string()
    } else {
        base
    };
    if r.mappings > 1 {
        format!("{base} ({} maps)", r.mappings)
    } else {
        base
    }
}

fn log_len(size: u64, max: u64, width: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let l = (size as f64).log2() - 11.0; // 4 KiB -> 1 cell
    let m = ((max.max(8192)) as f64).log2() - 11.0;
    ((l / m) * width as f64).round().clamp(1.0, width as f64) as usize
}

/// The terminal view. Bars: length grows with the log of the size (a 4 KiB page and a 1 GiB
/// reservation both stay visible); the solid part is the resident share.
pub fn text(s: &Snapshot, all: bool, color: bool) -> String {
    let mut o = String::new();
    let when = s
        .taken_ms
        .map(|t| format!("  (snapshot at {t} ms)"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "{} PID {}  {}{when}",
        term::bold(color, "oxalloc map:"),
        s.pid,
        s.command
    );
    let st = &s.status;
    let _ = writeln!(
        o,
        "  size {}, resident {} (anonymous {}, file {}), peak resident {}, {} thread(s), {} mappings",
        term::bytes(st.vm_size_bytes),
        term::bytes(st.vm_rss_bytes),
        term::bytes(st.rss_anon_bytes),
        term::bytes(st.rss_file_bytes),
        term::bytes(st.vm_hwm_bytes),
        st.threads,
        s.maps.len()
    );
    let regions = s.regions(all);
    let max = regions.iter().map(|r| r.size_bytes).max().unwrap_or(1);
    const W: usize = 24;
    let _ = writeln!(
        o,
        "\n  {:<8} {:<33} {:<5} {:>10} {:>10}  {:<W$}  name",
        "kind", "address range (high to low)", "perms", "size", "resident", "resident / size (log)"
    );
    for r in regions.iter().rev() {
        let len = log_len(r.size_bytes, max, W);
        let full =
            ((r.rss_bytes as f64 / r.size_bytes.max(1) as f64) * len as f64).round() as usize;
        let full = if r.rss_bytes > 0 { full.max(1) } else { 0 };
        let bar = term::bar(W, full, len.saturating_sub(full));
        let _ = writeln!(
            o,
            "  {} {:016x}-{:016x} {:<5} {:>10} {:>10}  {}  {}",
            term::paint(color, r.kind.ansi(), &format!("{:<8}", r.kind.name())),
            r.start,
            r.end,
            r.perms,
            term::bytes(r.size_bytes),
            term::bytes(r.rss_bytes),
            term::paint(color, r.kind.ansi(), &bar),
            short_name(r)
        );
    }
    let totals = s.totals();
    let rss_total = s.rss_sum().max(1);
    let _ = writeln!(
        o,
        "\n  {:<8} {:>10} {:>10} {:>6}  share of resident",
        "by kind", "size", "resident", ""
    );
    for (k, size, rss) in &totals {
        let share = *rss as f64 / rss_total as f64;
        let cells = (share * 40.0).round() as usize;
        let _ = writeln!(
            o,
            "  {} {:>10} {:>10} {:>5.1}%  {}",
            term::paint(color, k.ansi(), &format!("{:<8}", k.name())),
            term::bytes(*size),
            term::bytes(*rss),
            share * 100.0,
            term::paint(color, k.ansi(), &"█".repeat(cells))
        );
    }
    if let Some(ox) = &s.oxalloc {
        let _ = writeln!(
            o,
            "\n  {} mapped {}, in use {} (peak {}), cached free {}, purged so far {}, {} segment(s), {} huge",
            term::bold(color, "oxalloc:"),
            term::bytes(ox.mapped_bytes),
            term::bytes(ox.in_use_bytes),
            term::bytes(ox.peak_in_use_bytes),
            term::bytes(ox.cached_dirty_bytes),
            term::bytes(ox.purged_bytes),
            ox.segments.len(),
            ox.huge_count
        );
        let _ = writeln!(
            o,
            "  {:<16} {:>4} {:>5} {:>6} {:>10}  slices: M metadata, # used, + free (dirty), . free (purged)",
            "segment", "used", "dirty", "purged", "kernel rss"
        );
        for v in &s.segments {
            let g = v.seg;
            let _ = writeln!(
                o,
                "  {:016x} {:>4} {:>5} {:>6} {:>10}  {}",
                g.base,
                g.used_slices,
                g.free_dirty_slices,
                g.free_purged_slices,
                v.rss_bytes.map(term::bytes).unwrap_or_else(|| "-".into()),
                slice_strip(&g, color)
            );
        }
    }
    o
}

/// 64 characters: slice 0 (metadata), then used, dirty and purged slices in that order.
pub fn slice_strip(g: &shm::Segment, color: bool) -> String {
    let n = shm::SLICES_PER_SEGMENT as usize - 1;
    let used = (g.used_slices as usize).min(n);
    let dirty = (g.free_dirty_slices as usize).min(n - used);
    let purged = (g.free_purged_slices as usize).min(n - used - dirty);
    let rest = n - used - dirty - purged;
    format!(
        "M{}{}{}{}",
        term::paint(color, Kind::Oxalloc.ansi(), &"#".repeat(used)),
        term::paint(color, 221, &"+".repeat(dirty)),
        term::paint(color, 245, &".".repeat(purged)),
        " ".repeat(rest)
    )
}

fn shm_path_from_environ(pid: u32) -> Option<PathBuf> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0).find_map(|kv| {
        kv.strip_prefix(b"OXALLOC_STATS_SHM=")
            .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
    })
}

fn output(s: &Snapshot, a: &Args) -> Result<()> {
    print!("{}", text(s, a.all, term::use_color(a.no_color)));
    if let Some(path) = &a.html {
        let page = html::map_page(s);
        std::fs::write(path, page)
            .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("oxalloc: wrote {}", path.display());
    }
    Ok(())
}

/// Environment for a child under oxalloc with a live statistics file, or `None` with
/// `--system` (or when the library is not built, with a note), to watch it on its own malloc.
pub fn oxalloc_env(tmp: &TempDir, system: bool) -> (Vec<(String, OsString)>, Option<PathBuf>) {
    if system {
        return (Vec::new(), None);
    }
    match lib_locate::lib(false) {
        Ok(lib) => {
            let shm = tmp.path.join("stats.shm");
            (
                vec![
                    ("LD_PRELOAD".to_string(), run::preload_value(&lib)),
                    (
                        "OXALLOC_STATS_SHM".to_string(),
                        shm.clone().into_os_string(),
                    ),
                ],
                Some(shm),
            )
        }
        Err(e) => {
            eprintln!("oxalloc: note: {e}; showing the program with its own allocator");
            (Vec::new(), None)
        }
    }
}

pub fn main(a: Args) -> Result<u8> {
    if let Some(pid) = a.pid {
        if !a.argv.is_empty() {
            return Err(Error::new("give either a PID or `-- PROG ARGS`, not both"));
        }
        procfs::check_pid(pid)?;
        let shm = shm_path_from_environ(pid);
        let s = Snapshot::take(pid, shm.as_deref())?;
        output(&s, &a)?;
        return Ok(0);
    }
    if a.argv.is_empty() {
        return Err(Error::new(
            "give a PID or a program: `oxalloc map PID` or `oxalloc map -- PROG ARGS`",
        ));
    }
    let tmp = TempDir::new("map")?;
    let (env, shm) = oxalloc_env(&tmp, a.system);
    let command = child::command_line(&a.argv);
    let t0 = Instant::now();
    let child = child::spawn(&a.argv, &env)?;
    let pid = child.id();
    let mut latest: Option<Snapshot> = None;
    let mut exited = None;
    loop {
        if let Some(e) = child::wait(&child, false)? {
            exited = Some(e);
            break;
        }
        let ms = t0.elapsed().as_millis() as u64;
        // A read that races with the exit fails or comes back empty: keep the previous one.
        if let Ok(mut s) = Snapshot::take(pid, shm.as_deref()) {
            if !s.maps.is_empty() {
                s.taken_ms = Some(ms);
                latest = Some(s);
            }
        }
        if ms >= a.after_ms && latest.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let Some(mut snap) = latest else {
        let how = exited.map(|e| e.describe()).unwrap_or_default();
        return Err(Error::new(format!(
            "{command} {how} after {} ms, before a snapshot could be taken",
            t0.elapsed().as_millis()
        )));
    };
    if snap.command.is_empty() {
        snap.command = command.clone();
    }
    output(&snap, &a)?;
    let exit = match exited {
        Some(e) => e,
        None if a.kill => {
            let mut c = child;
            let _ = c.kill();
            child::wait(&c, true)?;
            return Ok(0);
        }
        None => {
            let progress = term::Progress::start(format!("waiting for {command}"), String::new);
            let e = child::wait(&child, true)?.ok_or_else(|| Error::new("lost the program"))?;
            progress.finish();
            e
        }
    };
    Ok(exit.code())
}
