"""Two libvirt "hosts" on one machine for the integration tests (shared/reference/libvirt.md):
each host is a libvirtd (with its virtlogd) in a private mount namespace of its own, with its
own /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt,
/etc/guestabi and VM runtime folder bind-mounted from the test's scratch directory, its own
host_uuid, `cgroup_controllers = [ ]`, guestabi's qemu hook installed, and its own guestabid
started inside the namespace (so a socket path in a domain's XML means that host's file).

Use:
    pair = libvirtlib.HostPair(scenario)       # after netlib.need_root_net()
    h1, h2 = pair.hosts
    h1.virsh("list", "--all"); h1.agent_call("port.list")
    pair.domain_xml(name, ...)                 # a TCG guest on a vhost-user interface
Everything is torn down by the scenario: domains destroyed, daemons and agents stopped.
Standard library only.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import agentlib
import vmlib

QEMU_USER = "libvirt-qemu"
HOOK_NAME = "guestabi-libvirt-hook"


class CheckFailed(Exception):
    pass


def check(cond, msg):
    """An explicit check (bare assert statements vanish under python -O)."""
    if not cond:
        raise CheckFailed(msg)


def need_libvirt():
    for prog in ("libvirtd", "virtlogd", "virsh", "unshare", "nsenter"):
        if not shutil.which(prog):
            vmlib.skip("%s is not installed (tools/deps.sh peers: libvirt-daemon-system "
                       "libvirt-clients)" % prog)
    if not os.path.isdir("/etc/libvirt"):
        vmlib.skip("/etc/libvirt does not exist (libvirt-daemon-system)")
    try:
        import pwd
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        vmlib.skip("user %s does not exist (libvirt-daemon-system)" % QEMU_USER)
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        vmlib.skip("cannot create a mount namespace (unshare --mount)")


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


# An <emulator> that keeps QEMU 7.2's TCG migration from corrupting the guest: libvirt rounds
# guest RAM to whole MiB, and a RAM block that is a multiple of 256 KiB takes QEMU 7.2's
# broken fast dirty-sync path (vmlib.guest_ram_kb). The wrapper adds 8 KiB to -m and to the
# pc.ram memory backend, the same way on every host (RAM block sizes must match).
QEMU_WRAPPER = r'''#!/usr/bin/python3
import json, os, re, sys
args = sys.argv[1:]
for i, a in enumerate(args):
    if i and args[i - 1] == "-m":
        m = re.fullmatch(r"(?:size=)?(\d+)([kKmMgG]?)((?:,.*)?)", a)
        if m:
            n = int(m.group(1)) * {"": 1024, "m": 1024, "k": 1, "g": 1024 * 1024}[m.group(2).lower()]
            args[i] = "%dK%s" % (n + 8, m.group(3)) if not a.startswith("size=") else \
                "size=%dK%s" % (n + 8, m.group(3))
    elif i and args[i - 1] == "-object" and a.startswith("{"):
        o = json.loads(a)
        if o.get("id") == "pc.ram" and "size" in o:
            o["size"] += 8192
            args[i] = json.dumps(o, separators=(",", ":"))
os.execv("/usr/bin/qemu-system-x86_64", ["qemu-system-x86_64"] + args)
'''


class NsAgent(agentlib.Agent):
    """A host's guestabid, started inside the host's mount namespace (so the socket paths in
    its domains' XML are that host's files); agentlib.Agent's start, stop and output."""

    def __init__(self, host):
        self.name = host.name + "-guestabid"
        self.dir = host.agent_dir
        self.socket = host.agent_socket
        self.state_dir = os.path.join(host.agent_dir, "state")
        self.exe = vmlib.build_bin("src/agent/guestabid")
        self.argv = host.nsenter() + [self.exe, "--socket", self.socket, "--state-dir",
                                      self.state_dir, "--host-name", host.name,
                                      "--poll-ms", "200"]
        for d in host.backend_dirs:
            self.argv += ["--backend-dir", d]
        self.log_path = host.agent_log
        self.proc = None
        self.env = None
        self.start()


