#!/usr/bin/env python3
"""libvirt 9.0 with guestabi: two libvirt daemons on this machine (libvirtlib.HostPair), each
with its own guestabid and guestabi's qemu hook; host2's guestabi-net is an older release that
runs upstream.guestabi-net.v1 only. A TCG guest on a vhost-user interface (alias ua-net0),
pinned with `guestabi pin --domain` (virDomainSetMetadata), migrated with `virsh migrate --live`:

  (a) pinned to v1, which both hosts run: the hook's prepare has host1's agent create the port
      in v1 (socket handed to libvirt-qemu); the guest answers; patterned pings run through the
      migration and none is lost or corrupted; host2's agent created the port in v1; the
      source's port is gone after release;
  (b) pinned to v2, which host2 cannot run: `virsh migrate` fails within a second with
      guestabi's reasons in its message; no QEMU, no domain and no port on host2; the source
      keeps running and answering;
  (c) no pin: the hook leaves the domain alone (no port created, no output), it starts and
      migrates, even with host2's agent stopped.
Plus the hook run directly in a host's namespace: its time per operation, and a hung agent
refused within the configured timeout.
"""

import json
import os
import pwd
import socket
import subprocess
import threading
import time

import libvirtlib
import netlib
import vmlib
from libvirtlib import check

V1, V2 = "upstream.guestabi-net.v1", "upstream.guestabi-net.v2"
OLD_BACKEND = r'''#!/bin/sh
# guestabi-net as an older release would be: it runs upstream.guestabi-net.v1 only.
for a in "$@"; do
  if [ "$a" = --list-modes ]; then
    "%s" "$@" | grep '^upstream.guestabi-net.v1	'
    exit 0
  fi
done
exec "%s" "$@"
'''


def guestabi(*args):
    g = vmlib.build_bin("src/cli/guestabi")
    r = subprocess.run([g] + list(args), capture_output=True, text=True,
                       env=dict(os.environ, GUESTABI_SYSTEM_CATALOG=""))
    return r.returncode, r.stdout + r.stderr


class DomainGuest:
    """The guest of a libvirt domain on one host: console file and control channel in that
    host's VM folder (vmlib.Guest's command protocol)."""

    run = vmlib.Guest.run
    check = vmlib.Guest.check

    def __init__(self, host, name):
        self.host = host
        self.name = name
        self.console = os.path.join(host.own_vmdir, name + "-console.log")
        self.ctl_path = os.path.join(host.own_vmdir, name + "-ctl.sock")
        self.ctl = None
        self.ctl_buf = b""

    console_text = vmlib.Guest.console_text

    def wait_ready(self, timeout=120):
        vmlib.wait_for(lambda: "GUESTABI-GUEST-READY" in self.console_text(), timeout,
                       "%s to boot on %s\n%s" % (self.name, self.host.name,
                                                 self.host.qemu_log(self.name)), interval=0.2)
        vmlib.log("%s: guest is up on %s" % (self.name, self.host.name))

    def close(self):
        if self.ctl:
            self.ctl.close()
            self.ctl = None


def write_pin(path, vm, mode, platform="linux-5.14"):
    """A pin names its platform: a virtio-net VM without one runs its source's default, which
    the destination's check cannot see (it refuses such a pin)."""
    with open(path, "w") as f:
        json.dump({"schema": "guestabi.pin/1", "vm": vm, "platform": platform,
                   "devices": [{"id": "net0", "class": "virtio-net", "mode": mode}]}, f)


