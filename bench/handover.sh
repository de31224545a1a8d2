#!/usr/bin/env bash
# bench/handover.sh — consumers one after another on one producer, in the
# order of bench/run.py's 4th repeat (gst, wrd-bgra, wrd-rt, then a
# default-mode wrd-count with WRD_BENCH_EVENTS=1), 0.3 s apart. Counts the
# default-mode consumers that get no first frame within 4 s and prints their
# events and the producer's last lines (docs/bench/modern/notes.md: once, 3
# of 30 did on PipeWire 1.4.2).
#
#   bash bench/handover.sh [ROUNDS [SIZE [SECONDS]]]        (default 10 3840x2160 1)
#   scripts/in-modern-root.sh bash bench/handover.sh 35 3840x2160 4   (PipeWire 1.4.2)
#
# Needs target/release/wrd-bench and wrd-testsrc. Exit status 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10} size=${2:-3840x2160} secs=${3:-1}
warm=$(python3 -c "print(min(1.0, $secs / 4))")
P=target/release/wrd-testsrc
B=target/release/wrd-bench
[[ -x $P && -x $B ]] || { echo "handover: build first: cargo build --release -p wrd-bench -p wrd-testsrc" >&2; exit 2; }
eval "$(scripts/sandbox.sh start)"
trap 'kill $pp 2>/dev/null || true; scripts/sandbox.sh stop "$WRD_SANDBOX_DIR"' EXIT
out=$WRD_SANDBOX_DIR/producer.out
$P --repaint-damage --size "$size" --rate 60 --format BGRx >"$out" 2>"$WRD_SANDBOX_DIR/producer.err" &
pp=$!
for _ in $(seq 100); do grep -q '^ready' "$out" && break; sleep 0.1; done
id=$(awk '$1=="node"{print $3}' "$out")
fails=0
for i in $(seq "$rounds"); do
    for mode in "gst" "bgra" "count --realtime"; do
        # shellcheck disable=SC2086
        $B --mode $mode --nodes "$id" --seconds "$secs" --warmup "$warm" >/dev/null
        sleep 0.3
    done
    if ! WRD_BENCH_EVENTS=1 $B --mode count --nodes "$id" --seconds 0.5 --warmup 0.2 \
        --first-frame-timeout 4 >/dev/null 2>"$WRD_SANDBOX_DIR/consumer.err"; then
        fails=$((fails + 1))
        echo "round $i: no first frame"
        head -40 "$WRD_SANDBOX_DIR/consumer.err"
        tail -5 "$WRD_SANDBOX_DIR/producer.err"
    fi
done
echo "handover: $fails of $rounds default-mode consumers without a first frame ($size, ${secs} s windows)"
((fails == 0))
