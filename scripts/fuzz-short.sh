#!/usr/bin/env bash
# Short fuzz run of every target (CI): with cargo-fuzz (libFuzzer + ASan,
# on the stable toolchain through RUSTC_BOOTSTRAP=1) when it is installed,
# else the stable driver (tests/fuzz_stable.rs: corpus + random inputs).
#
#   scripts/fuzz-short.sh [SECONDS_PER_TARGET]   (default 30)
#
# New corpus entries libFuzzer finds land in fuzz/corpus/<target>/ (check
# the interesting ones in); crashes in fuzz/artifacts/<target>/ (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
targets=(format_param buffer_validate metas converters)
if cargo fuzz --version >/dev/null 2>&1; then
    cd fuzz
    RUSTC_BOOTSTRAP=1 cargo fuzz build -O
    for t in "${targets[@]}"; do
        echo "== $t ($secs s, libFuzzer + ASan)"
        RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" -- \
            -max_total_time="$secs" -print_final_stats=1 2>&1 \
            | grep -E "stat::number_of_executed_units|stat::new_units_added|ERROR|SUMMARY|Done" || true
        [ -z "$(ls -A "artifacts/$t" 2>/dev/null)" ] || { echo "fuzz: $t crashed, see fuzz/artifacts/$t"; exit 1; }
    done
else
    echo "cargo-fuzz not installed (cargo install cargo-fuzz): stable driver instead"
    WRD_FUZZ_SECS="$secs" cargo test --test fuzz_stable -- --nocapture 2>&1 | grep -E "inputs|test result"
fi
