#!/usr/bin/env bash
# A private PipeWire for tests: session D-Bus, pipewire and wireplumber in a
# fresh runtime directory of their own. Nothing is shared with the user's
# session or with other sandboxes.
#
#   sandbox.sh start [--owner PID]   start one; prints `export` lines on stdout
#   sandbox.sh stop DIR              kill its daemons (by pid) and remove DIR
#   sandbox.sh run [--] CMD [ARG...] start one, run CMD in it, tear it down,
#                                    exit with CMD's status
#   sandbox.sh restart DIR           kill and start again its pipewire and
#                                    wireplumber (fault tests)
#
#   eval "$(scripts/sandbox.sh start --owner $$)"; ...; scripts/sandbox.sh stop "$WRD_SANDBOX_DIR"
#
# Teardown never depends on the caller behaving: a watchdog (its own session)
# kills the daemons as soon as the owner process is gone (default owner: the
# process that ran `sandbox.sh start`; `--owner 0` disables the watchdog).
# So `kill -9` of a test that holds a sandbox leaves nothing running.
#
# Files in DIR: pids (lines `NAME PID`), dbus.log, pipewire.log,
# wireplumber.log, watchdog.log, env (the export lines).
#
# Environment: WRD_SANDBOX_TIMEOUT (seconds to wait for readiness, default 10),
# WRD_SANDBOX_TMP (parent of the runtime directories, default $TMPDIR or /tmp).

set -euo pipefail

prog=${0##*/}
die() {
    echo "$prog: $*" >&2
    exit 1
}

timeout_s=${WRD_SANDBOX_TIMEOUT:-10}

need_tools() {
    local missing=() t
    for t in dbus-daemon pipewire wireplumber pw-dump setsid; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        die "missing: ${missing[*]} (install them with scripts/install-deps.sh; the PipeWire tests cannot run without them)"
    fi
}

# The start time of a live process (field 22 of /proc/PID/stat), so that a
# reused pid is not mistaken for the one we started. Fails for a zombie.
start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    [[ $1 != Z ]] || return 1
    echo "${20}"
}

# True if PID is alive, is still the process that had start time STARTED.
same_process() {
    local pid=$1 started=$2 now
    now=$(start_time "$pid") || return 1
    [[ $now == "$started" ]]
}

