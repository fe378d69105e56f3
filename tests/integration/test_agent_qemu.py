#!/usr/bin/env python3
"""A QEMU 7.2 guest on ports guestabid created: the guest's link comes up and pings flow
through the tap; port.get shows what QEMU negotiated (features, one queue pair, rings of 256)
and the counters move; the guest writes and reads a virtio-blk port's RAM disk and port.get
counts it. Then the port's back-end is killed with SIGKILL and the agent itself
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
    bsock = os.path.join(sc.dir, "vm1-disk0.sock")
    b = agent.call("port.add", {"id": "vm1-disk0", "class": "virtio-blk", "socket": bsock,
                                "backing": {"ram": 16 << 20}})
    check(b["class"] == "virtio-blk", str(b))
    g = sc.add(vmlib.Guest("guest", sc.dir,
                           netdevs=[{"socket": sock, "mac": "52:54:00:79:00:02"}],
                           cmdline="gabi.ip=10.79.0.2/24",
                           extra=["-chardev", "socket,id=bcx,path=%s,reconnect=1" % bsock,
                                  "-device", "vhost-user-blk-pci,chardev=bcx,num-queues=1"]))
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

    # the disk: what the guest writes and reads is counted on the blk port
    out = g.check("dd if=/dev/urandom of=/tmp/x bs=4096 count=32 2>/dev/null; "
                  "dd if=/tmp/x of=/dev/vda bs=4096 count=32 conv=fsync 2>&1; "
                  "echo 3 > /proc/sys/vm/drop_caches; "
                  "dd if=/dev/vda bs=4096 count=32 2>/dev/null | md5sum; md5sum /tmp/x")
    sums = [l.split()[0] for l in out.splitlines() if len(l.split()) == 2 and
            len(l.split()[0]) == 32]
    check(len(sums) == 2 and sums[0] == sums[1], "the disk did not keep what was written:\n" +
          out)

    def blk_counted():
        q = agent.call("port.get", {"id": "vm1-disk0"})
        c = q["counters"] or {}
        return q if q["connected"] and c.get("bytes_written", 0) >= 32 * 4096 and \
            c.get("reads", 0) >= 1 else None
    bq = vmlib.wait_for(blk_counted, 10, "port.get of the disk to count the guest's I/O")
    check(bq["ring_sizes"] and bq["queue_pairs"] == 1 and bq["features"], "blk port: %s" % bq)
    vmlib.log("ok: the guest wrote and read the agent's virtio-blk port: %d bytes written, %d "
              "read; %d queue, rings %s" % (bq["counters"]["bytes_written"],
                                            bq["counters"]["bytes_read"], bq["queue_pairs"],
                                            bq["ring_sizes"]))

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