def define(pair, host, name, mac, ip, mode=None, net=True):
    xml = os.path.join(pair.dir, name + ".xml")
    libvirtlib.write(xml, pair.domain_xml(name, mac, ip, net=net))
    host.virsh("define", xml)
    if mode:
        pin = os.path.join(pair.dir, name + "-pin.json")
        write_pin(pin, name, mode)
        st, out = guestabi("pin", "--domain", name, "--pin", pin, "--connect", host.uri)
        check(st == 0, "guestabi pin --domain %s failed (%d):\n%s" % (name, st, out))
        st, out = guestabi("--json", "pin", "--domain", name, "--show", "--connect", host.uri)
        check(st == 0, "guestabi pin --show failed:\n" + out)
        shown = json.loads(out)
        check(shown["devices"][0]["mode"] == mode and shown["vm"] == name,
              "the pin read back through libvirt is not the one written:\n" + out)
        st, xml_text = host.virsh("dumpxml", "--inactive", name)
        check("urn:guestabi:pin:1" in xml_text and 'alias="ua-net0"' in xml_text,
              "the persistent XML of %s lacks the pin:\n%s" % (name, xml_text))


def start(host, name):
    t0 = time.monotonic()
    host.virsh("start", name, timeout=120)
    vmlib.log("%s: virsh start on %s returned in %.2fs" % (name, host.name,
                                                           time.monotonic() - t0))


def port_of(host, name):
    """The port the hook created for domain `name` (its socket is VMDIR/NAME-net0.sock)."""
    sock = os.path.join(host.vmdir, name + "-net0.sock")
    return [p for p in host.ports().values() if p["socket"] == sock]


def ping_count(out):
    for line in out.splitlines():
        if " received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def migrate(src, dst, name, extra=(), timeout=300):
    t0 = time.monotonic()
    st, out = src.virsh("migrate", "--live", "--unsafe", name, dst.uri,
                        "--migrateuri", "tcp://127.0.0.1:%d" % (49152 + dst.index),
                        "--listen-address", "127.0.0.1", *extra, check_rc=False,
                        timeout=timeout)
    return st, out, time.monotonic() - t0


def start_pinned(pair, host, name, mac, ip, mode):
    """Define, pin, start: the hook's prepare made the port in `mode`; the guest answers."""
    define(pair, host, name, mac, ip, mode)
    start(host, name)
    ports = port_of(host, name)
    check(len(ports) == 1 and ports[0]["mode"] == mode,
          "%s's agent has no %s port for %s after start: %s" % (host.name, mode, name,
                                                                host.ports()))
    g = DomainGuest(host, name)
    g.wait_ready()
    got, out = netlib.ping(ip, count=3)
    check(got == 3, "%s before migration: %d of 3 pings\n%s" % (name, got, out))
    return g, ports[0]


def case_a(pair, h1, h2):
    name, ip = "vm-a", "10.81.0.2"
    g, port = start_pinned(pair, h1, name, "52:54:00:81:00:02", ip, V1)
    sock = port["socket"]
    st = os.stat(os.path.join(h1.own_vmdir, os.path.basename(sock)))
    check(st.st_uid == pwd.getpwnam(libvirtlib.QEMU_USER).pw_uid and st.st_mode & 0o060 == 0o060,
          "the port's socket is not handed to %s (uid %d, mode %o)" % (
              libvirtlib.QEMU_USER, st.st_uid, st.st_mode & 0o777))
    # Patterned pings every 20 ms through the migration: the guest echoes what it received,
    # so a lost or corrupted receive buffer shows as a missing or wrong reply.
    pinger = netlib.BackgroundPing(["-n", "-i", "0.02", "-c", "400", "-s", "1200", "-p", "c3a5",
                                    "-W", "2", ip])
    time.sleep(1)
    st, out, secs = migrate(h1, h2, name)
    pings = pinger.wait(timeout=120)
    check(st == 0, "virsh migrate of a v1-pinned VM to a host that runs v1 failed:\n%s\n%s" % (
        out, h2.qemu_log(name)))
    vmlib.log("(a) virsh migrate completed in %.2fs" % secs)
    check("wrong data byte" not in pings, "corrupted echo during migration:\n" + pings)
    received = ping_count(pings)
    check(received >= 390, "only %d of 400 pings answered across the migration\n%s" % (
        received, pings[-600:]))
    check(name in h2.domains(), "%s is not on host2 after the migration" % name)
    ports2 = port_of(h2, name)
    check(len(ports2) == 1 and ports2[0]["mode"] == V1,
          "host2's agent has no v1 port for %s: %s" % (name, h2.ports()))
    vmlib.wait_for(lambda: not port_of(h1, name), 10,
                   "host1's port of %s to be deleted at release" % name)
    got, out = netlib.ping(ip, count=5)
    check(got == 5, "after migration: %d of 5 pings\n%s" % (got, out))
    g2 = DomainGuest(h2, name)
    st, out = g2.run("ping -c 3 -W 2 10.81.0.1")
    check(st == 0, "guest -> host after migration failed:\n" + out)
    g2.close()
    g.close()
    vmlib.log("(a) ok: %d/400 patterned pings across, port v1 created on host2 at prepare, "
              "host1's removed at release" % received)
    h2.virsh("destroy", name)
    vmlib.wait_for(lambda: not port_of(h2, name), 10, "host2's port of %s to go" % name)
    h1.virsh("undefine", name)
    return secs


