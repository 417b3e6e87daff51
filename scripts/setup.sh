#!/usr/bin/env bash
# Installs what building and testing oxalloc needs on a fresh Debian machine:
# a C/C++ toolchain and nasm for the C, C++ and assembly tests, pkg-config, cmake and
# dpkg-dev for the install and Debian package tests, the real programs the
# tests run under the allocator, the peer allocators the benchmark compares with, and
# Chromium for the map page screenshot test, the aarch64 cross compilers (C and C++)
# and qemu-user for the emulated aarch64 tests, musl-gcc for the static musl C
# programs, qemu-system-arm for the bare-metal Cortex-M example, wine for the Windows
# tests, and stable Rust (rustup) when no cargo is found. Safe to run again: it
# installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=(
  build-essential g++ nasm pkg-config cmake dpkg-dev
  python3 sqlite3 git perl curl ca-certificates
  libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4
  chromium valgrind hyperfine
  gcc-mingw-w64-x86-64 wine wine64
  qemu-user-static gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
  musl-tools qemu-system-arm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: stable from rustup (Debian's packaged rustc is older than the 1.87 we need),
# into ~/.cargo unless a cargo is already on PATH or there.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "setup: installing Rust (stable) with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain stable >/dev/null
fi
# The musl target (static Rust programs, Alpine): test.sh builds and runs the core,
# facade and typed tests for it. Rust's musl target carries its own libc.a and crt
# files and links with the host cc; musl-tools (above) is for the C programs that
# test.sh links statically against the musl liboxalloc.a with musl-gcc.
rustup_bin="$(command -v rustup 2>/dev/null || echo "$HOME/.cargo/bin/rustup")"
if [ -x "$rustup_bin" ]; then
  # Windows (MinGW) is built and tested under wine by test-windows.sh; aarch64 Linux is
  # cross-built and run under qemu-user by test.sh, linking with Debian's
  # gcc-aarch64-linux-gnu (installed above), for glibc and for musl (Rust's musl target
  # brings its own libc.a and crt files; the cross gcc only links); macOS (arm64, x86-64)
  # and Windows with MSVC (x86-64, arm64) are only compiled by test.sh (no SDK or
  # link.exe to link with, nothing to run them on); thumbv7em-none-eabihf (Cortex-M4F,
  # no OS) builds the bare-metal example that bare-metal.sh runs under qemu-system-arm.
  for target in x86_64-unknown-linux-musl x86_64-pc-windows-gnu aarch64-unknown-linux-gnu \
    aarch64-unknown-linux-musl aarch64-apple-darwin x86_64-apple-darwin thumbv7em-none-eabihf \
    x86_64-pc-windows-msvc aarch64-pc-windows-msvc; do
    if ! "$rustup_bin" target list --installed | grep -qx "$target"; then
      echo "setup: adding the Rust target $target"
      "$rustup_bin" target add "$target" >/dev/null
    fi
  done
else
  echo "setup: no rustup: cannot add x86_64-unknown-linux-musl, x86_64-pc-windows-gnu," \
    "aarch64-unknown-linux-gnu, aarch64-unknown-linux-musl, thumbv7em-none-eabihf, aarch64-apple-darwin," \
    "x86_64-apple-darwin, x86_64-pc-windows-msvc or aarch64-pc-windows-msvc" \
    "(test.sh will skip them)" >&2
fi
echo "setup: all set"
