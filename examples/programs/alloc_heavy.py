"""A small allocation-heavy Python program for `oxalloc run` / `trace` / `map`.

Builds and drops many small objects (dicts, strings, lists) and a few large buffers, so the
allocator sees small, medium and large requests, frees, and a peak followed by a fall.
Runs in well under a second; pass a number to scale it: `python3 alloc_heavy.py 5`.
"""

import sys
import time


def churn(rounds: int) -> int:
    total = 0
    for r in range(rounds):
        table = {f"key-{i}": [i] * (i % 7) for i in range(20_000)}
        total += sum(len(v) for v in table.values())
        del table
    return total


def burst(mib: int) -> int:
    blocks = [bytearray(256 << 10) for _ in range(mib * 4)]
    n = sum(len(b) for b in blocks)
    time.sleep(0.15)  # hold the peak long enough for `trace` and `map` to see it
    del blocks
    time.sleep(0.15)  # and show what happens after the burst is freed
    return n


def main() -> None:
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    n = churn(3 * scale)
    m = burst(64 * scale)
    print(f"alloc_heavy: {n} list items, {m >> 20} MiB burst")


if __name__ == "__main__":
    main()
