#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016 # trap handlers; text for the chroot's shell
# tools/clean-room/run.sh — run one of the README's commands, exactly as
# written, on a fresh Debian 12 in a chroot: the check of issue #3 ("the two
# README commands work as written, with nothing installed by hand beforehand").
#
#   tools/clean-room/run.sh [OPTIONS] -- bash scripts/demo.sh
#   tools/clean-room/run.sh [OPTIONS] -- bash scripts/test-all.sh
#
# What it does (as root, on a Debian host with debootstrap):
#  1. The base: `debootstrap --variant=minbase bookworm` from the mirror of
#     the host's /etc/apt/sources.list.d/debian.sources, that sources file
#     installed as the root's only apt source, `apt-get dist-upgrade`, apt
#     lists and caches emptied (as in the debian:bookworm container image).
#     Nothing else: no ca-certificates, curl, wget, git, sudo, compiler, make,
#     Rust or any package of scripts/install-deps.sh. The base is kept as a
#     tarball, $WORK/base-bookworm-minbase-<recipe>.tar.zst, and later runs
#     unpack it instead of bootstrapping again; it is rebuilt when the recipe
#     (suite, variant, the sources file, --with) changes, or with
#     --rebuild-base.
#  2. A fresh tree $WORK/runs/<time>/root from the tarball, the host's
#     /etc/resolv.conf and its site CAs (/usr/local/share/ca-certificates/,
#     public certificates only; inert until a package installs
#     ca-certificates, whose update-ca-certificates then trusts them, as on
#     any machine of the site: where HTTPS goes through an intercepting
#     proxy, nothing fetches Rust or crates without them; --no-host-ca
#     leaves them out), and a `git clone` of COMMIT (default HEAD of the
#     repository this script is in), checked out detached at
#     /root/wrd-capture (an ordinary directory with its own .git).
#  3. In a private mount and PID namespace: the tree bound onto itself (a
#     mount point, as a machine's / is: bubblewrap's pivot_root needs it),
#     /proc, /sys (read-only), /dev (the host's device nodes), a new devpts
#     on /dev/pts, tmpfs on /dev/shm and /run; then, as root, with a login
#     shell's environment (HOME=/root, Debian's root PATH, stdin /dev/null),
#     in /root/wrd-capture: the COMMAND after `--`, nothing else.
#  4. Everything mounted is unmounted in reverse order when the command ends,
#     fails or is interrupted (trap); processes the command left behind in
#     the chroot are killed first. The namespace makes this safe even for a
#     kill -9 of this script: nothing is ever mounted in the host's
#     namespace.
#  5. The whole output goes to $WORK/runs/<time>/log, each line prefixed
#     with the seconds since the command started; at the end: its last
#     lines, the exit status and the durations. --copy-out files are copied
#     to $WORK/runs/<time>/out/ (PNGs are checked: signature, chunk CRCs,
#     IHDR, the inflated IDAT's size). The tree is removed after a success
#     (--keep keeps it) and kept after a failure for inspection.
#
# Options:
#   --commit REV      what to check out (default HEAD of this repository)
#   --repo DIR        the repository to clone (default: the one holding this script)
#   --work DIR        work directory (default $WRD_CLEANROOM_DIR or /var/tmp/wrd-cleanroom)
#   --with PKGS       extra Debian packages in the base (space separated, e.g.
#                     "ca-certificates curl git" for a cloud image); part of the recipe
#   --rebuild-base    bootstrap the base again even if its tarball exists
#   --env NAME=VALUE  set a variable for the command (repeatable), e.g.
#                     CARGO_BUILD_JOBS=1 on a shared machine
#   --copy-out PATH   copy PATH (relative to the checkout) out after the
#                     command (repeatable); a missing file fails the run
#   --no-host-ca      do not copy the host's /usr/local/share/ca-certificates
#   --keep            keep the tree after a success too
#   --tail N          lines of the log printed at the end (default 40)
#   --verbose         also stream the log to stdout while it runs
# Exit status: the command's (or 1 when a --copy-out check fails, 2 for
# usage errors, 3 when the clean room could not be set up).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
SUITE=bookworm
VARIANT=minbase
# Debian's PATH for root (/etc/profile) and a login shell's environment.
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---------------------------------------------------------------------------
# Inside the private namespaces (called by this script through unshare):
#   run.sh --inside-ns ROOT CWD NENV ENV... -- CMD...
# We are PID 1 of a new PID namespace with private mounts.
# ---------------------------------------------------------------------------
if [ "${1:-}" = --inside-ns ]; then
    R=$2 CWD=$3 NENV=$4
    shift 4
    ENVS=("${@:1:NENV}")
    shift "$NENV"
    [ "${1:-}" = -- ] && shift
    MOUNTED=()
    mnt() { # mount ARGS... TARGET (the last argument is the mount point)
        mount "$@"
        MOUNTED+=("${*: -1}")
    }
    cleanup() {
        local rc=$? i
        trap - EXIT INT TERM HUP
        # As PID 1 of the namespace, kill(-1) reaches every process in it
        # (everything the command started, nothing else) but us.
        kill -TERM -1 2>/dev/null || true
        for i in $(seq 20); do
            kill -0 -1 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -1 2>/dev/null || true
        wait 2>/dev/null || true
        for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
            umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" \
                || echo "clean-room: could not unmount ${MOUNTED[i]}" >&2
        done
        exit "$rc"
    }
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    mnt --bind "$R" "$R"
    mnt -t proc -o nosuid,nodev,noexec proc "$R/proc"
    mnt -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
    mnt --bind /dev "$R/dev"
    mnt -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$R/dev/pts"
    mnt --bind "$R/dev/pts/ptmx" "$R/dev/ptmx"
    mnt -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
    mnt -t tmpfs -o mode=0755,nosuid,nodev run "$R/run"
    # As systemd-tmpfiles makes them on a booted Debian.
    mkdir -p "$R/run/lock" && chmod 1777 "$R/run/lock"
    # The command in the background, so that this shell (PID 1) runs its
    # traps at once on a signal; it reaps what gets orphaned meanwhile.
    chroot "$R" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
        PATH="$ROOT_PATH" TERM=dumb ${ENVS[@]+"${ENVS[@]}"} \
        /bin/bash -c 'cd "$0" && exec "$@"' "$CWD" "$@" </dev/null &
    child=$!
    rc=0
    wait "$child" || rc=$?
    exit "$rc"
