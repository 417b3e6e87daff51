#!/usr/bin/env bash
# Runs every test of the workspace. The release build comes first because the C,
# assembly, real-program and CLI tests run programs under target/release/liboxalloc.so
# and the oxalloc tool.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A Rust that setup.sh just installed lives in ~/.cargo/bin, not yet on this PATH.
export PATH="$PATH:$HOME/.cargo/bin"
cargo build --release --workspace
cargo test --workspace
# The crates meant for crates.io, packaged and verified as `cargo publish` would
# (seconds: the verification builds reuse the dependencies the tests built).
bash scripts/package.sh
# Their documentation builds without a warning (a broken or private link fails here).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -q -p oxalloc-sys -p oxalloc-core \
  -p oxalloc -p oxalloc-typed -p oxalloc-hardened -p oxalloc-cli
# The loom models of the lock-free protocols, optimised (about a minute; unoptimised,
# `cargo test` above lists them as ignored).
bash scripts/loom.sh
# Soak: threads, forks, trims and every size at once, checked on every free; 20 s under
# each build here (run it longer by hand: bash scripts/soak.sh 600).
bash scripts/soak.sh 20
# Fault injection: every call that maps or changes memory in seven workloads refused,
# once and from then on, each in a fresh process (about a minute; scripts/faults.sh).
bash scripts/faults.sh
# musl (x86_64-unknown-linux-musl: static, as Rust builds it by default): the core,
# facade and typed tests run natively. Skipped, and said so, only where no rustup could
# add the target (setup.sh explains).
if rustc --print sysroot >/dev/null 2>&1 &&
  [ -d "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-musl" ]; then
  cargo test -p oxalloc-core -p oxalloc -p oxalloc-typed --target x86_64-unknown-linux-musl
  # The C API: liboxalloc.a for musl linked into static C programs with musl-gcc (the
  # API test, the misuse battery, threads), run natively. `--ignored`: a plain cargo
  # test cannot count on musl-gcc.
  if command -v musl-gcc >/dev/null 2>&1; then
    cargo test --workspace --test c_and_programs -- --ignored musl_
    # The benchmark's static musl rows (oxalloc, the mimalloc and jemalloc crates, musl's
    # own malloc): the binaries, and one short run of each workload under each.
    cargo build --release -p oxalloc-bench --bins --target x86_64-unknown-linux-musl
    for alloc in system mimalloc jemalloc oxalloc; do
      for work in btree hashmap boxtree; do
        target/x86_64-unknown-linux-musl/release/oxbench-rust-$alloc $work 0.05 | grep '^OXBENCH {' >/dev/null
      done
    done
  else
    echo "test.sh: SKIPPED the musl C API tests: musl-gcc is missing (setup.sh installs musl-tools)" >&2
  fi
else
  echo "test.sh: SKIPPED the musl tests: target x86_64-unknown-linux-musl is not installed" >&2
fi
# Windows (x86_64-pc-windows-gnu, MinGW): the core, facade and typed tests under wine;
# SKIPPED (said, not failed) where the target, MinGW or wine is missing.
bash scripts/test-windows.sh
# aarch64 Linux: the same tests, cross-built and run under qemu-user (cargo's runner),
# with the thread tests' work divided by 4 (about 20 times slower emulated). The
# huge-page test says SKIPPED there: qemu-user drops madvise advice. Then the C API:
# C programs cross-compiled against liboxalloc.a and under LD_PRELOAD of liboxalloc.so,
# run under qemu-user by the host's test (the API test, the misuse battery, threads),
# and the same for the hardened build's C and C++ programs.
aarch64_missing=()
if ! rustc --print sysroot >/dev/null 2>&1 ||
  [ ! -d "$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu" ]; then
  aarch64_missing+=("the Rust target aarch64-unknown-linux-gnu")
fi
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
  command -v "$tool" >/dev/null 2>&1 || aarch64_missing+=("$tool")
