#!/usr/bin/env bash
# wine-setup.sh DIR
#
# Prepares a Debian machine to run x86_64-pc-windows-gnu binaries (cargo
# test, examples) under wine, with everything it creates kept under DIR:
#
#   - installs wine, wine64 and gcc-mingw-w64-x86-64 if missing (apt-get;
#     needs root or sudo), and the rustup target x86_64-pc-windows-gnu;
#   - builds DIR/bcryptprimitives.dll from bcryptprimitives.c (next to this
#     script, or in windows/ next to it): a ProcessPrng stand-in, which Rust
#     std binaries import and wine < 9 lacks (without it they exit with 53);
#   - creates the wine prefix DIR/prefix (wineboot -i, log in
#     DIR/wineboot.log) and copies the DLL into its system32 (only when the
#     prefix has no bcryptprimitives.dll of wine's own, i.e. wine < 9);
#   - starts a persistent wineserver for the prefix (saves wine's start-up
#     per binary) and checks, with a small mingw program, that ProcessPrng
#     loads and works;
#   - prints `export` lines on stdout, for eval:
#
#       eval "$(.ci/wine-setup.sh target/wine)"
#       cargo test --target x86_64-pc-windows-gnu
#
# Everything else goes to stderr. On failure it prints an error to stderr,
# prints `false` on stdout (so `eval "$(...)"` fails too under `set -e`) and
# exits non-zero. Running it again is cheap: what is there is kept.
#
# wine-setup.sh DIR --stop   stops the prefix's wineserver (and its programs).
set -Eeuo pipefail

me=wine-setup
die() {
    echo "$me: error: $*" >&2
    echo false
    exit 1
}
trap 'rc=$?; echo "$me: error: command failed (status $rc, line $LINENO): $BASH_COMMAND" >&2; echo false; exit $rc' ERR
log() { echo "$me: $*" >&2; }

