#!/usr/bin/env bash
# Model-checks the remote-free protocol (crates/oxalloc-core/src/remote_list.rs) with
# loom: every interleaving of pushers and the owner within loom's default bounds.
# Each model prints how many interleavings it explored.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p oxalloc-core --test loom_remote -- --nocapture
