//! Results: the records of a suite run, their ratios and summaries, and their text table,
//! CSV and JSON forms.

use crate::machine::Machine;
use crate::stats::{self, Better};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Workloads left out of the time summary: their wall time is mostly a deliberate sleep.
pub const TIME_SUMMARY_EXCLUDED: [&str; 1] = ["burst-idle"];

/// One run of one case under one allocator.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// Wall seconds, spawn to exit.
    pub wall_s: f64,
    /// Peak RSS from `wait4`, MiB.
    pub peak_rss_mib: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Minor page faults from `wait4` (`ru_minflt`); 0 in files from before it was recorded.
    #[serde(default)]
    pub minor_faults: f64,
    /// Operations per second of the measured part, millions (if the workload has one).
    pub throughput_mops: Option<f64>,
    /// Workload-specific numbers.
    pub extra: BTreeMap<String, f64>,
}

/// One cell of the results: a case under an allocator, medians over its runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Row id (e.g. `larson/t4`).
    pub case: String,
    /// Workload name.
    pub workload: String,
    /// Thread count.
    pub threads: usize,
    /// Allocator name.
    pub allocator: String,
    /// How the allocator was put in (`preload`, `default`, `global_allocator`).
    pub mode: String,
    /// Median wall seconds.
    pub wall_s: Option<f64>,
    /// Median peak RSS, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Median minor page faults.
    pub minor_faults: Option<f64>,
    /// Median throughput, Mops/s.
    pub throughput_mops: Option<f64>,
    /// `wall_s` / best peer's.
    pub wall_ratio: Option<f64>,
    /// `peak_rss_mib` / best peer's.
    pub rss_ratio: Option<f64>,
    /// `minor_faults` / best peer's.
    pub fault_ratio: Option<f64>,
    /// `throughput_mops` / best peer's (above 1 is faster).
    pub throughput_ratio: Option<f64>,
    /// Medians of the workload-specific numbers.
    pub extra: BTreeMap<String, f64>,
    /// Every run.
    pub runs: Vec<Run>,
    /// Why the case failed or was skipped under this allocator.
    pub error: Option<String>,
}

impl Record {
    /// Fills the medians from `runs`.
    pub fn summarize_runs(&mut self) {
        let col = |f: &dyn Fn(&Run) -> Option<f64>| -> Vec<f64> {
            self.runs.iter().filter_map(f).collect()
        };
        self.wall_s = stats::median(&col(&|r| Some(r.wall_s)));
        self.peak_rss_mib = stats::median(&col(&|r| Some(r.peak_rss_mib)));
        self.minor_faults = stats::median(&col(&|r| Some(r.minor_faults)));
        self.throughput_mops = stats::median(&col(&|r| r.throughput_mops));
        let keys: Vec<String> = self
            .runs
            .iter()
            .flat_map(|r| r.extra.keys().cloned())
            .collect();
        for k in keys {
            if let Some(m) = stats::median(&col(&|r| r.extra.get(&k).copied())) {
                self.extra.insert(k, m);
            }
        }
    }
}

/// An allocator as recorded in the results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocInfo {
    /// Name.
    pub name: String,
    /// Library preloaded (canonical path), if any.
    pub lib: Option<String>,
    /// Why it is missing, if it is.
    pub missing: Option<String>,
}

/// Per-allocator summary over the rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Allocator name.
    pub allocator: String,
    /// Geometric mean of wall-time ratios.
    pub time_geomean: Option<f64>,
    /// Largest wall-time ratio, and its row.
    pub time_worst: Option<(f64, String)>,
    /// Geometric mean of peak-RSS ratios.
    pub rss_geomean: Option<f64>,
    /// Largest peak-RSS ratio, and its row.
    pub rss_worst: Option<(f64, String)>,
    /// Geometric mean of minor-fault ratios.
    #[serde(default)]
    pub fault_geomean: Option<f64>,
    /// Largest minor-fault ratio, and its row.
    #[serde(default)]
    pub fault_worst: Option<(f64, String)>,
    /// Rows the summary covers.
    pub rows: usize,
}

