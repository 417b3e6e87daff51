//! `oxalloc leaks`: run a program under the hardened build and report what it never freed,
//! grouped by allocation site and symbolised, largest first.
//!
//! The hardened library (`liboxalloc_hardened.so`, with `OXALLOC_LEAKS=1` and
//! `OXALLOC_LEAKS_FILE=<tmp>/leaks-%p.txt`) writes at exit:
//!
//! ```text
//! oxalloc-leaks 1 pid=<pid>
//! leak <bytes> <count> <addr1> <addr2> ...     (one line per allocation stack, hex addresses)
//! maps
//! <the process's /proc/self/maps>
//! ```
//!
//! `addr1` is the innermost return address. The tool symbolises with the maps the process
//! wrote, so it works after the process is gone. `--report FILE` symbolises a saved report.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::child::{self, TempDir};
use crate::error::{Error, Result};
use crate::procfs::{self, Mapping};
use crate::symbolize::{Frame, Symbolizer};
use crate::{lib_locate, run, term};

pub struct Args {
    pub report: Option<PathBuf>,
    pub max_frames: usize,
    pub argv: Vec<OsString>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakRecord {
    pub bytes: u64,
    pub count: u64,
    pub stack: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct LeakReport {
    pub pid: u64,
    pub leaks: Vec<LeakRecord>,
    pub maps: Vec<Mapping>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

/// Parses the hardened library's leak file (format above).
pub fn parse(text: &str) -> std::result::Result<LeakReport, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let mut words = header.split_whitespace();
    if words.next() != Some("oxalloc-leaks") {
        return Err("not an oxalloc leak report (no `oxalloc-leaks` header)".into());
    }
    if words.next() != Some("1") {
        return Err(format!("unsupported leak report version: {header}"));
    }
    let pid = words
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut report = LeakReport {
        pid,
        ..LeakReport::default()
    };
    let mut in_maps = false;
    let mut maps_text = String::new();
    for (n, line) in lines.enumerate() {
        if in_maps {
            maps_text.push_str(line);
            maps_text.push('\n');
            continue;
        }
        if line.trim() == "maps" {
            in_maps = true;
            continue;
        }
        let mut w = line.split_whitespace();
        match w.next() {
            Some("leak") => {
                let bad = || format!("line {}: malformed leak line: {line}", n + 2);
                let bytes = w.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
                let count = w.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
                let stack = w.map(hex).collect::<Option<Vec<u64>>>().ok_or_else(bad)?;
                report.leaks.push(LeakRecord {
                    bytes,
                    count,
                    stack,
                });
            }
            None => {}
            Some(_) => {} // Lines from a newer library: skip.
        }
    }
    report.maps = procfs::parse_maps(&maps_text);
    Ok(report)
}

/// One allocation site after symbolisation: identical symbolised stacks are merged.
#[derive(Debug)]
pub struct Site {
    pub bytes: u64,
    pub count: u64,
    pub frames: Vec<Frame>,
}

fn is_allocator_frame(f: &Frame) -> bool {
    f.module
        .as_deref()
        .is_some_and(|m| m.starts_with("liboxalloc"))
}

/// Symbolises and groups the leaks, largest first. Frames inside the allocator itself are
/// dropped so that the first frame is the program's call to `malloc`.
pub fn sites(report: &LeakReport, max_frames: usize) -> Vec<Site> {
    let mut sym = Symbolizer::new(report.maps.clone());
    let mut by_stack: HashMap<Vec<Frame>, (u64, u64)> = HashMap::new();
    for leak in &report.leaks {
        let mut frames: Vec<Frame> = Vec::new();
        for &addr in &leak.stack {
            frames.extend(sym.symbolize(addr, true));
        }
        let first_own = frames
            .iter()
            .position(|f| !is_allocator_frame(f))
            .unwrap_or(0);
        let mut frames: Vec<Frame> = frames
            .into_iter()
            .skip(first_own)
            .take(max_frames)
            .collect();
        // Group on code location, not raw addresses of different call instructions.
        for f in &mut frames {
            if f.function.is_some() {
                f.addr = 0;
            }
        }
        let e = by_stack.entry(frames).or_default();
        e.0 += leak.bytes;
        e.1 += leak.count;
    }
    let mut out: Vec<Site> = by_stack
        .into_iter()
        .map(|(frames, (bytes, count))| Site {
            bytes,
            count,
            frames,
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.count.cmp(&a.count)));
    out
}

/// The report in LeakSanitizer's layout, which people know.
pub fn format(sites: &[Site], command: &str) -> String {
    let mut o = String::new();
    if sites.is_empty() {
        let _ = writeln!(o, "oxalloc leaks: no leaks in {command}");
        return o;
    }
    let _ = writeln!(o, "oxalloc leaks: {command}");
    for s in sites {
        let _ = writeln!(
            o,
            "\nLeak of {} byte(s) in {} object(s) allocated from:",
            term::count(s.bytes),
            s.count
        );
        for (i, f) in s.frames.iter().enumerate() {
            let addr = if f.addr != 0 {
                format!("0x{:x} ", f.addr)
            } else {
                String::new()
            };
            let _ = writeln!(o, "    #{i} {addr}in {}", f.describe());
        }
    }
    let bytes: u64 = sites.iter().map(|s| s.bytes).sum();
    let count: u64 = sites.iter().map(|s| s.count).sum();
    let _ = writeln!(
        o,
        "\nSUMMARY: oxalloc: {} byte(s) leaked in {} allocation(s) from {} site(s).",
        term::count(bytes),
        count,
        sites.len()
    );
    o
}

fn load(path: &Path) -> Result<LeakReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("cannot read leak report {}: {e}", path.display())))?;
    parse(&text).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

