#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2012 # text for the inner shell; our own tarball names
# bench/device/make-root.sh — pack what bench/run.py needs into something the
# lent GPU machine (device tool) can run: it has 16 dedicated cores but no
# package registry, no PipeWire, no GStreamer and no Debian.
#
# Builds, as root, on this Debian 12 host:
#   .dev/bench/root.tar.xz  a Debian 12 minbase (tools/clean-room's cached base)
#                           with the bench's runtime: pipewire, pipewire-bin,
#                           wireplumber, dbus-daemon, gstreamer1.0-tools,
#                           gstreamer1.0-pipewire, python3, procps, the same
#                           Debian packages (PipeWire 0.3.65, WirePlumber
#                           0.4.13, GStreamer 1.22.0) the bench uses here;
#                           docs, manuals, locales and apt's caches removed.
#   .dev/bench/bin/         target/release/wrd-bench and wrd-testsrc (built
#                           here: same Debian, same libraries as the root)
#
# bench/device/run.sh unpacks it there and runs bench/run.py in a chroot of
# it, so both machines run the same binaries against the same libraries.
#
#   bash bench/device/make-root.sh [--modern] [--rebuild]
#
# --modern: the PipeWire stack from bookworm-backports instead (PipeWire
# 1.4.x, WirePlumber 0.5.x, its GStreamer plugin), into .dev/bench-modern/
# (carry that folder instead; run.sh --pack .dev/bench-modern).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT_DIR=$PWD
modern=0 rebuild=0
for a in "$@"; do
    case $a in
    --modern) modern=1 ;;
    --rebuild) rebuild=1 ;;
    *) echo "make-root: unknown argument $a" >&2; exit 2 ;;
    esac
done
if ((modern)); then
    OUT=$ROOT_DIR/.dev/bench-modern
    WORK=${WRD_DEVROOT_WORK:-/var/tmp/wrd-devroot-modern}
else
    OUT=$ROOT_DIR/.dev/bench
    WORK=${WRD_DEVROOT_WORK:-/var/tmp/wrd-devroot}
fi
BASE=$(ls -t /var/tmp/wrd-cleanroom/base-bookworm-minbase-*.tar.zst 2>/dev/null | head -1 || true)
PKGS="pipewire pipewire-bin wireplumber dbus-daemon gstreamer1.0-tools gstreamer1.0-pipewire python3 procps"

[ "$(id -u)" = 0 ] || { echo "make-root: must run as root (chroot, mount)" >&2; exit 1; }
if [ -z "$BASE" ]; then
    echo "make-root: no clean-room base yet; making one (tools/clean-room/run.sh -- true)" >&2
    tools/clean-room/run.sh -- true
    BASE=$(ls -t /var/tmp/wrd-cleanroom/base-bookworm-minbase-*.tar.zst | head -1)
fi
mkdir -p "$OUT/bin"
if ((rebuild)) || [ ! -f "$OUT/root.tar.xz" ]; then
    rm -rf "$WORK"
    mkdir -p "$WORK/root"
    tar -C "$WORK/root" -I zstd -xf "$BASE"
    cp /etc/resolv.conf "$WORK/root/etc/resolv.conf"
    # Site CAs (an intercepting proxy), as tools/clean-room does.
    if [ -d /usr/local/share/ca-certificates ]; then
        cp -r /usr/local/share/ca-certificates/. "$WORK/root/usr/local/share/ca-certificates/" 2>/dev/null || true
    fi
    target=""
    if ((modern)); then
        # The base's deb822 source, with bookworm-backports beside bookworm.
        sed -i 's/^Suites: bookworm bookworm-updates$/Suites: bookworm bookworm-updates bookworm-backports/' \
            "$WORK/root/etc/apt/sources.list.d/debian.sources"
        grep -q bookworm-backports "$WORK/root/etc/apt/sources.list.d/debian.sources" \
            || { echo "make-root: could not add bookworm-backports to the base's sources" >&2; exit 1; }
        target="-t bookworm-backports"
    fi
    unshare -m --propagation private bash -euc '
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount --rbind /dev "$r/dev"
        chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            bash -euc "apt-get update -qq && apt-get install -y -qq --no-install-recommends $*"
    ' _ "$WORK/root" "$target $PKGS"
    r=$WORK/root
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
        "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/usr/share/zoneinfo/* \
        "$r"/usr/lib/x86_64-linux-gnu/perl* "$r"/usr/share/perl* "$r"/var/log/*
    find "$r" -name __pycache__ -prune -exec rm -rf {} +
    : >"$r/etc/resolv.conf"
    tar -C "$r" --numeric-owner -cJf "$OUT/root.tar.xz.part" .
    mv "$OUT/root.tar.xz.part" "$OUT/root.tar.xz"
    rm -rf "$WORK"
fi
cargo build --release -p wrd-bench -p wrd-testsrc
for b in wrd-bench wrd-testsrc; do strip -o "$OUT/bin/$b" "target/release/$b"; done
{
    echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tools || echo +dirty)"
    echo "rustc=$(rustc -V)"
} >"$OUT/bin/BUILD-INFO"
ls -l "$OUT" "$OUT/bin"
du -sh "$OUT"
