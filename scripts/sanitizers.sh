#!/usr/bin/env bash
# Miri and ThreadSanitizer: both need nightly Rust, which CI's machine does not use, so
# this script is run by hand (it installs what it needs through rustup):
#   miri  Miri (undefined behaviour: aliasing, provenance, uninitialised reads, leaks) on
#         oxalloc-typed's tests, the property tests with a few cases each (Miri runs
#         code about a thousand times slower), and on oxalloc-core's pure data-structure
#         unit tests (size classes, the formatter, the page-return policy).
#   tsan  ThreadSanitizer on oxalloc-core's thread tests (the standard library rebuilt
#         with the sanitizer: -Zbuild-std; the dev profile's panic=abort is switched to
#         unwind there, or the rebuilt panic_abort crate does not match).
# Usage: bash scripts/sanitizers.sh [miri|tsan|all]   (default: all; about 30 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
what="${1:-all}"

if ! rustup run nightly cargo miri --version >/dev/null 2>&1 ||
  ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "sanitizers: installing nightly Rust with miri and rust-src"
  rustup toolchain install nightly --profile minimal --component miri,rust-src
fi
host="$(rustc -vV | sed -n 's/^host: //p')"

if [ "$what" = miri ] || [ "$what" = all ]; then
  # Isolation off: proptest reads the working directory (for its regression files).
  export MIRIFLAGS="-Zmiri-disable-isolation"
  export PROPTEST_CASES=4
  # The tests that build and run other programs (C ABI through cc, the no_std example)
  # cannot run inside Miri; `sync` (threads spinning on locks) did not finish in 20
  # minutes there.
  for t in arena pool slab stack static_heap; do
    echo "sanitizers: miri: oxalloc-typed --test $t"
    cargo +nightly miri test -q -p oxalloc-typed --test "$t"
  done
  echo "sanitizers: miri: oxalloc-typed unit tests"
  cargo +nightly miri test -q -p oxalloc-typed --lib
  echo "sanitizers: miri: oxalloc-core pure unit tests"
  cargo +nightly miri test -q -p oxalloc-core --lib -- size_class:: fmt:: page_return::
fi

if [ "$what" = tsan ] || [ "$what" = all ]; then
  echo "sanitizers: tsan: oxalloc-core thread and statistics tests"
  RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" \
    TSAN_OPTIONS="halt_on_error=1" \
    cargo +nightly test -q -Zbuild-std --target "$host" \
    --config 'profile.dev.panic="unwind"' -p oxalloc-core \
    --test threads --test producer_consumer --test remote_reuse \
    --test class_counts --test large_counts --test bytes_allocated --test huge \
    --test trim_abandoned --test collect_one_abandoned --test idle_release
fi
echo "sanitizers: $what: done, no error"
