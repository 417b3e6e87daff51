//! End to end: the suite binary runs a cheap `--quick` subset under glibc and prints the
//! expected table rows, and writes the CSV/JSON/SVG files.

use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_oxalloc-bench");

#[test]
fn quick_subset_prints_expected_rows_and_writes_files() {
    let out_dir = std::env::temp_dir().join(format!("oxbench-test-{}", std::process::id()));
    let out = Command::new(EXE)
        .args([
            "--quick",
            "--only",
            "realloc,larson",
            "--threads",
            "1,2",
            "--alloc",
            "glibc",
        ])
        .args(["--scale", "0.05", "--out"])
        .arg(&out_dir)
        .output()
        .expect("run oxalloc-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for want in [
        "Wall time",
        "Peak RSS",
        "Minor page faults",
        "Throughput",
        "larson/t1",
        "larson/t2",
        "realloc",
        "glibc",
        "geomean",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let wall_rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Wall time"))
        .skip(2)
        .take_while(|l| !l.starts_with("geomean"))
        .collect();
    assert_eq!(wall_rows.len(), 3, "{wall_rows:?}");
    assert!(
        wall_rows.iter().all(|l| l.contains("1.00x")),
        "{wall_rows:?}"
    );
    assert!(stderr.contains("[   1/3]"), "no progress lines:\n{stderr}");

    let csv = std::fs::read_to_string(out_dir.join("latest.csv")).expect("latest.csv");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",glibc,default,1,")),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("latest.json")).unwrap())
            .unwrap();
    assert!(json["machine"]["nproc"].as_u64().unwrap() >= 1);
    assert_eq!(json["records"].as_array().unwrap().len(), 3);
    let svg = std::fs::read_to_string(out_dir.join("latest.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("larson/t2"));
    std::fs::remove_dir_all(out_dir).unwrap();
}

#[test]
fn unknown_allocator_and_workload_are_usage_errors() {
    let o = Command::new(EXE)
        .args(["--alloc", "nope", "--no-write"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(EXE)
        .args(["--only", "nope", "--no-write"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn work_child_prints_a_result_line() {
    let o = Command::new(EXE)
        .args(["work", "pairs", "--pairs", "1000"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    let w = oxalloc_bench::workloads::WorkOutput::parse(&s).expect("result line");
    assert_eq!(w.ops, Some(1000.0));
}
