//! The suite's plan: which workloads exist, which cases (workload x thread count) a run
//! has, and how a case under an allocator becomes a [`Job`].

use crate::allocators::{rust_binary_name, Allocator};
use crate::rng::Rng;
use crate::runner::Job;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a workload is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// In the suite binary itself (`oxalloc-bench work NAME`), under `LD_PRELOAD`.
    Work,
    /// `python3` running `scripts/alloc_heavy.py`, under `LD_PRELOAD`.
    Python,
    /// `sqlite3` on a generated database, under `LD_PRELOAD`.
    Sqlite,
    /// A `#[global_allocator]` binary (`oxbench-rust-*`).
    Rust,
    /// The same binaries built static for `x86_64-unknown-linux-musl` (Alpine images,
    /// static Rust tools): oxalloc, the mimalloc and jemalloc crates, and musl's own
    /// malloc in the glibc column. `LD_PRELOAD` does not reach a static binary, so the
    /// other allocators have no cell.
    RustMusl,
}

/// How a workload uses the thread counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One case per thread count.
    Each,
    /// One case, at the largest thread count.
    Max,
    /// Single-threaded (or a fixed shape of its own, like one producer and one consumer).
    One,
    /// One case per listed thread count, whatever `--threads` says: the shape is part of
    /// the workload.
    Fixed(&'static [usize]),
}

/// A workload of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Name, as in `--only`.
    pub name: &'static str,
    /// How it runs.
    pub kind: Kind,
    /// How it uses thread counts.
    pub threads: Threads,
    /// Whether its output has a meaningful throughput.
    pub throughput: bool,
    /// What it models, one line.
    pub about: &'static str,
}

const fn w(
    name: &'static str,
    kind: Kind,
    threads: Threads,
    throughput: bool,
    about: &'static str,
) -> Workload {
    Workload {
        name,
        kind,
        threads,
        throughput,
        about,
    }
}

