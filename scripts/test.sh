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
