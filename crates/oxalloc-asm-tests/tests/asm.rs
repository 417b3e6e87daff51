//! Builds and runs every NASM program of `examples/asm/` and checks what it prints.
//!
//! # How a program is built
//! `nasm -f elf64 -w+all -Werror` assembles it; `cc` links it one of four ways
//! ([`Link`]): with no libc at all (`-nostdlib -static`, own `_start`), with libc only,
//! with `liboxalloc.a` linked in statically, or with `-loxalloc` and an rpath.
//!
//! # Where liboxalloc comes from
//! `OXALLOC_LIB_DIR` if set (it must hold `liboxalloc.a` and `liboxalloc.so`); otherwise
//! the tests run `cargo build --release -p oxalloc-capi` into the target directory
//! they run from (`CARGO_TARGET_DIR`, else the workspace's `target/`) and use
//! `<target>/release`. Linking `liboxalloc.a` needs the native libraries rustc names
//! with `--print native-static-libs`; [`NATIVE_LIBS`] is that list, which
//! `OXALLOC_NATIVE_LIBS` (space separated) overrides.
//!
//! # Nothing is skipped
//! * `pool.asm` needs `ox_pool_*` in `liboxalloc.so` (checked with `nm -D`): a library
//!   without them fails its test.
//! * The mistake programs are checked against `liboxalloc_hardened.so` (SIGABRT and a
//!   report), which must exist next to `liboxalloc.so` (the build above makes both;
//!   an `OXALLOC_LIB_DIR` without it fails the test). They also run under the default
//!   library, where only the leak and garbage programs must exit 0 (the others are
//!   undefined behaviour: their status is printed, not asserted).
//!
//! Missing `nasm` or `cc` is a test failure, never a silent pass.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What `cargo rustc -p oxalloc-capi --release --crate-type staticlib -- --print
/// native-static-libs` printed for x86_64-unknown-linux-gnu (duplicates dropped).
const NATIVE_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// A program that runs longer than this is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// SIGABRT on Linux.
const SIGABRT: i32 = 6;

struct Setup {
    examples: PathBuf,
    lib_dir: PathBuf,
    work: PathBuf,
}

/// Checks the tools and finds (or builds) liboxalloc, once for all tests.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        require_tool(
            "nasm",
            &["-v"],
            "install it (Debian/Ubuntu: apt-get install nasm)",
        );
        require_tool(
            "cc",
            &["--version"],
            "install a C compiler driver (gcc or clang)",
        );
        require_tool("nm", &["--version"], "install binutils");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest
            .parent()
            .and_then(Path::parent)
            .expect("crate lives in crates/");
        let lib_dir = match std::env::var_os("OXALLOC_LIB_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => build_liboxalloc(root),
        };
        for lib in ["liboxalloc.a", "liboxalloc.so"] {
            assert!(
                lib_dir.join(lib).is_file(),
                "{} is missing (OXALLOC_LIB_DIR or the cargo build of oxalloc-capi)",
                lib_dir.join(lib).display()
            );
        }
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("asm");
        std::fs::create_dir_all(&work).expect("create the build directory");
        Setup {
            examples: root.join("examples/asm"),
            lib_dir,
            work,
        }
    })
}

