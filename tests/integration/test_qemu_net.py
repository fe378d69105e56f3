#!/usr/bin/env python3
"""A QEMU 7.2 guest on guestabi-net exchanges real traffic with the host through a tap:
ping both ways, including large frames that need mergeable receive buffers; on split
virtqueues, then on packed ones (packed=on, mode upstream.guestabi-net.v4)."""

import os

from checks import check
import netlib
import vmlib


# the guest's virtio feature string: one character per bit, from bit 0
PACKED_BIT, IN_ORDER_BIT = 34, 35


def run(packed):
    gn = vmlib.build_bin("devices/net/guestabi-net")
    name = "qemu-net-packed" if packed else "qemu-net"
    args = ["--mode", "upstream.guestabi-net.v4"] if packed else []
    with vmlib.Scenario(name) as sc:
        sc.add(netlib.Bridge("gabibr1", "10.78.0.1/24", ["gabitap10"]))
        sock = os.path.join(sc.dir, "net0.sock")
        be = sc.add(vmlib.Process("guestabi-net", sc.dir, [gn, "--socket", sock, "--tap",
                                                           "gabitap10"] + args))
        vmlib.wait_for(lambda: os.path.exists(sock), 10, "guestabi-net's socket")
        g = sc.add(vmlib.Guest("guest", sc.dir,
                               netdevs=[{"socket": sock, "mac": "52:54:00:78:00:02",
                                         "props": ",packed=on" if packed else ""}],
                               cmdline="gabi.ip=10.78.0.2/24"))
        g.wait_ready()
        st, out = g.run("cat /sys/bus/virtio/devices/*/features")
        bits = [line.strip() for line in out.splitlines() if len(line.strip()) >= 64]
        check(st == 0 and bits, "the guest's virtio features:\n" + out)
        check(all(len(b) > PACKED_BIT and b[PACKED_BIT] == ("1" if packed else "0")
                  for b in bits), "RING_PACKED %s negotiated:\n%s"
              % ("not" if packed else "", out))
        got, out = netlib.ping("10.78.0.2", count=10, interval=0.1)
        check(got == 10, "host -> guest: %d of 10 replies\n%s" % (got, out))
        # 8000-byte pings: several receive buffers per frame with MRG_RXBUF, IP fragments
        got, out = netlib.ping("10.78.0.2", count=5, size=8000, pattern="5a")
        check(got == 5, "large pings: %d of 5\n%s" % (got, out))
        st, out = g.run("ping -c 5 -W 2 10.78.0.1")
        check(st == 0 and "5 packets received" in out, "guest -> host:\n" + out)
        check(be.alive(), "guestabi-net died:\n" + be.output())
        vmlib.log("ok: traffic both ways through guestabi-net and a tap%s"
                  % (" on packed virtqueues" if packed else ""))


def main():
    netlib.need_root_net()
    run(packed=False)
    # QEMU 7.2's packed=on: the guest driver takes packed virtqueues when the mode offers them
    run(packed=True)


if __name__ == "__main__":
    main()
