#!/usr/bin/env python3
"""Live-migration downtime, guestabi-net against DPDK testpmd's vhost PMD, side by side: the
same guest (QEMU 7.2, TCG, the test guest of tests/integration/vmlib.py) migrated back and
forth between two QEMU processes on this machine, alternately on each back-end, under the
same traffic. A benchmark: it measures; it fails only when a migration or the traffic after
it does.

Usage: bench/bench_migrate.py [--build DIR] [--rounds N] [--json FILE]
                              [--downtime-limit MS] [--max-bandwidth MIB_S] [--no-pin]

Two guests run side by side, one per back-end, each in its own network (a bridge in the
run's own network namespace, the host at .1, the guest at .2):
  guestabi  one guestabi-net process (its newest mode) with two ports, A and B, each to its
            own tap on the bridge;
  dpdk      one dpdk-testpmd process with two vhost ports (net_vhost0 on A, net_vhost1 on B),
            each paired by io forwarding with a net_tap port whose tap is on the bridge.
One back-end process per "host" and one port per QEMU in both cases; the host-side path is
a kernel tap either way. A round migrates the guestabi guest once, then the DPDK guest once
(A -> B, next round B -> A, each time to a fresh destination QEMU started with -incoming on
the free port; the old source quits after). testpmd forwards only while its guest migrates
("start" / "stop" on its command line), so that its polling core does not weigh on the
other back-end's migrations.

The traffic, the same for both: from the host, pings with a patterned 1200-byte payload
every 20 ms, from 0.3 s before the migration until 1 s after it completed (the guest echoes
each one, so both directions of the back-end carry it; a corrupted reply would mean a dirty
page not logged); then 3 pings that must be answered. Every QEMU gets the same migration
parameters (migrate-set-parameters downtime-limit and max-bandwidth, explicit), and with
--no-pin not given the QEMUs run on CPU 0 and the back-end's forwarding on CPU 1 (testpmd's
forwarding lcore, guestabi-net under taskset), both back-ends alike.

Printed per migration: QEMU's query-migrate downtime, total-time and setup-time (ms), the
pings answered, the longest run unanswered and the slowest first answer (what the guest's peers
see: it also covers the destination back-end's start, after QEMU's own downtime ends), and the
duplicate answers; the vhost switchover as the back-end saw it (the source's first
GET_VRING_BASE to the destination's last SET_VRING_KICK, from its own log: guestabi-net with
-v, testpmd's vhost library at its default level); then per back-end the median
and p90 of each and the ratios guestabi/DPDK. Needs root, qemu-system-x86_64 and
dpdk-testpmd; exits 77 when something is missing."""

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import netlib  # noqa: E402
import vmlib  # noqa: E402

PING_INTERVAL_MS = 20
KEYS = ("downtime", "total_time", "setup_time", "gap_ms", "rtt_max_ms", "switchover_ms")
NETS = {"guestabi": ("10.79.1", "52:54:00:79:01:02"), "dpdk": ("10.79.2", "52:54:00:79:02:02")}


def pin(pid, cpu):
    """Every thread of pid (and those it creates later) on one CPU."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def newest_mode(gn):
    r = subprocess.run([gn, "--list-modes"], capture_output=True, text=True, check=True,
                       env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""))
    return r.stdout.split()[0]


class TimedProcess(vmlib.Process):
    """A back-end whose output lines are kept with the time they arrived (time.monotonic()),
    so that its vhost-user messages can be placed on the migration's timeline."""

    def __init__(self, name, workdir, argv, stdin=subprocess.DEVNULL, env=None):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.logf = open(self.log_path, "w")
        self.lines = []  # (time, line)
        vmlib.log("%s: %s" % (name, " ".join(argv)))
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            t = time.monotonic()
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append((t, line))
            self.logf.write("%.6f %s\n" % (time.time(), line))  # realtime, as ping -D
            self.logf.flush()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        rc = self.end(sig, timeout)
        self.reader.join(5)  # its last lines, before the log closes
        self.logf.close()
        return rc

    def switchover_ms(self, src_sock, dst_sock, t0, t1):
        """From the source's first GET_VRING_BASE to the destination's last SET_VRING_KICK
        between t0 and t1, as this back-end logged them (both back-ends log every message they
        read: guestabi-net with -v, DPDK's vhost library at its default level); None when
        either is missing."""
        get = kick = None
        for t, line in list(self.lines):
            if t < t0 or t > t1:
                continue
            if get is None and src_sock in line and "GET_VRING_BASE" in line:
                get = t
            elif get is not None and dst_sock in line and "SET_VRING_KICK" in line:
                kick = t
        return round((kick - get) * 1000, 1) if get is not None and kick is not None else None


