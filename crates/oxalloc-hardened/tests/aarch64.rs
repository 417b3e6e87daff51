//! The hardened build on aarch64 Linux: `liboxalloc_hardened.so` cross-built for
//! `aarch64-unknown-linux-gnu`, the C and C++ test programs cross-compiled, and all run
//! under qemu-user with the library preloaded: the whole misuse battery, the C++ family
//! checks and `std::bad_alloc` thrown through the aarch64 `new` trampolines, and the
//! threads program (per-thread quarantines, a thread's exit found through its `pthread`
//! key). Ignored by default, as they need the cross toolchain and qemu:
//! `scripts/test.sh` runs them (`cargo test -p oxalloc-hardened --test aarch64 --
//! --ignored`).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TRIPLE: &str = "aarch64-unknown-linux-gnu";
const GCC: &str = "aarch64-linux-gnu-gcc";
const GXX: &str = "aarch64-linux-gnu-g++";

/// The aarch64 `liboxalloc_hardened.so`, built once per test binary into
/// `target/aarch64-unknown-linux-gnu/release` (cargo's own up-to-date check).
fn cross_so() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let target = profile_dir()
            .parent()
            .expect("target dir above the profile dir")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "oxalloc-hardened", "--release", "--target"])
            .arg(TRIPLE)
            .arg("--target-dir")
            .arg(&target)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        if std::env::var_os("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER").is_none() {
            cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", GCC);
        }
        let status = cmd.status().expect("running cargo build for aarch64");
        assert!(
            status.success(),
            "building the aarch64 hardened library failed"
        );
        target.join(TRIPLE).join("release/liboxalloc_hardened.so")
    })
}

/// `tests/hardened/<src>` cross-compiled to `<name>-aarch64` (as `build` does on the
/// host).
fn cross_build(name: &str, compiler: &str, src: &str) -> PathBuf {
    build(&format!("{name}-aarch64"), compiler, src, &["-lpthread"])
}

/// Runs `prog args` under qemu-user with the aarch64 library preloaded and `env` set in
/// the guest.
fn qemu(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    qemu_paged(prog, args, env, 4096)
}

/// [`qemu`] with the guest told that the kernel's pages are `page` bytes (`-p`).
fn qemu_paged(prog: &Path, args: &[&str], env: &[(&str, &str)], page: usize) -> Output {
    let mut c = Command::new("qemu-aarch64-static");
    c.arg("-p").arg(page.to_string());
    c.args(["-L", "/usr/aarch64-linux-gnu", "-E"])
        .arg(format!("LD_PRELOAD={}", cross_so().display()));
    for (k, v) in env {
        c.arg("-E").arg(format!("{k}={v}"));
    }
    c.arg(prog).args(args);
    c.output().expect("run qemu-aarch64-static")
}

#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64 Rust target: scripts/test.sh runs it"]
fn aarch64_each_misuse_is_reported_under_ld_preload() {
    let prog = cross_build("misuse", GCC, "misuse.c");
    for &(case, sig, needles) in CASES {
        let out = qemu(&prog, &[case], &[]);
        expect_signal(&out, sig, needles, &format!("aarch64 {case}"));
        if sig == SIGABRT {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("\n  at: 0x"),
                "aarch64 {case}: no stack:\n{err}"
            );
        }
    }
}

#[test]
#[ignore = "needs aarch64-linux-gnu-g++, qemu-user and the aarch64 Rust target: scripts/test.sh runs it"]
fn aarch64_cxx_families_and_bad_alloc() {
    let prog = cross_build("cxx", GXX, "cxx.cpp");
    for &(case, op, family) in KIND_MISMATCHES {
        let within = format!("in {op}(): the block was allocated by {family} ");
        let needles = ["mismatched allocation and deallocation of 0x", &within];
        let out = qemu(&prog, &[case], &[]);
        expect_signal(&out, SIGABRT, &needles, &format!("aarch64 {case}"));
    }
    // Clean C++ use, including std::bad_alloc thrown through the trampoline.
    let out = qemu(&prog, &["clean"], &[]);
    expect_ok(&out, "aarch64 cxx clean");
    assert!(String::from_utf8_lossy(&out.stdout).contains("cxx clean ok"));
}

#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64 Rust target: scripts/test.sh runs it"]
fn aarch64_threads_clean_and_misuse_across_threads() {
    let prog = cross_build("threads", GCC, "threads.c");
    let out = qemu(&prog, &["clean"], &[("OXALLOC_LEAKS", "1")]);
    expect_ok(&out, "aarch64 threads clean");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("oxalloc: 3885 bytes in 5 blocks leaked, allocated at 0x"),
        "aarch64 threads clean: {err}"
    );
    for &(case, needles) in THREAD_CASES {
        let out = qemu(&prog, &[case], &[]);
        expect_signal(&out, SIGABRT, needles, &format!("aarch64 threads {case}"));
    }
}

/// A 64 KiB-page kernel (some arm64 servers): the build's guard pages and shadow map are
/// 4 KiB, so it says once why it cannot run (and fails every allocation) instead of
/// protecting pages with live blocks in them.
#[test]
#[ignore = "needs aarch64-linux-gnu-gcc, qemu-user and the aarch64 Rust target: scripts/test.sh runs it"]
fn aarch64_64k_pages_are_refused_with_a_message() {
    let prog = cross_build("clean", GCC, "clean.c");
    let out = qemu_paged(&prog, &[], &[], 64 << 10);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the hardened build needs 4096-byte pages and this kernel's are 65536 bytes"),
        "aarch64 on 64 KiB pages: {err}"
    );
    assert_eq!(
        err.matches("needs 4096-byte pages").count(),
        1,
        "said once: {err}"
    );
}
