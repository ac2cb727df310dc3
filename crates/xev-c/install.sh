#!/bin/sh
# Builds xev's C library (release) and installs it under PREFIX:
#   PREFIX/lib/libxev.a, PREFIX/lib/libxev.so (libxev.dylib on macOS),
#   PREFIX/include/xev.h, PREFIX/lib/pkgconfig/xev.pc
# Usage: crates/xev-c/install.sh PREFIX
# Extra cargo flags may be given in CARGO_FLAGS; CARGO_TARGET_DIR is honoured.
# (Windows is not supported yet: the C API is not ported to IOCP.)
set -eu
[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
crate=$(cd "$(dirname "$0")" && pwd)
cd "$crate"
# shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags
cargo build --release -p xev-c ${CARGO_FLAGS:-}
target=${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}
out="$target/release"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

case "$(uname -s)" in
    Darwin) shared=libxev.dylib; built=libxev_c.dylib; private="-lSystem -lc -lm" ;;
    *) shared=libxev.so; built=libxev_c.so; private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc" ;;
esac

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$out/libxev_c.a" "$prefix/lib/libxev.a"
cp "$out/$built" "$prefix/lib/$shared"
if [ "$(uname -s)" = Darwin ]; then
    install_name_tool -id "$prefix/lib/$shared" "$prefix/lib/$shared"
fi
cp include/xev.h "$prefix/include/xev.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$private|" \
    xev.pc.in > "$prefix/lib/pkgconfig/xev.pc"
echo "installed xev $version under $prefix"
