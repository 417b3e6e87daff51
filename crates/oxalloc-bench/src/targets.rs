//! The suite's performance targets, checked against one run: each met or missed, with
//! its figure. A row over its limit also shows the range of its runs, oxalloc's and the
//! best peer's, so that a reader can tell a real gap from this machine's noise (rows here
//! swing 20-40% between runs; ranges that overlap mean the run proves little).
//!
//! The targets are one table, [`TARGETS`] (issue 18, which tightened issue 4's): time
//! geometric mean at most 0.90x the fastest peer's, and no row slower than 1.10x its best
//! peer; peak-RSS geometric mean no higher than the leanest peer's, and no row above 1.25x
//! its best peer; minor page faults on every row at most 1.5x the fewest of mimalloc's and
//! tcmalloc's; after the burst-then-idle run, RSS within 10% of what it was before.
//! (Instructions per malloc/free pair: `oxalloc-bench instructions`.)
//!
//! A geometric mean here is the one of the summary, over the ratios to each row's best
//! peer. The time target holds that mean itself to 0.90x (issue 18 measured it at 0.948x:
//! oxalloc 10% ahead of the best peer of each row, on average); the RSS target compares
//! it with the smallest such mean among the peers (the leanest peer's).

use crate::report::{Record, Run, Summary, TIME_SUMMARY_EXCLUDED};
use crate::stats::SUBJECT;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One target's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// What is asked.
    pub goal: String,
    /// What this run measured.
    pub figure: String,
    /// Whether the figure meets the goal.
    pub met: bool,
}

/// A metric the targets check.
pub struct Metric {
    /// Its name in the goal.
    what: &'static str,
    /// How its best peer is called: "fastest", "leanest".
    best: &'static str,
    /// Workloads the summary leaves out of this metric.
    excluded: &'static [&'static str],
    /// A record's median.
    value: fn(&Record) -> Option<f64>,
    /// The summary's geometric mean of the ratios to each row's best peer.
    geomean: fn(&Summary) -> Option<f64>,
    /// One run's value, in the unit shown.
    run_value: fn(&Run) -> f64,
    /// The unit shown after a run's value (with its space, if any).
    unit: &'static str,
    /// Decimals a run's value is shown with.
    digits: usize,
}

/// Wall time.
pub const TIME: Metric = Metric {
    what: "time",
    best: "fastest",
    excluded: &TIME_SUMMARY_EXCLUDED,
    value: |r| r.wall_s,
    geomean: |s| s.time_geomean,
    run_value: |r| r.wall_s,
    unit: " s",
    digits: 3,
};

/// Peak RSS.
pub const RSS: Metric = Metric {
    what: "peak-RSS",
    best: "leanest",
    excluded: &[],
    value: |r| r.peak_rss_mib,
    geomean: |s| s.rss_geomean,
    run_value: |r| r.peak_rss_mib,
    unit: " MiB",
    digits: 1,
};

/// Minor page faults, shown in thousands.
pub const FAULTS: Metric = Metric {
    what: "minor faults",
    best: "fewest",
    excluded: &[],
    value: |r| r.minor_faults,
    geomean: |s| s.fault_geomean,
    run_value: |r| r.minor_faults / 1000.0,
    unit: "K",
    digits: 1,
};

/// A target of [`TARGETS`].
pub enum Goal {
    /// oxalloc's geometric mean of `metric` at most `factor` x the best peer's, or, with
    /// `of_rows`, at most `factor` itself (the mean of the ratios to each row's best peer).
    Geomean {
        /// What is measured.
        metric: &'static Metric,
        /// The limit, as a multiple of the best peer's geometric mean or of each row's
        /// best peer.
        factor: f64,
        /// Compare with each row's best peer instead of the best peer's mean.
        of_rows: bool,
    },
    /// On every row, oxalloc's `metric` at most `max` x the best of `against` on the row
    /// (empty: of every peer).
    Rows {
        /// What is measured.
        metric: &'static Metric,
        /// The limit, as a multiple of the row's best.
        max: f64,
        /// The peers compared with; empty for all.
        against: &'static [&'static str],
    },
    /// RSS after the burst and the idle second at most `max` x RSS before the burst.
    BurstAfter {
        /// The limit.
        max: f64,
    },
}