fn require_tool(tool: &str, args: &[&str], hint: &str) {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{tool}` is required to build the assembly examples but was not found: {hint}"
    );
}

/// `cargo build --release -p oxalloc-capi` into the target directory the tests run
/// from; returns `<target>/release`.
fn build_liboxalloc(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "oxalloc-capi",
            "-p",
            "oxalloc-hardened",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo to build liboxalloc");
    assert!(
        status.success(),
        "cargo build --release -p oxalloc-capi failed: {status}"
    );
    target.join("release")
}

/// How a program is linked.
#[derive(Clone, Copy, Debug)]
enum Link {
    /// `-nostdlib -static`: the program has its own `_start` and uses raw system calls.
    NoLibc,
    /// libc only; the allocator is chosen at run time with `LD_PRELOAD`.
    Libc,
    /// `liboxalloc.a` linked in: oxalloc replaces libc's malloc inside the executable.
    Static,
    /// `-loxalloc` with an rpath to the library directory.
    Shared,
}

/// Assembles `examples/asm/<name>.asm` and links it; returns the executable.
fn build(name: &str, link: Link) -> PathBuf {
    let s = setup();
    let src = s.examples.join(format!("{name}.asm"));
    let tag = format!("{link:?}").to_lowercase();
    let obj = s.work.join(format!("{name}-{tag}.o"));
    let exe = s.work.join(format!("{name}-{tag}"));
    let out = Command::new("nasm")
        .args(["-f", "elf64", "-w+all", "-Werror", "-o"])
        .arg(&obj)
        .arg(&src)
        .output()
        .expect("run nasm");
    assert!(
        out.status.success(),
        "nasm failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cc = Command::new("cc");
    match link {
        Link::NoLibc => {
            cc.args(["-nostdlib", "-static"]).arg(&obj);
        }
        Link::Libc => {
            cc.arg(&obj);
        }
        Link::Static => {
            cc.arg(&obj).arg(s.lib_dir.join("liboxalloc.a"));
            match std::env::var("OXALLOC_NATIVE_LIBS") {
                Ok(libs) => cc.args(libs.split_whitespace()),
                Err(_) => cc.args(NATIVE_LIBS),
            };
        }
        Link::Shared => {
            let rpath = format!("-Wl,-rpath,{}", s.lib_dir.display());
            cc.arg(&obj)
                .arg("-L")
                .arg(&s.lib_dir)
                .arg("-loxalloc")
                .arg(rpath);
        }
    }
    let out = cc.arg("-o").arg(&exe).output().expect("run cc");
    assert!(
        out.status.success(),
        "linking {name} ({link:?}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// What a finished program did.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} did not exit 0: {}",
            self.describe()
        );
    }

    fn assert_abort(&self, what: &str) {
        assert_eq!(
            self.status.signal(),
            Some(SIGABRT),
            "{what} should have been stopped by SIGABRT: {}",
            self.describe()
        );
    }
}

/// Runs `exe` with `env` added (and any outside `LD_PRELOAD`/`OXALLOC_*` removed),
/// killing it after [`RUN_TIMEOUT`].
fn run(exe: &Path, env: &[(&str, &Path)], vars: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_PRELOAD");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OXALLOC_") {
            cmd.env_remove(&key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} ran longer than {RUN_TIMEOUT:?}", exe.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    Run {
        status,
        stdout,
        stderr,
    }
}

/// Prints a note that shows even when the test harness captures output (what the
/// default build did with a mistake program must be visible in a passing run).
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "note: {msg}");
}

/// The "Expected output" of the programs whose output is fully deterministic.
/// Each string is also in the program's header comment.
const STATIC_DATA: &str = "\
counter (db) = 10
year (dw) = 2024
magic (dd) = 3735928559
big (dq) = 1234605616436508552
array (dd 1..5) sum = 15
bss: 4096 bytes, all zero at start
bss after writes: table[0] = 7, table[511] = 42, buffer = \"static!\"
counter after add = 11
";

const STACK: &str = "\
pushed 1, 2, 3; popped 3, 2, 1
after 3 pushes rsp mod 16 = 8 (a call now would break the rule)
after the pops rsp mod 16 = 0
locals: a=4 b=5 c=6, a*100+b*10+c = 456
factorial(10) = 3628800
every call into libc had rsp mod 16 = 0
";

const BRK_HEAP: &str = "\
brk(0): got the current break
grew the heap by 65536 bytes
new memory reads as zero: yes
wrote 8192 qwords 0..8191, sum = 33550336
huge request refused, break unchanged: yes
shrank the heap back by 65536 bytes
break is back where it started: yes
";

const MMAP_MUNMAP: &str = "\
mmap: 3 pages (12288 bytes) mapped
fresh pages read as zero: yes
filled 12288 bytes with 1, sum = 12288
munmap(middle page) = 0
munmap(first page) = 0, munmap(last page) = 0
mmap(length 0) failed as expected: errno 22 (EINVAL)
mmap with MAP_ANONYMOUS but no MAP_PRIVATE failed as expected: errno 22 (EINVAL)
";

const MALLOC_FREE: &str = "\
malloc(64): stored 0xdeadbeef, read back 0xdeadbeef
usable size >= 64: yes
10 blocks of 16..160 bytes: allocated, filled, checked, freed
malloc(1 MiB): first and last byte written and read back
malloc(SIZE_MAX) = NULL, errno = 12 (ENOMEM): handled
free(NULL): no-op
all blocks freed
";

const SSE_ALIGNED: &str = "\
malloc(1..64): all 64 blocks 16-byte aligned, movaps store+load ok (n >= 16)
aligned_alloc(16, 256): aligned, 16 vectors added with addps, sum = 160
posix_memalign(64, 1024) = 0: pointer mod 64 = 0, movaps on all 64 vectors ok
all SSE accesses aligned
";

const POOL: &str = "\
pool: 48-byte blocks, 16-byte aligned
allocated 100 blocks: all 16-byte aligned, none overlapping
freed the 50 even-numbered blocks, allocated 50 again: all blocks intact
ox_pool_create(48, 3) = NULL (alignment not a power of two): handled
pool destroyed
";

fn check_exact(name: &str, link: Link, expected: &str) -> Run {
    let r = run(&build(name, link), &[], &[]);
    r.assert_success(name);
    assert_eq!(
        r.stdout,
        expected,
        "{name} ({link:?}) printed something else: {}",
        r.describe()
    );
    r
}

#[test]
fn static_data_reads_data_and_zeroed_bss() {
    check_exact("static_data", Link::NoLibc, STATIC_DATA);
}

#[test]
fn stack_keeps_calls_aligned() {
    check_exact("stack", Link::Libc, STACK);
}

#[test]
fn brk_heap_grows_uses_and_shrinks_the_break() {
    check_exact("brk_heap", Link::NoLibc, BRK_HEAP);
}

#[test]
fn mmap_munmap_maps_and_reports_errno() {
    check_exact("mmap_munmap", Link::NoLibc, MMAP_MUNMAP);
}

/// The statistics on stderr prove that oxalloc, not glibc, served the allocations:
/// the program itself makes 12 successful mallocs.
fn check_oxalloc_stats(r: &Run) {
    assert!(
        r.stderr.contains("oxalloc: statistics for pid"),
        "ox_stats_print wrote no statistics: {}",
        r.describe()
    );
    let allocations: u64 = r
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("allocations"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `allocations` line in the statistics: {}", r.describe()));
    assert!(
        allocations >= 12,
        "oxalloc counted {allocations} allocations, expected >= 12"
    );
}

#[test]
fn malloc_free_static() {
    let r = check_exact("malloc_free", Link::Static, MALLOC_FREE);
    check_oxalloc_stats(&r);
}

#[test]
fn malloc_free_shared() {
    let r = check_exact("malloc_free", Link::Shared, MALLOC_FREE);
    check_oxalloc_stats(&r);
}

#[test]
fn realloc_array_doubles_and_keeps_contents() {
    let r = run(&build("realloc_array", Link::Static), &[], &[]);
    r.assert_success("realloc_array");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.describe());
    // The number of moves depends on the allocator; the rest does not.
    assert!(
        lines[0].starts_with("pushed 100000 qwords (1..100000), capacity 131072, 18 reallocs, "),
        "{}",
        r.describe()
    );
    assert_eq!(lines[1], "sum = 5000050000 (expected 5000050000)");
    assert_eq!(
        lines[2],
        "every element still in place after the moves: yes"
    );
}

#[test]
fn sse_aligned_movaps_on_heap_memory() {
    check_exact("sse_aligned", Link::Static, SSE_ALIGNED);
}

/// Whether `liboxalloc.so` exports `symbol` (a defined dynamic symbol).
fn exports(lib: &Path, symbol: &str) -> bool {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output()
        .expect("run nm");
    assert!(out.status.success(), "nm -D {} failed", lib.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().last() == Some(symbol))
}

#[test]
fn pool_through_ox_pool_abi() {
    let s = setup();
    let so = s.lib_dir.join("liboxalloc.so");
    assert!(
        exports(&so, "ox_pool_create"),
        "{} does not export ox_pool_create: pool.asm cannot run",
        so.display()
    );
    check_exact("pool", Link::Static, POOL);
}

// ---- the mistakes -------------------------------------------------------------------

/// Builds a mistake program (libc only), runs it under the default `liboxalloc.so`
/// and prints what happened; returns the executable and that run.
fn mistake_default_run(name: &str) -> (PathBuf, Run) {
    let s = setup();
    let exe = build(name, Link::Libc);
    let lib = s.lib_dir.join("liboxalloc.so");
    let r = run(&exe, &[("LD_PRELOAD", &lib)], &[]);
    note(&format!(
        "{name} under liboxalloc.so (no hardening): {}; stdout: {:?}",
        r.status,
        r.stdout.trim_end()
    ));
    (exe, r)
}

/// The hardened library; its absence fails the test (the setup's build makes it).
fn hardened(name: &str) -> PathBuf {
    let lib = setup().lib_dir.join("liboxalloc_hardened.so");
    assert!(
        lib.is_file(),
        "{name}: {} does not exist (cargo build --release -p oxalloc-hardened, or an \
         OXALLOC_LIB_DIR that holds it)",
        lib.display()
    );
    lib
}

/// Runs a mistake under the hardened library: it must die by SIGABRT with `report`
/// on stderr, after printing `first_line` (the program flushes before the bug).
fn check_hardened_abort(name: &str, exe: &Path, first_line: &str, report: &str) {
    let lib = hardened(name);
    let r = run(exe, &[("LD_PRELOAD", &lib)], &[]);
    r.assert_abort(name);
    assert!(r.stdout.starts_with(first_line), "{name}: {}", r.describe());
    assert!(
        r.stderr.contains(report),
        "{name}: no {report:?} in the report: {}",
        r.describe()
    );
}

#[test]
fn mistake_leak() {
    let (exe, r) = mistake_default_run("mistake_leak");
    r.assert_success("mistake_leak under liboxalloc.so");
    let line = "allocated 3 blocks (100, 200, 300 bytes), freed 1: 400 bytes leaked\n";
    assert_eq!(r.stdout, line, "{}", r.describe());
    let lib = hardened("mistake_leak");
    let r = run(&exe, &[("LD_PRELOAD", &lib)], &[("OXALLOC_LEAKS", "1")]);
    assert_eq!(r.stdout, line, "{}", r.describe());
    assert!(
        r.stderr.contains("leaked"),
        "no leak report: {}",
        r.describe()
    );
}

#[test]
fn mistake_use_after_free() {
    let (exe, _) = mistake_default_run("mistake_use_after_free");
    let first = "wrote through a dangling pointer\n";
    check_hardened_abort("mistake_use_after_free", &exe, first, "write after free");
}

#[test]
fn mistake_double_free() {
    let (exe, _) = mistake_default_run("mistake_double_free");
    check_hardened_abort(
        "mistake_double_free",
        &exe,
        "freeing the block twice\n",
        "double free",
    );
}

#[test]
fn mistake_overflow() {
    let (exe, _) = mistake_default_run("mistake_overflow");
    let first = "stored 8 bytes into malloc(2)\n";
    check_hardened_abort("mistake_overflow", &exe, first, "heap overflow");
}

#[test]
fn mistake_garbage() {
    let (exe, r) = mistake_default_run("mistake_garbage");
    r.assert_success("mistake_garbage under liboxalloc.so");
    assert!(
        r.stdout.starts_with("uninitialised qword at p+8: 0x"),
        "{}",
        r.describe()
    );
    let lib = hardened("mistake_garbage");
    let r = run(&exe, &[("LD_PRELOAD", &lib)], &[("OXALLOC_JUNK", "1")]);
    r.assert_success("mistake_garbage under the hardened library");
    assert_eq!(
        r.stdout,
        "uninitialised qword at p+8: 0xaaaaaaaaaaaaaaaa\n",
        "{}",
        r.describe()
    );
}

// ---- the examples themselves --------------------------------------------------------

/// Every program has the header the README promises, and a test above.
#[test]
fn every_example_has_a_header_and_a_test() {
    const TESTED: &[&str] = &[
        "static_data",
        "stack",
        "brk_heap",
        "mmap_munmap",
        "malloc_free",
        "realloc_array",
        "sse_aligned",
        "pool",
        "mistake_leak",
        "mistake_use_after_free",
        "mistake_double_free",
        "mistake_overflow",
        "mistake_garbage",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/asm");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read examples/asm") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "asm") {
            let name = path
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("read the program");
            for part in [
                "What it teaches",
                "Build and run",
                "Expected output",
                "default rel",
            ] {
                assert!(text.contains(part), "{name}.asm lacks {part:?}");
            }
            assert!(
                text.contains("section .note.GNU-stack noalloc noexec nowrite progbits"),
                "{name}.asm does not mark its stack non-executable"
            );
            assert!(
                TESTED.contains(&name.as_str()),
                "{name}.asm has no test in tests/asm.rs"
            );
            found.push(name);
        }
    }
    for name in TESTED {
        assert!(
            found.iter().any(|f| f == name),
            "examples/asm/{name}.asm is missing"
        );
    }
}

/// The expected outputs above also appear, line for line, in the programs' headers,
/// so the documentation cannot drift from what the tests check.
#[test]
fn headers_show_the_checked_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/asm");
    for (name, expected) in [
        ("static_data", STATIC_DATA),
        ("stack", STACK),
        ("brk_heap", BRK_HEAP),
        ("mmap_munmap", MMAP_MUNMAP),
        ("malloc_free", MALLOC_FREE),
        ("sse_aligned", SSE_ALIGNED),
        ("pool", POOL),
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.asm"))).expect("read");
        for line in expected.lines() {
            assert!(
                text.contains(&format!(";   {line}\n")),
                "{name}.asm header lacks {line:?}"
            );
        }
    }
}
