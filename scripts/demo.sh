#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: install what is needed, build
# and install wrd-capture into ./dist, start a private PipeWire with
# wrd-testsrc publishing two screencast nodes, capture them through the C API
# (examples-c/capture-png.c, built with pkg-config), write a PNG of one frame
# and print per-stream stats.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
make install PREFIX="$PWD/dist"
cargo build --release -q -p wrd-testsrc
export PKG_CONFIG_PATH="$PWD/dist/lib/pkgconfig"
cc -O2 examples-c/capture-png.c $(pkg-config --cflags --libs wrd-capture libpng) -o dist/capture-png

scripts/sandbox.sh run -- bash -c '
    set -euo pipefail
    nodes="$WRD_SANDBOX_DIR/nodes"
    target/release/wrd-testsrc --streams 2 --size 640x360 --rate 30 >"$nodes" &
    for _ in $(seq 100); do grep -q "^ready" "$nodes" && break; sleep 0.1; done
    grep -q "^ready" "$nodes" || { echo "wrd-testsrc did not start" >&2; exit 1; }
    ids=$(awk "/^node /{print \$3}" "$nodes")
    echo "wrd-testsrc nodes:" $ids
    LD_LIBRARY_PATH="$PWD/dist/lib" dist/capture-png demo.png 90 $ids
    kill %1 2>/dev/null || true; wait 2>/dev/null || true
'
echo "demo.png is the newest frame of the first stream"
