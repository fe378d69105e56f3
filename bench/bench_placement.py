#!/usr/bin/env python3
"""Fleet scale on a real Placement 8.0 (standalone, SQLite with sqlite_synchronous = false, one
server process on a loopback port): sync N generated hosts with `guestabi placement sync`,
then ask for several pins with `guestabi placement hosts` and, over the same hostcaps files,
with `guestabi filter` (parsing and filtering in-process); print both and check they agree.

Usage: bench/bench_placement.py [--build DIR] [N...]     (default N: 100 1000)"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import placementlib  # noqa: E402

NET = ["dpdk.vhost-net.16.11", "dpdk.vhost-net.17.05", "dpdk.vhost-net.18.11",
       "dpdk.vhost-net.20.11", "upstream.guestabi-net.v1", "upstream.guestabi-net.v2",
       "upstream.guestabi-net.v3"]
BLK = ["upstream.guestabi-blk.v1", "upstream.guestabi-blk.v2"]
PINS = {
    "common": {"platform": "linux-5.14", "devices": [
        {"id": "net0", "class": "virtio-net", "mode": "upstream.guestabi-net.v1"},
        {"id": "disk0", "class": "virtio-blk", "mode": "upstream.guestabi-blk.v1"}]},
    "newest": {"platform": "linux-6.2", "devices": [
        {"id": "net0", "class": "virtio-net", "mode": "upstream.guestabi-net.v3"},
        {"id": "disk0", "class": "virtio-blk", "mode": "upstream.guestabi-blk.v2"},
        {"id": "s", "class": "mdev", "type": "mtty-1", "state_version": "1.0"}]},
    "failover": {"platform": "linux-4.13", "devices": [
        {"id": "net1", "class": "virtio-net", "mode": "dpdk.vhost-net.18.11",
         "failover": {"primary": "hostdev0", "device": "8086:154c"}}]},
}


def host_doc(i, rng):
    uso = rng.random() < 0.5
    caps = {k: "supported" for k in ("tap.vnet_hdr", "tap.csum", "tap.tso4", "tap.tso6",
                                     "tap.tso_ecn", "tap.ufo", "vhost-net")}
    caps["tap.uso4"] = caps["tap.uso6"] = "supported" if uso else "unsupported"
    n_net = rng.randint(1, len(NET))
    return {"schema": "guestabi.hostcaps/1", "host": "bench-%05d" % i,
            "kernel": {"release": "6.8" if uso else "5.4", "capabilities": caps},
            "backends": [
                {"name": "net", "class": "virtio-net",
                 "modes": sorted(rng.sample(NET, n_net), key=NET.index, reverse=True)},
                {"name": "blk", "class": "virtio-blk",
                 "modes": BLK[:rng.randint(1, 2)][::-1]}],
            "device_types": [{"name": "mtty-1", "kind": "mdev",
                              "available_instances": rng.choice([0, 4])}],
            "failover": [{"address": "0000:3b:02.%d" % j, "pf": "ens1f0", "device": "8086:154c",
                          "in_use": rng.random() < 0.5} for j in range(rng.randint(0, 2))]}


def run(cmd, env):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.monotonic() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError("%s: %s" % (" ".join(cmd[:4]), r.stderr[-2000:]))
    return dt, r.stdout


def bench(n, guestabi, rng):
    with tempfile.TemporaryDirectory(prefix="guestabi-bench-pl-") as d, \
            placementlib.Placement(fast=True, workdir=d) as p:
        env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="", OS_PLACEMENT_ENDPOINT=p.url,
                   OS_TOKEN="admin")
        files = []
        for i in range(n):
            path = os.path.join(d, "h%05d.json" % i)
            with open(path, "w") as f:
                json.dump(host_doc(i, rng), f)
            files.append(path)
        args = [guestabi, "--json", "placement", "sync"]
        for f in files:
            args += ["--host", f]
        dt, out = run(args, env)
        print("N=%-5d sync %d hosts: %.1f s (%.1f ms per host)" % (n, n, dt, dt * 1000 / n))
        dt2, out = run(args, env)
        changed = sum(1 for h in json.loads(out)["hosts"] if h["added"] or h["removed"])
        print("        second sync (no change): %.1f s, %d hosts changed" % (dt2, changed))
        for name, pin in PINS.items():
            pf = os.path.join(d, "pin-%s.json" % name)
            with open(pf, "w") as f:
                json.dump(dict(pin, schema="guestabi.pin/1", vm=name), f)
            best_p = best_f = 1e9
            for _ in range(3):
                dp, outp = run([guestabi, "--json", "placement", "hosts", "--pin", pf], env)
                df, outf = run([guestabi, "--json", "filter", "--pin", pf] + files, env)
                best_p, best_f = min(best_p, dp), min(best_f, df)
            hp, hf = json.loads(outp)["hosts"], sorted(json.loads(outf)["hosts"])
            dr, _ = run([guestabi, "--json", "placement", "hosts", "--pin", pf, "--resources",
                         "CUSTOM_GUESTABI_VF_8086_K154C:1"], env)
            print("        pin %-8s placement hosts %6.1f ms | filter (parse %d files + "
                  "filter) %6.1f ms | %d hosts, %s | with --resources (candidates) %6.1f ms" % (
                      name, best_p * 1000, n, best_f * 1000, len(hp),
                      "same answer" if hp == hf else "DIFFERENT ANSWER (%d)" % len(hf),
                      dr * 1000))
            if hp != hf:
                return 1
        rss = open("/proc/%d/status" % p.proc.pid).read().split("VmRSS:")[1].split()[0]
        print("        placement-api RSS %d MB" % (int(rss) // 1024))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("n", nargs="*", type=int, default=[100, 1000])
    a = ap.parse_args()
    why = placementlib.available()
    if why:
        print("bench_placement: skipped: " + why)
        return 0
    guestabi = os.path.join(a.build, "src", "cli", "guestabi")
    rng = random.Random(13)
    rc = 0
    for n in a.n:
        rc |= bench(n, guestabi, rng)
    return rc


if __name__ == "__main__":
    sys.exit(main())
