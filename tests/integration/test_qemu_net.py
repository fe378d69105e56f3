#!/usr/bin/env python3
"""A QEMU 7.2 guest on guestabi-net exchanges real traffic with the host through a tap:
ping both ways, including large frames that need mergeable receive buffers."""

import os

from checks import check
import netlib
import vmlib


def main():
    netlib.need_root_net()
    gn = vmlib.build_bin("devices/net/guestabi-net")
    with vmlib.Scenario("qemu-net") as sc:
        sc.add(netlib.Bridge("gabibr1", "10.78.0.1/24", ["gabitap10"]))
        sock = os.path.join(sc.dir, "net0.sock")
        be = sc.add(vmlib.Process("guestabi-net", sc.dir, [gn, "--socket", sock, "--tap",
                                                           "gabitap10"]))
        vmlib.wait_for(lambda: os.path.exists(sock), 10, "guestabi-net's socket")
        g = sc.add(vmlib.Guest("guest", sc.dir,
                               netdevs=[{"socket": sock, "mac": "52:54:00:78:00:02"}],
                               cmdline="gabi.ip=10.78.0.2/24"))
        g.wait_ready()
        got, out = netlib.ping("10.78.0.2", count=10, interval=0.1)
        check(got == 10, "host -> guest: %d of 10 replies\n%s" % (got, out))
        # 8000-byte pings: several receive buffers per frame with MRG_RXBUF, IP fragments
        got, out = netlib.ping("10.78.0.2", count=5, size=8000, pattern="5a")
        check(got == 5, "large pings: %d of 5\n%s" % (got, out))
        st, out = g.run("ping -c 5 -W 2 10.78.0.1")
        check(st == 0 and "5 packets received" in out, "guest -> host:\n" + out)
        check(be.alive(), "guestabi-net died:\n" + be.output())
        vmlib.log("ok: traffic both ways through guestabi-net and a tap")


if __name__ == "__main__":
    main()
