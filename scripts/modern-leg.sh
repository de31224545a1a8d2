#!/usr/bin/env bash
# modern-leg.sh — the "modern PipeWire" test leg (issue 9): run the project's
# test suite, built ONCE on the host against the host's PipeWire 0.3.65, inside
# the bookworm-backports root (PipeWire 1.4.x daemon + client library + SPA
# plugins, WirePlumber 0.5.x, GStreamer pipewire plugin, dbus). Same binaries,
# newer libpipewire-0.3.so.0 and daemon.
#
# Usage: scripts/modern-leg.sh [options] [-- TEST-ARGS...]
#   --runner cargo    (default) `cargo test --workspace --no-fail-fast` inside
#                     the root, with everything already built on the host
#   --runner binaries run the test executables one by one (no cargo process
#                     around them; the tests may still call cargo themselves)
#   --no-build        skip the host build (reuse target/ as it is)
#   --only PART       run only PART: rust | c | mixed | python (repeatable)
#   -- ARGS           libtest arguments for every test binary (a filter,
#                     --test-threads=1, --nocapture, ...)
# Environment: WRD_MODERN_CARGO_ARGS (e.g. "--release"), WRD_MODERN_PREBUILD
# (extra host commands, run with bash, before entering the root),
# WRD_MODERN_ALLOW_REBUILD=1 (do not fail when cargo would compile something
# inside the root), WRD_MODERN_PYTEST_ARGS, and those of in-modern-root.sh.
#
# Steps:
#   1. scripts/modern-root.sh  ensure the root (cached outside the checkout in
#      /var/cache/wrd-capture/bookworm-bpo; built on first use)
#   2. on the host, every build the tests trigger themselves, so that inside
#      the root cargo finds it all fresh and compiles nothing:
#        cargo build --workspace --all-targets
#        cargo build -p wrd-capture                   (make install: tests/c_api.rs)
#        cargo build -p wrd-testsrc --bin wrd-testsrc (wrd_testsrc::sandbox)
#        cargo build --examples                       (tests/capture.rs)
#        cargo test --workspace --no-run
#      ($WRD_MODERN_CARGO_ARGS appended to each)
#   3. in the root (scripts/in-modern-root.sh: host toolchain and headers
#      bound in, CARGO_NET_OFFLINE): `cargo test --workspace --no-run` must
#      compile no dependency (else: fail, "not the host build"; workspace
#      crates may be relinked, see below), then the tests; libtest's output
#      and a summary in cargo test's format. Library artifacts rebuilt during
#      the run are reported.
#   4. tests/c/run.sh in the root, when it exists (today the C programs are
#      built and run by tests/c_api.rs, i.e. by step 3).
#   4b. mixed: on the host, the host's 0.3.65 daemon with the root's 1.4.2
#      client library (tests/versions.rs, ignored test run with
#      WRD_MIXED_LIBDIR): add_stream must refuse that pair clearly.
#   5. python3 -m pytest bindings/python/tests in the root, with
#      WRD_CAPTURE_LIB=target/debug/libwrd_capture.so built on the host, when
#      the directory exists.
# Exit status: 0 when every part that ran passed, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

# Sum libtest's "test result:" lines of log $1; print cargo test's format.
summarize() { # log label rc seconds
    awk -v label="$2" -v rc="$3" -v secs="$4" '
        /^test result: / { n++; p+=$4; f+=$6; i+=$8; m+=$10; fo+=$12 }
        END { st = (rc == 0) ? "ok" : "FAILED"
              printf "modern-leg %s: test result: %s. %d passed; %d failed; %d ignored; %d measured; %d filtered out; finished in %ss (%d test binaries)\n",
                     label, st, p, f, i, m, fo, secs, n }' "$1"
}

