#!/usr/bin/env bash
# make demo: guestabi at work. Each step prints the command it runs, then its output.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
export GUESTABI_SYSTEM_CATALOG=${GUESTABI_SYSTEM_CATALOG-}
G="$build/src/cli/guestabi"
ex=docs/examples

step() { printf '\n\033[1m## %s\033[0m\n' "$1"; }
run() {  # run EXPECTED_STATUS CMD...
  local want=$1; shift
  printf '$ guestabi %s\n' "${*#"$G" }"
  "$G" "$@"
  local st=$?
  if [[ $st != "$want" ]]; then
    echo "demo: expected exit status $want, got $st" >&2
    exit 1
  fi
}

step "This machine, probed: the tap offloads its kernel really accepts, and the platforms it runs"
run 0 probe
run 0 query-platforms

step "Two host generations: rack1-2019 (kernel 5.4, older back-ends) and rack9-2024 (kernel 6.8)"
step "Platforms each host's kernel can run"
run 0 platforms --host $ex/host-2019.json
run 0 platforms --host $ex/host-2024.json
step "virtio-net modes each host's back-ends can run"
run 0 modes --class virtio-net --host $ex/host-2019.json
run 0 modes --class virtio-net --host $ex/host-2024.json
step "The newest ABI both hosts share"
run 0 pick $ex/host-2019.json $ex/host-2024.json
step "A VM pinned to the newest ABI on rack9-2024 cannot move to rack1-2019: every reason"
run 1 check --pin $ex/vm-newest.json --host $ex/host-2019.json
step "Which hosts can take it"
run 0 filter --pin $ex/vm-newest.json $ex/host-2019.json $ex/host-2024.json
step "The same VM pinned to the common ABI can go to either host"
run 0 check --pin $ex/vm-common.json --host $ex/host-2019.json
run 0 check --pin $ex/vm-common.json --host $ex/host-2024.json
step "Device-state versions are fixed at the source (seed 002): 6.3 does not load where 5.x does"
run 1 match --device gpu0 --version 6.3 --loads 5.3,5.2,5.1
run 0 match --device gpu0 --version 5.3 --loads 6.3,6.2,6.1,5.3

step "guestabi-net, a vhost-user-net back-end, in its newest mode and in an older one"
work=$(mktemp -d /tmp/gabi-demo-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
N="$build/devices/net/guestabi-net"
printf '$ guestabi-net --list-modes\n'; "$N" --list-modes
for m in upstream.guestabi-net.v2 upstream.guestabi-net.v1; do
  "$N" --socket "$work/$m.sock" --loopback --mode "$m" --ready-fd 3 3>"$work/$m.ready" \
    2>>"$work/backends.log" &
  pids+=($!)
done
for m in upstream.guestabi-net.v2 upstream.guestabi-net.v1; do
  for _ in $(seq 100); do [[ -s $work/$m.ready ]] && break; sleep 0.05; done
done
step "What each back-end offers, read through guestabi's vhost-user front-end"
run 0 probe --only vhost-user --vhost-user "virtio-net:new=$work/upstream.guestabi-net.v2.sock" \
  --vhost-user "virtio-net:old=$work/upstream.guestabi-net.v1.sock"
step "A front-end asking the older back-end for the newer mode: every difference, then its refusal"
run 1 negotiate --socket "$work/upstream.guestabi-net.v1.sock" --mode upstream.guestabi-net.v2
step "The same request to the back-end running that mode"
run 0 negotiate --socket "$work/upstream.guestabi-net.v2.sock" --mode upstream.guestabi-net.v2
echo "(the older back-end's log says why: $(grep "upstream.guestabi-net.v1.sock: disconnected: " "$work/backends.log" | grep -v "front-end closed" | tail -n 1 \
  | sed 's/^.*: disconnected: //'))"

step "guestabid, the host agent: ports in chosen modes, a guest on one, a kill -9 and a restart"
GUESTABI_BUILD_ROOT=$PWD/$build GUESTABI_SOURCE_ROOT=$PWD python3 tools/demo-agent.py || exit 1

if [[ ${GUESTABI_DEMO_VM:-1} == 1 ]]; then
  step "A real VM (QEMU 7.2, TCG) on guestabi-net: a migration refused before it starts, then one that works"
  GUESTABI_BUILD_ROOT=$PWD/$build GUESTABI_SOURCE_ROOT=$PWD python3 tools/demo-vm.py || exit 1
  step "A failover pair (pass-through primary, guestabi-net standby) migrated twice, with its traffic gap"
  GUESTABI_BUILD_ROOT=$PWD/$build GUESTABI_SOURCE_ROOT=$PWD python3 tools/demo-failover.py || exit 1
fi
if [[ ${GUESTABI_DEMO_LIBVIRT:-1} == 1 ]]; then
  step "libvirt: two hosts, a pinned VM, a virsh migrate refused with guestabi's reasons, then one that works"
  GUESTABI_BUILD_ROOT=$PWD/$build GUESTABI_SOURCE_ROOT=$PWD python3 tools/demo-libvirt.py || exit 1
fi
printf '\ndemo: done\n'
