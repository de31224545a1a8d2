#!/usr/bin/env bash
# pw-target-smoke.sh — smoke test of a private PipeWire + WirePlumber and of
# how the session manager links a video consumer to a target node.
#
# Runs wherever it is started: on the host (PipeWire 0.3.65 / WirePlumber
# 0.4.13) or in the modern root (scripts/in-modern-root.sh -- scripts/pw-target-smoke.sh:
# PipeWire 1.4.2 / WirePlumber 0.5.8). Needs: dbus-daemon, pipewire,
# wireplumber, pw-dump, gst-launch-1.0 with pipewiresrc/pipewiresink, python3.
#
# It starts its own session bus, pipewire and wireplumber in a fresh
# XDG_RUNTIME_DIR, two GStreamer producers (pipewiresink mode=provide,
# media.class=Video/Source):
#   wrd-smoke-x  320x240 BGRx   (the node every consumer below targets)
#   wrd-smoke-y  640x480 BGRx   (a decoy with the highest priority.session:
#                               where a fallback to the default lands)
# and then one consumer per targeting variant (pipewiresrc num-buffers=60 !
# fakesink). For each it reports whether 60 buffers arrived and from which
# producer (by the negotiated width), as a table. WRD_SMOKE_ONLY=REGEX runs
# only the variants whose label matches; WRD_SMOKE_KEEP_LOGS=1 copies the logs
# to $WRD_SMOKE_LOG_DIR/wrd-smoke-logs (default /tmp). Exit 1 if the basic case
# (path=<node id>, i.e. pw_stream_connect(target_id)) does not work.
set -uo pipefail

T=$(mktemp -d /tmp/wrd-smoke.XXXXXX)
export XDG_RUNTIME_DIR=$T PIPEWIRE_RUNTIME_DIR=$T
unset PIPEWIRE_REMOTE DISPLAY WAYLAND_DISPLAY
export HOME=$T/home XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_STATE_HOME"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${DBUS_PID:-}" ] && kill "$DBUS_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

echo "== $(pipewire --version | tail -n1); $(wireplumber --version | tail -n1); $(gst-launch-1.0 --version | head -n1)"

dbus_out=$(dbus-daemon --session --fork --address="unix:path=$T/bus" --print-pid=1)
DBUS_PID=$(echo "$dbus_out" | head -n1)
export DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bus"

pipewire >"$T/pipewire.log" 2>&1 & PIDS+=($!)
for _ in $(seq 50); do [ -S "$T/pipewire-0" ] && break; sleep 0.1; done
[ -S "$T/pipewire-0" ] || { echo "pipewire did not start"; cat "$T/pipewire.log"; exit 1; }
wireplumber >"$T/wireplumber.log" 2>&1 & PIDS+=($!)

producer() { # name width height [,extra-props]
    gst-launch-1.0 videotestsrc is-live=true \
        ! "video/x-raw,format=BGRx,width=$2,height=$3,framerate=30/1" \
        ! pipewiresink mode=provide \
          stream-properties="p,media.class=Video/Source,media.type=Video,node.name=$1${4:-}" \
        >"$T/$1.log" 2>&1 &
    PIDS+=($!)
}

