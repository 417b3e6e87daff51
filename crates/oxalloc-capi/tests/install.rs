//! `scripts/install.sh` and `scripts/deb.sh`, used as a C programmer would: install into
//! a temporary prefix, find the library with `pkg-config`, build C programs against what
//! was installed and run them; build the Debian package, check what it holds and build
//! against its unpacked contents (it is never installed on the system).
//!
//! The programs are the C API battery (`tests/c/api_test.c`: every export, run with
//! `--expect-so` / `--expect-no-so`) and the hardened misuse battery
//! (`tests/hardened/misuse.c`, a write after free that only the hardened build reports).
//! They are compiled with nothing but what `pkg-config` prints, so the installed header
//! and libraries are the ones used. The first install builds the workspace
//! (`cargo build --release --workspace`, a no-op after `scripts/test.sh`'s build) into
//! this test's target directory; the others install what it built (`OXALLOC_NO_BUILD=1`).
//! A CMake project (`tests/cmake/`) finds the install with `pkg_check_modules`. Every
//! tool (`pkg-config`, `cc`, `readelf`, `cmake`, `dpkg-deb`, `dpkg-architecture`) must be
//! installed (scripts/setup.sh does): a missing one fails its test with the Debian
//! package to install, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Flags for the C API battery, as in `c_and_programs.rs`.
const CFLAGS: &[&str] = &["-O2", "-Wall", "-Wextra", "-Werror", "-pthread"];

/// Flags for the misuse battery, as in the hardened crate's tests: its bugs are on
/// purpose, and the compiler must not see through them.
const MISUSE_CFLAGS: &[&str] = &[
    "-O0",
    "-g",
    "-fno-builtin",
    "-Wno-free-nonheap-object",
    "-Wno-alloc-size-larger-than",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The target directory this test was built in: current_exe() is
/// `<target>/<profile>/deps/<test>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("target dir above the test executable")
        .to_path_buf()
}

