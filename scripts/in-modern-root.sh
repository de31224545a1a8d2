#!/usr/bin/env bash
# in-modern-root.sh — run a command inside the modern PipeWire root built by
# scripts/modern-root.sh (PipeWire 1.4 / WirePlumber 0.5 from bookworm-backports).
#
# Usage: scripts/in-modern-root.sh [--] CMD [ARGS...]
#
# What the command sees:
#   /                the root (read-only: tests cannot damage the shared cache)
#   <repo>           this checkout, read-write, at the SAME absolute path as on
#                    the host, so host-built binaries under target/ run unchanged
#                    (they find libpipewire-0.3.so.0 1.4.x through the root's
#                    loader; glibc is 2.36 on both sides)
#   $CARGO_TARGET_DIR the same, when it lies outside the checkout
#   $CARGO_HOME, $RUSTUP_HOME  the host's Rust toolchain, same paths, first on
#                    PATH, CARGO_NET_OFFLINE=true (WRD_MODERN_NO_TOOLCHAIN=1: not bound)
#   /proc            fresh (own PID namespace: every process the command leaves
#                    behind — stray pipewire/wireplumber/dbus — is killed when it ends)
#   /usr/include, /usr/lib/llvm-*/lib/clang  the host's build-time headers,
#                    read-only (cargo fingerprints; WRD_MODERN_HOST_HEADERS=0: not bound)
#   /sys             host's, read-only
#   /dev             host's devices (DRM render nodes for the GPU tests), with a
#                    fresh tmpfs on /dev/shm
#   /tmp, /run, /var/tmp  fresh tmpfs (WRD_MODERN_HOST_TMP=1: bind the host's /tmp
#                    instead, e.g. to keep sandbox logs after a failure)
#   HOME=/tmp/home, XDG_RUNTIME_DIR=/run/user/<uid> (empty, 0700)
#   WRD_MODERN_LEG=1, WRD_MODERN_ROOT=<root>
# Everything is mounted in a private mount namespace (bubblewrap, or
# unshare+chroot when bwrap is not installed): nothing is ever mounted on the
# host, so there is nothing to unmount, even if this script is killed.
#
# The environment is cleared except PATH (the root's), TERM, LANG and the
# variables matching $PASS_RE below (CARGO_*, RUST_*, WRD_*, NEXTEST_*, GST_DEBUG*,
# PIPEWIRE_DEBUG, WIREPLUMBER_DEBUG, PYTEST_*, CI, and the build variables that
# build scripts watch: CC, CFLAGS, PKG_CONFIG*, BINDGEN_*...). The host's
# DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR, PIPEWIRE_REMOTE, DISPLAY and
# WAYLAND_DISPLAY never leak in.
#
# Environment:
#   WRD_MODERN_ROOT      root path (default /var/cache/wrd-capture/bookworm-bpo)
#   WRD_MODERN_BIND      extra host paths (colon separated) to bind at the same path
#   WRD_MODERN_HOST_TMP  1 = bind the host's /tmp instead of a fresh tmpfs
#   WRD_MODERN_NO_ENSURE 1 = do not call modern-root.sh when the root is missing
#   WRD_MODERN_BACKEND   bwrap | unshare (default: bwrap if installed)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ROOT=${WRD_MODERN_ROOT:-/var/cache/wrd-capture/bookworm-bpo}
ROOT=${ROOT%/}
STAMP="$ROOT/.wrd-modern-root.stamp"

