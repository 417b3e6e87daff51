#!/usr/bin/env bash
# Model-checks the lock-free protocols with loom: every interleaving within loom's
# default bounds. tests/loom_remote.rs: the remote-free protocol (src/remote_list.rs),
# pushers against the owner's take and drain, and a thread stealing the waiting list
# (heap/foreign.rs) against both (at most three preemptions). tests/loom_stack.rs: the stacks of
# src/atomic_stack.rs, a heap's stack of spans with remote frees racing its drain, a
# span's release racing its last remote frees, the registry of heaps walked while
# threads create heaps, and a heap changing owners (exit and adoption) while two threads
# free into it (four threads: at most three preemptions). Optimised: unoptimised, they take minutes (a debug `cargo test`
# lists them as ignored).
# Each model prints how many interleavings it explored.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p oxalloc-core --test loom_remote --test loom_stack -- --nocapture
