#!/usr/bin/env python3
"""Failover migrations that do not complete, with real QEMU 7.2 (TCG) and the pair of
test_failover_qemu (e1000e primary standing in for the VF, virtio-net standby on guestabi-net).
The source's root ports use PCIe native hotplug, so the guest's pciehp takes its 5 s
attention-button delay before it releases the primary: a guest slow to unplug.

  cancel    migrate_cancel while the source is in wait-unplug;
  fail      the destination QEMU dies after the unplug (the source is in active);
  slow      the guest does not release the primary within the bound (2 s): `guestabi failover
            migrate` (on a second QMP socket of the source) cancels the migration and exits 1
            with the reason.

After each: the source guest has its primary again in its failover bond (QEMU plugs it back,
or, when the guest removed it after the cancel, a device_add), its replies leave through the
primary's tap again, and the destination host's reservation (guestabid on an SR-IOV fixture)
is released, its VF back on its net driver."""

import os
import time

import failoverlib
import netlib
import vmlib
from checks import check, check_eq, check_in
from test_failover_qemu import DEV, GUEST_IP, MAC, Host, backend, pings_through, wait_bond

TAPS = ["fsS", "fpS", "fsD", "fpD"]


def counts():
    return {t: failoverlib.tap_tx_from_guest(t) for t in TAPS}


def case(sc, src, host, tag, unplug_timeout_s, act, qmp2=None):
    """One migration that must not complete; act(mig, src, dst, status) acts on each status.
    Returns the migration."""
    mig = failoverlib.Migration("vm15", DEV, host.agent, unplug_timeout_s, vmlib.log)
    mig.prepare()
    check_eq([v["state"] for v in host.agent.call("failover.list")["vfs"]][0], "bound",
             "%s: the destination's VF before" % tag)
    sock = backend(sc, "standby-" + tag, "fsD")
    be = sc.things[-1]
    uri = "unix:" + os.path.join(sc.dir, "mig-%s.sock" % tag)
    dst = sc.add(vmlib.Guest(tag, sc.dir, cmdline="gabi.ip=%s/24" % GUEST_IP, incoming=uri,
                             extra=failoverlib.pair_args(sock, MAC, "fpD", native_hotplug=True)))
    plugs0 = guest_plugs(src)
    pinger = failoverlib.Pinger(GUEST_IP, interval_ms=10)
    time.sleep(0.5)
    src.qmp.events.clear()
    if qmp2:
        st = mig.migrate_cli(qmp2, uri, unplug_timeout_s * 1000,
                             vmlib.build_bin("src/cli/guestabi"))
    else:
        st = mig.migrate(src, uri, on_status=lambda s: act(mig, src, dst, s))
    check(st in ("cancelled", "failed"), "%s: the migration %s" % (tag, st))
    mig.mark("source migration " + st)
    how = mig.rollback(src, MAC)
    wait_bond(src, timeout=90)
    mig.mark("source guest: primary back in the bond")
    plugs = guest_plugs(src) - plugs0
    mig.mark("source guest: primary registered %d more time(s)" % plugs)
    p = pinger.stop()
    dst.stop()
    be.stop()  # its tap is the next destination's
    check("wrong data byte" not in p.out, "corrupted echo:\n" + p.out)
    lost = p.lost_by_step(mig.timeline)
    t0 = mig.timeline[0][0]
    vmlib.log("ROLLBACK %s: %s; primary %s; %d of %d pings lost, longest gap %d (~%d ms); lost "
              "per step: %s; timeline: %s" % (
                  tag, st, how, p.sent - len(p.replies), p.sent, p.longest_gap(),
                  p.longest_gap() * 10,
                  ", ".join("%s: %d" % (k, v) for k, v in lost.items() if v) or "none",
                  "; ".join("+%.3fs %s" % (t - t0, s) for t, s in mig.timeline)))
    pings_through("%s: source after the rollback" % tag, "fpS", ["fsS", "fsD", "fpD"])
    vfs = host.agent.call("failover.list")["vfs"]
    check_eq(vfs[0]["state"], "free", "%s: the destination's VF after the rollback" % tag)
    check_eq(host.kernel.driver(host.vfs[0]), "ixgbevf", "%s: its driver" % tag)
    return mig, how, plugs


def guest_plugs(guest):
    """How many times the guest's net_failover took a primary."""
    out = guest.check("dmesg | grep -c 'failover primary slave:[a-z0-9]* registered' || true")
    return int(out.strip() or 0)


def main():
    netlib.need_root_net()
    with vmlib.Scenario("failover-rollback") as sc:
        sc.add(netlib.Bridge("gabibr16", "10.15.0.1/24", TAPS))
        host = sc.add(Host(sc, "dst-host"))
        sock = backend(sc, "standby-src", "fsS")
        qmp2 = os.path.join(sc.dir, "src-qmp2.sock")  # guestabi failover migrate's
        src = sc.add(vmlib.Guest("src", sc.dir, cmdline="gabi.ip=%s/24" % GUEST_IP,
                                 extra=failoverlib.pair_args(sock, MAC, "fpS", native_hotplug=True)
                                 + ["-qmp", "unix:%s,server=on,wait=off" % qmp2]))
        src.wait_ready()
        wait_bond(src, timeout=90)
        pings_through("source before", "fpS", ["fsS"])

        # cancel during wait-unplug
        def cancel(mig, s, dst, status):
            if status == "wait-unplug":
                time.sleep(1)
                mig.mark("migrate_cancel (operator)")
                s.qmp.execute("migrate_cancel")
        mig, how, plugs = case(sc, src, host, "cancel", 30, cancel)
        check(any(step == "source wait-unplug" for _, step in mig.timeline),
              "cancel: never in wait-unplug: %s" % mig.timeline)
        # the guest finished its pending unplug after the cancel; QEMU plugged it back
        check_eq(plugs, 1, "cancel: times the guest took its primary again")

        # failure after the unplug: the destination dies while the source sends RAM
        def kill_dst(mig, s, dst, status):
            if status == "active":
                mig.mark("destination QEMU killed")
                dst.proc.kill()
        mig, how, plugs = case(sc, src, host, "fail", 30, kill_dst)
        steps = [step for _, step in mig.timeline]
        check("source active" in steps, "fail: the unplug never completed: %s" % steps)
        check_eq(plugs, 1, "fail: the guest's primary was unplugged and plugged back: times")

        # the slow guest: pciehp's 5 s against a 2 s bound, kept by guestabi failover migrate
        mig, how, plugs = case(sc, src, host, "slow", 2, None, qmp2=qmp2)
        check_eq(mig.exit_status, 1, "slow: exit status of guestabi failover migrate")
        check_in("the guest did not release its failover primary within 2000 ms (migration in "
                 "wait-unplug): migration cancelled", mig.reason or "", "slow: the reason")
        steps = [step for _, step in mig.timeline]
        check("source active" not in steps, "slow: the migration went on: %s" % steps)
        check_eq(plugs, 1, "slow: times the guest took its primary again")
    print("PASS")


if __name__ == "__main__":
    main()
