#!/usr/bin/env python3
"""The libvirt hook's failover steps against a real guestabid on an SR-IOV fixture.

guestabi-libvirt-hook run as libvirt runs it (DOMAIN OPERATION SUB-OPERATION -, the XML on
stdin) for a pinned domain with a failover pair:
  migrate begin  prints the domain XML with the transient interface's source address set to
                 the VF the agent reserved; it validates (virt-xml-validate) and its tree equals
                 the input's but for those four attributes; a plain hostdev is left alone;
  prepare begin  the VF is bound to vfio-pci (the fixture kernel sees unbind, then bind);
  release end    the VF is released and back on its net driver;
  no free VF     migrate begin refuses, prints nothing on stdout: the pin's check when every VF
                 is reserved (reservations count as in use), the reservation itself ("no free
                 VF of 8086:154c: 0 free of 0") when the VFs went away after the agent probed.
The rewrite itself (src/libvirt-hook/failover.c through the hook_failover_tool filter): a
domain without a transient interface prints nothing; malformed input is refused."""

import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import agentlib
import failoverlib
import vmlib
from checks import check, check_eq, check_in

DEV = "8086:154c"
DOMAIN = os.path.join(vmlib.SOURCE_ROOT, "tests/data/failover/domain.xml")


def rewrite(tool, xml, *addrs):
    r = subprocess.run([tool] + list(addrs), input=xml, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def same_tree(a, b, where="domain"):
    """None when the trees are equal (tags, attributes, text), else where they differ."""
    if a.tag != b.tag or a.attrib != b.attrib:
        return "%s: <%s %s> vs <%s %s>" % (where, a.tag, a.attrib, b.tag, b.attrib)
    if (a.text or "").strip() != (b.text or "").strip():
        return "%s: text %r vs %r" % (where, a.text, b.text)
    if len(a) != len(b):
        return "%s: %d vs %d children" % (where, len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        d = same_tree(x, y, "%s/%s[%d]" % (where, x.tag, i))
        if d:
            return d
    return None


def hook(work, agent, xml, op, sub):
    conf = os.path.join(work, "hook.conf")
    with open(conf, "w") as f:
        f.write("agent_socket = %s\nqemu_user = root\nqemu_group = root\n" % agent.socket)
    r = subprocess.run([vmlib.build_bin("src/libvirt-hook/guestabi-libvirt-hook"), "vm15", op,
                        sub, "-"], input=xml, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "GUESTABI_CONF": conf})
    return r.returncode, r.stdout, r.stderr


def hook_flow(work, a, k, vfs, xml):
    platform = a.call("host.platforms")["default"]
    check(platform, "this host runs no platform")
    xml = xml.replace("PLATFORM", platform).replace("/run/guestabi/vm15-net0.sock",
                                                    os.path.join(work, "vm15-net0.sock"))
    st, out, err = hook(work, a, xml, "migrate", "begin")
    check_eq(st, 0, "migrate begin exit status (%s)" % err)
    addr = [v for v in a.call("failover.list")["vfs"] if v.get("vm")]
    check_eq(len(addr), 1, "VFs reserved at migrate begin")
    check_eq(addr[0]["state"], "reserved", "its state")
    validate_and_compare(work, xml, out, addr[0]["address"])
    k.take_journal()
    st, _, err = hook(work, a, out, "prepare", "begin")
    check_eq(st, 0, "prepare exit status (%s)" % err)
    check_eq(k.driver(addr[0]["address"]), "vfio-pci", "the VF's driver after prepare")
    check_eq([(d, op) for d, op, *_ in k.take_journal()],
             [("ixgbevf", "unbind"), ("vfio-pci", "bind")], "the kernel's writes at prepare")
    st, _, err = hook(work, a, out, "release", "end")
    check_eq(st, 0, "release exit status (%s)" % err)
    check_eq(k.driver(addr[0]["address"]), "ixgbevf", "the VF's driver after release")
    check_eq([v["state"] for v in a.call("failover.list")["vfs"]], ["free"] * 4, "after release")
    # every VF reserved by others: the pin's check already refuses (reservations count as in use)
    a.call("failover.reserve", {"vm": "others", "device": DEV, "count": 4})
    st, out, err = hook(work, a, xml, "migrate", "begin")
    check_eq(st, 1, "migrate begin without a free VF")
    check_eq(out, "", "stdout of a refused migrate begin")
    check_in("needs a free 8086:154c virtual function for its primary hostdev0", err,
             "the check's refusal")
    check_in("0000:5e:02.0 8086:154c (in use)", err, "the check's refusal")
    vmlib.log("refusal by the check: " + err.strip())
    a.call("failover.release", {"vm": "others"})
    # the VFs went away after the agent probed (sriov_numvfs 0): the check still counts the
    # probed ones, the reservation finds none and refuses with its reason
    with open(os.path.join(work, "sys/devices/pci0000:00/0000:5e:00.0/sriov_numvfs"), "w") as f:
        f.write("0\n")
    st, out, err = hook(work, a, xml, "migrate", "begin")
    check_eq(st, 1, "migrate begin when the VFs are gone")
    check_eq(out, "", "stdout of a refused migrate begin")
    check_in("no free VF of 8086:154c: 0 free of 0 (1 wanted)", err, "the reservation's refusal")
    vmlib.log("refusal by the reservation: " + err.strip())
    with open(os.path.join(work, "sys/devices/pci0000:00/0000:5e:00.0/sriov_numvfs"), "w") as f:
        f.write("4\n")


def validate_and_compare(work, xml, out, addr):
    path = os.path.join(work, "rewritten.xml")
    with open(path, "w") as f:
        f.write(out)
    v = subprocess.run(["virt-xml-validate", path, "domain"], capture_output=True, text=True)
    check_eq(v.returncode, 0, "virt-xml-validate of the rewritten XML:\n%s%s\n%s" % (
        v.stdout, v.stderr, out))
    dom, bus, rest = addr.split(":")
    slot, fn = rest.split(".")
    want = {"type": "pci", "domain": "0x" + dom, "bus": "0x" + bus, "slot": "0x" + slot,
            "function": "0x" + fn}
    before, after = ET.fromstring(xml), ET.fromstring(out)
    ifaces = after.findall("./devices/interface[@type='hostdev']")
    check_eq(ifaces[0].find("./source/address").attrib, want,
             "the transient interface's new source address")
    check_eq(ifaces[1].find("./source/address").attrib["slot"], "0x10",
             "the plain hostdev interface's address")
    # nothing else changed: the input's tree with that address set equals the output's
    src = before.findall("./devices/interface[@type='hostdev']")[0].find("./source/address")
    src.attrib.update(want)
    diff = same_tree(before, after)
    check(diff is None, "the rewrite changed more than the address: %s" % diff)
    # and the unchanged input differs from it exactly there (the comparison sees attributes)
    check(same_tree(ET.fromstring(xml), after) is not None, "the comparison saw no change")


def main():
    tool = vmlib.build_bin("tests/unit/hook_failover_tool")
    if not shutil.which("virt-xml-validate"):
        vmlib.skip("virt-xml-validate is not installed (apt-get install libvirt-clients)")
    with open(DOMAIN) as f:
        xml = f.read()
    with tempfile.TemporaryDirectory(prefix="gabi-failover-hook-") as work:
        os.makedirs(os.path.join(work, "dev/net"))
        k = failoverlib.Kernel(os.path.join(work, "sys"))
        try:
            vfs = k.add_pf("ens2f0", "0000:5e:00.0", DEV, 4)
            a = agentlib.Agent(work, extra=["--sysfs-root", os.path.join(work, "sys"),
                                            "--dev-root", "/dev"])
            try:
                hook_flow(work, a, k, vfs, xml)
                run(work, tool, xml.replace("PLATFORM", "x"), a, vfs)
            finally:
                a.stop()
        finally:
            k.stop()
    print("PASS")


def run(work, tool, xml, a, vfs):
    # migrate begin: reserve, rewrite, validate, compare
    r = a.call("failover.reserve", {"vm": "vm15", "device": DEV})
    addr = r["addresses"][0]
    check_eq(addr, vfs[0], "the reserved VF")
    st, out, err = rewrite(tool, xml, addr)
    check_eq(st, 0, "rewrite exit status (%s)" % err)
    check_in("mac 52:54:00:15:00:02, persistent ua-net0, address 0000:3b:10.4", err,
             "what the hook saw")
    validate_and_compare(work, xml, out, addr)
    a.call("failover.release", {"vm": "vm15"})

    # no free VF: the agent's reason refuses the migration
    a.call("failover.reserve", {"vm": "other", "device": DEV, "count": 4})
    e = a.client().error("failover.reserve", {"vm": "vm16", "device": DEV})
    reason = e["data"]["reason"]
    check_in("no free VF of 8086:154c: 0 free of 4", reason, "the agent's refusal")
    st, out, err = rewrite(tool, xml, "!" + reason)
    check_eq(st, 1, "exit status of a refused rewrite")
    check_eq(out, "", "stdout of a refused rewrite")
    check_in("no free VF of 8086:154c: 0 free of 4", err, "the refusal")

    # a domain without a transient failover interface: nothing printed
    plain = xml.replace("<teaming type='transient' persistent='ua-net0'/>", "")
    st, out, err = rewrite(tool, plain, "0000:5e:02.1")
    check_eq((st, out), (0, ""), "a domain without a transient interface")

    # malformed: a bad reserved address, a missing source address, a DTD, not XML
    st, out, err = rewrite(tool, xml, "0000:5e:02")
    check_eq(st, 1, "a malformed address")
    check_in('reserved VF address "0000:5e:02" is malformed', err, "malformed address")
    noaddr = xml.replace("<address type='pci' domain='0x0000' bus='0x3b' slot='0x10' "
                         "function='0x4'/>", "")
    st, out, err = rewrite(tool, noaddr, "0000:5e:02.1")
    check_eq(st, 1, "no source address")
    check_in("interface[type=hostdev][0]: a transient failover interface needs", err, "no addr")
    st, out, err = rewrite(tool, '<!DOCTYPE domain [<!ENTITY x "y">]>' + xml, "0000:5e:02.1")
    check_eq(st, 1, "a DTD")
    check_in("without a DTD", err, "DTD")
    st, out, err = rewrite(tool, "<domain", "0000:5e:02.1")
    check_eq(st, 1, "not XML")


if __name__ == "__main__":
    main()
