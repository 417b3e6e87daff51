//! Gives `liboxalloc.so` an ELF SONAME, `liboxalloc.so.<major>`: programs linked with
//! `-loxalloc` then record the versioned name, as with any packaged C library, and
//! `scripts/install.sh` installs `liboxalloc.so.<version>` with the two usual links.
//! (The hardened crate's build script is the same with its own name; each crate keeps
//! its copy because a published crate cannot reach files outside itself.)

use std::path::{Path, PathBuf};

const LIB: &str = "liboxalloc";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // ELF only: MinGW's and Apple's linkers have no -soname.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("CARGO_PKG_VERSION_MAJOR");
    let soname = format!("{LIB}.so.{major}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    link_in_profile_dir(&soname);
}

/// In a checkout of the workspace, `target/<profile>/<soname> -> <lib>.so`: a program
/// linked there with `-L target/release -loxalloc -Wl,-rpath,...` (the README, the C and
/// assembly tests) asks the loader for the SONAME, which cargo's file name alone does
/// not answer. Not done when the crate is built as someone else's dependency.
fn link_in_profile_dir(soname: &str) {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest"));
    if !manifest.join("../../include/oxalloc.h").is_file() {
        return;
    }
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let Some(profile) = out.ancestors().nth(3) else {
        return;
    };
    make_link(&profile.join(soname), Path::new(&format!("{LIB}.so")));
}

#[cfg(unix)]
fn make_link(link: &Path, to: &Path) {
    match std::fs::read_link(link) {
        Ok(old) if old == to => {}
        // A link of ours to something else: replace it. A real file: leave it alone.
        Ok(_) => {
            let _ = std::fs::remove_file(link);
            let _ = std::os::unix::fs::symlink(to, link);
        }
        Err(_) if !link.exists() => {
            let _ = std::os::unix::fs::symlink(to, link);
        }
        Err(_) => {}
    }
}

#[cfg(not(unix))]
fn make_link(_: &Path, _: &Path) {}