def case_b(pair, h1, h2):
    name, ip = "vm-b", "10.81.0.3"
    g, _ = start_pinned(pair, h1, name, "52:54:00:81:00:03", ip, V2)
    qemus_before = h2.qemu_pids()
    st, out, secs = migrate(h1, h2, name, timeout=60)
    vmlib.log("(b) virsh migrate exit %d after %.2fs:\n%s" % (st, secs, out.strip()))
    check(st != 0, "virsh migrate of a v2-pinned VM to a v1-only host succeeded:\n" + out)
    check(secs < 1.0, "the refusal took %.2fs (expected within a second)" % secs)
    for word in ("guestabi", "host2", "net0", V2, "max_queue_pairs",
                 "VIRTIO_RING_F_INDIRECT_DESC"):
        check(word in out, "virsh's error does not name %r:\n%s" % (word, out))
    check(name not in h2.domains(), "host2 has a domain %s after the refusal" % name)
    check(h2.qemu_pids() == qemus_before, "a QEMU was started on host2: %s" % h2.qemu_pids())
    check(not port_of(h2, name), "host2 created a port for %s: %s" % (name, h2.ports()))
    st2, state = h1.virsh("domstate", name)
    check("running" in state, "the source VM is not running after the refusal: " + state)
    got, out2 = netlib.ping(ip, count=5)
    check(got == 5, "the source VM stopped answering after the refusal: %d of 5\n%s" % (
        got, out2))
    # the same answer from the CLI, reading the pin through libvirt and host2 from its agent
    st, out2 = guestabi("--agent", h2.agent_socket, "check", "--domain", name, "--connect",
                        h1.uri, "--host", "@agent")
    check(st == 1 and V2 in out2 and "max_queue_pairs" in out2,
          "guestabi check --domain did not refuse (%d):\n%s" % (st, out2))
    # pinned again, live and in its configuration, to the ABI both hosts share
    caps = []
    for h in (h1, h2):
        st, text = guestabi("--agent", h.agent_socket, "--json", "host", "caps")
        check(st == 0, "host caps of %s failed:\n%s" % (h.name, text))
        caps.append(os.path.join(pair.dir, h.name + "-caps.json"))
        libvirtlib.write(caps[-1], text)
    st, out2 = guestabi("pin", "--domain", name, "--connect", h1.uri, "--pick", *caps)
    check(st == 0 and V1 in out2, "guestabi pin --pick failed (%d):\n%s" % (st, out2))
    for flag in ("", "--inactive"):
        st, xml_text = h1.virsh("dumpxml", *([flag] if flag else []), name)
        check("mode=\"%s\"" % V1 in xml_text and "urn:guestabi:pin:1" in xml_text,
              "the picked pin is not in the %s XML:\n%s" % (flag or "live", xml_text))
    g.close()
    vmlib.log("(b) ok: refused in %.2fs, nothing on host2, source answering; check --domain "
              "refuses too; pin --pick wrote %s live and in the configuration" % (secs, V1))
    h1.virsh("destroy", name)
    vmlib.wait_for(lambda: not port_of(h1, name), 10, "host1's port of %s to go" % name)
    h1.virsh("undefine", name)
    return secs, out


