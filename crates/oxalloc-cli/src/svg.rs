//! SVG pictures, written by hand (no dependency): the address-space column of `map` and the
//! memory-over-time chart of `trace`. Both are self-contained `<svg>` elements that can be
//! saved as `.svg` or inlined in an HTML page.

use std::fmt::Write;

use crate::map::{self, Region, Snapshot};
use crate::procfs::Kind;
use crate::shm;
use crate::term;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Height of a region's box: grows with the log of its size, so small and huge both show.
fn box_height(size: u64) -> f64 {
    let l = ((size.max(4096)) as f64).log2() - 12.0; // 4 KiB -> 0
    (14.0 + l * 2.6).min(60.0)
}

/// The process's address space as a column of boxes, high addresses at the top, as the
/// textbook draws it. Boxes are coloured by kind; the dark part of each box is resident.
/// Large unmapped gaps are drawn as a break with their size.
pub fn address_space(s: &Snapshot, all: bool) -> String {
    let regions = s.regions(all);
    let (x0, col_w, label_x) = (140.0, 230.0, 385.0);
    let mut rows: Vec<(f64, Option<&Region>, u64)> = Vec::new(); // (height, region, gap bytes)
    let mut prev_start: Option<u64> = None;
    for r in regions.iter().rev() {
        if let Some(p) = prev_start {
            let gap = p.saturating_sub(r.end);
            if gap >= 1 << 30 {
                rows.push((22.0, None, gap));
            }
        }
        rows.push((box_height(r.size_bytes), Some(r), 0));
        prev_start = Some(r.start);
    }
    let total_h: f64 = rows.iter().map(|r| r.0).sum::<f64>() + 60.0;
    let width = 1100.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="addr" width="{width}" height="{total_h:.0}" viewBox="0 0 {width} {total_h:.0}" font-family="monospace" font-size="12">"#
    );
    let _ = write!(
        o,
        r#"<text x="{x0}" y="16" font-size="13" font-weight="bold">address space of PID {} (high addresses at the top; box height ~ log size; dark = resident)</text>"#,
        s.pid
    );
    let mut y = 30.0;
    for (h, r, gap) in &rows {
        match r {
            None => {
                let mid = y + h / 2.0;
                let _ = write!(
                    o,
                    r##"<line x1="{x0}" y1="{mid}" x2="{}" y2="{mid}" stroke="#999" stroke-dasharray="4 4"/><text x="{label_x}" y="{}" fill="#777">… {} unmapped …</text>"##,
                    x0 + col_w,
                    mid + 4.0,
                    term::bytes(*gap)
                );
            }
            Some(r) => {
                let c = r.kind.color();
                let frac = (r.rss_bytes as f64 / r.size_bytes.max(1) as f64).clamp(0.0, 1.0);
                let _ = write!(
                    o,
                    r##"<g class="region"><title>{kind} {start:x}-{end:x} {perms} size {size} resident {rss} {name}</title><rect x="{x0}" y="{y:.1}" width="{col_w}" height="{hh:.1}" fill="{c}" fill-opacity="0.30" stroke="#fff"/><rect x="{x0}" y="{y:.1}" width="{rw:.1}" height="{hh:.1}" fill="{c}"/><text x="{tx}" y="{ty:.1}" text-anchor="end" fill="#333">{start:x}</text><text x="{label_x}" y="{ty:.1}"><tspan font-weight="bold" fill="{c}">{kind}</tspan> {perms} {size} (resident {rss}) {label}</text></g>"##,
                    kind = r.kind.name(),
                    start = r.start,
                    end = r.end,
                    perms = esc(&r.perms),
                    size = term::bytes(r.size_bytes),
                    rss = term::bytes(r.rss_bytes),
                    name = esc(&r.name),
                    hh = h - 1.0,
                    rw = col_w * frac,
                    tx = x0 - 6.0,
                    ty = y + h / 2.0 + 4.0,
                    label = esc(&map::short_name(r)),
                );
            }
        }
        y += h;
    }
    o.push_str("</svg>");
    o
}