/// The targets, in the order they are reported.
pub const TARGETS: [Goal; 6] = [
    Goal::Geomean {
        metric: &TIME,
        factor: 0.90,
        of_rows: true,
    },
    Goal::Rows {
        metric: &TIME,
        max: 1.10,
        against: &[],
    },
    Goal::Geomean {
        metric: &RSS,
        factor: 1.0,
        of_rows: false,
    },
    Goal::Rows {
        metric: &RSS,
        max: 1.25,
        against: &[],
    },
    Goal::Rows {
        metric: &FAULTS,
        max: 1.5,
        against: &["mimalloc", "tcmalloc"],
    },
    Goal::BurstAfter { max: 1.10 },
];

/// The targets for [`SUBJECT`]; empty when it or every peer is absent from the run. A
/// target without data in this run (no burst row, a summary without that metric) is left
/// out.
pub fn check(records: &[Record], summary: &[Summary]) -> Vec<Target> {
    let Some(me) = summary
        .iter()
        .find(|s| s.allocator == SUBJECT && s.rows > 0)
    else {
        return Vec::new();
    };
    let peers: Vec<&Summary> = summary
        .iter()
        .filter(|s| s.allocator != SUBJECT && s.rows > 0)
        .collect();
    if peers.is_empty() {
        return Vec::new();
    }
    TARGETS
        .iter()
        .filter_map(|goal| match goal {
            Goal::Geomean {
                metric,
                factor,
                of_rows,
            } => geomean_target(me, &peers, metric, *factor, *of_rows),
            Goal::Rows {
                metric,
                max,
                against,
            } => Some(rows_target(records, metric, *max, against)),
            Goal::BurstAfter { max } => burst_target(records, *max),
        })
        .collect()
}

/// oxalloc's geometric mean against the best peer's. Three decimals, so that 0.903 does
/// not read as a "0.90x" that missed 0.90x.
fn geomean_target(
    me: &Summary,
    peers: &[&Summary],
    m: &Metric,
    factor: f64,
    of_rows: bool,
) -> Option<Target> {
    let g = (m.geomean)(me)?;
    let (peer, pv) = peers
        .iter()
        .filter_map(|s| (m.geomean)(s).map(|v| (s.allocator.as_str(), v)))
        .filter(|x| x.1 > 0.0)
        .min_by(|x, y| x.1.total_cmp(&y.1))?;
    if of_rows {
        return Some(Target {
            goal: format!(
                "{} geomean <= {factor:.2}x the best peer of each row",
                m.what
            ),
            figure: format!("{g:.3}x ({} peer overall: {peer} {pv:.3}x)", m.best),
            met: g <= factor,
        });
    }
    let q = g / pv;
    Some(Target {
        goal: format!("{} geomean <= {factor:.2}x the {} peer's", m.what, m.best),
        figure: format!("{q:.3}x {peer}'s ({SUBJECT} {g:.3}x, {peer} {pv:.3}x)"),
        met: q <= factor,
    })
}

