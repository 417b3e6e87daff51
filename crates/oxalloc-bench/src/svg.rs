//! The results chart, hand-written SVG (no plotting dependency): two panels, wall-time ratio
//! and peak-RSS ratio to the best peer, one group of horizontal bars per row, log2 axis,
//! with the geometric means as the last group.

use crate::report::{case_ids, Results};
use std::fmt::Write as _;

/// Bar colours by allocator (table order).
pub const COLORS: [(&str, &str); 5] = [
    ("oxalloc", "#d62728"),
    ("glibc", "#7f7f7f"),
    ("mimalloc", "#1f77b4"),
    ("jemalloc", "#2ca02c"),
    ("tcmalloc", "#ff7f0e"),
];

const LO: f64 = 0.25;
const HI: f64 = 16.0;

fn color(a: &str) -> &'static str {
    COLORS.iter().find(|c| c.0 == a).map_or("#9467bd", |c| c.1)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the chart.
pub fn render(res: &Results) -> String {
    let allocs: Vec<&str> = res
        .allocators
        .iter()
        .filter(|a| a.missing.is_none())
        .map(|a| a.name.as_str())
        .collect();
    let mut rows = case_ids(&res.records);
    rows.push("geomean".into());
    let (bar, gap, label_w, panel_w, top) = (5.0, 8.0, 130.0, 330.0, 70.0);
    let group = bar * allocs.len().max(1) as f64 + gap;
    let height = top + group * rows.len() as f64 + 40.0;
    let width = label_w + 2.0 * (panel_w + 50.0) + 10.0;
    let x_of = |r: f64| (r.clamp(LO, HI) / LO).log2() / (HI / LO).log2() * panel_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let m = &res.machine;
    let title = format!(
        "oxalloc-bench: ratio to the best peer per row (log scale, lower is better) - {} cores, {}, {}, commit {}",
        m.nproc,
        m.cpu_model,
        m.kernel,
        &m.git_commit[..m.git_commit.len().min(10)]
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="13" font-weight="bold">{}</text>"#,
        esc(&title)
    );
    for (i, a) in allocs.iter().enumerate() {
        let x = label_w + i as f64 * 95.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="28" width="12" height="12" fill="{}"/><text x="{}" y="38">{a}</text>"#,
            color(a),
            x + 16.0
        );
    }
    let summary = |a: &str, panel: usize| {
        res.summary.iter().find(|x| x.allocator == a).and_then(|x| {
            if panel == 0 {
                x.time_geomean
            } else {
                x.rss_geomean
            }
        })
    };
    for (panel, name) in ["wall time", "peak RSS"].iter().enumerate() {
        let x0 = label_w + panel as f64 * (panel_w + 50.0);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{name}</text>"#,
            x0 + panel_w / 2.0,
            top - 12.0
        );
        let mut t = LO;
        while t <= HI {
            let x = x0 + x_of(t);
            let stroke = if t == 1.0 { "#000" } else { "#ddd" };
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="{stroke}"/>"#,
                height - 30.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{t}x</text>"#,
                height - 16.0
            );
            t *= 2.0;
        }
        for (ri, id) in rows.iter().enumerate() {
            let y0 = top + ri as f64 * group;
            if panel == 0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                    label_w - 6.0,
                    y0 + group / 2.0,
                    esc(id)
                );
            }
            for (ai, a) in allocs.iter().enumerate() {
                let v = if id == "geomean" {
                    summary(a, panel)
                } else {
                    res.records
                        .iter()
                        .find(|r| &r.case == id && r.allocator == *a)
                        .and_then(|r| {
                            if panel == 0 {
                                r.wall_ratio
                            } else {
                                r.rss_ratio
                            }
                        })
                };
                if let Some(v) = v {
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x0}" y="{:.1}" width="{:.1}" height="{bar}" fill="{}"><title>{} {a}: {v:.2}x</title></rect>"#,
                        y0 + ai as f64 * bar,
                        x_of(v).max(1.0),
                        color(a),
                        esc(id)
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
