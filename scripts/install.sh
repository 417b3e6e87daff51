#!/usr/bin/env bash
# Installs oxalloc into a prefix, as `make install` would:
#   lib:     liboxalloc.so/.a, liboxalloc_hardened.so/.a (a .so as lib<name>.so.<version>
#            with the links lib<name>.so.<major> (its SONAME) and lib<name>.so)
#   include: oxalloc.h, oxalloc_typed.h
#   pkg-config: oxalloc.pc, oxalloc-static.pc, oxalloc-hardened.pc, oxalloc-hardened-static.pc
#   bin:     the oxalloc tool
#
#   PREFIX=/usr/local  LIBDIR=$PREFIX/lib  INCLUDEDIR=$PREFIX/include  BINDIR=$PREFIX/bin
#   PKGCONFIGDIR=$LIBDIR/pkgconfig  DESTDIR=  (staged install: files go under $DESTDIR,
#   the .pc files still name the final paths)
#   OXALLOC_NO_BUILD=1: install what target/release holds without calling cargo.
#
# Builds first with `cargo build --release --workspace` (a no-op when nothing changed; the
# whole workspace, as scripts/test.sh builds it, so that the libraries are linked once with
# the same features). Without cargo on PATH (e.g. under sudo) it installs the built files,
# or stops and says to build them.
# ${prefix}, ${libdir} and ${includedir} in single quotes are pkg-config's variables,
# written into the .pc files as they are.
# shellcheck disable=SC2016
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
LIBDIR="${LIBDIR:-$PREFIX/lib}"
INCLUDEDIR="${INCLUDEDIR:-$PREFIX/include}"
BINDIR="${BINDIR:-$PREFIX/bin}"
PKGCONFIGDIR="${PKGCONFIGDIR:-$LIBDIR/pkgconfig}"
DESTDIR="${DESTDIR:-}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
built="$target_dir/release"