/// Every workload, in table order.
pub const WORKLOADS: [Workload; 28] = [
    w(
        "larson",
        Kind::Work,
        Threads::Each,
        true,
        "server: per-thread working sets, random 16-1024 B, blocks migrate between threads",
    ),
    w(
        "xmalloc",
        Kind::Work,
        Threads::Each,
        true,
        "producer/consumer: allocated on T producers, freed on T consumers",
    ),
    w(
        "cache-thrash",
        Kind::Work,
        Threads::Each,
        false,
        "active false sharing: each thread allocates 8 B objects and writes them hard",
    ),
    w(
        "cache-scratch",
        Kind::Work,
        Threads::Each,
        false,
        "passive false sharing: objects handed out by one thread, freed and reused by others",
    ),
    w(
        "power-law",
        Kind::Work,
        Threads::Max,
        true,
        "Pareto sizes 16 B-1 MiB, 90% short-lived, 10% long-lived, cross-thread transfers",
    ),
    w(
        "realloc",
        Kind::Work,
        Threads::One,
        true,
        "realloc growth of 1000 string builders (exact) and vectors (doubling)",
    ),
    w(
        "large",
        Kind::Work,
        Threads::One,
        false,
        "64 KiB-32 MiB blocks allocated, every page touched, freed",
    ),
    w(
        "burst-idle",
        Kind::Work,
        Threads::One,
        false,
        "120 MiB of small blocks, all freed, 1 s idle: RSS after vs before",
    ),
    w(
        "realloc-threads",
        Kind::Work,
        Threads::Fixed(&[2]),
        true,
        "2 threads grow 256 buffers each from 1 B to 64 KiB by 1-25% reallocs, free all, repeat",
    ),
    w(
        "calloc-churn",
        Kind::Work,
        Threads::Fixed(&[4]),
        true,
        "threads spawned afresh each round: calloc 16-512 B, rare 100x-10000x, windows handed on",
    ),
    w(
        "table-replace",
        Kind::Work,
        Threads::Fixed(&[1, 2]),
        true,
        "2^18 live blocks a thread, each step replaces a random one (8-1024 B, all written)",
    ),
    w(
        "xchurn",
        Kind::Work,
        Threads::Fixed(&[2]),
        true,
        "16 B-16 KiB churn, a quarter of the blocks freed by the other thread",
    ),
    w(
        "prodcons",
        Kind::Work,
        Threads::One,
        true,
        "one thread allocates 16-256 B, another frees, through a bounded SPSC ring",
    ),
    w(
        "shared-slots",
        Kind::Work,
        Threads::Fixed(&[8]),
        true,
        "8 threads replace 16-512 B blocks in shared tables: nearly every free is another's",
    ),
    w(
        "thread-churn",
        Kind::Work,
        Threads::Fixed(&[8]),
        true,
        "rounds of 8 short-lived threads, each leaving 16-4016 B blocks in a shared table",
    ),
    w(
        "batch-ring",
        Kind::Work,
        Threads::Fixed(&[4]),
        true,
        "4 threads in a ring: batches of one new size a round, half freed, half passed on",
    ),
    w(
        "random-sizes",
        Kind::Work,
        Threads::Fixed(&[2]),
        true,
        "1024 live blocks a thread, each step replaces a random one (1 B-256 KiB, uniform)",
    ),
    w(
        "lifetimes",
        Kind::Work,
        Threads::One,
        true,
        "32 short-lived slots and 50K long-lived blocks (1 step in 100), 8-520 B, random",
    ),
    w(
        "huge-table",
        Kind::Work,
        Threads::One,
        true,
        "2000 live blocks of 1-4 MiB, each step replaces a random one (4 KiB written)",
    ),
    w(
        "python",
        Kind::Python,
        Threads::One,
        false,
        "python3 (PYTHONMALLOC=malloc) building dicts, strings, JSON, sorting",
    ),
    w(
        "sqlite",
        Kind::Sqlite,
        Threads::One,
        false,
        "sqlite3: 100k-row inserts, indexes, joins, group-by, updates",
    ),
    w(
        "rust-btree",
        Kind::Rust,
        Threads::One,
        true,
        "BTreeMap<String, Vec<u8>> build, look up, remove, drop",
    ),
    w(
        "rust-hashmap",
        Kind::Rust,
        Threads::One,
        true,
        "HashMap<u64, String> insert/remove churn, drop",
    ),
    w(
        "rust-boxtree",
        Kind::Rust,
        Threads::One,
        true,
        "Box binary trees built and dropped (binary-trees)",
    ),
    w(
        "musl-btree",
        Kind::RustMusl,
        Threads::One,
        true,
        "rust-btree built static for musl (glibc column: musl's own malloc)",
    ),
    w(
        "musl-hashmap",
        Kind::RustMusl,
        Threads::One,
        true,
        "rust-hashmap built static for musl (glibc column: musl's own malloc)",
    ),
    w(
        "musl-boxtree",
        Kind::RustMusl,
        Threads::One,
        true,
        "rust-boxtree built static for musl (glibc column: musl's own malloc)",
    ),
    w(
        "pairs",
        Kind::Work,
        Threads::One,
        true,
        "malloc(32)/free pairs on one thread (for `instructions`)",
    ),
];

/// Workloads run by default (all but `pairs`, which `instructions` uses).
pub fn default_workloads() -> impl Iterator<Item = &'static Workload> {
    WORKLOADS.iter().filter(|w| w.name != "pairs")
}

/// One row of the results: a workload at a thread count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Row label, e.g. `larson/t4`.
    pub id: String,
    /// The workload.
    pub workload: &'static str,
    /// Threads (producer/consumer pairs for xmalloc).
    pub threads: usize,
    /// How it runs.
    pub kind: Kind,
    /// Whether the row has a throughput.
    pub throughput: bool,
}

/// The cases for `threads` and the `only` filter (workload names or case ids; empty = all).
pub fn plan(threads: &[usize], only: &[String]) -> Vec<Case> {
    let max = threads.iter().copied().max().unwrap_or(1);
    let mut cases = Vec::new();
    for w in WORKLOADS.iter() {
        let counts: Vec<usize> = match w.threads {
            Threads::Each => threads.to_vec(),
            Threads::Max => vec![max],
            Threads::One => vec![1],
            Threads::Fixed(counts) => counts.to_vec(),
        };
        for t in counts {
            let id = match w.threads {
                Threads::One => w.name.to_string(),
                _ => format!("{}/t{t}", w.name),
            };
            let wanted = if only.is_empty() {
                w.name != "pairs"
            } else {
                only.iter().any(|o| o == w.name || *o == id)
            };
            if wanted {
                cases.push(Case {
                    id,
                    workload: w.name,
                    threads: t,
                    kind: w.kind,
                    throughput: w.throughput,
                });
            }
        }
    }
    cases
}

