//! Fault injection at every system call that can fail (issue 21): each workload runs
//! without faults to count the calls that map or change memory (three times: the
//! threaded one varies by a call or two; the fewest is walked), then once per call with that
//! call refused (oxalloc-sys's `fault` hook), and once per call with that call and
//! every later one refused (memory that stays exhausted). Each run is a fresh child
//! process (this binary, re-executed), so every run starts from a clean allocator
//! whose options come from its environment.
//!
//! A child checks, as it goes: every null return comes with `errno == ENOMEM` (or
//! `posix_memalign`'s `ENOMEM`), a failed `realloc` leaves its block as it was, every
//! live block keeps its contents, `calloc` memory reads zero. At the end it frees
//! everything, trims (the refusal may fall there), stops refusing, trims again, and
//! checks that no byte is still in use; the parent, that no more bytes stay mapped
//! than in the runs without faults (nothing leaked), that the child exited cleanly
//! within its time limit, and that the refusal was reached.
//!
//! Built only with the `fault-injection` feature; `scripts/faults.sh` runs it. Its
//! last line says how many failure points were tried.

use oxalloc_core::api;
use oxalloc_core::stats::GLOBAL;
use oxalloc_sys::fault;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// A workload: its name, the function a child runs, and the options it runs with.
struct Workload {
    name: &'static str,
    run: fn(&mut Live),
    env: &'static [(&'static str, &'static str)],
    /// Whether the child keeps live statistics in a shared file (`OXALLOC_STATS_SHM`,
    /// one `map_shared_file` at start-up), a file of its own.
    shm: bool,
}

/// Options every child runs with: no helper thread and no purge on a timer, so the
/// calls a workload makes are the same from run to run; a small cache cap, so frees
/// purge (`discard`) in the middle of a workload and not only at trim.
const COMMON_ENV: &[(&str, &str)] = &[
    ("OXALLOC_BACKGROUND_PURGE", "0"),
    ("OXALLOC_PURGE_DELAY_MS", "600000"),
    ("OXALLOC_DEMAND_WINDOW_MS", "0"),
    ("OXALLOC_CACHE_MAX_MIB", "1"),
];

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "small",
        run: small,
        env: &[],
        shm: false,
    },
    Workload {
        name: "large",
        run: large,
        env: &[("OXALLOC_HUGE_PAGES", "1")],
        shm: false,
    },
    Workload {
        name: "huge",
        run: huge,
        env: &[("OXALLOC_HUGE_PAGES", "1")],
        shm: false,
    },
    Workload {
        name: "realloc",
        run: realloc_growth,
        env: &[],
        shm: true,
    },
    Workload {
        name: "threads",
        run: threads,
        // Purges at trim only: how many spans a purge finds mid-run depends on how
        // the threads interleave.
        env: &[("OXALLOC_CACHE_MAX_MIB", "1024")],
        shm: false,
    },
    Workload {
        name: "brk",
        run: brk,
        env: &[("OXALLOC_PAGE_SOURCE", "brk")],
        shm: false,
    },
    Workload {
        name: "guard-slices",
        run: guard_slices,
        env: &[],
        shm: false,
    },
];

// ---------------------------------------------------------------------------------
// The child: a workload's blocks and their checks.

/// A live block and the seed of its contents.
struct Block {
    ptr: *mut u8,
    size: usize,
    seed: u64,
}

// SAFETY: a block is plain memory of the allocator, usable from any thread.
unsafe impl Send for Block {}

/// Offsets written and checked: both ends of the block and one word per page, so a
/// page lost or zeroed under a live block is seen without touching every byte.
fn offsets(size: usize) -> impl Iterator<Item = usize> {
    let words = size / 8;
    let head = words.min(8);
    (0..head)
        .chain((head..words).step_by(512))
        .chain(words.saturating_sub(8).max(head)..words)
}