# ---------------------------------------------------------------------------
# Inside the root: cargo test over the host build.
# ---------------------------------------------------------------------------
if [ "${1:-}" = "--inside-cargo" ]; then
    state=$2; shift 2
    [ "${1:-}" = "--" ] && shift
    cd "$REPO"
    touch "$state/inside.stamp"
    # shellcheck disable=SC2086
    if ! cargo test --workspace --no-run --offline ${WRD_MODERN_CARGO_ARGS:-} >"$state/fresh.log" 2>&1; then
        cat "$state/fresh.log"
        echo "modern-leg: cargo test --no-run failed inside the root (above)"; exit 1
    fi
    # Workspace members may be recompiled: their cdylib/staticlib outputs
    # (libwrd_capture.so/.a) have no hash in their names, so builds with other
    # package selections (make install's `cargo build -p wrd-capture`, the
    # tests' own cargo calls) overwrite each other and cargo rebuilds them —
    # from the same sources, with the bindings generated on the host. Any
    # other crate (above all pipewire-sys/libspa-sys, whose bindgen output is
    # the 0.3.65 build) must be fresh.
    members=$(cargo metadata --offline --no-deps --format-version 1 2>/dev/null \
        | python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
    foreign=$(sed -nE 's/^ +Compiling ([^ ]+) .*/\1/p' "$state/fresh.log" \
        | while read -r c; do case " $members " in *" $c "*) ;; *) echo "$c" ;; esac; done)
    own=$(sed -nE 's/^ +Compiling ([^ ]+) .*/\1/p' "$state/fresh.log" | tr '\n' ' ')
    if [ -n "$foreign" ]; then
        grep -E '^ +Compiling ' "$state/fresh.log"
        echo "modern-leg: cargo would compile dependencies inside the root: this would not be"
        echo "  the host build (fingerprints differ: environment, headers, features?)."
        [ "${WRD_MODERN_ALLOW_REBUILD:-0}" = 1 ] || exit 1
        echo "  WRD_MODERN_ALLOW_REBUILD=1: going on."
    elif [ -n "$own" ]; then
        echo "modern-leg: note: workspace crates relinked inside the root (${own% }): same sources, host-generated bindings"
    fi
    t0=$(date +%s%N)
    set +e
    # shellcheck disable=SC2086
    cargo test --workspace --no-fail-fast --offline ${WRD_MODERN_CARGO_ARGS:-} -- "$@" 2>&1 | tee "$state/cargo-test.log"
    rc=${PIPESTATUS[0]}
    set -e
    secs=$(awk -v n="$(( $(date +%s%N) - t0 ))" 'BEGIN{printf "%.2f", n/1e9}')
    rebuilt=$(find "${CARGO_TARGET_DIR:-$REPO/target}" -path '*/deps/*' -newer "$state/inside.stamp" \
                   \( -name '*.rlib' -o -name '*.so' -o -name '*.a' \) 2>/dev/null \
              | sed -E 's#.*/lib([a-z0-9_]+)(-[0-9a-f]+)?\.(rlib|so|a)$#\1#' | sort -u)
    foreign=$(for c in $rebuilt; do case " ${members//-/_} " in *" $c "*) ;; *) echo "$c" ;; esac; done)
    if [ -n "$foreign" ]; then
        echo "modern-leg: WARNING: dependencies were (re)built inside the root during the tests: $(echo $foreign)"
    elif [ -n "$rebuilt" ]; then
        echo "modern-leg: note: the tests' own cargo calls relinked workspace crates inside the root: $(echo $rebuilt)"
    fi
    echo
    summarize "$state/cargo-test.log" rust "$rc" "$secs"
    exit "$rc"
fi

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
RUNNER=${WRD_MODERN_RUNNER:-cargo}
ONLY=()
TEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --runner) RUNNER=$2; shift ;;
        --only) ONLY+=("$2"); shift ;;
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

