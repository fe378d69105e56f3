#!/usr/bin/env python3
"""make demo's agent part: guestabid started, two ports added in different modes, a front-end
asking one of them for more than its mode refused (the port says why), a QEMU guest on the
other passing traffic, `guestabi port list` showing what it negotiated, then the agent killed
with SIGKILL and started again with the port still there and the guest still reachable. The
same helpers as tests/integration/test_agent_*.py, narrated."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import agentlib  # noqa: E402
import netlib  # noqa: E402
import vmlib  # noqa: E402

V1, V3 = "upstream.guestabi-net.v1", "upstream.guestabi-net.v3"


def guestabi(agent, *args, want=0, quiet_lines=None):
    g = vmlib.build_bin("src/cli/guestabi")
    print("$ guestabi " + " ".join(args), flush=True)
    r = subprocess.run([g] + list(args), capture_output=True, text=True,
                       env=dict(os.environ, GUESTABI_SYSTEM_CATALOG="",
                                GUESTABI_AGENT=agent.socket))
    out = (r.stdout + r.stderr).rstrip("\n").splitlines()
    if quiet_lines is not None and len(out) > quiet_lines:
        out = out[:quiet_lines] + ["..."]
    print("\n".join(out), flush=True)
    if r.returncode != want:
        raise RuntimeError("expected exit status %d, got %d" % (want, r.returncode))
    return r.stdout


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not netlib.own_netns_possible():
        print("demo: the agent part needs root, /dev/net/tun and a network namespace; skipped")
        return 0
    netlib.enter_own_netns()
    vm = os.environ.get("GUESTABI_DEMO_VM", "1") == "1"
    with vmlib.Scenario("demo-agent") as sc:
        sc.add(netlib.Bridge("gabibr8", "10.80.0.1/24", ["gabitap80"]))
        agent = sc.add(agentlib.Agent(sc.dir))
        print("guestabid is serving %s (state in %s)" % (agent.socket, agent.state_dir))
        s1, s2 = os.path.join(sc.dir, "vm1-net0.sock"), os.path.join(sc.dir, "vm2-net0.sock")
        guestabi(agent, "port", "add", "vm1-net0", "--class", "virtio-net", "--socket", s1,
                 "--tap", "gabitap80")
        guestabi(agent, "port", "add", "vm2-net0", "--class", "virtio-net", "--socket", s2,
                 "--mode", V1, "--loopback")
        print("\n-- a front-end asking vm2-net0 (%s) for %s is refused" % (V1, V3))
        guestabi(agent, "negotiate", "--socket", s2, "--mode", V3, want=1, quiet_lines=4)
        time.sleep(0.3)
        guestabi(agent, "port", "show", "vm2-net0")
        if vm:
            print("\n-- a QEMU 7.2 guest on vm1-net0")
            g = sc.add(vmlib.Guest("guest", sc.dir,
                                   netdevs=[{"socket": s1, "mac": "52:54:00:80:00:02"}],
                                   cmdline="gabi.ip=10.80.0.2/24"))
            g.wait_ready()
            got, _ = netlib.ping("10.80.0.2", count=5, interval=0.2)
            print("host -> guest: %d of 5 pings answered" % got)
            if got != 5:
                return 1
            time.sleep(0.5)
        guestabi(agent, "port", "list")
        print("\n-- guestabid killed with SIGKILL: its back-ends go with it")
        agent.kill9()
        guestabi(agent, "port", "list", want=2)
        print("\n-- guestabid started again: every port from its database, same socket, "
              "same mode")
        agent.start()
        guestabi(agent, "port", "list", quiet_lines=3)
        if vm:
            def pong():
                return netlib.ping("10.80.0.2", count=2, interval=0.2, timeout=3)[0] >= 1
            vmlib.wait_for(pong, 60, "the guest to answer again", interval=0.5)
            got, _ = netlib.ping("10.80.0.2", count=5, interval=0.2)
            print("host -> guest after the restart: %d of 5 pings answered (QEMU reconnected)" %
                  got)
            if got != 5:
                return 1
            time.sleep(0.3)
            guestabi(agent, "port", "show", "vm1-net0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
