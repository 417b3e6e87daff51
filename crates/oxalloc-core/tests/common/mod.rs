//! Shared by the core's integration tests (each binary uses some of it).
#![allow(dead_code)]

/// The runner cargo runs this cross-compiled test under (`CARGO_TARGET_<TRIPLE>_RUNNER`,
/// qemu-user for the CI's aarch64 run), if any; the test inherits cargo's environment.
pub fn emulator() -> Option<String> {
    let libc = if cfg!(target_env = "musl") {
        "MUSL"
    } else {
        "GNU"
    };
    let var = format!(
        "CARGO_TARGET_{}_UNKNOWN_LINUX_{libc}_RUNNER",
        std::env::consts::ARCH.to_uppercase()
    );
    std::env::var(var).ok().filter(|r| !r.trim().is_empty())
}

/// `OXALLOC_TEST_SCALE_DOWN=N` divides the work of the thread tests by N (at least 1):
/// the CI's emulated aarch64 run (qemu-user, some 20 times slower) sets it.
pub fn scale_down() -> usize {
    std::env::var("OXALLOC_TEST_SCALE_DOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}
