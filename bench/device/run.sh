#!/usr/bin/env bash
# shellcheck disable=SC2016 # text for the inner shell
# bench/device/run.sh — run bench/run.py on a machine without PipeWire or
# Debian (the lent 16-core GPU machine), in a chroot of the Debian 12 root
# that bench/device/make-root.sh packed, with the binaries built here.
#
#   bash bench/device/run.sh [--pack DIR] [--repeat N] CONFIG... [-- RUN.PY-ARGS...]   (as root)
#
# --pack: what make-root.sh made (default .dev/bench; .dev/bench-modern for
# its --modern root).
#
# Each CONFIG (a name from bench/run.py's CONFIGS) is its own bench/run.py
# invocation, so a command stopped at its time limit keeps the
# configurations it finished. Their results.json files land in $OUT (the
# device tool's folder; .dev/bench/out where OUT is unset) as
# results-CONFIG.json ("@" written "at": the device tool takes no "@"), with the log as bench.log; merge them with
#   python3 bench/run.py --out DIR --from-json results-A.json results-B.json ...
#
# Everything is mounted in a private mount namespace: nothing stays mounted
# after the command, whatever way it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PACK=$REPO/.dev/bench
repeat=5
configs=()
while (($#)); do
    case $1 in
    --pack) PACK=$(cd "$2" && pwd); shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --) shift; break ;;
    *) configs+=("$1"); shift ;;
    esac
done
extra="$*" # more bench/run.py arguments (no spaces inside one)
DEST=${OUT:-$PACK/out}
# What the results page says of the machine: $OUT is set on the lent machine
# (device tool) alone.
if [ -n "${OUT:-}" ]; then
    note=${WRD_BENCH_MACHINE_NOTE:-lent GPU machine (device tool), for this run alone}
else
    note=${WRD_BENCH_MACHINE_NOTE:-this machine}
fi
ROOT=${WRD_DEVROOT:-/var/tmp/wrd-devroot-run-${PACK##*/}}
((${#configs[@]})) || { echo "usage: $0 [--repeat N] CONFIG..." >&2; exit 2; }
[ -f "$PACK/root.tar.xz" ] || { echo "no $PACK/root.tar.xz: run bench/device/make-root.sh first" >&2; exit 1; }
mkdir -p "$DEST"

if [ ! -x "$ROOT/usr/bin/pipewire" ]; then
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    t0=$SECONDS
    if command -v xz >/dev/null; then
        tar -C "$ROOT" --numeric-owner -xJf "$PACK/root.tar.xz"
    else # no xz on the machine: Python's lzma
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], numeric_owner=True)' \
            "$PACK/root.tar.xz" "$ROOT"
    fi
    echo "device-bench: root unpacked in $((SECONDS - t0)) s"
fi
info=$(cat "$PACK/bin/BUILD-INFO" 2>/dev/null || true)
commit=$(sed -n 's/^commit=//p' <<<"$info")
rustc=$(sed -n 's/^rustc=//p' <<<"$info")

# Inside a private mount namespace: the mounts die with it.
unshare -m --propagation private bash -euo pipefail -c '
    root=$1 repo=$2 dest=$3 repeat=$4 commit=$5 rustc=$6 extra=$7 pack=$8 note=$9; shift 9
    mkdir -p "$root/repo" "$root/out"
    mount --bind "$repo" "$root/repo"
    mount --bind "$dest" "$root/out"
    mount -t proc proc "$root/proc"
    mount -t sysfs -o ro sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/dev/shm"
    mount -t tmpfs tmpfs "$root/tmp"
    mount -t tmpfs tmpfs "$root/run"
    # WirePlumber 0.4.13 quits if its logind plugin cannot watch these
    # (sd_login_monitor_new: ENOENT); a booted Debian has them.
    mkdir -p "$root"/run/systemd/{seats,sessions,users,machines}
    for cfg in "$@"; do
        echo "device-bench: $cfg ($repeat repeats${extra:+, $extra}) at $(date -u +%H:%M:%S)"
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            PYTHONUNBUFFERED=1 WRD_BENCH_COMMIT="$commit" WRD_BENCH_RUSTC="$rustc" ${WRD_BENCH_EVENTS:+WRD_BENCH_EVENTS=1} \
            WRD_BENCH_MACHINE_NOTE="$note; a chroot of $(basename "$pack")/root.tar.xz" \
            python3 /repo/bench/run.py --bin-dir "/repo/${pack#"$repo"/}/bin" --out /tmp/bench-$cfg \
            --repeat "$repeat" --configs "$cfg" $extra \
            && cp "$root/tmp/bench-$cfg/results.json" "$root/out/results-${cfg//@/at}.json" \
            || echo "device-bench: $cfg FAILED ($?)"
    done
' _ "$ROOT" "$REPO" "$DEST" "$repeat" "$commit" "$rustc" "$extra" "$PACK" "$note" "${configs[@]}" 2>&1 | tee -a "$DEST/bench.log"
ls -l "$DEST"