/// Everything a suite run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// Where it ran.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Runs per cell.
    pub runs: usize,
    /// Work scale.
    pub scale: f64,
    /// Allocators, found or missing.
    pub allocators: Vec<AllocInfo>,
    /// The cells.
    pub records: Vec<Record>,
    /// Per-allocator summaries.
    pub summary: Vec<Summary>,
    /// The performance targets, met or missed (absent in files from before they were).
    #[serde(default)]
    pub targets: Vec<crate::targets::Target>,
}

/// Case ids in first-seen order.
pub fn case_ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for r in records {
        if !ids.contains(&r.case) {
            ids.push(r.case.clone());
        }
    }
    ids
}

/// A metric's getter, direction, and the setter of its ratio field.
type RatioMetric = (
    fn(&Record) -> Option<f64>,
    Better,
    fn(&mut Record, Option<f64>),
);

/// Fills the four ratio fields of every record, row by row.
pub fn fill_ratios(records: &mut [Record]) {
    for id in case_ids(records) {
        let idx: Vec<usize> = (0..records.len())
            .filter(|&i| records[i].case == id)
            .collect();
        let metrics: [RatioMetric; 4] = [
            (|r| r.wall_s, Better::Lower, |r, v| r.wall_ratio = v),
            (|r| r.peak_rss_mib, Better::Lower, |r, v| r.rss_ratio = v),
            (|r| r.minor_faults, Better::Lower, |r, v| r.fault_ratio = v),
            (
                |r| r.throughput_mops,
                Better::Higher,
                |r, v| r.throughput_ratio = v,
            ),
        ];
        for (get, better, set) in metrics {
            let row: Vec<(&str, Option<f64>)> = idx
                .iter()
                .map(|&i| (records[i].allocator.as_str(), get(&records[i])))
                .collect();
            let ratios = stats::row_ratios(&row, better);
            for (&i, r) in idx.iter().zip(ratios) {
                set(&mut records[i], r);
            }
        }
    }
}

