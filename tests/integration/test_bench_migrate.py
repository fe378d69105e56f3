#!/usr/bin/env python3
"""bench/bench_migrate.py cannot rot: one migration per back-end (guestabi-net, then DPDK
testpmd's vhost PMD, each under the same patterned pings) must complete, with QEMU's
downtime and total time as numbers, no corrupted echo, and the guest answering pings after
it. The figures themselves are the benchmark's to print, not this test's to judge."""

import json
import os
import subprocess
import sys
import tempfile

from checks import check, check_eq
import vmlib


def main():
    bench = os.path.join(vmlib.SOURCE_ROOT, "bench", "bench_migrate.py")
    with tempfile.TemporaryDirectory(prefix="gabi-bench-migrate-smoke-") as d:
        out = os.path.join(d, "figures.json")
        r = subprocess.run([sys.executable, bench, "--build", vmlib.BUILD_ROOT, "--rounds", "1",
                            "--json", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        print(r.stdout, flush=True)
        if r.returncode == vmlib.SKIP:
            sys.exit(vmlib.SKIP)  # the bench said why (no testpmd, no QEMU, not root)
        check_eq(r.returncode, 0, "bench_migrate.py's exit status")
        with open(out) as f:
            fig = json.load(f)
    rows = fig["migrations"]
    check_eq(sorted(m["backend"] for m in rows), ["dpdk", "guestabi"], "back-ends migrated")
    for m in rows:
        what = "%s migration %r" % (m["backend"], m)
        check_eq(m["status"], "completed", what + ": status")
        check(isinstance(m["downtime"], int) and m["downtime"] >= 0, what + ": no downtime")
        check(isinstance(m["total_time"], int) and m["total_time"] > 0, what + ": no total")
        check(m["traffic_after"], what + ": no traffic after it")
        check(not m["corrupt"], what + ": a corrupted echo")
        check(m["pings_answered"] > 0, what + ": no ping answered across it")
    for be in ("guestabi", "dpdk"):
        check(fig["summary"][be]["downtime"] is not None, "no %s summary" % be)
    check("downtime" in fig["ratios"] or any(m["downtime"] == 0 for m in rows),
          "no guestabi/DPDK downtime ratio: %r" % fig["ratios"])
    vmlib.log("ok: both back-ends migrated with traffic after, figures numeric")


if __name__ == "__main__":
    main()
