#!/usr/bin/env bash
# Packages the crates meant for crates.io as `cargo publish` would upload them
# (target/package/<crate>-<version>.crate) and verifies that each builds from its
# package alone: a path dependency without a version, a file outside the crate or
# missing metadata fails here rather than at publish time. One cargo call packages them
# all: cargo resolves the unpublished siblings to the packages it has just made.
# The C library crate (oxalloc-capi), the benchmark and the assembly tests are not
# published (publish = false). --allow-dirty: a check of the working tree, not a release.
#
#   bash scripts/package.sh [--no-verify]    (extra arguments go to cargo package)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"

crates=(oxalloc-sys oxalloc-core oxalloc oxalloc-typed oxalloc-hardened oxalloc-cli)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done

# Verifying crates that depend on unpublished siblings needs cargo 1.90 (the packages
# made in the same call stand in for the registry); an older cargo only packages them.
minor="$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\)\..*/\1/p')"
if [ "${minor:-0}" -lt 90 ]; then
  echo "package.sh: cargo $(cargo --version | cut -d' ' -f2) cannot verify packages that" \
    "depend on unpublished siblings: packaging with --no-verify" >&2
  args+=(--no-verify)
fi
# cargo unpacks the packages it verifies against into a registry of its own under
# $CARGO_HOME/registry/src/-<hash>/ (one per package directory) and reuses an unpacked
# copy of the same version, as it would a published crate: after an API change the
# verification then builds against the old source, and fails. Remove our crates' copies,
# and the previous run's packages and builds, first.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for c in "${crates[@]}"; do
  rm -rf "$cargo_home"/registry/src/-*/"$c"-[0-9]*
done
rm -rf "$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/package"
cargo package --allow-dirty "${args[@]}" "$@"