def case_c(pair, h1, h2):
    name, ip = "vm-c", "10.81.0.4"
    define(pair, h1, name, "52:54:00:81:00:04", ip, None, net=False)
    st, out = guestabi("pin", "--domain", name, "--show", "--connect", h1.uri)
    check(st == 1 and "has no guestabi pin" in out, "an unpinned domain shows a pin:\n" + out)
    ports1 = set(h1.ports())
    h2.stop_agent()  # an unpinned domain needs no agent
    try:
        start(h1, name)
        DomainGuest(h1, name).wait_ready()
        st, out, secs = migrate(h1, h2, name)
        check(st == 0, "an unpinned VM did not migrate:\n%s\n%s" % (out, h2.qemu_log(name)))
        check(name in h2.domains(), "%s is not on host2" % name)
        check("guestabi" not in out, "guestabi spoke about an unpinned VM:\n" + out)
        check(set(h1.ports()) == ports1, "ports changed for an unpinned VM: %s" % h1.ports())
        vmlib.log("(c) ok: unpinned VM started and migrated in %.2fs with host2's agent "
                  "stopped" % secs)
        h2.virsh("destroy", name)
    finally:
        h2.start_agent()
    h1.virsh("undefine", name)


def hook_exe():
    return [vmlib.build_bin("src/libvirt-hook/" + libvirtlib.HOOK_NAME)]


