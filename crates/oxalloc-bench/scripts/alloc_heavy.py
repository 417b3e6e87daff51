"""Allocation-heavy Python workload for oxalloc-bench.

Run as `python3 -S -B alloc_heavy.py SCALE` with PYTHONMALLOC=malloc, so every object
allocation reaches the C allocator under test (pymalloc would otherwise serve objects up to
512 bytes from its own arenas). Models a data-processing script: records as dicts, string
building, JSON round trips, sorting and grouping, sets, and dropping it all. Deterministic.
"""
import json
import random
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
n = max(1000, int(20000 * scale))
rng = random.Random(1234)
WORDS = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12)))
         for _ in range(2000)]

total = 0
for rnd in range(3):
    # Records: dicts of mixed values, each with its own list and string.
    records = []
    for i in range(n):
        tags = [rng.choice(WORDS) for _ in range(rng.randint(0, 8))]
        records.append({
            "id": i,
            "name": rng.choice(WORDS).title() + " " + rng.choice(WORDS),
            "score": rng.random() * 100,
            "tags": tags,
            "note": "-".join(tags) * rng.randint(1, 4),
        })
    # String building and splitting.
    lines = [f"{r['id']},{r['name']},{r['score']:.3f},{'|'.join(r['tags'])}" for r in records]
    blob = "\n".join(lines)
    parsed = [line.split(",") for line in blob.split("\n")]
    total += len(parsed)
    # JSON round trip of a slice.
    text = json.dumps(records[: n // 4])
    back = json.loads(text)
    total += len(back)
    # Sorting and grouping.
    records.sort(key=lambda r: (r["score"], r["name"]))
    groups = {}
    for r in records:
        for t in r["tags"]:
            groups.setdefault(t, []).append(r["id"])
    total += sum(len(v) for v in groups.values())
    # Sets and tuples, then drop everything.
    seen = {(r["name"], len(r["tags"])) for r in records}
    total += len(seen)
    del records, lines, blob, parsed, text, back, groups, seen

print(total)
