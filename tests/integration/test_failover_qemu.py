#!/usr/bin/env python3
"""A failover pair through two live migrations with real QEMU 7.2 (TCG): the guest's
net_failover bonds an emulated e1000e primary (failover_pair_id; it stands in for the VF, which
cannot exist here) with a virtio-net standby (failover=on) on a vhost-user port of
guestabi-net, both with one MAC, each on its own tap of one bridge.

Before each migration the destination host's guestabid (on an SR-IOV sysfs fixture, as in
test_failover_agent) reserves and binds an equivalent VF. Then:

  S -> D1  D1's command line has the primary (failover_pair_id): QEMU plugs it itself;
  D1 -> D2 D2's has none: it is hot-plugged with device_add once D2 runs; this migration is
           driven by `guestabi failover migrate` (over a second QMP socket of D1).

Checked: the source's primary is unplugged (wait-unplug, then active), traffic leaves the
primary's tap for the standby's, the migration completes, the destination plugs its primary and
traffic comes back to a primary's tap; patterned pings every 10 ms never come back corrupted.
Reported: how many pings were lost, and during which step."""

import os
import time

import agentlib
import failoverlib
import netlib
import vmlib
from checks import check, check_eq

MAC = "52:54:00:15:00:02"
GUEST_IP = "10.15.0.2"
DEV = "8086:154c"
TAPS = ["fsS", "fpS", "fs1", "fp1", "fs2", "fp2"]  # standby/primary taps of S, D1, D2


def backend(sc, name, tap):
    gn = vmlib.build_bin("devices/net/guestabi-net")
    sock = os.path.join(sc.dir, name + ".sock")
    sc.add(vmlib.Process(name, sc.dir, [gn, "--socket", sock, "--tap", tap]))
    vmlib.wait_for(lambda: os.path.exists(sock), 10, name + "'s socket")
    return sock


class Host:
    """A destination host's guestabid on a sysfs fixture with 4 VFs of DEV."""

    def __init__(self, sc, name):
        root = os.path.join(sc.dir, name)
        os.makedirs(os.path.join(root, "dev/net"))
        self.kernel = failoverlib.Kernel(os.path.join(root, "sys"))
        self.vfs = self.kernel.add_pf("ens2f0", "0000:5e:00.0", DEV, 4)
        self.agent = agentlib.Agent(root, name="guestabid-" + name, extra=[
            "--sysfs-root", os.path.join(root, "sys"), "--dev-root", os.path.join(root, "dev")])
        self.name = name

    def stop(self):
        self.agent.stop()
        self.kernel.stop()


def wait_bond(guest, timeout=60):
    """Until the guest's failover device eth0 has two lower devices (standby and primary),
    both with carrier."""
    def up():
        st, out = guest.run("cat /sys/class/net/eth0/lower_*/carrier", timeout=30)
        return st == 0 and out.split() == ["1", "1"]
    vmlib.wait_for(up, timeout, guest.name + "'s failover bond with its primary up",
                   interval=0.2)


def path_counts(taps=TAPS):
    return {t: failoverlib.tap_tx_from_guest(t) for t in taps}


def delta(a, b):
    return {t: b[t] - a[t] for t in a}


def pings_through(what, primary, others, seconds=1.5):
    """Ping for a while; the guest's replies must leave through `primary`'s tap."""
    taps = [primary] + list(others)
    c0 = path_counts(taps)
    got, out = netlib.ping(GUEST_IP, count=int(seconds / 0.02), interval=0.02, timeout=30)
    d = delta(c0, path_counts(taps))
    vmlib.log("%s: %d replies; frames from the guest per tap %s" % (what, got, d))
    check(got >= int(seconds / 0.02) * 0.9, "%s: %d answered\n%s" % (what, got, out))
    check(d[primary] >= got * 0.9, "%s: replies did not leave through %s: %s" % (what, primary, d))
    for t in others:
        check(d[t] <= got * 0.1, "%s: %d frames through %s, expected the primary %s: %s" % (
            what, d[t], t, primary, d))
    return d