# node.name -> "id serial" (object.serial exists since 0.3.44)
node_ids() {
    pw-dump 2>/dev/null | python3 -c '
import json, sys
want = sys.argv[1]
for o in json.load(sys.stdin):
    if o.get("type") == "PipeWire:Interface:Node":
        p = o.get("info", {}).get("props", {})
        if p.get("node.name") == want:
            print(o["id"], p.get("object.serial", "?"))
            break' "$1"
}
wait_node() { local v; for _ in $(seq 100); do v=$(node_ids "$1"); [ -n "$v" ] && { echo "$v"; return 0; }; sleep 0.1; done; return 1; }
declare -A PPID_OF=()
# Fresh producers for every consumer: a pipewiresink mode=provide serves one
# consumer only. Since PipeWire 1.2 (1.1.83) it posts "all buffers have been
# removed" and its pipeline ends when the link to its consumer is destroyed;
# 0.3.65's stays, but a second consumer linked to it gets no buffers.
# Restarting also moves x to a reused id with a fresh serial (serials are
# never reused), so "target.object=<id>" really tests the id-vs-serial
# confusion.
ensure_producers() {
    local n
    for n in x y; do
        if [ -n "${PPID_OF[$n]:-}" ]; then
            kill "${PPID_OF[$n]}" 2>/dev/null; wait "${PPID_OF[$n]}" 2>/dev/null
            for _ in $(seq 50); do [ -z "$(node_ids wrd-smoke-$n)" ] && break; sleep 0.1; done
        fi
        if [ -z "$(node_ids wrd-smoke-$n)" ]; then
            # y is the preferred default (highest priority): a consumer that
            # falls back lands on y, so "linked to x" means "targeted".
            if [ $n = x ]; then
                producer wrd-smoke-x 320 240
            else
                producer wrd-smoke-y 640 480 ",priority.session=5000,priority.driver=5000"
            fi
            PPID_OF[$n]=${PIDS[-1]}
        fi
    done
    X=$(wait_node wrd-smoke-x) && Y=$(wait_node wrd-smoke-y) \
        || { echo "producers did not appear"; tail -n 20 "$T"/*.log; exit 1; }
    read -r XID XSERIAL <<<"$X"
    read -r YID YSERIAL <<<"$Y"
    sleep 0.5 # let WirePlumber create the session items
}
# A throwaway producer first, so that x's id and serial differ from the start.
producer wrd-smoke-tmp 160 120
wait_node wrd-smoke-tmp >/dev/null || { echo "producer did not appear"; tail -n 20 "$T"/*.log; exit 1; }
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null
for _ in $(seq 50); do [ -z "$(node_ids wrd-smoke-tmp)" ] && break; sleep 0.1; done
ensure_producers
echo "== producer x: id $XID serial $XSERIAL (320x240); decoy y: id $YID serial $YSERIAL (640x480)"

# consumer LABEL [pipewiresrc properties...]; @XID@ and @XSERIAL@ are replaced
# by x's current id and serial.
BASIC_OK=0
consumer() {
    local label=$1; shift
    local log="$T/consumer.log" t0 rc src a args=()
    [[ $label =~ ${WRD_SMOKE_ONLY:-.} ]] || return 0
    echo "---- consumer: $label" >>"$T/wireplumber.log"
    ensure_producers
    for a in "$@"; do a=${a//@XID@/$XID}; args+=("${a//@XSERIAL@/$XSERIAL}"); done
    t0=$(date +%s%N)
    timeout 10 gst-launch-1.0 -v pipewiresrc "${args[@]}" num-buffers=60 ! fakesink >"$log" 2>&1
    rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if grep -q 'width=(int)320' "$log"; then src=x; elif grep -q 'width=(int)640' "$log"; then src="y (fallback)"; else src=-; fi
    local what=FAIL
    if [ $rc = 0 ] && grep -q 'Got EOS' "$log"; then what=OK; fi
    [ $rc = 124 ] && what="TIMEOUT (not linked)"
    [ $rc != 0 ] && [ $rc != 124 ] && what="ERROR rc=$rc: $(sed -n 's/^ERROR: from element [^ ]*: //p; s/^WARNING: erroneous pipeline: //p' "$log" | head -n1 | cut -c1-90)"
    printf '%-42s %-8s %-13s %6d ms  (x: id %s serial %s)\n' "$label" "${what%% *}" "$src" "$ms" "$XID" "$XSERIAL"
    [ "$what" = OK ] || [ "$what" = "${what%% *}" ] || printf '%-42s   %s\n' "" "$what"
    [ "$label" = "path=<id>" ] && [ "$what" = OK ] && [ "$src" = x ] && BASIC_OK=1
    return 0
}
printf '%-42s %-8s %-13s %9s\n' "consumer (pipewiresrc ...)" "result" "linked to" "time"
V="p,media.type=Video"
consumer "path=<id>"                            path=@XID@ stream-properties="$V"
consumer "target-object=<serial>"               target-object=@XSERIAL@ stream-properties="$V"
consumer "target-object=<node.name>"            target-object=wrd-smoke-x stream-properties="$V"
consumer "target-object=<id> (id as serial)"    target-object=@XID@ stream-properties="$V"
consumer "target-object=<id> +dont-fallback"    target-object=@XID@ stream-properties="$V,node.dont-fallback=true"
consumer "path=9999 (missing)"                  path=9999 stream-properties="$V"
consumer "path=9999 +dont-fallback"             path=9999 stream-properties="$V,node.dont-fallback=true"
consumer "path=9999 +dont-fallback +linger"     path=9999 stream-properties="$V,node.dont-fallback=true,node.linger=true"
consumer "target-object=nope (missing name)"    target-object=nope stream-properties="$V"
consumer "(no target)"                          stream-properties="$V"
consumer "path=<id>, no media.type"             path=@XID@
consumer "path=<id>, autoconnect=false"         path=@XID@ autoconnect=false stream-properties="$V"

# The same with a pw_stream consumer built on the host against 0.3.65
# (examples/pw_probe.rs): pw_stream_connect(target_id) sets node.target=<id>.
probe() {
    local label=$1; shift
    local log="$T/probe.log" t0 rc src a args=()
    [[ $label =~ ${WRD_SMOKE_ONLY:-.} ]] || return 0
    echo "---- probe: $label" >>"$T/wireplumber.log"
    ensure_producers
    for a in "$@"; do a=${a//@XID@/$XID}; args+=("${a//@XSERIAL@/$XSERIAL}"); done
    t0=$(date +%s%N)
    "$PROBE" "${args[@]}" --frames 60 --timeout 10 >"$log" 2>&1
    rc=$?
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if grep -q ' 320x240' "$log"; then src=x; elif grep -q ' 640x480' "$log"; then src="y (fallback)"; else src=-; fi
    local what
    case $rc in
        0) what=OK ;;
        1) what="ERROR: $(grep -m1 -o 'Error(.*' "$log" | cut -c1-80)" ;;
        2) what="TIMEOUT (not linked)" ;;
        *) what="FAIL rc=$rc: $(tail -n1 "$log")" ;;
    esac
    printf '%-42s %-8s %-13s %6d ms  (x: id %s serial %s)\n' "$label" "${what%% *}" "$src" "$ms" "$XID" "$XSERIAL"
    [ "$what" = OK ] || [ "$what" = "${what%% *}" ] || printf '%-42s   %s\n' "" "$what"
    return 0
}
PROBE=${WRD_SMOKE_PROBE:-}
if [ -n "$PROBE" ]; then
    echo "== pw_stream consumer: $PROBE ($("$PROBE" --frames 0 --timeout 0.01 2>/dev/null | sed -n 's/^library /library /p'))"
    probe "probe --target-id <id>"                         --target-id @XID@
    probe "probe target.object=<serial>"                   --prop target.object=@XSERIAL@
    probe "probe target.object=<name>"                     --prop target.object=wrd-smoke-x
    probe "probe target.object=<id> +dont-fallback"        --prop target.object=@XID@ --prop node.dont-fallback=true
    probe "probe --target-id 9999 (missing)"               --target-id 9999
    probe "probe --target-id 9999 +dont-fallback"          --target-id 9999 --prop node.dont-fallback=true
    probe "probe --target-id <id>, no media.type"          --target-id @XID@ --prop media.type=
fi

if [ "${WRD_SMOKE_KEEP_LOGS:-0}" = 1 ]; then
    mkdir -p "${WRD_SMOKE_LOG_DIR:-/tmp}/wrd-smoke-logs"
    cp "$T"/*.log "${WRD_SMOKE_LOG_DIR:-/tmp}/wrd-smoke-logs/"
fi
[ $BASIC_OK = 1 ] || [ -n "${WRD_SMOKE_ONLY:-}" ] || { echo "FAIL: basic targeting by node id did not work"; tail -n 30 "$T/wireplumber.log"; exit 1; }
echo "== ok"
