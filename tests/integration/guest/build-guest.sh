#!/usr/bin/env bash
# Build the test guest from Debian's packages: the linux-image-amd64 kernel (decompressed to
# an ELF vmlinux, which QEMU boots through PVH in about half the time) and an initramfs of
# busybox-static plus the virtio modules. Usage: build-guest.sh OUTDIR
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[[ -n $kernel ]] || { echo "build-guest: no /boot/vmlinuz-* (apt-get install linux-image-amd64)" >&2; exit 77; }
kver=${kernel#/boot/vmlinuz-}
[[ -x /bin/busybox ]] || { echo "build-guest: no /bin/busybox (apt-get install busybox-static)" >&2; exit 77; }
stamp="$out/.stamp-$kver"
if [[ -f $stamp && -f $out/initrd.gz && -f $out/vmlinux && $stamp -nt $here/init ]]; then
  exit 0
fi
python3 - "$kernel" "$out/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
at = data.find(b'\xfd7zXZ\x00')
if at < 0:
    sys.exit("build-guest: no XZ payload in " + sys.argv[1])
d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
vmlinux = d.decompress(data[at:])
if vmlinux[:4] != b'\x7fELF':
    sys.exit("build-guest: the payload is not an ELF kernel")
open(sys.argv[2], 'wb').write(vmlinux)
PY
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod +x "$root/init"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover \
         net_failover virtio_net virtio_blk e1000e; do
  f=$(find "/lib/modules/$kver/kernel" -name "$m.ko*" | head -n 1)
  [[ -n $f ]] || { echo "build-guest: module $m missing" >&2; exit 1; }
  case $f in
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initrd.gz")
rm -f "$out"/.stamp-*
touch "$stamp"
echo "build-guest: $out/vmlinux ($kver) and $out/initrd.gz ($(du -k "$out/initrd.gz" | cut -f1) KiB)"
