"""SR-IOV sysfs fixture trees for the failover tests, with a stand-in for the kernel's side of
the PCI driver attributes.

No VF and no vfio-pci exist on the test machines, so the tree is built here: PFs with
sriov_numvfs and virtfnN links, VFs with vendor, device, driver_override and a driver link, and
bus/pci/drivers/NAME/{bind,unbind}. Those bind and unbind files are FIFOs read by one thread
each, which does what the kernel does with such a write (and records it, in order, with the
device's driver_override at that moment):

  unbind ADDR  the device's driver link is removed, if it names this driver;
  bind ADDR    refused when the device has a driver, or its driver_override names another
               driver, or (no override) the driver is not the device's native one; otherwise
               the driver link is made.

driver_override stays a regular file: the agent writes it and reads it back, as on sysfs.
"""

import os
import re
import subprocess
import threading
import time

import netlib
from vmlib import wait_for


VFIO = "vfio-pci"


class Kernel:
    """A sysfs tree under root: PFs and their VFs; .journal lists every bind/unbind write."""

    def __init__(self, root, drivers=("ixgbevf", "iavf", VFIO)):
        self.root = root
        self.journal = []  # (driver, "bind"|"unbind", address, override, result)
        self.refuse = set()  # (driver, op) the kernel refuses (a failing probe)
        self.native = {}  # address -> its net driver
        self.lock = threading.Lock()
        self.stop_flag = False
        self.threads = []
        self.fifos = []
        os.makedirs(os.path.join(root, "class/net"), exist_ok=True)
        os.makedirs(os.path.join(root, "bus/pci/devices"), exist_ok=True)
        for d in drivers:
            ddir = os.path.join(root, "bus/pci/drivers", d)
            os.makedirs(ddir, exist_ok=True)
            for op in ("bind", "unbind"):
                path = os.path.join(ddir, op)
                os.mkfifo(path, 0o600)
                self.fifos.append(path)
                t = threading.Thread(target=self._serve, args=(d, op, path), daemon=True)
                t.start()
                self.threads.append(t)

    def add_pf(self, ifname, pf_addr, device, n_vfs, driver="ixgbevf", bus="5e", slot=2):
        """A PF netdev with n_vfs VFs of `device` ("8086:154c") on `driver`; their addresses."""
        top = os.path.join(self.root, "devices/pci0000:00")
        pfdir = os.path.join(top, pf_addr)
        os.makedirs(pfdir)
        self._put(pfdir, "sriov_numvfs", "%d\n" % n_vfs)
        self._put(pfdir, "sriov_totalvfs", "%d\n" % max(n_vfs, 8))
        ndir = os.path.join(self.root, "class/net", ifname)
        os.makedirs(ndir)
        os.symlink(os.path.relpath(pfdir, ndir), os.path.join(ndir, "device"))
        vendor, dev = device.split(":")
        addrs = []
        for i in range(n_vfs):
            addr = "0000:%s:%02x.%d" % (bus, slot + i // 8, i % 8)
            vdir = os.path.join(top, addr)
            os.makedirs(vdir)
            self._put(vdir, "vendor", "0x%s\n" % vendor)
            self._put(vdir, "device", "0x%s\n" % dev)
            self._put(vdir, "driver_override", "(null)\n")
            os.makedirs(os.path.join(vdir, "net", "%sv%d" % (ifname, i)))
            self._put(os.path.join(vdir, "net", "%sv%d" % (ifname, i)), "address",
                      "52:54:00:%02x:%02x:%02x\n" % (int(bus, 16), slot, i))
            os.symlink("../" + addr, os.path.join(pfdir, "virtfn%d" % i))
            os.symlink(os.path.relpath(vdir, os.path.join(self.root, "bus/pci/devices")),
                       os.path.join(self.root, "bus/pci/devices", addr))
            self.native[addr] = driver
            self.set_driver(addr, driver)
            addrs.append(addr)
        return addrs

    @staticmethod
    def _put(d, name, text):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

    def _dev(self, addr):
        return os.path.join(self.root, "bus/pci/devices", addr)

    def driver(self, addr):
        """The device's driver by its link, or None."""
        try:
            return os.path.basename(os.readlink(os.path.join(self._dev(addr), "driver")))
        except FileNotFoundError:
            return None

    def set_driver(self, addr, name):
        link = os.path.join(self._dev(addr), "driver")
        if os.path.lexists(link):
            os.unlink(link)
        if name:
            os.symlink(os.path.join(self.root, "bus/pci/drivers", name), link)

    def override(self, addr):
        with open(os.path.join(self._dev(addr), "driver_override")) as f:
            v = f.read().strip()
        return "" if v == "(null)" else v

    def _apply(self, drv, op, addr):
        if addr not in self.native:
            return "no such device"
        if (drv, op) in self.refuse:
            return "refused"
        cur = self.driver(addr)
        if op == "unbind":
            if cur != drv:
                return "not bound to it"
            self.set_driver(addr, None)
            return "ok"
        ov = self.override(addr)
        if cur:
            return "already bound"
        if (ov and ov != drv) or (not ov and drv != self.native[addr]):
            return "no match"
        self.set_driver(addr, drv)
        return "ok"

    def _serve(self, drv, op, path):
        while True:
            fd = os.open(path, os.O_RDONLY)
            data = b""
            while True:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
            os.close(fd)
            if self.stop_flag:
                return
            addr = data.decode(errors="replace").strip()
            if not addr:
                continue
            with self.lock:
                ov = self.override(addr) if addr in self.native else ""
                result = self._apply(drv, op, addr)
                self.journal.append((drv, op, addr, ov, result))

    def take_journal(self):
        with self.lock:
            j, self.journal = self.journal, []
        return j

    def stop(self):
        self.stop_flag = True
        for path in self.fifos:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
        for t in self.threads:
            t.join(2)


# ---- QEMU failover pairs ---------------------------------------------------------------------

def pair_args(standby_sock, mac, primary_tap=None, native_hotplug=False):
    """QEMU arguments of a failover pair: two PCIe root ports, the standby (virtio-net,
    failover=on, id net1) on a vhost-user socket, and, when primary_tap is given, the primary
    (an emulated e1000e standing in for a VF: failover_pair_id=net1, same MAC) on that tap.
    native_hotplug: the root ports use PCIe native hotplug (the guest's pciehp, which waits
    5 s after an attention button press before it powers a slot off: a guest slow to release
    its primary) instead of q35's default ACPI hotplug."""
    args = ["-device", "pcie-root-port,id=rp1,chassis=1,bus=pcie.0,addr=0x5",
            "-device", "pcie-root-port,id=rp2,chassis=2,bus=pcie.0,addr=0x6",
            "-chardev", "socket,id=nc0,path=%s,reconnect=1" % standby_sock,
            "-netdev", "vhost-user,id=n0,chardev=nc0",
            # vectors=0: QEMU 7.2 crashes starting vhost-user-net with MSI-X under TCG
            "-device", "virtio-net-pci,netdev=n0,vectors=0,mac=%s,id=net1,failover=on,bus=rp1"
            % mac]
    if native_hotplug:
        args += ["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]
    if primary_tap:
        args += ["-netdev", "tap,id=h0,ifname=%s,script=no,downscript=no" % primary_tap,
                 "-device", primary_device(mac)]
    return args


# romfile= (none): QEMU keeps an unplugged primary's device for a replug after a failed
# migration, so an e1000e's option ROM RAM block would still be sent, and a destination whose
# primary is hidden until the guest acks the standby has no such block: "Unknown ramblock
# 0000:00:06.0:00.0/e1000e.rom, cannot accept migration". A VF's ROM is no RAM block.
PRIMARY_PROPS = dict(driver="e1000e", netdev="h0", id="hostdev0", failover_pair_id="net1",
                     bus="rp2", romfile="")


def primary_device(mac):
    return ",".join("%s=%s" % (k, v) if k != "driver" else v
                    for k, v in PRIMARY_PROPS.items()) + ",mac=" + mac


def primary_present(guest):
    """Whether QEMU has the primary (hostdev0) plugged: it is in query-pci."""
    for bus in guest.qmp.execute("query-pci"):
        for d in bus.get("devices", []):
            for sub in [d] + d.get("pci_bridge", {}).get("devices", []):
                if sub.get("qdev_id") == "hostdev0":
                    return True
    return False


class Migration:
    """What management does around one failover migration (docs/failover.md), as the tests
    drive it: before the destination QEMU starts, an equivalent VF is reserved and bound on the
    destination through its guestabid (`prepare`); the migration runs with a bound on the
    guest's unplug (`migrate`: cancelled with a reason past `unplug_timeout_s` in wait-unplug);
    after resume the destination gets its primary (`plug_after_resume`, when its command line
    had none); on failure or cancel the source gets its primary back and the destination's
    reservation is released (`rollback`). `timeline` keeps when each step happened."""

    def __init__(self, vm, device, dst_agent, unplug_timeout_s, log):
        self.vm = vm
        self.device = device
        self.agent = dst_agent
        self.unplug_timeout_s = unplug_timeout_s
        self.log = log
        self.timeline = []  # (time.time(), step)
        self.reason = None
        self.addresses = []

    def mark(self, step):
        self.timeline.append((time.time(), step))
        self.log("failover %s: %s" % (self.vm, step))

    def prepare(self):
        r = self.agent.call("failover.reserve", {"vm": self.vm, "device": self.device,
                                                 "ttl_s": 300})
        self.addresses = r["addresses"]
        self.agent.call("failover.bind", {"vm": self.vm})
        self.mark("destination VF %s reserved and bound" % ",".join(self.addresses))

    def migrate(self, src, uri, on_status=None, timeout=240):
        """Migrate; returns the final status. on_status(status) is called at each change."""
        src.qmp.execute("migrate-set-capabilities",
                        capabilities=[{"capability": "events", "state": True}])
        src.qmp.execute("migrate", uri=uri)
        self.mark("migrate")
        last, since = None, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = src.qmp.execute("query-migrate")
            st = info.get("status")
            if st != last:
                self.mark("source " + st)
                last, since = st, time.monotonic()
                if on_status:
                    on_status(st)
            if st in ("completed", "failed", "cancelled"):
                if info.get("error-desc"):
                    self.reason = self.reason or info["error-desc"]
                return st
            if st == "wait-unplug" and time.monotonic() - since > self.unplug_timeout_s:
                self.reason = ("the guest did not release failover primary hostdev0 within "
                               "%d ms: migration cancelled" % (self.unplug_timeout_s * 1000))
                self.mark(self.reason)
                src.qmp.execute("migrate_cancel")
            time.sleep(0.02)
        src.qmp.execute("migrate_cancel")
        raise TimeoutError("migration of %s did not end in %d s" % (self.vm, timeout))

    def migrate_cli(self, qmp_path, uri, unplug_ms, guestabi):
        """The same through `guestabi failover migrate` on a second QMP socket of the source:
        the bound on the guest's unplug is guestabi's. Returns the final status."""
        t0 = time.time()
        self.mark("migrate (guestabi failover migrate --unplug-timeout %d)" % unplug_ms)
        r = subprocess.run([guestabi, "failover", "migrate", "--qmp", qmp_path, "--uri", uri,
                            "--unplug-timeout", str(unplug_ms)], capture_output=True, text=True,
                           timeout=300)
        st = None
        for line in r.stdout.splitlines():
            m = re.match(r"\+(\d+\.\d+)s (.*)", line)
            if m:
                step = m.group(2)
                self.timeline.append((t0 + float(m.group(1)), step if " " in step
                                      else "source " + step))
                st = step if " " not in step else st
        self.log("guestabi failover migrate: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
        self.reason = r.stderr.strip() or None
        self.exit_status = r.returncode
        return st

    def plug_after_resume(self, dst, mac, timeout=60):
        wait_for(lambda: dst.qmp.execute("query-status")["status"] == "running", timeout,
                 "the destination to run")
        self.mark("destination running")
        dst.qmp.execute("device_add", mac=mac, **PRIMARY_PROPS)
        self.mark("destination primary device_add")

    def rollback(self, src, mac, timeout=30):
        """After a failed or cancelled migration: the source's primary back (QEMU plugs it again
        itself when it had unplugged it; a guest that removed it late needs a device_add), the
        destination's reservation released. Returns how the primary came back."""
        how = "in query-pci"
        if not primary_present(src):
            try:
                wait_for(lambda: primary_present(src), 5, "QEMU to plug the primary back")
                how = "plugged back by QEMU"
            except TimeoutError:
                how = None
        # a guest still removing it (pciehp's 5 s) takes it away after the cancel
        time.sleep(0.5)
        if how and not primary_present(src):
            how = None
        if how is None:
            def add():
                if primary_present(src):
                    return True
                try:
                    src.qmp.execute("device_add", mac=mac, **PRIMARY_PROPS)
                    return True
                except RuntimeError:
                    return False  # the slot is still being emptied
            wait_for(add, timeout, "device_add of the primary on the source", interval=0.5)
            how = "device_add again"
        self.mark("source primary: " + how)
        rel = self.agent.call("failover.release", {"vm": self.vm})
        self.mark("destination reservation released: %s" % ",".join(rel["released"]))
        return how


class Pinger:
    """Patterned pings every interval_ms from the host, with each reply's time (ping -D)."""

    def __init__(self, dest, interval_ms=10, pattern="a55a", size=200):
        self.interval = interval_ms / 1000.0
        self.t0 = time.time()
        self.ping = netlib.BackgroundPing(["-D", "-n", "-i", "%.3f" % self.interval, "-s",
                                           str(size), "-p", pattern, "-W", "1", dest])

    def stop(self):
        self.out = out = self.ping.stop()
        self.replies = {}
        for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) ", out, re.M):
            self.replies.setdefault(int(m.group(2)), float(m.group(1)))
        m = re.search(r"(\d+) packets transmitted", out)
        self.sent = int(m.group(1)) if m else 0
        return self

    def send_time(self, seq):
        """When seq was sent: interpolated between the nearest answered ones."""
        before = [s for s in self.replies if s <= seq]
        after = [s for s in self.replies if s >= seq]
        if before and after:
            a, b = max(before), min(after)
            if a == b:
                return self.replies[a]
            return self.replies[a] + (seq - a) * (self.replies[b] - self.replies[a]) / (b - a)
        if before:
            a = max(before)
            return self.replies[a] + (seq - a) * self.interval
        b = min(after)
        return self.replies[b] - (b - seq) * self.interval

    def lost_by_step(self, timeline):
        """{step: number of pings lost that were sent during it}, steps in timeline order."""
        out = {step: 0 for _, step in timeline}
        out["before " + timeline[0][1]] = 0
        for seq in range(1, self.sent + 1):
            if seq in self.replies:
                continue
            t = self.send_time(seq)
            step = "before " + timeline[0][1]
            for ts, s in timeline:
                if ts <= t:
                    step = s
            out[step] += 1
        return out

    def longest_gap(self):
        run = best = 0
        for seq in range(1, self.sent + 1):
            run = 0 if seq in self.replies else run + 1
            best = max(best, run)
        return best


def tap_tx_from_guest(tap):
    """Frames the guest sent through this tap (the tap's RX on the host side)."""
    with open("/proc/net/dev") as f:  # this network namespace's (/sys shows the machine's)
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == tap:
                return int(rest.split()[1])
    raise KeyError("no interface " + tap)
