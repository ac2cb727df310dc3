#!/bin/sh
# Builds every C example against an installed xev (crates/xev-c/install.sh
# PREFIX) through pkg-config, with strict warnings, and runs each once:
#   crates/xev-c/examples/c/run.sh PREFIX [MILLION_TIMERS_COUNT]
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
for example in timer async threadpool million_timers tcp_echo; do
    # shellcheck disable=SC2046 # pkg-config prints a list of flags
    ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -pedantic -pthread \
        -o "$out/$example" "$here/$example.c" $(pkg-config --cflags --libs xev)
done
"$out/timer"
"$out/async"
"$out/threadpool"
"$out/million_timers" "$timers"
"$out/tcp_echo" 5
echo "all C examples ran"