fn word(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl Block {
    fn fill(&self) {
        for i in offsets(self.size) {
            // SAFETY: word i lies inside the block's `size` bytes (8-aligned blocks).
            unsafe { self.ptr.cast::<u64>().add(i).write(word(self.seed, i)) };
        }
    }

    /// Checks the first `upto` bytes' words.
    fn check(&self, upto: usize) {
        for i in offsets(self.size).filter(|&i| (i + 1) * 8 <= upto) {
            // SAFETY: as in `fill`.
            let v = unsafe { self.ptr.cast::<u64>().add(i).read() };
            assert_eq!(
                v,
                word(self.seed, i),
                "block {:p} ({} B) lost its contents at byte {}",
                self.ptr,
                self.size,
                i * 8
            );
        }
    }

    fn check_zero(&self) {
        for i in offsets(self.size) {
            // SAFETY: as in `fill`.
            let v = unsafe { self.ptr.cast::<u64>().add(i).read() };
            assert_eq!(
                v,
                0,
                "calloc block {:p} ({} B) not zero at byte {}",
                self.ptr,
                self.size,
                i * 8
            );
        }
    }
}

/// A child's live blocks and what it saw refused.
#[derive(Default)]
struct Live {
    blocks: Vec<Block>,
    seed: u64,
    /// Allocations that returned null (with ENOMEM).
    refused: u64,
}

fn errno_is_enomem(what: &str, size: usize) {
    let e = oxalloc_sys::errno();
    assert_eq!(
        e,
        oxalloc_sys::ENOMEM,
        "{what}({size}) returned null with errno {e}, not ENOMEM"
    );
}

impl Live {
    fn next_seed(&mut self) -> u64 {
        self.seed += 1;
        self.seed
    }

    /// Keeps a fresh block, filled. False if it was null (after checking errno).
    fn keep(&mut self, p: *mut u8, size: usize, what: &str) -> bool {
        if p.is_null() {
            errno_is_enomem(what, size);
            self.refused += 1;
            return false;
        }
        let b = Block {
            ptr: p,
            size,
            seed: self.next_seed(),
        };
        b.fill();
        self.blocks.push(b);
        true
    }

    fn malloc(&mut self, size: usize) -> bool {
        oxalloc_sys::set_errno(0);
        let p = api::malloc(size);
        self.keep(p, size, "malloc")
    }

    fn calloc(&mut self, size: usize) -> bool {
        oxalloc_sys::set_errno(0);
        let p = api::calloc(1, size);
        if !p.is_null() {
            Block {
                ptr: p,
                size,
                seed: 0,
            }
            .check_zero();
        }
        self.keep(p, size, "calloc")
    }

    fn aligned(&mut self, align: usize, size: usize) -> bool {
        let mut p = std::ptr::null_mut();
        oxalloc_sys::set_errno(0);
        // SAFETY: `p` is a valid out-pointer.
        let rc = unsafe { api::posix_memalign(&mut p, align, size) };
        if rc != 0 {
            assert_eq!(rc, oxalloc_sys::ENOMEM, "posix_memalign({align}, {size})");
            // It reports through its return value only (a success may leave what a
            // refused `brk` before the fallback set, as with libc's).
            assert_eq!(oxalloc_sys::errno(), 0, "failed posix_memalign set errno");
            self.refused += 1;
            return false;
        }
        assert_eq!(p as usize % align, 0, "posix_memalign({align}) misaligned");
        self.keep(p, size, "posix_memalign")
    }

    /// Reallocates block `i` to `size`; on failure the block must be untouched.
    fn realloc(&mut self, i: usize, size: usize) -> bool {
        let seed = self.next_seed();
        let b = &mut self.blocks[i];
        b.check(b.size);
        oxalloc_sys::set_errno(0);
        // SAFETY: a live block of ours.
        let q = unsafe { api::realloc(b.ptr, size) };
        if q.is_null() {
            errno_is_enomem("realloc", size);
            b.check(b.size);
            self.refused += 1;
            return false;
        }
        let kept = b.size.min(size);
        b.ptr = q;
        b.check(kept);
        b.size = size;
        b.seed = seed;
        b.fill();
        true
    }

    fn free(&mut self, i: usize) {
        let b = self.blocks.swap_remove(i);
        b.check(b.size);
        // SAFETY: a live block of ours, freed once.
        unsafe { api::free(b.ptr) };
    }

    /// Frees every other block (from the end, so indexes stay valid).
    fn free_every_other(&mut self) {
        let mut i = self.blocks.len();
        while i >= 2 {
            i -= 2;
            self.free(i);
        }
    }

    fn check_all(&self) {
        for b in &self.blocks {
            b.check(b.size);
        }
    }

    fn free_all(&mut self) {
        while !self.blocks.is_empty() {
            self.free(self.blocks.len() - 1);
        }
    }
}

/// Small blocks (16 B to 8 KiB) over several segments, half freed and the room
/// reused, calloc among them.
fn small(live: &mut Live) {
    let sizes = [16, 24, 48, 100, 256, 1000, 3000, 8 * KIB];
    for round in 0..3 {
        for i in 0..2400 {
            let size = sizes[(i + round) % sizes.len()];
            if i % 7 == 0 {
                live.calloc(size);
            } else {
                live.malloc(size);
            }
        }
        live.check_all();
        live.free_every_other();
    }
    api::malloc_trim(0);
    for _ in 0..300 {
        live.calloc(3000);
    }
}

/// Large blocks (64 KiB to 1 MiB): freed, purged and handed out again as calloc
/// memory (which must read zero), aligned ones, in-place growth.
fn large(live: &mut Live) {
    let sizes = [64 * KIB + 1, 100 * KIB, 256 * KIB, 512 * KIB, 900 * KIB];
    for round in 0..2 {
        for i in 0..40 {
            live.malloc(sizes[(i + round) % sizes.len()]);
        }
        live.aligned(256 * KIB, 300 * KIB);
        live.check_all();
        live.free_every_other();
    }
    api::malloc_trim(0);
    for i in 0..30 {
        live.calloc(sizes[i % sizes.len()]);
    }
    for i in 0..live.blocks.len().min(10) {
        let s = live.blocks[i].size;
        live.realloc(i, s + 100 * KIB);
    }
}

/// Huge blocks (1 MiB to 24 MiB): freed and reused, calloc after trim, big
/// alignments, in-place and moving reallocs.
fn huge(live: &mut Live) {
    let sizes = [MIB, 3 * MIB, 8 * MIB, 24 * MIB, 2 * MIB + 5];
    for round in 0..2 {
        for i in 0..12 {
            live.malloc(sizes[(i + round) % sizes.len()]);
        }
        live.aligned(16 * MIB, 5 * MIB);
        live.check_all();
        live.free_every_other();
    }
    api::malloc_trim(0);
    for i in 0..8 {
        live.calloc(sizes[i % sizes.len()]);
    }
    for i in 0..live.blocks.len().min(6) {
        let s = live.blocks[i].size;
        live.realloc(i, s * 2);
    }
    // A block bigger than any region the heap holds: a fresh mapping.
    live.malloc(300 * MIB);
}

/// Buffers grown with realloc from 16 B to 6 MiB, interleaved so growth sometimes
/// moves, then shrunk.
fn realloc_growth(live: &mut Live) {
    for _ in 0..4 {
        live.malloc(16);
    }
    let mut size = 16usize;
    while size < 6 * MIB {
        size = size * 3 / 2 + 8;
        for i in 0..live.blocks.len() {
            live.realloc(i, size + i * 24);
        }
    }
    for i in 0..live.blocks.len() {
        let s = live.blocks[i].size;
        live.realloc(i, s / 5);
    }
    for i in 0..live.blocks.len() {
        live.realloc(i, 200);
    }
}

/// Four threads allocate small and large blocks, free half of their own, hand the
/// rest to the next thread (remote frees) and exit (their heaps are abandoned).
fn threads(live: &mut Live) {
    const THREADS: usize = 4;
    let barrier = std::sync::Barrier::new(THREADS);
    let refused: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut mine = Live {
                        seed: (t as u64) << 40,
                        ..Live::default()
                    };
                    for i in 0..600 {
                        let size = [24, 200, 2000, 24, 200, 70 * KIB][(i + t) % 6];
                        mine.malloc(size);
                    }
                    mine.free_every_other();
                    mine.check_all();
                    barrier.wait();
                    (std::mem::take(&mut mine.blocks), mine.refused)
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        // Each thread's survivors are freed by another thread. Joined one by one:
        // a join waits for the thread's exit (its heap abandoned), the end of a scope
        // only for its closure.
        let mut refused = 0;
        std::thread::scope(|s2| {
            let mut handles = Vec::new();
            for (t, (blocks, r)) in results.into_iter().enumerate() {
                refused += r;
                handles.push(s2.spawn(move || {
                    let mut other = Live {
                        blocks,
                        seed: (t as u64 + 100) << 40,
                        ..Live::default()
                    };
                    other.check_all();
                    for _ in 0..200 {
                        other.malloc(500);
                    }
                    other.free_all();
                }));
            }
            for h in handles {
                h.join().unwrap();
            }
        });
        refused
    });
    live.refused += refused;
    for _ in 0..100 {
        live.malloc(4000);
    }
}