/// "No row above `max`" for one metric: the worst row when met, else every row over the
/// limit with the run ranges of oxalloc and of the row's best peer of `against`. Ratios get
/// three decimals here, so that 1.1016 does not read as a "1.10x" that missed 1.10x.
fn rows_target(records: &[Record], m: &Metric, max: f64, against: &[&str]) -> Target {
    let is_ref = |a: &str| a != SUBJECT && (against.is_empty() || against.contains(&a));
    let goal = if against.is_empty() {
        format!("no {} row above {max:.2}x its best peer", m.what)
    } else {
        let names: Vec<String> = against.iter().map(|a| format!("{a}'s")).collect();
        format!(
            "{} on every row at most {max:.2}x the {} of {}",
            m.what,
            m.best,
            names.join(" and ")
        )
    };
    let rows: Vec<(&Record, f64)> = records
        .iter()
        .filter(|r| r.allocator == SUBJECT && !m.excluded.contains(&r.workload.as_str()))
        .filter_map(|r| {
            let best = records
                .iter()
                .filter(|p| p.case == r.case && is_ref(&p.allocator))
                .filter_map(|p| (m.value)(p))
                .filter(|v| v.is_finite() && *v > 0.0)
                .reduce(f64::min)?;
            (m.value)(r).map(|v| (r, v / best))
        })
        .collect();
    let over: Vec<&(&Record, f64)> = rows.iter().filter(|(_, x)| *x > max).collect();
    if over.is_empty() {
        let worst = rows.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        return Target {
            goal,
            figure: worst.map_or("no rows".into(), |(r, x)| {
                format!("worst {} {x:.3}x", r.case)
            }),
            met: true,
        };
    }
    let mut figure = String::new();
    for (r, x) in over {
        if !figure.is_empty() {
            figure.push_str("; ");
        }
        let _ = write!(figure, "{} {x:.3}x ({SUBJECT} {}", r.case, range(r, m));
        let peer = records
            .iter()
            .filter(|p| p.case == r.case && is_ref(&p.allocator) && !p.runs.is_empty())
            .min_by(|a, b| run_span(a, m).0.total_cmp(&run_span(b, m).0));
        if let Some(p) = peer {
            let _ = write!(figure, ", {} {}", p.allocator, range(p, m));
        }
        figure.push(')');
    }
    Target {
        goal,
        figure,
        met: false,
    }
}

/// RSS after burst-then-idle over RSS before, if the run has that row.
fn burst_target(records: &[Record], max: f64) -> Option<Target> {
    let burst = records
        .iter()
        .find(|r| r.allocator == SUBJECT && r.workload == "burst-idle")?;
    let after = *burst.extra.get("after_over_before")?;
    let mib = |k: &str| burst.extra.get(k).copied().unwrap_or(f64::NAN);
    Some(Target {
        goal: format!(
            "RSS after burst-then-idle within {:.0}% of before",
            (max - 1.0) * 100.0
        ),
        figure: format!(
            "{after:.2}x ({:.1} -> {:.1} MiB)",
            mib("rss_before_mib"),
            mib("rss_after_mib")
        ),
        met: after <= max,
    })
}

