#!/usr/bin/env python3
"""guestabid's failover pool on an SR-IOV sysfs fixture (failoverlib: no VF exists here, the
agent takes the same paths as on /sys): the pool as failover.list shows it, reservations (all or
nothing, equivalence by vendor:device, errors naming the parameter), failover.bind's writes in
the order the kernel gets them and their undo when a step fails midway, release, two reserves
racing for the last VF (through one agent and through two agents on one database: exactly one
wins), reservations across a kill -9 and a restart, and expiry (also across a restart)."""

import os
import sqlite3
import tempfile
import subprocess
import threading
import time

import agentlib
import failoverlib
import vmlib
from checks import check, check_eq, check_in

DEV = "8086:154c"


def code_path(err):
    return err["data"]["path"]


def reason(err):
    return err["data"]["reason"]


def states(agent):
    return {v["address"]: v for v in agent.call("failover.list")["vfs"]}


def main():
    with tempfile.TemporaryDirectory(prefix="gabi-failover-") as work:
        sysfs = os.path.join(work, "sys")
        os.makedirs(os.path.join(work, "dev/net"))
        k = failoverlib.Kernel(sysfs)
        try:
            run(work, sysfs, k)
        finally:
            k.stop()
    print("PASS")


def start(work, sysfs, name="guestabid", state_dir=None, extra=()):
    return agentlib.Agent(work, name=name, state_dir=state_dir,
                          extra=["--sysfs-root", sysfs, "--dev-root", os.path.join(work, "dev"),
                                 "--failover-settle-ms", "300"] + list(extra))


