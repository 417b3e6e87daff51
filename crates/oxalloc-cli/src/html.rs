//! Self-contained HTML pages (inline CSS and SVG, no scripts, no network) for `map --html`
//! and `trace --html`.

use std::fmt::Write;

use crate::map::{self, Snapshot};
use crate::svg::{self, esc};
use crate::term;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}.sub{color:#555;margin-bottom:12px}\
table{border-collapse:collapse;font-size:12px;font-family:monospace}td,th{white-space:nowrap;padding:2px 8px;border-bottom:1px solid #e5e5e5;text-align:right}\
td.l,th.l{text-align:left}.sw{display:inline-block;width:10px;height:10px;margin-right:4px}\
svg{background:white;border:1px solid #ddd;display:block;margin:8px 0}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

/// The page of `oxalloc map --html`.
pub fn map_page(s: &Snapshot) -> String {
    let mut b = String::new();
    let st = &s.status;
    let _ = write!(
        b,
        "<h1>oxalloc map: PID {} <code>{}</code></h1>",
        s.pid,
        esc(&s.command)
    );
    let when = s
        .taken_ms
        .map(|t| format!(", snapshot at {t} ms after start"))
        .unwrap_or_default();
    let _ = write!(
        b,
        "<div class=\"sub\">size {}, resident {} (anonymous {}, file {}), peak resident {}, {} thread(s), {} mappings{when}</div>",
        term::bytes(st.vm_size_bytes),
        term::bytes(st.vm_rss_bytes),
        term::bytes(st.rss_anon_bytes),
        term::bytes(st.rss_file_bytes),
        term::bytes(st.vm_hwm_bytes),
        st.threads,
        s.maps.len()
    );
    let _ = write!(b, "<h2>Resident memory by kind</h2>{}", svg::kind_bar(s));
    if let Some(seg) = svg::segments(s) {
        let _ = write!(
            b,
            "<h2>oxalloc segments (64 slices of 64 KiB each)</h2>{seg}"
        );
    }
    let _ = write!(b, "<h2>Address space</h2>{}", svg::address_space(s, false));
    let _ = write!(
        b,
        "<h2>Mappings</h2><table><tr><th class=\"l\">kind</th><th class=\"l\">start</th><th class=\"l\">end</th><th class=\"l\">perms</th><th>size</th><th>resident</th><th class=\"l\">name</th></tr>"
    );
    for r in s.regions(false).iter().rev() {
        let _ = write!(
            b,
            "<tr><td class=\"l\"><span class=\"sw\" style=\"background:{}\"></span>{}</td><td class=\"l\">{:x}</td><td class=\"l\">{:x}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            r.kind.color(),
            r.kind.name(),
            r.start,
            r.end,
            esc(&r.perms),
            term::bytes(r.size_bytes),
            term::bytes(r.rss_bytes),
            esc(&if r.name.is_empty() { map::short_name(r) } else { r.name.clone() })
        );
    }
    b.push_str("</table>");
    page(&format!("oxalloc map: PID {}", s.pid), &b)
}

/// The page of `oxalloc trace --html`: the chart and a summary table.
pub fn trace_page(title: &str, chart: &str, summary: &[(String, String)]) -> String {
    let mut b = String::new();
    let _ = write!(b, "<h1>{}</h1>{chart}<table>", esc(title));
    for (k, v) in summary {
        let _ = write!(
            b,
            "<tr><td class=\"l\">{}</td><td>{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    b.push_str("</table>");
    page(title, &b)
}
