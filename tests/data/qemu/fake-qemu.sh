#!/bin/sh
# A fake QEMU for the hypervisor probe tests: fake-qemu.sh DIR ARGS... prints DIR's recorded
# answer to ARGS (README.md), as the QEMU of that version would.
dir=$1
shift
case "$*" in
"-version") exec cat "$dir/version" ;;
"-machine help") exec cat "$dir/machine-help" ;;
"-device virtio-net-pci,help") exec cat "$dir/virtio-net-pci-help" ;;
*)
    echo "qemu-system-x86_64: unexpected arguments: $*" >&2
    exit 1
    ;;
esac