class Host:
    """One libvirtd + virtlogd in a private mount namespace, with its guestabid."""

    def __init__(self, root, name, index, vmdir, hook, conf_extra=None, backend_dirs=None):
        self.name = name
        self.dir = os.path.join(root, name)
        self.vmdir = vmdir  # the same path on every host; each binds its own folder there
        self.own_vmdir = os.path.join(self.dir, "vm")
        self.agent_dir = os.path.join(self.dir, "agent")
        self.agent_socket = os.path.join(self.agent_dir, "guestabid.sock")
        self.uri = "qemu+unix:///system?socket=%s/run/libvirt-sock" % self.dir
        self.tcp_uri = "qemu+tcp://127.0.0.%d/system" % index
        self.index = index
        self.libvirtd_pid = None
        self.virtlogd_pid = None
        self.agent = None
        self.agent_log = os.path.join(self.dir, "guestabid.log")
        self.backend_dirs = backend_dirs or [os.path.join(vmlib.BUILD_ROOT, "devices/net"),
                                             os.path.join(vmlib.BUILD_ROOT, "devices/blk")]
        os.makedirs(self.dir)
        for src, dst in (("/etc/libvirt", "etc"), ("/var/lib/libvirt", "lib"),
                         ("/var/cache/libvirt", "cache")):
            shutil.copytree(src, os.path.join(self.dir, dst), symlinks=True)
        for d in ("run", "log/qemu", "vm", "guestabi-etc", "agent"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(self.own_vmdir, 0o777)  # QEMU (libvirt-qemu) makes its sockets and logs there
        etc = os.path.join(self.dir, "etc")
        with open(os.path.join(etc, "libvirtd.conf"), "a") as f:
            f.write('\nhost_uuid = "%s"\nlisten_tcp = 1\nlisten_tls = 0\nauth_tcp = "none"\n'
                    'listen_addr = "127.0.0.%d"\n' % (uuid.uuid4(), index))
        with open(os.path.join(etc, "qemu.conf"), "a") as f:
            f.write("\ncgroup_controllers = [ ]\n")
        hooks = os.path.join(etc, "hooks", "qemu.d")
        os.makedirs(hooks, exist_ok=True)
        shutil.copy(hook, os.path.join(hooks, HOOK_NAME))
        os.chmod(os.path.join(hooks, HOOK_NAME), 0o755)
        conf = {"agent_socket": self.agent_socket, "timeout_ms": "5000"}
        conf.update(conf_extra or {})
        write(os.path.join(self.dir, "guestabi-etc", "guestabi.conf"),
              "".join("%s = %s\n" % kv for kv in conf.items()))

    def start(self):
        binds = [("etc", "/etc/libvirt"), ("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"),
                 ("log", "/var/log/libvirt"), ("cache", "/var/cache/libvirt"),
                 ("guestabi-etc", "/etc/guestabi"), ("vm", self.vmdir)]
        # mount points libvirtd would make itself at its first start
        script = "mkdir -p /run/libvirt /var/log/libvirt /var/cache/libvirt\n"
        script += "".join("mount --bind %s/%s %s\n" % (self.dir, s, d) for s, d in binds)
        script += ("virtlogd -d -p {d}/virtlogd.pid\n"
                   "libvirtd -d -l -p {d}/libvirtd.pid\n").format(d=self.dir)
        t0 = time.monotonic()
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                            "/bin/bash", "-ec", script], capture_output=True, text=True)
        check(r.returncode == 0, "%s: starting libvirtd failed: %s" % (self.name, r.stderr))
        sock = os.path.join(self.dir, "run", "libvirt-sock")
        vmlib.wait_for(lambda: os.path.exists(sock) and os.path.exists(
            os.path.join(self.dir, "libvirtd.pid")), 30, self.name + "'s libvirtd")
        self.libvirtd_pid = int(open(os.path.join(self.dir, "libvirtd.pid")).read())
        self.virtlogd_pid = int(open(os.path.join(self.dir, "virtlogd.pid")).read())
        vmlib.wait_for(lambda: self.virsh("version", check_rc=False)[0] == 0, 30,
                       self.name + "'s libvirtd to answer")
        vmlib.log("%s: libvirtd %d up in %.2fs (%s)" % (self.name, self.libvirtd_pid,
                                                         time.monotonic() - t0, self.uri))
        self.start_agent()

    def nsenter(self):
        return ["nsenter", "--mount=/proc/%d/ns/mnt" % self.libvirtd_pid, "--"]

    def start_agent(self):
        self.agent = NsAgent(self)

    def stop_agent(self):
        if self.agent and self.agent.alive():
            self.agent.stop()

    def agent_output(self):
        return self.agent.output() if self.agent else ""

    def agent_call(self, method, params=None):
        c = agentlib.Client(self.agent_socket)
        try:
            return c.call(method, params)
        finally:
            c.close()

    def ports(self):
        return {p["id"]: p for p in self.agent_call("port.list")["ports"]}

    def virsh(self, *args, check_rc=True, timeout=300):
        r = subprocess.run(["virsh", "-c", self.uri] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        if check_rc:
            check(r.returncode == 0, "%s: virsh %s failed (%d): %s%s" % (
                self.name, " ".join(args), r.returncode, r.stdout, r.stderr))
        return r.returncode, r.stdout + r.stderr

    def domains(self):
        st, out = self.virsh("list", "--all", "--name")
        return [n for n in out.split() if n]

    def qemu_pids(self):
        """QEMU processes started by this host's libvirtd."""
        return [p for p in agentlib.children_of(self.libvirtd_pid)
                if b"qemu" in b" ".join(agentlib.cmdline(p))]

    def run_in(self, argv, stdin=None, timeout=60):
        """Run a program in this host's mount namespace: (status, stdout, stderr, seconds)."""
        t0 = time.monotonic()
        r = subprocess.run(self.nsenter() + argv, input=stdin, capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr, time.monotonic() - t0

    def qemu_log(self, dom):
        try:
            with open(os.path.join(self.dir, "log", "qemu", dom + ".log"), errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.libvirtd_pid:
            for dom in self.domains():
                self.virsh("destroy", dom, check_rc=False, timeout=60)
                self.virsh("undefine", dom, check_rc=False, timeout=60)
        self.stop_agent()
        for pid in (self.libvirtd_pid, self.virtlogd_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for pid in (self.libvirtd_pid, self.virtlogd_pid):
            if pid:
                vmlib.wait_for(lambda: not os.path.exists("/proc/%d" % pid), 15,
                               "pid %d to exit" % pid)
        self.libvirtd_pid = self.virtlogd_pid = None


class HostPair:
    """Two hosts, started in order; add it to a vmlib.Scenario to have it torn down."""

    def __init__(self, sc, conf_extra=(None, None), backend_dirs=(None, None)):
        need_libvirt()
        self.name = "libvirt-hosts"
        self.dir = sc.dir
        os.chmod(sc.dir, 0o755)  # QEMU runs as libvirt-qemu: it must reach its files
        self.vmdir = os.path.join(sc.dir, "vm")
        os.makedirs(self.vmdir)
        self.made_etc_guestabi = False
        if not os.path.isdir("/etc/guestabi"):
            os.makedirs("/etc/guestabi")  # a mount point for each host's own /etc/guestabi
            self.made_etc_guestabi = True
        self.img = os.path.join(sc.dir, "img")
        os.makedirs(self.img)
        vmlinux, initrd = vmlib.guest_image(sc.dir)
        for f in (vmlinux, initrd):
            shutil.copy(f, self.img)
            os.chmod(os.path.join(self.img, os.path.basename(f)), 0o644)
        self.vmlinux = os.path.join(self.img, os.path.basename(vmlinux))
        self.initrd = os.path.join(self.img, os.path.basename(initrd))
        self.emulator = os.path.join(self.img, "qemu-wrapper")
        write(self.emulator, QEMU_WRAPPER, 0o755)
        hook = vmlib.build_bin("src/libvirt-hook/" + HOOK_NAME)
        self.hosts = []
        sc.add(self)
        for i in (1, 2):
            h = Host(sc.dir, "host%d" % i, i, self.vmdir, hook, conf_extra[i - 1],
                     backend_dirs[i - 1])
            self.hosts.append(h)
            h.start()

    def domain_xml(self, name, mac, ip, mem_mb=256, net=True):
        """A TCG guest (the test guest image, direct kernel boot) on a vhost-user interface
        with alias ua-net0 at VMDIR/NAME-net0.sock, a console file and a control channel."""
        vm = self.vmdir
        iface = ""
        override = ""
        if net:
            iface = """
    <interface type='vhostuser'>
      <mac address='%s'/>
      <source type='unix' path='%s/%s-net0.sock' mode='client'>
        <reconnect enabled='yes' timeout='1'/>
      </source>
      <model type='virtio'/>
      <alias name='ua-net0'/>
    </interface>""" % (mac, vm, name)
            override = """
  <qemu:override>
    <qemu:device alias='ua-net0'>
      <qemu:frontend><qemu:property name='vectors' type='unsigned' value='0'/></qemu:frontend>
    </qemu:device>
  </qemu:override>"""
        return """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%(name)s</name>
  <memory unit='MiB'>%(mem)d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet gabi.ip=%(ip)s/24</cmdline>
  </os>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>%(emulator)s</emulator>%(iface)s
    <serial type='file'><source path='%(vm)s/%(name)s-console.log'/><target port='0'/></serial>
    <serial type='unix'><source mode='bind' path='%(vm)s/%(name)s-ctl.sock'/><target port='1'/></serial>
    <memballoon model='none'/>
  </devices>%(override)s
</domain>
""" % {"name": name, "mem": mem_mb, "kernel": self.vmlinux, "initrd": self.initrd, "ip": ip,
       "emulator": self.emulator, "iface": iface, "vm": vm, "override": override}

    def stop(self):
        for h in reversed(self.hosts):
            try:
                h.stop()
            except Exception as e:
                print("teardown of %s: %s" % (h.name, e))
        if self.made_etc_guestabi:
            try:
                os.rmdir("/etc/guestabi")
            except OSError:
                pass

    def output(self):
        return "\n".join("--- %s guestabid:\n%s" % (h.name, h.agent_output()[-3000:])
                         for h in self.hosts)