/// What the jobs of one suite run share.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The suite executable (the C workload child).
    pub exe: PathBuf,
    /// Where the `oxbench-rust-*` binaries are.
    pub bin_dir: PathBuf,
    /// Where their static musl builds are ([`musl_bin_dir`]).
    pub musl_bin_dir: PathBuf,
    /// Work scale (1.0 full).
    pub scale: f64,
    /// Per-run timeout.
    pub timeout: Duration,
    /// `python3`, if found.
    pub python: Option<PathBuf>,
    /// The Python workload script.
    pub python_script: PathBuf,
    /// `sqlite3`, if found.
    pub sqlite: Option<PathBuf>,
    /// Scratch directory (SQL script, databases).
    pub tmp: PathBuf,
}

/// A job ready to run, and how the allocator was put in.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The job.
    pub job: Job,
    /// `preload`, `default` (glibc) or `global_allocator`.
    pub mode: &'static str,
    /// A file to delete before each run (the sqlite database).
    pub remove_before: Option<PathBuf>,
}

/// Builds the job for `case` under `alloc`, or says why it cannot run.
pub fn prepare(ctx: &Ctx, case: &Case, alloc: &Allocator) -> Result<Prepared, String> {
    if let Some(why) = &alloc.missing {
        return Err(why.clone());
    }
    let mode = if alloc.lib.is_some() {
        "preload"
    } else {
        "default"
    };
    let mut p = Prepared {
        job: Job {
            preload: alloc.lib.clone(),
            timeout: ctx.timeout,
            ..Job::default()
        },
        mode,
        remove_before: None,
    };
    let scale = format!("{}", ctx.scale);
    match case.kind {
        Kind::Work => {
            p.job.program = ctx.exe.clone();
            p.job.args = [
                "work",
                case.workload,
                "--threads",
                &case.threads.to_string(),
                "--scale",
                &scale,
            ]
            .map(OsString::from)
            .to_vec();
        }
        Kind::Python => {
            p.job.program = ctx
                .python
                .clone()
                .ok_or("python3 not found (apt-get install python3)")?;
            p.job.args = vec![
                "-S".into(),
                "-B".into(),
                ctx.python_script.clone().into(),
                scale.into(),
            ];
            p.job.env = vec![
                ("PYTHONMALLOC".into(), "malloc".into()),
                ("PYTHONHASHSEED".into(), "0".into()),
            ];
        }
        Kind::Sqlite => {
            p.job.program = ctx
                .sqlite
                .clone()
                .ok_or("sqlite3 not found (apt-get install sqlite3)")?;
            let sql = ctx
                .tmp
                .join(format!("sqlite-{}.sql", sqlite_rows(ctx.scale)));
            if !sql.is_file() {
                // Streamed to the file: a ~25 MB String here would raise this process's RSS,
                // and a child starts with its parent's RSS as its peak (see `runner`).
                std::fs::File::create(&sql)
                    .map(std::io::BufWriter::new)
                    .and_then(|mut f| {
                        write_sqlite_script(&mut f, sqlite_rows(ctx.scale)).and_then(|_| f.flush())
                    })
                    .map_err(|e| format!("writing {}: {e}", sql.display()))?;
            }
            let db = ctx.tmp.join(format!("bench-{}.db", alloc.name));
            p.job.args = vec![db.clone().into()];
            p.job.stdin = Some(sql);
            p.remove_before = Some(db);
        }
        Kind::Rust => {
            let name = case.workload.trim_start_matches("rust-");
            let own = ctx.bin_dir.join(rust_binary_name(alloc.name));
            let system = ctx.bin_dir.join(rust_binary_name("glibc"));
            // An allocator with a crate binary of its own (`rust_binary_name` names the
            // system binary for the others) runs it, if it was built.
            let crate_bin = own != system && own.is_file();
            p.job.program = if crate_bin { own } else { system };
            if crate_bin {
                p.job.preload = None;
                p.mode = "global_allocator";
            }
            if !p.job.program.is_file() {
                return Err(format!(
                    "{} not built (cargo build --release -p oxalloc-bench --bins)",
                    p.job.program.display()
                ));
            }
            p.job.args = vec![name.into(), scale.into()];
        }
        Kind::RustMusl => {
            let name = case.workload.trim_start_matches("musl-");
            p.job.program = match alloc.name {
                "oxalloc" | "oxalloc-thp" | "mimalloc" | "jemalloc" | "glibc" => {
                    ctx.musl_bin_dir.join(rust_binary_name(alloc.name))
                }
                other => {
                    return Err(format!(
                    "no static musl build with {other} (LD_PRELOAD does not reach a static binary)"
                ))
                }
            };
            if !p.job.program.is_file() {
                return Err(format!(
                    "{} not built ({MUSL_BUILD})",
                    p.job.program.display()
                ));
            }
            p.job.preload = None;
            p.mode = if alloc.name == "glibc" {
                "musl_malloc"
            } else {
                "global_allocator"
            };
            p.job.args = vec![name.into(), scale.into()];
        }
    }
    p.job
        .env
        .extend(alloc.env.iter().map(|&(k, v)| (k.into(), v.into())));
    Ok(p)
}

