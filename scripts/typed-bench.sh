#!/usr/bin/env bash
# Runs the typed allocators' benchmark (criterion) and prints the table of the crate
# README: per group, oxalloc's median time, the best crate's, and the ratio (below 1.0:
# oxalloc is faster), then the memory lines the benchmark printed. Usage:
#   bash scripts/typed-bench.sh            # all groups (about 2 minutes on 2 cores)
#   bash scripts/typed-bench.sh arena      # only groups whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(cargo bench -q -p oxalloc-typed --bench typed -- "${1:-}" 2>&1) || {
  echo "$out"
  exit 1
}
python3 - "$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/criterion" <<'PY'
import json, os, sys
root = sys.argv[1]
print("| group | oxalloc | best crate | ratio |")
print("|---|---|---|---|")
for group in sorted(os.listdir(root)):
    gdir = os.path.join(root, group)
    if not os.path.isdir(gdir) or group == "report":
        continue
    times = {}
    for dirpath, _, files in os.walk(gdir):
        if "estimates.json" in files and os.path.basename(dirpath) == "new":
            name = os.path.relpath(os.path.dirname(dirpath), gdir).replace(os.sep, "/")
            with open(os.path.join(dirpath, "estimates.json")) as f:
                times[name] = json.load(f)["median"]["point_estimate"] / 1000.0  # us
    ours = {n: t for n, t in times.items() if n.startswith("oxalloc")}
    peers = {n: t for n, t in times.items()
             if not n.startswith("oxalloc") and not n.startswith("system")}
    if not peers:
        continue
    best_peer = min(peers, key=peers.get)
    for n, t in sorted(ours.items()):
        print(f"| {group} ({n}) | {t:.1f} us | {best_peer} {peers[best_peer]:.1f} us | {t / peers[best_peer]:.2f}x |")
PY
grep -E "smallest heap|the peak$|bytes held per live object|the object$" <<<"$out" || true
