#!/usr/bin/env python3
"""DPDK 22.11's testpmd as a vhost-user back-end (net_vhost PMD, io forwarding between two
ports): guestabi's front-end probes it (its offer is the catalog's dpdk.testpmd-vhost.22.11)
and drives traffic through it (bench_net --connect: transmit on one port, receive on the
other)."""

import json
import os
import re
import shutil
import subprocess

from checks import check
import vmlib


def main():
    testpmd = shutil.which("dpdk-testpmd")
    if not testpmd:
        vmlib.skip("dpdk-testpmd is not installed (apt-get install dpdk-dev)")
    if os.cpu_count() < 2:
        vmlib.skip("testpmd needs 2 CPUs (a main and a forwarding lcore)")
    guestabi = vmlib.build_bin("src/cli/guestabi")
    bench = vmlib.build_bin("bench/bench_net")
    with vmlib.Scenario("dpdk-backend") as sc:
        prefix = "gabi-test-%d" % os.getpid()
        a, b = os.path.join(sc.dir, "a"), os.path.join(sc.dir, "b")
        # stdin stays open (testpmd exits at EOF without -i); no hugepages
        keep = subprocess.Popen(["sleep", "600"], stdout=subprocess.PIPE)
        tp = sc.add(vmlib.Process("testpmd", sc.dir, [
            testpmd, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512", "--file-prefix", prefix,
            "--vdev", "net_vhost0,iface=%s,queues=1" % a,
            "--vdev", "net_vhost1,iface=%s,queues=1" % b, "--",
            "--total-num-mbufs=16384", "--forward-mode=io", "--auto-start",
            "--stats-period", "0"], stdin=keep.stdout))
        try:
            vmlib.wait_for(lambda: os.path.exists(a) and os.path.exists(b), 60,
                           "testpmd's vhost sockets")
            env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="")
            r = subprocess.run([guestabi, "probe", "--json", "--only", "vhost-user",
                                "--vhost-user", "virtio-net:testpmd=" + a],
                               capture_output=True, text=True, env=env)
            check(r.returncode == 0, r.stdout + r.stderr)
            caps = json.loads(r.stdout)
            check(len(caps["backends"]) == 1, r.stdout)
            be = caps["backends"][0]
            check("dpdk.testpmd-vhost.22.11" in be["modes"], be["modes"])
            check("VHOST_USER_PROTOCOL_F_REPLY_ACK" in be["offer"]["protocol_features"])
            check("VIRTIO_NET_F_HOST_TSO4" not in be["offer"]["features"])
            check(be["offer"]["max_queue_pairs"] == 128, be["offer"])
            vmlib.log("testpmd runs: " + ", ".join(be["modes"]))

            r = subprocess.run([bench, "--connect", sc.dir, "-t", "1", "--sizes", "64,1500"],
                               capture_output=True, text=True, env=env, timeout=120)
            out = r.stdout + r.stderr
            check(r.returncode == 0, out)
            rates = [float(x) for x in re.findall(r"([0-9.]+) Mpps", out)]
            check(len(rates) >= 2 and all(x > 0 for x in rates), out)
            vmlib.log("our front-end through testpmd's io forwarding:\n" + out.strip())
        finally:
            keep.kill()
            keep.wait()
        tp.stop()
        shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)


if __name__ == "__main__":
    main()
