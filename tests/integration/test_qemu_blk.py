#!/usr/bin/env python3
"""A QEMU 7.2 guest on guestabi-blk uses /dev/vda for real: it reads what the host put on the
disk file, writes a random pattern with dd (direct and through its page cache with fsync) that
the host then finds byte for byte in the file, and reads it back. The data survives a restart
of the guest on the same back-end, and a restart of the back-end on the same file. The first
back-end runs upstream.guestabi-blk.v1, the second v2 (multi-queue, discard, which the guest's
blkdiscard exercises)."""

import hashlib
import os
import re

from checks import check
import vmlib

MIB = 1 << 20
DISK_SIZE = 64 * MIB
SERIAL = "gabi-qemu-blk-0001"


def host_md5(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    check(len(data) == length, "short read of %s" % path)
    return hashlib.md5(data).hexdigest()


def guest_md5(g, offset, length, direct=True):
    """md5 of /dev/vda's bytes [offset, offset+length), read in 64 KiB blocks."""
    out = g.check("dd if=/dev/vda bs=65536 skip=%d count=%d%s 2>/dev/null | md5sum" % (
        offset // 65536, length // 65536, " iflag=direct" if direct else ""))
    return out.split()[0]


def start_backend(sc, gb, name, sock, args):
    if os.path.exists(sock):
        os.unlink(sock)
    be = sc.add(vmlib.Process(name, sc.dir, [gb, "--socket", sock] + args))
    vmlib.wait_for(lambda: os.path.exists(sock) or not be.alive(), 10, name + "'s socket")
    check(be.alive(), "%s did not start:\n%s" % (name, be.output()))
    return be


def check_clean(be):
    """Every connection the back-end saw ended without a failed request or a broken ring."""
    out = be.output()
    ends = re.findall(r"disconnected: .*errors (\d+)/(\d+)\)", out)
    check(ends, "%s saw no connection end:\n%s" % (be.name, out))
    check(all(e == ("0", "0") for e in ends), "%s failed requests:\n%s" % (be.name, out))
    check("broken" not in out, "%s broke a vring:\n%s" % (be.name, out))


def main():
    gb = vmlib.build_bin("devices/blk/guestabi-blk")
    with vmlib.Scenario("qemu-blk") as sc:
        disk = os.path.join(sc.dir, "disk.img")
        sock = os.path.join(sc.dir, "blk.sock")
        # the host's own data at 8 MiB, before any back-end runs
        host_data = os.urandom(MIB)
        with open(disk, "wb") as f:
            f.truncate(DISK_SIZE)
            f.seek(8 * MIB)
            f.write(host_data)
        # the first back-end in the oldest mode: one queue of 128, no discard
        be = start_backend(sc, gb, "guestabi-blk", sock,
                           ["--disk", disk, "--serial", SERIAL,
                            "--mode", "upstream.guestabi-blk.v1"])

        g = sc.add(vmlib.Guest("guest1", sc.dir, blkdevs=[{"socket": sock}]))
        g.wait_ready()
        size = g.check("cat /sys/block/vda/size").strip()
        check(size == str(DISK_SIZE // 512), "capacity: %r" % size)
        serial = g.check("cat /sys/block/vda/serial").strip()
        check(serial == SERIAL, "serial: %r" % serial)
        check(g.check("cat /sys/block/vda/queue/max_segments").strip() == "62")
        check(g.check("cat /sys/block/vda/queue/discard_max_bytes").strip() == "0")
        check(guest_md5(g, 8 * MIB, MIB) == hashlib.md5(host_data).hexdigest(),
              "the guest does not read what the host wrote")

        # 4 MiB of random data at 16 MiB, written with O_DIRECT and fsync
        g.check("dd if=/dev/urandom of=/tmp/pat bs=65536 count=64 2>/dev/null")
        want = g.check("md5sum /tmp/pat").split()[0]
        g.check("dd if=/tmp/pat of=/dev/vda bs=65536 seek=256 oflag=direct conv=fsync "
                "2>/dev/null")
        # 1 MiB more at 24 MiB through the guest's page cache: fsync makes it a FLUSH
        g.check("dd if=/dev/urandom of=/tmp/pat2 bs=65536 count=16 2>/dev/null")
        want2 = g.check("md5sum /tmp/pat2").split()[0]
        g.check("dd if=/tmp/pat2 of=/dev/vda bs=65536 seek=384 conv=fsync 2>/dev/null && sync")
        check(host_md5(disk, 16 * MIB, 4 * MIB) == want, "the file differs from the guest's dd")
        check(host_md5(disk, 24 * MIB, MIB) == want2, "the cached write is not in the file")
        check(guest_md5(g, 16 * MIB, 4 * MIB) == want, "the guest reads back other data")
        check(guest_md5(g, 24 * MIB, MIB) == want2)
        vmlib.log("guest1: wrote and read back 5 MiB; the host's file agrees")
        g.stop()

        # the guest restarts on the same back-end (a new vhost-user connection)
        g = sc.add(vmlib.Guest("guest2", sc.dir, blkdevs=[{"socket": sock}]))
        g.wait_ready()
        check(guest_md5(g, 16 * MIB, 4 * MIB) == want, "lost across a guest restart")
        check(guest_md5(g, 24 * MIB, MIB) == want2)
        g.stop()
        vmlib.wait_for(lambda: be.output().count("disconnected:") >= 2, 10,
                       "the back-end to see guest2 go")
        check_clean(be)
        check(be.stop() == 0, "guestabi-blk did not stop cleanly:\n" + be.output())

        # the back-end restarts on the same file, in a multi-queue mode with discard
        be = start_backend(sc, gb, "guestabi-blk-2", sock,
                           ["--disk", disk, "--mode", "upstream.guestabi-blk.v2"])
        # two vCPUs: Linux uses as many virtio-blk queues as it has CPUs
        g = sc.add(vmlib.Guest("guest3", sc.dir, blkdevs=[{"socket": sock, "queues": 2}],
                               extra=["-smp", "2"]))
        g.wait_ready()
        check(guest_md5(g, 16 * MIB, 4 * MIB) == want, "lost across a back-end restart")
        check(guest_md5(g, 8 * MIB, MIB) == hashlib.md5(host_data).hexdigest())
        nq = g.check("ls /sys/block/vda/mq").split()
        check(len(nq) == 2, "guest queues: %r" % nq)
        dmax = int(g.check("cat /sys/block/vda/queue/discard_max_bytes").strip())
        check(dmax > 0, "no discard in the guest")
        with open(disk, "rb") as f:
            f.seek(16 * MIB)
            before = f.read(4 * MIB)
        g.check("blkdiscard -o %d -l %d /dev/vda" % (16 * MIB, MIB))
        g.check("sync")
        with open(disk, "rb") as f:
            f.seek(16 * MIB)
            after = f.read(4 * MIB)
        check(after[:MIB] == bytes(MIB), "the discarded range does not read as zeroes")
        check(after[MIB:] == before[MIB:], "discard touched more than its range")
        check(guest_md5(g, 16 * MIB, MIB) == hashlib.md5(bytes(MIB)).hexdigest())
        check(guest_md5(g, 17 * MIB, 3 * MIB) == hashlib.md5(before[MIB:]).hexdigest())
        g.stop()
        vmlib.wait_for(lambda: "disconnected:" in be.output(), 10, "the back-end to see guest3 go")
        check_clean(be)
        check(be.stop() == 0, "guestabi-blk did not stop cleanly:\n" + be.output())
        vmlib.log("ok: data kept across guest and back-end restarts; discard through the guest")


if __name__ == "__main__":
    main()