def run(work, sysfs, k):
    vfs = k.add_pf("ens2f0", "0000:5e:00.0", DEV, 4)
    other = k.add_pf("ens3f0", "0000:6e:00.0", "8086:10ed", 2, bus="6e")
    # one VF already on vfio-pci that guestabi did not bind: some VM's, never free
    k.set_driver(vfs[3], failoverlib.VFIO)
    a = start(work, sysfs)
    state_dir = a.state_dir
    try:
        names = [m["name"] for m in a.call("rpc.methods")["methods"]]
        for m in ("failover.reserve", "failover.bind", "failover.release", "failover.list"):
            check_in(m, names, "rpc.methods")

        # the pool
        s = states(a)
        check_eq(sorted(s), sorted(vfs + other), "the pool's VFs")
        check_eq([s[v]["state"] for v in vfs], ["free", "free", "free", "busy"], "states")
        check_eq(s[vfs[0]]["device"], DEV, "device")
        check_eq(s[vfs[0]]["driver"], "ixgbevf", "driver")
        check_eq(s[other[0]]["device"], "8086:10ed", "other device")

        # bad parameters name their path
        c = a.client()
        for params, path, text in [
                ({"vm": "vm1", "device": "8086-154c"}, "params.device", "vendor:device"),
                ({"vm": "vm1", "device": DEV, "count": 0}, "params.count", "from 1 to 64"),
                ({"vm": "vm1", "device": DEV, "count": 65}, "params.count", "from 1 to 64"),
                ({"vm": "vm1", "device": DEV, "count": "2"}, "params.count", "integer"),
                ({"vm": "vm1", "device": DEV, "ttl_s": 0}, "params.ttl_s", "from 1"),
                ({"vm": "../x", "device": DEV}, "params.vm", "letters"),
                ({"device": DEV}, "params.vm", "missing"),
                ({"vm": "vm1", "device": DEV, "pf": "x"}, "params", "pf")]:
            e = c.error("failover.reserve", params)
            check_eq(e["code"], -32602, "error code of %s" % params)
            check_in(path, str(e.get("data")), "error of %s" % params)
            check_in(text, str(e["data"]), "error of %s" % params)
        e = c.error("failover.bind", {"vm": "vm1", "reservation": "rsv-0"})
        check_in("exactly one", reason(e), "bind with both")

        # all or nothing, equivalent devices only
        e = c.error("failover.reserve", {"vm": "vm9", "device": DEV, "count": 4})
        check_in("no free VF of 8086:154c: 3 free of 4 (4 wanted)", reason(e), "refusal")
        check_eq(code_path(e), "params.count", "refusal path")
        check_eq([v["state"] for v in states(a).values()].count("reserved"), 0, "left reserved")
        r1 = c.call("failover.reserve", {"vm": "vm1", "device": DEV, "count": 2, "ttl_s": 3600})
        check_eq(r1["addresses"], vfs[:2], "vm1's VFs")
        check(r1["reservation"].startswith("rsv-"), "reservation id %r" % r1["reservation"])
        e = c.error("failover.reserve", {"vm": "vm2", "device": DEV, "count": 2})
        check_in("1 free of 4 (2 wanted)", reason(e), "second refusal")
        s = states(a)
        check_eq([s[v]["state"] for v in vfs], ["reserved", "reserved", "free", "busy"], "after")
        check_eq(s[vfs[0]]["vm"], "vm1", "holder")
        # host.caps (and so abi.check) counts reserved and vfio-pci VFs as in use
        caps = {f["address"]: f["in_use"] for f in a.call("host.caps")["failover"]}
        check_eq([caps[v] for v in vfs], [True, True, False, True], "host.caps in_use")
        check_eq([caps[v] for v in other], [False, False], "host.caps in_use of 8086:10ed")

        # bind: override, unbind from the net driver, bind to vfio-pci; in that order per VF
        k.take_journal()
        b = c.call("failover.bind", {"reservation": r1["reservation"]})
        check_eq(b["bound"], vfs[:2], "bound")
        j = k.take_journal()
        want = []
        for v in vfs[:2]:
            want += [("ixgbevf", "unbind", v, "vfio-pci", "ok"),
                     ("vfio-pci", "bind", v, "vfio-pci", "ok")]
        check_eq(j, want, "the kernel's writes of a bind")
        for v in vfs[:2]:
            check_eq(k.driver(v), "vfio-pci", "driver of %s" % v)
            check_eq(states(a)[v]["state"], "bound", "state of %s" % v)

        # a bind failing midway (vfio-pci's probe refuses) is undone: override cleared first,
        # then the net driver bound again
        r3 = c.call("failover.reserve", {"vm": "vm3", "device": DEV})
        check_eq(r3["addresses"], [vfs[2]], "vm3's VF")
        k.refuse.add(("vfio-pci", "bind"))
        e = c.error("failover.bind", {"vm": "vm3"})
        check_in("not vfio-pci", reason(e), "failed bind")
        check_eq(k.take_journal(), [("ixgbevf", "unbind", vfs[2], "vfio-pci", "ok"),
                                    ("vfio-pci", "bind", vfs[2], "vfio-pci", "refused"),
                                    ("ixgbevf", "bind", vfs[2], "", "ok")], "bind and undo")
        check_eq(k.driver(vfs[2]), "ixgbevf", "driver after the undo")
        check_eq(k.override(vfs[2]), "", "driver_override after the undo")
        check_eq(states(a)[vfs[2]]["state"], "reserved", "still reserved")
        k.refuse.clear()
        # an unbind the kernel refuses: nothing bound, override cleared, driver untouched
        k.refuse.add(("ixgbevf", "unbind"))
        e = c.error("failover.bind", {"vm": "vm3"})
        check_in("after 300 ms", reason(e), "failed unbind")
        j = k.take_journal()
        check_eq(j[0], ("ixgbevf", "unbind", vfs[2], "vfio-pci", "refused"), "refused unbind")
        check(all(op != "bind" or drv != "vfio-pci" for drv, op, *_ in j), "no vfio bind: %s" % j)
        check_eq(k.driver(vfs[2]), "ixgbevf", "driver after a refused unbind")
        check_eq(k.override(vfs[2]), "", "override after a refused unbind")
        k.refuse.clear()
        # a bind whose attribute cannot be written at all (no vfio-pci driver loaded)
        fifo = os.path.join(sysfs, "bus/pci/drivers/vfio-pci/bind")
        os.rename(fifo, fifo + ".away")
        e = c.error("failover.bind", {"vm": "vm3"})
        check(code_path(e).endswith("/bus/pci/drivers/vfio-pci/bind"), "path %s" % code_path(e))
        check_in("cannot open: No such file", reason(e), "no vfio-pci")
        check_eq(e["code"], -32009, "error code of a device step")
        os.rename(fifo + ".away", fifo)
        check_eq(k.driver(vfs[2]), "ixgbevf", "driver after a missing vfio-pci")
        k.take_journal()

        # release of a bound reservation gives the VFs back to their driver
        rel = c.call("failover.release", {"vm": "vm1"})
        check_eq(rel["released"], vfs[:2], "released")
        check_eq(rel["problems"], [], "release problems")
        j = k.take_journal()
        check_eq(j, [x for v in vfs[:2] for x in [("vfio-pci", "unbind", v, "vfio-pci", "ok"),
                                                   ("ixgbevf", "bind", v, "", "ok")]],
                 "the kernel's writes of a release")
        check_eq([k.driver(v) for v in vfs[:3]], ["ixgbevf"] * 3, "drivers after release")
        rel = c.call("failover.release", {"reservation": r3["reservation"]})
        check_eq(rel["released"], [vfs[2]], "released vm3")
        check_eq(k.take_journal(), [], "releasing a reserved VF writes nothing")
        c.close()

        # the CLI, through the same agent
        cli(a, "failover", "reserve", "--device", DEV, "--count", "2", "vmC", want=0,
            out="rsv-")
        st, out = cli(a, "failover", "list")
        check_eq(sum(1 for line in out.splitlines() if "vmC" in line and "reserved" in line), 2,
                 "vmC's VFs in failover list:\n" + out)
        cli(a, "failover", "bind", "vmC", want=0, out="on vfio-pci: %s, %s" % (vfs[0], vfs[1]))
        cli(a, "failover", "release", "vmC", want=0, out="released: %s, %s" % (vfs[0], vfs[1]))
        cli(a, "failover", "reserve", "--device", DEV, "--count", "4", "vmC", want=2,
            out="params.count: no free VF of 8086:154c: 3 free of 4 (4 wanted) (-32005)")
        cli(a, "failover", "bind", want=2, out="needs the VM or --reservation ID")
        k.take_journal()

        # two reserves racing for the last VF, through one agent: exactly one wins
        c = a.client()
        c.call("failover.reserve", {"vm": "hold", "device": DEV, "count": 2, "ttl_s": 3600})
        c.close()
        race(lambda i: a, rounds=5, what="one agent")
        # and through two agents on one database
        b2 = start(work, sysfs, name="second", state_dir=state_dir)
        try:
            race(lambda i: a if i == 0 else b2, rounds=10, what="two agents")
        finally:
            b2.stop()

        # restart after kill -9: a bound and a reserved VF are still held
        c = a.client()
        c.call("failover.release", {"vm": "hold"})
        rb = c.call("failover.reserve", {"vm": "vmB", "device": DEV, "ttl_s": 1})
        c.call("failover.bind", {"vm": "vmB"})
        rr = c.call("failover.reserve", {"vm": "vmR", "device": DEV, "ttl_s": 3600})
        rx = c.call("failover.reserve", {"vm": "vmX", "device": DEV, "ttl_s": 2})
        c.close()
        k.take_journal()
        a.kill9()
        time.sleep(2.5)  # vmB's ttl (1 s) and vmX's (2 s) pass while the agent is down
        a.start()
        s = states(a)
        check_eq(s[rb["addresses"][0]]["state"], "bound", "bound VF after restart (no expiry)")
        check_eq(s[rr["addresses"][0]]["state"], "reserved", "reserved VF after restart")
        check_eq(s[rr["addresses"][0]]["reservation"], rr["reservation"], "its reservation")
        check_eq(s[rx["addresses"][0]]["state"], "free", "expired while the agent was down")
        check_eq(k.take_journal(), [], "a restart writes nothing to sysfs")
        e = a.client().error("failover.bind", {"reservation": rx["reservation"]})
        check_in("expired or released", reason(e), "bind of an expired reservation")

        # expiry while running
        c = a.client()
        re_ = c.call("failover.reserve", {"vm": "vmE", "device": DEV, "ttl_s": 1})
        check_eq(states(a)[re_["addresses"][0]]["state"], "reserved", "before expiry")
        time.sleep(1.5)
        check_eq(states(a)[re_["addresses"][0]]["state"], "free", "after expiry")
        c.call("failover.release", {"vm": "vmB"})
        c.call("failover.release", {"vm": "vmR"})
        c.close()

        # the database: one row per VF, a second row for a VF is refused by SQLite itself
        db = sqlite3.connect(os.path.join(state_dir, "guestabid.db"))
        try:
            db.execute("INSERT INTO failover_vfs VALUES ('0000:5e:02.0', 'rsv-a', 'a', ?, "
                       "'ens2f0', 'ixgbevf', 'reserved', 0, 9999999999)", (DEV,))
            db.commit()
            dup = False
            try:
                db.execute("INSERT INTO failover_vfs VALUES ('0000:5e:02.0', 'rsv-b', 'b', ?, "
                           "'ens2f0', 'ixgbevf', 'reserved', 0, 9999999999)", (DEV,))
            except sqlite3.IntegrityError:
                dup = True
            check(dup, "a second row for one VF was accepted")
            db.execute("DELETE FROM failover_vfs")
            db.commit()
        finally:
            db.close()
    except Exception:
        print(a.output())
        raise
    finally:
        a.stop()


