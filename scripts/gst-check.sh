#!/usr/bin/env bash
# Inside a sandbox: run wrd-testsrc with one stream per format and let
# GStreamer's pipewiresrc take N buffers from every node.
#
#   scripts/sandbox.sh run -- scripts/gst-check.sh [FORMATS] [N] [WRD-TESTSRC ARGS...]
#   (default BGRx,NV12,YUY2 and 60; needs target/debug/wrd-testsrc or $WRD_TESTSRC_BIN)
set -euo pipefail
: "${WRD_SANDBOX_DIR:?run me inside scripts/sandbox.sh run}"
formats=${1:-BGRx,NV12,YUY2}
n=${2:-60}
shift $(($# > 2 ? 2 : $#))
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${WRD_TESTSRC_BIN:-$root/target/debug/wrd-testsrc}
[[ -x $bin ]] || { echo "gst-check: $bin missing: cargo build -p wrd-testsrc" >&2; exit 1; }
streams=$(tr ',' '\n' <<<"$formats" | wc -l)

"$bin" --streams "$streams" --format "$formats" "$@" >"$WRD_SANDBOX_DIR/nodes" 2>"$WRD_SANDBOX_DIR/testsrc.log" &
producer=$!
trap 'kill -TERM $producer 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q '^ready$' "$WRD_SANDBOX_DIR/nodes" && break
    kill -0 "$producer" 2>/dev/null || { cat "$WRD_SANDBOX_DIR/testsrc.log" >&2; exit 1; }
    sleep 0.1
done
cat "$WRD_SANDBOX_DIR/nodes"
status=0
while read -r kw _ id name; do
    [[ $kw == node ]] || continue
    log=$WRD_SANDBOX_DIR/gst-$id.log
    timeout 60 gst-launch-1.0 -v pipewiresrc path="$id" stream-properties="p,media.type=Video" \
        num-buffers="$n" ! fakesink silent=false >"$log" 2>&1 || status=1
    got=$(grep -c 'last-message = chain' "$log" || true)
    caps=$(grep -m1 -o 'pipewiresrc0.GstPad:src: caps = .*' "$log" | sed 's/.*caps = //' || true)
    echo "node $id ($name): $got buffers, caps $caps"
    [[ $got == "$n" ]] || status=1
done <"$WRD_SANDBOX_DIR/nodes"
kill -TERM "$producer"
wait "$producer" && echo "wrd-testsrc exit status: 0" || { echo "wrd-testsrc exit status: $?"; status=1; }
trap - EXIT
exit "$status"