/// The lowest and highest value over a record's runs.
fn run_span(r: &Record, m: &Metric) -> (f64, f64) {
    r.runs
        .iter()
        .map(m.run_value)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// "min-max unit" over a record's runs (one value when there was one run: `--quick`).
fn range(r: &Record, m: &Metric) -> String {
    let (lo, hi) = run_span(r, m);
    let (digits, unit) = (m.digits, m.unit);
    if r.runs.len() == 1 {
        return format!("{lo:.digits$}{unit} in its only run");
    }
    format!("{lo:.digits$}-{hi:.digits$}{unit}")
}

/// The targets as text, one line each.
pub fn render(targets: &[Target]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    let mut s = format!("\nTargets for {SUBJECT} (instructions per malloc/free pair: `oxalloc-bench instructions`)\n");
    for t in targets {
        let verdict = if t.met { "met   " } else { "MISSED" };
        let _ = writeln!(s, "  {verdict}  {}: {}", t.goal, t.figure);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{fill_ratios, summarize};

    fn rec(case: &str, alloc: &str, walls: &[f64], rss: f64) -> Record {
        let mut r = Record {
            case: case.into(),
            workload: case.split('/').next().unwrap().into(),
            threads: 1,
            allocator: alloc.into(),
            runs: walls
                .iter()
                .map(|&w| Run {
                    wall_s: w,
                    peak_rss_mib: rss,
                    ..Run::default()
                })
                .collect(),
            ..Record::default()
        };
        r.summarize_runs();
        r
    }

    fn targets(mut v: Vec<Record>) -> Vec<Target> {
        fill_ratios(&mut v);
        let names = ["oxalloc", "glibc", "mimalloc", "tcmalloc"].map(String::from);
        let s = summarize(&v, &names);
        check(&v, &s)
    }

    #[test]
    fn a_slow_row_is_missed_with_both_run_ranges() {
        let t = targets(vec![
            rec("a", "oxalloc", &[1.0, 1.4, 1.5], 10.0),
            rec("a", "glibc", &[2.0], 10.0),
            rec("a", "tcmalloc", &[1.0, 1.1, 1.2], 12.0),
            rec("b", "oxalloc", &[0.5], 10.0),
            rec("b", "glibc", &[1.0], 9.0),
            rec("b", "tcmalloc", &[1.0], 12.0),
        ]);
        // Time: a = 1.4/1.1 = 1.27x, b = 0.5x; geomean 0.798x; tcmalloc's is 1.000x.
        assert!(t[0].met, "{t:?}");
        assert_eq!(t[0].goal, "time geomean <= 0.90x the best peer of each row");
        assert_eq!(
            t[0].figure,
            "0.798x (fastest peer overall: tcmalloc 1.000x)"
        );
        let rows = &t[1];
        assert!(!rows.met);
        assert_eq!(rows.goal, "no time row above 1.10x its best peer");
        assert_eq!(
            rows.figure,
            "a 1.273x (oxalloc 1.000-1.500 s, tcmalloc 1.000-1.200 s)"
        );
        // RSS: a 1.00x, b 1.11x; glibc's own geomean is 1.00x, so ours is higher.
        assert!(!t[2].met, "{t:?}");
        assert_eq!(t[2].goal, "peak-RSS geomean <= 1.00x the leanest peer's");
        assert_eq!(t[2].figure, "1.054x glibc's (oxalloc 1.054x, glibc 1.000x)");
        assert!(t[3].met && t[3].figure == "worst b 1.111x", "{t:?}");
        assert_eq!(t[3].goal, "no peak-RSS row above 1.25x its best peer");
        // No faults recorded (0 in every run): nothing to compare.
        assert!(t[4].met && t[4].figure == "no rows", "{t:?}");
        assert_eq!(t.len(), 5, "no burst row, no burst target: {t:?}");
    }

    #[test]
    fn a_geomean_just_over_its_limit_does_not_read_as_the_limit() {
        // 0.903x would print as "0.90x" with two decimals, beside "MISSED <= 0.90x".
        let t = targets(vec![
            rec("a", "oxalloc", &[0.903], 1.0),
            rec("a", "tcmalloc", &[1.0], 1.0),
        ]);
        assert!(!t[0].met, "{t:?}");
        assert_eq!(
            t[0].figure,
            "0.903x (fastest peer overall: tcmalloc 1.000x)"
        );
    }

    #[test]
    fn the_time_geomean_is_held_to_each_rows_best_peer() {
        // 0.95x the best peer on both rows; each peer is best on one row only, so the
        // fastest peer's own mean is 1.049x and 0.95 / 1.049 would pass as 0.906x... of
        // a mean no peer reaches. The target asks 0.90x of each row's best.
        let t = targets(vec![
            rec("a", "oxalloc", &[0.95], 1.0),
            rec("a", "glibc", &[1.0], 1.0),
            rec("a", "tcmalloc", &[1.1], 1.0),
            rec("b", "oxalloc", &[0.95], 1.0),
            rec("b", "glibc", &[1.1], 1.0),
            rec("b", "tcmalloc", &[1.0], 1.0),
        ]);
        assert!(!t[0].met, "{t:?}");
        assert!(t[0].figure.starts_with("0.950x"), "{t:?}");
    }

    #[test]
    fn a_single_run_is_named_as_such() {
        let t = targets(vec![
            rec("a", "oxalloc", &[2.0], 1.0),
            rec("a", "glibc", &[1.0], 1.0),
        ]);
        assert_eq!(
            t[1].figure,
            "a 2.000x (oxalloc 2.000 s in its only run, glibc 1.000 s in its only run)"
        );
    }

    fn with_faults(mut r: Record, faults: f64) -> Record {
        r.runs.iter_mut().for_each(|x| x.minor_faults = faults);
        r.summarize_runs();
        r
    }

    #[test]
    fn faults_are_held_to_the_fewer_of_mimalloc_and_tcmalloc() {
        let t = targets(vec![
            // 1.5x tcmalloc's exactly: met; glibc's far fewer faults do not count.
            with_faults(rec("a", "oxalloc", &[1.0], 1.0), 30_000.0),
            with_faults(rec("a", "glibc", &[1.0], 1.0), 1_000.0),
            with_faults(rec("a", "mimalloc", &[1.0], 1.0), 25_000.0),
            with_faults(rec("a", "tcmalloc", &[1.0], 1.0), 20_000.0),
            with_faults(rec("b", "oxalloc", &[1.0], 1.0), 362_100.0),
            with_faults(rec("b", "glibc", &[1.0], 1.0), 1_000.0),
            with_faults(rec("b", "mimalloc", &[1.0], 1.0), 17_000.0),
            with_faults(rec("b", "tcmalloc", &[1.0], 1.0), 40_000.0),
        ]);
        let f = t.iter().find(|x| x.goal.starts_with("minor")).unwrap();
        assert_eq!(
            f.goal,
            "minor faults on every row at most 1.50x the fewest of mimalloc's and tcmalloc's"
        );
        assert!(!f.met);
        assert_eq!(
            f.figure,
            "b 21.300x (oxalloc 362.1K in its only run, mimalloc 17.0K in its only run)"
        );
        let met = targets(vec![
            with_faults(rec("a", "oxalloc", &[1.0], 1.0), 30_000.0),
            with_faults(rec("a", "tcmalloc", &[1.0], 1.0), 20_000.0),
            with_faults(rec("b", "oxalloc", &[1.0], 1.0), 10_000.0),
            with_faults(rec("b", "tcmalloc", &[1.0], 1.0), 20_000.0),
        ]);
        let f = met.iter().find(|x| x.goal.starts_with("minor")).unwrap();
        assert!(f.met && f.figure == "worst a 1.500x", "{f:?}");
    }

    #[test]
    fn burst_idle_is_checked_and_left_out_of_time_rows() {
        let mut b = rec("burst-idle", "oxalloc", &[5.0], 100.0);
        b.extra.insert("after_over_before".into(), 1.2);
        b.extra.insert("rss_before_mib".into(), 3.0);
        b.extra.insert("rss_after_mib".into(), 3.6);
        let t = targets(vec![b, rec("burst-idle", "glibc", &[1.0], 100.0)]);
        let burst = t.iter().find(|x| x.goal.contains("burst")).unwrap();
        assert!(!burst.met);
        assert_eq!(burst.figure, "1.20x (3.0 -> 3.6 MiB)");
        let time_rows = t.iter().find(|x| x.goal.starts_with("no time")).unwrap();
        assert!(time_rows.met && time_rows.figure == "no rows", "{t:?}");
    }

    #[test]
    fn nothing_without_oxalloc_or_peers() {
        assert!(targets(vec![rec("a", "glibc", &[1.0], 1.0)]).is_empty());
        assert!(targets(vec![rec("a", "oxalloc", &[1.0], 1.0)]).is_empty());
        assert_eq!(render(&[]), "");
    }
}