/// A tool from PATH; panics, naming the Debian package, when it is missing.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found in PATH: this test needs it (apt-get install {package})")
        })
}

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("install-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn output(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// Runs `cmd`, asserts that it succeeded and returns its stdout.
fn success(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = output(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `bash scripts/<script>` with this test's target directory and `env`.
fn script(script: &str, env: &[(&str, &Path)], build: bool) -> String {
    let mut cmd = Command::new(tool("bash", "bash"));
    cmd.arg(workspace().join("scripts").join(script))
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("DESTDIR")
        .env_remove("LIBDIR");
    if !build {
        cmd.env("OXALLOC_NO_BUILD", "1");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    success(&mut cmd)
}

/// The prefix `scripts/install.sh` installed into, once per test process (the only
/// install that builds).
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = scratch("prefix").join("usr");
        script("install.sh", &[("PREFIX", &prefix)], true);
        prefix
    })
}

/// `pkg-config ARGS` with `dir` first on its search path, split into arguments.
fn pkg_config(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Vec<String> {
    let mut cmd = Command::new(tool("pkg-config", "pkg-config"));
    cmd.args(args).env("PKG_CONFIG_PATH", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    success(&mut cmd)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Compiles `src` (relative to the workspace) into `dir/exe` with `cflags` and, for
/// includes and libraries, only `flags`.
fn cc(src: &str, dir: &Path, exe: &str, cflags: &[&str], flags: &[String]) -> PathBuf {
    let out = dir.join(exe);
    success(
        Command::new(tool("cc", "build-essential"))
            .args(cflags)
            .arg(workspace().join(src))
            .arg("-o")
            .arg(&out)
            .args(flags),
    );
    out
}

/// The NEEDED entries of an ELF file.
fn needed(elf: &Path) -> Vec<String> {
    dynamic_entries(elf, "(NEEDED)")
}

fn dynamic_entries(elf: &Path, tag: &str) -> Vec<String> {
    success(Command::new(tool("readelf", "binutils")).arg("-d").arg(elf))
        .lines()
        .filter(|l| l.contains(tag))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect()
}

fn assert_api_test_passed(stdout: &str, what: &str) {
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("api_test: ") && l.ends_with("checks passed")),
        "{what}: no 'api_test: N checks passed' line in:\n{stdout}"
    );
}

/// Runs the misuse battery's write after free, which only the hardened build reports.
fn assert_hardened_report(prog: &Path, lib_dir: Option<&Path>) {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = Command::new(prog);
    cmd.arg("write_after_free_small");
    if let Some(d) = lib_dir {
        cmd.env("LD_LIBRARY_PATH", d);
    }
    let out = output(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{}: expected SIGABRT from the hardened library, got {}; stderr:\n{stderr}",
        prog.display(),
        out.status
    );
    assert!(
        stderr.contains("oxalloc: write after free of 0x"),
        "{}: no hardened report in:\n{stderr}",
        prog.display()
    );
}

#[test]
fn install_puts_every_file_under_the_prefix() {
    let p = prefix();
    let lib = p.join("lib");
    for f in [
        "bin/oxalloc",
        "include/oxalloc.h",
        "include/oxalloc_typed.h",
        "lib/liboxalloc.a",
        "lib/liboxalloc_hardened.a",
        "lib/pkgconfig/oxalloc.pc",
        "lib/pkgconfig/oxalloc-static.pc",
        "lib/pkgconfig/oxalloc-hardened.pc",
        "lib/pkgconfig/oxalloc-hardened-static.pc",
    ] {
        assert!(p.join(f).is_file(), "{} not installed", p.join(f).display());
    }
    // lib<name>.so -> lib<name>.so.0 -> lib<name>.so.<version>, the file whose SONAME
    // is lib<name>.so.0.
    for name in ["liboxalloc", "liboxalloc_hardened"] {
        let file = format!("{name}.so.{VERSION}");
        let soname = format!("{name}.so.0");
        let link = |l: &str| std::fs::read_link(lib.join(l)).ok();
        assert_eq!(link(&format!("{name}.so")), Some(soname.clone().into()));
        assert_eq!(link(&soname), Some(file.clone().into()));
        assert_eq!(dynamic_entries(&lib.join(&file), "(SONAME)"), [soname]);
    }
    let pc = std::fs::read_to_string(lib.join("pkgconfig/oxalloc.pc")).expect("oxalloc.pc");
    assert!(
        pc.contains(&format!("prefix={}\n", p.display())),
        "oxalloc.pc does not name the prefix:\n{pc}"
    );
    let pc_dir = lib.join("pkgconfig");
    assert_eq!(
        pkg_config(&pc_dir, &["--modversion", "oxalloc"], &[]),
        [VERSION]
    );
    // The static link's libraries (README, "Using it"), for `--static`.
    let private = pkg_config(&pc_dir, &["--static", "--libs", "oxalloc"], &[]);
    for l in ["-loxalloc", "-lpthread", "-ldl", "-lm", "-lgcc_s"] {
        assert!(private.iter().any(|a| a == l), "{l} missing: {private:?}");
    }
}

#[test]
fn c_program_built_with_pkg_config_uses_the_installed_shared_library() {
    let p = prefix();
    let pc_dir = p.join("lib/pkgconfig");
    let dir = scratch("shared");
    let flags = pkg_config(&pc_dir, &["--cflags", "--libs", "oxalloc"], &[]);
    let prog = cc("tests/c/api_test.c", &dir, "api_test", CFLAGS, &flags);
    assert!(
        needed(&prog).contains(&"liboxalloc.so.0".to_owned()),
        "api_test does not need liboxalloc.so.0: {:?}",
        needed(&prog)
    );
    // The loader finds the installed file (no rpath: LD_LIBRARY_PATH, as for any
    // library outside the loader's directories).
    let lib = p.join("lib");
    let trace = success(
        Command::new(&prog)
            .env("LD_LIBRARY_PATH", &lib)
            .env("LD_TRACE_LOADED_OBJECTS", "1"),
    );
    let expected = format!(
        "liboxalloc.so.0 => {}",
        lib.join("liboxalloc.so.0").display()
    );
    assert!(trace.contains(&expected), "no `{expected}` in:\n{trace}");
    let stdout = success(
        Command::new(&prog)
            .arg("--expect-so")
            .env("LD_LIBRARY_PATH", &lib),
    );
    assert_api_test_passed(&stdout, "api_test against the installed liboxalloc.so");
}

#[test]
fn c_program_built_with_pkg_config_static_links_the_archive() {
    let p = prefix();
    let pc_dir = p.join("lib/pkgconfig");
    let dir = scratch("static");
    let flags = pkg_config(
        &pc_dir,
        &["--static", "--cflags", "--libs", "oxalloc-static"],
        &[],
    );
    let prog = cc("tests/c/api_test.c", &dir, "api_test", CFLAGS, &flags);
    let libs = needed(&prog);
    assert!(
        !libs.iter().any(|l| l.starts_with("liboxalloc")),
        "a static link needs {libs:?}"
    );
    let stdout = success(Command::new(&prog).arg("--expect-no-so"));
    assert_api_test_passed(&stdout, "api_test linked with the installed liboxalloc.a");
}

#[test]
fn hardened_library_found_with_pkg_config_reports_misuse() {
    let p = prefix();
    let pc_dir = p.join("lib/pkgconfig");
    let dir = scratch("hardened");
    let shared = pkg_config(&pc_dir, &["--cflags", "--libs", "oxalloc-hardened"], &[]);
    let prog = cc(
        "tests/hardened/misuse.c",
        &dir,
        "misuse",
        MISUSE_CFLAGS,
        &shared,
    );
    assert!(
        needed(&prog).contains(&"liboxalloc_hardened.so.0".to_owned()),
        "misuse does not need liboxalloc_hardened.so.0: {:?}",
        needed(&prog)
    );
    assert_hardened_report(&prog, Some(&p.join("lib")));
    let flags = pkg_config(
        &pc_dir,
        &["--static", "--cflags", "--libs", "oxalloc-hardened-static"],
        &[],
    );
    let prog = cc(
        "tests/hardened/misuse.c",
        &dir,
        "misuse-static",
        MISUSE_CFLAGS,
        &flags,
    );
    assert!(!needed(&prog).iter().any(|l| l.starts_with("liboxalloc")));
    assert_hardened_report(&prog, None);
}

#[test]
fn installed_tool_finds_the_installed_library() {
    let p = prefix();
    let out = success(
        Command::new(p.join("bin/oxalloc"))
            .args(["run", "--json", "--"])
            .arg(tool("ls", "coreutils"))
            .arg("/")
            .env_remove("OXALLOC_LIB"),
    );
    let expected = format!("\"library\": \"{}\"", p.join("lib/liboxalloc.so").display());
    assert!(out.contains(&expected), "no `{expected}` in:\n{out}");
    assert!(
        !out.contains("\"stats\": null"),
        "the installed library wrote no statistics:\n{out}"
    );
}

#[test]
fn cmake_project_finds_oxalloc_with_pkg_check_modules() {
    let p = prefix();
    let build = scratch("cmake");
    let cmake = tool("cmake", "cmake");
    success(
        Command::new(&cmake)
            .arg("-S")
            .arg(workspace().join("tests/cmake"))
            .arg("-B")
            .arg(&build)
            .env("PKG_CONFIG_PATH", p.join("lib/pkgconfig")),
    );
    success(Command::new(&cmake).arg("--build").arg(&build));
    let shared = build.join("api_test_shared");
    let libs = needed(&shared);
    assert!(
        libs.contains(&"liboxalloc.so.0".to_owned()),
        "api_test_shared needs {libs:?}"
    );
    // CMake gives the program an rpath to the prefix's lib directory.
    let stdout = success(Command::new(&shared).arg("--expect-so"));
    assert_api_test_passed(&stdout, "api_test_shared (CMake)");
    let static_ = build.join("api_test_static");
    let libs = needed(&static_);
    assert!(
        !libs.iter().any(|l| l.starts_with("liboxalloc")),
        "api_test_static needs {libs:?}"
    );
    let stdout = success(Command::new(&static_).arg("--expect-no-so"));
    assert_api_test_passed(&stdout, "api_test_static (CMake)");
}

#[test]
fn destdir_stages_the_files_and_the_pc_files_name_the_final_paths() {
    prefix(); // the build
    let stage = scratch("destdir");
    let final_prefix = Path::new("/opt/oxalloc");
    let libdir = Path::new("/opt/oxalloc/lib64");
    script(
        "install.sh",
        &[
            ("DESTDIR", &stage),
            ("PREFIX", final_prefix),
            ("LIBDIR", libdir),
        ],
        false,
    );
    let staged_lib = stage.join("opt/oxalloc/lib64");
    for f in [
        "liboxalloc.a",
        "liboxalloc.so",
        "liboxalloc_hardened.so",
        "pkgconfig/oxalloc.pc",
    ] {
        assert!(
            staged_lib.join(f).exists(),
            "{} not staged",
            staged_lib.join(f).display()
        );
    }
    assert!(stage.join("opt/oxalloc/bin/oxalloc").is_file());
    assert!(stage.join("opt/oxalloc/include/oxalloc.h").is_file());
    let pc_dir = staged_lib.join("pkgconfig");
    assert_eq!(
        pkg_config(&pc_dir, &["--libs", "oxalloc"], &[]),
        ["-L/opt/oxalloc/lib64", "-loxalloc"]
    );
    assert_eq!(
        pkg_config(&pc_dir, &["--cflags", "oxalloc"], &[]),
        ["-I/opt/oxalloc/include"]
    );
}

#[test]
fn deb_package_holds_the_install_and_builds_programs() {
    prefix(); // the build
    let multiarch =
        success(Command::new(tool("dpkg-architecture", "dpkg-dev")).arg("-qDEB_HOST_MULTIARCH"));
    let multiarch = multiarch.trim();
    let arch = success(Command::new(tool("dpkg-architecture", "dpkg-dev")).arg("-qDEB_HOST_ARCH"));
    let stdout = script("deb.sh", &[], false);
    let deb = target_dir()
        .join("debian")
        .join(format!("oxalloc_{VERSION}-1_{}.deb", arch.trim()));
    assert!(
        deb.is_file(),
        "{} not built; deb.sh said:\n{stdout}",
        deb.display()
    );
    let dpkg_deb = tool("dpkg-deb", "dpkg");
    let listing = success(Command::new(&dpkg_deb).arg("-c").arg(&deb));
    let lib = format!("./usr/lib/{multiarch}");
    let mut expected: Vec<String> = [
        "./usr/bin/oxalloc",
        "./usr/include/oxalloc.h",
        "./usr/include/oxalloc_typed.h",
        "./usr/share/doc/oxalloc/copyright",
    ]
    .map(String::from)
    .into();
    for f in [
        "liboxalloc.a".to_owned(),
        "liboxalloc_hardened.a".to_owned(),
        format!("liboxalloc.so.{VERSION}"),
        format!("liboxalloc_hardened.so.{VERSION}"),
        "liboxalloc.so -> liboxalloc.so.0".to_owned(),
        format!("liboxalloc.so.0 -> liboxalloc.so.{VERSION}"),
        "liboxalloc_hardened.so -> liboxalloc_hardened.so.0".to_owned(),
        "pkgconfig/oxalloc.pc".to_owned(),
        "pkgconfig/oxalloc-static.pc".to_owned(),
        "pkgconfig/oxalloc-hardened.pc".to_owned(),
        "pkgconfig/oxalloc-hardened-static.pc".to_owned(),
    ] {
        expected.push(format!("{lib}/{f}"));
    }
    for e in &expected {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {e}"))),
            "{e} missing from the package:\n{listing}"
        );
    }
    assert!(
        !listing.contains("./usr/local"),
        "files under /usr/local:\n{listing}"
    );
    let fields = success(
        Command::new(&dpkg_deb)
            .arg("-f")
            .arg(&deb)
            .args(["Package", "Version", "Depends"]),
    );
    assert!(fields.contains("Package: oxalloc\n"), "{fields}");
    assert!(
        fields.contains(&format!("Version: {VERSION}-1\n")),
        "{fields}"
    );
    assert!(fields.contains("libc6 (>="), "{fields}");

    // Unpacked (not installed), its .pc files and libraries build and run a program:
    // pkg-config's sysroot puts the unpacked tree in front of the paths they name.
    let root = scratch("deb-root");
    success(Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(&root));
    let pc_dir = root.join(format!("usr/lib/{multiarch}/pkgconfig"));
    let flags = pkg_config(
        &pc_dir,
        &["--cflags", "--libs", "oxalloc"],
        &[
            ("PKG_CONFIG_SYSROOT_DIR", &root),
            ("PKG_CONFIG_LIBDIR", &pc_dir),
        ],
    );
    let dir = scratch("deb-program");
    let prog = cc("tests/c/api_test.c", &dir, "api_test", CFLAGS, &flags);
    let stdout = success(
        Command::new(&prog)
            .arg("--expect-so")
            .env("LD_LIBRARY_PATH", root.join(format!("usr/lib/{multiarch}"))),
    );
    assert_api_test_passed(&stdout, "api_test against the package's liboxalloc.so");
}