pub fn main(a: Args) -> Result<u8> {
    if let Some(path) = &a.report {
        let report = load(path)?;
        let what = format!("report {} (PID {})", path.display(), report.pid);
        print!("{}", format(&sites(&report, a.max_frames), &what));
        return Ok(0);
    }
    let lib = lib_locate::lib(true)?;
    let tmp = TempDir::new("leaks")?;
    let env = vec![
        ("LD_PRELOAD".to_string(), run::preload_value(&lib)),
        ("OXALLOC_LEAKS".to_string(), OsString::from("1")),
        (
            "OXALLOC_LEAKS_FILE".to_string(),
            tmp.path.join("leaks-%p.txt").into_os_string(),
        ),
    ];
    let command = child::command_line(&a.argv);
    let child = child::spawn(&a.argv, &env)?;
    let progress = term::Progress::start(format!("running {command}"), String::new);
    let exit = child::wait(&child, true)?.ok_or_else(|| Error::new("lost the program"))?;
    progress.finish();
    let path = tmp.path.join(format!("leaks-{}.txt", child.id()));
    if !path.exists() {
        return Err(Error::new(format!(
            "{command} {} without writing a leak report (was {} loaded?)",
            exit.describe(),
            lib.display()
        )));
    }
    let report = load(&path)?;
    let sites = sites(&report, a.max_frames);
    eprint!("{}", format(&sites, &command));
    // Like valgrind's --error-exitcode: leaks make a clean exit fail, for CI.
    Ok(if exit.code() == 0 && !sites.is_empty() {
        1
    } else {
        exit.code()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_leaks_and_maps() {
        let text = "oxalloc-leaks 1 pid=77\nleak 4096 4 0x5555 0x6666\nleak 16 1 0x7777\nmaps\n\
            555555554000-555555556000 r-xp 00000000 fe:00 1 /bin/prog\n";
        let r = parse(text).unwrap();
        assert_eq!(r.pid, 77);
        assert_eq!(r.leaks.len(), 2);
        assert_eq!(
            r.leaks[0],
            LeakRecord {
                bytes: 4096,
                count: 4,
                stack: vec![0x5555, 0x6666]
            }
        );
        assert_eq!(r.maps.len(), 1);
        assert!(parse("hello\n").is_err());
        assert!(parse("oxalloc-leaks 1 pid=1\nleak x\n").is_err());
    }

    #[test]
    fn unknown_sites_are_grouped_and_sorted() {
        let text = "oxalloc-leaks 1 pid=1\nleak 10 1 0x10\nleak 100 2 0x20\nleak 5 1 0x30\nmaps\n";
        let r = parse(text).unwrap();
        let s = sites(&r, 8);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].bytes, 100);
        let out = format(&s, "prog");
        assert!(
            out.contains("SUMMARY: oxalloc: 115 byte(s) leaked in 4 allocation(s) from 3 site(s)."),
            "{out}"
        );
    }
}
