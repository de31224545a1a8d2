#!/usr/bin/env bash
# modern-leg.sh — the "modern PipeWire" test leg (issue 9): run the project's
# test suite, built ONCE on the host against the host's PipeWire 0.3.65, inside
# the bookworm-backports root (PipeWire 1.4.x daemon + client library + SPA
# plugins, WirePlumber 0.5.x, GStreamer pipewire plugin, dbus). Same binaries,
# newer libpipewire-0.3.so.0 and daemon.
#
# Usage: scripts/modern-leg.sh [options] [-- TEST-BINARY-ARGS...]
#   --no-build        reuse the test list from the last run (target/modern-leg/)
#   --only PART       run only PART: rust | c | python (repeatable)
#   --keep-going      (default) run every part even if one fails
#   -- ARGS           passed to every Rust test binary (libtest args, e.g. a
#                     filter, --test-threads=1, --nocapture)
#
# Steps:
#   1. scripts/modern-root.sh            ensure the root (cached outside the
#                                        checkout; builds it on first use)
#   2. on the host: cargo build --workspace --bins --examples, then
#                   cargo test --workspace --no-run --message-format=json
#                                        ($WRD_MODERN_CARGO_ARGS appended, e.g.
#                                        "--release" or "--features x"), listing
#                                        the test executables it produced
#   3. in the root (scripts/in-modern-root.sh): every test executable, with
#                                        the cwd and CARGO_* variables cargo test
#                                        would give it; libtest's own output
#                                        and a summary in cargo test's format
#   4. tests/c/run.sh in the root, when it exists. No compiler exists in the
#      root: C tests are built on the host. When run.sh understands
#      --build-only (grep), it is first called so on the host; inside the root
#      it is called plainly with WRD_MODERN_LEG=1 set (so it can skip building).
#   5. python3 -m pytest bindings/python/tests in the root ($WRD_MODERN_PYTEST_ARGS
#      appended), when the directory exists.
# Exit status: 0 when every part that ran passed, 1 otherwise.
#
# Not run in the root: doctests (they need rustdoc/cargo; they run in the
# host leg and do not touch PipeWire).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

# ---------------------------------------------------------------------------
# Inside the root: run the Rust test executables listed in $1.
# ---------------------------------------------------------------------------
if [ "${1:-}" = "--inside-rust" ]; then
    list=$2; shift 2
    [ "${1:-}" = "--" ] && shift
    passed=0 failed=0 ignored=0 measured=0 filtered=0 nbin=0 nbad=0 bad=()
    t0=$(date +%s%N)
    while IFS=$'\t' read -r exe dir pkg ver kind name; do
        [ -n "$exe" ] || continue
        nbin=$((nbin + 1))
        case "$kind" in
            lib) label="unittests $name" ;;
            bin) label="unittests bin $name" ;;
            test) label="tests $name" ;;
            *) label="$kind $name" ;;
        esac
        printf '     Running %s (%s) [modern PipeWire]\n' "$label" "${exe#"$REPO"/}"
        log=$(mktemp)
        set +e
        (
            cd "$dir"
            export CARGO_MANIFEST_DIR="$dir" CARGO_PKG_NAME="$pkg" CARGO_PKG_VERSION="$ver" \
                   CARGO_CRATE_NAME="${name//-/_}"
            exec "$exe" "$@"
        ) 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        set -e
        res=$(grep -E '^test result: ' "$log" | tail -n1 || true)
        rm -f "$log"
        if [ -n "$res" ]; then
            n() { sed -nE "s/.* ([0-9]+) $1.*/\\1/p" <<<"$res"; }
            passed=$((passed + $(n passed))); failed=$((failed + $(n failed)))
            ignored=$((ignored + $(n ignored))); measured=$((measured + $(n measured)))
            filtered=$((filtered + $(n 'filtered out')))
        fi
        if [ "$rc" != 0 ]; then
            nbad=$((nbad + 1)); bad+=("$label (exit $rc)")
            # A crash (signal) or a harness=false binary leaves no libtest
            # line counting it as failed: count it once.
            if [ -z "$res" ] || ! grep -q ' [1-9][0-9]* failed' <<<"$res"; then failed=$((failed + 1)); fi
        fi
    done <"$list"
    secs=$(awk -v n="$(( $(date +%s%N) - t0 ))" 'BEGIN{printf "%.2f", n/1e9}')
    status=ok; [ "$nbad" = 0 ] || status=FAILED
    echo
    for b in "${bad[@]}"; do echo "modern-leg: FAILED binary: $b"; done
    echo "modern-leg rust: test result: $status. $passed passed; $failed failed; $ignored ignored; $measured measured; $filtered filtered out; finished in ${secs}s ($nbin binaries, $nbad failed)"
    [ "$nbad" = 0 ]
    exit
fi

