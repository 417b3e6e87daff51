//! Finding the files the tool drives: `liboxalloc.so`, `liboxalloc_hardened.so` and the
//! `oxalloc-bench` binary.
//!
//! Order: the environment variable (`OXALLOC_LIB`, `OXALLOC_HARDENED_LIB`, `OXALLOC_BENCH`),
//! then the directory of the `oxalloc` executable (a `cargo build --release` puts them all in
//! `target/release/`), then `../release/` from it (so a debug build of the tool finds a release
//! build of the library in the same target directory), then `../lib/` and
//! `../lib/<multiarch>/` from it (an installed tool: `scripts/install.sh` puts it in
//! `$PREFIX/bin` and the libraries in `$PREFIX/lib`, the Debian package in `/usr/bin` and
//! `/usr/lib/x86_64-linux-gnu`).

use std::path::{Path, PathBuf};

use crate::error::Error;

pub const LIB: &str = "liboxalloc.so";
pub const HARDENED_LIB: &str = "liboxalloc_hardened.so";
pub const BENCH: &str = "oxalloc-bench";

fn candidates(file: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(file));
        // target/debug/deps/ (test binaries) and target/debug/ both reach target/release/.
        for up in [dir.parent(), dir.parent().and_then(Path::parent)]
            .into_iter()
            .flatten()
        {
            out.push(up.join("release").join(file));
        }
        if let Some(prefix) = dir.parent() {
            let lib = prefix.join("lib");
            out.push(lib.join(file));
            if let Some(multiarch) = multiarch() {
                out.push(lib.join(multiarch).join(file));
            }
        }
    }
    out
}

/// Debian's multiarch directory name for this build's target (`x86_64-linux-gnu`).
fn multiarch() -> Option<String> {
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        Some(format!("{}-linux-gnu", std::env::consts::ARCH))
    } else {
        None
    }
}

/// Where `file` would be found, or the list of places searched.
pub fn find(file: &str, env: &str) -> Result<PathBuf, Vec<PathBuf>> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(vec![p]) };
    }
    let c = candidates(file);
    c.iter().find(|p| p.is_file()).cloned().ok_or(c)
}

fn shown(paths: &[PathBuf]) -> String {
    paths
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".into())
}

/// `liboxalloc.so`, or the one-line error that tells how to build it.
pub fn lib(hardened: bool) -> Result<PathBuf, Error> {
    let (file, env) = if hardened {
        (HARDENED_LIB, "OXALLOC_HARDENED_LIB")
    } else {
        (LIB, "OXALLOC_LIB")
    };
    find(file, env).map_err(|tried| {
        let how = if hardened {
            "the hardened build (with leak reports) is not built yet: build it with \
             `cargo build --release -p oxalloc-hardened`"
        } else {
            "run `cargo build --release -p oxalloc-capi`"
        };
        Error::new(format!(
            "{file} not found (looked at {} and next to oxalloc; set {env} to its path): {how}",
            shown(&tried)
        ))
    })
}

/// The `oxalloc-bench` binary, or a one-line error.
pub fn bench() -> Result<PathBuf, Error> {
    find(BENCH, "OXALLOC_BENCH").map_err(|tried| {
        Error::new(format!(
            "{BENCH} not found (looked at {}; set OXALLOC_BENCH to its path): \
             build it with `cargo build --release -p oxalloc-bench`",
            shown(&tried)
        ))
    })
}