[ $# -ge 1 ] && [ -n "$1" ] || die "usage: $0 DIR [--stop]   (e.g. $0 target/wine)"
mkdir -p "$1" || die "cannot create $1"
dir="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export WINEPREFIX="$dir/prefix"
export WINEDEBUG=-all
# No prompts for wine-mono / wine-gecko when the prefix is created.
export WINEDLLOVERRIDES="mscoree,mshtml="

if [ "${2:-}" = "--stop" ]; then
    command -v wineserver >/dev/null && [ -d "$WINEPREFIX" ] && wineserver -k 2>/dev/null || true
    log "wineserver for $WINEPREFIX stopped"
    exit 0
fi

# --- (a) packages -----------------------------------------------------------
pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
missing=()
if command -v dpkg-query >/dev/null; then
    for p in wine wine64 gcc-mingw-w64-x86-64; do
        pkg_installed "$p" || missing+=("$p")
    done
else
    command -v wine >/dev/null || missing+=(wine wine64)
    command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
fi
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing ${missing[*]}: run as root (or install them)"
        sudo=(sudo -n)
    fi
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        wine wine64 gcc-mingw-w64-x86-64 >&2 || die "apt-get install wine wine64 gcc-mingw-w64-x86-64 failed"
fi
for c in wine wineserver wineboot x86_64-w64-mingw32-gcc; do
    command -v "$c" >/dev/null || die "$c not found on PATH after installing packages"
done
wine_version="$(wine --version 2>/dev/null)" || die "wine --version failed"

# --- (b) rust target --------------------------------------------------------
command -v rustup >/dev/null || die "rustup not found (needed for the x86_64-pc-windows-gnu target)"
installed_targets="$(rustup target list --installed 2>/dev/null || true)"
if ! grep -qx x86_64-pc-windows-gnu <<<"$installed_targets"; then
    log "adding rust target x86_64-pc-windows-gnu"
    rustup target add x86_64-pc-windows-gnu >&2 || die "rustup target add x86_64-pc-windows-gnu failed"
fi

# --- (c) the ProcessPrng stand-in -------------------------------------------
src=
for s in "$here/bcryptprimitives.c" "$here/windows/bcryptprimitives.c"; do
    [ -f "$s" ] && { src="$s"; break; }
done
[ -n "$src" ] || die "bcryptprimitives.c not found next to $0 (or in windows/ there)"
dll="$dir/bcryptprimitives.dll"
if [ ! -f "$dll" ] || [ "$src" -nt "$dll" ]; then
    log "building $dll"
    x86_64-w64-mingw32-gcc -shared -O2 -s -o "$dll.tmp" "$src" -lbcrypt >&2 \
        || die "building bcryptprimitives.dll with mingw failed"
    mv -f "$dll.tmp" "$dll"
fi

# A tiny program that loads the DLL the way Rust std does and calls it.
# (In its own directory: LoadLibrary looks in the program's directory first.)
check_exe="$dir/check/processprng-check.exe"
if [ ! -f "$check_exe" ] || [ "$0" -nt "$check_exe" ]; then
    mkdir -p "$dir/check"
    cat >"$dir/check/processprng-check.c" <<'EOF'
#include <windows.h>
typedef BOOL (WINAPI *prng_fn)(PBYTE, SIZE_T);
int main(void)
{
    unsigned char buf[64] = {0};
    HMODULE m = LoadLibraryA("bcryptprimitives.dll");
    prng_fn f = m ? (prng_fn)(void *)GetProcAddress(m, "ProcessPrng") : NULL;
    int i, any = 0;
    if (!f) return 2;
    if (!f(buf, sizeof buf)) return 3;
    for (i = 0; i < (int)sizeof buf; i++) any |= buf[i];
    return any ? 0 : 4;
}
EOF
    x86_64-w64-mingw32-gcc -O2 -s -o "$check_exe.tmp" "$dir/check/processprng-check.c" >&2 \
        || die "building the ProcessPrng check program failed"
    mv -f "$check_exe.tmp" "$check_exe"
fi

# --- (d) prefix -------------------------------------------------------------
mkdir -p "$WINEPREFIX"
# wineserver -p: exits 0 when it started one, 2 when one already runs for
# this prefix (the prefix directory must exist first). Its descriptors must not be the caller's (a daemon holding
# a $(...) or `| tee` pipe would make the caller wait forever).
wineserver -p </dev/null >/dev/null 2>&1 || true
sys32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -f "$WINEPREFIX/system.reg" ] || [ ! -d "$sys32" ]; then
    log "creating wine prefix $WINEPREFIX ($wine_version)"
    wineboot -i </dev/null >"$dir/wineboot.log" 2>&1 \
        || die "wineboot -i failed (see $dir/wineboot.log)"
    [ -d "$sys32" ] || die "wineboot did not create $sys32 (see $dir/wineboot.log)"
    # A persistent wineserver keeps the registry in memory: stop it now so
    # that it writes system.reg (the marker above), then start it again.
    wineserver -k </dev/null >/dev/null 2>&1 || true
    wineserver -w </dev/null >/dev/null 2>&1 || true
    [ -f "$WINEPREFIX/system.reg" ] || die "wine prefix $WINEPREFIX has no registry after wineboot (see $dir/wineboot.log)"
fi
if [ -f "$sys32/bcryptprimitives.dll" ] && ! cmp -s "$dll" "$sys32/bcryptprimitives.dll" \
    && grep -qa 'Wine builtin DLL' "$sys32/bcryptprimitives.dll"; then
    log "$wine_version has its own bcryptprimitives.dll: stand-in not installed"
elif ! cmp -s "$dll" "$sys32/bcryptprimitives.dll"; then
    cp -f "$dll" "$sys32/bcryptprimitives.dll"
    log "installed the ProcessPrng stand-in in $sys32"
fi

# --- (e) persistent wineserver ------------------------------------------------
# Start it (again): wineboot above stopped it to save the registry, or it was
# stopped since the last run (--stop, reboot). Runs until `wineserver -k`.
wineserver -p </dev/null >/dev/null 2>&1 || true

# Check: the loader finds ProcessPrng and it returns random bytes.
set +e
wine "$check_exe" </dev/null >/dev/null 2>&1
rc=$?
set -e
case $rc in
    0) ;;
    2) die "ProcessPrng not found in bcryptprimitives.dll under $wine_version (prefix $WINEPREFIX)" ;;
    3|4) die "ProcessPrng did not return random bytes under $wine_version" ;;
    *) die "running a Windows program under wine failed (status $rc; prefix $WINEPREFIX)" ;;
esac
log "ready: $wine_version, prefix $WINEPREFIX"

# --- (f) environment for the caller -----------------------------------------
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
echo "export WINEPREFIX=$(q "$WINEPREFIX")"
echo "export WINEDEBUG=-all"
echo "export WINEDLLOVERRIDES='$WINEDLLOVERRIDES'"
echo "export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine"
