#!/usr/bin/env python3
"""A local disk moves with its VM as device state (SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE):

  1. a QEMU 7.2 guest on guestabi-blk A (a file disk) writes random data and stops;
  2. `guestabi state move` carries A's disk into guestabi-blk B (a RAM disk on another
     "host"): B's stream reader checks the header's device type and version first, loads,
     verifies, commits;
  3. a guest on B reads the data back, byte for byte;
  4. a stream written by a newer guestabi-blk (state version 2), carrying A's data, is refused
     by C (a file disk holding data of its own) before any byte of it is loaded, and C's disk
     is left as it was.

QEMU 7.2 predates the device-state messages, so guestabi's front-end drives them between the
two back-ends while no VM runs, as a host agent does during the stop-and-copy phase."""

import hashlib
import os
import subprocess
import sys

from checks import check, check_eq, check_in
import vmlib

sys.path.insert(0, os.path.join(vmlib.SOURCE_ROOT, "tests", "fuzz"))
import gen_state_stream_corpus as stream_format  # noqa: E402  (the independent encoder)

MIB = 1 << 20
SIZE = 32 * MIB


def guestabi(*args):
    r = subprocess.run([vmlib.build_bin("src/cli/guestabi")] + list(args), capture_output=True,
                       text=True, env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""))
    return r.returncode, r.stdout + r.stderr


def backend(sc, name, args):
    gb = vmlib.build_bin("devices/blk/guestabi-blk")
    sock = os.path.join(sc.dir, name + ".sock")
    be = sc.add(vmlib.Process(name, sc.dir, [gb, "--socket", sock] + args))
    vmlib.wait_for(lambda: os.path.exists(sock) or not be.alive(), 10, name + "'s socket")
    check(be.alive(), be.output())
    return sock


def guest_md5(g, mib):
    return g.check("dd if=/dev/vda bs=1048576 count=%d iflag=direct 2>/dev/null | md5sum" %
                   mib).split()[0]


def main():
    with vmlib.Scenario("blk-state") as sc:
        a = backend(sc, "blk-a", ["--disk", os.path.join(sc.dir, "a.img"), "--size", str(SIZE)])
        b = backend(sc, "blk-b", ["--ram", str(SIZE)])
        # C's own data, which no stream carries: what C must still hold after a refused load
        c_img = os.path.join(sc.dir, "c.img")
        c_own = os.urandom(8 * MIB)
        with open(c_img, "wb") as f:
            f.write(c_own)
            f.truncate(SIZE)
        c = backend(sc, "blk-c", ["--disk", c_img])

        g = sc.add(vmlib.Guest("writer", sc.dir, blkdevs=[{"socket": a}]))
        g.wait_ready()
        g.check("dd if=/dev/urandom of=/dev/vda bs=1048576 count=8 oflag=direct 2>/dev/null")
        written = guest_md5(g, 8)
        g.stop()
        vmlib.log("guest on A wrote 8 MiB, md5 %s" % written)

        st, out = guestabi("state", "move", "--from", a, "--to", b)
        vmlib.log(out.strip())
        check(st == 0 and "CHECK_DEVICE_STATE: success" in out, out)

        g = sc.add(vmlib.Guest("reader", sc.dir, blkdevs=[{"socket": b}]))
        g.wait_ready()
        read = guest_md5(g, 8)
        check(read == written, "B's disk reads %s, A's guest wrote %s" % (read, written))
        vmlib.log("guest on B reads the same 8 MiB back")
        g.stop()

        # C holds data of its own; a stream from a newer guestabi-blk must not touch it.
        saved = os.path.join(sc.dir, "b.stream")
        st, out = guestabi("state", "save", "--from", b, "--to", saved)
        check(st == 0, out)
        with open(saved, "rb") as f:
            data = f.read()
        # A save that fails (nothing listens there) leaves the file it would replace as it was.
        st, out = guestabi("state", "save", "--from", os.path.join(sc.dir, "nobody.sock"),
                           "--to", saved)
        check(st == 1 and "REFUSED" in out, out)
        with open(saved, "rb") as f:
            check(f.read() == data, "a failed save changed %s" % saved)
        left = [n for n in os.listdir(sc.dir) if n.startswith("b.stream.")]
        check(not left, "a failed save left %s behind" % left)
        st, out = guestabi("state", "save", "--from", b, "--to", "/dev/null")
        check(st == 2 and "not a regular file" in out, out)
        # The same payload and trailer (its CRC covers the payload only) under a header that
        # says version 2: a whole, valid stream as a newer guestabi-blk would write it.
        payload, trailer = data[128:-16], data[-16:]
        check(len(payload) == SIZE, "B's stream carries %d bytes of disk" % len(payload))
        check(payload[:8 * MIB] != c_own, "the version-2 stream carries C's own data")
        check(hashlib.md5(c_own).hexdigest() != written, "C's data is A's")
        newer = os.path.join(sc.dir, "v2.stream")
        with open(newer, "wb") as f:
            f.write(stream_format.header("guestabi-blk", "2", len(payload)) + payload + trailer)
        st, out = guestabi("state", "load", "--from", newer, "--to", c)
        vmlib.log(out.strip())
        check(st == 1, "C loaded a version-2 stream:\n" + out)
        check_in("state load from %s to %s: REFUSED" % (newer, c), out)
        check_in("CHECK_DEVICE_STATE: the load failed: 7 (refused)", out)
        log = [p for p in sc.things if getattr(p, "name", "") == "blk-c"][0].output()
        check_in("device state load failed (refused): the device does not load guestabi-blk "
                 "state version \"2\"", log, "C's log")
        with open(c_img, "rb") as f:
            check(f.read(8 * MIB) == c_own, "C's disk file changed after a refused load")
        g = sc.add(vmlib.Guest("checker", sc.dir, blkdevs=[{"socket": c}]))
        g.wait_ready()
        check_eq(guest_md5(g, 8), hashlib.md5(c_own).hexdigest(),
                 "md5 of C's disk after a refused load (A's data: %s)" % written)
        vmlib.log("ok: disk moved as device state; a newer version refused before loading")


if __name__ == "__main__":
    main()
