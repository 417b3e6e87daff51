//! liboxalloc against C, C++ and real programs.
//!
//! Each test compiles a program from `tests/c/` (or takes one from the system), runs it
//! against the release build of `liboxalloc.so`/`liboxalloc.a`, and checks both its
//! output and that oxalloc really served its allocations (`liboxalloc.so` in the
//! child's `/proc/self/maps`, or a statistics file written by the library at exit).
//!
//! The library is built once per test process with `cargo build --workspace --release`
//! into the same target directory as this test: the library as the README's build makes
//! it (cargo unifies dependency features across the workspace, so `-p oxalloc-capi`
//! alone can link differently), and a no-op after `scripts/test.sh`'s own build.
//! `cargo test` itself does not build the cdylib. Every tool the
//! tests need (`cc`, `g++`, `python3`, `sqlite3`, `git`, `perl`) must be installed: a
//! missing one fails its test with the Debian package to install, it is never skipped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The libraries the static archive needs besides itself, as printed by
/// `cargo rustc -p oxalloc-capi --release -- --print native-static-libs`.
const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lpthread",
    "-ldl",
    "-lm",
    "-lrt",
    "-lutil",
    "-lgcc_s",
    "-lc",
];

/// Flags for every C program.
const CFLAGS: &[&str] = &["-O2", "-Wall", "-Wextra", "-Werror", "-pthread"];

/// The workspace root (two levels above this crate).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The directory holding `liboxalloc.so` and `liboxalloc.a`, built on first use.
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // current_exe() is <target>/<profile>/deps/<test>: build into the same <target>,
        // so that a clean clone, CARGO_TARGET_DIR and --target-dir all work.
        let exe = std::env::current_exe().expect("current_exe");
        let target = exe
            .ancestors()
            .nth(3)
            .expect("target dir above the test executable");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(&cargo)
            .args(["build", "--workspace", "--release", "--target-dir"])
            .arg(target)
            .current_dir(workspace())
            .status()
            .expect("running cargo build --workspace --release");
        assert!(
            status.success(),
            "cargo build --workspace --release failed: {status}"
        );
        let dir = target.join("release");
        for f in ["liboxalloc.so", "liboxalloc.a"] {
            assert!(
                dir.join(f).is_file(),
                "{} was not built",
                dir.join(f).display()
            );
        }
        dir
    })
}

fn so() -> PathBuf {
    lib_dir().join("liboxalloc.so")
}

/// A tool from the system, preferring /usr/bin (a version manager's shims may wrap
/// it in scripts); panics, naming the Debian package, when it is missing.
fn tool(name: &str, package: &str) -> PathBuf {
    let usr = Path::new("/usr/bin").join(name);
    if usr.is_file() {
        return usr;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` not found in /usr/bin or PATH: these tests need it (apt-get install {package})"
    );
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("capi-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `cmd` to completion, killing it and failing after `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {limit:?} (hang?); stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    };
    eprintln!("{what}: {status} in {:.1?}", start.elapsed());
    output
}

/// Asserts that a run succeeded and returns its stdout.
fn success(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// Compiles `tests/c/<src>` into `dir/<exe>` with `compiler` and extra arguments.
fn compile(
    compiler: &Path,
    src: &str,
    dir: &Path,
    exe: &str,
    flags: &[&str],
    link: &[&str],
) -> PathBuf {
    let ws = workspace();
    let out = dir.join(exe);
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(ws.join("tests/c"))
        .arg("-I")
        .arg(ws.join("include"))
        .arg(ws.join("tests/c").join(src))
        .arg("-o")
        .arg(&out)
        .args(link);
    success(
        &run(&mut cmd, Duration::from_secs(120)),
        &format!("compiling {src}"),
    );
    out
}

fn cc(src: &str, dir: &Path, exe: &str, link: &[&str]) -> PathBuf {
    compile(&tool("cc", "build-essential"), src, dir, exe, CFLAGS, link)
}

/// Link arguments for the shared library, with an rpath so the program finds it.
fn shared_link() -> Vec<String> {
    let d = lib_dir().display().to_string();
    vec![
        format!("-L{d}"),
        "-loxalloc".into(),
        format!("-Wl,-rpath,{d}"),
    ]
}

/// Link arguments for the static archive and what it needs.
fn static_link() -> Vec<String> {
    let mut v = vec![lib_dir().join("liboxalloc.a").display().to_string()];
    v.extend(NATIVE_STATIC_LIBS.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A command that runs `program` with liboxalloc preloaded and statistics written to
/// `dir/stats-<pid>.json` at exit.
fn preloaded(program: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LD_PRELOAD", so())
        .env("OXALLOC_STATS_FILE", dir.join("stats-%p.json"))
        .current_dir(dir);
    cmd
}

/// The value of `"key":` in a flat JSON object, as a number.
fn json_number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The statistics files (`stats-<pid>.json`) in `dir`: name and contents.
fn stats_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read scratch dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("stats-") && name.ends_with(".json") {
            out.push((
                name,
                std::fs::read_to_string(&path).expect("read stats file"),
            ));
        }
    }
    out
}

/// Checks that the preloaded library wrote statistics for at least one process of the
/// run, and that each such process allocated through it. Returns the allocation count.
fn assert_stats_written(dir: &Path, what: &str) -> u64 {
    let mut total = 0;
    let mut files = 0;
    for (name, json) in stats_files(dir) {
        let allocs = json_number(&json, "allocs")
            .unwrap_or_else(|| panic!("{what}: {name} has no \"allocs\": {json}"));
        total += allocs;
        files += 1;
    }
    assert!(
        files > 0,
        "{what}: no stats-<pid>.json in {}: was liboxalloc.so loaded?",
        dir.display()
    );
    assert!(
        total > 0,
        "{what}: the statistics count no allocations: oxalloc did not serve them"
    );
    total
}

fn assert_checks_passed(stdout: &str, name: &str) {
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{name}: ")) && l.ends_with("checks passed")),
        "{name}: no '{name}: N checks passed' line in:\n{stdout}"
    );
}