/// The Rust target of the static musl rows.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// How the static musl binaries are built (musl-gcc compiles the C of the mimalloc and
/// jemalloc crates).
pub const MUSL_BUILD: &str =
    "cargo build --release -p oxalloc-bench --bins --target x86_64-unknown-linux-musl";

/// Where cargo puts the musl builds of the binaries in `bin_dir` (`target/release` ->
/// `target/x86_64-unknown-linux-musl/release`).
pub fn musl_bin_dir(bin_dir: &Path) -> PathBuf {
    match (bin_dir.parent(), bin_dir.file_name()) {
        (Some(target), Some(profile)) => target.join(MUSL_TARGET).join(profile),
        _ => bin_dir.join(MUSL_TARGET),
    }
}

/// Rows inserted by the sqlite workload at `scale` (100k at 1.0).
pub fn sqlite_rows(scale: f64) -> usize {
    ((100_000.0 * scale) as usize).max(2000)
}

/// The sqlite workload: a deterministic SQL script over `rows` users and `2 * rows` orders.
pub fn write_sqlite_script(s: &mut impl Write, rows: usize) -> std::io::Result<()> {
    const CITIES: [&str; 8] = [
        "Oslo", "Lima", "Pune", "Kyiv", "Graz", "Accra", "Quito", "Hanoi",
    ];
    let mut rng = Rng::new(0x5917E);
    s.write_all(
        "PRAGMA journal_mode=OFF;\nPRAGMA synchronous=OFF;\n\
         CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INTEGER, city TEXT, bio TEXT);\n\
         CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL, item TEXT);\nBEGIN;\n"
            .as_bytes(),
    )?;
    let word = |rng: &mut Rng, lo: usize, hi: usize| -> String {
        let len = rng.range(lo, hi);
        (0..len)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect()
    };
    for id in 1..=rows {
        let name = word(&mut rng, 4, 12);
        let bio = word(&mut rng, 10, 200);
        writeln!(
            s,
            "INSERT INTO users VALUES({id},'{name}','{name}{id}@example.org',{},'{}','{bio}');",
            rng.range(18, 90),
            CITIES[rng.below(CITIES.len())]
        )?;
    }
    for id in 1..=2 * rows {
        let item = word(&mut rng, 3, 30);
        writeln!(
            s,
            "INSERT INTO orders VALUES({id},{},{}.{:02},'{item}');",
            rng.range(1, rows),
            rng.below(500),
            rng.below(100)
        )?;
    }
    s.write_all(
        "COMMIT;\n\
         CREATE INDEX users_email ON users(email);\n\
         CREATE INDEX users_city_age ON users(city, age);\n\
         CREATE INDEX orders_user ON orders(user_id);\n\
         SELECT city, count(*), avg(age) FROM users GROUP BY city ORDER BY 2 DESC;\n\
         SELECT u.name, sum(o.amount) AS total FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id ORDER BY total DESC LIMIT 20;\n\
         SELECT count(*) FROM users WHERE bio LIKE '%abc%';\n\
         SELECT name, email FROM users ORDER BY email LIMIT 10 OFFSET 5000;\n\
         SELECT item, count(*) FROM orders GROUP BY item ORDER BY 2 DESC LIMIT 10;\n\
         UPDATE users SET bio = bio || name WHERE age > 50;\n\
         DELETE FROM orders WHERE amount < 50;\n\
         SELECT group_concat(name, ',') FROM (SELECT name FROM users ORDER BY bio LIMIT 20000);\n"
            .as_bytes(),
    )
}

/// [`write_sqlite_script`] into a String (for tests).
pub fn sqlite_script(rows: usize) -> String {
    let mut v = Vec::new();
    let _ = write_sqlite_script(&mut v, rows);
    String::from_utf8_lossy(&v).into_owned()
}