# ---------------------------------------------------------------------------
# On the host.
# ---------------------------------------------------------------------------
BUILD=1
ONLY=()
TEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --only) ONLY+=("$2"); shift ;;
        --keep-going) ;;
        --) shift; TEST_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "modern-leg: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
want() { [ ${#ONLY[@]} = 0 ] && return 0; local o; for o in "${ONLY[@]}"; do [ "$o" = "$1" ] && return 0; done; return 1; }

cd "$REPO"
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
STATE="$TARGET/modern-leg"
mkdir -p "$STATE"
LIST="$STATE/rust-tests.tsv"
RESULTS=()
rc_all=0

say() { printf '\n=== modern-leg: %s\n' "$*"; }

say "root"
"$HERE/modern-root.sh"

if want rust; then
    if [ "$BUILD" = 1 ]; then
        say "building on the host (cargo build --workspace --bins --examples; cargo test --workspace --no-run) ${WRD_MODERN_CARGO_ARGS:-}"
        # The workspace's binaries (wrd-testsrc, ...) and examples too: tests
        # and scripts run them from target/, and cargo test only builds the
        # bins of a package for that package's own integration tests.
        # shellcheck disable=SC2086
        cargo build --workspace --bins --examples ${WRD_MODERN_CARGO_ARGS:-}
        # shellcheck disable=SC2086
        cargo test --workspace --no-run --message-format=json-render-diagnostics ${WRD_MODERN_CARGO_ARGS:-} \
            >"$STATE/cargo.json"
        # One line per test executable: exe, package dir, package, version, kind, target.
        python3 - "$STATE/cargo.json" >"$LIST.tmp" <<'EOF'
import json, os, sys
seen = set()
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("profile", {}).get("test"):
        continue
    exe = m.get("executable")
    if not exe or exe in seen:
        continue
    seen.add(exe)
    t = m["target"]
    kind = t["kind"][0] if t["kind"] else "?"
    if kind in ("lib", "rlib", "cdylib", "staticlib", "dylib", "proc-macro"):
        kind = "lib"
    pkgdir = os.path.dirname(m["manifest_path"])
    pid = m["package_id"]
    # package_id: "path+file:///dir#name@ver" (new) or "name ver (path+file://...)" (old)
    if "#" in pid:
        tail = pid.rsplit("#", 1)[1]
        name, _, ver = tail.partition("@")
        if not ver:  # "#ver" when the dir name equals the package name
            name, ver = os.path.basename(pkgdir), tail
    else:
        name, ver = pid.split()[0], pid.split()[1]
    print("\t".join([exe, pkgdir, name, ver, kind, t["name"]]))
EOF
        mv "$LIST.tmp" "$LIST"
    fi
    [ -f "$LIST" ] || { echo "modern-leg: no $LIST (run without --no-build)" >&2; exit 1; }
    say "Rust tests in the modern root ($(wc -l <"$LIST") executables)"
    if "$HERE/in-modern-root.sh" -- "$HERE/modern-leg.sh" --inside-rust "$LIST" -- "${TEST_ARGS[@]}"; then
        RESULTS+=("rust: ok")
    else
        RESULTS+=("rust: FAILED"); rc_all=1
    fi
fi

if want c; then
    if [ -f tests/c/run.sh ]; then
        if grep -q -- '--build-only' tests/c/run.sh; then
            say "building the C tests on the host (tests/c/run.sh --build-only)"
            bash tests/c/run.sh --build-only
        fi
        say "C tests in the modern root (tests/c/run.sh)"
        if "$HERE/in-modern-root.sh" -- bash tests/c/run.sh; then
            RESULTS+=("c: ok")
        else
            RESULTS+=("c: FAILED"); rc_all=1
        fi
    else
        say "C tests: SKIPPED — tests/c/run.sh does not exist (yet)"
        RESULTS+=("c: skipped (no tests/c/run.sh)")
    fi
fi

if want python; then
    if [ -d bindings/python/tests ]; then
        say "Python tests in the modern root (python3 -m pytest bindings/python/tests ${WRD_MODERN_PYTEST_ARGS:-})"
        # shellcheck disable=SC2086
        if "$HERE/in-modern-root.sh" -- python3 -m pytest -p no:cacheprovider bindings/python/tests ${WRD_MODERN_PYTEST_ARGS:-}; then
            RESULTS+=("python: ok")
        else
            RESULTS+=("python: FAILED"); rc_all=1
        fi
    else
        say "Python tests: SKIPPED — bindings/python/tests does not exist (yet)"
        RESULTS+=("python: skipped (no bindings/python/tests)")
    fi
fi

say "summary ($(sed -n 's/^pipewire=/PipeWire /p; s/^wireplumber=/WirePlumber /p' \
    "${WRD_MODERN_ROOT:-/var/cache/wrd-capture/bookworm-bpo}/.wrd-modern-root.stamp" | paste -sd' '))"
printf '  %s\n' "${RESULTS[@]}"
exit "$rc_all"