// ---------------------------------------------------------------------------------
// C programs

/// The misuses the default build stops (tests/c/misuse_default.c): (case, words the
/// report must contain). Each ends in SIGABRT.
const MISUSES: &[(&str, &[&str])] = &[
    (
        "double_free_small",
        &["double free of 0x", "(size 32, class 32) in free()"],
    ),
    (
        "double_free_small_other_thread",
        &["double free of 0x", "in malloc()", "freed twice"],
    ),
    (
        "double_free_small_both_other_thread",
        &["double free of 0x", "in malloc()", "freed twice"],
    ),
    (
        "double_free_small_later",
        &[
            "double free of 0x",
            "(size 48, class 48) in malloc()",
            "freed twice",
        ],
    ),
    ("double_free_large", &["double free of 0x", "in free()"]),
    ("double_free_huge", &["free of 0x", "in free()"]),
    (
        "interior_small",
        &[
            "invalid free of 0x",
            "interior pointer, 16 bytes into the block at 0x",
        ],
    ),
    (
        "unaligned_small",
        &["invalid free of 0x", "misaligned pointer, 1 bytes into"],
    ),
    (
        "interior_large",
        &["invalid free of 0x", "interior pointer, 4096 bytes into"],
    ),
    (
        "interior_huge",
        &["invalid free of 0x", "interior pointer, 1048576 bytes into"],
    ),
    (
        "never_handed_out",
        &["invalid free of 0x", "not in a block it handed out"],
    ),
    ("stack", &["invalid free of 0x", "on the stack"]),
    ("static", &["invalid free of 0x", "static data"]),
    ("literal", &["invalid free of 0x", "static data"]),
    ("wild", &["invalid free of 0x123450 ", "not mapped"]),
    (
        "high_alias",
        &["invalid free of 0x", "in free(): the address is not mapped"],
    ),
    (
        "high_alias_large",
        &["invalid free of 0x", "in free(): the address is not mapped"],
    ),
    ("realloc_freed", &["double free of 0x", "in realloc()"]),
    (
        "realloc_interior",
        &["invalid free of 0x", "in realloc()", "interior pointer"],
    ),
    (
        "realloc_stack",
        &["invalid free of 0x", "in realloc()", "on the stack"],
    ),
    (
        "usable_size_interior",
        &["invalid pointer of 0x", "in malloc_usable_size()"],
    ),
    (
        "free_sized_wrong",
        &[
            "size mismatch of 0x",
            "in free_sized(): freed with size 1000",
        ],
    ),
    (
        "free_aligned_sized_wrong",
        &["size mismatch of 0x", "in free_aligned_sized()"],
    ),
];

/// Compiles tests/c/misuse_default.c with `link` and runs every case (preloading
/// liboxalloc.so with `preload`).
fn misuse_battery(what: &str, scratch_name: &str, link: &[&str], preload: bool) {
    let dir = scratch(scratch_name);
    let exe = compile(
        &tool("cc", "build-essential"),
        "misuse_default.c",
        &dir,
        "misuse",
        MISUSE_CFLAGS,
        link,
    );
    check_misuse_battery(what, &|case: &str| {
        let mut c = Command::new(&exe);
        c.arg(case);
        if preload {
            c.env("LD_PRELOAD", so());
        }
        c
    });
}