fi

# ---------------------------------------------------------------------------
# On the host.
# ---------------------------------------------------------------------------
usage() { sed -n '3,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "clean-room: $*" >&2; exit 3; }
# (fd 3: our stdout, also while the command's output goes to the log)
exec 3>&1
log() { printf 'clean-room: %s\n' "$*" >&3; }

REPO=$(cd "$HERE/../.." && pwd)
COMMIT=HEAD
WORK=${WRD_CLEANROOM_DIR:-/var/tmp/wrd-cleanroom}
WITH=
REBUILD=0
KEEP=0
HOST_CA=1
TAIL=40
VERBOSE=0
ENVS=()
COPY=()
while [ $# -gt 0 ]; do
    case "$1" in
        --commit) COMMIT=$2; shift ;;
        --repo) REPO=$(cd "$2" && pwd); shift ;;
        --work) WORK=$2; shift ;;
        --with) WITH=$2; shift ;;
        --rebuild-base) REBUILD=1 ;;
        --env) [[ $2 == [A-Za-z_]*=* ]] || { echo "clean-room: --env NAME=VALUE" >&2; exit 2; }
               ENVS+=("$2"); shift ;;
        --copy-out) COPY+=("$2"); shift ;;
        --keep) KEEP=1 ;;
        --no-host-ca) HOST_CA=0 ;;
        --tail) TAIL=$2; shift ;;
        --verbose|-v) VERBOSE=1 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) echo "clean-room: unknown argument: $1 (the command goes after --)" >&2; exit 2 ;;
    esac
    shift
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
CMD=("$@")

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"
for t in debootstrap unshare chroot git tar zstd flock; do
    command -v "$t" >/dev/null || die "$t missing on the host (apt-get install debootstrap git zstd)"
