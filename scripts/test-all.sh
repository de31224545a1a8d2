#!/usr/bin/env bash
# Every test of wrd-capture, on a fresh Debian 12 machine or a developer's:
# installs what is missing, checks formatting, lints, the generated header,
# then runs the Rust unit and integration tests (the C programs and the
# PipeWire sandboxes are driven from them) and the Python tests. Each test
# starts its own private PipeWire; nothing of the user's session is used.
#
# Two legs: the host's PipeWire 0.3.65 / WirePlumber 0.4.13 (Debian 12), and
# the same build against PipeWire 1.4.2 / WirePlumber 0.5.8 from
# bookworm-backports in a root cached at /var/cache/wrd-capture/bookworm-bpo
# (built once per machine, ~3-10 min; reused by later runs; see
# docs/modern-pipewire.md). A failure in either leg fails the run.
#
#   scripts/test-all.sh                      both legs
#   WRD_TEST_LEGS=host scripts/test-all.sh   only the host leg
#   WRD_TEST_LEGS=modern scripts/test-all.sh only the PipeWire 1.4 leg
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

legs=${WRD_TEST_LEGS:-host modern}
failed=0

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --all-targets

if [[ " $legs " == *" host "* ]]; then
    step "HOST LEG: PipeWire $(pipewire --version | sed -n 's/.*libpipewire \([0-9.]*\).*/\1/p'), WirePlumber $(wireplumber --version | sed -n 's/.*libwireplumber \([0-9.]*\).*/\1/p')"
    step "Rust unit and integration tests (C programs included)"
    cargo test --workspace --no-fail-fast 2>&1 | tee target/test-all.log || failed=1
    grep -E '^test result:' target/test-all.log | awk '{p+=$4; f+=$6} END {printf "host leg rust: %d passed, %d failed\n", p, f}'

    step "hostile-producer tests under valgrind memcheck (zero errors required)"
    bash scripts/valgrind-hostile.sh 2>&1 | tail -n 25 || failed=1

    step "DRM/KMS source in a VM (virtio-gpu under qemu)"
    bash tools/drm-vm/run.sh 2>&1 | tail -n 20 || failed=1

    if [ -d bindings/python/tests ]; then
        step "Python tests (each session starts its own sandbox: bindings/python/tests/conftest.py)"
        # The debug library built above (a release build would double the
        # compile time of CI for no difference in what is tested).
        # Debian's python3 has python3-pytest and python3-numpy; a python3
        # earlier on PATH (pyenv, a venv) may not.
        py=python3
        if ! "$py" -c 'import pytest, numpy' 2>/dev/null && [ -x /usr/bin/python3 ]; then
            py=/usr/bin/python3
        fi
        WRD_CAPTURE_LIB="$PWD/target/debug/libwrd_capture.so" \
            "$py" -m pytest -q bindings/python/tests || failed=1
    fi
fi

if [[ " $legs " == *" modern "* ]]; then
    step "MODERN LEG: the same build against PipeWire 1.4.2 / WirePlumber 0.5.8"
    bash scripts/modern-leg.sh || failed=1
fi

step "summary"
if ((failed)); then
    echo "test-all: FAILED"
    exit 1
fi
echo "test-all: every leg passed ($legs)"