class Side:
    """One back-end's guest as it moves between its two ports."""

    def __init__(self, name, socks, args, backend):
        self.name = name
        self.socks = socks  # port A, port B
        self.backend = backend
        self.args = args
        self.prefix, self.mac = NETS[name]
        self.ip = self.prefix + ".2"
        self.at = 0  # the port the guest runs on
        self.guest = None
        self.n = 0

    def start_guest(self, sc, incoming=None):
        port = self.at if incoming is None else 1 - self.at
        self.n += 1
        g = sc.add(vmlib.Guest("%s-%d" % (self.name, self.n), sc.dir,
                               netdevs=[{"socket": self.socks[port], "mac": self.mac}],
                               cmdline="gabi.ip=%s/24" % self.ip, incoming=incoming))
        if self.args.pin:
            pin(g.proc.pid, 0)
        g.qmp.execute("migrate-set-parameters", **{
            "downtime-limit": self.args.downtime_limit,
            "max-bandwidth": self.args.max_bandwidth * 1024 * 1024})
        return g


def migrate_once(sc, side, seq):
    """Migrate side's guest to its other port; returns the row of figures."""
    src = side.guest
    mig = "unix:" + os.path.join(sc.dir, "mig-%s-%d.sock" % (side.name, seq))
    dst = side.start_guest(sc, incoming=mig)
    pinger = netlib.BackgroundPing(["-D", "-n", "-i", "%.3f" % (PING_INTERVAL_MS / 1000), "-s",
                                    "1200", "-p", "c3a5", "-W", "2", side.ip])
    time.sleep(0.3)
    t0 = time.monotonic()
    info = vmlib.migrate(src, mig)
    time.sleep(1)
    out = pinger.stop()
    with open(os.path.join(sc.dir, "ping-%s-%d.txt" % (side.name, seq)), "w") as f:
        f.write(out)  # GUESTABI_KEEP=1 keeps it, with the back-ends' logs (the same clock)
    row = {"backend": side.name, "seq": seq, "from": "AB"[side.at], "to": "AB"[1 - side.at],
           "status": info.get("status"), "downtime": info.get("downtime"),
           "total_time": info.get("total-time"), "setup_time": info.get("setup-time"),
           "error": info.get("error-desc"),
           "switchover_ms": side.backend.switchover_ms(side.socks[side.at],
                                                       side.socks[1 - side.at], t0,
                                                       time.monotonic())}
    m = re.search(r"(\d+) packets transmitted", out)
    sent = int(m.group(1)) if m else 0
    # each ping's first answer (a later one is a duplicate: the bridge floods to both taps,
    # and a frame the destination's back-end held while its guest was not running yet is
    # answered again after the switchover)
    got, dups = {}, 0
    for line in out.splitlines():
        m = re.search(r"icmp_seq=(\d+) .*time=([\d.]+) ms", line)
        if not m:
            continue
        if "DUP!" in line or int(m.group(1)) in got:
            dups += 1
        else:
            got[int(m.group(1))] = float(m.group(2))
    gap = run = 0
    for s in range(1, sent + 1):
        run = 0 if s in got else run + 1
        gap = max(gap, run)
    row.update(pings_sent=sent, pings_answered=len(got), pings_duplicated=dups,
               gap_ms=gap * PING_INTERVAL_MS, rtt_max_ms=max(got.values()) if got else None,
               corrupt="wrong data byte" in out)
    if info.get("status") != "completed":
        dst.stop()  # the source runs on
        row["traffic_after"] = False
        return row
    src.stop()
    side.guest = dst
    side.at = 1 - side.at
    n, text = netlib.ping(side.ip, count=3)
    row["traffic_after"] = n >= 3
    if not row["traffic_after"]:
        # recorded (the run fails at its end), and the guest booted afresh on the same port
        # so that the run goes on; if even that one gets no traffic, the run stops here
        print("%s: after migration %d: %d of 3 pings answered (the guest is booted afresh "
              "on port %s):\n%s" % (side.name, seq, n, "AB"[side.at], text.strip()),
              flush=True)
        side.guest.stop()
        side.guest = side.start_guest(sc)
        side.guest.wait_ready()
        n, text = netlib.ping(side.ip, count=3)
        if n < 3:
            raise RuntimeError("%s: a fresh guest on port %s: %d of 3 pings answered\n%s" % (
                side.name, "AB"[side.at], n, text))
    return row


