#!/usr/bin/env python3
"""`guestabi negotiate` against real guestabi-net back-ends in two modes: the newer mode is
refused by the older back-end with every difference named, accepted by its own; and what a
back-end refuses is found as a front-end finds it (the failing request)."""

import os
import subprocess

from checks import check
import vmlib

V1, V2 = "upstream.guestabi-net.v1", "upstream.guestabi-net.v2"


def negotiate(*args):
    g = vmlib.build_bin("src/cli/guestabi")
    r = subprocess.run([g, "negotiate"] + list(args), capture_output=True, text=True,
                       env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""))
    return r.returncode, r.stdout + r.stderr


def main():
    gn = vmlib.build_bin("devices/net/guestabi-net")
    with vmlib.Scenario("negotiate") as sc:
        socks = {}
        for mode in (V1, V2):
            s = os.path.join(sc.dir, mode + ".sock")
            sc.add(vmlib.Process(mode, sc.dir, [gn, "--socket", s, "--loopback", "--mode", mode]))
            vmlib.wait_for(lambda: os.path.exists(s), 10, "socket of " + mode)
            socks[mode] = s

        st, out = negotiate("--socket", socks[V1], "--mode", V2)
        check(st == 1, out)
        for want in ("feature VIRTIO_RING_F_EVENT_IDX is not offered",
                     "feature VIRTIO_RING_F_INDIRECT_DESC is not offered",
                     "protocol feature VHOST_USER_PROTOCOL_F_STATUS is not offered",
                     "4 queue pairs asked, 1 offered",
                     "rings of 1024 entries asked, 256 offered",
                     "The back-end refused: SET_PROTOCOL_FEATURES"):
            check(want in out, "missing %r in:\n%s" % (want, out))

        st, out = negotiate("--socket", socks[V2], "--mode", V2)
        check(st == 0 and "Differences:\n  none" in out and "accepted" in out, out)
        st, out = negotiate("--socket", socks[V2], "--mode", V1)
        check(st == 0, "a v2 back-end must take what v1 asks:\n" + out)

        # One thing beyond the mode at a time: the back-end names the request it refused.
        st, out = negotiate("--socket", socks[V1], "--features", "MRG_RXBUF,EVENT_IDX",
                            "--protocol-features", "REPLY_ACK")
        check(st == 1 and "refused: SET_FEATURES" in out, out)
        st, out = negotiate("--socket", socks[V1], "--features", "MRG_RXBUF", "--ring-size",
                            "512")
        check(st == 1 and "refused: SET_VRING_NUM" in out, out)
        st, out = negotiate("--socket", socks[V1], "--features", "MRG_RXBUF", "--ring-size",
                            "256", "--protocol-features", "REPLY_ACK,LOG_SHMFD")
        check(st == 0 and "accepted" in out, out)
        # VERSION_1 is asked for even when --features does not name it (as --help says)
        asked = out.split("Asked for:")[1].split("\n")[1]
        check("VERSION_1" in asked and "PROTOCOL_FEATURES" in asked, out)
        st, out = negotiate("--socket", socks[V1], "--features", "NO_SUCH_THING")
        check(st == 2 and "unknown virtio-net feature" in out, out)
        vmlib.log("ok: negotiate shows offers, differences and refusals")


if __name__ == "__main__":
    main()
