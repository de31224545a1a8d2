#!/bin/bash
# DRM capture test in a VM: boots Debian's kernel under qemu with a
# virtio-gpu (a real KMS driver; Debian's kernels have no vkms), where
# kms-flipper sets a mode and page-flips between dumb buffers with known
# pixels, and drm-capture-check captures them through wrd_capture::drm.
#
#   tools/drm-vm/run.sh            build, make the initramfs, boot, check
#
# Needs: qemu-system-x86 linux-image-amd64 busybox-static cpio (apt-get).
# Env: KERNEL (default: newest /boot/vmlinuz-*), PROFILE (cargo profile,
# default dev), QEMU_TIMEOUT (s, default 300), KEEP (keep the work dir),
# LOG (where the serial console goes; default $WORK/console.log).
# Exit status 0 when every check printed DRM-TEST PASS and none FAIL.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PROFILE=${PROFILE:-dev}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-300}
KERNEL=${KERNEL:-$(ls -1v /boot/vmlinuz-* 2>/dev/null | tail -1)}
[ -n "$KERNEL" ] && [ -r "$KERNEL" ] || { echo "run.sh: no kernel (apt-get install linux-image-amd64)" >&2; exit 2; }
KVER=${KERNEL#*/vmlinuz-}
MODDIR=/lib/modules/$KVER
[ -d "$MODDIR" ] || { echo "run.sh: no $MODDIR" >&2; exit 2; }
BUSYBOX=$(command -v busybox || true)
file -L "$BUSYBOX" 2>/dev/null | grep -q static || BUSYBOX=/bin/busybox
for t in qemu-system-x86_64 cpio gzip modinfo; do
    command -v $t >/dev/null || { echo "run.sh: $t missing" >&2; exit 2; }
done

t_start=$(date +%s)
echo "== build ($PROFILE)"
cargo build --profile "$PROFILE" --example kms-flipper --example drm-capture-check
case $PROFILE in dev) OUTDIR=target/debug ;; *) OUTDIR=target/$PROFILE ;; esac
t_built=$(date +%s)

WORK=$(mktemp -d /tmp/drm-vm.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
IR=$WORK/initramfs
mkdir -p $IR/{bin,dev,proc,sys,tmp,modules}
cp "$BUSYBOX" $IR/bin/busybox
for a in sh mount insmod mkdir sleep cat chmod ls poweroff echo dmesg wait kill uname; do
    ln -s busybox $IR/bin/$a
done

# Binaries and the shared libraries they need, at the same paths.
for b in kms-flipper drm-capture-check; do
    cp "$OUTDIR/examples/$b" $IR/bin/
    for lib in $(ldd "$OUTDIR/examples/$b" | grep -o '/[^ ]*'); do
        mkdir -p "$IR$(dirname "$lib")"
        cp -Ln "$lib" "$IR$lib" 2>/dev/null || true
    done
done

# virtio-gpu and virtio-pci with their dependencies, in load order.
declare -A seen=()
order=()
add_mod() {
    local m=$1 d
    [ -n "${seen[$m]:-}" ] && return
    seen[$m]=1
    for d in $(modinfo -k "$KVER" -F depends "$m" | tr ',' ' '); do add_mod "$d"; done
    order+=("$(modinfo -k "$KVER" -F filename "$m")")
}
for m in virtio_pci virtio-gpu; do add_mod $m; done
: > $IR/modules/order
for f in "${order[@]}"; do
    case $f in (builtin|"") continue ;; esac
    n=$(basename "$f")
    case $n in
        *.ko.xz) xz -dc "$f" > $IR/modules/${n%.xz}; n=${n%.xz} ;;
        *.ko.zst) zstd -qdc "$f" > $IR/modules/${n%.zst}; n=${n%.zst} ;;
        *) cp "$f" $IR/modules/ ;;
    esac
    echo "$n" >> $IR/modules/order
done

cat > $IR/init <<'INIT'
#!/bin/sh
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
for m in $(cat /modules/order); do insmod /modules/$m || echo "insmod $m failed"; done
i=0
while [ ! -e /dev/dri/card0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if [ ! -e /dev/dri/card0 ]; then
    echo "DRM-TEST FAIL boot: no /dev/dri/card0"; ls -l /dev/dri; dmesg | tail -30
    poweroff -f
fi
echo "DRM-TEST kernel $(uname -r); $(cat /sys/class/drm/card0/device/uevent | grep DRIVER)"
# Anyone may open the node; capturing still needs master or CAP_SYS_ADMIN.
chmod 666 /dev/dri/card0
fails=0
kms-flipper 120 &
FLIPPER=$!
drm-capture-check --drop-privileges || fails=$((fails+1))
drm-capture-check || fails=$((fails+1))
wait $FLIPPER || fails=$((fails+1))
if [ $fails = 0 ]; then echo "DRM-TEST ALL PASS"; else echo "DRM-TEST FAILED ($fails)"; fi
poweroff -f
INIT
chmod +x $IR/init
(cd $IR && find . | cpio -o -H newc --quiet | gzip -1) > $WORK/initramfs.gz
echo "== initramfs $(du -h $WORK/initramfs.gz | cut -f1), kernel $KERNEL"

ACCEL=()
# KVM when usable (default CPU model: "-cpu host" trips on MSRs in nested VMs),
# else TCG (slower, still well inside the timeout).
if [ -n "${USE_KVM:-}" ] && [ -w /dev/kvm ]; then ACCEL=(-accel kvm); else ACCEL=(-accel tcg); fi
LOG=${LOG:-$WORK/console.log}
t_boot=$(date +%s)
echo "== boot (${ACCEL[*]})"
set +e
timeout "$QEMU_TIMEOUT" qemu-system-x86_64 "${ACCEL[@]}" -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$KERNEL" -initrd $WORK/initramfs.gz \
    -append "console=ttyS0 quiet panic=-1" \
    -device virtio-gpu-pci,max_outputs=2 </dev/null 2>&1 | tee "$LOG" | grep --line-buffered -E "DRM-TEST|flipper|checker|FAIL|panic|insmod"
rc=${PIPESTATUS[0]}
set -e
t_end=$(date +%s)
echo "== timing: build $((t_built - t_start)) s, initramfs $((t_boot - t_built)) s, VM $((t_end - t_boot)) s, total $((t_end - t_start)) s (qemu rc $rc)"
if grep -q "DRM-TEST ALL PASS" "$LOG" && ! grep -q "DRM-TEST FAIL" "$LOG"; then
    echo "== DRM VM test: PASS ($(grep -c 'DRM-TEST PASS' "$LOG") checks)"
    exit 0
fi
echo "== DRM VM test: FAIL (console log: $LOG)"
exit 1
