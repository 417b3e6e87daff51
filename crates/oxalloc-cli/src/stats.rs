//! The exit statistics the library writes when `OXALLOC_STATS_FILE` is set (schema version 1),
//! and their text report.
//!
//! Every field defaults to zero so that an older or newer library still gives a report: the
//! tool shows what it finds and ignores what it does not know.

use serde::{Deserialize, Serialize};

use crate::term;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    pub oxalloc_stats: u64,
    pub pid: u64,
    pub elapsed_ns: u64,
    pub allocs: u64,
    pub frees: u64,
    pub bytes_allocated: u64,
    pub live_bytes: u64,
    pub in_use_bytes: u64,
    pub peak_in_use_bytes: u64,
    pub mapped_bytes: u64,
    pub peak_mapped_bytes: u64,
    pub purged_bytes: u64,
    pub unmapped_bytes: u64,
    pub purge_calls: u64,
    pub segments: u64,
    pub peak_rss_bytes: u64,
    pub large_allocs: u64,
    pub huge_allocs: u64,
    pub heaps: u64,
    pub heaps_abandoned: u64,
    pub remote_frees: u64,
    pub classes: Vec<ClassStats>,
    pub heap_list: Vec<HeapStats>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct ClassStats {
    pub size: u64,
    pub allocs: u64,
    pub frees: u64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct HeapStats {
    pub id: u64,
    pub tid: u64,
    pub allocs: u64,
    pub frees: u64,
    pub live_bytes: u64,
    pub abandoned: bool,
}

impl Stats {
    pub fn parse(text: &str) -> Result<Stats, String> {
        let s: Stats = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if s.oxalloc_stats == 0 {
            return Err("not an oxalloc statistics file (no \"oxalloc_stats\" version)".into());
        }
        Ok(s)
    }
}

/// What the tool knows about the run besides the library's statistics.
pub struct RunInfo<'a> {
    pub command: &'a str,
    pub status: &'a str,
    pub wall_ns: u64,
    /// Peak RSS of the child from `wait4`'s rusage (the kernel's number).
    pub peak_rss_bytes: u64,
    pub user_ns: u64,
    pub sys_ns: u64,
    pub other_processes: usize,
}

/// How many size-class and heap rows to show.
pub const TOP_ROWS: usize = 10;

