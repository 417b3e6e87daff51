#!/usr/bin/env bash
# Alternating A/B timing of one benchmark workload under several builds of the library:
# each round runs every build once, in turn, so slow phases of a noisy machine hit all
# of them alike; prints each build's median time, median CPU time (user + system: it
# tells builds apart when the wall time of threaded rows on 2 cores cannot) and median
# peak RSS.
#
#   bash scripts/ab.sh RUNS WORKLOAD THREADS LIB.so [LIB.so ...]
#   bash scripts/ab.sh 9 larson 1 /tmp/old.so target/release/liboxalloc.so
#
# Needs target/release/oxalloc-bench (cargo build --release --workspace). On the 2-core
# VMs a single run varies by 15% or more: use 9 runs or more for a change of a few percent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n '6,7p' "$0" >&2; exit 2; }
runs=$1 workload=$2 threads=$3
shift 3
declare -A secs cpu rss
for _ in $(seq "$runs"); do
  for lib in "$@"; do
    out=$({ /usr/bin/time -f "RSS %M CPU %U %S" env LD_PRELOAD="$lib" \
      target/release/oxalloc-bench work "$workload" --threads "$threads"; } 2>&1)
    secs[$lib]+=" $(grep -o '"secs":[0-9.]*' <<<"$out" | cut -d: -f2)"
    rss[$lib]+=" $(grep -o 'RSS [0-9]*' <<<"$out" | cut -d' ' -f2)"
    cpu[$lib]+=" $(grep -o 'CPU [0-9.]* [0-9.]*' <<<"$out" | awk '{print $2 + $3}')"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for lib in "$@"; do
  printf '%s/t%s %s: median %s s, CPU %s s, peak RSS %s KiB (runs:%s)\n' "$workload" \
    "$threads" "$lib" "$(median <<<"${secs[$lib]}")" "$(median <<<"${cpu[$lib]}")" \
    "$(median <<<"${rss[$lib]}")" "${secs[$lib]}"
done