/// Resident memory by kind as one stacked bar with a legend.
pub fn kind_bar(s: &Snapshot) -> String {
    let totals = s.totals();
    let sum: u64 = totals.iter().map(|t| t.2).sum::<u64>().max(1);
    let (w, x0) = (1000.0, 10.0);
    let mut o = String::new();
    let rows = totals.len().div_ceil(4) as f64;
    let h = 60.0 + rows * 20.0;
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="kinds" width="1040" height="{h}" viewBox="0 0 1040 {h}" font-family="sans-serif" font-size="12">"#
    );
    let mut x = x0;
    for (k, _, rss) in &totals {
        let bw = w * *rss as f64 / sum as f64;
        let _ = write!(
            o,
            r#"<rect x="{x:.1}" y="10" width="{bw:.1}" height="28" fill="{}"><title>{} resident {}</title></rect>"#,
            k.color(),
            k.name(),
            term::bytes(*rss)
        );
        x += bw;
    }
    for (i, (k, size, rss)) in totals.iter().enumerate() {
        let lx = x0 + (i % 4) as f64 * 250.0;
        let ly = 58.0 + (i / 4) as f64 * 20.0;
        let _ = write!(
            o,
            r##"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{ly}" fill="#222">{} {} of {} ({:.1}%)</text>"##,
            ly - 10.0,
            k.color(),
            lx + 16.0,
            k.name(),
            term::bytes(*rss),
            term::bytes(*size),
            100.0 * *rss as f64 / sum as f64
        );
    }
    o.push_str("</svg>");
    o
}

/// oxalloc's segments: one row of 64 slices each (metadata, used, free dirty, free purged).
pub fn segments(s: &Snapshot) -> Option<String> {
    let ox = s.oxalloc.as_ref()?;
    let cell = 11.0;
    let shown = s.segments.len().min(200);
    let h = 40.0 + shown as f64 * (cell + 4.0) + 30.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="segments" width="1100" height="{h}" viewBox="0 0 1100 {h}" font-family="monospace" font-size="11">"#
    );
    let _ = write!(
        o,
        r#"<text x="10" y="16" font-size="13" font-weight="bold">oxalloc: {} segment(s), mapped {}, in use {}, cached free {}, purged so far {}</text>"#,
        ox.segments.len(),
        term::bytes(ox.mapped_bytes),
        term::bytes(ox.in_use_bytes),
        term::bytes(ox.cached_dirty_bytes),
        term::bytes(ox.purged_bytes)
    );
    for (i, v) in s.segments.iter().take(shown).enumerate() {
        let y = 30.0 + i as f64 * (cell + 4.0);
        let g = v.seg;
        let _ = write!(o, r#"<text x="10" y="{}">{:012x}</text>"#, y + 10.0, g.base);
        let used = g.used_slices.min(63);
        let dirty = g.free_dirty_slices.min(63 - used);
        let purged = g.free_purged_slices.min(63 - used - dirty);
        for j in 0..shm::SLICES_PER_SEGMENT {
            let color = match j {
                0 => "#555",
                j if j <= used => Kind::Oxalloc.color(),
                j if j <= used + dirty => "#f7dc6f",
                j if j <= used + dirty + purged => "#e5e7e9",
                _ => "#ffffff",
            };
            let _ = write!(
                o,
                r##"<rect x="{:.1}" y="{y:.1}" width="{}" height="{cell}" fill="{color}" stroke="#bbb" stroke-width="0.5"/>"##,
                110.0 + j as f64 * (cell + 1.0),
                cell - 1.0
            );
        }
        let _ = write!(
            o,
            r#"<text x="{}" y="{}">kernel resident {}</text>"#,
            110.0 + 64.0 * (cell + 1.0) + 8.0,
            y + 10.0,
            v.rss_bytes.map(term::bytes).unwrap_or_else(|| "-".into())
        );
    }
    let ly = h - 12.0;
    for (i, (c, name)) in [
        ("#555", "metadata"),
        (Kind::Oxalloc.color(), "used"),
        ("#f7dc6f", "free, dirty"),
        ("#e5e7e9", "free, purged"),
    ]
    .iter()
    .enumerate()
    {
        let x = 110.0 + i as f64 * 150.0;
        let _ = write!(
            o,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{c}"/><text x="{}" y="{ly}">{name}</text>"#,
            ly - 10.0,
            x + 16.0
        );
    }
    o.push_str("</svg>");
    Some(o)
}

