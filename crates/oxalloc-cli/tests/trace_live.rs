//! `oxalloc trace` under the real library: the live figures follow frees while the
//! program is still running (issue 22 saw "in use" stay at its 84 MiB peak after the
//! program freed its burst, until exit, because the shared page was only refreshed by
//! allocator activity; the background purger now refreshes it too).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn in_use_falls_when_the_burst_is_freed_not_at_exit() {
    let lib = repo().join("target/release/liboxalloc.so");
    assert!(
        lib.is_file(),
        "{} missing: run `cargo build --release` first (scripts/test.sh does)",
        lib.display()
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("trace-live");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("trace.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_oxalloc"))
        .env("OXALLOC_LIB", &lib)
        .env_remove("LD_PRELOAD")
        .args(["trace", "--interval-ms", "10", "--csv"])
        .arg(&csv)
        .arg("--")
        .arg("python3")
        .arg(repo().join("examples/programs/alloc_heavy.py"))
        .output()
        .expect("run oxalloc trace (is python3 installed? scripts/setup.sh installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // t_ms, rss, in_use, mapped, cached_free; the allocator's columns are empty until
    // the library has published its page.
    let rows: Vec<(u64, u64)> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f[0].parse().ok()?, f[2].parse().ok()?))
        })
        .collect();
    let (peak_at, peak) = rows
        .iter()
        .enumerate()
        .max_by_key(|(_, r)| r.1)
        .map(|(i, r)| (i, r.1))
        .unwrap();
    assert!(peak > 64 << 20, "the 64 MiB burst is in use: peak {peak}");
    // The program sleeps 150 ms after freeing the burst: samples taken then, before the
    // last one (read after exit), must show the fall.
    let before_exit = &rows[peak_at..rows.len() - 1];
    assert!(
        before_exit.iter().any(|r| r.1 < peak / 4),
        "in use stayed near its peak ({peak}) until the program exited: {rows:?}"
    );
}
