#!/bin/sh
# Builds xev's C library (release) and installs it under PREFIX:
#   PREFIX/lib/libxev.a, PREFIX/lib/libxev.so (libxev.dylib on macOS),
#   PREFIX/include/xev.h, PREFIX/lib/pkgconfig/xev.pc
# Usage: crates/xev-c/install.sh PREFIX [TARGET]
# Extra cargo flags may be given in CARGO_FLAGS; CARGO_TARGET_DIR is honoured.
#
# Windows (TARGET x86_64-pc-windows-gnu, cross-built on Linux with
# mingw-w64, or no TARGET under MSYS2/Cygwin) installs instead:
#   PREFIX/bin/xev.dll, PREFIX/lib/libxev.dll.a (its import library),
#   PREFIX/lib/libxev.a (static), PREFIX/include/xev.h, PREFIX/lib/pkgconfig/xev.pc
# The import library is made with dlltool from the library's exported xev_*
# functions (DLLTOOL and NM name the tools; by default mingw-w64's
# x86_64-w64-mingw32-* when cross-building, else dlltool and nm).
# `-lxev` then links the DLL; `-l:libxev.a` plus `pkg-config --static
# --libs xev`'s system libraries links statically.
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 PREFIX [TARGET]" >&2; exit 2; }
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
triple=${2:-}
crate=$(cd "$(dirname "$0")" && pwd)
cd "$crate"
target=${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

os=$(uname -s)
case "$triple" in
    *-windows-gnu*) os=windows ;;
    *-windows-*) echo "$0: $triple: only the -gnu Windows target is installed by this script" >&2; exit 2 ;;
    "") case "$os" in MINGW*|MSYS*|CYGWIN*) os=windows ;; esac ;;
esac

if [ -n "$triple" ]; then
    # shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags
    cargo build --release -p xev-c --target "$triple" ${CARGO_FLAGS:-}
    out="$target/$triple/release"
else
    # shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags
    cargo build --release -p xev-c ${CARGO_FLAGS:-}
    out="$target/release"
fi

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$out/libxev_c.a" "$prefix/lib/libxev.a"
cp include/xev.h "$prefix/include/xev.h"

case "$os" in
    windows)
        if [ -n "$triple" ] && [ "$(uname -s)" = Linux ]; then tools=x86_64-w64-mingw32-; else tools=; fi
        dlltool=${DLLTOOL:-${tools}dlltool}
        nm=${NM:-${tools}nm}
        mkdir -p "$prefix/bin"
        cp "$out/xev_c.dll" "$prefix/bin/xev.dll"
        # The DLL exports exactly the C API's functions (the xev_* that
        # the static library defines); the import library names xev.dll.
        def="$prefix/lib/xev.def"
        {
            echo "LIBRARY xev.dll"
            echo "EXPORTS"
            "$nm" -g --defined-only "$out/libxev_c.a" 2>/dev/null | awk '$2 == "T" && $3 ~ /^xev_/ { print "    " $3 }' | sort -u
        } > "$def"
        "$dlltool" -d "$def" -D xev.dll -l "$prefix/lib/libxev.dll.a"
        rm -f "$def"
        # What rustc --print native-static-libs lists for the static library.
        private="-lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp"
        ;;
    Darwin)
        cp "$out/libxev_c.dylib" "$prefix/lib/libxev.dylib"
        install_name_tool -id "$prefix/lib/libxev.dylib" "$prefix/lib/libxev.dylib"
        private="-lSystem -lc -lm"
        ;;
    *)
        cp "$out/libxev_c.so" "$prefix/lib/libxev.so"
        private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
        ;;
esac

sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$private|" \
    xev.pc.in > "$prefix/lib/pkgconfig/xev.pc"
echo "installed xev $version under $prefix"
