#!/usr/bin/env bash
# modern-root.sh — create (or reuse) the "modern PipeWire" root used by the
# second test leg (issue 9): a Debian 12 (bookworm) tree whose PipeWire daemon,
# client library (libpipewire-0.3.so.0), SPA plugins, WirePlumber, GStreamer
# pipewire plugin and dbus come from bookworm-backports (PipeWire 1.4.x,
# WirePlumber 0.5.x), while the host keeps its own PipeWire 0.3.65. The host is
# not modified (apart from the cache directory below).
#
# Usage: scripts/modern-root.sh [--rebuild] [--print-root]
#
# The root lives OUTSIDE the checkout, at $WRD_MODERN_ROOT (default
# /var/cache/wrd-capture/bookworm-bpo), so that every checkout/worktree and
# every CI run on the same machine reuses one root: building it costs minutes
# (debootstrap + apt), reusing it costs nothing. It is rebuilt only when
#   * it is missing or half-built (the stamp file is written last), or
#   * the recipe (package lists, suites, mirror) changed, or
#   * --rebuild is given.
# A rebuild happens in "$ROOT.new" and is swapped in at the end, under an
# exclusive flock on "$ROOT.lock"; scripts/in-modern-root.sh holds a shared
# lock on the same file while it runs, so a rebuild never pulls the tree out
# from under a running leg, and two builds never run at once.
#
# Environment:
#   WRD_MODERN_ROOT         root path (default /var/cache/wrd-capture/bookworm-bpo)
#   WRD_MODERN_MIRROR       Debian mirror URL (default: the one serving bookworm
#                           in this machine's /etc/apt/sources.list*)
#   WRD_MODERN_PW_VERSION   required PipeWire version (default 1.4.2; empty = any)
#   WRD_MODERN_WP_VERSION   required WirePlumber version (default 0.5.8; empty = any)
#   WRD_MODERN_EXTRA_PKGS   extra packages (space separated) for the root
#   WRD_MODERN_LOCK_WAIT    seconds to wait for the lock (default 3600)
set -euo pipefail

ROOT=${WRD_MODERN_ROOT:-/var/cache/wrd-capture/bookworm-bpo}
ROOT=${ROOT%/}
PW_WANT=${WRD_MODERN_PW_VERSION-1.4.2}
WP_WANT=${WRD_MODERN_WP_VERSION-0.5.8}
SUITE=bookworm
BPO=bookworm-backports
STAMP_NAME=.wrd-modern-root.stamp
LOCK="$ROOT.lock"

REBUILD=0
PRINT_ROOT=0
for a in "$@"; do
    case "$a" in
        --rebuild) REBUILD=1 ;;
        --print-root) PRINT_ROOT=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "modern-root: unknown argument: $a" >&2; exit 2 ;;
    esac
done