[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [--] CMD [ARGS...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "in-modern-root: must run as root" >&2; exit 1; }

if [ ! -f "$STAMP" ]; then
    if [ "${WRD_MODERN_NO_ENSURE:-0}" = 1 ]; then
        echo "in-modern-root: $ROOT is missing or incomplete; run scripts/modern-root.sh" >&2
        exit 1
    fi
    "$HERE/modern-root.sh" >&2
fi

# Shared lock for the whole run: modern-root.sh takes it exclusively before
# replacing the root, so a rebuild waits for running legs (and vice versa).
exec 8>>"$ROOT.lock"
flock -s -w "${WRD_MODERN_LOCK_WAIT:-3600}" 8 \
    || { echo "in-modern-root: timed out waiting for $ROOT.lock" >&2; exit 1; }

# Paths bound at the same absolute path.
BINDS=("$REPO")
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    mkdir -p "$CARGO_TARGET_DIR"
    T=$(cd "$CARGO_TARGET_DIR" && pwd)
    case "$T/" in "$REPO"/*) ;; *) BINDS+=("$T") ;; esac
fi
# The host's Rust toolchain (rustup + cargo home), at the same paths: the
# tests call cargo at run time (make install, cargo build --example, building
# wrd-testsrc); with everything built on the host first, those calls find
# every artifact fresh and compile nothing (see modern-leg.sh).
TOOLCHAIN_PATH=
if [ "${WRD_MODERN_NO_TOOLCHAIN:-0}" != 1 ]; then
    CH=${CARGO_HOME:-$HOME/.cargo}
    RH=${RUSTUP_HOME:-$HOME/.rustup}
    if [ -d "$CH/bin" ]; then
        CH=$(cd "$CH" && pwd); BINDS+=("$CH"); TOOLCHAIN_PATH="$CH/bin:"
        TOOLCHAIN_ENV=(CARGO_HOME="$CH" CARGO_NET_OFFLINE=true)
        if [ -d "$RH" ]; then RH=$(cd "$RH" && pwd); BINDS+=("$RH"); TOOLCHAIN_ENV+=(RUSTUP_HOME="$RH"); fi
    fi
fi
# The host's build-time headers, read-only over the root's: cargo's
# fingerprints of pipewire-sys/libspa-sys (bindgen) list every header they
# parsed (rerun-if-changed: /usr/include/..., clang's builtin headers); with
# the host's files in place they stay fresh inside the root. Run time is
# unaffected (headers only). WRD_MODERN_HOST_HEADERS=0: keep the root's.
RO_BINDS=()
if [ "${WRD_MODERN_HOST_HEADERS:-1}" = 1 ]; then
    RO_BINDS+=(/usr/include)
    for d in /usr/lib/llvm-*/lib/clang; do [ -d "$d" ] && RO_BINDS+=("$d"); done
fi
IFS=: read -r -a EXTRA <<<"${WRD_MODERN_BIND:-}"
for p in "${EXTRA[@]}"; do [ -z "$p" ] || BINDS+=("$(realpath "$p")"); done

UID_=$(id -u)
PASS_RE='^(CARGO_[A-Z0-9_]*|RUST_[A-Z0-9_]*|RUSTFLAGS|RUSTDOCFLAGS|RUSTUP_TOOLCHAIN|WRD_[A-Z0-9_]*|NEXTEST_[A-Z0-9_]*|GST_DEBUG[A-Z_]*|PIPEWIRE_DEBUG|PIPEWIRE_LOG[A-Z_]*|WIREPLUMBER_DEBUG|SPA_DEBUG|PYTEST_[A-Z0-9_]*|CC|CXX|CFLAGS|CXXFLAGS|CPPFLAGS|LDFLAGS|AR|CPATH|C_INCLUDE_PATH|PKG_CONFIG[A-Z0-9_]*|LIBCLANG_PATH|BINDGEN_[A-Z0-9_]*|SYSTEM_DEPS_[A-Z0-9_]*|SOURCE_DATE_EPOCH|PYTHONUNBUFFERED|PYTHONFAULTHANDLER|CI|GITHUB_[A-Z0-9_]*|TERM|NO_COLOR|CLICOLOR[A-Z_]*)$'
ENV=(PATH="${TOOLCHAIN_PATH}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
     HOME=/tmp/home LANG=C.UTF-8 USER="$(id -un)" LOGNAME="$(id -un)"
     XDG_RUNTIME_DIR="/run/user/$UID_"
     WRD_MODERN_LEG=1 WRD_MODERN_ROOT="$ROOT" ${TOOLCHAIN_ENV[@]+"${TOOLCHAIN_ENV[@]}"})
while IFS= read -r -d '' kv; do
    name=${kv%%=*}
    [[ $name =~ $PASS_RE ]] || continue
    case "$name" in WRD_MODERN_LEG|WRD_MODERN_ROOT|CARGO_HOME|CARGO_NET_OFFLINE) continue ;; esac
    ENV+=("$kv")
done < <(env -0)