def hook_direct(pair, h1):
    """The hook as libvirt runs it, timed, in host1's namespace (its agent and config)."""
    hook = ["/etc/libvirt/hooks/qemu.d/" + libvirtlib.HOOK_NAME]
    name = "vm-h"
    xml = pair.domain_xml(name, "52:54:00:81:00:09", "10.81.0.9").replace(
        "<devices>", "<uuid>0b9a4c0e-1111-4222-8333-444455556666</uuid>\n  <devices>", 1)
    pinned = xml.replace("</name>", "</name>\n  <metadata><guestabi:pin "
                         "xmlns:guestabi='urn:guestabi:pin:1' platform='linux-5.14'>"
                         "<guestabi:device id='net0' "
                         "alias='ua-net0' class='virtio-net' mode='%s'/></guestabi:pin>"
                         "</metadata>" % V2, 1)
    times = {}
    for op, sub, doc in (("migrate", "begin", pinned), ("prepare", "begin", pinned),
                         ("release", "end", pinned), ("migrate", "begin", xml),
                         ("prepare", "begin", xml)):
        best = None
        for _ in range(3):
            st, out, err, secs = h1.run_in(hook + [name, op, sub, "-"], stdin=doc)
            check(st == 0 and out == "" and err == "",
                  "hook %s %s (%s): exit %d, stdout %r, stderr %r" % (
                      op, sub, "pinned" if doc is pinned else "unpinned", st, out, err))
            if op == "prepare" and doc is pinned:
                check([p for p in h1.ports().values() if p["id"].startswith("lv-0b9a4c0e")],
                      "prepare created no port: %s" % h1.ports())
                # release deletes it; run it here so the next prepare starts clean
                st2, _, err2, secs2 = h1.run_in(hook + [name, "release", "end", "-"], stdin=doc)
                check(st2 == 0 and not [p for p in h1.ports().values()
                                        if p["id"].startswith("lv-0b9a4c0e")],
                      "release left the port: %s %s" % (err2, h1.ports()))
            best = secs if best is None else min(best, secs)
        key = "%s %s%s" % (op, sub, "" if doc is pinned else " (no pin)")
        times[key] = best
    vmlib.log("hook times (best of 3, including nsenter): " + ", ".join(
        "%s %.1f ms" % (k, v * 1000) for k, v in times.items()))
    # migrate begin needs nothing of the namespace: the hook alone, outside it, next to the
    # cost of starting any program on this machine
    best = None
    for _ in range(5):
        t0 = time.monotonic()
        subprocess.run(["true"])
        best = min(best or 1e9, time.monotonic() - t0)
    times["spawning /bin/true"] = best
    env = dict(os.environ, GUESTABI_CONF=os.path.join(h1.dir, "guestabi-etc", "guestabi.conf"))
    for label, doc in (("pinned", pinned), ("no pin", xml)):
        best = None
        for _ in range(5):
            t0 = time.monotonic()
            r = subprocess.run(hook_exe() + [name, "migrate", "begin", "-"], input=doc,
                               capture_output=True, text=True, env=env)
            secs = time.monotonic() - t0
            check(r.returncode == 0 and r.stdout == "" and r.stderr == "",
                  "hook migrate begin (%s) outside the namespace: %d %r" % (
                      label, r.returncode, r.stderr))
            best = secs if best is None else min(best, secs)
        times["migrate begin, no nsenter (%s)" % label] = best
        vmlib.log("hook migrate begin (%s), without nsenter: %.1f ms" % (label, best * 1000))

    # A hung agent (accepts, never answers): refused after timeout_ms, with the reason.
    hung = os.path.join(h1.dir, "hung.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(hung)
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except socket.timeout:
                pass
    t = threading.Thread(target=accept)
    t.start()
    conf = os.path.join(h1.dir, "guestabi-etc", "guestabi.conf")
    saved = open(conf).read()
    try:
        libvirtlib.write(conf, "agent_socket = %s\ntimeout_ms = 700\n" % hung)
        st, out, err, secs = h1.run_in(hook + [name, "migrate", "begin", "-"], stdin=pinned)
        check(st == 1 and "did not answer in time" in err and out == "",
              "a hung agent: exit %d, stderr %r" % (st, err))
        check(0.6 < secs < 2.0, "a hung agent was given up on after %.2fs (timeout 0.7 s)" % secs)
        vmlib.log("hung agent: refused after %.2fs: %s" % (secs, err.strip()))
        libvirtlib.write(conf, "agent_socket = %s/nothing.sock\n" % h1.dir)
        st, out, err, secs = h1.run_in(hook + [name, "migrate", "begin", "-"], stdin=pinned)
        check(st == 1 and "refusing the migration" in err and "No such file" in err,
              "no agent: exit %d, stderr %r" % (st, err))
    finally:
        libvirtlib.write(conf, saved)
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()
    return times


def main():
    netlib.need_root_net()
    libvirtlib.need_libvirt()
    gn = vmlib.build_bin("devices/net/guestabi-net")
    vmlib.build_bin("src/libvirt-hook/" + libvirtlib.HOOK_NAME)
    with vmlib.Scenario("libvirt") as sc:
        sc.add(netlib.Bridge("gabibr8", "10.81.0.1/24", ["gabitap81", "gabitap82"]))
        old = os.path.join(sc.dir, "old-backend")
        os.makedirs(old)
        libvirtlib.write(os.path.join(old, "guestabi-net"), OLD_BACKEND % (gn, gn), 0o755)
        pair = libvirtlib.HostPair(
            sc, conf_extra=({"net_backing": "tap:gabitap81"}, {"net_backing": "tap:gabitap82"}),
            backend_dirs=(None, [old]))
        h1, h2 = pair.hosts
        try:
            times = hook_direct(pair, h1)
            secs_a = case_a(pair, h1, h2)
            secs_b, refusal = case_b(pair, h1, h2)
            case_c(pair, h1, h2)
        except Exception:
            print(pair.output())
            raise
        vmlib.log("ok: (a) migrated in %.2fs, (b) refused in %.2fs, (c) untouched; hook: %s" % (
            secs_a, secs_b, ", ".join("%s %.1f ms" % (k, v * 1000) for k, v in times.items())))


if __name__ == "__main__":
    main()
