#!/usr/bin/env bash
# Soak benchmark (not in CI): 8 streams of 1920x1080@60 for 10 minutes
# against a private PipeWire, fast consumer; prints a line every 10 s and a
# SOAK summary (frames, fps, library drops, sequence gaps, fds, threads,
# RSS). Results go to docs/robustness.md by hand.
#
#   bench/soak.sh [SECS [STREAMS [WxH [FPS]]]]
#   WRD_SOAK_REALTIME=1 bench/soak.sh ...   frames on PipeWire's data thread
#
# The producer is the release build of wrd-testsrc (built here unless
# WRD_TESTSRC_BIN names one); the consumer is the test profile (its frame
# callback only reads the header band).
set -euo pipefail
cd "$(dirname "$0")/.."
export WRD_SOAK_SECS="${1:-600}" WRD_SOAK_STREAMS="${2:-8}" WRD_SOAK_SIZE="${3:-1920x1080}" WRD_SOAK_RATE="${4:-60}"
if [ -z "${WRD_TESTSRC_BIN:-}" ]; then
    cargo build --release -p wrd-testsrc
    export WRD_TESTSRC_BIN="$PWD/target/release/wrd-testsrc"
fi
echo "soak: $WRD_SOAK_STREAMS x $WRD_SOAK_SIZE@$WRD_SOAK_RATE for $WRD_SOAK_SECS s, producer $WRD_TESTSRC_BIN, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
exec cargo test --test soak -- --ignored --nocapture --test-threads=1