/// Segments from the program break: small and large blocks, freed in an order that
/// leaves the topmost segment free last.
fn brk(live: &mut Live) {
    for i in 0..3000 {
        live.malloc([64, 700, 4000][i % 3]);
    }
    for i in 0..30 {
        live.malloc([200 * KIB, 700 * KIB][i % 2]);
    }
    live.aligned(128 * KIB, 300 * KIB);
    live.check_all();
    live.free_every_other();
    api::malloc_trim(0);
    for _ in 0..20 {
        live.calloc(300 * KIB);
    }
}

/// Guard slices on (what the hardened build asks of the core): each new segment's
/// guard slices are protected.
fn guard_slices(live: &mut Live) {
    oxalloc_core::set_guard_slices(true);
    for i in 0..600 {
        live.malloc([48, 5000, 60 * KIB][i % 3]);
    }
    live.free_every_other();
    api::malloc_trim(0);
    for _ in 0..60 {
        live.calloc(30 * KIB);
    }
}

/// What a child prints on its last line, for the parent.
fn child(name: &str, fail_at: u64, onwards: bool) {
    let w = WORKLOADS
        .iter()
        .find(|w| w.name == name)
        .expect("known workload");
    // Before the allocator's first call: the count starts at its start-up.
    if onwards {
        fault::fail_from(fail_at);
    } else {
        fault::fail_nth(fail_at);
    }
    let mut live = Live::default();
    (w.run)(&mut live);
    live.check_all();
    live.free_all();
    // The refusal may fall in this trim; the next one runs without refusals.
    api::malloc_trim(0);
    let calls = fault::calls();
    let injected = fault::injected();
    let mut by_kind = String::new();
    for k in fault::Call::ALL {
        let n = fault::calls_of(k);
        if n > 0 {
            by_kind += &format!(" {}={n}", k.name());
        }
    }
    fault::disarm();
    api::malloc_trim(0);
    let in_use = GLOBAL.in_use_bytes.load(Relaxed);
    assert_eq!(
        in_use, 0,
        "{in_use} bytes still in use after freeing everything"
    );
    let kind = fault::first_injected().map_or("-", |k| k.name());
    println!(
        "RESULT calls={calls} injected={injected} kind={kind} refused={} mapped={} by_kind:{by_kind}",
        live.refused,
        GLOBAL.mapped_bytes.load(Relaxed),
    );
}

