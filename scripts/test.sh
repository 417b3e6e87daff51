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
# musl (x86_64-unknown-linux-musl: static, as Rust builds it by default): the core,
# facade and typed tests run natively. Skipped, and said so, only where no rustup could
# add the target (setup.sh explains).
if rustc --print sysroot >/dev/null 2>&1 &&
  [ -d "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-musl" ]; then
  cargo test -p oxalloc-core -p oxalloc -p oxalloc-typed --target x86_64-unknown-linux-musl
else
  echo "test.sh: SKIPPED the musl tests: target x86_64-unknown-linux-musl is not installed" >&2
fi
# Windows (x86_64-pc-windows-gnu, MinGW): the core, facade and typed tests under wine;
# SKIPPED (said, not failed) where the target, MinGW or wine is missing.
bash scripts/test-windows.sh
