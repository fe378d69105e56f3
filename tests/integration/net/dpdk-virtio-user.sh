#!/usr/bin/env bash
# A real peer: DPDK 22.11's virtio_user (testpmd, txonly) as the front-end of guestabi-net in
# loopback. Passes when the negotiation was accepted and guestabi-net took the frames.
#
#   tests/integration/net/dpdk-virtio-user.sh [BUILD_DIR] [MODE] [DEVARGS]
#
# DEVARGS are appended to virtio_user's (",packed_vq=1", ",in_order=1"); the features asked
# for that way must then be among those negotiated (guestabi-net logs them).
#
# Needs dpdk-testpmd (dpdk-dev, librte-net-virtio23) and 2 CPUs. Exit 77 (SKIP) without them.
set -euo pipefail

build=${1:-build}
mode=${2:-upstream.guestabi-net.v2}
devargs=${3:-}
net=$build/devices/net/guestabi-net

skip() { echo "SKIP: $*"; exit 77; }
command -v dpdk-testpmd >/dev/null || skip "no dpdk-testpmd"
[[ $(nproc) -ge 2 ]] || skip "needs 2 CPUs"
[[ -x $net ]] || skip "no $net (build first)"

work=$(mktemp -d /tmp/gabi-dpdk-XXXXXX)
net_pid=
cleanup() {
  [[ -n $net_pid ]] && kill "$net_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

GUESTABI_SYSTEM_CATALOG= "$net" --socket "$work/net.sock" --loopback --mode "$mode" \
  --control "$work/ctl" --ready-fd 3 3>"$work/ready" 2>"$work/net.log" &
net_pid=$!
for _ in $(seq 100); do grep -q READY "$work/ready" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$work/ready" || { cat "$work/net.log"; echo "FAIL: guestabi-net did not start"; exit 1; }

# the features the front-end negotiated, from the control socket (port 0's "stats")
features() {
  python3 "$(dirname "$0")/../../../tools/net-control.py" "$work/ctl" "stats 0" ports.0.features
}

# testpmd exits when its stdin closes: 8 s of traffic; the features are read at 4 s
(sleep 4; features >"$work/features" 2>&1 || true) &
(sleep 8; echo) | timeout 60 dpdk-testpmd -l 0-1 --main-lcore 1 --no-pci --no-huge -m 512 \
  --file-prefix "gabi$$" --vdev "net_virtio_user0,path=$work/net.sock,queues=1$devargs" -- \
  --total-num-mbufs=16384 --forward-mode=txonly --txpkts=64 --auto-start --stats-period 0 \
  >"$work/testpmd.log" 2>&1 || true
kill "$net_pid"
wait "$net_pid" || true
net_pid=

taken=$(sed -n 's/.*disconnected: .*(rx [0-9]* tx \([0-9]*\) .*/\1/p' "$work/net.log" | tail -n1)
# a refusal ends the connection with "REQUEST: reason", which guestabi-net logs on disconnect
if grep -q "disconnected: [A-Z_]*: " "$work/net.log"; then
  grep "disconnected" "$work/net.log"
  echo "FAIL: guestabi-net refused DPDK's virtio_user"
  exit 1
fi
negotiated=$(cat "$work/features" 2>/dev/null || true)
for want in "packed_vq=1:34:VIRTIO_F_RING_PACKED" "in_order=1:35:VIRTIO_F_IN_ORDER"; do
  arg=${want%%:*} rest=${want#*:}
  bit=${rest%%:*} name=${rest#*:}
  [[ $devargs == *"$arg"* ]] || continue
  if ! [[ $negotiated == 0x* ]] || (( (negotiated >> bit & 1) == 0 )); then
    echo "FAIL: $arg asked for, but $name is not among the features negotiated ($negotiated)"
    exit 1
  fi
done
if [[ -n $taken && $taken -gt 0 ]]; then
  echo "PASS: guestabi-net took $taken frames from DPDK's virtio_user ($mode$devargs," \
    "features $negotiated)"
  exit 0
fi
tail -n 20 "$work/testpmd.log" "$work/net.log"
echo "FAIL: no frames from DPDK's virtio_user"
exit 1
