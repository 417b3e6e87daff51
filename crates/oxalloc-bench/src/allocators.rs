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

/// The allocators of the default run, in table order (the subject first).
pub const KNOWN: [&str; 5] = ["oxalloc", "glibc", "mimalloc", "jemalloc", "tcmalloc"];

/// Opt-in allocators (`--alloc NAME` or `--hardened`), never in the default run: the
/// hardened build and the checking/debug builds it is compared with.
/// * `hardened`: our `liboxalloc_hardened.so`;
/// * `glibc-check`: glibc with `MALLOC_CHECK_=3`, plus `libc_malloc_debug.so.0` preloaded
///   where it exists (glibc >= 2.34 ignores `MALLOC_CHECK_` without it);
/// * `tcmalloc-debug`: `libtcmalloc_minimal_debug.so*` (Debian `libtcmalloc-minimal4`);
/// * `oxalloc-base`: an older build of ours, for an A/B in one run: the library named by
///   `OXBENCH_OXALLOC_BASE_LIB`, and for the Rust rows `oxbench-rust-oxalloc-base` next
///   to the suite's binaries (copied from that build's `oxbench-rust-oxalloc`).
/// * `oxalloc-thp`: our default build with `OXALLOC_HUGE_PAGES=1` (transparent huge pages
///   asked for on every segment and huge region), to show what the switch buys and costs
///   beside the default; the `mimalloc` crate of the Rust rows asks for them on its whole
///   arena.
pub const OPT_IN: [&str; 5] = [
    "hardened",
    "glibc-check",
    "tcmalloc-debug",
    "oxalloc-base",
    "oxalloc-thp",
];

/// What `--hardened` selects: the hardened build, its checking peers, and mimalloc (the
/// baseline of the overhead target).
pub const HARDENED_SET: [&str; 4] = ["hardened", "glibc-check", "tcmalloc-debug", "mimalloc"];

/// Every name `--alloc` accepts.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    KNOWN.iter().chain(OPT_IN.iter()).copied()
}

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
    /// Environment the child gets under this allocator (e.g. `MALLOC_CHECK_=3`).
    pub env: Vec<(&'static str, &'static str)>,
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

/// Where one of our libraries (`file`, e.g. `liboxalloc.so`) is looked for, in order:
/// `env_override` (`$OXALLOC_LIB` / `$OXALLOC_HARDENED_LIB`), then
/// `<workspace>/target/release/<file>`, then next to the running executable.
pub fn own_lib_candidates(
    file: &str,
    env_override: Option<PathBuf>,
    workspace: Option<&Path>,
    exe_dir: Option<&Path>,
) -> Vec<PathBuf> {
    let mut v = Vec::new();
    v.extend(env_override);
    if let Some(ws) = workspace {
        v.push(ws.join("target/release").join(file));
    }
    if let Some(d) = exe_dir {
        v.push(d.join(file));
    }
    v
}

/// Where liboxalloc.so is looked for (see [`own_lib_candidates`]).
pub fn oxalloc_candidates(
    env_override: Option<PathBuf>,
    workspace: Option<&Path>,
    exe_dir: Option<&Path>,
) -> Vec<PathBuf> {
    own_lib_candidates("liboxalloc.so", env_override, workspace, exe_dir)
}

/// Discovers every allocator in [`KNOWN`] (the default run). A peer's path can be
/// forced with `OXBENCH_<NAME>_LIB` (e.g. `OXBENCH_MIMALLOC_LIB`).
pub fn discover(workspace: Option<&Path>) -> Vec<Allocator> {
    discover_names(workspace, &KNOWN)
}

