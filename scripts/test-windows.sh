#!/usr/bin/env bash
# Windows (x86_64-pc-windows-gnu): builds the core, facade and typed crates with MinGW
# and runs their tests under wine, then oxalloc.dll with a C program against its import
# library. Called by test.sh; prints SKIPPED and succeeds where the target, MinGW or
# wine is missing (setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
target=x86_64-pc-windows-gnu
# Debian's wine64 package keeps its loader in /usr/lib/wine (the `wine` package puts
# `wine` on PATH); without this fallback the tests were skipped on such a machine.
wine_bin="$(command -v wine64 || command -v wine || ls /usr/lib/wine/wine64 2>/dev/null || true)"
if ! { rustc --print sysroot >/dev/null 2>&1 &&
  [ -d "$(rustc --print sysroot)/lib/rustlib/$target" ]; }; then
  echo "test-windows.sh: SKIPPED the Windows tests: target $target is not installed" >&2
  exit 0
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || [ -z "$wine_bin" ]; then
  echo "test-windows.sh: SKIPPED the Windows tests: needs x86_64-w64-mingw32-gcc and wine" >&2
  exit 0
fi

# A wine prefix of our own, made once, quietly (no display needed).
export WINEPREFIX="$PWD/target/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
  mkdir -p "$WINEPREFIX"
  "$wine_bin" wineboot --init >/dev/null 2>&1 || true
fi
# Wine before 9 has no bcryptprimitives.dll, whose ProcessPrng Rust's std imports
# (Rust 1.78+): every test program would fail to load. Put a stand-in there.
sys32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -f "$sys32/bcryptprimitives.dll" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" \
    scripts/wine/bcryptprimitives.c scripts/wine/bcryptprimitives.def -ladvapi32
fi

# One wineserver for the whole run. Started by the first program, it quits a few seconds
# after the last one exits, and a test program that started while it was quitting
# exited with status 1 before running anything (CI, large_counts, once).
wineserver_bin="$(command -v wineserver || ls /usr/lib/wine/wineserver64 2>/dev/null || true)"
if [ -n "$wineserver_bin" ]; then
  "$wineserver_bin" -k 2>/dev/null || true # the one wineboot left, if any
  "$wineserver_bin" -p || true
  trap '"$wineserver_bin" -k 2>/dev/null || true' EXIT
fi

export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine_bin"
cargo test -p oxalloc-core -p oxalloc -p oxalloc-typed --target "$target"
# The C API: tests/c/dll_test.c built with MinGW against oxalloc.dll's import library and
# run under wine in the prefix above, by a host test (ignored by a plain cargo test,
# which cannot count on MinGW and wine).
cargo test --workspace --test c_and_programs -- --ignored windows_