/// Runs every case of a built misuse_default program (`cmd(case)` is the command for
/// one case) and checks its report, its SIGABRT, and the two cases that go on.
fn check_misuse_battery(what: &str, cmd: &dyn Fn(&str) -> Command) {
    use std::os::unix::process::ExitStatusExt;
    for &(case, words) in MISUSES {
        let out = run(&mut cmd(case), Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{what} {case}: {}\n{err}",
            out.status
        );
        for w in words {
            assert!(err.contains(w), "{what} {case}: report lacks {w:?}:\n{err}");
        }
        assert!(
            err.contains("\n  at: 0x") && err.contains("oxalloc: aborting"),
            "{what} {case}:\n{err}"
        );
    }
    let out = run(&mut cmd("foreign"), Duration::from_secs(60));
    let stdout = success(&out, &format!("{what} foreign"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("went on, realloc refused"), "{stdout}");
    assert_eq!(
        err.matches("oxalloc: invalid free of").count(),
        1,
        "{what}: {err}"
    );
    assert!(err.contains("not oxalloc's"), "{what}: {err}");
    let out = run(&mut cmd("clean"), Duration::from_secs(60));
    assert!(success(&out, &format!("{what} clean")).contains("clean: ok"));
    assert!(
        out.stderr.is_empty(),
        "{what} clean: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Warnings off: the program misuses the heap on purpose.
const MISUSE_CFLAGS: &[&str] = &["-O0", "-w", "-pthread"];

#[test]
fn default_build_stops_misuse_preloaded() {
    misuse_battery("LD_PRELOAD", "misuse_default_so", &[], true);
}

#[test]
fn default_build_stops_misuse_linked_statically() {
    misuse_battery(
        "liboxalloc.a",
        "misuse_default_a",
        &strs(&static_link()),
        false,
    );
}

#[test]
fn c_api_static() {
    let dir = scratch("c_api_static");
    let exe = cc("api_test.c", &dir, "api_test_static", &strs(&static_link()));
    let out = run(
        Command::new(&exe).arg("--expect-no-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "api_test (static)"), "api_test");
}

#[test]
fn c_api_shared() {
    let dir = scratch("c_api_shared");
    let exe = cc("api_test.c", &dir, "api_test_shared", &strs(&shared_link()));
    let out = run(
        Command::new(&exe).arg("--expect-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "api_test (shared)"), "api_test");
}

/// The typed allocators' C handles shared by four threads (tests/c/typed_threads.c):
/// each handle locks, so no block is handed out twice and every count comes back to 0.
#[test]
fn typed_handles_are_thread_safe() {
    let dir = scratch("typed_threads");
    let exe = cc(
        "typed_threads.c",
        &dir,
        "typed_threads",
        &strs(&static_link()),
    );
    let out = run(&mut Command::new(&exe), Duration::from_secs(120));
    assert_checks_passed(&success(&out, "typed_threads"), "typed_threads");
}

/// A preloaded wrapper library that itself links liboxalloc.so (tests/c/preload_wrapper.c)
/// runs real programs: liboxalloc.so then loads after the program's libc, so it must name
/// libc.so.6 as its own dependency, or glibc relocates it first and aborts on its IFUNC
/// references ("Relink ... for IFUNC symbol `memset`").
#[test]
fn preloaded_wrapper_that_links_liboxalloc() {
    let dir = scratch("preload_wrapper");
    let mut link = vec!["-shared".to_string(), "-fPIC".to_string()];
    link.extend(shared_link());
    let wrapper = cc("preload_wrapper.c", &dir, "libwrapper.so", &strs(&link));
    let needed = run(
        Command::new(tool("readelf", "binutils"))
            .args(["-d"])
            .arg(so()),
        Duration::from_secs(30),
    );
    assert!(
        success(&needed, "readelf -d liboxalloc.so").contains("[libc.so.6]"),
        "liboxalloc.so does not declare its libc dependency"
    );
    let python = tool("python3", "python3").display().to_string();
    let script = "print(sum(len(str(i)) for i in range(100000)))";
    let perl = tool("perl", "perl").display().to_string();
    let perl_script = "my %h; $h{$_} = 'x' x ($_ % 100) for 1..50000; print scalar(keys %h)";
    for program in [
        &[&python, "-c", script][..],
        &[&perl, "-e", perl_script][..],
    ] {
        let out = run(
            Command::new(program[0])
                .args(&program[1..])
                .env("LD_PRELOAD", &wrapper),
            Duration::from_secs(60),
        );
        success(&out, &format!("{program:?} under the wrapper"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let calls: u64 = stderr
            .split("preload_wrapper: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the wrapper did not run in {program:?}: {stderr}"));
        assert!(
            calls > 0,
            "no allocation went through the wrapper in {program:?}"
        );
    }
}

#[test]
fn ulimit_v() {
    let dir = scratch("ulimit_v");
    let exe = cc("ulimit_test.c", &dir, "ulimit_test", &strs(&shared_link()));
    // The program sets RLIMIT_AS itself (its size now + 256 MiB), as `ulimit -v` would.
    let out = run(
        Command::new(&exe).arg("--expect-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "ulimit_test"), "ulimit_test");
}

#[test]
fn fork_test() {
    let dir = scratch("fork_test");
    let exe = cc("fork_test.c", &dir, "fork_test", &strs(&shared_link()));
    let out = run(
        Command::new(&exe).arg("--expect-so"),
        Duration::from_secs(60),
    );
    assert_checks_passed(&success(&out, "fork_test"), "fork_test");
}

#[test]
fn threads_stress_preloaded() {
    let dir = scratch("threads_stress");
    let exe = cc("threads_stress.c", &dir, "threads_stress", &[]);
    let out = run(
        preloaded(&exe, &dir).arg("--expect-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "threads_stress"), "threads_stress");
    assert_stats_written(&dir, "threads_stress");
}

#[test]
fn calloc_reads_zero_across_purges() {
    let dir = scratch("calloc_purge");
    let exe = cc("calloc_purge_test.c", &dir, "calloc_purge_test", &[]);
    let out = run(
        preloaded(&exe, &dir)
            .arg("--expect-so")
            .env("OXALLOC_DEMAND_WINDOW_MS", "20")
            .env("OXALLOC_PURGE_DELAY_MS", "1"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "calloc_purge_test"), "calloc_purge_test");
    assert_stats_written(&dir, "calloc_purge_test");
    // The run must have purged, or it tested nothing about purged memory.
    let purged: u64 = stats_files(&dir)
        .iter()
        .filter_map(|(_, json)| json_number(json, "purged_bytes"))
        .sum();
    assert!(purged > 0, "calloc_purge_test: nothing was purged");
}

// ---------------------------------------------------------------------------------
// C++

fn build_stl(dir: &Path, exe: &str, link: &[&str]) -> PathBuf {
    let gxx = tool("g++", "g++");
    compile(
        &gxx,
        "stl_test.cpp",
        dir,
        exe,
        &[
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
        ],
        link,
    )
}

#[test]
fn cpp_stl_preloaded() {
    let dir = scratch("cpp_stl_preloaded");
    let exe = build_stl(&dir, "stl_test", &[]);
    let out = run(
        preloaded(&exe, &dir).arg("--expect-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "stl_test (LD_PRELOAD)"), "stl_test");
    assert_stats_written(&dir, "stl_test");
}

#[test]
fn cpp_sized_delete_of_another_size_class_is_stopped() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("cpp_sized_delete");
    let exe = build_stl(&dir, "stl_test", &[]);
    let out = run(
        preloaded(&exe, &dir).arg("sized-delete-mismatch"),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "{}\n{err}", out.status);
    for w in [
        "oxalloc: size mismatch of 0x",
        "in operator delete(): freed with size 4000",
        "oxalloc: aborting",
    ] {
        assert!(err.contains(w), "the report lacks {w:?}:\n{err}");
    }
}

#[test]
fn cpp_stl_linked() {
    let dir = scratch("cpp_stl_linked");
    let exe = build_stl(&dir, "stl_test", &strs(&shared_link()));
    let out = run(
        Command::new(&exe).arg("--expect-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "stl_test (linked)"), "stl_test");
}

// ---------------------------------------------------------------------------------
// Real programs under LD_PRELOAD

/// Prints "loaded" when liboxalloc.so is mapped into the interpreter.
const PY_CHECK_LOADED: &str = r#"
import sys
maps = open('/proc/self/maps').read()
print('loaded' if 'liboxalloc.so' in maps else 'NOT LOADED')
"#;

const PY_ALLOC_HEAVY: &str = r#"
import json, random
random.seed(7)
# dicts and strings
d = {}
for i in range(200000):
    d['key%d' % i] = 'v' * (i % 97) + str(i)
assert len(d) == 200000
assert d['key123456'] == 'v' * (123456 % 97) + '123456'
total = sum(len(v) for v in d.values())
assert total == sum((i % 97) + len(str(i)) for i in range(200000)), total
for i in range(0, 200000, 2):
    del d['key%d' % i]
assert len(d) == 100000
# lists of lists, sorting, tuples
rows = [[random.randrange(1000000) for _ in range(20)] for _ in range(20000)]
rows.sort()
assert all(rows[i] <= rows[i + 1] for i in range(len(rows) - 1))
flat = [x for r in rows for x in r]
assert len(flat) == 400000
# strings: join, split, replace
s = ','.join(str(x) for x in range(100000))
parts = s.split(',')
assert len(parts) == 100000 and parts[99999] == '99999'
t = s.replace(',', ';;')
assert len(t) == len(s) + s.count(',')
# big bytes objects
blobs = [bytes([i % 256]) * (1 << 20) for i in range(40)]
assert all(b[12345] == i % 256 for i, b in enumerate(blobs))
big = bytearray(64 << 20)
big[-1] = 7
assert big[-1] == 7 and big[0] == 0 and len(big) == 64 << 20
big.extend(b'x' * (16 << 20))
assert len(big) == 80 << 20
del blobs, big
# json round trip
obj = {'a': [{'n': i, 's': str(i) * 3} for i in range(50000)]}
back = json.loads(json.dumps(obj))
assert back == obj
# sets and many small objects
st = set(range(0, 300000, 3))
assert len(st) == 100000 and 299997 in st and 299998 not in st
objs = [object() for _ in range(200000)]
assert len(set(map(id, objs))) == 200000
print('alloc-heavy OK')
"#;

const PY_THREADS: &str = r#"
import threading, queue
N_THREADS = 8
ITEMS = 3000
q = queue.Queue(maxsize=500)
results = queue.Queue()
def producer(t):
    for i in range(ITEMS):
        # objects made here are freed by a consumer thread
        q.put((t, i, [str(i)] * (i % 30), b'z' * (i % 5000)))
def consumer():
    total = 0
    while True:
        item = q.get()
        if item is None:
            break
        t, i, lst, blob = item
        assert len(lst) == i % 30 and len(blob) == i % 5000
        total += i + len(lst) + len(blob)
    results.put(total)
producers = [threading.Thread(target=producer, args=(t,)) for t in range(N_THREADS)]
consumers = [threading.Thread(target=consumer) for _ in range(N_THREADS)]
for th in producers + consumers:
    th.start()
for th in producers:
    th.join()
for _ in consumers:
    q.put(None)
for th in consumers:
    th.join()
got = sum(results.get() for _ in consumers)
want = N_THREADS * sum(i + i % 30 + i % 5000 for i in range(ITEMS))
assert got == want, (got, want)
# threads that allocate a lot each, started and finished in rounds
def worker(out, k):
    out[k] = sum(len(''.join(str(j) for j in range(k, k + 2000))) for _ in range(20))
for round_ in range(5):
    out = [0] * N_THREADS
    ths = [threading.Thread(target=worker, args=(out, k)) for k in range(N_THREADS)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert out == [20 * len(''.join(str(j) for j in range(k, k + 2000))) for k in range(N_THREADS)]
print('threads OK')
"#;

fn python(name: &str, script: &str, expect: &str) {
    let dir = scratch(name);
    let py = tool("python3", "python3");
    let full = format!("{PY_CHECK_LOADED}\n{script}");
    let out = run(
        preloaded(&py, &dir).args(["-c", &full]),
        Duration::from_secs(120),
    );
    let stdout = success(&out, name);
    assert!(
        stdout.lines().next() == Some("loaded"),
        "{name}: liboxalloc.so not mapped in python3:\n{stdout}"
    );
    assert!(
        stdout.contains(expect),
        "{name}: expected {expect:?} in:\n{stdout}"
    );
    assert_stats_written(&dir, name);
}

#[test]
fn python_alloc_heavy() {
    python("python_alloc_heavy", PY_ALLOC_HEAVY, "alloc-heavy OK");
}

#[test]
fn python_threads() {
    python("python_threads", PY_THREADS, "threads OK");
}

#[test]
fn sqlite3_100k_rows() {
    let dir = scratch("sqlite3");
    let sqlite = tool("sqlite3", "sqlite3");
    let sql = "\
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL, b BLOB);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
  INSERT INTO t(id, k, v, b) SELECT x, 'key-' || x, (x * 7) % 1000, randomblob(x % 300) FROM c;
COMMIT;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_v ON t(v);
SELECT 'count', count(*) FROM t;
SELECT 'sum', sum(v) FROM t;
SELECT 'bytes', sum(length(b)) FROM t;
SELECT 'lookup', id, v FROM t WHERE k = 'key-77777';
SELECT 'like', count(*) FROM t WHERE k LIKE 'key-9999%';
SELECT 'v42', count(*) FROM t WHERE v = 42;
SELECT 'groups', count(*) FROM (SELECT v, count(*) FROM t GROUP BY v);
PRAGMA integrity_check;
";
    std::fs::write(dir.join("script.sql"), sql).expect("write script");
    let mut cmd = preloaded(&sqlite, &dir);
    cmd.args(["-batch", "-separator", " ", "test.db", ".read script.sql"]);
    let stdout = success(&run(&mut cmd, Duration::from_secs(120)), "sqlite3");
    let sum: u64 = (1..=100_000u64).map(|x| (x * 7) % 1000).sum();
    // randomblob(0) gives 1 byte.
    let bytes: u64 = (1..=100_000u64).map(|x| (x % 300).max(1)).sum();
    let v42 = (1..=100_000u64).filter(|x| (x * 7) % 1000 == 42).count();
    let want = [
        "count 100000".to_string(),
        format!("sum {sum}"),
        format!("bytes {bytes}"),
        format!("lookup 77777 {}", (77777 * 7) % 1000),
        // key-9999 and key-99990 ..= key-99999
        "like 11".to_string(),
        format!("v42 {v42}"),
        "groups 1000".to_string(),
        "ok".to_string(),
    ];
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got, want, "sqlite3 output");
    assert_stats_written(&dir, "sqlite3");
}

#[test]
fn git_init_add_commit_log() {
    let dir = scratch("git");
    let git = tool("git", "git");
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    for i in 0..200 {
        let body: String = (0..i * 20)
            .map(|j| format!("line {j} of file {i}\n"))
            .collect();
        std::fs::write(repo.join("src").join(format!("f{i}.txt")), body).expect("write file");
    }
    let git_cmd = |args: &[&str]| {
        let mut cmd = preloaded(&git, &dir);
        cmd.current_dir(&repo)
            .env("HOME", &dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args([
                "-c",
                "user.name=Oxalloc Test",
                "-c",
                "user.email=test@oxalloc.invalid",
            ])
            .args(["-c", "init.defaultBranch=main"])
            .args(args);
        success(
            &run(&mut cmd, Duration::from_secs(120)),
            &format!("git {args:?}"),
        )
    };
    git_cmd(&["init", "-q"]);
    git_cmd(&["add", "."]);
    git_cmd(&["commit", "-q", "-m", "first commit under oxalloc"]);
    std::fs::write(repo.join("src/f1.txt"), "changed\n").expect("write");
    git_cmd(&["commit", "-q", "-a", "-m", "second commit"]);
    let log = git_cmd(&["log", "--format=%s|%an"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "second commit|Oxalloc Test",
            "first commit under oxalloc|Oxalloc Test"
        ],
        "git log"
    );
    let files = git_cmd(&["ls-files"]);
    assert_eq!(files.lines().count(), 200, "git ls-files");
    assert_eq!(git_cmd(&["status", "--porcelain"]), "", "git status");
    git_cmd(&["fsck", "--no-progress"]);
    assert_stats_written(&dir, "git");
}

#[test]
fn perl_hashes_and_strings() {
    let dir = scratch("perl");
    let perl = tool("perl", "perl");
    let script = r#"
use strict; use warnings;
my %h;
$h{"k$_"} = "v" x ($_ % 50) for 1 .. 200000;
my $s = 0;
$s += length $h{"k$_"} for 1 .. 200000;
my %m = map { ($_ % 1000) => 1 } 1 .. 100000;
my $j = join ",", sort { $a <=> $b } keys %m;
my @a = map { [ $_, "x" x ($_ % 100) ] } 1 .. 100000;
my $t = 0;
$t += length $_->[1] for @a;
my $str = "";
$str .= sprintf("%05d;", $_) for 1 .. 100000;
my @parts = split /;/, $str;
open my $f, "<", "/proc/self/maps" or die;
my $maps = do { local $/; <$f> };
print index($maps, "liboxalloc.so") >= 0 ? "loaded\n" : "NOT LOADED\n";
print "$s ", length($j), " $t ", scalar(@parts), " $parts[-1]\n";
"#;
    let out = run(
        preloaded(&perl, &dir).args(["-e", script]),
        Duration::from_secs(120),
    );
    let stdout = success(&out, "perl");
    let s: u64 = (1..=200_000u64).map(|i| i % 50).sum();
    let t: u64 = (1..=100_000u64).map(|i| i % 100).sum();
    // 0..999 joined: 2890 digits and 999 commas.
    assert_eq!(
        stdout,
        format!("loaded\n{s} 3889 {t} 100000 100000\n"),
        "perl output"
    );
    assert_stats_written(&dir, "perl");
}

/// `OXALLOC_PAGE_SOURCE=brk`: segments come from the program break, which shrinks again
/// after a trim, and a program's own `sbrk` calls mixed with malloc keep working. The
/// background purger is off here: its thread's TLS blocks, allocated while the break
/// is high, would pin the top segment (as any long-lived block at the top of a brk heap
/// does).
#[test]
fn brk_page_source() {
    let dir = scratch("brk_page_source");
    let exe = cc("brk_test.c", &dir, "brk_test", &[]);
    for mode in ["brk", "mmap"] {
        let mut cmd = preloaded(&exe, &dir);
        cmd.arg(mode).env("OXALLOC_BACKGROUND_PURGE", "0");
        if mode == "brk" {
            cmd.env("OXALLOC_PAGE_SOURCE", "brk");
        }
        let out = run(&mut cmd, Duration::from_secs(60));
        let stdout = success(&out, "brk_test");
        assert!(
            stdout.contains(&format!("brk_test: ok ({mode}")),
            "{stdout}"
        );
    }
}

/// A bad option value is reported once on stderr and the default kept.
#[test]
fn bad_option_value_is_reported_once() {
    let dir = scratch("bad_option");
    let exe = cc("brk_test.c", &dir, "brk_test", &[]);
    let mut cmd = preloaded(&exe, &dir);
    cmd.arg("mmap")
        .env("OXALLOC_PAGE_SOURCE", "bogus")
        .env("OXALLOC_PURGE_DELAY_MS", "soon");
    let out = run(&mut cmd, Duration::from_secs(60));
    success(&out, "brk_test with bad options");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("OXALLOC_PAGE_SOURCE=bogus").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("OXALLOC_PURGE_DELAY_MS=soon").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("using the default 10"), "{stderr}");
}

// ---------------------------------------------------------------------------------
// Other platforms: liboxalloc cross-built for static musl, aarch64 Linux and Windows, and
// C programs run natively (musl), under qemu-user (aarch64) or under wine (Windows).
// Ignored by a plain `cargo test`: they need the Rust targets, musl-tools, the aarch64
// cross gcc with qemu-user, and MinGW with wine, which scripts/setup.sh installs.
// scripts/test.sh (and scripts/test-windows.sh) run them with `--ignored musl_`,
// `aarch64_` and `windows_` where those are present, and say SKIPPED where not. Once
// run, a missing tool fails the test, naming its Debian package, as above.

const MUSL: &str = "x86_64-unknown-linux-musl";
const AARCH64: &str = "aarch64-unknown-linux-gnu";
const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";
const WINDOWS: &str = "x86_64-pc-windows-gnu";

/// The directory of the liboxalloc built for `triple` (`<target>/<triple>/release`),
/// built on first use with `cargo build -p oxalloc-capi --release --target <triple>`
/// into this test's target directory.
fn cross_lib_dir(triple: &'static str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target dir above the test executable");
    let dir = target.join(triple).join("release");
    // Held while building: the targets share cargo's lock on the target directory anyway.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.contains(&triple) {
        return dir;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    if triple == MUSL || triple == AARCH64_MUSL {
        // Rust's musl target links statically and makes no cdylib (cargo build would warn
        // that it drops it): the archive only.
        cmd.args(["rustc", "--crate-type", "staticlib"]);
    } else {
        cmd.arg("build");
    }
    cmd.args([
        "-p",
        "oxalloc-capi",
        "--release",
        "--target",
        triple,
        "--target-dir",
    ])
    .arg(target)
    .current_dir(workspace());
    if triple == AARCH64
        && std::env::var_os("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER").is_none()
    {
        cmd.env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        );
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo build --target {triple}: {e}"));
    assert!(
        status.success(),
        "building liboxalloc for {triple} failed: {status}"
    );
    built.push(triple);
    dir
}

/// The unwinder Rust's musl target ships (`<target-libdir>/self-contained/libunwind.a`):
/// liboxalloc.a for musl calls `_Unwind_Backtrace` for its misuse reports, and the host
/// gcc's `libgcc_eh.a` that musl-gcc would link is built for glibc (it needs
/// `_dl_find_object`).
fn musl_libunwind() -> PathBuf {
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let rustc = cargo.with_file_name("rustc");
    let rustc = if rustc.is_file() {
        rustc
    } else {
        PathBuf::from("rustc")
    };
    let out = run(
        Command::new(rustc).args(["--print", "target-libdir", "--target", MUSL]),
        Duration::from_secs(60),
    );
    let libdir = success(&out, "rustc --print target-libdir");
    let a = Path::new(libdir.trim()).join("self-contained/libunwind.a");
    assert!(
        a.is_file(),
        "{} is missing (rustup target add {MUSL})",
        a.display()
    );
    a
}

/// musl-gcc link arguments for a static program on liboxalloc.a: the archive before the
/// libc.a that musl-gcc appends, so malloc and the rest resolve to oxalloc's and musl's
/// malloc objects are never pulled in (the other order links musl's malloc, or fails
/// with "multiple definition of `free'" once an `ox_` name pulls the archive in); the
/// unwinder; and an `.eh_frame_hdr`, without which the unwinder finds no frames (gcc
/// asks ld for one only in dynamic links).
fn musl_static_link() -> Vec<String> {
    vec![
        "-static".into(),
        cross_lib_dir(MUSL)
            .join("liboxalloc.a")
            .display()
            .to_string(),
        musl_libunwind().display().to_string(),
        "-Wl,--eh-frame-hdr".into(),
    ]
}

fn musl_gcc() -> PathBuf {
    tool("musl-gcc", "musl-tools")
}

/// A static musl C program's malloc is oxalloc's: api_test checks every export under
/// both names, that `malloc`, `strdup`'s block and the `ox_` functions are one
/// allocator, and the statistics (`ox_stats_json`) count the allocations.
#[test]
#[ignore = "needs musl-gcc (musl-tools) and the x86_64-unknown-linux-musl target: scripts/test.sh runs it"]
fn musl_static_api_test() {
    let dir = scratch("musl_api_test");
    let exe = compile(
        &musl_gcc(),
        "api_test.c",
        &dir,
        "api_test",
        CFLAGS,
        &strs(&musl_static_link()),
    );
    let headers = run(
        Command::new(tool("readelf", "binutils"))
            .arg("-lW")
            .arg(&exe),
        Duration::from_secs(30),
    );
    let headers = success(&headers, "readelf -l");
    assert!(
        !headers.contains("INTERP") && !headers.contains("DYNAMIC"),
        "the musl api_test is not a static program:\n{headers}"
    );
    let out = run(
        Command::new(&exe).arg("--expect-no-so"),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "api_test (musl, static)"), "api_test");
}

#[test]
#[ignore = "needs musl-gcc (musl-tools) and the x86_64-unknown-linux-musl target: scripts/test.sh runs it"]
fn musl_static_misuse_battery() {
    let dir = scratch("musl_misuse");
    let exe = compile(
        &musl_gcc(),
        "misuse_default.c",
        &dir,
        "misuse",
        MISUSE_CFLAGS,
        &strs(&musl_static_link()),
    );
    check_misuse_battery("musl static", &|case: &str| {
        let mut c = Command::new(&exe);
        c.arg(case);
        c
    });
}

/// Threads, cross-thread frees and thread exit in a static musl program; the statistics
/// file written at exit shows the blocks went through oxalloc.
#[test]
#[ignore = "needs musl-gcc (musl-tools) and the x86_64-unknown-linux-musl target: scripts/test.sh runs it"]
fn musl_static_threads_stress() {
    let dir = scratch("musl_threads");
    let exe = compile(
        &musl_gcc(),
        "threads_stress.c",
        &dir,
        "threads_stress",
        CFLAGS,
        &strs(&musl_static_link()),
    );
    let out = run(
        Command::new(&exe)
            .args(["--expect-no-so", "10"])
            .env("OXALLOC_STATS_FILE", dir.join("stats-%p.json"))
            .current_dir(&dir),
        Duration::from_secs(120),
    );
    assert_checks_passed(&success(&out, "threads_stress (musl)"), "threads_stress");
    assert_stats_written(&dir, "threads_stress (musl)");
    let remote: u64 = stats_files(&dir)
        .iter()
        .filter_map(|(_, json)| json_number(json, "remote_frees"))
        .sum();
    assert!(
        remote > 0,
        "threads_stress (musl): no cross-thread frees counted"
    );
}

fn aarch64_gcc() -> PathBuf {
    tool("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
}

/// qemu-user for an aarch64 program, with the cross libc as its root for the loader
/// and libraries; `env` is set in the guest (`-E`), not in qemu's own environment.
fn qemu_aarch64(program: &Path, env: &[(&str, &Path)]) -> Command {
    qemu_aarch64_paged(program, env, None)
}

/// [`qemu_aarch64`] with the guest told that the kernel's pages are `page` bytes
/// (`-p`: `getpagesize`, `sysconf` and `AT_PAGESZ` say so).
fn qemu_aarch64_paged(program: &Path, env: &[(&str, &Path)], page: Option<usize>) -> Command {
    let qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool("qemu-aarch64-static", "qemu-user-static"));
    let mut cmd = Command::new(qemu);
    cmd.args(["-L", "/usr/aarch64-linux-gnu"]);
    if let Some(page) = page {
        cmd.arg("-p").arg(page.to_string());
    }
    for (k, v) in env {
        cmd.arg("-E").arg(format!("{k}={}", v.display()));
    }
    cmd.arg(program);
    cmd
}

/// aarch64 link arguments for liboxalloc.a and what it needs (`--print
/// native-static-libs` for the target: std is linked there, so libgcc_s too).
fn aarch64_static_link() -> Vec<String> {
    let mut v = vec![cross_lib_dir(AARCH64)
        .join("liboxalloc.a")
        .display()
        .to_string()];
    v.extend(NATIVE_STATIC_LIBS.iter().map(|s| s.to_string()));
    v
}

fn aarch64_so() -> PathBuf {
    cross_lib_dir(AARCH64).join("liboxalloc.so")
}

#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64-unknown-linux-gnu target: scripts/test.sh runs it"]
fn aarch64_static_api_test() {
    let dir = scratch("aarch64_api_test");
    let exe = compile(
        &aarch64_gcc(),
        "api_test.c",
        &dir,
        "api_test",
        CFLAGS,
        &strs(&aarch64_static_link()),
    );
    let out = run(
        qemu_aarch64(&exe, &[]).arg("--expect-no-so"),
        Duration::from_secs(300),
    );
    assert_checks_passed(&success(&out, "api_test (aarch64, static)"), "api_test");
}

/// arm64 kernels with 16 KiB (Apple silicon) and 64 KiB pages (some server
/// distributions): the API test, linked statically and against the .so, with the guest told
/// the page size (`valloc`/`pvalloc` must align to it; it used to be 4 KiB). qemu-user
/// does not widen `madvise`/`mprotect` ranges to its pages as such a kernel does, so
/// what keeps those calls to whole kernel pages is `oxalloc-sys` (`discard`, `protect`).
#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64-unknown-linux-gnu target: scripts/test.sh runs it"]
fn aarch64_api_test_on_16k_and_64k_pages() {
    let dir = scratch("aarch64_big_pages");
    let gcc = aarch64_gcc();
    let linked = compile(
        &gcc,
        "api_test.c",
        &dir,
        "api_test",
        CFLAGS,
        &strs(&aarch64_static_link()),
    );
    let lib = cross_lib_dir(AARCH64).display().to_string();
    let shared = [
        format!("-L{lib}"),
        "-loxalloc".into(),
        format!("-Wl,-rpath,{lib}"),
    ];
    let linked_so = compile(
        &gcc,
        "api_test.c",
        &dir,
        "api_test_so",
        CFLAGS,
        &strs(&shared),
    );
    for page in [16 << 10, 64 << 10] {
        let out = run(
            qemu_aarch64_paged(&linked, &[], Some(page)).arg("--expect-no-so"),
            Duration::from_secs(300),
        );
        let what = format!("api_test (aarch64, static, {page}-byte pages)");
        assert_checks_passed(&success(&out, &what), "api_test");
        let out = run(
            qemu_aarch64_paged(&linked_so, &[], Some(page)).arg("--expect-so"),
            Duration::from_secs(300),
        );
        let what = format!("api_test (aarch64, liboxalloc.so, {page}-byte pages)");
        assert_checks_passed(&success(&out, &what), "api_test");
    }
}

#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64-unknown-linux-gnu target: scripts/test.sh runs it"]
fn aarch64_misuse_battery_static_and_preloaded() {
    let dir = scratch("aarch64_misuse");
    let gcc = aarch64_gcc();
    let linked = compile(
        &gcc,
        "misuse_default.c",
        &dir,
        "misuse_a",
        MISUSE_CFLAGS,
        &strs(&aarch64_static_link()),
    );
    check_misuse_battery("aarch64 liboxalloc.a", &|case: &str| {
        let mut c = qemu_aarch64(&linked, &[]);
        c.arg(case);
        c
    });
    let plain = compile(&gcc, "misuse_default.c", &dir, "misuse", MISUSE_CFLAGS, &[]);
    let so = aarch64_so();
    check_misuse_battery("aarch64 LD_PRELOAD", &|case: &str| {
        let mut c = qemu_aarch64(&plain, &[("LD_PRELOAD", &so)]);
        c.arg(case);
        c
    });
}

/// aarch64 with musl: a static C program linked by the aarch64 cross gcc against
/// liboxalloc.a for `aarch64-unknown-linux-musl` and the musl crt files and `libc.a` that
/// Rust's target brings (Debian has no musl-gcc nor musl headers for arm64, so the
/// program declares what it uses), run under qemu-user.
#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64-unknown-linux-musl target: scripts/test.sh runs it"]
fn static_program_on_arm64_musl() {
    let dir = scratch("aarch64_musl");
    let sysroot = success(
        &run(
            Command::new("rustc").args(["--print", "sysroot"]),
            Duration::from_secs(30),
        ),
        "rustc --print sysroot",
    );
    let musl = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(AARCH64_MUSL)
        .join("lib/self-contained");
    let gcc = aarch64_gcc();
    let libgcc = success(
        &run(
            Command::new(&gcc).arg("-print-libgcc-file-name"),
            Duration::from_secs(30),
        ),
        "aarch64 libgcc",
    );
    let f = |name: &str| musl.join(name).display().to_string();
    let before = [
        "-O2".to_string(),
        "-nostdinc".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-fno-stack-protector".into(),
        f("crt1.o"),
        f("crti.o"),
        f("crtbegin.o"),
    ];
    let after = [
        cross_lib_dir(AARCH64_MUSL)
            .join("liboxalloc.a")
            .display()
            .to_string(),
        f("libunwind.a"),
        f("libc.a"),
        libgcc.trim().to_string(),
        f("crtend.o"),
        f("crtn.o"),
    ];
    let exe = compile(
        &gcc,
        "musl_no_headers.c",
        &dir,
        "musl_no_headers",
        &strs(&before),
        &strs(&after),
    );
    let qemu = ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool("qemu-aarch64-static", "qemu-user-static"));
    let out = run(Command::new(qemu).arg(&exe), Duration::from_secs(120));
    let stdout = success(&out, "musl_no_headers (aarch64 musl, static)");
    assert_eq!(stdout.trim(), "ok");
}

/// Under LD_PRELOAD: the program maps liboxalloc.so and its statistics count the
/// threads' allocations and cross-thread frees. 8 rounds of 8 threads (the default 50
/// take about 40 s emulated).
#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64-unknown-linux-gnu target: scripts/test.sh runs it"]
fn aarch64_threads_stress_preloaded() {
    let dir = scratch("aarch64_threads");
    let exe = compile(
        &aarch64_gcc(),
        "threads_stress.c",
        &dir,
        "threads_stress",
        CFLAGS,
        &[],
    );
    let so = aarch64_so();
    let stats = dir.join("stats-%p.json");
    let mut cmd = qemu_aarch64(&exe, &[("LD_PRELOAD", &so), ("OXALLOC_STATS_FILE", &stats)]);
    cmd.args(["--expect-so", "8"]).current_dir(&dir);
    let out = run(&mut cmd, Duration::from_secs(300));
    assert_checks_passed(&success(&out, "threads_stress (aarch64)"), "threads_stress");
    assert_stats_written(&dir, "threads_stress (aarch64)");
    let remote: u64 = stats_files(&dir)
        .iter()
        .filter_map(|(_, json)| json_number(json, "remote_frees"))
        .sum();
    assert!(
        remote > 0,
        "threads_stress (aarch64): no cross-thread frees counted"
    );
}

/// oxalloc.dll through its import library: tests/c/dll_test.c calls every `ox_`
/// function and the typed allocators, from several threads, under wine; the DLL
/// exports none of the CRT's names (the program checks with GetProcAddress).
#[test]
#[ignore = "needs x86_64-w64-mingw32-gcc, wine and the x86_64-pc-windows-gnu target: scripts/test-windows.sh runs it"]
fn windows_dll_api_test() {
    let lib = cross_lib_dir(WINDOWS);
    let dir = scratch("windows_dll");
    let exe = compile(
        &tool("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"),
        "dll_test.c",
        &dir,
        "dll_test.exe",
        &["-O2", "-Wall", "-Wextra", "-Werror"],
        &[&format!("-L{}", lib.display()), "-loxalloc"],
    );
    // Windows looks for a program's DLLs in its own directory first.
    std::fs::copy(lib.join("oxalloc.dll"), dir.join("oxalloc.dll")).expect("copy oxalloc.dll");
    let wine = ["/usr/bin/wine64", "/usr/bin/wine"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool("wine", "wine64"));
    let mut cmd = Command::new(wine);
    cmd.arg(&exe).current_dir(&dir);
    // test-windows.sh's prefix when it runs this; the same place otherwise. Quiet, and
    // without the Mono and Gecko installers a fresh prefix would offer.
    if std::env::var_os("WINEPREFIX").is_none() {
        let target = lib
            .ancestors()
            .nth(2)
            .expect("target dir")
            .join("wine-prefix");
        cmd.env("WINEPREFIX", target);
    }
    cmd.env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
    let out = run(&mut cmd, Duration::from_secs(300));
    let stdout = success(&out, "dll_test under wine");
    assert_checks_passed(&stdout, "dll_test");
    let stats = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stats: "))
        .unwrap_or_else(|| panic!("dll_test printed no statistics:\n{stdout}"));
    // Cross-thread frees went through the DLL, and the threads' exits reached it (their
    // heaps wait, abandoned, for new threads).
    for key in ["allocs", "remote_frees", "heaps_abandoned"] {
        let n = json_number(stats, key)
            .unwrap_or_else(|| panic!("dll_test: no {key:?} in the statistics: {stats}"));
        assert!(n > 0, "dll_test: {key} is 0: {stats}");
    }
}
