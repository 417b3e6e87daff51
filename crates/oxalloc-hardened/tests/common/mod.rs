//! Shared helpers: where the built libraries are, compiling the C/C++ programs of
//! `tests/hardened/` once per test binary, and running them.
#![allow(dead_code)]

pub mod cases;
#[allow(unused_imports)] // not every test binary uses the case tables
pub use cases::*;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// `target/<profile>`: the test binary lives in its `deps/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A library of this crate: `cargo build` puts it in `target/<profile>`, while
/// `cargo test` leaves it in `target/<profile>/deps`; the newer of the two is the one
/// built from the current source (an older `cargo build` copy may be stale).
fn built_lib(name: &str) -> PathBuf {
    let dir = profile_dir();
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    [dir.join(name), dir.join("deps").join(name)]
        .into_iter()
        .filter_map(|p| modified(&p).map(|t| (t, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{name} missing in {} (and its deps/)", dir.display()))
}

/// The shared library, `liboxalloc_hardened.so`.
pub fn shared_lib() -> PathBuf {
    built_lib("liboxalloc_hardened.so")
}

/// The static library, `liboxalloc_hardened.a`.
pub fn static_lib() -> PathBuf {
    built_lib("liboxalloc_hardened.a")
}

fn programs_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hardened")
}

/// The directory compiled test programs go to (one per test binary).
fn out_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        let d = profile_dir().join("hardened-programs").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// Compiles `tests/hardened/<src>` to `<name>` with `compiler` and `extra` flags once.
pub fn build(name: &str, compiler: &str, src: &str, extra: &[&str]) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = out_dir().join(name);
    let src_path = programs_src().join(src);
    // Up to date only if newer than the source and than any library linked in (a
    // static program keeps the old library's code otherwise).
    let inputs = std::iter::once(src_path.as_path()).chain(extra.iter().map(Path::new));
    let newest_input = inputs
        .filter_map(|p| p.metadata().ok()?.modified().ok())
        .max();
    let fresh =
        |o: &Path| -> Option<bool> { Some(o.metadata().ok()?.modified().ok()? >= newest_input?) };
    if fresh(&out) == Some(true) {
        return out;
    }
    let status = Command::new(compiler)
        .args(["-O0", "-g", "-fno-omit-frame-pointer", "-fno-builtin"])
        .args([
            "-Wno-free-nonheap-object",
            "-Wno-alloc-size-larger-than",
            "-o",
        ])
        .arg(&out)
        .arg(&src_path)
        .args(extra)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "compiling {src} failed");
    out
}

/// Runs `prog args` with the hardened library preloaded (or not, for static builds).
pub fn run(prog: &Path, args: &[&str], preload: bool, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(prog);
    c.args(args);
    if preload {
        c.env("LD_PRELOAD", shared_lib());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run test program")
}

/// Asserts that the run ended with `signal` and that stderr contains every `needle`.
pub fn expect_signal(out: &Output, signal: i32, needles: &[&str], what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(signal),
        "{what}: expected signal {signal}, got {:?}\nstderr:\n{err}",
        out.status
    );
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}:\n{err}");
    }
    if signal == 6 {
        assert_eq!(
            err.matches("oxalloc: aborting").count(),
            1,
            "{what}: one report:\n{err}"
        );
    }
}

/// Asserts a clean exit.
pub fn expect_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
