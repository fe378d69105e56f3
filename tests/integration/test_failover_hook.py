#!/usr/bin/env python3
"""The libvirt hook's failover rewrite (src/libvirt-hook/failover.c, through the
hook_failover_tool filter) fed by a real guestabid on an SR-IOV fixture: the VF
failover.reserve gives replaces the source address of the domain's transient failover
interface; the printed XML validates (virt-xml-validate) and its tree equals the input's but for
those four attributes; a plain hostdev interface is left alone; the agent's refusal ("no free VF
of 8086:154c: 0 free of 4") refuses the rewrite with that reason; a domain without a transient
interface prints nothing; malformed input is refused."""

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
                                            "--dev-root", os.path.join(work, "dev")])
            try:
                run(work, tool, xml, a, vfs)
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
    path = os.path.join(work, "rewritten.xml")
    with open(path, "w") as f:
        f.write(out)
    v = subprocess.run(["virt-xml-validate", path, "domain"], capture_output=True, text=True)
    check_eq(v.returncode, 0, "virt-xml-validate of the rewritten XML:\n%s%s\n%s" % (
        v.stdout, v.stderr, out))
    before, after = ET.fromstring(xml), ET.fromstring(out)
    ifaces = after.findall("./devices/interface[@type='hostdev']")
    check_eq(ifaces[0].find("./source/address").attrib,
             {"type": "pci", "domain": "0x0000", "bus": "0x5e", "slot": "0x02",
              "function": "0x0"}, "the transient interface's new source address")
    check_eq(ifaces[1].find("./source/address").attrib["slot"], "0x10",
             "the plain hostdev interface's address")
    # nothing else changed: the input's tree with that address set equals the output's
    src = before.findall("./devices/interface[@type='hostdev']")[0].find("./source/address")
    src.attrib.update(bus="0x5e", slot="0x02", function="0x0")
    diff = same_tree(before, after)
    check(diff is None, "the rewrite changed more than the address: %s" % diff)
    # and the unchanged input differs from it exactly there (the comparison sees attributes)
    check(same_tree(ET.fromstring(xml), after) is not None, "the comparison saw no change")

    # no free VF: the agent's reason refuses the migration
    a.call("failover.reserve", {"vm": "other", "device": DEV, "count": 3})
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