def p90(xs):
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def summarize(rows):
    ok = [r for r in rows if r["status"] == "completed"]
    fig = {}
    for be in ("guestabi", "dpdk"):
        mine = [r for r in ok if r["backend"] == be]
        fig[be] = {}
        for key in KEYS:
            xs = [r[key] for r in mine if isinstance(r[key], (int, float))]
            fig[be][key] = (statistics.median(xs), p90(xs), len(xs)) if xs else None
    print()
    line = "%-10s" + " %-20s" * len(KEYS)
    print(line % ("back-end", "downtime ms", "total-time ms", "setup-time ms", "ping gap ms",
                  "ping max rtt ms", "vhost switchover ms"))
    print(line % ("", *["median    p90 (n)"] * len(KEYS)))
    for be in ("guestabi", "dpdk"):
        cells = []
        for key in KEYS:
            v = fig[be][key]
            cells.append("%6.1f %6.1f (%d)" % v if v else "-")
        print(line % (be, *cells))
    ratios = {}
    cells = []
    for key in KEYS:
        a, b = fig["guestabi"][key], fig["dpdk"][key]
        if a and b and b[0] > 0 and b[1] > 0:
            ratios[key] = (a[0] / b[0], a[1] / b[1])
            cells.append("%6.2f %6.2f" % ratios[key])
        else:
            cells.append("-")
    print(line % ("gabi/dpdk", *cells))
    return fig, ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=vmlib.BUILD_ROOT)
    ap.add_argument("--rounds", type=int, default=10, help="migrations per back-end")
    ap.add_argument("--json", help="write the figures (raw and summary) to this file")
    ap.add_argument("--downtime-limit", type=int, default=300, help="ms, both back-ends")
    ap.add_argument("--max-bandwidth", type=int, default=1024, help="MiB/s, both back-ends")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="leave QEMU and the back-ends wherever the scheduler puts them")
    a = ap.parse_args()
    vmlib.BUILD_ROOT = os.path.abspath(a.build)

    testpmd = shutil.which("dpdk-testpmd")
    if not testpmd:
        vmlib.skip("dpdk-testpmd is not installed (apt-get install dpdk-dev)")
    if not vmlib.QEMU:
        vmlib.skip("qemu-system-x86_64 is not installed")
    if os.cpu_count() < 2:
        vmlib.skip("testpmd needs 2 CPUs (a main and a forwarding lcore)")
    gn = vmlib.build_bin("devices/net/guestabi-net")
    netlib.need_root_net()  # from here on, in the run's own network namespace
    mode = newest_mode(gn)
    print("bench_migrate: %d migrations per back-end, alternated; downtime-limit %d ms, "
          "max-bandwidth %d MiB/s on every QEMU; guestabi-net %s; QEMUs %s" % (
              a.rounds, a.downtime_limit, a.max_bandwidth, mode,
              "on CPU 0, back-ends' forwarding on CPU 1" if a.pin else "unpinned"), flush=True)

    rows = []
    with vmlib.Scenario("bench-migrate") as sc:
        d = sc.dir
        sc.add(netlib.Bridge("gabimbr1", NETS["guestabi"][0] + ".1/24", ["gabimt1a", "gabimt1b"]))
        bridge2 = sc.add(netlib.Bridge("gabimbr2", NETS["dpdk"][0] + ".1/24", []))
        gsocks = [os.path.join(d, "gabi-a.sock"), os.path.join(d, "gabi-b.sock")]
        dsocks = [os.path.join(d, "dpdk-a.sock"), os.path.join(d, "dpdk-b.sock")]
        argv = [gn, "--mode", mode, "--socket", gsocks[0], "--tap", "gabimt1a",
                "--socket", gsocks[1], "--tap", "gabimt1b"]
        env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="")
        gbe = sc.add(TimedProcess("guestabi-net", d,
                                  (["taskset", "-c", "1"] if a.pin else []) + argv + ["-v"],
                                  env=env))
        prefix = "gabi-bench-migrate-%d" % os.getpid()
        tp = sc.add(TimedProcess("testpmd", d, [
            "stdbuf", "-oL", testpmd, "-l", "0-1", "--no-pci", "--no-huge", "-m", "512",
            "--file-prefix", prefix,
            "--vdev", "net_vhost0,iface=%s,queues=1" % dsocks[0],
            "--vdev", "net_tap0,iface=gabimt2a",
            "--vdev", "net_vhost1,iface=%s,queues=1" % dsocks[1],
            "--vdev", "net_tap1,iface=gabimt2b", "--",
            "-i", "--total-num-mbufs=16384", "--forward-mode=io", "--auto-start"],
            stdin=subprocess.PIPE))
        try:
            vmlib.wait_for(lambda: all(os.path.exists(s) for s in gsocks + dsocks), 60,
                           "the back-ends' sockets")
            vmlib.wait_for(lambda: "Start automatic packet forwarding" in tp.output(), 60,
                           "testpmd to start forwarding")
            for t in ("gabimt2a", "gabimt2b"):
                netlib.sh("ip", "link", "set", t, "master", bridge2.name)
                netlib.sh("ip", "link", "set", t, "up")

            def testpmd_cmd(cmd):
                tp.proc.stdin.write((cmd + "\n").encode())
                tp.proc.stdin.flush()

            sides = {"guestabi": Side("guestabi", gsocks, a, gbe),
                     "dpdk": Side("dpdk", dsocks, a, tp)}
            for s in sides.values():
                s.guest = s.start_guest(sc)
            for s in sides.values():
                s.guest.wait_ready()
                n, text = netlib.ping(s.ip, count=3)
                if n < 3:
                    raise RuntimeError("%s: before any migration %d of 3\n%s" % (s.name, n,
                                                                                  text))
            testpmd_cmd("stop")
            for seq in range(1, a.rounds + 1):
                for be in ("guestabi", "dpdk"):
                    if be == "dpdk":
                        testpmd_cmd("start")
                    row = migrate_once(sc, sides[be], seq)
                    if be == "dpdk":
                        testpmd_cmd("stop")
                    rows.append(row)
                    print("%-8s #%-3d %s->%s %-9s downtime %5s ms  total %6s ms  setup %4s ms  "
                          "pings %3d/%-3d (+%d dup) gap %4d ms max rtt %6s ms switchover "
                          "%6s ms%s%s" % (
                              be, seq, row["from"], row["to"], row["status"], row["downtime"],
                              row["total_time"], row["setup_time"], row["pings_answered"],
                              row["pings_sent"], row["pings_duplicated"], row["gap_ms"],
                              row["rtt_max_ms"],
                              row["switchover_ms"],
                              "  CORRUPT REPLY" if row["corrupt"] else "",
                              "  " + row["error"] if row["error"] else ""), flush=True)
            for s in sides.values():
                s.guest.stop()
            testpmd_cmd("quit")
        finally:
            shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)

    fig, ratios = summarize(rows)
    print("(medians and p90 (nearest rank) of QEMU's query-migrate figures; ping gap: the "
          "longest run of unanswered %d ms pings (dropped); ping max rtt: the slowest first "
          "answer (held, then delivered); vhost switchover: the source's first GET_VRING_BASE to the "
          "destination's last SET_VRING_KICK as the back-end logged them; gabi/dpdk: median ratio, p90 ratio; <= 1: ours no worse)"
          % PING_INTERVAL_MS)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": a.rounds, "mode": mode, "downtime_limit": a.downtime_limit,
                       "max_bandwidth_mib": a.max_bandwidth, "pinned": a.pin,
                       "migrations": rows, "summary": fig,
                       "ratios": {k: {"median": v[0], "p90": v[1]} for k, v in ratios.items()}},
                      f, indent=1)
    bad = [r for r in rows if r["status"] != "completed" or r["corrupt"]
           or not r["traffic_after"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