/// The human report printed by `oxalloc run`.
pub fn report(s: &Stats, info: &RunInfo<'_>, color: bool) -> String {
    use std::fmt::Write;
    let h = |t: &str| term::bold(color, t);
    let mut o = String::new();
    let _ = writeln!(o, "{} {}", h("oxalloc run:"), info.command);
    let kv = |o: &mut String, k: &str, v: String, note: &str| {
        let _ = writeln!(o, "  {k:<22}{v:>14}  {note}");
    };
    let _ = writeln!(o, "  {:<22}{}", "exit status", info.status);
    kv(
        &mut o,
        "wall time",
        term::duration_ns(info.wall_ns),
        &format!(
            "(user {}, system {})",
            term::duration_ns(info.user_ns),
            term::duration_ns(info.sys_ns)
        ),
    );
    let _ = writeln!(o, "{}", h("allocator"));
    kv(
        &mut o,
        "allocations",
        term::count(s.allocs),
        "malloc-family calls",
    );
    kv(&mut o, "frees", term::count(s.frees), "");
    kv(
        &mut o,
        "bytes allocated",
        term::bytes(s.bytes_allocated),
        &format!(
            "{} bytes, block sizes after rounding",
            term::count(s.bytes_allocated)
        ),
    );
    kv(
        &mut o,
        "live at exit",
        term::bytes(s.live_bytes),
        "not freed before exit",
    );
    kv(
        &mut o,
        "peak in use",
        term::bytes(s.peak_in_use_bytes),
        "spans and blocks handed out",
    );
    kv(
        &mut o,
        "peak reserved",
        term::bytes(s.peak_mapped_bytes),
        "address space mapped from the OS, not memory: pages count once touched",
    );
    kv(
        &mut o,
        "returned to the OS",
        term::bytes(s.purged_bytes + s.unmapped_bytes),
        &format!(
            "purged {} in {} madvise calls, unmapped {}",
            term::bytes(s.purged_bytes),
            term::count(s.purge_calls),
            term::bytes(s.unmapped_bytes)
        ),
    );
    kv(
        &mut o,
        "segments",
        term::count(s.segments),
        &format!(
            "large allocations {}, huge {}, cross-thread frees {}",
            term::count(s.large_allocs),
            term::count(s.huge_allocs),
            term::count(s.remote_frees)
        ),
    );
    let _ = writeln!(o, "{}", h("kernel"));
    kv(
        &mut o,
        "peak RSS",
        term::bytes(info.peak_rss_bytes),
        "maximum resident set (wait4)",
    );
    if s.peak_rss_bytes > 0 && s.peak_rss_bytes != info.peak_rss_bytes {
        kv(
            &mut o,
            "peak RSS (library)",
            term::bytes(s.peak_rss_bytes),
            "as seen by the library at exit",
        );
    }

    let mut classes: Vec<&ClassStats> = s.classes.iter().filter(|c| c.allocs > 0).collect();
    if !classes.is_empty() {
        classes.sort_by(|a, b| b.allocs.cmp(&a.allocs).then(a.size.cmp(&b.size)));
        let total: u64 = classes.iter().map(|c| c.allocs).sum();
        let _ = writeln!(
            o,
            "{} (top {} of {} used, by allocations)",
            h("size classes"),
            TOP_ROWS.min(classes.len()),
            classes.len()
        );
        let _ = writeln!(
            o,
            "  {:>10} {:>14} {:>14} {:>10} {:>7}",
            "size", "allocs", "frees", "live", "share"
        );
        for c in classes.iter().take(TOP_ROWS) {
            let _ = writeln!(
                o,
                "  {:>10} {:>14} {:>14} {:>10} {:>6.1}%",
                term::bytes(c.size),
                term::count(c.allocs),
                term::count(c.frees),
                term::count(c.allocs.saturating_sub(c.frees)),
                100.0 * c.allocs as f64 / total.max(1) as f64
            );
        }
    }
    if !s.heap_list.is_empty() {
        let mut heaps: Vec<&HeapStats> = s.heap_list.iter().collect();
        heaps.sort_by(|a, b| b.allocs.cmp(&a.allocs).then(a.id.cmp(&b.id)));
        let _ = writeln!(
            o,
            "{} ({} heaps, {} abandoned by exited threads)",
            h("thread heaps"),
            s.heap_list.len().max(s.heaps as usize),
            s.heaps_abandoned
                .max(s.heap_list.iter().filter(|x| x.abandoned).count() as u64)
        );
        let _ = writeln!(
            o,
            "  {:>5} {:>9} {:>14} {:>14} {:>10}  state",
            "heap", "thread", "allocs", "frees", "live"
        );
        for x in heaps.iter().take(TOP_ROWS) {
            let _ = writeln!(
                o,
                "  {:>5} {:>9} {:>14} {:>14} {:>10}  {}",
                x.id,
                x.tid,
                term::count(x.allocs),
                term::count(x.frees),
                term::bytes(x.live_bytes),
                if x.abandoned { "abandoned" } else { "live" }
            );
        }
        if heaps.len() > TOP_ROWS {
            let _ = writeln!(o, "  ... {} more", heaps.len() - TOP_ROWS);
        }
    }
    if info.other_processes > 0 {
        let _ = writeln!(
            o,
            "note: {} other process(es) started by the program also wrote statistics (not included)",
            info.other_processes
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"oxalloc_stats":1,"pid":123,"elapsed_ns":5,
 "allocs":1000,"frees":990,"bytes_allocated":64000,"live_bytes":640,
 "in_use_bytes":65536,"peak_in_use_bytes":131072,"mapped_bytes":4194304,"peak_mapped_bytes":4194304,
 "purged_bytes":0,"unmapped_bytes":0,"purge_calls":0,"segments":1,
 "peak_rss_bytes":0,"large_allocs":0,"huge_allocs":0,
 "heaps":1,"heaps_abandoned":0,"remote_frees":0,"future_field":[1,2],
 "classes":[{"size":16,"allocs":600,"frees":600},{"size":64,"allocs":400,"frees":390}],
 "heap_list":[{"id":0,"tid":1234,"allocs":1000,"frees":990,"live_bytes":640,"abandoned":false}]}"#;

    #[test]
    fn parses_schema_1_and_ignores_unknown_fields() {
        let s = Stats::parse(SAMPLE).unwrap();
        assert_eq!(s.allocs, 1000);
        assert_eq!(s.classes[1].size, 64);
        assert_eq!(s.heap_list[0].tid, 1234);
        let partial = Stats::parse(r#"{"oxalloc_stats":1,"allocs":3}"#).unwrap();
        assert_eq!(partial.allocs, 3);
        assert!(partial.classes.is_empty());
        assert!(Stats::parse(r#"{"allocs":3}"#).is_err());
    }

    #[test]
    fn report_shows_the_numbers() {
        let s = Stats::parse(SAMPLE).unwrap();
        let info = RunInfo {
            command: "prog",
            status: "exited 0",
            wall_ns: 1_000_000,
            peak_rss_bytes: 3 << 20,
            user_ns: 0,
            sys_ns: 0,
            other_processes: 0,
        };
        let r = report(&s, &info, false);
        assert!(r.contains("allocations"), "{r}");
        assert!(r.contains("1,000"), "{r}");
        assert!(r.contains("128 KiB") || r.contains("128.0 KiB"), "{r}");
        assert!(r.contains("3.00 MiB"), "{r}");
        assert!(r.contains("1234"), "{r}");
        assert!(r.contains("60.0%"), "{r}");
    }
}
