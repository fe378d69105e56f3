#!/usr/bin/env bash
# Run every benchmark and print its figures. Usage: tools/bench.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
export GUESTABI_SYSTEM_CATALOG=
for b in "$build"/bench/bench_*; do
  [[ -x $b && -f $b ]] || continue
  echo "== $(basename "$b")"
  args=()
  # guestabi-blk against QEMU's own vhost-user-blk export, in the same run, when it is here
  if [[ $(basename "$b") == bench_blk ]] && command -v qemu-storage-daemon >/dev/null; then
    args+=(--qsd)
  fi
  "$b" "${args[@]}"
done
# The data-path race against DPDK (needs dpdk-testpmd; prints its own figures)
if command -v dpdk-testpmd >/dev/null; then
  echo "== race-dpdk"
  bench/race-dpdk.sh -b "$build" -F all || true
fi
# Live-migration downtime, guestabi-net against testpmd's vhost PMD under real QEMU (needs both
# and root; prints its own figures)
if command -v dpdk-testpmd >/dev/null && command -v qemu-system-x86_64 >/dev/null; then
  echo "== bench_migrate"
  bench/bench_migrate.py --build "$build" || true
fi
# Fleet scale on a real Placement (needs python3-placement; prints its own figures)
if command -v placement-api >/dev/null; then
  echo "== bench_placement"
  bench/bench_placement.py --build "$build" 100 1000 || true
fi
