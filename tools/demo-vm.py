#!/usr/bin/env python3
"""make demo's last part: a VM on guestabi-net; guestabi refuses its migration to a host whose
back-end runs an older mode (before anything starts there), then the VM, pinned to the mode
both hosts run, migrates and keeps working; then a local disk moved as device state. The same
code as the integration tests test_qemu_migrate.py and test_blk_state.py, narrated."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import netlib  # noqa: E402
import test_blk_state  # noqa: E402
import test_qemu_migrate as mig  # noqa: E402
import vmlib  # noqa: E402


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not netlib.own_netns_possible():
        print("demo: the VM part needs root, /dev/net/tun and a network namespace of its own; "
              "skipped")
        return 0
    netlib.enter_own_netns()
    gn = vmlib.build_bin("devices/net/guestabi-net")
    with vmlib.Scenario("demo") as sc:
        sc.add(netlib.Bridge("gabibr9", "10.79.0.1/24", ["gabitap90", "gabitap91",
                                                          "gabitap92", "gabitap93"]))
        print("\n-- VM pinned to %s; the destination's back-end runs %s" % (mig.V2, mig.V1))
        st, verdict, _ = mig.migrate_case(sc, gn, mig.V2, mig.V1, "refused",
                                          ["gabitap90", "gabitap91"])
        if st != 1:
            print("demo: expected guestabi to refuse this migration")
            return 1
        print("No QEMU was started on the destination. Without this check QEMU copies the RAM "
              "and then fails to load:\n  Features 0x1308f8024 unsupported. Allowed features: "
              "0x1409f8024\n  load of migration failed: Operation not permitted")
        print("\n-- VM pinned to %s, which both back-ends run" % mig.V1)
        st, verdict, info = mig.migrate_case(sc, gn, mig.V1, mig.V1, "works",
                                             ["gabitap92", "gabitap93"])
        if st != 0 or not info:
            print("demo: the migration should have worked:\n" + verdict)
            return 1
        print("migrated in %.2f s, downtime %s ms; the guest answered pings all along and "
              "after" % (info["wall-seconds"], info.get("downtime")))
    print("\n-- A VM's local disk (guestabi-blk) moves as device state: written by a guest on "
          "one back-end, carried by SET_DEVICE_STATE_FD to another, read back there; then a "
          "state stream of a newer version is refused before a byte of it is loaded")
    test_blk_state.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
