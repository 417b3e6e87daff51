//! `oxalloc-bench`: runs every workload under every allocator, each run in its own child
//! process, and reports wall time, throughput, peak RSS and minor page faults as ratios to
//! the best peer.
//!
//! ```text
//! cargo run --release -p oxalloc-bench -- [--quick] [--only W,..] [--alloc A,..] [--threads 1,2,4,8]
//! cargo run --release -p oxalloc-bench -- instructions [--alloc A,..]
//! cargo run --release -p oxalloc-bench -- list
//! ```
#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use oxalloc_bench::allocators::{self, Allocator, HARDENED_SET, KNOWN};
use oxalloc_bench::report::{self, AllocInfo, Record, Results, Run};
use oxalloc_bench::suite::{self, Ctx, Kind};
use oxalloc_bench::workloads::{self, WorkOutput};
use oxalloc_bench::{instructions, machine, stats, svg, targets};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "oxalloc-bench",
    about = "Benchmark oxalloc against glibc, mimalloc, jemalloc and tcmalloc: every workload under every allocator, one process per run.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Short runs, 1 run per cell (under 2 minutes on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Only these workloads or rows (e.g. `larson,xmalloc/t2`); see `list`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these allocators (oxalloc, glibc, mimalloc, jemalloc, tcmalloc; opt-in:
    /// hardened, glibc-check, tcmalloc-debug).
    #[arg(long, value_delimiter = ',')]
    alloc: Vec<String>,
    /// The hardened comparison: hardened, glibc-check, tcmalloc-debug and mimalloc (plus
    /// any --alloc), with every allocator's geometric means against --vs.
    #[arg(long)]
    hardened: bool,
    /// Also print each allocator's geometric-mean time and RSS as a ratio to this one
    /// (same rows) [default: mimalloc with --hardened].
    #[arg(long)]
    vs: Option<String>,
    /// Thread counts for the threaded workloads.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    threads: Vec<usize>,
    /// Runs per cell; the median is reported [default: 3, 1 with --quick].
    #[arg(long)]
    runs: Option<usize>,
    /// Work scale (1.0 = full) [default: 1.0, 0.4 with --quick].
    #[arg(long)]
    scale: Option<f64>,
    /// Where latest.{csv,json,svg} go [default: <workspace>/bench-results].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the tables only; write no files.
    #[arg(long)]
    no_write: bool,
    /// Kill a run after this many seconds [default: 300, 30 with --quick].
    #[arg(long)]
    timeout: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List the workloads and the allocators found.
    List,
    /// Instructions per malloc(32)/free pair under each allocator (perf or callgrind).
    Instructions {
        /// Only these allocators.
        #[arg(long, value_delimiter = ',')]
        alloc: Vec<String>,
        /// Pairs per counted run.
        #[arg(long, default_value_t = 1_000_000)]
        pairs: u64,
        /// Where instructions.csv goes [default: <workspace>/bench-results].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write no file.
        #[arg(long)]
        no_write: bool,
    },
    /// Run one workload in this process (the suite's child; not for direct use).
    #[command(hide = true)]
    Work {
        name: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        #[arg(long, default_value_t = 1_000_000)]
        pairs: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Some(Cmd::Work {
            name,
            threads,
            scale,
            pairs,
        }) => match workloads::run(&name, threads, scale, pairs) {
            Some(out) => {
                println!("{}", out.to_line());
                0
            }
            None => {
                eprintln!(
                    "unknown workload {name:?}; known: {}",
                    workloads::NAMES.join(", ")
                );
                2
            }
        },
        Some(Cmd::List) => list(),
        Some(Cmd::Instructions {
            alloc,
            pairs,
            out,
            no_write,
        }) => count_instructions(&alloc, pairs, out, no_write),
        None => run_suite(cli.run),
    };
    std::process::exit(code);
}

