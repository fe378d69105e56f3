#!/usr/bin/env python3
"""A QEMU 7.2 guest on a port guestabid created: the guest's link comes up and pings flow
through the tap; port.get shows what QEMU negotiated (features, one queue pair, rings of 256)
and the counters move. Then the port's back-end is killed with SIGKILL and the agent itself
with SIGKILL: each time the port comes back on the same socket in the same mode, QEMU
reconnects (reconnect=1) and traffic flows again."""

import os
import signal

import agentlib
import netlib
import vmlib
from agentlib import check

MODE = "upstream.guestabi-net.v2"


def ping_ok(count=5):
    got, out = netlib.ping("10.79.0.2", count=count, interval=0.2, timeout=30)
    return got, out


def wait_traffic(what, timeout=90):
    def ok():
        got, _ = netlib.ping("10.79.0.2", count=2, interval=0.2, timeout=3)
        return got >= 1
    vmlib.wait_for(ok, timeout, "traffic " + what, interval=0.5)
    got, out = ping_ok()
    check(got == 5, "%s: %d of 5 replies\n%s" % (what, got, out))


def main():
    netlib.need_root_net()
    vmlib.build_bin("devices/net/guestabi-net")
    with vmlib.Scenario("agent-qemu") as sc:
        sc.add(netlib.Bridge("gabibr2", "10.79.0.1/24", ["gabitap20"]))
        agent = sc.add(agentlib.Agent(sc.dir))
        try:
            run(agent, sc)
        except Exception:
            print("--- agent log:\n" + agent.output()[-3000:])
            try:
                with open(os.path.join(agent.run_dir, "port-vm1-net0.log"),
                          errors="replace") as f:
                    print("--- back-end log:\n" + f.read()[-3000:])
            except FileNotFoundError:
                pass
            raise


def run(agent, sc):
    sock = os.path.join(sc.dir, "vm1-net0.sock")
    ev = agent.client()
    ev.call("events.subscribe")
    p = agent.call("port.add", {"id": "vm1-net0", "class": "virtio-net", "socket": sock,
                                "mode": MODE, "backing": {"tap": "gabitap20"}})
    check(p["mode"] == MODE, str(p))
    g = sc.add(vmlib.Guest("guest", sc.dir,
                           netdevs=[{"socket": sock, "mac": "52:54:00:79:00:02"}],
                           cmdline="gabi.ip=10.79.0.2/24"))
    g.wait_ready()
    ev.wait_note(lambda n: n["method"] == "port.connected", 10, "port.connected")
    wait_traffic("through the agent's port")
    st, out = g.run("ping -c 3 -W 2 10.79.0.1")
    check(st == 0 and "3 packets received" in out, "guest -> host:\n" + out)

    def negotiated():
        q = agent.call("port.get", {"id": "vm1-net0"})
        return q if q["connected"] and q["ring_sizes"] and \
            q["counters"]["rx_packets"] >= 5 and q["counters"]["tx_packets"] >= 5 else None
    q = vmlib.wait_for(negotiated, 10, "port.get to show the negotiated state")
    check("VIRTIO_NET_F_MRG_RXBUF" in q["features"] and "VIRTIO_F_VERSION_1" in q["features"]
          and q["queue_pairs"] == 1 and set(q["ring_sizes"]) == {256}, "port.get: %s" % q)
    check("VIRTIO_RING_F_EVENT_IDX" not in q["features"] or MODE != "upstream.guestabi-net.v1",
          "a feature beyond the mode was negotiated: %s" % q["features"])
    vmlib.log("ok: QEMU 7.2 guest through an agent-created %s port: %s; %d queue pair, rings %s, "
              "rx %d tx %d packets" % (MODE, " ".join(f.split("_F_")[-1] for f in q["features"]),
                                       q["queue_pairs"], q["ring_sizes"],
                                       q["counters"]["rx_packets"], q["counters"]["tx_packets"]))

    # the back-end dies: restarted by the agent, QEMU reconnects, traffic again
    os.kill(q["pid"], signal.SIGKILL)
    ev.wait_note(lambda n: n["method"] == "port.restarted", 15, "port.restarted")
    wait_traffic("after the back-end was killed and restarted")
    check(g.proc.poll() is None, "QEMU died when its back-end did")
    vmlib.log("ok: back-end killed, restarted by the agent, QEMU reconnected, traffic again")

    # the agent dies: its back-ends go with it; a new agent brings the port back
    ev.close()
    agent.kill9()
    agent.start()
    q = agent.call("port.get", {"id": "vm1-net0"})
    check(q["mode"] == MODE and q["socket"] == sock and q["state"] == "running", str(q))
    wait_traffic("after the agent was killed and restarted")
    vmlib.wait_for(lambda: agent.call("port.get", {"id": "vm1-net0"})["connected"], 10,
                   "the guest connected to the restarted agent's port")
    vmlib.log("ok: agent killed -9 and restarted: the port is back, the guest passes traffic")


if __name__ == "__main__":
    main()