def cli(agent, *args, want=None, out=None):
    """guestabi --agent SOCK ARGS: (status, stdout + stderr), checked when told."""
    r = subprocess.run([vmlib.build_bin("src/cli/guestabi"), "--agent", agent.socket] +
                       list(args), capture_output=True, text=True, timeout=60)
    text = r.stdout + r.stderr
    if want is not None:
        check_eq(r.returncode, want, "exit status of guestabi %s:\n%s" % (" ".join(args), text))
    if out is not None:
        check_in(out, text, "guestabi " + " ".join(args))
    return r.returncode, text


def race(agent_for, rounds, what):
    """Two clients reserve the last free VF at the same moment; exactly one gets it."""
    for rnd in range(rounds):
        results = [None, None]
        clients = [agent_for(i).client() for i in range(2)]
        go = threading.Barrier(2)

        def one(i):
            go.wait()
            results[i] = clients[i].call_raw(
                "failover.reserve", {"vm": "race%d" % i, "device": DEV, "ttl_s": 60})

        ts = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        wins = [r for r in results if r and "result" in r]
        losses = [r for r in results if r and "error" in r]
        check_eq((len(wins), len(losses)), (1, 1), "%s round %d: %s" % (what, rnd, results))
        check_in("no free VF of 8086:154c: 0 free of 4", reason(losses[0]["error"]),
                 "the loser's reason")
        winner = clients[results.index(wins[0])]
        winner.call("failover.release", {"reservation": wins[0]["result"]["reservation"]})
        for cl in clients:
            cl.close()


if __name__ == "__main__":
    main()