/// Finds an executable: the first existing path of `preferred`, else `name` on `$PATH`.
pub fn find_program(name: &str, preferred: &[&str]) -> Option<PathBuf> {
    preferred
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// The workspace root: the compile-time manifest's grandparent if it still exists, else the
/// first ancestor of the current directory with a `[workspace]` Cargo.toml.
pub fn workspace_root() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("Cargo.toml").is_file() {
        return built.canonicalize().ok();
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_expands_thread_counts_and_filters() {
        let all = plan(&[1, 2, 4, 8], &[]);
        assert!(all.iter().any(|c| c.id == "larson/t8"));
        assert!(all.iter().any(|c| c.id == "power-law/t8"));
        assert!(!all.iter().any(|c| c.id == "power-law/t1"));
        assert!(!all.iter().any(|c| c.workload == "pairs"));
        let some = plan(
            &[1, 2],
            &["larson".into(), "xmalloc/t2".into(), "realloc".into()],
        );
        let ids: Vec<&str> = some.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["larson/t1", "larson/t2", "xmalloc/t2", "realloc"]);
        // Fixed shapes keep their thread counts whatever --threads says.
        let fixed = plan(
            &[8],
            &[
                "table-replace".into(),
                "xchurn/t2".into(),
                "prodcons".into(),
            ],
        );
        let ids: Vec<&str> = fixed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "table-replace/t1",
                "table-replace/t2",
                "xchurn/t2",
                "prodcons"
            ]
        );
        assert!(all.iter().any(|c| c.id == "realloc-threads/t2"));
        assert!(all.iter().any(|c| c.id == "calloc-churn/t4"));
        assert!(all.iter().any(|c| c.id == "thread-churn/t8"));
        assert!(all.iter().any(|c| c.id == "batch-ring/t4"));
        // Every C workload of the suite is one the child knows.
        for w in WORKLOADS.iter().filter(|w| w.kind == Kind::Work) {
            assert!(crate::workloads::NAMES.contains(&w.name), "{}", w.name);
        }
    }

    #[test]
    fn musl_rows_run_the_static_binaries_or_say_why_not() {
        assert_eq!(
            musl_bin_dir(Path::new("/w/target/release")),
            Path::new("/w/target/x86_64-unknown-linux-musl/release")
        );
        let dir = std::env::temp_dir().join(format!("oxbench-musl-{}", std::process::id()));
        let musl = dir.join("musl");
        std::fs::create_dir_all(&musl).unwrap();
        std::fs::write(musl.join("oxbench-rust-oxalloc"), b"").unwrap();
        let ctx = Ctx {
            exe: dir.join("oxalloc-bench"),
            bin_dir: dir.clone(),
            musl_bin_dir: musl.clone(),
            scale: 0.5,
            timeout: Duration::from_secs(1),
            python: None,
            python_script: dir.join("x.py"),
            sqlite: None,
            tmp: dir.clone(),
        };
        let case = &plan(&[1], &["musl-hashmap".into()])[0];
        assert_eq!(case.kind, Kind::RustMusl);
        let alloc = |name, lib: Option<&str>| Allocator {
            name,
            lib: lib.map(PathBuf::from),
            missing: None,
            env: Vec::new(),
        };
        // oxalloc: the musl binary, with no preload, running the workload by its own name.
        let p = prepare(&ctx, case, &alloc("oxalloc", Some("/x/liboxalloc.so"))).unwrap();
        assert_eq!(p.job.program, musl.join("oxbench-rust-oxalloc"));
        assert_eq!(p.job.preload, None);
        assert_eq!(p.job.args, [OsString::from("hashmap"), "0.5".into()]);
        // Not built: the command that builds it.
        let e = prepare(&ctx, case, &alloc("mimalloc", Some("/x/m.so"))).unwrap_err();
        assert!(e.contains(MUSL_BUILD), "{e}");
        // A preloaded allocator has no static musl cell.
        let e = prepare(&ctx, case, &alloc("tcmalloc", Some("/x/t.so"))).unwrap_err();
        assert!(e.contains("LD_PRELOAD"), "{e}");
        // The default plan has one row per program (run_suite drops them when unbuilt).
        let rows: Vec<&str> = plan(&[1], &[])
            .into_iter()
            .filter(|c| c.kind == Kind::RustMusl)
            .map(|c| c.workload)
            .collect();
        assert_eq!(rows, ["musl-btree", "musl-hashmap", "musl-boxtree"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sqlite_script_is_deterministic() {
        let a = sqlite_script(50);
        assert_eq!(a, sqlite_script(50));
        assert_eq!(a.matches("INSERT INTO users").count(), 50);
        assert_eq!(a.matches("INSERT INTO orders").count(), 100);
    }
}
