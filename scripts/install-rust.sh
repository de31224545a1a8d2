#!/usr/bin/env bash
# Rust for wrd-capture (called by scripts/install-deps.sh). Does nothing when
# a cargo/rustc at least as new as Cargo.toml's rust-version is found (on
# PATH or in ~/.cargo/bin) with rustfmt and clippy (added with rustup when
# missing). Otherwise installs rustup and toolchain $WRD_RUST_TOOLCHAIN
# (default below: the one the project is checked with, so that
# `cargo clippy -D warnings` sees the lints it was written against) into
# $CARGO_HOME / $RUSTUP_HOME (default ~/.cargo, ~/.rustup; no root needed,
# no shell profile touched: the scripts put ~/.cargo/bin first on PATH).
# rustup-init comes from static.rust-lang.org over HTTPS (curl,
# ca-certificates: scripts/install-deps.sh installs them) and is checked
# against its published SHA-256.
#
#   scripts/install-rust.sh          install what is missing
#   scripts/install-rust.sh --check  only report; exit 1 if something is missing
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN=${WRD_RUST_TOOLCHAIN:-1.95.0}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$CARGO_BIN:$PATH"
need=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)

ok=1
why=
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
    ok=0 why="no cargo"
else
    have=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | head -1)" != "$need" ]; then
        ok=0 why="rustc $have is older than rust-version $need"
    elif ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null && [ "${1:-}" != --check ]; then
            echo "install-rust: adding rustfmt and clippy to the toolchain of rustc $have"
            rustup component add rustfmt clippy
        fi
        cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 \
            || ok=0 why="rustc $have has no rustfmt or clippy"
    fi
fi
if [ "$ok" = 1 ]; then
    echo "install-rust: $(rustc --version) ($(command -v cargo))"
    exit 0
fi
echo "install-rust: $why"
[ "${1:-}" = --check ] && exit 1

for t in curl sha256sum; do
    command -v "$t" >/dev/null || { echo "install-rust: $t missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
triple="$(uname -m)-unknown-linux-gnu"
url="https://static.rust-lang.org/rustup/dist/$triple/rustup-init"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-rust: downloading $url"
curl --proto '=https' --tlsv1.2 -sSfL --retry 3 -o "$tmp/rustup-init" "$url"
curl --proto '=https' --tlsv1.2 -sSfL --retry 3 -o "$tmp/rustup-init.sha256" "$url.sha256"
(cd "$tmp" && echo "$(awk '{print $1}' rustup-init.sha256)  rustup-init" | sha256sum -c --quiet -) \
    || { echo "install-rust: rustup-init checksum mismatch" >&2; exit 1; }
chmod +x "$tmp/rustup-init"
echo "install-rust: installing Rust $TOOLCHAIN (rustfmt, clippy) into ${CARGO_HOME:-$HOME/.cargo}"
"$tmp/rustup-init" -y --quiet --no-modify-path --profile minimal \
    --default-toolchain "$TOOLCHAIN" --component rustfmt --component clippy
echo "install-rust: $(rustc --version) ($(command -v cargo))"