BACKEND=${WRD_MODERN_BACKEND:-}
if [ -z "$BACKEND" ]; then
    if command -v bwrap >/dev/null 2>&1; then BACKEND=bwrap; else BACKEND=unshare; fi
fi
# Keep the caller's directory when it is visible inside, else the checkout.
CWD=$(pwd)
case "$CWD/" in
    "$REPO"/*) ;;
    *) inside=0
       for p in "${BINDS[@]}"; do case "$CWD/" in "$p"/*) inside=1 ;; esac; done
       [ "$inside" = 1 ] || CWD=$REPO ;;
esac

if [ "$BACKEND" = bwrap ]; then
    args=(--ro-bind "$ROOT" /
          --proc /proc
          --ro-bind /sys /sys
          --dev-bind /dev /dev
          --tmpfs /dev/shm
          --tmpfs /run
          --tmpfs /var/tmp
          --unshare-pid --unshare-ipc --unshare-uts --hostname wrd-modern
          --die-with-parent --new-session
          --dir "/run/user/$UID_" --chmod 0700 "/run/user/$UID_")
    if [ "${WRD_MODERN_HOST_TMP:-0}" = 1 ]; then
        args+=(--bind /tmp /tmp)
    else
        args+=(--tmpfs /tmp)
    fi
    args+=(--dir /tmp/home)
    for p in "${BINDS[@]}"; do
        # The root is read-only: create the mount point beforehand (an empty
        # directory in the cache root, harmless).
        [ -d "$ROOT$p" ] || mkdir -p "$ROOT$p"
        args+=(--bind "$p" "$p")
    done
    for p in ${RO_BINDS[@]+"${RO_BINDS[@]}"}; do
        [ -d "$ROOT$p" ] || mkdir -p "$ROOT$p"
        args+=(--ro-bind "$p" "$p")
    done
    args+=(--chdir "$CWD" --clearenv)
    for kv in "${ENV[@]}"; do args+=(--setenv "${kv%%=*}" "${kv#*=}"); done
    # --new-session (setsid) guards against TIOCSTI; keep the job control of
    # an interactive shell working by not using it when stdin is a terminal.
    if [ -t 0 ]; then
        for i in "${!args[@]}"; do [ "${args[$i]}" = --new-session ] && unset 'args[i]'; done
    fi
    exec bwrap "${args[@]}" -- "$@"
fi

# Fallback: unshare (mount + PID namespace) + chroot. Mounts live in the
# private namespace only and disappear with it.
for p in "${BINDS[@]}" ${RO_BINDS[@]+"${RO_BINDS[@]}"}; do [ -d "$ROOT$p" ] || mkdir -p "$ROOT$p"; done
# shellcheck disable=SC2016
exec unshare --mount --propagation private --pid --fork --kill-child -- /bin/bash -c '
    set -e
    root=$1 uid=$2 host_tmp=$3 cwd=$4 nb=$5; shift 5
    binds=("${@:1:nb}"); shift "$nb"
    nr=$1; shift
    robinds=("${@:1:nr}"); shift "$nr"
    n_env=$1; shift
    envs=("${@:1:n_env}"); shift "$n_env"
    # A private, writable view of the root: bind it onto itself read-only.
    mount --bind "$root" "$root"
    mount -o remount,bind,ro "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"; mount -o remount,bind,ro "$root/sys" 2>/dev/null || true
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/dev/shm"
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/var/tmp"
    if [ "$host_tmp" = 1 ]; then mount --rbind /tmp "$root/tmp"; else mount -t tmpfs tmpfs "$root/tmp"; fi
    mkdir -p "$root/tmp/home" "$root/run/user/$uid"; chmod 0700 "$root/run/user/$uid"
    for p in "${binds[@]}"; do mount --rbind "$p" "$root$p"; done
    for p in "${robinds[@]}"; do mount --rbind "$p" "$root$p"; mount -o remount,bind,ro "$root$p"; done
    exec chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
' in-modern-root "$ROOT" "$UID_" "${WRD_MODERN_HOST_TMP:-0}" "$CWD" "${#BINDS[@]}" "${BINDS[@]}" \
    "${#RO_BINDS[@]}" ${RO_BINDS[@]+"${RO_BINDS[@]}"} "${#ENV[@]}" "${ENV[@]}" "$@"
