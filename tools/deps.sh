#!/usr/bin/env bash
# Install the Debian packages a target needs, when they are missing (Debian 12, as root).
# Usage: tools/deps.sh GROUP...   groups: build test peers
set -euo pipefail

declare -A groups=(
  [build]="meson ninja-build pkg-config gcc libc6-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev python3 libxml2-dev libvirt-dev libtirpc-dev"
  [test]="clang llvm libclang-rt-14-dev valgrind clang-format iproute2 python3-placement"
  [peers]="qemu-system-x86 qemu-system-common qemu-utils dpdk-dev librte-net-vhost23 librte-net-virtio23 linux-image-amd64 busybox-static cpio iputils-ping libvirt-daemon-system libvirt-clients"
)

want=()
for g in "$@"; do
  [[ -n "${groups[$g]+x}" ]] || { echo "deps.sh: unknown group $g" >&2; exit 2; }
  for p in ${groups[$g]}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
  done
done
[[ ${#want[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "deps.sh: missing Debian packages: ${want[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deps.sh: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
