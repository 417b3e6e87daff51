#!/usr/bin/env bash
# Soak: runs tests/c/soak.c for SECONDS (default 60) under LD_PRELOAD of each build,
# liboxalloc.so then liboxalloc_hardened.so: rounds of threads created and joined,
# blocks of 1 B to 48 MiB checked on every free and realloc, calloc checked zero,
# cross-thread frees, fork from the threaded process, malloc_trim from a side thread,
# the purger running. Prints the operations each build did; exits non-zero at the
# first corruption, crash or hang. Usage: bash scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash scripts/soak.sh [SECONDS] (per build; default 60)" >&2
  exit 2
fi
export PATH="$PATH:$HOME/.cargo/bin"
# The libraries as the README builds them (the workspace unifies features; a no-op
# after test.sh's own build).
cargo build --release --workspace
mkdir -p target/soak
cc -O2 -g -Wall -Wextra -Werror -pthread -o target/soak/soak tests/c/soak.c

# A short purge delay keeps the background purger busy giving pages back while the
# workers reuse them (the default, 10 ms, is longer than most of a round's gaps).
export OXALLOC_PURGE_DELAY_MS="${OXALLOC_PURGE_DELAY_MS:-2}"
for lib in liboxalloc.so liboxalloc_hardened.so; do
  echo "soak.sh: $lib for ${seconds} s"
  # soak.c ends itself with SIGALRM 120 s after its time; timeout is the last resort
  # (a process stuck where signals cannot end it).
  if ! timeout --signal=KILL $((seconds + 180)) \
    env LD_PRELOAD="$PWD/target/release/$lib" target/soak/soak "$seconds" --expect-lib "$lib"; then
    echo "soak.sh: FAILED under $lib" >&2
    exit 1
  fi
done
echo "soak.sh: both builds ran ${seconds} s each without a corruption"
