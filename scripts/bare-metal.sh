#!/usr/bin/env bash
# Builds examples/bare_metal_heap (a no_std, no-OS Cortex-M4 program whose global
# allocator is oxalloc-typed's static heap on a .bss array) for thumbv7em-none-eabihf,
# runs it under qemu-system-arm (board mps2-an386, output by semihosting), and checks
# what it prints and its exit status. setup.sh installs the target and qemu-system-arm.
set -euo pipefail
cd "$(dirname "$0")/../examples/bare_metal_heap"
out=$(timeout 120 cargo run --quiet --release 2>&1) || {
  echo "$out"
  echo "bare-metal: the program failed under qemu-system-arm" >&2
  exit 1
}
echo "$out"
for line in "heap in .bss at 0x2" "vec sum=5050" "box=42" "string=bare metal heap" \
  "map len=50 m[7]=49" "try_reserve 64 KiB refused=true" \
  "after free: used_blocks=0 free_blocks=1 check=true"; do
  grep -qF "$line" <<<"$out" || {
    echo "bare-metal: missing \"$line\" in the output" >&2
    exit 1
  }
done
[ "$(tail -n 1 <<<"$out")" = ok ] || {
  echo "bare-metal: the last line is not \"ok\"" >&2
  exit 1
}
echo "bare-metal: the static heap ran as the global allocator of a thumbv7em-none-eabihf program under qemu-system-arm: ok"