/// Per-allocator geometric means and worst rows of the time, RSS and minor-fault ratios.
pub fn summarize(records: &[Record], allocators: &[String]) -> Vec<Summary> {
    allocators
        .iter()
        .map(|a| {
            let mine: Vec<&Record> = records.iter().filter(|r| &r.allocator == a).collect();
            let times: Vec<(f64, String)> = mine
                .iter()
                .filter(|r| !TIME_SUMMARY_EXCLUDED.contains(&r.workload.as_str()))
                .filter_map(|r| r.wall_ratio.map(|x| (x, r.case.clone())))
                .collect();
            let ratios = |get: fn(&Record) -> Option<f64>| -> Vec<(f64, String)> {
                mine.iter()
                    .filter_map(|r| get(r).map(|x| (x, r.case.clone())))
                    .collect()
            };
            let rss = ratios(|r| r.rss_ratio);
            let faults = ratios(|r| r.fault_ratio);
            let worst = |v: &[(f64, String)]| v.iter().cloned().max_by(|x, y| x.0.total_cmp(&y.0));
            let vals = |v: &[(f64, String)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
            Summary {
                allocator: a.clone(),
                time_geomean: stats::geomean(&vals(&times)),
                time_worst: worst(&times),
                rss_geomean: stats::geomean(&vals(&rss)),
                rss_worst: worst(&rss),
                fault_geomean: stats::geomean(&vals(&faults)),
                fault_worst: worst(&faults),
                rows: mine.iter().filter(|r| r.error.is_none()).count(),
            }
        })
        .collect()
}

/// How a table shows a metric's value: its decimals, and a divisor and suffix (`K`).
#[derive(Clone, Copy)]
struct Shown {
    digits: usize,
    per: f64,
    suffix: &'static str,
}

impl Shown {
    fn fmt(self, v: f64) -> String {
        let (digits, suffix) = (self.digits, self.suffix);
        format!("{:.digits$}{suffix}", v / self.per)
    }
}

/// Minor page faults in thousands, as the tables show them: `362.1K`.
pub fn kilo(faults: f64) -> String {
    KILO.fmt(faults)
}

const KILO: Shown = Shown {
    digits: 1,
    per: 1000.0,
    suffix: "K",
};

fn cell(value: Option<f64>, ratio: Option<f64>, err: Option<&String>, shown: Shown) -> String {
    match (value, err) {
        (Some(v), _) => match ratio {
            Some(r) => format!("{} {r:>5.2}x", shown.fmt(v)),
            None => shown.fmt(v),
        },
        (None, Some(e)) if e.starts_with("skipped") => "skip".into(),
        (None, Some(_)) => "FAIL".into(),
        (None, None) => "-".into(),
    }
}

/// The text tables: wall time, peak RSS, minor page faults, throughput, burst-then-idle
/// RSS, failures.
pub fn render(res: &Results) -> String {
    let allocs: Vec<&str> = res
        .allocators
        .iter()
        .filter(|a| a.missing.is_none())
        .map(|a| a.name.as_str())
        .collect();
    let ids = case_ids(&res.records);
    let find = |id: &str, a: &str| {
        res.records
            .iter()
            .find(|r| r.case == id && r.allocator == a)
    };
    let w0 = ids.iter().map(String::len).max().unwrap_or(8).max(10) + 2;
    const CW: usize = 17;
    let mut s = String::new();
    let header = |s: &mut String, title: &str| {
        let _ = writeln!(s, "\n{title}");
        let _ = write!(s, "{:<w0$}", "workload");
        for a in &allocs {
            let _ = write!(s, "{a:>CW$}");
        }
        s.push('\n');
    };
    type Pair = (Option<f64>, Option<f64>);
    type Worst = Option<(f64, String)>;
    let plain = |digits| Shown {
        digits,
        per: 1.0,
        suffix: "",
    };
    // Title, the value and ratio of a cell, how the value is shown, whether only rows with
    // a throughput are shown, and the summary's geomean and worst row (none: no summary).
    type Table = (
        &'static str,
        fn(&Record) -> Pair,
        Shown,
        bool,
        fn(&Summary) -> (Option<f64>, Worst),
    );
    let tables: [Table; 4] = [
        (
            "Wall time, s (ratio to the best peer; lower is better)",
            |r| (r.wall_s, r.wall_ratio),
            plain(3),
            false,
            |s| (s.time_geomean, s.time_worst.clone()),
        ),
        (
            "Peak RSS, MiB (ratio to the best peer; lower is better)",
            |r| (r.peak_rss_mib, r.rss_ratio),
            plain(1),
            false,
            |s| (s.rss_geomean, s.rss_worst.clone()),
        ),
        (
            "Minor page faults (ratio to the best peer; lower is better)",
            |r| (r.minor_faults, r.fault_ratio),
            KILO,
            false,
            |s| (s.fault_geomean, s.fault_worst.clone()),
        ),
        (
            "Throughput, Mops/s (ratio to the best peer; higher is better)",
            |r| (r.throughput_mops, r.throughput_ratio),
            plain(3),
            true,
            |_| (None, None),
        ),
    ];
    for (title, get, shown, only_tp, summary) in tables {
        let rows: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !only_tp
                    || allocs
                        .iter()
                        .any(|a| find(id, a).is_some_and(|r| r.throughput_mops.is_some()))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        header(&mut s, title);
        for id in rows {
            let _ = write!(s, "{id:<w0$}");
            for a in &allocs {
                let c = find(id, a).map_or("-".into(), |r| {
                    let (v, ratio) = get(r);
                    cell(v, ratio, r.error.as_ref(), shown)
                });
                let _ = write!(s, "{c:>CW$}");
            }
            s.push('\n');
        }
        let sums: Vec<(Option<f64>, Worst)> = allocs
            .iter()
            .map(|a| {
                res.summary
                    .iter()
                    .find(|x| x.allocator == *a)
                    .map_or((None, None), summary)
            })
            .collect();
        if sums.iter().any(|x| x.0.is_some()) {
            for pick_worst in [false, true] {
                let label = if pick_worst { "worst" } else { "geomean" };
                let _ = write!(s, "{label:<w0$}");
                for (g, w) in &sums {
                    let v = if pick_worst {
                        w.as_ref().map(|w| w.0)
                    } else {
                        *g
                    };
                    let c = v.map_or("-".into(), |v| format!("{v:.2}x"));
                    let _ = write!(s, "{c:>CW$}");
                }
                s.push('\n');
            }
        }
    }
    let bursts: Vec<&Record> = res
        .records
        .iter()
        .filter(|r| r.workload == "burst-idle")
        .collect();
    if !bursts.is_empty() {
        let _ = writeln!(
            s,
            "\nBurst then idle: RSS before, at peak, and after freeing 120 MiB and 1 s idle (MiB)"
        );
        let _ = writeln!(
            s,
            "{:<12}{:>10}{:>10}{:>10}{:>14}",
            "allocator", "before", "peak", "after", "after/before"
        );
        for r in bursts {
            let g = |k: &str| r.extra.get(k).map_or("-".into(), |v| format!("{v:.1}"));
            let ratio = r
                .extra
                .get("after_over_before")
                .map_or("-".into(), |v| format!("{v:.2}x"));
            let _ = writeln!(
                s,
                "{:<12}{:>10}{:>10}{:>10}{:>14}",
                r.allocator,
                g("rss_before_mib"),
                g("rss_peak_mib"),
                g("rss_after_mib"),
                ratio
            );
        }
    }
    let errors: Vec<&Record> = res.records.iter().filter(|r| r.error.is_some()).collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nFailed or skipped");
        for r in errors {
            let _ = writeln!(
                s,
                "  {} under {}: {}",
                r.case,
                r.allocator,
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    s
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV header of [`to_csv`].
pub const CSV_HEADER: &str = "case,workload,threads,allocator,mode,runs,wall_s,wall_ratio,peak_rss_mib,rss_ratio,minor_faults,fault_ratio,throughput_mops,throughput_ratio,rss_before_mib,rss_after_mib,after_over_before,error";

/// One line per record, medians and ratios (empty fields where there is no value).
pub fn to_csv(records: &[Record]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in records {
        let x = |k: &str| opt(r.extra.get(k).copied());
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.case),
            csv_field(&r.workload),
            r.threads,
            csv_field(&r.allocator),
            r.mode,
            r.runs.len(),
            opt(r.wall_s),
            opt(r.wall_ratio),
            opt(r.peak_rss_mib),
            opt(r.rss_ratio),
            opt(r.minor_faults),
            opt(r.fault_ratio),
            opt(r.throughput_mops),
            opt(r.throughput_ratio),
            x("rss_before_mib"),
            x("rss_after_mib"),
            x("after_over_before"),
            csv_field(r.error.as_deref().unwrap_or(""))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(case: &str, alloc: &str, wall: f64, rss: f64) -> Record {
        Record {
            case: case.into(),
            workload: case.split('/').next().unwrap().into(),
            threads: 1,
            allocator: alloc.into(),
            runs: vec![Run {
                wall_s: wall,
                peak_rss_mib: rss,
                ..Run::default()
            }],
            ..Record::default()
        }
    }

    #[test]
    fn ratios_and_summary() {
        let mut v = vec![
            rec("a", "oxalloc", 1.0, 10.0),
            rec("a", "glibc", 2.0, 5.0),
            rec("b", "oxalloc", 4.0, 10.0),
            rec("b", "glibc", 1.0, 10.0),
        ];
        v.iter_mut().for_each(Record::summarize_runs);
        fill_ratios(&mut v);
        assert_eq!(v[0].wall_ratio, Some(0.5));
        assert_eq!(v[0].rss_ratio, Some(2.0));
        assert_eq!(v[2].wall_ratio, Some(4.0));
        let s = summarize(&v, &["oxalloc".into(), "glibc".into()]);
        assert!((s[0].time_geomean.unwrap() - (0.5f64 * 4.0).sqrt()).abs() < 1e-9);
        assert_eq!(s[0].time_worst.as_ref().unwrap().1, "b");
        assert!((s[1].time_geomean.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn fault_column_in_table_csv_and_json() {
        let mut v = vec![
            rec("a", "oxalloc", 1.0, 1.0),
            rec("a", "mimalloc", 1.0, 1.0),
        ];
        v[0].runs[0].minor_faults = 362_100.0;
        v[1].runs[0].minor_faults = 17_000.0;
        v.iter_mut().for_each(Record::summarize_runs);
        fill_ratios(&mut v);
        assert_eq!(v[0].minor_faults, Some(362_100.0));
        assert!((v[0].fault_ratio.unwrap() - 21.3).abs() < 1e-9);
        let names = ["oxalloc", "mimalloc"].map(String::from);
        let summary = summarize(&v, &names);
        assert!((summary[0].fault_geomean.unwrap() - 21.3).abs() < 1e-9);
        let res = Results {
            machine: Machine::default(),
            command: String::new(),
            runs: 1,
            scale: 1.0,
            allocators: names
                .iter()
                .map(|n| AllocInfo {
                    name: n.clone(),
                    lib: None,
                    missing: None,
                })
                .collect(),
            records: v.clone(),
            summary,
            targets: Vec::new(),
        };
        let text = render(&res);
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Minor page faults (ratio to the best peer"))
            .take(5)
            .collect();
        assert_eq!(table.len(), 5, "{text}");
        assert!(table[2].contains("362.1K 21.30x"), "{text}");
        assert!(table[2].contains("17.0K  1.00x"), "{text}");
        assert!(table[3].starts_with("geomean") && table[3].contains("21.30x"));
        assert!(table[4].starts_with("worst"));

        let csv = to_csv(&v);
        let head: Vec<&str> = CSV_HEADER.split(',').collect();
        let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
        let line: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(line.len(), head.len());
        assert_eq!(line[col("minor_faults")].parse::<f64>(), Ok(362_100.0));
        assert_eq!(line[col("fault_ratio")].parse::<f64>(), Ok(21.3));

        let json = serde_json::to_string(&res).unwrap();
        let back: Results = serde_json::from_str(&json).unwrap();
        assert_eq!(back.records, v);
        // A file from before the column: runs without `minor_faults` still parse, as 0.
        let old: Run = serde_json::from_str(
            r#"{"wall_s":1.0,"peak_rss_mib":2.0,"user_s":0.0,"sys_s":0.0,"throughput_mops":null,"extra":{}}"#,
        )
        .unwrap();
        assert_eq!(old.minor_faults, 0.0);
    }

    #[test]
    fn csv_has_header_and_quotes() {
        let mut r = rec("a", "glibc", 1.5, 2.0);
        r.summarize_runs();
        r.error = Some("exit 1: bad, worse".into());
        let csv = to_csv(&[r]);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER));
        let line = lines.next().unwrap();
        assert!(
            line.starts_with("a,a,1,glibc,,1,1.500000,,2.000000,"),
            "{line}"
        );
        assert!(line.ends_with(",\"exit 1: bad, worse\""), "{line}");
        assert_eq!(
            line.matches(',').count(),
            CSV_HEADER.matches(',').count() + 1
        );
    }
}
