//! Terminal helpers: human-readable numbers, colours, bars, sparklines and a progress line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `1536` -> `"1.5 KiB"`; bytes below 1 KiB are printed exactly.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `1234567` -> `"1,234,567"`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds as `"812 ms"` or `"3.42 s"`.
pub fn duration_ns(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns < 10_000_000_000 {
        let ms = ns as f64 / 1e6;
        if ms < 1000.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{:.2} s", ms / 1000.0)
        }
    } else {
        format!("{:.1} s", ns as f64 / 1e9)
    }
}

/// Whether to colour stdout: only on a terminal, never with `--no-color` or `NO_COLOR`.
pub fn use_color(no_color: bool) -> bool {
    !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Wraps `s` in an ANSI 256-colour foreground when `on`.
pub fn paint(on: bool, ansi: u8, s: &str) -> String {
    if on {
        format!("\x1b[38;5;{ansi}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

pub fn bold(on: bool, s: &str) -> String {
    if on {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// A bar of `width` cells: `full` solid cells then `part` light cells, padded with spaces.
pub fn bar(width: usize, full: usize, part: usize) -> String {
    let full = full.min(width);
    let part = part.min(width - full);
    let mut s = "█".repeat(full);
    s.push_str(&"░".repeat(part));
    s.push_str(&" ".repeat(width - full - part));
    s
}

/// A one-line chart of `values` in `width` cells (each cell shows the maximum of its bucket),
/// scaled to `max` (or the values' maximum when `max` is 0).
pub fn sparkline(values: &[u64], width: usize, max: u64) -> String {
    const TICKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let max = if max == 0 {
        values.iter().copied().max().unwrap_or(0)
    } else {
        max
    };
    let cells = width.min(values.len());
    (0..cells)
        .map(|i| {
            let a = i * values.len() / cells;
            let b = ((i + 1) * values.len() / cells).max(a + 1);
            let v = values[a..b].iter().copied().max().unwrap_or(0);
            if max == 0 {
                TICKS[0]
            } else {
                TICKS[((v as f64 / max as f64) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// A progress line on stderr, redrawn every 100 ms while the child runs; shown only when
/// stderr is a terminal so that logs and pipes stay clean. `status` supplies the text.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start<F>(label: String, status: F) -> Progress
    where
        F: Fn() -> String + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, handle: None };
        }
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            const SPIN: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let t0 = Instant::now();
            let mut i = 0;
            // Stay quiet for short runs: a spinner that flashes for 50 ms is noise.
            std::thread::sleep(Duration::from_millis(500));
            while !flag.load(Ordering::Relaxed) {
                let extra = status();
                eprint!(
                    "\r\x1b[2K{} {label}  {:.1} s  {extra}",
                    SPIN[i % SPIN.len()],
                    t0.elapsed().as_secs_f64()
                );
                let _ = std::io::stderr().flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }

    /// Clears the line; dropping the `Progress` does the same.
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(200 << 20), "200 MiB");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(duration_ns(1_500_000_000), "1.50 s");
    }

    #[test]
    fn sparkline_scales_to_max() {
        let s = sparkline(&[0, 1, 2, 3, 4, 5, 6, 7], 8, 7);
        assert_eq!(s, "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[5; 100], 10, 0).chars().count(), 10);
    }
}
