//! Builds and runs `examples/no_std_heap` (a `#![no_std]` binary whose global allocator
//! is `GlobalStaticHeap`) and checks what it prints.
//!
//! Not on Windows: the example is a Linux program built by the host's `cargo`, which a
//! test running under wine cannot start.
#![cfg(not(windows))]
use std::path::PathBuf;
use std::process::Command;

#[test]
fn no_std_example_builds_runs_and_frees_everything() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("no_std_heap");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--manifest-path"])
        .arg(root.join("examples/no_std_heap/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        "vec sum=5050",
        "box=42",
        "string=hello no_std heap",
        "map len=50 m[7]=49",
        "frag_permille>0=true",
        "try_reserve 1 MiB ok=false",
        "after free: used_blocks=0 free_blocks=1 frag_permille=0 check=true",
        "ok",
    ];
    for line in expected {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
