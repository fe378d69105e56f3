#!/usr/bin/env bash
# A real peer: live migration of a QEMU 7.2 guest (TCG) whose virtio-net is backed by
# guestabi-net. The source back-end gets SET_LOG_BASE and VHOST_F_LOG_ALL and logs what it
# writes while the guest keeps traffic flowing (loopback ports); the destination's back-end
# takes over. Passes when QEMU reports the migration completed and the guest, now on the
# destination, still receives the frames it sends.
#
#   tests/integration/net/qemu-migrate.sh [BUILD_DIR] [MODE]
#
# Needs what qemu-guest.sh needs, minus the tap. Exit 77 (SKIP) when something is missing.
set -euo pipefail

build=${1:-build}
mode=${2:-upstream.guestabi-net.v2}
net=$build/devices/net/guestabi-net
kver=$(ls /lib/modules 2>/dev/null | sort -V | tail -n1 || true)
kernel=/boot/vmlinuz-$kver

skip() { echo "SKIP: $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64"
command -v python3 >/dev/null || skip "no python3"
[[ -n $kver && -r $kernel ]] || skip "no guest kernel in /boot"
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || skip "no static busybox"
[[ -x $net ]] || skip "no $net (build first)"

work=$(mktemp -d /tmp/gabi-mig-XXXXXX)
net_pids=()
vm_pids=()
cleanup() {
  # the VMs first, and wait for them: they still talk to their back-ends while stopping
  for p in "${vm_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${vm_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${net_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the guest: sends a frame every 100 ms on eth0 and counts what comes back ----------------
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
echo GUEST-UP
# ARP requests for an absent host: guestabi-net (loopback) hands each one back
ping -i 0.1 10.99.0.9 >/dev/null 2>&1 &
while true; do
  echo "GUEST-RX \$(cat /sys/class/net/eth0/statistics/rx_packets)"
  sleep 1
done
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$work/initrd.gz")

# ---- two back-ends, two VMs -----------------------------------------------------------------
for side in src dst; do
  GUESTABI_SYSTEM_CATALOG= "$net" -v --socket "$work/$side.sock" --loopback --mode "$mode" \
    --ready-fd 3 3>"$work/$side.ready" 2>"$work/$side-net.log" &
  net_pids+=($!)
done
for side in src dst; do
  for _ in $(seq 100); do grep -q READY "$work/$side.ready" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$work/$side.ready" || { cat "$work/$side-net.log"; echo "FAIL: back-end"; exit 1; }
done
qemu() {  # qemu SIDE [extra args]
  local side=$1; shift
  qemu-system-x86_64 -accel tcg -machine pc-q35-7.2 -cpu max -m 256 -display none \
    -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append 'console=ttyS0 panic=-1 quiet' -serial "file:$work/$side-console.log" \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -chardev "socket,id=c0,path=$work/$side.sock" -netdev vhost-user,id=n0,chardev=c0 \
    -device virtio-net-pci,netdev=n0,vectors=0,mac=52:54:00:12:34:56 \
    -qmp "unix:$work/$side.qmp,server=on,wait=off" "$@" 2>>"$work/qemu.log" &
  vm_pids+=($!)
}
qemu src
qemu dst -incoming "unix:$work/mig.sock"

python3 - "$work" <<'PY'
import json, socket, sys, time
work = sys.argv[1]

def wait_for(pred, what, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    sys.exit("FAIL: timed out waiting for " + what)

def console(side):
    try:
        with open(f"{work}/{side}-console.log", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""

def rx_counts(side):
    return [int(l.split()[1]) for l in console(side).splitlines()
            if l.startswith("GUEST-RX ") and l.split()[1].isdigit()]

class QMP:
    def __init__(self, path):
        wait_for(lambda: self._try(path), "QMP " + path, 30)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")
    def _try(self, path):
        try:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(path)
            return True
        except OSError:
            return False
    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                return r

src = QMP(f"{work}/src.qmp")
QMP(f"{work}/dst.qmp")
# traffic flows on the source before we migrate
wait_for(lambda: len(rx_counts("src")) >= 2 and rx_counts("src")[-1] > 5, "guest traffic on the source")
r = src.cmd("migrate", uri=f"unix:{work}/mig.sock")
if "error" in r:
    sys.exit("FAIL: migrate: " + r["error"]["desc"])
status = {}
def done():
    global status
    status = src.cmd("query-migrate")["return"]
    return status.get("status") in ("completed", "failed", "cancelled")
wait_for(done, "the migration")
if status["status"] != "completed":
    sys.exit("FAIL: migration " + status["status"] + ": " + status.get("error-desc", ""))
print("migration completed: %d ms, downtime %s ms, %d bytes" %
      (status.get("total-time", 0), status.get("downtime", "?"), status["ram"]["transferred"]))
# the guest runs on the destination now and still gets its frames back
wait_for(lambda: len(rx_counts("dst")) >= 3 and rx_counts("dst")[-1] > rx_counts("dst")[0],
         "guest traffic on the destination", 60)
print("PASS: guest traffic continues on the destination (rx %d -> %d)" %
      (rx_counts("dst")[0], rx_counts("dst")[-1]))
PY
# the source back-end was asked to log, and did
grep -q "dirty logging on" "$work/src-net.log" ||
  { echo "FAIL: the source back-end never had dirty logging on"; exit 1; }
grep -q "<- SET_LOG_BASE" "$work/src-net.log" || { echo "FAIL: no SET_LOG_BASE"; exit 1; }
! grep -q "connection closed: .*:" "$work/src-net.log" ||
  { grep "connection closed" "$work/src-net.log"; echo "FAIL: a refusal on the source"; exit 1; }
echo "PASS: dirty logging was on at the source during the migration"