done
SOURCES=/etc/apt/sources.list.d/debian.sources
[ -r "$SOURCES" ] || die "no $SOURCES on the host"
# The URI serving $SUITE in the host's deb822 sources (the mirror debootstrap uses).
MIRROR=$(awk -v s="$SUITE" 'BEGIN{RS=""; FS="\n"}
    { uri=""; ok=0; deb=0
      for (j=1;j<=NF;j++) {
        if ($j ~ /^URIs:/)   { split($j,a,/[ \t]+/); uri=a[2] }
        if ($j ~ /^Types:/ && $j ~ /(^|[ \t])deb([ \t]|$)/) deb=1
        if ($j ~ /^Suites:/) { n=split($j,a,/[ \t]+/); for(k=2;k<=n;k++) if (a[k]==s) ok=1 }
        if ($j ~ /^Enabled:[ \t]*no/) ok=0
      }
      if (ok && deb && uri!="") { print uri; exit } }' "$SOURCES")
[ -n "$MIRROR" ] || die "no deb source for $SUITE in $SOURCES"

SHA=$(git -C "$REPO" rev-parse --verify "$COMMIT^{commit}") || die "no commit $COMMIT in $REPO"

mkdir -p "$WORK/runs"
RECIPE=$(printf '%s\n' v1 "$SUITE" "$VARIANT" "$MIRROR" "$WITH" -- | cat - "$SOURCES" | sha256sum | cut -c1-12)
BASE="$WORK/base-$SUITE-$VARIANT-$RECIPE.tar.zst"
RUN="$WORK/runs/$(date +%Y%m%d-%H%M%S)-$$"
R="$RUN/root"
LOG="$RUN/log"
CWD=/root/wrd-capture
mkdir -p "$RUN"
: >"$LOG"

# Namespaced children die with this script: the trap forwards TERM/INT to
# the namespace's PID 1 (which unmounts and exits), then kills unshare.
CHILD=
stop_child() {
    [ -n "$CHILD" ] || return 0
    local init
    init=$(awk '{print $1}' "/proc/$CHILD/task/$CHILD/children" 2>/dev/null || true)
    [ -z "$init" ] || kill -TERM "$init" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$CHILD" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$CHILD" 2>/dev/null || true
}
trap 'stop_child; log "interrupted (tree kept: $R)"; exit 130' INT
trap 'stop_child; log "terminated (tree kept: $R)"; exit 143' TERM HUP
# in_ns ROOT CMD...: the command chrooted into ROOT (see --inside-ns).
in_ns() {
    local root=$1; shift
    unshare --mount --pid --fork --kill-child --propagation private -- \
        "$SELF" --inside-ns "$root" "$CWD_IN" "${#ENV_IN[@]}" ${ENV_IN[@]+"${ENV_IN[@]}"} -- "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=
    return "$rc"
}

secs() { echo $(($(date +%s) - $1)); }
t_all=$(date +%s)

# --- 1. the base -----------------------------------------------------------
build_base() {
    local new="$WORK/base.new.$$" t0
    t0=$(date +%s)
    log "bootstrapping $SUITE ($VARIANT) from $MIRROR into $new (log: $WORK/base.log)"
    rm -rf --one-file-system "$new"
    # debootstrap mounts /proc and /sys in the target: in a namespace of its
    # own they vanish with it.
    unshare --mount --pid --fork --kill-child --propagation private -- \
        debootstrap --variant="$VARIANT" "$SUITE" "$new" "$MIRROR" >"$WORK/base.log" 2>&1 \
        || { tail -n 30 "$WORK/base.log"; rm -rf --one-file-system "$new"; die "debootstrap failed"; }
    rm -f "$new/etc/apt/sources.list"
    install -m 0644 "$SOURCES" "$new/etc/apt/sources.list.d/debian.sources"
    # Chroot hygiene, not a dependency: package installs start no daemons.
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
    chmod 0755 "$new/usr/sbin/policy-rc.d"
    rm -f "$new/etc/resolv.conf" && cp -L /etc/resolv.conf "$new/etc/resolv.conf"
    CWD_IN=/
    ENV_IN=(DEBIAN_FRONTEND=noninteractive)
    # shellcheck disable=SC2086
    in_ns "$new" /bin/sh -ec "
        apt-get -q update
        apt-get -q -y dist-upgrade
        ${WITH:+apt-get -q -y install $WITH}
        apt-get clean
        rm -rf /var/lib/apt/lists/*
    " >>"$WORK/base.log" 2>&1 \
        || { tail -n 30 "$WORK/base.log"; rm -rf --one-file-system "$new"; die "apt in the base failed"; }
    {
        echo "wrd-capture clean-room base, built $(date -u +%Y-%m-%dT%H:%M:%SZ) by tools/clean-room/run.sh"
        echo "debootstrap --variant=$VARIANT $SUITE $MIRROR; sources: $SOURCES of $(hostname)"
        echo "extra packages: ${WITH:-none}"
    } >"$new/etc/wrd-clean-room"
    tar -C "$new" --numeric-owner --xattrs --xattrs-include='*' -cf - . \
        | zstd -q -f -T1 -6 -o "$BASE.tmp"
    mv "$BASE.tmp" "$BASE"
    rm -rf --one-file-system "$new"
    # Older bases (other recipes) only take space.
    find "$WORK" -maxdepth 1 -name "base-$SUITE-*.tar.zst" ! -path "$BASE" -delete
    log "base built in $(secs "$t0") s: $BASE ($(du -h "$BASE" | cut -f1))"
}

exec 9>>"$WORK/base.lock"
flock -x 9
if [ "$REBUILD" = 1 ] || [ ! -f "$BASE" ]; then
    build_base
else
    log "reusing the base $BASE ($(du -h "$BASE" | cut -f1), from $(date -r "$BASE" +%Y-%m-%d))"
fi
flock -u 9

# --- 2. the tree -----------------------------------------------------------
t0=$(date +%s)
mkdir -p "$R"
zstd -q -dc "$BASE" | tar -C "$R" --numeric-owner --xattrs --xattrs-include='*' -xpf -
# (rm first: never write through a symlink in the tree onto a host path)
rm -f "$R/etc/resolv.conf" && cp -L /etc/resolv.conf "$R/etc/resolv.conf"
LOCAL_CA=/usr/local/share/ca-certificates
if [ "$HOST_CA" = 1 ] && [ -n "$(find "$LOCAL_CA" -name '*.crt' 2>/dev/null | head -1)" ]; then
    mkdir -p "$R$LOCAL_CA"
    cp -r "$LOCAL_CA/." "$R$LOCAL_CA/"
    log "site CAs from the host: $(cd "$LOCAL_CA" && find . -name '*.crt' | sed 's|^\./||' | tr '\n' ' ')"
fi
git clone -q --no-hardlinks --no-checkout "$REPO" "$R$CWD"
git -C "$R$CWD" cat-file -e "$SHA^{commit}" 2>/dev/null || git -C "$R$CWD" fetch -q origin "$SHA"
git -C "$R$CWD" -c advice.detachedHead=false checkout -q --detach "$SHA"
log "tree $R ($(secs "$t0") s): $(cat "$R/etc/debian_version") base, $(git -C "$REPO" log -1 --format='%h %s' "$SHA")"

# --- 3. the command --------------------------------------------------------
log "running as root in $CWD: ${CMD[*]}${ENVS[*]:+ (env: ${ENVS[*]})}"
log "log: $LOG"
{
    echo "# tools/clean-room/run.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname)"
    echo "# base: $BASE ($(head -1 "$R/etc/wrd-clean-room" | sed 's/.*built //'))"
    echo "# checkout: $CWD = $SHA ($(git -C "$REPO" log -1 --format=%s "$SHA"))"
    echo "# command: ${CMD[*]}${ENVS[*]:+ (env: ${ENVS[*]})}"
} >>"$LOG"
t_cmd=$(date +%s)
CWD_IN=$CWD
ENV_IN=(${ENVS[@]+"${ENVS[@]}"})
# Each line of the log starts with the seconds since the command started.
# (mawk reads its input in blocks unless told -W interactive.)
AWK=(awk); command -v mawk >/dev/null && AWK=(mawk -W interactive)
stamp() { "${AWK[@]}" -v t0="$t_cmd" '{ printf "[%4ds] %s\n", systime() - t0, $0; fflush() }'; }
rc=0
if [ "$VERBOSE" = 1 ]; then
    in_ns "$R" "${CMD[@]}" > >(stamp | tee -a "$LOG") 2>&1 || rc=$?
else
    in_ns "$R" "${CMD[@]}" > >(stamp >>"$LOG") 2>&1 || rc=$?
fi
wait "$!" 2>/dev/null || true
d_cmd=$(secs "$t_cmd")
# Nothing of ours may be left mounted (there cannot be: private namespace).
if grep -qF " $R/" /proc/self/mountinfo || grep -qF " $R " /proc/self/mountinfo; then
    log "WARNING: mounts under $R in the host's namespace"
fi

# --- 4. results ------------------------------------------------------------
check_png() { # file: print a one-line description, fail if invalid
    python3 - "$1" <<'EOF'
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
i, idat, ihdr, chunks = 8, b"", None, []
while i < len(d):
    n, t = struct.unpack(">I4s", d[i:i + 8])
    body = d[i + 8:i + 8 + n]
    crc, = struct.unpack(">I", d[i + 8 + n:i + 12 + n])
    assert zlib.crc32(t + body) == crc, f"bad CRC in {t}"
    chunks.append(t.decode())
    if t == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif t == b"IDAT":
        idat += body
    i += 12 + n
    if t == b"IEND":
        break
assert ihdr and chunks[0] == "IHDR" and chunks[-1] == "IEND", f"chunks {chunks}"
w, h, depth, ctype, _, _, interlace = ihdr
ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
raw = zlib.decompress(idat)
want = h * (1 + (w * ch * depth + 7) // 8)
assert interlace or len(raw) == want, f"IDAT inflates to {len(raw)} bytes, want {want}"
print(f"valid PNG {w}x{h}, {depth}-bit, color type {ctype}, {len(d)} bytes")
EOF
}
copy_rc=0
if [ ${#COPY[@]} -gt 0 ]; then
    mkdir -p "$RUN/out"
    for p in "${COPY[@]}"; do
        if [ -f "$R$CWD/$p" ]; then
            cp "$R$CWD/$p" "$RUN/out/"
            f="$RUN/out/$(basename "$p")"
            case "$p" in
                *.png) if desc=$(check_png "$f" 2>&1); then log "copied out $f: $desc"
                       else log "copied out $f: NOT A VALID PNG: $desc"; copy_rc=1; fi ;;
                *) log "copied out $f ($(stat -c %s "$f") bytes)" ;;
            esac
        else
            log "--copy-out $p: no such file in the checkout"; copy_rc=1
        fi
    done
fi

echo
echo "----- last $TAIL lines of $LOG"
tail -n "$TAIL" "$LOG"
echo "-----"
log "command: ${CMD[*]}"
log "exit status: $rc"
log "durations: command $d_cmd s, total $(secs "$t_all") s"
[ "$rc" = 0 ] && [ "$copy_rc" != 0 ] && rc=1
if [ "$rc" = 0 ] && [ "$KEEP" = 0 ]; then
    rm -rf --one-file-system "$R"
    log "tree removed (log and copies kept in $RUN)"
else
    log "tree kept: $R ($(du -sh "$R" 2>/dev/null | cut -f1)); remove with: rm -rf --one-file-system $R"
fi
exit "$rc"
