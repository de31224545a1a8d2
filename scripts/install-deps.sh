#!/usr/bin/env bash
# Install what the test bench and the tests need on Debian 12 (bookworm),
# then Rust (scripts/install-rust.sh: rustup into ~/.cargo when no recent
# enough cargo is found). Enough on a bare Debian 12 (a minbase debootstrap,
# the debian:bookworm image): tools/clean-room/run.sh checks that.
# Idempotent: does nothing (and needs no root) when everything is present.
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  only report; exit 1 if something is missing
set -euo pipefail

packages=(
    # Building: cc/c++/make (Rust links with cc; make install, the C tests),
    # and what fetches Rust and the crates over HTTPS.
    build-essential curl ca-certificates
    # The PipeWire sandbox: daemon, session manager, session bus.
    pipewire pipewire-bin wireplumber dbus util-linux
    # Building against PipeWire 0.3.65 (pipewire-rs 0.8 runs bindgen).
    libpipewire-0.3-dev libspa-0.2-dev clang libclang-dev pkg-config
    # The peer consumer/producer of the bench: gst-launch-1.0 + pipewiresrc/sink.
    gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    # Test helpers: Python tests, reference conversion, memory checks.
    python3-pytest python3-numpy libyuv-dev valgrind
    # The demo and the C examples: PNG output, EGL/GLES (egl-import.c),
    # libportal (portal-capture.c, built by the tests).
    libpng-dev libegl-dev libgles-dev libportal-dev
    # The DRM/KMS source's VM test (tools/drm-vm): a kernel with virtio-gpu
    # booted under qemu (software emulation), busybox for its initramfs.
    qemu-system-x86 linux-image-amd64 busybox-static cpio
    # The second test leg against PipeWire 1.4 / WirePlumber 0.5: a cached
    # bookworm + bookworm-backports root (scripts/modern-root.sh).
    debootstrap bubblewrap
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages present"
    exec "$(dirname "$0")/install-rust.sh" "$@"
fi
echo "install-deps: missing: ${missing[*]}"
if [[ ${1:-} == --check ]]; then
    "$(dirname "$0")/install-rust.sh" --check || true
    exit 1
fi

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "install-deps: run as root (no sudo)" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
echo "install-deps: done"
exec "$(dirname "$0")/install-rust.sh"