/// Discovers the allocators and applies `--alloc`; `Err` for an unknown name. Without
/// `--alloc` the default run ([`KNOWN`]); opt-in allocators only when named.
fn selected_allocators(ws: Option<&Path>, only: &[String]) -> Result<Vec<Allocator>, String> {
    let mut names: Vec<&'static str> = Vec::new();
    for o in only {
        let Some(n) = allocators::all_names().find(|n| n == o) else {
            return Err(format!(
                "unknown allocator {o:?}; known: {}",
                allocators::all_names().collect::<Vec<_>>().join(", ")
            ));
        };
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if names.is_empty() {
        names.extend(KNOWN);
    }
    Ok(allocators::discover_names(ws, &names))
}

fn describe(allocs: &[Allocator]) {
    for a in allocs {
        match (&a.lib, &a.missing) {
            (_, Some(why)) => eprintln!("  {:<9} MISSING: {why}", a.name),
            (Some(lib), None) => eprintln!("  {:<9} LD_PRELOAD={}", a.name, lib.display()),
            (None, None) => eprintln!("  {:<9} (the process default, no preload)", a.name),
        }
        for (k, v) in &a.env {
            eprintln!("  {:<9} {k}={v}", "");
        }
    }
}

fn list() -> i32 {
    println!("workloads:");
    for w in suite::WORKLOADS {
        println!("  {:<16} {}", w.name, w.about);
    }
    println!("allocators:");
    let ws = suite::workspace_root();
    let all: Vec<&'static str> = allocators::all_names().collect();
    for a in allocators::discover_names(ws.as_deref(), &all) {
        let what = match (&a.lib, &a.missing) {
            (_, Some(why)) => format!("MISSING: {why}"),
            (Some(l), None) => l.display().to_string(),
            (None, None) => "process default".into(),
        };
        let opt = if KNOWN.contains(&a.name) {
            ""
        } else {
            " (opt-in)"
        };
        let env: String = a.env.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        println!("  {:<14} {what}{env}{opt}", a.name);
    }
    0
}

/// `scripts/alloc_heavy.py`, found from the workspace at run time (the tree may have moved
/// since the build), else at its build-time path.
fn python_script(ws: Option<&Path>) -> PathBuf {
    const REL: &str = "crates/oxalloc-bench/scripts/alloc_heavy.py";
    ws.map(|w| w.join(REL))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/alloc_heavy.py"))
}

fn out_dir(out: Option<PathBuf>, ws: Option<&Path>) -> PathBuf {
    out.unwrap_or_else(|| {
        ws.map_or_else(
            || PathBuf::from("bench-results"),
            |w| w.join("bench-results"),
        )
    })
}

/// Builds the `oxbench-rust-*` binaries when `cargo run` built only this one.
fn ensure_rust_binaries(bin_dir: &Path) {
    let mut want = vec!["oxbench-rust-system"];
    if cfg!(feature = "rust-peers") {
        want.extend(["oxbench-rust-mimalloc", "oxbench-rust-jemalloc"]);
    }
    if cfg!(feature = "oxalloc") {
        want.push("oxbench-rust-oxalloc");
    }
    if want.iter().all(|b| bin_dir.join(b).is_file()) {
        return;
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!("note: Rust-native binaries missing in {}; build them with `cargo build --release -p oxalloc-bench --bins`", bin_dir.display());
        return;
    };
    let mut c = std::process::Command::new(cargo);
    c.args([
        "build",
        "-p",
        "oxalloc-bench",
        "--bins",
        "--no-default-features",
    ]);
    if bin_dir.ends_with("release") {
        c.arg("--release");
    }
    let feats: Vec<&str> = [
        ("rust-peers", cfg!(feature = "rust-peers")),
        ("oxalloc", cfg!(feature = "oxalloc")),
    ]
    .iter()
    .filter(|f| f.1)
    .map(|f| f.0)
    .collect();
    if !feats.is_empty() {
        c.args(["--features", &feats.join(",")]);
    }
    eprintln!("building the Rust-native workload binaries: {c:?}");
    if !c.status().is_ok_and(|s| s.success()) {
        eprintln!("warning: building them failed; Rust-native rows will be skipped");
    }
}

fn run_suite(mut args: RunArgs) -> i32 {
    let ws = suite::workspace_root();
    if args.hardened {
        let extra = std::mem::take(&mut args.alloc);
        args.alloc = HARDENED_SET.iter().map(|s| s.to_string()).collect();
        args.alloc.extend(extra);
        args.vs.get_or_insert_with(|| "mimalloc".into());
    }
    let allocs = match selected_allocators(ws.as_deref(), &args.alloc) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let threads: Vec<usize> = args.threads.iter().copied().filter(|&t| t > 0).collect();
    let cases = suite::plan(if threads.is_empty() { &[1] } else { &threads }, &args.only);
    if cases.is_empty() {
        eprintln!(
            "error: no workload matches --only {:?}; see `oxalloc-bench list`",
            args.only
        );
        return 2;
    }
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let scale = args.scale.unwrap_or(if args.quick { 0.4 } else { 1.0 });
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("oxalloc-bench"));
    let bin_dir = exe
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if cases.iter().any(|c| c.kind == Kind::Rust) {
        ensure_rust_binaries(&bin_dir);
    }
    let musl_bin_dir = suite::musl_bin_dir(&bin_dir);
    let mut cases = cases;
    if args.only.is_empty() {
        // Not asked for by name: the rows are left out rather than printed skipped when the
        // binaries are not built (that needs the musl target and musl-gcc) or oxalloc is
        // not in the run (the hardened comparison: only the crates have static builds).
        if !musl_bin_dir
            .join(allocators::rust_binary_name("oxalloc"))
            .is_file()
        {
            eprintln!(
                "note: the static musl rows are left out: no binaries in {} ({})",
                musl_bin_dir.display(),
                suite::MUSL_BUILD
            );
            cases.retain(|c| c.kind != Kind::RustMusl);
        } else if !allocs.iter().any(|a| a.name == "oxalloc") {
            cases.retain(|c| c.kind != Kind::RustMusl);
        }
    }
    let tmp = std::env::temp_dir().join(format!("oxalloc-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        eprintln!("error: creating {}: {e}", tmp.display());
        return 1;
    }
    let ctx = Ctx {
        exe: exe.clone(),
        bin_dir,
        musl_bin_dir,
        scale,
        timeout: Duration::from_secs(args.timeout.unwrap_or(if args.quick { 30 } else { 300 })),
        python: suite::find_program("python3", &["/usr/bin/python3", "/usr/local/bin/python3"]),
        python_script: python_script(ws.as_deref()),
        sqlite: suite::find_program("sqlite3", &["/usr/bin/sqlite3"]),
        tmp: tmp.clone(),
    };
    let machine = machine::collect(ws.as_deref());
    let live: Vec<&Allocator> = allocs.iter().filter(|a| a.available()).collect();
    eprintln!(
        "oxalloc-bench: {} rows x {} allocators x {runs} run(s), scale {scale}, threads {threads:?}; {} cores, {}",
        cases.len(),
        live.len(),
        machine.nproc,
        machine.cpu_model
    );
    describe(&allocs);

    let mut records: Vec<Record> = Vec::new();
    let total = cases.len() * live.len() * runs;
    let mut done = 0;
    let started = std::time::Instant::now();
    for case in &cases {
        let mut row: Vec<Record> = live
            .iter()
            .map(|a| Record {
                case: case.id.clone(),
                workload: case.workload.into(),
                threads: case.threads,
                allocator: a.name.into(),
                ..Record::default()
            })
            .collect();
        let prepared: Vec<Result<suite::Prepared, String>> =
            live.iter().map(|a| suite::prepare(&ctx, case, a)).collect();
        for (rec, p) in row.iter_mut().zip(&prepared) {
            match p {
                Ok(p) => rec.mode = p.mode.into(),
                Err(e) => rec.error = Some(format!("skipped: {e}")),
            }
        }
        // Allocators interleave within each repetition, so drift hits them alike.
        for rep in 0..runs {
            for (rec, p) in row.iter_mut().zip(&prepared) {
                done += 1;
                let Ok(p) = p else { continue };
                if let Some(f) = &p.remove_before {
                    let _ = std::fs::remove_file(f);
                }
                let mut line = format!(
                    "[{done:>4}/{total}] {:<18} {:<9} run {}/{runs}  ",
                    case.id,
                    rec.allocator,
                    rep + 1
                );
                match oxalloc_bench::runner::run(&p.job) {
                    Ok(o) if o.success() => {
                        let w = WorkOutput::parse(&o.stdout);
                        let tp = if case.throughput {
                            w.as_ref()
                                .and_then(|w| w.ops.map(|ops| ops / w.secs.max(1e-9) / 1e6))
                        } else {
                            None
                        };
                        let r = Run {
                            wall_s: o.wall_s,
                            peak_rss_mib: o.max_rss_kib as f64 / 1024.0,
                            user_s: o.user_s,
                            sys_s: o.sys_s,
                            minor_faults: o.minor_faults as f64,
                            throughput_mops: tp,
                            extra: w.map(|w| w.extra).unwrap_or_default(),
                        };
                        line += &format!(
                            "{:>8.3} s {:>9.1} MiB {:>9} faults",
                            r.wall_s,
                            r.peak_rss_mib,
                            report::kilo(r.minor_faults)
                        );
                        if let Some(t) = tp {
                            line += &format!(" {t:>9.3} Mops/s");
                        }
                        rec.runs.push(r);
                    }
                    Ok(o) => {
                        line += &format!("FAILED: {}", o.failure());
                        rec.error = Some(o.failure());
                    }
                    Err(e) => {
                        line += &format!("FAILED to start: {e}");
                        rec.error = Some(format!("spawn: {e}"));
                    }
                }
                eprintln!("{line}");
            }
        }
        for mut rec in row {
            rec.summarize_runs();
            if !rec.runs.is_empty()
                && rec
                    .error
                    .as_deref()
                    .is_some_and(|e| !e.starts_with("skipped"))
            {
                rec.error = Some(format!(
                    "{} of {runs} runs failed: {}",
                    runs - rec.runs.len(),
                    rec.error.unwrap_or_default()
                ));
            }
            records.push(rec);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    report::fill_ratios(&mut records);
    let names: Vec<String> = live.iter().map(|a| a.name.to_string()).collect();
    let summary = report::summarize(&records, &names);
    let targets = targets::check(&records, &summary);
    let results = Results {
        machine,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        runs,
        scale,
        allocators: allocs
            .iter()
            .map(|a| AllocInfo {
                name: a.name.into(),
                lib: a.lib.as_ref().map(|l| {
                    l.canonicalize()
                        .unwrap_or_else(|_| l.clone())
                        .display()
                        .to_string()
                }),
                missing: a.missing.clone(),
            })
            .collect(),
        records,
        summary,
        targets,
    };
    let m = &results.machine;
    println!(
        "oxalloc-bench results: {} cores, {}, kernel {}, commit {}{}; median of {runs} run(s), scale {scale}, {:.0} s",
        m.nproc,
        m.cpu_model,
        m.kernel,
        &m.git_commit[..m.git_commit.len().min(12)],
        if m.git_dirty { " (dirty)" } else { "" },
        started.elapsed().as_secs_f64()
    );
    for a in &results.allocators {
        if let Some(why) = &a.missing {
            println!("MISSING {}: {why}", a.name);
        }
    }
    print!("{}", report::render(&results));
    print!("{}", targets::render(&results.targets));
    if let Some(base) = &args.vs {
        print!("{}", vs_summary(&results.records, &names, base));
    }
    if !args.no_write {
        let dir = out_dir(args.out, ws.as_deref());
        if let Err(e) = write_results(&dir, &results) {
            eprintln!("error: writing results to {}: {e}", dir.display());
            return 1;
        }
        println!(
            "\nwrote {0}/latest.csv, {0}/latest.json, {0}/latest.svg",
            dir.display()
        );
    }
    0
}

/// Each allocator's geometric-mean wall time and peak RSS over the rows it shares with
/// `base`, as a ratio to `base` (time leaves out the same rows as the main summary).
fn vs_summary(records: &[Record], allocs: &[String], base: &str) -> String {
    let mut s =
        format!("\nGeometric means against {base} (rows both completed; lower is better)\n");
    if !allocs.iter().any(|a| a == base) {
        return s + &format!("  {base} is not in this run\n");
    }
    s += &format!(
        "  {:<15} {:>7} {:>7} {:>5}\n",
        "allocator", "time", "rss", "rows"
    );
    for a in allocs {
        let (mut t, mut m) = (Vec::new(), Vec::new());
        for r in records.iter().filter(|r| &r.allocator == a) {
            let Some(b) = records
                .iter()
                .find(|x| x.case == r.case && x.allocator == base)
            else {
                continue;
            };
            if let (Some(x), Some(y)) = (r.wall_s, b.wall_s) {
                if !report::TIME_SUMMARY_EXCLUDED.contains(&r.workload.as_str()) {
                    t.push(x / y);
                }
            }
            if let (Some(x), Some(y)) = (r.peak_rss_mib, b.peak_rss_mib) {
                m.push(x / y);
            }
        }
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}x"));
        s += &format!(
            "  {a:<15} {:>7} {:>7} {:>5}\n",
            f(stats::geomean(&t)),
            f(stats::geomean(&m)),
            t.len()
        );
    }
    s
}

fn write_results(dir: &Path, res: &Results) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("latest.csv"), report::to_csv(&res.records))?;
    let json = serde_json::to_string_pretty(res).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("latest.json"), json + "\n")?;
    std::fs::write(dir.join("latest.svg"), svg::render(res))
}

