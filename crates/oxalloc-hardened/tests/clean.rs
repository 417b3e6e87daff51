//! Clean programs must run unchanged under the hardened library: our own C program
//! (whole API, realloc chains, aligned allocations, threads, fork), the junk fill, and
//! real programs (python3, sqlite3).

mod common;
use common::*;
use std::process::Command;

#[test]
fn clean_c_program_exits_0_preloaded_and_static() {
    let prog = build("clean", "cc", "clean.c", &["-lpthread"]);
    let out = run(&prog, &[], true, &[]);
    expect_ok(&out, "clean (LD_PRELOAD)");
    assert!(String::from_utf8_lossy(&out.stdout).contains("clean ok"));
    let lib = static_lib();
    let prog = build(
        "clean-static",
        "cc",
        "clean.c",
        &[lib.to_str().unwrap(), "-lpthread", "-ldl", "-lm", "-lgcc_s"],
    );
    expect_ok(&run(&prog, &[], false, &[]), "clean (static)");
}

#[test]
fn junk_fill_shows_uninitialised_reads() {
    let prog = build("clean", "cc", "clean.c", &["-lpthread"]);
    // The program prints what a fresh malloc(64) holds and checks that calloc zeroes; it
    // exits 0 either way, so a crash or a failed check fails both runs.
    let fresh = |env: &[(&str, &str)], what: &str| {
        let out = run(&prog, &["junk"], true, env);
        expect_ok(&out, what);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        fresh(&[("OXALLOC_JUNK", "1")], "junk"),
        "fresh malloc(64): 64 bytes of 0xaa"
    );
    // Without the option, fresh blocks are zero, not junk.
    assert_eq!(fresh(&[], "no junk"), "fresh malloc(64): 64 bytes of 0x00");
}

#[test]
fn small_blocks_come_in_a_random_order() {
    let prog = build("clean", "cc", "clean.c", &["-lpthread"]);
    let orders: Vec<(u32, String)> = (0..2)
        .map(|_| {
            let out = run(&prog, &["order"], true, &[]);
            expect_ok(&out, "order");
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // "adjacent N order HASH"
            let w: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(w.len(), 4, "{line}");
            (w[1].parse().unwrap(), w[3].to_string())
        })
        .collect();
    for (adjacent, _) in &orders {
        // In the core's order (fresh blocks in address order) nearly all 255 pairs
        // would be adjacent.
        assert!(
            *adjacent < 128,
            "{adjacent} of 255 blocks followed the previous one"
        );
    }
    assert_ne!(
        orders[0].1, orders[1].1,
        "two runs handed out blocks in the same order"
    );
}

#[test]
fn malloc_trim_gives_freed_memory_back_to_the_os() {
    let prog = build("clean", "cc", "clean.c", &["-lpthread"]);
    // Freed memory stays resident (no purge before a minute, no background purging)
    // until malloc_trim asks the heaps for it.
    let env = [
        ("OXALLOC_PURGE_DELAY_MS", "60000"),
        ("OXALLOC_BACKGROUND_PURGE", "0"),
    ];
    let out = run(&prog, &["trim"], true, &env);
    expect_ok(&out, "trim");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // "trim released R drop KIB"
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.len(), 5, "{line}");
    assert_eq!(w[2], "1", "malloc_trim released nothing: {line}");
    let drop_kib: i64 = w[4].parse().unwrap();
    assert!(drop_kib >= 2048, "RSS fell by only {drop_kib} KiB: {line}");
}

#[test]
fn a_bad_option_value_is_reported_once_and_the_default_used() {
    let prog = build("clean", "cc", "clean.c", &["-lpthread"]);
    let out = run(&prog, &[], true, &[("OXALLOC_QUARANTINE", "lots")]);
    expect_ok(&out, "bad option");
    let err = String::from_utf8_lossy(&out.stderr);
    let msg = "oxalloc: ignoring OXALLOC_QUARANTINE=lots: not a number (the default is used)";
    assert_eq!(err.matches(msg).count(), 1, "stderr:\n{err}");
}

/// Fails the test unless `tool` runs: `scripts/setup.sh` installs every tool these tests
/// use, so a missing one is a broken setup, never a skip.
fn require(tool: &str, package: &str) {
    let runs = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "`{tool} --version` does not run: this test needs it (apt-get install {package}, \
         or run scripts/setup.sh)"
    );
}

#[test]
fn python3_runs_under_the_hardened_library() {
    require("python3", "python3");
    let script = "import json, collections\n\
        d = {str(i): list(range(i % 50)) for i in range(20000)}\n\
        s = json.dumps(d)\n\
        c = collections.Counter(s)\n\
        print(len(json.loads(s)), sum(len(v) for v in d.values()), c['['])";
    let out = Command::new("python3")
        .args(["-c", script])
        .env("LD_PRELOAD", shared_lib())
        .output()
        .unwrap();
    expect_ok(&out, "python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "20000 490000 20000"
    );
}

#[test]
fn sqlite3_runs_under_the_hardened_library() {
    require("sqlite3", "sqlite3");
    let sql = "create table t(a integer primary key, b text);\n\
        with recursive c(x) as (select 1 union all select x + 1 from c where x < 20000)\n\
        insert into t select x, printf('row-%d', x) from c;\n\
        create index tb on t(b);\n\
        select count(*), sum(a), max(b) from t;\n";
    let mut child = Command::new("sqlite3")
        .arg(":memory:")
        .env("LD_PRELOAD", shared_lib())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    expect_ok(&out, "sqlite3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "20000|200010000|row-9999"
    );
}