def one_migration(sc, tag, src, src_taps, dst_host, dst_taps, primary_on_cmdline, via_cli=False):
    mig = failoverlib.Migration("vm15", DEV, dst_host.agent, unplug_timeout_s=30, log=vmlib.log)
    mig.prepare()
    sock = backend(sc, "standby-" + tag, dst_taps[0])
    uri = "unix:" + os.path.join(sc.dir, "mig-%s.sock" % tag)
    qmp2 = os.path.join(sc.dir, tag + "-qmp2.sock")  # for guestabi failover migrate
    dst = sc.add(vmlib.Guest(tag, sc.dir, cmdline="gabi.ip=%s/24" % GUEST_IP, incoming=uri,
                             extra=failoverlib.pair_args(
                                 sock, MAC, dst_taps[1] if primary_on_cmdline else None) +
                             ["-qmp", "unix:%s,server=on,wait=off" % qmp2]))
    dst.qmp2 = qmp2
    if not primary_on_cmdline:
        # the netdev the hot-plugged primary will use
        dst.qmp.execute("netdev_add", type="tap", id="h0", ifname=dst_taps[1], script="no",
                        downscript="no")
    counts = {}
    pinger = failoverlib.Pinger(GUEST_IP, interval_ms=10)

    def on_status(st):
        counts[st] = path_counts()
    time.sleep(1)
    counts["before"] = path_counts()
    if via_cli:
        # guestabi failover migrate drives it (it prints each status with its time)
        st = mig.migrate_cli(src.qmp2, uri, 30000, vmlib.build_bin("src/cli/guestabi"))
        counts["completed"] = path_counts()
        counts["wait-unplug"] = counts["before"]
        check_eq(mig.exit_status, 0, "guestabi failover migrate's exit status")
        src.qmp.execute("query-status")  # the events meanwhile
    else:
        st = mig.migrate(src, uri, on_status=on_status)
    check_eq(st, "completed", "migration %s (%s)" % (tag, mig.reason))
    check("source wait-unplug" in [step for _, step in mig.timeline],
          "the source never was in wait-unplug: %s" % mig.timeline)
    ev = [e for e in src.qmp.events if e["event"] == "UNPLUG_PRIMARY"]
    check(ev and ev[0]["data"].get("device-id") == "hostdev0",
          "no UNPLUG_PRIMARY event for hostdev0 on the source: %s" % src.qmp.events)
    if primary_on_cmdline:
        vmlib.wait_for(lambda: dst.qmp.execute("query-status")["status"] == "running", 60,
                       "the destination to run")
        mig.mark("destination running")
    else:
        mig.plug_after_resume(dst, MAC)
    vmlib.wait_for(lambda: failoverlib.primary_present(dst), 30, "the destination's primary")
    mig.mark("destination has its primary (QEMU)")

    wait_bond(dst)
    mig.mark("guest: new primary in the bond")
    counts["plugged"] = path_counts()
    # back on a primary: wait until replies leave through the destination's primary tap
    def on_primary():
        c = path_counts()
        time.sleep(0.3)
        return failoverlib.tap_tx_from_guest(dst_taps[1]) - c[dst_taps[1]] >= 10
    try:
        vmlib.wait_for(on_primary, 30, "traffic through the destination's primary",
                       interval=0.1)
    except TimeoutError:
        # what to look at when it happens: where the guest's frames went, what the pinger got,
        # and the guest's view of its bond
        vmlib.log("%s: frames from the guest per tap since the bond: %s" % (
            tag, delta(counts["plugged"], path_counts())))
        p = pinger.stop()
        vmlib.log("%s: pinger: %d of %d answered; its last lines:\n%s" % (
            tag, len(p.replies), p.sent, p.out[-400:]))
        vmlib.log("%s: guest: %s" % (tag, dst.run(
            "ip -s link; cat /sys/class/net/eth0/lower_*/operstate; dmesg | tail -20",
            timeout=30)[1]))
        raise
    mig.mark("traffic on the destination's primary")
    time.sleep(1)
    p = pinger.stop()
    check(p.replies, "no ping answered:\n" + p.out[-500:])
    check("wrong data byte" not in p.out, "corrupted echo:\n" + p.out)
    # between the source's unplug and the switchover the standby carried the replies (through
    # guestabi failover migrate: counted from before the migrate command)
    d = delta(counts["wait-unplug"], counts.get("completed", counts["plugged"]))
    vmlib.log("%s: frames from the guest per tap from %s to completed: %s" % (
        tag, "before" if via_cli else "wait-unplug", d))
    check(d[src_taps[0]] > 0, "%s: the standby carried nothing during the migration: %s" % (
        tag, d))
    lost = p.lost_by_step(mig.timeline)
    figure = "%d of %d pings lost (every 10 ms), the longest gap %d (~%d ms); lost per step: %s" % (
        p.sent - len(p.replies), p.sent, p.longest_gap(), p.longest_gap() * 10,
        ", ".join("%s: %d" % (k, v) for k, v in lost.items() if v))
    vmlib.log("GAP %s (%s): %s" % (tag, "primary on the command line" if primary_on_cmdline
                                   else "device_add after resume", figure))
    t0 = mig.timeline[0][0]
    vmlib.log("%s: timeline: %s" % (tag, "; ".join("+%.3fs %s" % (t - t0, s)
                                                    for t, s in mig.timeline)))
    pings_through("%s after migration" % tag, dst_taps[1],
                  [t for t in TAPS if t != dst_taps[1]])
    check_eq(dst_host.agent.call("failover.list")["vfs"][0]["state"], "bound",
             "the destination's VF")
    return dst


def main():
    netlib.need_root_net()
    with vmlib.Scenario("failover-qemu") as sc:
        sc.add(netlib.Bridge("gabibr15", "10.15.0.1/24", TAPS))
        h1 = sc.add(Host(sc, "host1"))
        h2 = sc.add(Host(sc, "host2"))
        sock = backend(sc, "standby-src", "fsS")
        src = sc.add(vmlib.Guest("src", sc.dir, cmdline="gabi.ip=%s/24" % GUEST_IP,
                                 extra=failoverlib.pair_args(sock, MAC, "fpS")))
        src.wait_ready()
        vmlib.wait_for(lambda: failoverlib.primary_present(src), 30, "the source's primary")
        wait_bond(src)
        pings_through("S before migration", "fpS", ["fsS"])
        d1 = one_migration(sc, "d1", src, ["fsS", "fpS"], h1, ["fs1", "fp1"], True)
        src.stop()
        one_migration(sc, "d2", d1, ["fs1", "fp1"], h2, ["fs2", "fp2"], False, via_cli=True)
        # D1's host gives its VF back once the VM left it
        rel = h1.agent.call("failover.release", {"vm": "vm15"})
        check_eq(rel["released"], [h1.vfs[0]], "host1's VF released")
        check_eq(h1.kernel.driver(h1.vfs[0]), "ixgbevf", "host1's VF back on its driver")
    print("PASS")


if __name__ == "__main__":
    main()