# Kill the processes listed in PIDFILE (lines: NAME PID STARTTIME), TERM
# first, KILL after 3 s. Only pids that are still the processes we started.
kill_listed() {
    local pidfile=$1 name pid started live i
    [[ -f $pidfile ]] || return 0
    live=()
    while read -r name pid started; do
        [[ -n ${pid:-} ]] || continue
        if same_process "$pid" "$started"; then
            kill -TERM "$pid" 2>/dev/null || true
            live+=("$pid:$started")
        fi
    done <"$pidfile"
    for ((i = 0; i < 30; i++)); do
        local still=()
        for entry in "${live[@]}"; do
            same_process "${entry%%:*}" "${entry#*:}" && still+=("$entry")
        done
        live=("${still[@]}")
        ((${#live[@]})) || return 0
        sleep 0.1
    done
    for entry in "${live[@]}"; do
        pid=${entry%%:*}
        same_process "$pid" "${entry#*:}" && kill -KILL "$pid" 2>/dev/null || true
    done
    return 0
}

# Start PROGRAM ARGS... in a session of its own, output into DIR/LOG.
# Prints the pid.
spawn() {
    local log=$1
    shift
    # A background job of a non-interactive shell is not a group leader, so
    # setsid execs in place and $! is the daemon's own pid.
    setsid "$@" </dev/null >"$dir/$log" 2>&1 &
    local pid=$!
    echo "$1 $pid $(start_time "$pid" || echo 0)" >>"$dir/pids"
    echo "$pid"
}

wait_for() {
    local what=$1 pid=$2
    shift 2
    local deadline=$((SECONDS + timeout_s))
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || return 2
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

fail_start() {
    local msg=$1 log=$2
    echo "$prog: $msg" >&2
    if [[ -f $dir/$log ]]; then
        echo "--- $log:" >&2
        tail -n 20 "$dir/$log" >&2
    fi
    kill_listed "$dir/pids"
    rm -rf "$dir"
    exit 1
}

wireplumber_ready() {
    local dump
    dump=$(timeout 3 pw-dump 2>/dev/null) || return 1
    # WirePlumber's second connection, made once its components are loaded.
    grep -q '"application.name": "WirePlumber \[export\]"' <<<"$dump"
}

cmd_start() {
    local owner=$PPID
    while (($#)); do
        case $1 in
        --owner)
            owner=${2:?--owner needs a pid}
            shift 2
            ;;
        *) die "start: unknown argument $1" ;;
        esac
    done
    need_tools

    local parent=${WRD_SANDBOX_TMP:-${TMPDIR:-/tmp}}
    dir=$(mktemp -d "$parent/wrd-sandbox.XXXXXXXX") || die "mktemp failed"
    chmod 0700 "$dir"
    mkdir -m 0700 "$dir/state" "$dir/config"
    : >"$dir/pids"

    export XDG_RUNTIME_DIR=$dir
    export PIPEWIRE_RUNTIME_DIR=$dir
    export DBUS_SESSION_BUS_ADDRESS=unix:path=$dir/bus
    # Keep WirePlumber's saved state and any user configuration out.
    export XDG_STATE_HOME=$dir/state
    export XDG_CONFIG_HOME=$dir/config
    unset PIPEWIRE_REMOTE PIPEWIRE_CORE PULSE_SERVER DISPLAY WAYLAND_DISPLAY

    # The watchdog first, so that a crash of ours during start-up is covered
    # too. It reads the pid file, so it kills whatever was started so far.
    if [[ $owner != 0 ]]; then
        local owner_start
        owner_start=$(start_time "$owner") || die "owner process $owner does not exist"
        setsid bash -c '
            dir=$1 owner=$2 owner_start=$3
            st() { local s; s=$(cat /proc/$1/stat 2>/dev/null) || return 1; s=${s##*) }; set -- $s; [[ $1 != Z ]] || return 1; echo "${20}"; }
            alive() { [[ $(st "$owner") == "$owner_start" ]]; }
            while [[ -d $dir ]] && alive; do sleep 0.5; done
            [[ -f $dir/pids ]] || exit 0
            echo "owner $owner gone: killing the sandbox" >&2
            while read -r name pid started; do
                [[ $name == watchdog ]] && continue
                [[ $(st "$pid") == "$started" ]] && kill -TERM "$pid" 2>/dev/null
            done <"$dir/pids"
            for _ in $(seq 20); do
                left=0
                while read -r name pid started; do
                    [[ $name == watchdog ]] && continue
                    [[ $(st "$pid") == "$started" ]] && left=1
                done <"$dir/pids"
                ((left)) || break
                sleep 0.1
            done
            while read -r name pid started; do
                [[ $name == watchdog ]] && continue
                [[ $(st "$pid") == "$started" ]] && kill -KILL "$pid" 2>/dev/null
            done <"$dir/pids"
            rm -rf "$dir"
        ' wrd-sandbox-watchdog "$dir" "$owner" "$owner_start" </dev/null >"$dir/watchdog.log" 2>&1 &
        echo "watchdog $! $(start_time $! || echo 0)" >>"$dir/pids"
    fi

    local pid
    pid=$(spawn dbus.log dbus-daemon --session --nofork --nopidfile --address="unix:path=$dir/bus")
    wait_for "dbus" "$pid" test -S "$dir/bus" || fail_start "dbus-daemon did not start" dbus.log

    pid=$(spawn pipewire.log pipewire)
    wait_for "pipewire" "$pid" timeout 3 pw-dump ||
        fail_start "pipewire did not answer within ${timeout_s}s" pipewire.log

    pid=$(spawn wireplumber.log wireplumber)
    wait_for "wireplumber" "$pid" wireplumber_ready ||
        fail_start "wireplumber did not register within ${timeout_s}s" wireplumber.log

    {
        printf 'export XDG_RUNTIME_DIR=%q\n' "$dir"
        printf 'export PIPEWIRE_RUNTIME_DIR=%q\n' "$dir"
        printf 'export DBUS_SESSION_BUS_ADDRESS=%q\n' "unix:path=$dir/bus"
        printf 'export XDG_STATE_HOME=%q\n' "$dir/state"
        printf 'export XDG_CONFIG_HOME=%q\n' "$dir/config"
        printf 'export WRD_SANDBOX_DIR=%q\n' "$dir"
        printf 'export WRD_SANDBOX_SOCKET=%q\n' "$dir/pipewire-0"
        printf 'unset PIPEWIRE_REMOTE PIPEWIRE_CORE\n'
    } >"$dir/env"
    cat "$dir/env"
}

cmd_stop() {
    local d=${1:?usage: $prog stop DIR}
    [[ -d $d ]] || return 0
    # Refuse to remove anything that is not one of ours.
    [[ ${d##*/} == wrd-sandbox.* && -f $d/pids ]] || die "$d is not a sandbox directory"
    # The watchdog first (it is listed first), so it does not race us.
    kill_listed "$d/pids"
    rm -rf "$d"
}

# Restart pipewire and wireplumber of a running sandbox (fault tests: the
# daemon "comes back"). The new pids are appended to DIR/pids, so stop and
# the watchdog still find everything.
cmd_restart() {
    dir=${1:?usage: $prog restart DIR}
    [[ ${dir##*/} == wrd-sandbox.* && -f $dir/pids ]] || die "$dir is not a sandbox directory"
    # shellcheck disable=SC1091
    source "$dir/env"
    local name pid started
    while read -r name pid started; do
        [[ $name == pipewire || $name == wireplumber ]] || continue
        [[ $(start_time "$pid" 2>/dev/null) == "$started" ]] && kill -KILL "$pid" 2>/dev/null
    done <"$dir/pids"
    sleep 0.1
    pid=$(spawn pipewire.log pipewire)
    wait_for "pipewire" "$pid" timeout 3 pw-dump || die "pipewire did not come back"
    pid=$(spawn wireplumber.log wireplumber)
    wait_for "wireplumber" "$pid" wireplumber_ready || die "wireplumber did not come back"
}

cmd_run() {
    [[ ${1:-} == -- ]] && shift
    (($#)) || die "usage: $prog run [--] CMD [ARG...]"
    local env_lines
    env_lines=$(cmd_start --owner $$) || exit 1
    eval "$env_lines"
    local sandbox=$WRD_SANDBOX_DIR
    # shellcheck disable=SC2064
    trap "\"$0\" stop '$sandbox'" EXIT
    # CMD runs in the background so that a signal to us is handled at once
    # (bash runs traps only between foreground commands); it keeps our stdin.
    local child status=0
    "$@" <&0 &
    child=$!
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 130' INT
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM
    wait "$child" || status=$?
    exit "$status"
}

case ${1:-} in
start)
    shift
    cmd_start "$@"
    ;;
stop)
    shift
    cmd_stop "$@"
    ;;
restart)
    shift
    cmd_restart "$@"
    ;;
run)
    shift
    cmd_run "$@"
    ;;
*)
    sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
