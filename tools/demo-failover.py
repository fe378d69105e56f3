#!/usr/bin/env python3
"""make demo: a failover pair (seed 003) live-migrated twice. The VM's fast path is a pass-through
NIC (an emulated e1000e with failover_pair_id stands in for the SR-IOV VF: this machine has
none), its standby a virtio-net on guestabi-net with the same MAC. Before each migration the
destination's guestabid reserves and binds an equivalent VF (on a sysfs fixture); QEMU unplugs
the source's primary (wait-unplug), traffic moves to the standby, and the destination's primary
is plugged after resume (on its command line the first time, with device_add the second). The
GAP lines are the measured traffic gap (pings every 10 ms). The same code as
tests/integration/test_failover_qemu.py, narrated."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import netlib  # noqa: E402
import test_failover_qemu  # noqa: E402


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not netlib.own_netns_possible():
        print("demo: the failover part needs root, /dev/net/tun and a network namespace of its "
              "own; skipped")
        return 0
    netlib.need_root_net()  # re-executes this script in a network namespace of its own
    print("-- a VM with a failover pair: S -> D1 (primary on D1's command line), then D1 -> D2 "
          "(primary hot-plugged after resume, the migration driven by guestabi failover migrate)")
    test_failover_qemu.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
