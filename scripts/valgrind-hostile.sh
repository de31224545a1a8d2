#!/usr/bin/env bash
# The hostile-producer suite (tests/hostile.rs) under valgrind memcheck:
# every test's process (wrd-capture, libpipewire, the test's checks) runs
# on valgrind's CPU; zero errors required (exit 1 otherwise). The sandbox
# daemons and wrd-testsrc are child processes and run natively.
#
#   scripts/valgrind-hostile.sh            # the CI subset (see SUBSET)
#   scripts/valgrind-hostile.sh --all      # every test of tests/hostile.rs
#   scripts/valgrind-hostile.sh FILTER...  # tests matching these names
#
# Suppressions: scripts/valgrind.supp (known noise outside wrd-capture,
# each entry says why). WRD_SLOW_TESTS=1 stretches the tests' timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."

# One test per class of check: chunk arithmetic (offset wrap, multi-plane),
# the fd checks at add_buffer (fd smaller than maxsize, pipe and /dev/null),
# plane count, metas (damage, crop, cursor bitmap, truncated), negotiation
# refusal and node removal.
SUBSET=(
    offset_wrapping_u32_is_dropped_as_bad_chunk
    chunk_lies_on_multi_plane_formats
    maxsize_larger_than_the_memfd_is_an_error_event_and_dropped
    pipe_or_dev_null_as_memfd_is_an_error_event_and_dropped
    more_data_blocks_than_planes_are_dropped_as_bad_layout
    damage_outside_the_frame_is_clipped_and_flagged
    crop_outside_the_frame_is_clipped_and_counted
    oversized_cursor_bitmaps_are_dropped_and_counted
    truncated_metas_are_ignored_and_counted
    huge_dimensions_are_refused_at_negotiation
    a_vanishing_node_is_reported_and_the_producer_lives
)
if [ "${1:-}" = "--all" ]; then
    FILTER=()
elif [ $# -gt 0 ]; then
    FILTER=("$@")
else
    FILTER=("${SUBSET[@]}")
fi

command -v valgrind >/dev/null || { echo "valgrind-hostile.sh: valgrind missing (apt-get install valgrind)" >&2; exit 1; }
cargo build -p wrd-testsrc
export WRD_TESTSRC_BIN="$PWD/target/debug/wrd-testsrc"
exe=$(cargo test --no-run --test hostile --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\/hostile-[0-9a-f]*\)".*/\1/p' | tail -1)
[ -x "$exe" ] || { echo "valgrind-hostile.sh: no test binary" >&2; exit 1; }

start=$(date +%s)
status=0
# Exact names, one process per test: valgrind's slow start is paid each
# time, but a failure names its test and the logs stay apart.
list=$("$exe" --list 2>/dev/null | sed -n 's/: test$//p')
for t in $list; do
    if [ ${#FILTER[@]} -gt 0 ]; then
        hit=0
        for f in "${FILTER[@]}"; do [[ "$t" == *"$f"* ]] && hit=1; done
        [ $hit = 1 ] || continue
    fi
    t0=$(date +%s)
    if WRD_SLOW_TESTS=1 valgrind -q --error-exitcode=1 --leak-check=no \
        --suppressions=scripts/valgrind.supp --gen-suppressions=all \
        "$exe" --exact "$t" --test-threads=1 >"/tmp/valgrind-hostile-$t.log" 2>&1; then
        echo "ok   $t ($(( $(date +%s) - t0 )) s)"
    else
        echo "FAIL $t ($(( $(date +%s) - t0 )) s), log /tmp/valgrind-hostile-$t.log:"
        grep -E "^==[0-9]+==|panicked|FAILED" "/tmp/valgrind-hostile-$t.log" | head -40
        status=1
    fi
done
echo "valgrind-hostile: $(( $(date +%s) - start )) s, status $status"
exit $status