fn count_instructions(only: &[String], pairs: u64, out: Option<PathBuf>, no_write: bool) -> i32 {
    let ws = suite::workspace_root();
    let allocs = match selected_allocators(ws.as_deref(), only) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Some(counter) = instructions::detect() else {
        eprintln!("error: neither `perf stat -e instructions:u` nor valgrind works here (apt-get install valgrind)");
        return 1;
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("oxalloc-bench"));
    eprintln!("counting with {counter:?}, {pairs} malloc(32)/free pairs minus a 0-pair baseline");
    describe(&allocs);
    let mut rows: Vec<(String, Result<f64, String>)> = Vec::new();
    for a in &allocs {
        let r = match &a.missing {
            Some(why) => Err(format!("missing: {why}")),
            None if !a.env.is_empty() => Err("needs environment variables; not counted".into()),
            None => instructions::per_pair(counter, &exe, a.lib.as_deref(), pairs),
        };
        eprintln!(
            "  {:<9} {}",
            a.name,
            r.as_ref()
                .map_or_else(Clone::clone, |v| format!("{v:.1} instructions/pair"))
        );
        rows.push((a.name.to_string(), r));
    }
    let row: Vec<(&str, Option<f64>)> = rows
        .iter()
        .map(|(a, r)| (a.as_str(), r.as_ref().ok().copied()))
        .collect();
    let ratios = stats::row_ratios(&row, stats::Better::Lower);
    let mut csv =
        String::from("allocator,instructions_per_pair,ratio_to_best_peer,counter,pairs,error\n");
    println!("Instructions per malloc(32)/free pair ({counter:?}, {pairs} pairs; ratio to the best peer)");
    for ((a, r), ratio) in rows.iter().zip(&ratios) {
        match (r, ratio) {
            (Ok(v), Some(q)) => println!("  {a:<9} {v:>8.1}  {q:>5.2}x"),
            (Ok(v), None) => println!("  {a:<9} {v:>8.1}"),
            (Err(e), _) => println!("  {a:<9}        -  {e}"),
        }
        csv += &format!(
            "{a},{},{},{counter:?},{pairs},{}\n",
            r.as_ref().map_or(String::new(), |v| format!("{v:.2}")),
            ratio.map_or(String::new(), |q| format!("{q:.4}")),
            r.as_ref()
                .err()
                .map_or(String::new(), |e| e.replace(',', ";"))
        );
    }
    if !no_write {
        let dir = out_dir(out, ws.as_deref());
        let path = dir.join("instructions.csv");
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, csv)) {
            eprintln!("error: writing {}: {e}", path.display());
            return 1;
        }
        println!("wrote {}", path.display());
    }
    let _ = std::io::stdout().flush();
    0
}
