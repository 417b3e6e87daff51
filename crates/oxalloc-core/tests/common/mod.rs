//! Shared by the core's integration tests.

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