/// Discovers the named allocators (from [`KNOWN`] or [`OPT_IN`]), in the given order;
/// `OXBENCH_<NAME>_LIB` (`-` as `_`, e.g. `OXBENCH_TCMALLOC_DEBUG_LIB`) forces a path.
pub fn discover_names(workspace: Option<&Path>, names: &[&'static str]) -> Vec<Allocator> {
    let dirs: Vec<&Path> = LIB_DIRS.iter().map(Path::new).collect();
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(Path::parent);
    let env = |k: &str| std::env::var_os(k);
    names
        .iter()
        .map(|&name| discover_one(name, &dirs, workspace, exe_dir, &env))
        .collect()
}

/// Discovers one allocator, with `lib_dirs` searched for peers and `env` for variables.
pub fn discover_one(
    name: &'static str,
    lib_dirs: &[&Path],
    workspace: Option<&Path>,
    exe_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Allocator {
    let forced = env(&format!(
        "OXBENCH_{}_LIB",
        name.to_uppercase().replace('-', "_")
    ))
    .map(PathBuf::from);
    let own = |file: &str, var: &str, build: &str| {
        let over = env(var).map(PathBuf::from).or(forced.clone());
        let c = own_lib_candidates(file, over, workspace, exe_dir);
        let hint = format!(
            "no {file} at {} (set {var}, or cargo build --release -p {build})",
            c.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        (c.into_iter().find(|p| p.is_file()), hint)
    };
    let mut vars = Vec::new();
    let (lib, hint) = match name {
        "glibc" => (None, String::new()),
        "glibc-check" => {
            vars.push(("MALLOC_CHECK_", "3"));
            // Optional: older glibc checks without it; glibc >= 2.34 ignores
            // MALLOC_CHECK_ unless it is preloaded.
            let lib = forced
                .filter(|p| p.is_file())
                .or_else(|| find_lib(lib_dirs, "libc_malloc_debug"));
            (lib, String::new())
        }
        "oxalloc" => own("liboxalloc.so", "OXALLOC_LIB", "oxalloc-capi"),
        "oxalloc-thp" => {
            vars.push(("OXALLOC_HUGE_PAGES", "1"));
            own("liboxalloc.so", "OXALLOC_LIB", "oxalloc-capi")
        }
        "oxalloc-base" => (
            forced.filter(|p| p.is_file()),
            "set OXBENCH_OXALLOC_BASE_LIB to the liboxalloc.so of the build to compare with"
                .to_string(),
        ),
        "hardened" => own(
            "liboxalloc_hardened.so",
            "OXALLOC_HARDENED_LIB",
            "oxalloc-hardened",
        ),
        _ => {
            let (stem, pkg) = match name {
                "mimalloc" => ("libmimalloc", "libmimalloc2.0"),
                "jemalloc" => ("libjemalloc", "libjemalloc2"),
                "tcmalloc-debug" => ("libtcmalloc_minimal_debug", "libtcmalloc-minimal4"),
                _ => ("libtcmalloc_minimal", "libtcmalloc-minimal4"),
            };
            let lib = forced
                .filter(|p| p.is_file())
                .or_else(|| find_lib(lib_dirs, stem));
            let hint = format!(
                "no {stem}.so* in {} (apt-get install {pkg})",
                LIB_DIRS.join(", ")
            );
            (lib, hint)
        }
    };
    let optional_lib = matches!(name, "glibc" | "glibc-check");
    Allocator {
        name,
        missing: (lib.is_none() && !optional_lib).then_some(hint),
        lib,
        env: vars,
    }
}

/// The `#[global_allocator]` binary for a Rust-native workload under `alloc`, if the suite
/// has one: glibc → the std (system) binary, the others → their crate's binary.
pub fn rust_binary_name(alloc: &str) -> &'static str {
    match alloc {
        "mimalloc" => "oxbench-rust-mimalloc",
        "jemalloc" => "oxbench-rust-jemalloc",
        "oxalloc" | "oxalloc-thp" => "oxbench-rust-oxalloc",
        "oxalloc-base" => "oxbench-rust-oxalloc-base",
        _ => "oxbench-rust-system",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(files: &[&str]) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("oxbench-libs-{}-{}", std::process::id(), files[0]));
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

    #[test]
    fn hardened_search_order_and_override() {
        let d = scratch(&["liboxalloc_hardened.so", "forced.so"]);
        let none = |_: &str| None;
        // Not in the workspace: found next to the executable.
        let a = discover_one(
            "hardened",
            &[],
            Some(Path::new("/nonexistent-ws")),
            Some(&d),
            &none,
        );
        assert_eq!(a.lib, Some(d.join("liboxalloc_hardened.so")));
        assert_eq!((a.missing, a.env.is_empty()), (None, true));
        // The workspace's target/release comes before the executable's directory.
        let ws = d.join("ws");
        std::fs::create_dir_all(ws.join("target/release")).unwrap();
        std::fs::write(ws.join("target/release/liboxalloc_hardened.so"), b"").unwrap();
        let a = discover_one("hardened", &[], Some(&ws), Some(&d), &none);
        assert_eq!(
            a.lib,
            Some(ws.join("target/release/liboxalloc_hardened.so"))
        );
        // $OXALLOC_HARDENED_LIB wins; liboxalloc.so's variable does not apply.
        let forced = d.join("forced.so");
        let env = |k: &str| match k {
            "OXALLOC_HARDENED_LIB" => Some(forced.clone().into_os_string()),
            "OXALLOC_LIB" => Some("/nope/liboxalloc.so".into()),
            _ => None,
        };
        let a = discover_one("hardened", &[], Some(&ws), Some(&d), &env);
        assert_eq!(a.lib, Some(forced.clone()));
        let a = discover_one("oxalloc", &[], Some(&ws), Some(&d), &env);
        assert_eq!(a.lib, None, "liboxalloc.so is not the hardened library");
        // Missing: reported with the variable and the build command.
        let a = discover_one("hardened", &[], None, None, &none);
        let why = a.missing.expect("missing");
        assert!(
            why.contains("OXALLOC_HARDENED_LIB") && why.contains("oxalloc-hardened"),
            "{why}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn checking_peers() {
        let d = scratch(&[
            "libc_malloc_debug.so.0",
            "libtcmalloc_minimal.so.4",
            "libtcmalloc_minimal_debug.so.4",
        ]);
        let dirs = [d.as_path()];
        let none = |_: &str| None;
        let g = discover_one("glibc-check", &dirs, None, None, &none);
        assert_eq!(g.lib, Some(d.join("libc_malloc_debug.so.0")));
        assert_eq!(g.env, vec![("MALLOC_CHECK_", "3")]);
        assert!(g.available());
        // Without libc_malloc_debug (glibc < 2.34) it still runs, on the environment alone.
        let g = discover_one("glibc-check", &[], None, None, &none);
        assert_eq!((g.available(), g.lib), (true, None));
        let t = discover_one("tcmalloc-debug", &dirs, None, None, &none);
        assert_eq!(t.lib, Some(d.join("libtcmalloc_minimal_debug.so.4")));
        let t = discover_one("tcmalloc", &dirs, None, None, &none);
        assert_eq!(t.lib, Some(d.join("libtcmalloc_minimal.so.4")));
        assert!(discover_one("tcmalloc-debug", &[], None, None, &none)
            .missing
            .is_some());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn huge_pages_variant_is_our_library_with_the_switch_on() {
        let d = scratch(&["liboxalloc.so"]);
        let none = |_: &str| None;
        let plain = discover_one("oxalloc", &[], None, Some(&d), &none);
        let thp = discover_one("oxalloc-thp", &[], None, Some(&d), &none);
        assert_eq!(thp.lib, plain.lib);
        assert_eq!(thp.lib, Some(d.join("liboxalloc.so")));
        assert_eq!(
            (plain.env, thp.env),
            (vec![], vec![("OXALLOC_HUGE_PAGES", "1")])
        );
        // The Rust rows run our crate's binary, which reads the same variable.
        assert_eq!(rust_binary_name("oxalloc-thp"), rust_binary_name("oxalloc"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn opt_in_names_stay_out_of_the_default_run() {
        for n in OPT_IN {
            assert!(!KNOWN.contains(&n), "{n}");
            assert!(all_names().any(|a| a == n));
        }
        assert!(HARDENED_SET.iter().all(|n| all_names().any(|a| a == *n)));
        let names: Vec<&str> = discover(None).iter().map(|a| a.name).collect();
        assert_eq!(names, KNOWN);
    }
}
