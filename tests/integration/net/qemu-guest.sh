#!/usr/bin/env bash
# A real peer: QEMU 7.2 (TCG) boots a small Linux guest whose virtio-net device is backed by
# guestabi-net over vhost-user, forwarding to a tap on the host. The guest pings the host
# (ARP and ICMP both ways through guestabi-net) and prints a verdict on its serial console.
#
#   tests/integration/net/qemu-guest.sh [BUILD_DIR] [MODE]
#
# Needs root, /dev/net/tun, qemu-system-x86, linux-image-amd64, busybox-static, cpio
# (tools/deps.sh peers). Prints "SKIP: ..." and exits 77 when something is missing; exits 0
# when the guest's ping got its replies.
set -euo pipefail

build=${1:-build}
mode=${2:-upstream.guestabi-net.v2}
net=$build/devices/net/guestabi-net
kver=$(ls /lib/modules 2>/dev/null | sort -V | tail -n1 || true)
kernel=/boot/vmlinuz-$kver

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root"
[[ -c /dev/net/tun ]] || skip "no /dev/net/tun"
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
[[ -n $kver && -r $kernel ]] || skip "no guest kernel in /boot"
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || skip "no static busybox"
[[ -x $net ]] || skip "no $net (build first)"

work=$(mktemp -d /tmp/gabi-qemu-XXXXXX)
tap=gabiq$$
net_pid=
qemu_pid=
cleanup() {
  [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null || true
  [[ -n $net_pid ]] && kill "$net_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the guest: busybox and the virtio modules, in an initramfs ------------------------------
root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,lib}
cp /bin/busybox "$root/bin/busybox"
mods=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover
      net_failover virtio_net)
for m in "${mods[@]}"; do
  f=$(find "/lib/modules/$kver/kernel" -name "$m.ko*" | head -n1)
  [[ -n $f ]] || skip "module $m not found"
  case $f in
    *.ko.xz) xz -dc "$f" > "$root/lib/$m.ko" ;;
    *.ko.zst) zstd -dcq "$f" > "$root/lib/$m.ko" ;;
    *) cp "$f" "$root/lib/$m.ko" ;;
  esac
done
cat > "$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in ${mods[*]}; do insmod /lib/\$m.ko; done
ip link set eth0 up
ip addr add 10.99.0.2/24 dev eth0
if ping -c 3 -W 5 10.99.0.1; then echo GUEST-PING-OK; else echo GUEST-PING-FAILED; fi
cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$work/initrd.gz")

# ---- the back-end -----------------------------------------------------------------------------
GUESTABI_SYSTEM_CATALOG= "$net" --socket "$work/net.sock" --tap "$tap" --mode "$mode" \
  --ready-fd 3 3>"$work/ready" 2>"$work/net.log" &
net_pid=$!
for _ in $(seq 100); do grep -q READY "$work/ready" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$work/ready" || { cat "$work/net.log"; echo "FAIL: guestabi-net did not start"; exit 1; }
ip addr add 10.99.0.1/24 dev "$tap"

# ---- the VM -----------------------------------------------------------------------------------
# vectors=0: QEMU 7.2 crashes with vhost-user-net and MSI-X under TCG (reference/peers.md).
timeout 180 qemu-system-x86_64 -accel tcg -machine q35 -cpu max -m 256 -display none \
  -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append 'console=ttyS0 panic=-1 quiet' -serial "file:$work/console.log" \
  -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
  -chardev "socket,id=c0,path=$work/net.sock" -netdev vhost-user,id=n0,chardev=c0 \
  -device virtio-net-pci,netdev=n0,vectors=0,mac=52:54:00:12:34:56 &
qemu_pid=$!
wait "$qemu_pid" || true
qemu_pid=

if grep -q GUEST-PING-OK "$work/console.log"; then
  echo "PASS: the guest pinged the host through guestabi-net ($mode)"
  exit 0
fi
echo "--- guest console"; tail -n 30 "$work/console.log"
echo "--- guestabi-net"; tail -n 30 "$work/net.log"
echo "FAIL: no ping through guestabi-net"
exit 1
