//! Which allocators exist on this machine, and how a child process is put under one.
//!
//! C-level workloads run under `LD_PRELOAD=<lib>` (glibc: no preload). Rust-native
//! workloads run a binary built with the allocator as `#[global_allocator]` where we have
//! one (std/system, `mimalloc`, `tikv-jemallocator`, `oxalloc`), and otherwise the system
//! binary under `LD_PRELOAD` (tcmalloc, or oxalloc before its crate feature is on).
//!
//! Discovery never fails the suite: an allocator that cannot be found is reported as
//! missing, with the reason, and left out of the run.

use std::path::{Path, PathBuf};

/// Every allocator the suite knows, in table order (the subject first).
pub const KNOWN: [&str; 5] = ["oxalloc", "glibc", "mimalloc", "jemalloc", "tcmalloc"];

/// Library directories searched for the peers' shared objects.
pub const LIB_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// One allocator and where it was (or was not) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocator {
    /// Short name: one of [`KNOWN`].
    pub name: &'static str,
    /// The shared object to preload; `None` for glibc (the process default).
    pub lib: Option<PathBuf>,
    /// `Some(reason)` when the allocator is missing and cannot be run.
    pub missing: Option<String>,
}

impl Allocator {
    /// True when this allocator can be run.
    pub fn available(&self) -> bool {
        self.missing.is_none()
    }
}

/// Finds a library named `stem.so[.N[.M..]]` in `dirs`, preferring the shortest name (the
/// soname link over the fully versioned file) and ignoring `_debug`/`-secure` variants.
pub fn find_lib(dirs: &[&Path], stem: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix(".so")) else {
                continue;
            };
            let versioned = rest
                .split('.')
                .skip(1)
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if (rest.is_empty() || rest.starts_with('.')) && versioned {
                found.push(e.path());
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    found.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    found.into_iter().next()
}

/// Where liboxalloc.so is looked for, in order: `$OXALLOC_LIB`, then
/// `<workspace>/target/release/liboxalloc.so`, then next to the running executable.
pub fn oxalloc_candidates(
    env_override: Option<PathBuf>,
    workspace: Option<&Path>,
    exe_dir: Option<&Path>,
) -> Vec<PathBuf> {
    let mut v = Vec::new();
    v.extend(env_override);
    if let Some(ws) = workspace {
        v.push(ws.join("target/release/liboxalloc.so"));
    }
    if let Some(d) = exe_dir {
        v.push(d.join("liboxalloc.so"));
    }
    v
}

/// Discovers every allocator in [`KNOWN`]. A peer's path can be forced with
/// `OXBENCH_<NAME>_LIB` (e.g. `OXBENCH_MIMALLOC_LIB`).
pub fn discover(workspace: Option<&Path>) -> Vec<Allocator> {
    let dirs: Vec<&Path> = LIB_DIRS.iter().map(Path::new).collect();
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(Path::parent);
    KNOWN
        .iter()
        .map(|&name| {
            let forced = std::env::var_os(format!("OXBENCH_{}_LIB", name.to_uppercase()))
                .map(PathBuf::from);
            let (lib, hint) = match name {
                "glibc" => return Allocator { name, lib: None, missing: None },
                "oxalloc" => {
                    let env = std::env::var_os("OXALLOC_LIB").map(PathBuf::from).or(forced);
                    let c = oxalloc_candidates(env, workspace, exe_dir);
                    let hint = format!(
                        "no liboxalloc.so at {} (set OXALLOC_LIB, or cargo build --release -p oxalloc-capi)",
                        c.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    );
                    (c.into_iter().find(|p| p.is_file()), hint)
                }
                _ => {
                    let (stem, pkg) = match name {
                        "mimalloc" => ("libmimalloc", "libmimalloc2.0"),
                        "jemalloc" => ("libjemalloc", "libjemalloc2"),
                        _ => ("libtcmalloc_minimal", "libtcmalloc-minimal4"),
                    };
                    let lib = forced
                        .filter(|p| p.is_file())
                        .or_else(|| find_lib(&dirs, stem));
                    (lib, format!("no {stem}.so* in {} (apt-get install {pkg})", LIB_DIRS.join(", ")))
                }
            };
            match lib {
                Some(p) => Allocator { name, lib: Some(p), missing: None },
                None => Allocator { name, lib: None, missing: Some(hint) },
            }
        })
        .collect()
}

/// The `#[global_allocator]` binary for a Rust-native workload under `alloc`, if the suite
/// has one: glibc → the std (system) binary, the others → their crate's binary.
pub fn rust_binary_name(alloc: &str) -> &'static str {
    match alloc {
        "mimalloc" => "oxbench-rust-mimalloc",
        "jemalloc" => "oxbench-rust-jemalloc",
        "oxalloc" => "oxbench-rust-oxalloc",
        _ => "oxbench-rust-system",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(files: &[&str]) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "oxbench-libs-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f), b"").unwrap();
        }
        d
    }

    #[test]
    fn finds_soname_and_skips_variants() {
        let d = scratch(&[
            "libtcmalloc_minimal.so.4.5.10",
            "libtcmalloc_minimal.so.4",
            "libtcmalloc_minimal_debug.so.4",
            "libmimalloc-secure.so.2",
            "libmimalloc.so.2.0",
        ]);
        let dirs = [d.as_path()];
        assert_eq!(
            find_lib(&dirs, "libtcmalloc_minimal"),
            Some(d.join("libtcmalloc_minimal.so.4"))
        );
        assert_eq!(
            find_lib(&dirs, "libmimalloc"),
            Some(d.join("libmimalloc.so.2.0"))
        );
        assert_eq!(find_lib(&dirs, "libjemalloc"), None);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn oxalloc_search_order() {
        let c = oxalloc_candidates(
            Some("/x/lib.so".into()),
            Some(Path::new("/ws")),
            Some(Path::new("/bin")),
        );
        assert_eq!(
            c,
            vec![
                PathBuf::from("/x/lib.so"),
                PathBuf::from("/ws/target/release/liboxalloc.so"),
                PathBuf::from("/bin/liboxalloc.so")
            ]
        );
    }
}