// ---------------------------------------------------------------------------------
// The parent: dry runs, then every failure point, each in a child.

/// What a child reported.
struct Report {
    calls: u64,
    injected: u64,
    kind: String,
    refused: u64,
    mapped: u64,
    by_kind: String,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// Runs one child; Err with what went wrong (exit status, output) if it failed.
fn run_child(w: &Workload, fail_at: u64, onwards: bool) -> Result<Report, String> {
    const LIMIT: Duration = Duration::from_secs(60);
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe);
    cmd.env("FAULTS_CHILD", w.name)
        .env("FAULTS_FAIL_AT", fail_at.to_string())
        .env("FAULTS_ONWARDS", if onwards { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in COMMON_ENV.iter().chain(w.env) {
        cmd.env(k, v);
    }
    let shm = std::env::temp_dir().join(format!(
        "oxalloc-faults-{}-{}-{fail_at}-{onwards}",
        std::process::id(),
        w.name
    ));
    if w.shm {
        cmd.env("OXALLOC_STATS_SHM", &shm);
    }
    let mut c = cmd.spawn().expect("start the child");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().expect("wait for the child") {
            break Some(s);
        }
        if start.elapsed() > LIMIT {
            let _ = c.kill();
            let _ = c.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = c.wait_with_output().expect("child output");
    let _ = std::fs::remove_file(&shm);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = if onwards { "from" } else { "at" };
    let Some(status) = status else {
        return Err(format!(
            "{} with failure {what} call {fail_at}: hung (killed after {LIMIT:?})\n{stderr}",
            w.name
        ));
    };
    let last = stdout.lines().rev().find(|l| l.starts_with("RESULT "));
    match (status.success(), last) {
        (true, Some(line)) => Ok(Report {
            calls: field(line, "calls").parse().unwrap(),
            injected: field(line, "injected").parse().unwrap(),
            kind: field(line, "kind").to_string(),
            refused: field(line, "refused").parse().unwrap(),
            mapped: field(line, "mapped").parse().unwrap(),
            by_kind: line.split("by_kind:").nth(1).unwrap_or("").to_string(),
        }),
        _ => Err(format!(
            "{} with failure {what} call {fail_at}: {status}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            w.name
        )),
    }
}

/// Turns address space randomization off for this process and the children it starts
/// (the flag survives exec): where mappings land decides some of the allocator's
/// choices (a huge block's alignment padding, which spans share a pending slot), so
/// with it a workload makes the same calls in every run. Where the system forbids it,
/// the runs that make fewer calls are counted as not reached.
fn no_address_randomization() {
    // SAFETY: personality(0xffffffff) only reads the persona.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    if persona != -1 {
        // SAFETY: adding ADDR_NO_RANDOMIZE changes only where later mappings go.
        unsafe { libc::personality((persona | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong) };
    }
}

fn main() -> ExitCode {
    if let Ok(name) = std::env::var("FAULTS_CHILD") {
        let at = std::env::var("FAULTS_FAIL_AT").map_or(0, |v| v.parse().unwrap());
        let onwards = std::env::var("FAULTS_ONWARDS").is_ok_and(|v| v == "1");
        child(&name, at, onwards);
        return ExitCode::SUCCESS;
    }
    // `cargo test` passes harness flags (`--quiet`, a filter): a filter that names
    // workloads picks them; flags are ignored.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    no_address_randomization();
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut tried = 0u64;
    let mut workloads = 0;
    for w in WORKLOADS {
        if !picked.is_empty() && !picked.iter().any(|p| w.name.contains(p.as_str())) {
            continue;
        }
        workloads += 1;
        // Three runs without faults: the fewest calls any made is the walk's length
        // (a threaded run varies by a call or two), the most bytes any left mapped the
        // bound for the runs with faults.
        let mut dry_runs = Vec::new();
        for _ in 0..3 {
            match run_child(w, 0, false) {
                Ok(r) => dry_runs.push(r),
                Err(e) => failures.push(e),
            }
        }
        if dry_runs.len() < 3 {
            continue;
        }
        for d in &dry_runs {
            assert_eq!(d.injected, 0);
            assert_eq!(d.refused, 0, "{}: refused without faults", w.name);
        }
        let most_calls = dry_runs.iter().map(|d| d.calls).max().unwrap();
        let most_mapped = dry_runs.iter().map(|d| d.mapped).max().unwrap();
        let dry = dry_runs.into_iter().min_by_key(|d| d.calls).unwrap();
        assert!(dry.calls > 0, "{}: no system call counted", w.name);
        let mut unreached = 0;
        let mut refused = 0;
        for onwards in [false, true] {
            for n in 1..=dry.calls {
                // A threaded run may make a call or two fewer than the dry run: one
                // that did not reach call n is tried again, up to three times.
                let mut result = run_child(w, n, onwards);
                for _ in 0..3 {
                    match &result {
                        Ok(r) if r.injected == 0 => result = run_child(w, n, onwards),
                        _ => break,
                    }
                }
                match result {
                    Ok(r) if r.injected == 0 => {
                        assert!(r.calls < n, "{}: call {n} made but not refused", w.name);
                        unreached += 1;
                    }
                    Ok(r) if r.mapped > most_mapped => failures.push(format!(
                        "{} with failure {} call {n} ({}): {} bytes mapped at the end, {} without faults (leak)",
                        w.name,
                        if onwards { "from" } else { "at" },
                        r.kind,
                        r.mapped,
                        most_mapped
                    )),
                    Ok(r) => {
                        tried += 1;
                        refused += r.refused;
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        let varied = if most_calls > dry.calls {
            format!(
                ", {} to {most_calls} calls in the runs without faults",
                dry.calls
            )
        } else {
            String::new()
        };
        let missed = if unreached > 0 {
            format!(", {unreached} points not reached (fewer calls in that run)")
        } else {
            String::new()
        };
        println!(
            "faults: {:<12} {:>4} calls ({}), each refused once and from then on; {refused} allocations refused{varied}{missed}",
            w.name,
            dry.calls,
            dry.by_kind.trim(),
        );
        let points = dry.calls * 2;
        assert!(
            unreached * 10 <= points,
            "{}: {unreached} of {points} failure points not reached: the workload's calls vary too much",
            w.name,
        );
    }
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    let secs = start.elapsed().as_secs_f64();
    if failures.is_empty() {
        println!(
            "faults: {tried} failure points tried over {workloads} workloads in {secs:.0} s, all handled"
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "faults: {} of {} failure points FAILED over {workloads} workloads",
            failures.len(),
            tried + failures.len() as u64
        );
        ExitCode::FAILURE
    }
}
