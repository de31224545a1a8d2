#!/usr/bin/env bash
# Every test of wrd-capture, on a fresh Debian 12 machine or a developer's:
# installs what is missing, checks formatting, lints, the generated header,
# then runs the Rust unit and integration tests (the C programs and the
# PipeWire sandboxes are driven from them) and the Python tests. Each test
# starts its own private PipeWire; nothing of the user's session is used.
#
#   scripts/test-all.sh            everything
#   WRD_TEST_LEGS=modern scripts/test-all.sh   only the PipeWire 1.4 leg
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --all-targets

step "Rust unit and integration tests (C programs included) against PipeWire $(pipewire --version | sed -n 's/.*libpipewire \([0-9.]*\).*/\1/p')"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-all.log
grep -E '^test result:' target/test-all.log | awk '{p+=$4; f+=$6} END {printf "rust: %d passed, %d failed\n", p, f}'

if [ -d bindings/python/tests ]; then
    step "Python tests (each session starts its own sandbox: bindings/python/tests/conftest.py)"
    cargo build --release -p wrd-capture
    # Debian's python3 has python3-pytest and python3-numpy; a python3 earlier
    # on PATH (pyenv, a venv) may not.
    py=python3
    if ! "$py" -c 'import pytest, numpy' 2>/dev/null && [ -x /usr/bin/python3 ]; then
        py=/usr/bin/python3
    fi
    WRD_CAPTURE_LIB="$PWD/target/release/libwrd_capture.so" \
        "$py" -m pytest -q bindings/python/tests
fi
