#!/usr/bin/env bash
# Fault injection (issue 21): builds oxalloc-core's fault tests with the test-only
# feature `fault-injection` (oxalloc-sys's hook, absent from every shipped build) and
# runs them. tests/fault_regressions.rs checks each bug the walk found; tests/faults.rs
# runs seven workloads (small, large, huge, realloc growth, threads, the brk page
# source, guard slices) once to count the calls that map or change memory, then once
# per call with that call refused and once with it and every later one refused, each
# in a fresh process, checking ENOMEM, block contents, calloc zeroes, no leak, no
# crash, no hang. Arguments pick workloads by name (all by default). The last line
# says how many failure points were tried; exits non-zero on any failure.
# Usage: bash scripts/faults.sh [WORKLOAD...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
cargo test -p oxalloc-core --features fault-injection --test fault_regressions
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! cargo test -p oxalloc-core --features fault-injection --test faults -- "$@" 2>&1 |
  tee "$log"; then
  grep '^faults: .*FAILED' "$log" | tail -n 1 >&2 || true
  echo "faults.sh: FAILED (the failure points above)" >&2
  exit 1
fi
# The test's own summary must be the last line: cargo prints nothing after a passing
# harness-less test; if that ever changes, the summary is said again.
summary="$(grep '^faults: .* failure points tried over' "$log" | tail -n 1)"
if [ -z "$summary" ]; then
  echo "faults.sh: FAILED: the test printed no summary" >&2
  exit 1
fi
if [ "$(tail -n 1 "$log")" != "$summary" ]; then
  echo "$summary"
fi
