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
import threading


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