log() { printf 'modern-root: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"

# --- packages ---------------------------------------------------------------
# From bookworm (same versions as the host): what the host-built test binaries
# and test scripts need at run time besides PipeWire, as in
# scripts/install-deps.sh. The GPU bits mirror the host (EGL/GBM/mesa, Vulkan
# loader and mesa's drivers, loaded with dlopen by the GPU import code). The C
# toolchain is for the C API tests, which compile small C programs against the
# installed header at run time (tests/c_api.rs: make install, cc, c++,
# pkg-config); the Rust toolchain is the host's, bound in by in-modern-root.sh.
BASE_PKGS="ca-certificates procps util-linux psmisc bash coreutils findutils grep sed
 python3 python3-pytest python3-numpy
 libgcc-s1 libstdc++6 zlib1g libpng16-16
 libegl1 libegl-mesa0 libgbm1 libgl1-mesa-dri libdrm2 libvulkan1 mesa-vulkan-drivers
 libyuv0 valgrind
 gcc g++ make pkg-config libc6-dev libpng-dev
 libegl-dev libgles-dev libportal-dev
 ${WRD_MODERN_EXTRA_PKGS:-}"
# From bookworm-backports (-t bookworm-backports): the modern PipeWire stack.
# The -dev packages only satisfy pkg-config (wrd-capture.pc has
# Requires.private: libpipewire-0.3); nothing of the project is compiled
# against these headers (there is no clang in the root, so pipewire-sys'
# bindgen cannot even run here: an accidental rebuild fails loudly).
BPO_PKGS="pipewire pipewire-bin wireplumber libpipewire-0.3-0 libpipewire-0.3-modules
 libspa-0.2-modules gstreamer1.0-pipewire
 gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
 dbus dbus-daemon dbus-bin libpipewire-0.3-dev libspa-0.2-dev"

# --- mirror -----------------------------------------------------------------
# Find the URI that serves $SUITE (and $SUITE-security) in the host's apt
# configuration, both deb822 (*.sources) and one-line (*.list) formats.
host_uri_for_suite() { # $1 = suite
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v s="$1" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                        if ($(i+1)==s) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v s="$1" 'BEGIN{RS=""; FS="\n"}
            { uri=""; ok=0; deb=0
              for (j=1;j<=NF;j++) {
                if ($j ~ /^URIs:/)   { split($j,a,/[ \t]+/); uri=a[2] }
                if ($j ~ /^Types:/ && $j ~ /(^|[ \t])deb([ \t]|$)/) deb=1
                if ($j ~ /^Suites:/) { n=split($j,a,/[ \t]+/); for(k=2;k<=n;k++) if (a[k]==s) ok=1 }
                if ($j ~ /^Enabled:[ \t]*no/) ok=0
              }
              if (ok && deb && uri!="") { print uri; exit } }' "$f"
    done
}
MIRROR=${WRD_MODERN_MIRROR:-$(host_uri_for_suite "$SUITE" | head -n1)}
[ -n "$MIRROR" ] || die "no apt source for '$SUITE' found in /etc/apt/sources.list*; set WRD_MODERN_MIRROR"
SECURITY=$(host_uri_for_suite "$SUITE-security" | head -n1 || true)

# The recipe: anything that should trigger a rebuild when it changes.
RECIPE=$(printf '%s\n' "v1" "$SUITE" "$BPO" "$MIRROR" "$SECURITY" $BASE_PKGS -- $BPO_PKGS | sha256sum | cut -c1-16)

stamp_ok() { # $1 = root dir
    local st="$1/$STAMP_NAME"
    [ -f "$st" ] || return 1
    grep -qx "recipe=$RECIPE" "$st" || return 1
    [ -z "$PW_WANT" ] || grep -qx "pipewire=$PW_WANT" "$st" || return 1
    [ -z "$WP_WANT" ] || grep -qx "wireplumber=$WP_WANT" "$st" || return 1
}

# Children run in their own mount and PID namespaces (unshare --kill-child):
# whatever they mount vanishes with them, and killing the unshare process
# kills everything inside. If this script is interrupted, the trap kills the
# running child, so no dpkg or debootstrap goes on in the background.
CHILD=
# (SIGKILL: unshare ignores SIGTERM and SIGINT while it waits for its child.)
trap '[ -z "$CHILD" ] || kill -KILL "$CHILD" 2>/dev/null; exit 143' TERM INT HUP
isolated() { # command...
    unshare --mount --pid --fork --kill-child --propagation private -- "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=
    return "$rc"
}

# Run a command chrooted into $1: /proc, /sys and /dev are mounted in the
# private namespace and vanish with it (no cleanup needed, even if killed).
in_chroot() { # $1 = root, rest = command
    local r=$1; shift
    isolated /bin/sh -c '
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount -t sysfs sysfs "$r/sys"
        mount --rbind /dev "$r/dev"
        exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
    ' sh "$r" "$@"
}

show_versions() { # $1 = root
    in_chroot "$1" /bin/sh -c 'pipewire --version; wireplumber --version;
        dpkg-query -W -f="\${Package} \${Version}\n" libpipewire-0.3-0 libspa-0.2-modules \
            wireplumber gstreamer1.0-pipewire dbus-daemon libc6 python3-numpy'
}

build() {
    local new="$ROOT.new" t0 t1 t2 t3
    log "building $ROOT (mirror $MIRROR) — takes several minutes"
    rm -rf --one-file-system "$new"
    mkdir -p "$(dirname "$ROOT")"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    # Isolated: the /proc, /sys... debootstrap mounts in the target vanish
    # with it, and it dies with this script.
    isolated debootstrap --variant=minbase --merged-usr "$SUITE" "$new" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 \
        || { tail -n 30 "$ROOT.debootstrap.log" >&2; die "debootstrap failed (log: $ROOT.debootstrap.log)"; }
    t1=$(date +%s)
    log "debootstrap: $((t1 - t0)) s"

    {
        echo "deb $MIRROR $SUITE main"
        echo "deb $MIRROR $SUITE-updates main"
        echo "deb $MIRROR $BPO main"
        [ -z "$SECURITY" ] || echo "deb $SECURITY $SUITE-security main"
    } >"$new/etc/apt/sources.list"
    cp -L /etc/resolv.conf "$new/etc/resolv.conf"
    # No daemons started by maintainer scripts inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
    chmod 755 "$new/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$new/etc/apt/apt.conf.d/90wrd-no-recommends"

    # shellcheck disable=SC2086
    in_chroot "$new" /bin/sh -ec "
        apt-get -q update
        apt-get -q -y dist-upgrade
        apt-get -q -y install $(echo $BASE_PKGS)
        apt-get -q -y install -t $BPO $(echo $BPO_PKGS)
        apt-get clean
        rm -rf /var/lib/apt/lists/*
        dbus-uuidgen --ensure=/etc/machine-id
        dbus-uuidgen --ensure
    " >"$ROOT.apt.log" 2>&1 \
        || { tail -n 40 "$ROOT.apt.log" >&2; die "apt in the root failed (log: $ROOT.apt.log)"; }
    t2=$(date +%s)
    log "apt (updates + packages): $((t2 - t1)) s"

    local pw wp
    pw=$(in_chroot "$new" pipewire --version | sed -n 's/^Linked with libpipewire //p')
    wp=$(in_chroot "$new" wireplumber --version | sed -n 's/^Linked with libwireplumber //p')
    [ -n "$pw" ] && [ -n "$wp" ] || die "could not read pipewire/wireplumber versions in the new root"
    [ -z "$PW_WANT" ] || [ "$pw" = "$PW_WANT" ] \
        || die "root has PipeWire $pw, wanted $PW_WANT (set WRD_MODERN_PW_VERSION= to accept it)"
    [ -z "$WP_WANT" ] || [ "$wp" = "$WP_WANT" ] \
        || die "root has WirePlumber $wp, wanted $WP_WANT (set WRD_MODERN_WP_VERSION= to accept it)"

    # Marker with the versions, for humans and for the tests (WRD_MODERN_ROOT).
    {
        echo "# wrd-capture modern PipeWire root, built $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/modern-root.sh"
        echo "pipewire=$pw"
        echo "wireplumber=$wp"
        in_chroot "$new" dpkg-query -W -f='pkg ${Package}=${Version}\n' \
            libpipewire-0.3-0 libspa-0.2-modules pipewire-bin wireplumber gstreamer1.0-pipewire \
            dbus-daemon libc6 python3 python3-numpy python3-pytest libegl-mesa0
    } >"$new/etc/wrd-modern-root.versions"
    t3=$(date +%s)
    log "total build: $((t3 - t0)) s"

    # Stamp last: a root without it is incomplete and gets rebuilt.
    {
        echo "recipe=$RECIPE"
        echo "pipewire=$pw"
        echo "wireplumber=$wp"
        echo "build_seconds=$((t3 - t0))"
        echo "debootstrap_seconds=$((t1 - t0))"
    } >"$new/$STAMP_NAME.tmp"
    mv "$new/$STAMP_NAME.tmp" "$new/$STAMP_NAME"

    if [ -e "$ROOT" ]; then
        rm -rf --one-file-system "$ROOT.old"
        mv "$ROOT" "$ROOT.old"
    fi
    mv "$new" "$ROOT"
    rm -rf --one-file-system "$ROOT.old"
}

mkdir -p "$(dirname "$ROOT")"
exec 9>>"$LOCK"
WAIT=${WRD_MODERN_LOCK_WAIT:-3600}
t_start=$(date +%s%N)
# Fast path under a shared lock (running legs hold it shared too, so checking
# never waits for them); building needs it exclusively.
flock -s -w "$WAIT" 9 || die "timed out waiting for $LOCK (a build is running)"
if [ "$REBUILD" = 0 ] && stamp_ok "$ROOT"; then
    log "reusing $ROOT ($(grep -E '^(pipewire|wireplumber)=' "$ROOT/$STAMP_NAME" | tr '\n' ' '))"
else
    flock -u 9
    flock -x -w "$WAIT" 9 || die "timed out waiting for $LOCK (another build or a running leg holds it)"
    if [ "$REBUILD" = 0 ] && stamp_ok "$ROOT"; then
        log "reusing $ROOT (built meanwhile by another run)"
    else
        [ "$REBUILD" = 1 ] && log "--rebuild given"
        [ -e "$ROOT" ] && ! stamp_ok "$ROOT" && log "existing root is incomplete, stale or of other versions: rebuilding"
        build
    fi
fi
show_versions "$ROOT" | sed 's/^/modern-root:   /' >&2
log "ready in $(( ($(date +%s%N) - t_start) / 1000000 )) ms: $ROOT"
[ "$PRINT_ROOT" = 0 ] || echo "$ROOT"
