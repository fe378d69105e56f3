#!/usr/bin/env python3
"""make demo's libvirt part, as an operator sees it: two hosts (two libvirt daemons, each with
its guestabid and guestabi's qemu hook; host2's guestabi-net is an older release), a VM pinned
to the newest mode and started with virsh, its `virsh migrate` refused with guestabi's reasons,
then the VM pinned to the ABI both hosts share (`guestabi pin --pick`), restarted, migrated,
and still answering. The same code as tests/integration/test_libvirt.py, narrated."""

import os
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import libvirtlib  # noqa: E402
import netlib  # noqa: E402
import test_libvirt as t  # noqa: E402
import vmlib  # noqa: E402


def show(argv, env=None):
    """Print a command as the operator types it, run it, print its output; its status."""
    shown = ["virsh" if a == "virsh" else a for a in argv]
    print("$ " + " ".join(shlex.quote(os.path.basename(a) if i == 0 else a)
                          for i, a in enumerate(shown)), flush=True)
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        print(out, flush=True)
    return r.returncode


def main():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not netlib.own_netns_possible():
        print("demo: the libvirt part needs root, /dev/net/tun and a network namespace of its "
              "own; skipped")
        return 0
    netlib.enter_own_netns()
    libvirtlib.need_libvirt()
    g = vmlib.build_bin("src/cli/guestabi")
    gn = vmlib.build_bin("devices/net/guestabi-net")
    env = dict(os.environ, GUESTABI_SYSTEM_CATALOG="")
    with vmlib.Scenario("demo-libvirt") as sc:
        sc.add(netlib.Bridge("gabibr7", "10.81.0.1/24", ["gabitap71", "gabitap72"]))
        old = os.path.join(sc.dir, "old-backend")
        os.makedirs(old)
        libvirtlib.write(os.path.join(old, "guestabi-net"), t.OLD_BACKEND % (gn, gn), 0o755)
        print("\n-- two libvirt hosts, each with its guestabid and the hook in "
              "/etc/libvirt/hooks/qemu.d/", flush=True)
        pair = libvirtlib.HostPair(
            sc, conf_extra=({"net_backing": "tap:gabitap71"}, {"net_backing": "tap:gabitap72"}),
            backend_dirs=(None, [old]))
        h1, h2 = pair.hosts
        caps = []
        for h in pair.hosts:
            show([g, "--agent", h.agent_socket, "host", "caps"], env)
            path = os.path.join(sc.dir, h.name + "-caps.json")
            r = subprocess.run([g, "--agent", h.agent_socket, "--json", "host", "caps"],
                               capture_output=True, text=True, env=env)
            libvirtlib.write(path, r.stdout)
            caps.append(path)

        name, ip = "vm1", "10.81.0.2"
        print("\n-- vm1 pinned to the newest mode host1 runs, %s, started with virsh" % t.V2)
        xml = os.path.join(sc.dir, name + ".xml")
        libvirtlib.write(xml, pair.domain_xml(name, "52:54:00:81:00:02", ip))
        show(["virsh", "-c", h1.uri, "define", xml])
        pin = os.path.join(sc.dir, name + "-pin.json")
        t.write_pin(pin, name, t.V2)
        show([g, "pin", "--domain", name, "--pin", pin, "--connect", h1.uri], env)
        show(["virsh", "-c", h1.uri, "start", name])
        show([g, "--agent", h1.agent_socket, "port", "list"], env)
        t.DomainGuest(h1, name).wait_ready()
        got, _ = netlib.ping(ip, count=3)
        print("ping %s: %d of 3 answered" % (ip, got))

        print("\n-- virsh migrate to host2, whose guestabi-net is older: refused at "
              "`migrate begin`, before host2 creates anything")
        st = show(["virsh", "-c", h1.uri, "migrate", "--live", "--unsafe", name, h2.uri,
                   "--migrateuri", "tcp://127.0.0.1:49154", "--listen-address", "127.0.0.1"])
        if st == 0:
            print("demo: expected the migration to be refused")
            return 1
        show(["virsh", "-c", h2.uri, "list", "--all"])
        show(["virsh", "-c", h1.uri, "domstate", name])

        print("\n-- vm1 pinned to the newest ABI both hosts share, restarted, migrated")
        show(["virsh", "-c", h1.uri, "destroy", name])
        show([g, "pin", "--domain", name, "--connect", h1.uri, "--pick"] + caps, env)
        show(["virsh", "-c", h1.uri, "start", name])
        t.DomainGuest(h1, name).wait_ready()
        st = show(["virsh", "-c", h1.uri, "migrate", "--live", "--unsafe", "--verbose", name,
                   h2.uri, "--migrateuri", "tcp://127.0.0.1:49154", "--listen-address",
                   "127.0.0.1"])
        if st != 0:
            print("demo: the migration failed")
            return 1
        show(["virsh", "-c", h2.uri, "list"])
        show([g, "--agent", h2.agent_socket, "port", "list"], env)
        show([g, "--agent", h1.agent_socket, "port", "list"], env)
        got, _ = netlib.ping(ip, count=5)
        print("ping %s after the migration: %d of 5 answered" % (ip, got))
        if got != 5:
            return 1
        show(["virsh", "-c", h2.uri, "destroy", name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
