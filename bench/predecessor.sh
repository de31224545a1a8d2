#!/usr/bin/env bash
# bench/predecessor.sh — how the consumer before changes the next one's first
# frame (docs/bench/notes.md, "First frame"). One private PipeWire, one
# producer of 8 x 1080p@60, then wrd-bench consumers after: a new producer,
# another wrd-bench, gst-launch-1.0 pipewiresrc (16 buffers per stream,
# then max-buffers=4), each printing when the library reached FormatChanged
# and Streaming and the 8 streams' first frames (ms after add_stream).
#
#   bash bench/predecessor.sh [ROUNDS]      (needs target/release binaries)
#
# ROUNDS 0: only the first case (a new producer). With WRD_PERF_PRODUCER=FILE
# the producer runs under `perf record -e cpu-clock -F 20000 -g -o FILE`
# (then: perf report -i FILE --children --sort sym -g none).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
P=target/release/wrd-testsrc
B=target/release/wrd-bench
[[ -x $P && -x $B ]] || cargo build --release -p wrd-bench -p wrd-testsrc
eval "$(scripts/sandbox.sh start)"
trap 'kill -INT $pp 2>/dev/null || true; wait $pp 2>/dev/null || true; scripts/sandbox.sh stop "$WRD_SANDBOX_DIR"' EXIT
out=$WRD_SANDBOX_DIR/producer.out
perf=()
[[ -n ${WRD_PERF_PRODUCER:-} ]] && perf=(perf record -q -e cpu-clock -F 20000 -g -o "$WRD_PERF_PRODUCER" --)
"${perf[@]}" $P --repaint-damage --size 1920x1080 --rate 60 --format BGRx --streams 8 >"$out" 2>"$WRD_SANDBOX_DIR/producer.err" &
pp=$!
for _ in $(seq 100); do grep -q '^ready' "$out" && break; sleep 0.1; done
ids=$(awk '$1=="node"{print $3}' "$out" | paste -sd,)
consumer() {
    printf '%-34s' "after $1:"
    $B --mode count --nodes "$ids" --seconds 0.5 --warmup 0.2 | tail -1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = lambda k: [round(x) for x in d[k]]
print("format", r("format_ms")[0], " streaming", r("streaming_ms")[0], " first frames", r("first_frame_ms"))'
}
gst() { # gst-launch-1.0 on all 8 nodes for 2 s, interrupted as a user would
    local chain="" n
    for n in ${ids//,/ }; do chain+=" pipewiresrc path=$n $1 stream-properties=p,media.type=Video ! fakesink"; done
    # shellcheck disable=SC2086
    timeout -s INT 2 gst-launch-1.0 -q $chain >/dev/null 2>&1 || true
}
consumer "a new producer"
for _ in $(seq "$rounds"); do
    consumer "wrd-bench"
    gst ""
    consumer "gst-launch (16 buffers)"
    gst ""
    sleep 1
    consumer "gst-launch, then 1 s"
    consumer "wrd-bench"
    gst "min-buffers=2 max-buffers=4"
    consumer "gst-launch max-buffers=4"
done