ARGS=${WRD_MODERN_CARGO_ARGS:-}
if [ "$BUILD" = 1 ] && { want rust || want python; }; then
    say "building on the host (PipeWire $(pkg-config --modversion libpipewire-0.3 2>/dev/null || echo '?') headers) ${ARGS}"
    # shellcheck disable=SC2086
    {
        cargo build --workspace --all-targets $ARGS
        cargo build -p wrd-capture $ARGS
        if cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"name":"wrd-testsrc"'; then
            cargo build -p wrd-testsrc --bin wrd-testsrc $ARGS
        fi
        cargo build --examples $ARGS
        [ -z "${WRD_MODERN_PREBUILD:-}" ] || bash -c "$WRD_MODERN_PREBUILD"
    }
fi

if want rust; then
    if [ "$BUILD" = 1 ]; then
        # shellcheck disable=SC2086
        cargo test --workspace --no-run --message-format=json-render-diagnostics $ARGS >"$STATE/cargo.json"
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
    case "$RUNNER" in
        cargo)
            say "Rust tests in the modern root (cargo test --workspace --no-fail-fast over the host build)"
            inside=("$HERE/modern-leg.sh" --inside-cargo "$STATE" -- ${TEST_ARGS[@]+"${TEST_ARGS[@]}"}) ;;
        binaries)
            [ -f "$LIST" ] || { echo "modern-leg: no $LIST (run without --no-build)" >&2; exit 1; }
            say "Rust tests in the modern root ($(wc -l <"$LIST") test executables, one by one)"
            inside=("$HERE/modern-leg.sh" --inside-rust "$LIST" -- ${TEST_ARGS[@]+"${TEST_ARGS[@]}"}) ;;
        *) echo "modern-leg: unknown runner $RUNNER" >&2; exit 2 ;;
    esac
    if "$HERE/in-modern-root.sh" -- "${inside[@]}"; then
        RESULTS+=("rust: ok")
    else
        RESULTS+=("rust: FAILED"); rc_all=1
    fi
fi

if want c; then
    if [ -f tests/c/run.sh ]; then
        say "C tests in the modern root (tests/c/run.sh)"
        if "$HERE/in-modern-root.sh" -- bash tests/c/run.sh; then
            RESULTS+=("c: ok")
        else
            RESULTS+=("c: FAILED"); rc_all=1
        fi
    else
        say "C tests: no tests/c/run.sh — the C programs are built and run by the Rust tests (tests/c_api.rs)"
        RESULTS+=("c: via tests/c_api.rs (no tests/c/run.sh)")
    fi
fi

if want mixed; then
    # A newer client library against an older daemon, from the host: the
    # host's 0.3.65 daemon (sandbox), the root's 1.4.2 libpipewire. PipeWire
    # changed its client-node mix protocol in 0.3.74, so that pair never
    # delivers buffers; the library must refuse it clearly.
    ROOTLIB="${WRD_MODERN_ROOT:-/var/cache/wrd-capture/bookworm-bpo}/usr/lib/x86_64-linux-gnu"
    say "Mixed versions: host daemon, client library from the root ($ROOTLIB)"
    [ "$BUILD" = 0 ] || cargo build --examples
    if WRD_MIXED_LIBDIR="$ROOTLIB" cargo test --test versions -- --ignored --exact \
        newer_client_library_with_an_older_daemon_is_refused_clearly; then
        RESULTS+=("mixed: ok")
    else
        RESULTS+=("mixed: FAILED"); rc_all=1
    fi
fi

if want python; then
    if [ -d bindings/python/tests ]; then
        say "Python tests in the modern root (python3 -m pytest bindings/python/tests ${WRD_MODERN_PYTEST_ARGS:-})"
        # As scripts/test-all.sh: the debug library built on the host.
        [ "$BUILD" = 0 ] || cargo build -p wrd-capture
        # shellcheck disable=SC2086
        if WRD_CAPTURE_LIB="$TARGET/debug/libwrd_capture.so" \
            "$HERE/in-modern-root.sh" -- python3 -m pytest -q -p no:cacheprovider bindings/python/tests ${WRD_MODERN_PYTEST_ARGS:-}; then
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
