//! Integration tests: real programs (`sleep`, `python3`, `sqlite3`, a C program with known
//! leaks) through each subcommand of the `oxalloc` binary, checking numbers and names.
//!
//! Three kinds of allocator library are used:
//! - the real `liboxalloc.so` / `liboxalloc_hardened.so`, built once per test process with
//!   `cargo build --workspace --release` into the target directory of this test (a no-op
//!   after `scripts/test.sh`'s own build);
//! - a stand-in (`tests/fixtures/fake_liboxalloc.c`, compiled here with `cc`) that speaks the
//!   same file contract, so the tool's side of `run`, `trace`, `map` and `leaks` is tested
//!   end to end;
//! - none (`--system`, or missing-library error paths).
//!
//! Every tool these tests use (`cc`, `python3`, `sqlite3`, `chromium`) is installed by
//! `scripts/setup.sh`: a missing one fails its test with the Debian package to install, and
//! a library or fixture that does not build fails too. Nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oxalloc"));
    for v in [
        "OXALLOC_LIB",
        "OXALLOC_HARDENED_LIB",
        "OXALLOC_BENCH",
        "LD_PRELOAD",
        "NO_COLOR",
    ] {
        c.env_remove(v);
    }
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Fails the test, naming the Debian package, unless `prog` is on PATH: `scripts/setup.sh`
/// installs every tool these tests run, so a missing one is a broken setup, not a skip.
fn require(prog: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{prog}` is not installed: this test needs it (apt-get install {package}, \
         or run scripts/setup.sh)"
    );
}

/// The real Python executable: `python3` may be a shim script (pyenv) that runs other
/// programs first, which would be what a snapshot taken early sees.
fn python_exe() -> String {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Compiles a C fixture with `cc`; a failure fails the test with the compiler's output.
fn compile(src: &Path, out: &Path, shared: bool) -> PathBuf {
    require("cc", "build-essential");
    let mut c = Command::new("cc");
    if shared {
        c.args(["-shared", "-fPIC", "-O1"]);
    } else {
        c.args(["-g", "-O0"]);
    }
    let o = c
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc: {e}"));
    assert!(
        o.status.success(),
        "cc could not compile {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out.to_path_buf()
}

/// The stand-in library, compiled once per process.
fn fake_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_liboxalloc.c");
        compile(&src, &tmp("libfake_oxalloc.so"), true)
    })
}

/// `examples/programs/leak.c`, compiled once per process.
fn leak_prog() -> &'static Path {
    static PROG: OnceLock<PathBuf> = OnceLock::new();
    PROG.get_or_init(|| {
        compile(
            &repo().join("examples/programs/leak.c"),
            &tmp("leak"),
            false,
        )
    })
}

/// The real library `file` (`liboxalloc.so`, `liboxalloc_hardened.so`): built once per
/// process with `cargo build --workspace --release` into the target directory that holds
/// the `oxalloc` binary under test (`cargo test` does not build the cdylibs; the
/// workspace build makes them as the README's does, with the workspace's features).
fn real_lib(file: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // CARGO_BIN_EXE_oxalloc is <target>/<profile>/oxalloc.
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_oxalloc"));
        let target = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir above the oxalloc binary");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--workspace", "--release", "--target-dir"])
            .arg(target)
            .current_dir(repo())
            .status()
            .expect("running cargo build --workspace --release");
        assert!(
            status.success(),
            "cargo build --workspace --release failed: {status}"
        );
        target.join("release")
    });
    let lib = dir.join(file);
    assert!(lib.is_file(), "{} was not built", lib.display());
    lib
}

fn line_of(path: &Path, marker: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.contains(marker))
        .unwrap()
        + 1
}

/// Checks an error: non-zero exit, exactly one line on stderr containing `needle`, no panic.
fn assert_one_line_error(o: &Output, needle: &str) {
    let (_, err) = text(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn parse_bytes(s: &str) -> u64 {
    // "1.50 MiB" -> bytes
    let mut it = s.split_whitespace();
    let v: f64 = it.next().unwrap().parse().unwrap();
    let m = match it.next().unwrap() {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1048576.0,
        "GiB" => 1073741824.0,
        u => panic!("unit {u}"),
    };
    (v * m) as u64
}

// ---------------------------------------------------------------- map

#[test]
fn map_of_a_running_sleep_lists_the_textbook_regions() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let o = bin()
        .args(["map", "--no-color", &child.id().to_string()])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(&format!("PID {}", child.id())), "{out}");
    assert!(!out.contains("\x1b["), "no colour when not a terminal");
    for name in ["[stack]", "[vdso]", "libc.so"] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
    // The program's own text, with a size, named after the binary.
    let text_row = out
        .lines()
        .find(|l| l.trim_start().starts_with("text") && l.contains("sleep"))
        .expect(&out);
    assert!(text_row.contains("r-xp"), "{text_row}");
    let stack_row = out.lines().find(|l| l.contains("[stack]")).unwrap();
    assert!(stack_row.contains("KiB"), "{stack_row}");
    assert!(out.contains("by kind"), "{out}");
}

#[test]
fn map_of_a_python_child_is_taken_while_it_is_alive() {
    require("python3", "python3");
    let o = bin()
        .args([
            "map",
            "--system",
            "--kill",
            "--no-color",
            "--after-ms",
            "1500",
            "--",
        ])
        .arg(python_exe())
        .args([
            "-c",
            "import time; x = [bytes(1000) for _ in range(50000)]; time.sleep(10)",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("snapshot at"), "{out}");
    let heap = out.lines().find(|l| l.contains("[heap]")).expect(&out);
    // 50,000 objects of ~1 KB live on the brk heap (or in mmap'd arenas): the process holds MiBs.
    assert!(heap.trim_start().starts_with("heap"), "{heap}");
    assert!(out.contains("[stack]"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("text") && l.contains("python")),
        "{out}"
    );
    let resident = out.lines().nth(1).unwrap();
    let rss = resident
        .split("resident ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap();
    assert!(parse_bytes(rss) > 20 << 20, "{resident}");
}

#[test]
fn map_html_renders_in_headless_chromium() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let html = tmp("map.html");
    let o = bin()
        .args(["map", &child.id().to_string(), "--html"])
        .arg(&html)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(o.status.success(), "{:?}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    let svg_at = page.find("<svg").expect("an <svg> element");
    assert!(page[svg_at..].contains("<rect"), "the svg draws something");
    assert!(page.contains("[stack]") && page.contains("text"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );

    require("chromium", "chromium");
    let chromium = "chromium";
    let png = tmp("map.png");
    let _ = std::fs::remove_file(&png);
    let profile = tmp("chromium-profile");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (1200, 900));
    // A blank page compresses to a few KiB; the picture with text and colours does not.
    assert!(
        bytes.len() > 30_000,
        "screenshot too small to hold the picture: {} bytes",
        bytes.len()
    );
}

#[test]
fn map_of_a_missing_pid_is_one_clear_line() {
    let o = bin().args(["map", "999999999"]).output().unwrap();
    assert_one_line_error(&o, "no process with PID 999999999");
}

#[test]
fn map_shows_oxalloc_segments_from_the_live_statistics() {
    let lib = fake_lib();
    let o = bin()
        .env("OXALLOC_LIB", lib)
        .args([
            "map",
            "--kill",
            "--no-color",
            "--after-ms",
            "150",
            "--",
            "sleep",
            "10",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("oxalloc: mapped"), "{out}");
    let seg = out
        .lines()
        .find(|l| l.contains("M##########+++..."))
        .expect(&out);
    let cols: Vec<&str> = seg.split_whitespace().collect();
    assert_eq!(&cols[1..4], &["10", "3", "50"], "{seg}");
    // The stand-in touched 11 slices of 64 KiB: the kernel sees 704 KiB resident there.
    assert!(seg.contains("704 KiB"), "{seg}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("oxalloc ")),
        "a region classified as oxalloc:\n{out}"
    );
}

// ---------------------------------------------------------------- run

#[test]
fn run_without_the_library_says_how_to_build_it() {
    let o = bin()
        .env("OXALLOC_LIB", "/nonexistent/liboxalloc.so")
        .args(["run", "--", "true"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "cargo build --release -p oxalloc-capi");
}

#[test]
fn run_of_a_missing_program_is_one_clear_line() {
    // Any existing file passes the library check; the program fails before loading it.
    let o = bin()
        .env("OXALLOC_LIB", env!("CARGO_BIN_EXE_oxalloc"))
        .args(["run", "--", "/no/such/program"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "cannot run `/no/such/program`: program not found");
}

#[test]
fn run_without_a_program_is_a_usage_error() {
    let o = bin().args(["run"]).output().unwrap();
    assert!(!o.status.success());
    assert!(!text(&o).1.contains("panicked"));
}

fn check_run_report(lib: &Path) {
    let o = bin()
        .env("OXALLOC_LIB", lib)
        .args(["run", "--no-color", "--", "python3"])
        .arg(repo().join("examples/programs/alloc_heavy.py"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("alloc_heavy:"),
        "the program's own output: {out}"
    );
    let allocs = err
        .lines()
        .find(|l| l.trim_start().starts_with("allocations"))
        .expect(&err);
    let n: u64 = allocs
        .split_whitespace()
        .nth(1)
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(n > 100, "{allocs}");
    for key in [
        "frees",
        "peak in use",
        "peak RSS",
        "returned to the OS",
        "size classes",
        "thread heaps",
        "wall time",
    ] {
        assert!(err.contains(key), "{key} missing:\n{err}");
    }
    let rss = err.lines().find(|l| l.contains("peak RSS")).unwrap();
    let rss = rss
        .split_whitespace()
        .skip(2)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        parse_bytes(&rss) > 64 << 20,
        "the 64 MiB burst shows in peak RSS: {rss}"
    );

    let o = bin()
        .env("OXALLOC_LIB", lib)
        .args(["run", "--json", "--", "python3"])
        .arg(repo().join("examples/programs/alloc_heavy.py"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let json_start = out.find("{\n").expect(&out);
    let v: serde_json::Value = serde_json::from_str(&out[json_start..]).unwrap();
    assert_eq!(v["exit_code"], 0);
    assert!(v["stats"]["allocs"].as_u64().unwrap() > 100, "{v}");
    assert!(v["stats"]["peak_in_use_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 64 << 20, "{v}");
    assert!(
        v["stats"]["classes"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{v}"
    );
}

#[test]
fn run_python_with_the_real_library() {
    require("python3", "python3");
    check_run_report(&real_lib("liboxalloc.so"));
}

#[test]
fn run_python_with_the_stand_in_library() {
    require("python3", "python3");
    check_run_report(fake_lib());
}

#[test]
fn run_sqlite3_and_pass_its_exit_code_through() {
    let lib = real_lib("liboxalloc.so");
    require("sqlite3", "sqlite3");
    let sql = "create table t(x); with recursive c(i) as (select 1 union all select i+1 from c where i<20000) \
               insert into t select randomblob(100) from c; select count(*) from t;";
    let o = bin()
        .env("OXALLOC_LIB", &lib)
        .args(["run", "--json", "--", "sqlite3", ":memory:", sql])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("20000\n"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out["20000\n".len()..]).unwrap();
    assert!(v["stats"]["allocs"].as_u64().unwrap() > 1000, "{v}");
    let o = bin()
        .env("OXALLOC_LIB", &lib)
        .args(["run", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{:?}", text(&o));
    let o = bin()
        .env("OXALLOC_LIB", &lib)
        .args(["run", "--", "sh", "-c", "kill -SEGV $$"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(128 + 11));
    assert!(text(&o).1.contains("SIGSEGV"), "{:?}", text(&o));
}

// ---------------------------------------------------------------- trace

fn polyline_points(svg: &str) -> Vec<usize> {
    svg.split("<polyline")
        .skip(1)
        .map(|p| {
            p.split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .split(' ')
                .count()
        })
        .collect()
}

#[test]
fn trace_python_draws_rss_over_time() {
    require("python3", "python3");
    let svg = tmp("trace.svg");
    let csv = tmp("trace.csv");
    let o = bin()
        .args(["trace", "--system", "--interval-ms", "10", "--svg"])
        .arg(&svg)
        .arg("--csv")
        .arg(&csv)
        .arg("--")
        .arg("python3")
        .arg(repo().join("examples/programs/alloc_heavy.py"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("RSS (kernel)"), "{out}");
    assert!(out.contains('█'), "a sparkline reaching its peak: {out}");
    let page = std::fs::read_to_string(&svg).unwrap();
    let pts = polyline_points(&page);
    assert_eq!(pts.len(), 1, "RSS only without oxalloc");
    assert!(pts[0] > 10, "{pts:?}");
    let rows: Vec<Vec<u64>> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .filter(|f| !f.is_empty())
                .map(|f| f.parse().unwrap())
                .collect()
        })
        .collect();
    let peak = rows.iter().map(|r| r[1]).max().unwrap();
    let last = rows.last().unwrap()[1];
    assert!(peak > 64 << 20, "the 64 MiB burst: peak {peak}");
    assert!(
        last < peak - (32 << 20),
        "RSS falls after the burst is freed: {last} vs {peak}"
    );
    assert!(
        rows.windows(2).all(|w| w[0][0] <= w[1][0]),
        "time goes forward"
    );
}

#[test]
fn trace_with_oxalloc_adds_the_allocator_series() {
    require("python3", "python3");
    let lib = fake_lib();
    let html = tmp("trace.html");
    let o = bin()
        .env("OXALLOC_LIB", lib)
        .args(["trace", "--html"])
        .arg(&html)
        .arg("--")
        .arg("python3")
        .arg(repo().join("examples/programs/alloc_heavy.py"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("oxalloc in use"), "{out}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(polyline_points(&page).len(), 4);
    let peak = out.lines().find(|l| l.contains("oxalloc in use")).unwrap();
    let peak = peak
        .split("peak ")
        .nth(1)
        .unwrap()
        .split(" at")
        .next()
        .unwrap();
    assert!(parse_bytes(peak) > 48 << 20, "{peak}");
}

#[test]
fn trace_of_a_program_that_exits_between_samples_still_shows_the_allocator() {
    let lib = fake_lib();
    let html = tmp("trace-short.html");
    // The first sample comes before the program has started; the next one, two seconds
    // later, after it has exited: only the statistics page read after exit is left.
    let o = bin()
        .env("OXALLOC_LIB", lib)
        .args(["trace", "--interval-ms", "2000", "--html"])
        .arg(&html)
        .args(["--", "true"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("oxalloc in use"), "{out}");
    assert!(!out.contains("RSS only"), "{out}");
}

// ---------------------------------------------------------------- leaks

#[test]
fn leaks_without_the_hardened_build_is_one_clear_line() {
    let o = bin()
        .env(
            "OXALLOC_HARDENED_LIB",
            "/nonexistent/liboxalloc_hardened.so",
        )
        .args(["leaks", "--", "true"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "liboxalloc_hardened.so not found");
}

fn check_leak_report(lib: &Path) {
    let prog = leak_prog();
    let src = repo().join("examples/programs/leak.c");
    let o = bin()
        .env("OXALLOC_HARDENED_LIB", lib)
        .args(["leaks", "--"])
        .arg(prog)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "leaks make the run fail: {err}");
    assert!(out.contains("leak: oxalloc"), "{out}");
    let buffer_line = line_of(&src, "/* LEAK_BUFFER_LINE */");
    let name_line = line_of(&src, "/* LEAK_NAME_LINE */");
    // Largest first: 8 x 4096 from make_buffer before 100 bytes from copy_name.
    let a = err
        .find("Leak of 32,768 byte(s) in 8 object(s)")
        .expect(&err);
    let b = err.find("Leak of 100 byte(s) in 1 object(s)").expect(&err);
    assert!(a < b, "{err}");
    assert!(
        err.contains(&format!("make_buffer {}:{buffer_line}", src.display()))
            || err.contains(&format!("leak.c:{buffer_line}")),
        "{err}"
    );
    assert!(
        err[a..].lines().nth(1).unwrap().contains("make_buffer"),
        "{err}"
    );
    assert!(
        err[b..].lines().nth(1).unwrap().contains("copy_name"),
        "{err}"
    );
    assert!(err.contains(&format!("leak.c:{name_line}")), "{err}");
    assert!(err.contains("SUMMARY: oxalloc:"), "{err}");
}

#[test]
fn leaks_of_a_c_program_with_the_stand_in_library() {
    check_leak_report(fake_lib());
}

#[test]
fn leaks_of_a_c_program_with_the_hardened_library() {
    check_leak_report(&real_lib("liboxalloc_hardened.so"));
}

#[test]
fn leaks_report_file_is_symbolised_without_running() {
    let prog = leak_prog();
    let lib = fake_lib();
    // Produce a report with the stand-in, keep it, and symbolise it on its own.
    let report = tmp("leaks-saved.txt");
    let st = Command::new(prog)
        .env("LD_PRELOAD", lib)
        .env("OXALLOC_LEAKS", "1")
        .env("OXALLOC_LEAKS_FILE", &report)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let o = bin()
        .args(["leaks", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("in make_buffer"), "{out}");
    assert!(
        out.contains("from 3 site(s)") || out.contains("site(s)"),
        "{out}"
    );

    std::fs::write(&report, "garbage\n").unwrap();
    let o = bin()
        .args(["leaks", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_one_line_error(&o, "not an oxalloc leak report");
}

// ---------------------------------------------------------------- bench

#[test]
fn bench_without_the_benchmark_binary_is_one_clear_line() {
    let o = bin()
        .env("OXALLOC_BENCH", "/nonexistent/oxalloc-bench")
        .args(["bench", "--vs", "glibc"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "oxalloc-bench not found");
}

#[test]
fn bench_passes_its_arguments_through() {
    // A stand-in benchmark binary: a shell script that prints its arguments.
    let script = tmp("fake-bench.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"bench got: $*\"\nexit 3\n").unwrap();
    let _ = Command::new("chmod").arg("+x").arg(&script).status();
    let o = bin()
        .env("OXALLOC_BENCH", &script)
        .args(["bench", "--vs", "glibc,mimalloc", "-n", "3"])
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert_eq!(out.trim(), "bench got: --vs glibc,mimalloc -n 3");
    assert_eq!(o.status.code(), Some(3));
}