for dir in "$PREFIX" "$LIBDIR" "$INCLUDEDIR" "$BINDIR" "$PKGCONFIGDIR"; do
  case "$dir" in
  /*) ;;
  *)
    echo "install.sh: $dir is not an absolute path (PREFIX, LIBDIR, ... must be)" >&2
    exit 2
    ;;
  esac
done

cargo="$(command -v cargo || true)"
[ -n "$cargo" ] || [ ! -x "$HOME/.cargo/bin/cargo" ] || cargo="$HOME/.cargo/bin/cargo"
if [ "${OXALLOC_NO_BUILD:-0}" != 1 ] && [ -n "$cargo" ]; then
  (cd "$root" && "$cargo" build --release --workspace)
fi

files=(liboxalloc.so liboxalloc.a liboxalloc_hardened.so liboxalloc_hardened.a oxalloc)
for f in "${files[@]}"; do
  if [ ! -f "$built/$f" ]; then
    echo "install.sh: $built/$f is missing: build it first (cargo build --release)" >&2
    exit 1
  fi
done

# The version of every crate (the workspace's), for the file names and the .pc files.
version="$(awk -F'"' '/^\[workspace.package\]/ { w = 1 } w && /^version *=/ { print $2; exit }' \
  "$root/Cargo.toml")"
[ -n "$version" ] || {
  echo "install.sh: no version in $root/Cargo.toml [workspace.package]" >&2
  exit 1
}

# A .so with a SONAME (set by the crate's build.rs) is installed as lib<name>.so.<version>
# with the SONAME link the loader follows and the lib<name>.so link the linker's
# -l<name> finds; one without (a non-ELF-SONAME build) as itself. Mode 0644: the loader
# maps a library without its execute bit (Debian's policy for shared libraries).
install_shared() {
  local lib="$1" dest="$DESTDIR$LIBDIR" soname
  soname="$(readelf -d "$built/$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')"
  if [ -n "$soname" ]; then
    install -m 0644 "$built/$lib" "$dest/$lib.$version"
    [ "$soname" = "$lib.$version" ] || ln -sfn "$lib.$version" "$dest/$soname"
    ln -sfn "$soname" "$dest/$lib"
  else
    install -m 0644 "$built/$lib" "$dest/$lib"
  fi
}

# A path in a .pc file: relative to ${prefix} when under it, so that
# `pkg-config --define-prefix` can move the tree.
pc_path() {
  case "$1" in
  "$PREFIX") echo '${prefix}' ;;
  "$PREFIX"/*) echo "\${prefix}${1#"$PREFIX"}" ;;
  *) echo "$1" ;;
  esac
}

# write_pc NAME DESCRIPTION CFLAGS LIBS LIBS_PRIVATE
write_pc() {
  cat >"$DESTDIR$PKGCONFIGDIR/$1.pc" <<EOF
prefix=$PREFIX
libdir=$(pc_path "$LIBDIR")
includedir=$(pc_path "$INCLUDEDIR")

Name: $1
Description: $2
URL: https://github.com/oxalloc/oxalloc
Version: $version
Cflags: $3
Libs: $4
Libs.private: $5
EOF
  chmod 0644 "$DESTDIR$PKGCONFIGDIR/$1.pc"
}

install -d "$DESTDIR$LIBDIR" "$DESTDIR$INCLUDEDIR" "$DESTDIR$BINDIR" "$DESTDIR$PKGCONFIGDIR"
install_shared liboxalloc.so
install_shared liboxalloc_hardened.so
install -m 0644 "$built/liboxalloc.a" "$built/liboxalloc_hardened.a" "$DESTDIR$LIBDIR/"
install -m 0644 "$root"/include/*.h "$DESTDIR$INCLUDEDIR/"
install -m 0755 "$built/oxalloc" "$DESTDIR$BINDIR/"

# What the static archives need besides themselves (rustc --print native-static-libs;
# the hardened build links Rust's std, hence -lutil). With both the .so and the .a in
# one directory `-loxalloc` picks the .so, so the static link has its own .pc that names
# the archive (`-l:liboxalloc.a`, GNU ld and lld: CMake keeps it after the program's
# objects, where a path to the archive would land before them); its libraries are in
# Libs, for tools that do not pass --static (CMake's pkg_check_modules).
static_libs="-lpthread -ldl -lm -lrt -lgcc_s"
hardened_static_libs="-lpthread -ldl -lm -lrt -lutil -lgcc_s"
write_pc oxalloc "oxalloc memory allocator: malloc and the ox_ functions (liboxalloc.so)" \
  '-I${includedir}' '-L${libdir} -loxalloc' "$static_libs"
write_pc oxalloc-static "oxalloc memory allocator, linked statically (liboxalloc.a)" \
  '-I${includedir}' "-L\${libdir} -l:liboxalloc.a $static_libs" ""
# The hardened build exports the standard names only (no ox_ functions): no header.
write_pc oxalloc-hardened "hardened oxalloc: a malloc that stops heap misuse (liboxalloc_hardened.so)" \
  "" '-L${libdir} -loxalloc_hardened' "$hardened_static_libs"
write_pc oxalloc-hardened-static "hardened oxalloc, linked statically (liboxalloc_hardened.a)" \
  "" "-L\${libdir} -l:liboxalloc_hardened.a $hardened_static_libs" ""

# A real install as root into a directory the loader searches: refresh its cache, so
# that programs find liboxalloc.so.<major> without LD_LIBRARY_PATH.
in_loader_path() {
  case "$LIBDIR" in /lib | /usr/lib | /lib64 | /usr/lib64) return 0 ;; esac
  grep -qsxF "$LIBDIR" /etc/ld.so.conf /etc/ld.so.conf.d/*.conf
}
if [ -z "$DESTDIR" ] && [ "$(id -u)" -eq 0 ] && in_loader_path && command -v ldconfig >/dev/null; then
  ldconfig
fi
echo "install.sh: installed oxalloc $version into $DESTDIR$PREFIX (libraries in $DESTDIR$LIBDIR)"
