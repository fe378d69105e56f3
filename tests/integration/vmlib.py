"""Real peers for integration tests: QEMU guests (TCG) driven over QMP and a serial control
channel, and helpers to run guestabi programs and DPDK's testpmd beside them.

Only the standard library is used, so the tests run wherever meson (and so python3) runs.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import checks  # noqa: F401  (an optimised run, whose asserts would vanish, refuses to start)

SOURCE_ROOT = os.environ.get("GUESTABI_SOURCE_ROOT", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BUILD_ROOT = os.environ.get("GUESTABI_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
QEMU = shutil.which("qemu-system-x86_64")
SKIP = 77  # meson's exit code for a skipped test


def skip(why):
    """Say loudly why a test cannot run here, and exit as skipped (never as passed)."""
    print("SKIP: " + why, flush=True)
    sys.exit(SKIP)


def log(msg):
    print("[%7.2f] %s" % (time.monotonic() - _T0, msg), flush=True)


_T0 = time.monotonic()


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out after %ds waiting for %s" % (timeout, what))


def guest_image(workdir):
    """Build (or reuse) the test guest: returns (vmlinux, initrd)."""
    out = os.path.join(BUILD_ROOT, "guest")
    script = os.path.join(SOURCE_ROOT, "tests/integration/guest/build-guest.sh")
    r = subprocess.run([script, out], capture_output=True, text=True)
    if r.returncode == SKIP:
        skip(r.stderr.strip())
    if r.returncode != 0:
        raise RuntimeError("build-guest failed: " + r.stderr)
    return os.path.join(out, "vmlinux"), os.path.join(out, "initrd.gz")


def build_bin(rel):
    """A program of this build (e.g. "src/cli/guestabi"), or skip when it was not built."""
    path = os.path.join(BUILD_ROOT, rel)
    if not os.access(path, os.X_OK):
        skip("%s is not built" % path)
    return path


def migrate(src, dst_uri, timeout=180):
    """Migrate `src` to `dst_uri` over QMP; returns query-migrate's final answer plus the
    wall time it took."""
    t0 = time.monotonic()
    src.qmp.execute("migrate", uri=dst_uri)

    def finished():
        info = src.qmp.execute("query-migrate")
        return info if info.get("status") in ("completed", "failed", "cancelled") else None
    info = wait_for(finished, timeout, "migration of " + src.name, interval=0.1)
    info["wall-seconds"] = time.monotonic() - t0
    log("%s: migration %s in %.2fs, downtime %s ms%s" % (
        src.name, info["status"], info["wall-seconds"], info.get("downtime"),
        ": " + info["error-desc"] if info.get("error-desc") else ""))
    return info


class QMP:
    """A QMP client: commands and the events that arrive meanwhile."""

    def __init__(self, path, timeout=30):
        self.sock = wait_for(lambda: self._connect(path), timeout, "QMP socket " + path)
        self.sock.settimeout(60)
        self.buf = b""
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError("no QMP greeting: %r" % greeting)
        self.execute("qmp_capabilities")

    @staticmethod
    def _connect(path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            return None

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (cmd, r["error"].get("desc")))
            return r.get("return")

    def close(self):
        self.sock.close()


def guest_ram_kb(mem_mb):
    """The guest's RAM size in KiB: 8 KiB more than mem_mb MiB, on purpose (-m rounds to
    8 KiB). QEMU 7.2 (Debian 12) loses guest writes during a TCG live migration: the
    64-pages-at-a-time fast path of its dirty-bitmap sync clears migration dirty bits without
    re-arming TCG's dirty-tracking TLB entries, so a vCPU store to a page still in the TLB is
    not marked dirty again and the destination resumes with a stale page (a panicking guest,
    or virtio-net's "id 0 is not a head!"), no vhost-user involved. Fixed upstream in 2024
    ("system/physmem: Fix migration dirty bitmap coherency with TCG memory access"). A RAM
    block whose size is not a multiple of 64 pages takes the page-by-page path, which re-arms
    the TLB. docs/interop.md has the measurements."""
    return mem_mb * 1024 + 8


class Guest:
    """One QEMU process running the test guest under TCG, with memfd shared memory so that
    vhost-user back-ends can map it."""

    def __init__(self, name, workdir, mem_mb=256, netdevs=(), blkdevs=(), incoming=None,
                 cmdline="", extra=()):
        if not QEMU:
            skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.console = os.path.join(self.dir, "console.log")
        self.ctl_path = os.path.join(self.dir, "ctl.sock")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        vmlinux, initrd = guest_image(workdir)
        mem_kb = guest_ram_kb(mem_mb)
        # A migration-safe CPU model (QEMU reports "max" as not migration-safe);
        # GUESTABI_TEST_CPU overrides it.
        argv = [QEMU, "-accel", "tcg", "-machine", "q35",
                "-cpu", os.environ.get("GUESTABI_TEST_CPU", "qemu64"), "-m", "%dK" % mem_kb,
                "-smp", "1", "-display", "none", "-no-reboot", "-nodefaults",
                "-object", "memory-backend-memfd,id=mem,size=%dK,share=on" % mem_kb,
                "-numa", "node,memdev=mem",
                "-kernel", vmlinux, "-initrd", initrd,
                "-append", "console=ttyS0 panic=-1 quiet " + cmdline,
                "-serial", "file:" + self.console,
                "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_path,
                "-serial", "chardev:ctl",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        for i, nd in enumerate(netdevs):
            # QEMU 7.2 crashes starting a vhost-user virtio-net with MSI-X under TCG:
            # vectors=0 (shared/reference/peers.md).
            argv += ["-chardev", "socket,id=nc%d,path=%s,reconnect=1" % (i, nd["socket"]),
                     "-netdev", "vhost-user,id=n%d,chardev=nc%d%s" % (
                         i, i, ",queues=%d" % nd["queues"] if nd.get("queues") else ""),
                     "-device", "virtio-net-pci,netdev=n%d,vectors=0,mac=%s%s" % (
                         i, nd["mac"], nd.get("props", ""))]
        for i, bd in enumerate(blkdevs):
            argv += ["-chardev", "socket,id=bc%d,path=%s" % (i, bd["socket"]),
                     "-device", "vhost-user-blk-pci,chardev=bc%d,num-queues=%d" % (
                         i, bd.get("queues", 1))]
        if incoming:
            argv += ["-incoming", incoming]
        argv += list(extra)
        self.argv = argv
        self.stderr = open(os.path.join(self.dir, "qemu.stderr"), "w")
        log("%s: starting QEMU" % name)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=subprocess.STDOUT)
        self.qmp = QMP(self.qmp_path)
        self.ctl = None
        self.ctl_buf = b""

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout=120):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("%s: QEMU exited with %s:\n%s" % (
                    self.name, self.proc.returncode, self.tail()))
            return "GUESTABI-GUEST-READY" in self.console_text()
        wait_for(ready, timeout, self.name + " to boot", interval=0.2)
        log("%s: guest is up" % self.name)

    def tail(self):
        try:
            with open(os.path.join(self.dir, "qemu.stderr"), errors="replace") as f:
                err = f.read()[-2000:]
        except FileNotFoundError:
            err = ""
        return "console:\n%s\nqemu:\n%s" % (self.console_text()[-2000:], err)

    def run(self, command, timeout=60):
        """Run a shell command in the guest; returns (status, output)."""
        if self.ctl is None:
            self.ctl = wait_for(lambda: QMP._connect(self.ctl_path), 10, "control channel")
            self.ctl.settimeout(timeout)
        self.ctl.settimeout(timeout)
        self.ctl.sendall(command.encode() + b"\n")
        deadline = time.monotonic() + timeout
        def complete():
            at = self.ctl_buf.find(b"@@GUESTABI-DONE")
            return at >= 0 and b"\n" in self.ctl_buf[at:]
        while not complete():
            if time.monotonic() > deadline:
                raise TimeoutError("%s: command %r timed out" % (self.name, command))
            chunk = self.ctl.recv(65536)
            if not chunk:
                raise EOFError("%s: control channel closed" % self.name)
            self.ctl_buf += chunk
        out, rest = self.ctl_buf.split(b"@@GUESTABI-DONE", 1)
        status_line, _, self.ctl_buf = rest.partition(b"\n")
        return int(status_line.strip() or b"255"), out.decode(errors="replace").replace("\r", "")

    def check(self, command, timeout=60):
        st, out = self.run(command, timeout)
        if st != 0:
            raise RuntimeError("%s: %r failed (%d):\n%s" % (self.name, command, st, out))
        return out

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.qmp.execute("quit")
            except Exception:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            self.qmp.close()
        except Exception:
            pass
        if self.ctl:
            self.ctl.close()
        self.stderr.close()


class Process:
    """A helper process (a back-end, testpmd) with its output kept in a file."""

    def __init__(self, name, workdir, argv, stdin=subprocess.DEVNULL, env=None):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.logf = open(self.log_path, "w")
        log("%s: %s" % (name, " ".join(argv)))
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def end(self, sig=signal.SIGTERM, timeout=10):
        """Signal its process group, wait (SIGKILL after timeout s); its exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10):
        rc = self.end(sig, timeout)
        self.logf.close()
        return rc


class Scenario:
    """Owns a scratch directory and everything started in it; tears all down at exit, and
    prints the logs of whatever failed."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="gabi-%s-" % name)
        self.things = []

    def add(self, thing):
        self.things.append(thing)
        return thing

    def __enter__(self):
        return self

    def __exit__(self, typ, val, tb):
        for t in reversed(self.things):
            try:
                t.stop()
            except Exception as e:
                print("teardown of %s: %s" % (getattr(t, "name", t), e))
        if typ is not None and typ is not SystemExit:
            for t in self.things:
                if isinstance(t, Guest):
                    print("--- %s\n%s" % (t.name, t.tail()))
                elif isinstance(t, Process):
                    print("--- %s log:\n%s" % (t.name, t.output()[-3000:]))
        if os.environ.get("GUESTABI_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept " + self.dir)
        return False