/// One series of a time chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<u64>,
}

/// A round step for axis ticks: 1, 2 or 5 times a power of two's nearest decimal unit.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(1e-9);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let f = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * p
}

/// A line chart of bytes over time (`times_ms` shared by all series), with axes and a legend.
pub fn time_chart(title: &str, times_ms: &[u64], series: &[Series<'_>]) -> String {
    let (w, h) = (960.0, 420.0);
    let (l, r, t, b) = (80.0, 20.0, 62.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let tmax = times_ms.last().copied().unwrap_or(0).max(1) as f64;
    let vmax = series
        .iter()
        .flat_map(|s| s.values.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    // Y axis in MiB (or KiB for small programs) with round ticks.
    let (unit, unit_name) = if vmax >= (1 << 20) as f64 {
        ((1u64 << 20) as f64, "MiB")
    } else {
        (1024.0, "KiB")
    };
    let ystep = nice_step(vmax / unit, 5.0);
    let ytop = ((vmax / unit) / ystep).ceil().max(1.0) * ystep;
    let xstep = nice_step(tmax / 1000.0, 8.0);
    let xtop = ((tmax / 1000.0) / xstep).ceil().max(1.0) * xstep;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="trace" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(o, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        o,
        r#"<text x="{l}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let mut v = 0.0;
    while v <= ytop + 1e-9 {
        let y = t + ph - ph * v / ytop;
        let _ = write!(
            o,
            r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{} {unit_name}</text>"##,
            l + pw,
            l - 6.0,
            y + 4.0,
            trim_num(v)
        );
        v += ystep;
    }
    let mut x = 0.0;
    while x <= xtop + 1e-9 {
        let px = l + pw * x / xtop;
        let _ = write!(
            o,
            r##"<line x1="{px:.1}" y1="{t}" x2="{px:.1}" y2="{}" stroke="#f0f0f0"/><text x="{px:.1}" y="{}" text-anchor="middle">{} s</text>"##,
            t + ph,
            t + ph + 18.0,
            trim_num(x)
        );
        x += xstep;
    }
    let _ = write!(
        o,
        r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{l}" y1="{t}" x2="{l}" y2="{}" stroke="#333"/>"##,
        t + ph,
        l + pw,
        t + ph,
        t + ph
    );
    let _ = write!(
        o,
        r#"<text x="{}" y="{}" text-anchor="middle">time</text>"#,
        l + pw / 2.0,
        h - 8.0
    );
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = times_ms
            .iter()
            .zip(&s.values)
            .map(|(&tm, &val)| {
                format!(
                    "{:.1},{:.1}",
                    l + pw * (tm as f64 / 1000.0) / xtop,
                    t + ph - ph * (val as f64 / unit) / ytop
                )
            })
            .collect();
        let _ = write!(
            o,
            r#"<polyline class="series" data-name="{}" fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            esc(s.name),
            s.color,
            pts.join(" ")
        );
        let peak = s.values.iter().copied().max().unwrap_or(0);
        let lx = l + 10.0 + i as f64 * 220.0;
        let _ = write!(
            o,
            r##"<rect x="{lx}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{}" fill="#222">{} (peak {})</text>"##,
            t - 22.0,
            s.color,
            lx + 18.0,
            t - 17.0,
            esc(s.name),
            term::bytes(peak)
        );
    }
    o.push_str("</svg>");
    o
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_polyline_per_series() {
        let svg = time_chart(
            "t",
            &[0, 100, 200],
            &[
                Series {
                    name: "RSS",
                    color: "#c00",
                    values: vec![1 << 20, 3 << 20, 2 << 20],
                },
                Series {
                    name: "in use",
                    color: "#00c",
                    values: vec![0, 1 << 20, 1 << 19],
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("peak 3.00 MiB"));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.9, 8.0), 0.2);
    }
}
