#!/bin/sh
# Builds every C example against an installed xev (crates/xev-c/install.sh
# PREFIX) through pkg-config, with strict warnings, and runs each once:
#   crates/xev-c/examples/c/run.sh PREFIX [MILLION_TIMERS_COUNT]
# For Windows (a prefix from install.sh PREFIX x86_64-pc-windows-gnu), set
# CC to mingw-w64's compiler and RUN to what runs Windows programs here:
#   CC=x86_64-w64-mingw32-gcc RUN=wine crates/xev-c/examples/c/run.sh PREFIX 20000
# The examples then link xev.dll (through libxev.dll.a), which is copied
# next to them.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [TIMERS]" >&2; exit 2; }
prefix=$(cd "$1" && pwd)
timers=${2:-1000000}
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/xev-c-examples.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cc=${CC:-cc}
case "$($cc -dumpmachine)" in
    # tcp_echo calls WinSock itself (getsockname, htons).
    *mingw*|*windows*|*cygwin*) exe=.exe; threads=; own=-lws2_32; cp "$prefix/bin/xev.dll" "$out/" ;;
    *) exe=; threads=-pthread; own= ;;
esac
for example in timer async threadpool million_timers tcp_echo; do
    # shellcheck disable=SC2046,SC2086 # pkg-config prints a list of flags
    $cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic $threads \
        -o "$out/$example$exe" "$here/$example.c" $(pkg-config --cflags --libs xev) $own
done
# shellcheck disable=SC2086 # RUN may be a command with arguments
run() { ${RUN:-} "$@"; }
run "$out/timer$exe"
run "$out/async$exe"
run "$out/threadpool$exe"
run "$out/million_timers$exe" "$timers"
run "$out/tcp_echo$exe" 5
echo "all C examples ran"