done
if ((${#aarch64_missing[@]} == 0)); then
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu" \
    OXALLOC_TEST_SCALE_DOWN=4 \
    cargo test -p oxalloc-core -p oxalloc -p oxalloc-typed --target aarch64-unknown-linux-gnu
  # 64 KiB kernel pages (some arm64 servers): the memory calls stay inside their range.
  # (qemu-user reports the page size but does not widen ranges as such a kernel does.)
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -p 65536 -L /usr/aarch64-linux-gnu" \
    cargo test -p oxalloc-sys --test kernel_pages --target aarch64-unknown-linux-gnu
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo test --workspace --test c_and_programs -- --ignored aarch64_
  # The hardened build: its misuse battery, C++ checks and threads, preloaded.
  if command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; then
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
      cargo test -p oxalloc-hardened --test aarch64 -- --ignored
  else
    echo "test.sh: SKIPPED the aarch64 hardened tests: missing aarch64-linux-gnu-g++ (setup.sh installs it)" >&2
  fi
else
  echo "test.sh: SKIPPED the aarch64 tests: missing ${aarch64_missing[*]} (setup.sh installs them)" >&2
fi
# aarch64 with musl (static Rust programs on arm64 Alpine, the cloud's arm64 containers):
# the same Rust tests, linked by the same cross gcc (Rust's musl target brings its own
# libc.a and crt files), run under qemu-user. Then a static C program against
# liboxalloc.a, linked by that gcc with those crt files and libc.a (Debian has no
# musl-gcc nor musl headers for aarch64: the program declares what it uses).
if ((${#aarch64_missing[@]} == 0)) &&
  [ -d "$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-musl" ]; then
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static \
    OXALLOC_TEST_SCALE_DOWN=4 \
    cargo test -p oxalloc-core -p oxalloc -p oxalloc-typed --target aarch64-unknown-linux-musl
  cargo test --workspace --test c_and_programs -- --ignored static_program_on_arm64_musl
elif ((${#aarch64_missing[@]} == 0)); then
  echo "test.sh: SKIPPED the aarch64 musl tests: target aarch64-unknown-linux-musl is not installed (setup.sh adds it)" >&2
else
  echo "test.sh: SKIPPED the aarch64 musl tests: missing ${aarch64_missing[*]} (setup.sh installs them)" >&2
fi
# Bare metal: the static heap as the global allocator of a no-OS Cortex-M4 program
# (thumbv7em-none-eabihf), run under qemu-system-arm; SKIPPED where the target or qemu
# is missing (setup.sh installs both).
if [ -d "$(rustc --print sysroot)/lib/rustlib/thumbv7em-none-eabihf" ] &&
  command -v qemu-system-arm >/dev/null 2>&1; then
  bash scripts/bare-metal.sh
else
  echo "test.sh: SKIPPED the bare-metal example: target thumbv7em-none-eabihf or qemu-system-arm is missing (setup.sh installs them)" >&2
fi
# macOS (aarch64-apple-darwin, x86_64-apple-darwin) and Windows with the MSVC toolchain
# (x86_64 and arm64): nothing can be linked for them here (no SDK, no link.exe) nor run
# (no Mac; wine runs only the MinGW build, test-windows.sh), so the core, facade and typed
# crates are compiled as libraries (type-checked and turned into objects, which needs no
# linker) with warnings denied, and linted with clippy where it is installed; the C API
# crate (a .dll/.dylib, which would need the linker) is type-checked. SKIPPED, and said
# so, where rustup could not add a target (setup.sh explains).
for target in aarch64-apple-darwin x86_64-apple-darwin x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
  if ! rustc --print sysroot >/dev/null 2>&1 ||
    [ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]; then
    echo "test.sh: SKIPPED the compile-only build for $target: the target is not installed" >&2
    continue
  fi
  flags_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  env "$flags_var=-D warnings" cargo build -p oxalloc -p oxalloc-typed --lib --target "$target"
  if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy -p oxalloc -p oxalloc-typed --lib --target "$target" -- -D warnings
    cargo clippy -p oxalloc-capi --lib --target "$target" -- -D warnings
  else
    echo "test.sh: SKIPPED clippy for $target: cargo clippy is not installed" >&2
  fi
done
